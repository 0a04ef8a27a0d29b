// tests/mta/inbound/auth_throttle_test.cc — the AUTH admission bucket on a fake
// clock: scripts of attempts (admit) and successes (refund) at given times,
// and what each attempt is told (go, wait how long, refuse).
#include "mta/inbound/auth_throttle.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Decision = AuthAdmission::Decision;

enum class Action { admit, refund };

struct Step {
  int64_t at_ms;  // on the fake clock
  const char* key;
  Action action = Action::admit;
  Decision expected = Decision::go;
  int64_t delay_ms = 0;  // expected wait, for Decision::wait
  int repeat = 1;        // the same step this many times
};

struct Case {
  const char* name;
  AuthThrottleOptions options;
  std::vector<Step> steps;
  size_t tracked_after = SIZE_MAX;  // SIZE_MAX: not checked
};

constexpr auto go = Decision::go;
constexpr auto wait = Decision::wait;
constexpr auto refuse = Decision::refuse;
constexpr auto refund = Action::refund;

AuthThrottleOptions small_table(size_t max_tracked) {
  AuthThrottleOptions options;
  options.max_tracked = max_tracked;
  return options;
}

const Case kCases[] = {
    {"burst of ten then one a second",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {2000, "192.0.2.1", Action::admit, go},  // the reserved token came due at 1 s
      {2000, "192.0.2.1", Action::admit, wait, 1000},
      {3500, "192.0.2.1", Action::admit, wait, 500}}},
    {"parallel attempts are spaced one second apart",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {0, "192.0.2.1", Action::admit, wait, 2000},
      {0, "192.0.2.1", Action::admit, wait, 3000},
      {100, "192.0.2.1", Action::admit, wait, 3900},
      {100, "192.0.2.1", Action::admit, wait, 4900}}},
    {"a wait beyond 30 s is refused and takes no token",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {0, "192.0.2.1", Action::admit, wait, 2000},
      // ... up to a wait of exactly 30 s
      {0, "192.0.2.1", Action::admit, wait, 3000},
      {0, "192.0.2.1", Action::admit, wait, 4000},
      {0, "192.0.2.1", Action::admit, wait, 5000},
      {0, "192.0.2.1", Action::admit, wait, 6000},
      {0, "192.0.2.1", Action::admit, wait, 7000},
      {0, "192.0.2.1", Action::admit, wait, 8000},
      {0, "192.0.2.1", Action::admit, wait, 9000},
      {0, "192.0.2.1", Action::admit, wait, 10000},
      {0, "192.0.2.1", Action::admit, wait, 11000},
      {0, "192.0.2.1", Action::admit, wait, 12000},
      {0, "192.0.2.1", Action::admit, wait, 13000},
      {0, "192.0.2.1", Action::admit, wait, 14000},
      {0, "192.0.2.1", Action::admit, wait, 15000},
      {0, "192.0.2.1", Action::admit, wait, 16000},
      {0, "192.0.2.1", Action::admit, wait, 17000},
      {0, "192.0.2.1", Action::admit, wait, 18000},
      {0, "192.0.2.1", Action::admit, wait, 19000},
      {0, "192.0.2.1", Action::admit, wait, 20000},
      {0, "192.0.2.1", Action::admit, wait, 21000},
      {0, "192.0.2.1", Action::admit, wait, 22000},
      {0, "192.0.2.1", Action::admit, wait, 23000},
      {0, "192.0.2.1", Action::admit, wait, 24000},
      {0, "192.0.2.1", Action::admit, wait, 25000},
      {0, "192.0.2.1", Action::admit, wait, 26000},
      {0, "192.0.2.1", Action::admit, wait, 27000},
      {0, "192.0.2.1", Action::admit, wait, 28000},
      {0, "192.0.2.1", Action::admit, wait, 29000},
      {0, "192.0.2.1", Action::admit, wait, 30000},
      {0, "192.0.2.1", Action::admit, refuse, 0, 5},
      // Refusals took nothing: a second later the next wait is 30 s again.
      {1000, "192.0.2.1", Action::admit, wait, 30000},
      {1000, "192.0.2.1", Action::admit, refuse}}},
    {"a success gives its token back",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 9},
      {0, "192.0.2.1", refund},
      {0, "192.0.2.1", Action::admit, go, 0, 2},  // the refunded token, then the tenth
      {0, "192.0.2.1", Action::admit, wait, 1000}}},
    {"an application that logs in often never runs dry",
     {},
     {{0, "192.0.2.1", Action::admit, go},
      {0, "192.0.2.1", refund},
      {10, "192.0.2.1", Action::admit, go},
      {10, "192.0.2.1", refund},
      {20, "192.0.2.1", Action::admit, go},
      {20, "192.0.2.1", refund},
      {30, "192.0.2.1", Action::admit, go, 0, 8},  // eight failures
      {30, "192.0.2.1", Action::admit, go},
      {30, "192.0.2.1", refund},
      {40, "192.0.2.1", Action::admit, go},
      {40, "192.0.2.1", refund},
      {50, "192.0.2.1", Action::admit, go, 0, 2}},
     1},
    {"a refund cannot fill a bucket beyond its burst",
     {},
     {{0, "192.0.2.1", refund, go, 0, 5},
      {0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000}}},
    {"quiet refills the bucket",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {0, "192.0.2.1", Action::admit, wait, 2000},
      {0, "192.0.2.1", Action::admit, wait, 3000},
      {0, "192.0.2.1", Action::admit, wait, 4000},
      {0, "192.0.2.1", Action::admit, wait, 5000},
      {15000, "192.0.2.1", Action::admit, go, 0, 10},  // 15 s: full again
      {15000, "192.0.2.1", Action::admit, wait, 1000},
      {18000, "192.0.2.1", Action::admit, go, 0, 2}}},
    {"keys are separate buckets",
     {},
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {0, "192.0.2.2", Action::admit, go, 0, 10},
      {0, "192.0.2.2", Action::admit, wait, 1000},
      {0, "2001:db8:1:2::/64", Action::admit, go},
      {0, "192.0.2.1", Action::admit, wait, 2000}},
     3},
    {"full table: buckets full again go first",
     small_table(2),
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.2", Action::admit, go},  // full again at 1 s
      {2000, "192.0.2.3", Action::admit, go},
      // 192.0.2.1 (full again at 10 s) was kept: still in use.
      {2000, "192.0.2.1", Action::admit, go, 0, 2},
      {2000, "192.0.2.1", Action::admit, wait, 1000}},
     2},
    {"full table in use: the bucket closest to full goes",
     small_table(2),
     {{0, "192.0.2.1", Action::admit, go, 0, 10},
      {0, "192.0.2.2", Action::admit, go, 0, 5},
      {0, "192.0.2.3", Action::admit, go},  // 192.0.2.2 forgotten
      {0, "192.0.2.1", Action::admit, wait, 1000},
      {0, "192.0.2.2", Action::admit, go, 0, 10}},
     2},
    {"burst and refill are options",
     [] {
       AuthThrottleOptions options;
       options.burst = 2;
       options.refill_interval = 5s;
       options.max_wait = 10s;
       return options;
     }(),
     {{0, "192.0.2.1", Action::admit, go, 0, 2},
      {0, "192.0.2.1", Action::admit, wait, 5000},
      {0, "192.0.2.1", Action::admit, wait, 10000},
      {0, "192.0.2.1", Action::admit, refuse}}},
};

