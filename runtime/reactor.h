// runtime/reactor.h — the io_uring loop both the inbound shards and the
// delivery engine run on: ring setup, the user-data encoding of
// completions, a slot table with generations, the mailbox wake-up and the
// periodic tick, written once.
//
// Owns: one ring (single issuer, task work deferred to the loop thread,
// with a plain ring on older kernels), its mailbox (runtime/ring_mailbox.h)
// and the tick's timespec. The loop thread opens the ring and runs it;
// post() on the mailbox is the only call other threads make. What the
// completions mean is the owner's: the reactor only hands them over.
//
// SECURITY: moves no bytes itself; callers own every socket.
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/ring_mailbox.h"

namespace ringmail::runtime {

// io_uring user_data: operation in the top byte, slot (connection, or
// listener) in the next 24 bits, the slot's generation in the low 32 bits.
struct UserData {
  uint8_t op = 0;
  uint32_t slot = 0;
  uint32_t generation = 0;

  static constexpr uint32_t kMaxSlot = 0xffffffu;
  constexpr uint64_t packed() const {
    return (uint64_t(op) << 56) | (uint64_t(slot & kMaxSlot) << 32) | generation;
  }
  static constexpr UserData unpack(uint64_t data) {
    return UserData{uint8_t(data >> 56), uint32_t(data >> 32) & kMaxSlot, uint32_t(data)};
  }
};

template <typename Op>
constexpr uint64_t pack(Op op, uint32_t slot, uint32_t generation) {
  return UserData{static_cast<uint8_t>(op), slot, generation}.packed();
}

// Objects named by (slot, generation) in completions. A slot is reused
// once freed, with a new generation, so a completion that arrives for the
// object that used to live there finds nothing. T has a `uint32_t
// generation` member, which add() sets.
template <typename T>
class SlotTable {
 public:
  // Stores the object; returns its slot.
  uint32_t add(std::unique_ptr<T> item) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = uint32_t(items_.size());
      items_.emplace_back();
    }
    item->generation = ++generation_;
    items_[slot] = std::move(item);
    ++live_;
    return slot;
  }
  // The object in `slot` if it is still the one of `generation`.
  T* find(uint32_t slot, uint32_t generation) const {
    if (slot >= items_.size()) return nullptr;
    T* item = items_[slot].get();
    return item && item->generation == generation ? item : nullptr;
  }
  // Whatever lives in `slot` (null when free).
  T* at(uint32_t slot) const { return slot < items_.size() ? items_[slot].get() : nullptr; }
  // Destroys the object; the slot is reused by a later add().
  void remove(uint32_t slot) {
    if (slot >= items_.size() || !items_[slot]) return;
    items_[slot].reset();
    free_.push_back(slot);
    --live_;
  }
  uint32_t slots() const { return uint32_t(items_.size()); }
  size_t live() const { return live_; }
  bool empty() const { return live_ == 0; }

 private:
  std::vector<std::unique_ptr<T>> items_;
  std::vector<uint32_t> free_;
  uint32_t generation_ = 0;
  size_t live_ = 0;
};

class Reactor {
 public:
  Reactor() = default;
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // On the loop thread (a single-issuer ring belongs to the thread that
  // creates it). cq_entries 0: the kernel's default. False with *error.
  bool open(unsigned entries, unsigned cq_entries, std::string* error);
  // Releases the ring (idempotent); the mailbox lives on with the object.
  void close();
  bool is_open() const { return open_; }

  io_uring* ring() { return &ring_; }
  // A free SQE, submitting what is queued when the ring is full.
  io_uring_sqe* sqe() { return next_sqe(&ring_); }
  RingMailbox& mailbox() { return mailbox_; }

  // The mailbox's eventfd read, completed with `user_data`: call again
  // after each wake-up, then mailbox().drain().
  void arm_wake(uint64_t user_data) { mailbox_.arm_read(&ring_, user_data); }
  // One timeout of `interval`, completed with `user_data`: call again at
  // each tick.
  void arm_tick(uint64_t user_data, std::chrono::milliseconds interval);

  // Submits what is queued, waits for at least one completion and calls
  // handle(user_data, res, flags) for every completion there is. False on
  // a ring error (logged), after which the loop should end.
  template <typename Handle>
  bool run_once(Handle&& handle) {
    if (!submit_and_wait()) return false;
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      handle(cqe->user_data, cqe->res, cqe->flags);
    }
    io_uring_cq_advance(&ring_, seen);
    return true;
  }

 private:
  bool submit_and_wait();

  io_uring ring_{};
  bool open_ = false;
  __kernel_timespec tick_ts_{};
  RingMailbox mailbox_;
};

}  // namespace ringmail::runtime
