#include "runtime/event_hub.h"

#include <algorithm>

namespace ringmail::runtime {

std::string_view record_type(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"type\":\"";
  if (!line.starts_with(kPrefix)) return {};
  line.remove_prefix(kPrefix.size());
  const size_t end = line.find('"');
  return end == std::string_view::npos ? std::string_view{} : line.substr(0, end);
}

Subscription::Next Subscription::next(std::string* record, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !records_.empty() || dropped_ || closed_; });
  if (dropped_ || (closed_ && records_.empty())) return Next::closed;
  if (records_.empty()) return Next::timeout;
  *record = std::move(records_.front());
  records_.pop_front();
  bytes_ -= record->size();
  return Next::record;
}

bool Subscription::dropped() const {
  std::lock_guard lock(mutex_);
  return dropped_;
}

std::shared_ptr<Subscription> EventHub::subscribe(std::vector<std::string> types,
                                                  size_t max_bytes) {
  auto s = std::make_shared<Subscription>();
  s->types_ = std::move(types);
  s->max_bytes_ = max_bytes;
  std::lock_guard lock(mutex_);
  subscriptions_.push_back(s);
  count_.store(subscriptions_.size(), std::memory_order_relaxed);
  return s;
}

void EventHub::unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  std::lock_guard lock(mutex_);
  std::erase(subscriptions_, subscription);
  count_.store(subscriptions_.size(), std::memory_order_relaxed);
}

void EventHub::publish(std::string_view lines) {
  if (count_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard lock(mutex_);
  while (!lines.empty()) {
    size_t end = lines.find('\n');
    std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
    if (line.empty()) continue;
    const std::string_view type = record_type(line);
    for (const auto& s : subscriptions_) {
      if (!s->types_.empty() &&
          std::find(s->types_.begin(), s->types_.end(), type) == s->types_.end())
        continue;
      std::lock_guard sub_lock(s->mutex_);
      if (s->dropped_ || s->closed_) continue;
      if (s->bytes_ + line.size() > s->max_bytes_) {
        // Too slow: drop it rather than wait or grow without bound.
        s->dropped_ = true;
        s->records_.clear();
        s->bytes_ = 0;
      } else {
        s->records_.emplace_back(line);
        s->bytes_ += line.size();
      }
      s->ready_.notify_one();
    }
  }
}

void EventHub::close() {
  std::lock_guard lock(mutex_);
  for (const auto& s : subscriptions_) {
    std::lock_guard sub_lock(s->mutex_);
    s->closed_ = true;
    s->ready_.notify_all();
  }
  subscriptions_.clear();
  count_.store(0, std::memory_order_relaxed);
}

}  // namespace ringmail::runtime
