// queue/spool_memory.h — an in-memory Spool for tests.
//
// Owns: copies of the messages stored into it, in a map guarded by a mutex;
// any thread may call it. Not durable: everything is gone with the object.
// It mirrors the LMDB spool's observable behaviour (all-or-nothing batches,
// duplicate ids refused, capacity -> spool_full) so that code written
// against Spool can be tested without a disk, and it can be told to fail the
// next stores to exercise 452/451 paths.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <string>

#include "queue/spool.h"

namespace ringmail::queue {

class MemorySpool final : public Spool {
 public:
  // capacity_bytes bounds the sum of content sizes, like the LMDB map size.
  explicit MemorySpool(uint64_t capacity_bytes = std::numeric_limits<uint64_t>::max(),
                       SpoolOptions options = {});

  StoreOutcome store_batch(std::span<SpoolMessage* const> messages) override;
  std::optional<SpoolMessage> load_message(const MessageId& id, bool with_content) const override;
  void for_each_recipient(const RecipientVisitor& visit) const override;
  RecoverySummary recover() override;
  SpoolStats stats() const override;
  // The capacity is the map; there is no filesystem and no free list.
  SpoolSpace space(CountFreePages count) const override;
  StoreOutcome update_recipients(std::span<const RecipientUpdate> updates) override;
  StoreOutcome commit(std::span<SpoolMessage* const> messages,
                      std::span<const RecipientUpdate> updates, std::span<const MessageId> finished,
                      std::span<const ControlWrite> controls = {},
                      std::span<const StatsAddition> additions = {}) override;
  StoreOutcome put_control(const std::string& key,
                           const std::optional<std::string>& value) override;
  StoreOutcome put_controls(std::span<const ControlWrite> writes) override;
  void for_each_control(const std::string& prefix, const ControlVisitor& visit) const override;
  std::vector<std::pair<std::string, std::string>> controls(
      const std::string& prefix) const override;
  std::optional<std::string> control(const std::string& key) const override;
  // The records only: the memory spool folds every commit (no journal).
  StatsDeltas delivery_stats(const std::string& prefix) const override;
  void set_retention(const RetentionPolicy& policy) override;
  StoreOutcome drop_dead_letter(const MessageId& id, bool* found) override;

  // The next store_batch() calls (and commit() calls without new messages)
  // return these outcomes (in order) without storing anything.
  void fail_next_stores(StoreStatus status, int count = 1);
  // Number of store_batch() calls so far, failed ones included.
  uint64_t store_calls() const;

 private:
  StoreOutcome store_locked(std::span<SpoolMessage* const> messages);
  StoreOutcome injected_failure_locked();

  mutable std::mutex mutex_;
  uint64_t capacity_;
  SpoolOptions options_;  // retention guarded by mutex_
  uint64_t used_ = 0;
  uint64_t store_calls_ = 0;
  std::deque<StoreStatus> injected_failures_;
  std::map<std::string, SpoolMessage> messages_;
  std::map<std::string, std::string> controls_;
};

}  // namespace ringmail::queue
