// runtime/clock.h — the time, injected: the one place that reads clocks.
//
// Owns: nothing. Decision code (the delivery planner, policy/) never reads a
// clock itself: it is handed a Clock, so that tests drive time with
// FakeClock. Steady time orders events and arms deadlines; wall time stamps
// logs, spool records and retry times (which survive a restart).
// Threads: SystemClock is safe from any thread; a FakeClock belongs to its test.
#pragma once

#include <chrono>
#include <cstdint>

namespace ringmail::runtime {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

// Wall time to and from Unix milliseconds, the unit of spool records and
// logs: the conversion at the edge of a record, not a time type to pass on.
inline int64_t to_unix_ms(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}
inline WallTime from_unix_ms(int64_t ms) { return WallTime(Millis(ms)); }

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steady() const = 0;
  virtual WallTime wall() const = 0;

  // Wall time as Unix milliseconds, the unit of spool records and logs.
  int64_t unix_ms() const { return to_unix_ms(wall()); }
};

class SystemClock final : public Clock {
 public:
  SteadyTime steady() const override { return std::chrono::steady_clock::now(); }
  WallTime wall() const override { return std::chrono::system_clock::now(); }
};

// The process's clock (a SystemClock).
const Clock& system_clock();

// A clock that moves only when told to; steady and wall move together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t unix_ms = 1767225600000)
      : wall_(WallTime(Millis(unix_ms))), steady_(SteadyTime(Millis(1000000))) {}
  SteadyTime steady() const override { return steady_; }
  WallTime wall() const override { return wall_; }
  void advance(Millis by) {
    wall_ += by;
    steady_ += by;
  }

 private:
  WallTime wall_;
  SteadyTime steady_;
};

}  // namespace ringmail::runtime
