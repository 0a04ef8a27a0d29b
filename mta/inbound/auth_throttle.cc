// mta/inbound/auth_throttle.cc — see auth_throttle.h.
#include "mta/inbound/auth_throttle.h"

#include <algorithm>

namespace ringmail::mta {

AuthAdmission AuthThrottle::admit(const std::string& key, Clock::time_point now) {
  const Clock::duration interval = options_.refill_interval;
  auto it = full_at_.find(key);
  // A bucket full again (or never seen) counts from now.
  Clock::time_point full_at = it == full_at_.end() ? now : std::max(it->second, now);
  // The token is there once the bucket has refilled to one token.
  Clock::time_point go_at = std::max(now, full_at - (options_.burst - 1) * interval);
  if (go_at - now > options_.max_wait) return {AuthAdmission::Decision::refuse, {}};
  if (it == full_at_.end()) {
    make_room(now);
    it = full_at_.emplace(key, full_at).first;
  }
  it->second = full_at + interval;
  if (go_at == now) return {AuthAdmission::Decision::go, {}};
  return {AuthAdmission::Decision::wait, go_at - now};
}

void AuthThrottle::refund(const std::string& key, Clock::time_point now) {
  auto it = full_at_.find(key);
  if (it == full_at_.end()) return;
  it->second -= options_.refill_interval;
  if (it->second <= now) full_at_.erase(it);  // full: the same as no entry
}

void AuthThrottle::make_room(Clock::time_point now) {
  if (full_at_.size() < options_.max_tracked || full_at_.empty()) return;
  std::erase_if(full_at_, [&](const auto& entry) { return entry.second <= now; });
  if (full_at_.size() < options_.max_tracked) return;
  // Full of buckets in use (an attack from many addresses): the one closest
  // to full goes. Linear, only then.
  auto closest = std::min_element(full_at_.begin(), full_at_.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
  full_at_.erase(closest);
}

}  // namespace ringmail::mta
