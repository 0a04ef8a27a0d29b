// mta/inbound/auth_throttle.h — admission of SMTP AUTH attempts per client: a token
// bucket per client key, so that the guess rate of one address stays bounded
// however many connections it opens at once.
//
// Owns: one bucket per key (the caller decides the key; AuthService folds
// IPv6 to its /64). A bucket holds `burst` tokens and regains one every
// `refill_interval`. Every attempt takes a token before it is verified. An
// empty bucket goes into debt instead of refusing: the attempt is told when
// it may go, so parallel attempts are spaced one refill interval apart.
// When that wait would exceed `max_wait`, the attempt is refused (no token
// taken). A successful verification gives its token back, so a legitimate
// client that logs in often never runs dry.
//
// Threads: not thread-safe; AuthService calls it under its mutex. Pure: no
// clock and no I/O (callers pass now), like queue/scheduler.
//
// SECURITY: keys come from the network (peer addresses). Memory is bounded
// by max_tracked; when full, buckets that are full again go first (they are
// equivalent to no entry), then the one closest to full, so that eviction
// forgives the fewest tokens.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace ringmail::mta {

struct AuthThrottleOptions {
  int burst = 10;
  std::chrono::steady_clock::duration refill_interval = std::chrono::seconds(1);
  std::chrono::steady_clock::duration max_wait = std::chrono::seconds(30);
  size_t max_tracked = 100000;
};

struct AuthAdmission {
  enum class Decision { go, wait, refuse };
  Decision decision = Decision::refuse;
  // For wait: how long from now the attempt must wait before it is verified.
  std::chrono::steady_clock::duration delay{0};
};

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  explicit AuthThrottle(AuthThrottleOptions options = {}) : options_(options) {}

  // Takes a token (now or by reservation) or refuses.
  AuthAdmission admit(const std::string& key, Clock::time_point now);
  // A verification that succeeded: the key gets its token back.
  void refund(const std::string& key, Clock::time_point now);

  size_t tracked() const { return full_at_.size(); }

 private:
  // A bucket is one time point: when it is full again. Before that it holds
  // burst - (full_at - now) / refill_interval tokens (negative: in debt).
  void make_room(Clock::time_point now);

  AuthThrottleOptions options_;
  std::unordered_map<std::string, Clock::time_point> full_at_;
};

}  // namespace ringmail::mta
