// runtime/event_hub.h — a broadcast of text records (delivery-log lines) to
// live subscribers (the admin API's Server-Sent Events stream).
//
// Owns: the subscriptions and a bounded buffer in each. publish() never
// waits for a subscriber: a subscriber whose buffer is full is dropped (its
// stream ends), so a slow consumer cannot slow the writer. With nobody
// subscribed, publish() is one relaxed atomic load.
//
// Threads: any thread publishes; each subscription is read by one thread.
// Records are delivered in publish order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::runtime {

class EventHub;

class Subscription {
 public:
  enum class Next { record, timeout, closed };
  // Waits up to `timeout` for the next record. closed: dropped for falling
  // behind, or the hub closed.
  Next next(std::string* record, std::chrono::milliseconds timeout);
  bool dropped() const;

 private:
  friend class EventHub;
  std::vector<std::string> types_;  // empty: every type
  size_t max_bytes_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> records_;
  size_t bytes_ = 0;
  bool dropped_ = false;
  bool closed_ = false;
};

class EventHub {
 public:
  ~EventHub() { close(); }
  // A new subscription to records whose "type" is one of `types` (all when
  // empty), buffering at most max_bytes before it is dropped.
  std::shared_ptr<Subscription> subscribe(std::vector<std::string> types, size_t max_bytes);
  void unsubscribe(const std::shared_ptr<Subscription>& subscription);
  // One or more records, one per line ("\n"-terminated JSON objects).
  void publish(std::string_view lines);
  // Ends every subscription (shutdown).
  void close();
  size_t subscribers() const { return count_.load(std::memory_order_relaxed); }

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Subscription>> subscriptions_;
  std::atomic<size_t> count_{0};
};

// The value of a JSON-lines record's leading "type" field ("" if the line
// does not start with {"type":"...").
std::string_view record_type(std::string_view line);

}  // namespace ringmail::runtime
