// policy/token_bucket.h — a token bucket: `count` events per `per`, with a
// burst, as the generic cell rate algorithm (GCRA, ITU-T I.371).
//
// Owns: one bucket's state, a single time point (the theoretical arrival
// time of the next event), so a million buckets cost a million 8-byte
// fields and every operation is O(1) integer arithmetic: no drift, no
// floating-point remainder, and next_token() says exactly when a token is
// due, so a caller can sleep until then instead of polling.
// A fresh bucket is full (`burst` events may go at once). The refill rate
// may be scaled by a factor in (0, 1] (a backoff rule's rate cut).
// Pure: times are passed in; not thread-safe (one owner).
#pragma once

#include <chrono>
#include <cstdint>

#include "runtime/clock.h"

namespace ringmail::policy {

class TokenBucket {
 public:
  using Nanos = std::chrono::nanoseconds;

  // Unlimited: every take succeeds.
  TokenBucket() = default;
  // `count` tokens per `per`, at most `burst` (>= 1) at once. count == 0
  // or per <= 0 makes an unlimited bucket.
  TokenBucket(uint64_t count, Nanos per, uint64_t burst);

  bool limited() const { return interval_.count() > 0; }

  // Takes a token if one is there at `now`.
  bool try_take(runtime::SteadyTime now);
  // Takes `n` tokens whether or not they are there (the bucket goes into
  // debt: an event that happened anyway, e.g. a connection already opened,
  // or the other recipients of a job that found one token).
  void take(runtime::SteadyTime now, uint64_t n = 1);
  // When the next token is there: `now` when one is, else the exact time.
  runtime::SteadyTime next_token(runtime::SteadyTime now) const;
  // Whole tokens available at `now` (at most burst).
  uint64_t available(runtime::SteadyTime now) const;

  // From `now` on, refill at factor × the configured rate (0 < factor <= 1;
  // other values are clamped to that range, 1 restores the configured
  // rate). The tokens there at `now` stay there.
  void set_factor(double factor, runtime::SteadyTime now);
  double factor() const { return factor_; }

  // The interval between tokens at the current factor.
  Nanos interval() const { return interval_; }
  uint64_t burst() const { return burst_; }

 private:
  Nanos base_interval_{0};  // per / count
  Nanos interval_{0};       // base_interval_ / factor_
  uint64_t burst_ = 1;
  double factor_ = 1.0;
  // The theoretical arrival time: a token is there at t when
  // t >= tat_ - (burst_ - 1) * interval_. Epoch (zero) = full.
  runtime::SteadyTime tat_{};
};

}  // namespace ringmail::policy