std::string name_of(Decision decision) {
  switch (decision) {
    case Decision::go:
      return "go";
    case Decision::wait:
      return "wait";
    case Decision::refuse:
      return "refuse";
  }
  return "?";
}

TEST(AuthThrottleTest, Scripts) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    AuthThrottle throttle(c.options);
    int step_number = 0;
    for (const Step& step : c.steps) {
      ++step_number;
      Clock::time_point now{std::chrono::milliseconds(step.at_ms)};
      for (int i = 0; i < step.repeat; ++i) {
        if (step.action == Action::refund) {
          throttle.refund(step.key, now);
          continue;
        }
        AuthAdmission got = throttle.admit(step.key, now);
        EXPECT_EQ(name_of(got.decision), name_of(step.expected))
            << "step " << step_number << " #" << i + 1 << " key " << step.key;
        int64_t delay_ms = std::chrono::duration_cast<std::chrono::milliseconds>(got.delay).count();
        EXPECT_EQ(delay_ms, step.expected == Decision::wait ? step.delay_ms : 0)
            << "step " << step_number << " #" << i + 1 << " key " << step.key;
      }
    }
    if (c.tracked_after != SIZE_MAX) {
      EXPECT_EQ(throttle.tracked(), c.tracked_after);
    }
  }
}

// A whole attack: many connections from one address retrying at once for a
// minute get at most burst + one attempt a second, whatever their number.
TEST(AuthThrottleTest, GuessRateIsBoundedWhateverTheNumberOfConnections) {
  for (int connections : {1, 5, 50, 500}) {
    SCOPED_TRACE(connections);
    AuthThrottle throttle;
    // Each connection: when its next attempt may be verified.
    std::vector<Clock::time_point> next(connections, Clock::time_point{});
    int verified = 0;
    const Clock::time_point end{std::chrono::seconds(60)};
    for (Clock::time_point now{}; now < end; now += 10ms) {
      for (Clock::time_point& at : next) {
        if (at > now) continue;
        AuthAdmission a = throttle.admit("192.0.2.66", now);
        switch (a.decision) {
          case Decision::go:
            ++verified;
            at = now + 10ms;  // the failure reply, then the next guess
            break;
          case Decision::wait:
            ++verified;  // counted now: it will be verified at now + delay
            at = now + a.delay + 10ms;
            break;
          case Decision::refuse:
            at = now + 10ms;  // answered 454 at once; tries again
            break;
        }
      }
    }
    // Reservations may reach 30 s past the end; the rate over the minute
    // plus that horizon stays one a second after the burst.
    EXPECT_LE(verified, 10 + 60 + 30 + 1);
    EXPECT_GE(verified, 10 + 59);
  }
}

}  // namespace
}  // namespace ringmail::mta
