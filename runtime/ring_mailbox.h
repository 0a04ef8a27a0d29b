// runtime/ring_mailbox.h — how other threads hand work to an io_uring loop
// thread (an inbound shard, the delivery engine), and the loop's SQE supply.
//
// Owns: an eventfd and a queue of closures. post() may be called from any
// thread: it queues the closure and, when the queue was empty, writes the
// eventfd, whose read the loop keeps armed on its ring (arm_read()). The
// loop's thread calls drain() on that completion to run everything queued,
// in order. Posting after the loop ended is harmless: the closures are
// destroyed with the mailbox, never run.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace ringmail::runtime {

class RingMailbox {
 public:
  RingMailbox() = default;
  ~RingMailbox();
  RingMailbox(const RingMailbox&) = delete;
  RingMailbox& operator=(const RingMailbox&) = delete;

  // Creates the eventfd; false with *error (one line) on failure.
  bool open(std::string* error);
  // Any thread.
  void post(std::function<void()> fn);
  // Loop thread: queues a read of the eventfd tagged with user_data.
  void arm_read(io_uring* ring, uint64_t user_data);
  // Loop thread: runs what was posted (after the read completed).
  void drain();

 private:
  int fd_ = -1;
  uint64_t value_ = 0;  // the armed read's target
  std::mutex mutex_;
  std::vector<std::function<void()>> queue_;
};

// A free SQE, submitting what is queued when the ring is full.
io_uring_sqe* next_sqe(io_uring* ring);

}  // namespace ringmail::runtime
