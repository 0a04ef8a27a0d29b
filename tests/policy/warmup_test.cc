// tests/policy/warmup_test.cc — IP warm-up with an injected clock: caps per
// fixed UTC window and the exact time a held job may go, the day of the
// schedule (started, last step, backoff days, sending days, 30 idle days),
// hold against spill at a job's expiry, per-provider keys, reload and
// restore, and what the API shows.
#include "policy/warmup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "conf/config_policy.h"
#include "runtime/clock.h"

namespace ringmail::policy {
namespace {

using namespace std::chrono;
using runtime::FakeClock;
using runtime::Millis;
using runtime::WallTime;
using Kind = WarmupDecision::Kind;

// 2026-03-02 hh:mm:ss.ms UTC (and other days of March 2026 by offset).
WallTime march(int day, int hour = 0, int minute = 0, int second = 0, int ms = 0) {
  return WallTime(sys_days(2026y / March / day)) + hours(hour) + minutes(minute) + seconds(second) +
         milliseconds(ms);
}

int64_t unix_ms_of(WallTime t) { return duration_cast<Millis>(t.time_since_epoch()).count(); }

conf::Rate rate(const char* text) { return *conf::parse_rate(text); }

conf::WarmupPlan plan(std::vector<std::optional<conf::Rate>> schedule) {
  conf::WarmupPlan p;
  p.source = "ip1";
  p.schedule = std::move(schedule);
  return p;
}

const std::optional<conf::Rate> kUnlimited = std::nullopt;
const std::vector<std::string_view> kGmailHosts = {"gmail-smtp-in.l.google.com",
                                                   "alt1.gmail-smtp-in.l.google.com"};
const std::vector<std::string_view> kYahooHosts = {"mta5.am0.yahoodns.net"};
const std::vector<std::string_view> kOtherHosts = {"mx.example.test"};

TEST(Warmup, FiveAMinuteAdmitsFiveThenWaitsForTheNextMinuteExactly) {
  FakeClock clock(unix_ms_of(march(2, 10, 0, 20)));
  conf::WarmupPlan p = plan({rate("5/m"), rate("100/h")});
  p.overflow = conf::WarmupOverflow::hold;
  Warmup warmup(p);
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(warmup.may_send(clock.wall()));
    EXPECT_EQ(warmup.room(clock.wall()), uint64_t(5 - i));
    EXPECT_EQ(warmup.next_window(clock.wall()), clock.wall());
    warmup.record_sent(clock.wall(), 1);
    clock.advance(Millis(3000));
  }
  // The sixth, at 10:00:35, waits until 10:01:00.000 and not a millisecond less.
  EXPECT_FALSE(warmup.may_send(clock.wall()));
  EXPECT_EQ(warmup.room(clock.wall()), uint64_t{0});
  EXPECT_EQ(warmup.sent_in_window(clock.wall()), 5u);
  EXPECT_EQ(warmup.next_window(clock.wall()), march(2, 10, 1));
  EXPECT_EQ(warmup.decide(clock.wall(), clock.wall(), hours(24)),
            (WarmupDecision{Kind::hold, march(2, 10, 1)}));
  EXPECT_FALSE(warmup.may_send(march(2, 10, 0, 59, 999)));
  EXPECT_TRUE(warmup.may_send(march(2, 10, 1)));
  EXPECT_EQ(warmup.sent_in_window(march(2, 10, 1)), 0u);
  EXPECT_EQ(warmup.room(march(2, 10, 1)), uint64_t{5});
  // Still day 1: the step is the first one all day.
  EXPECT_EQ(warmup.day(march(2, 23, 59, 59)), 1u);
  EXPECT_EQ(warmup.cap(march(2, 23, 59, 59)), uint64_t{5});
}

TEST(Warmup, AJobOverdrawsAtMostItsOwnSizeAndNothingCarriesOver) {
  Warmup warmup(plan({rate("5/m")}));
  warmup.record_sent(march(2, 10, 0, 1), 4);
  EXPECT_TRUE(warmup.may_send(march(2, 10, 0, 2)));  // room for one: a job goes
  warmup.record_sent(march(2, 10, 0, 2), 3);         // a job of three recipients
  EXPECT_EQ(warmup.sent_in_window(march(2, 10, 0, 3)), 7u);
  EXPECT_EQ(warmup.room(march(2, 10, 0, 3)), uint64_t{0});
  EXPECT_EQ(warmup.room(march(2, 10, 1)), uint64_t{5});
}

struct DayCase {
  const char* name;
  std::optional<int> started_march_day;  // none: first use
  std::vector<std::optional<conf::Rate>> schedule;
  WallTime now;
  uint32_t day;
  std::optional<uint64_t> cap;
  bool warm;
};

TEST(Warmup, DayAndStepFromStarted) {
  const std::vector<DayCase> cases = {
      {"started today is day 1", 2, {rate("50/h"), rate("100/h")}, march(2, 12), 1, 50, false},
      {"started yesterday gives step 2",
       1,
       {rate("50/h"), rate("100/h")},
       march(2, 0),
       2,
       100,
       false},
      {"the step changes at 00:00 UTC",
       1,
       {rate("50/h"), rate("100/h")},
       march(1, 23, 59, 59, 999),
       1,
       50,
       false},
      {"the last step repeats", 1, {rate("50/h"), rate("100/h")}, march(20), 20, 100, false},
      {"a started ahead: day 1 until then",
       10,
       {rate("50/h"), rate("100/h")},
       march(2),
       1,
       50,
       false},
      {"never used: day 1", std::nullopt, {rate("50/h"), rate("100/h")}, march(20), 1, 50, false},
      {"unlimited last step reached: warm",
       1,
       {rate("50/h"), kUnlimited},
       march(2),
       2,
       std::nullopt,
       true},
      {"unlimited last step, long after: warm",
       1,
       {rate("50/h"), kUnlimited},
       march(31),
       31,
       std::nullopt,
       true},
      {"unlimited before the last step: warming",
       1,
       {kUnlimited, rate("50/h")},
       march(1),
       1,
       std::nullopt,
       false},
      {"a schedule ending on a rate never gets warm", 1, {rate("50/h")}, march(31), 31, 50, false},
  };
  for (const DayCase& c : cases) {
    SCOPED_TRACE(c.name);
    conf::WarmupPlan p = plan(c.schedule);
    if (c.started_march_day) p.started = sys_days(2026y / March / *c.started_march_day);
    const Warmup warmup(p);
    EXPECT_EQ(warmup.day(c.now), c.day);
    EXPECT_EQ(warmup.cap(c.now), c.cap);
    EXPECT_EQ(warmup.warm(c.now), c.warm);
    EXPECT_EQ(warmup.status("", c.now).warm, c.warm);
  }
}

TEST(Warmup, UnlimitedStepCountsNothingAndNeverWaits) {
  Warmup warmup(plan({kUnlimited}));
  warmup.record_sent(march(2, 10), 1'000'000);
  EXPECT_TRUE(warmup.may_send(march(2, 10)));
  EXPECT_EQ(warmup.room(march(2, 10)), std::nullopt);
  EXPECT_EQ(warmup.next_window(march(2, 10)), march(2, 10));
  EXPECT_EQ(warmup.sent_in_window(march(2, 10)), 0u);
  EXPECT_EQ(warmup.state().window_ms, 0);
  EXPECT_EQ(warmup.decide(march(2, 10), march(2, 10), hours(1)).kind, Kind::send);
}

// What happens on one UTC day of March 2026: sends, a backoff rule firing.
struct DayEvent {
  int march_day;
  bool sent;
  bool backoff;
};

struct AdvanceCase {
  const char* name;
  conf::WarmupAdvance advance;
  std::vector<DayEvent> events;
  int asked_march_day;
  uint32_t day;
};

TEST(Warmup, WhichDaysAdvanceTheSchedule) {
  using enum conf::WarmupAdvance;
  const std::vector<AdvanceCase> cases = {
      {"calendar: every day counts", calendar, {{2, true, false}}, 6, 5},
      {"calendar: today is not counted yet", calendar, {{2, true, false}, {3, true, false}}, 3, 2},
      {"calendar: a backoff day does not advance",
       calendar,
       {{2, true, false}, {3, true, true}},
       4,
       2},
      {"calendar: a backoff day without sends does not advance either",
       calendar,
       {{2, true, false}, {3, false, true}},
       5,
       3},
      {"calendar: a backoff on day 1 holds day 1", calendar, {{2, true, true}}, 3, 1},
      {"calendar: two backoff days", calendar, {{2, true, true}, {4, true, true}}, 6, 3},
      {"sending_day: idle days do not count",
       sending_day,
       {{2, true, false}, {8, true, false}},
       9,
       3},
      {"sending_day: only days it sent", sending_day, {{2, true, false}}, 7, 2},
      {"sending_day: a backoff day it sent on does not count",
       sending_day,
       {{2, true, false}, {3, true, true}, {5, true, false}},
       6,
       3},
      {"sending_day: today counts tomorrow",
       sending_day,
       {{2, true, false}, {3, true, false}},
       3,
       2},
  };
  for (const AdvanceCase& c : cases) {
    SCOPED_TRACE(c.name);
    conf::WarmupPlan p =
        plan({rate("10/h"), rate("20/h"), rate("30/h"), rate("40/h"), rate("50/h"), rate("60/h")});
    p.advance = c.advance;
    Warmup warmup(p);
    for (const DayEvent& e : c.events) {
      if (e.sent) warmup.record_sent(march(e.march_day, 9), 1);
      if (e.backoff) warmup.backoff_fired(march(e.march_day, 10));
    }
    EXPECT_EQ(warmup.day(march(c.asked_march_day, 12)), c.day);
    EXPECT_EQ(warmup.cap(march(c.asked_march_day, 12)), uint64_t{10} * c.day);
  }
}

TEST(Warmup, ThirtyIdleDaysStartAgainAtDayOne) {
  for (auto advance : {conf::WarmupAdvance::calendar, conf::WarmupAdvance::sending_day}) {
    SCOPED_TRACE(advance == conf::WarmupAdvance::calendar ? "calendar" : "sending_day");
    conf::WarmupPlan p = plan({rate("10/h"), rate("20/h"), rate("30/h"), kUnlimited});
    p.advance = advance;
    Warmup warmup(p);
    for (int day = 1; day <= 5; ++day) warmup.record_sent(march(day, 12), 1);
    EXPECT_EQ(warmup.day(march(5, 12)), 5u);
    EXPECT_TRUE(warmup.warm(march(5, 12)));
    // Last sent on March 5: March 6 .. April 4 are 30 idle days; April 4 is
    // still the old schedule, April 5 (after 30 whole idle days) is day 1.
    const WallTime april4 = WallTime(sys_days(2026y / April / 4)) + hours(12);
    const WallTime april5 = WallTime(sys_days(2026y / April / 5)) + hours(12);
    EXPECT_EQ(warmup.day(april4),
              advance == conf::WarmupAdvance::calendar ? 5u + 30u : 6u);  // 5 sending days
    EXPECT_EQ(warmup.day(april5), 1u);
    EXPECT_FALSE(warmup.warm(april5));
    EXPECT_EQ(warmup.cap(april5), uint64_t{10});
    warmup.record_sent(april5, 1);
    EXPECT_EQ(warmup.status("", april5).started, "2026-04-05");
    EXPECT_EQ(warmup.day(april5 + hours(24)), 2u);
  }
}

TEST(Warmup, AStartedSourceThatNeverSentIsNotIdle) {
  conf::WarmupPlan p = plan({rate("10/h"), rate("20/h")});
  p.started = sys_days(2026y / January / 1);
  const Warmup warmup(p);
  EXPECT_EQ(warmup.day(march(2)), 61u);  // 31 + 28 + 2 - 1 days after January 1
}

TEST(Warmup, WindowsAreUtcAlignedAcrossADayBoundary) {
  conf::WarmupPlan p = plan({rate("3/h"), rate("2/d"), rate("50/h")});
  p.overflow = conf::WarmupOverflow::hold;
  Warmup warmup(p);
  // First use at 22:59:59.999: the 22:00 hour window.
  warmup.record_sent(march(2, 22, 59, 59, 999), 3);
  EXPECT_TRUE(warmup.may_send(march(2, 23)));  // a new hour, a new window
  warmup.record_sent(march(2, 23, 30), 3);
  EXPECT_FALSE(warmup.may_send(march(2, 23, 59, 59)));
  EXPECT_EQ(warmup.next_window(march(2, 23, 30, 1)), march(3));  // 00:00 UTC, day 2 begins
  // Day 2: 2/d counts in [00:00, 24:00) UTC.
  EXPECT_EQ(warmup.day(march(3)), 2u);
  EXPECT_EQ(warmup.sent_in_window(march(3)), 0u);
  EXPECT_EQ(warmup.status("", march(3)).window, "1d");
  warmup.record_sent(march(3, 0, 0, 1), 1);
  warmup.record_sent(march(3, 17), 1);
  EXPECT_FALSE(warmup.may_send(march(3, 23, 59)));
  EXPECT_EQ(warmup.next_window(march(3, 17, 0, 1)), march(4));
  EXPECT_EQ(warmup.decide(march(3, 17, 0, 1), march(3, 9), hours(24)),
            (WarmupDecision{Kind::hold, march(4)}));
  // Day 3: hourly windows again.
  EXPECT_EQ(warmup.cap(march(4)), uint64_t{50});
  EXPECT_EQ(warmup.status("", march(4, 0, 30)).window, "1h");
}

struct OverflowCase {
  const char* name;
  conf::WarmupOverflow overflow;
  uint64_t sent;  // before `now`, in the 10:00 window of a 5/m step
  WallTime received;
  Millis max_age;
  WarmupDecision expected;
};

TEST(Warmup, HoldOrSpillAtTheJobsExpiry) {
  using enum conf::WarmupOverflow;
  const WallTime now = march(2, 10, 0, 20);
  const WallTime next = march(2, 10, 1);
  const std::vector<OverflowCase> cases = {
      {"under the cap: send (spill)", spill, 4, now, hours(1), {Kind::send, {}}},
      {"under the cap: send (hold)", hold, 4, now - hours(5), minutes(1), {Kind::send, {}}},
      {"spill: over the cap goes elsewhere", spill, 5, now, hours(24), {Kind::spill, {}}},
      {"hold: waits for the next window", hold, 5, now, hours(24), {Kind::hold, next}},
      {"hold: expiry 1 ms after the window opens: still held",
       hold,
       5,
       next - minutes(10),
       minutes(10) + Millis(1),
       {Kind::hold, next}},
      {"hold: expiry exactly when the window opens: spills",
       hold,
       5,
       next - minutes(10),
       minutes(10),
       {Kind::spill, {}}},
      {"hold: would expire before the window: spills",
       hold,
       5,
       now - days(5),
       days(5) + seconds(1),
       {Kind::spill, {}}},
  };
  for (const OverflowCase& c : cases) {
    SCOPED_TRACE(c.name);
    conf::WarmupPlan p = plan({rate("5/m")});
    p.overflow = c.overflow;
    Warmup warmup(p);
    warmup.record_sent(march(2, 10, 0, 1), c.sent);
    EXPECT_EQ(warmup.decide(now, c.received, c.max_age), c.expected);
  }
  EXPECT_TRUE(holding_would_expire(next, next - hours(1), hours(1)));
  EXPECT_FALSE(holding_would_expire(next, next - hours(1), hours(1) + Millis(1)));
}

TEST(Warmup, StatusForTheApi) {
  conf::WarmupPlan p = plan({rate("50/h"), rate("1000/d"), kUnlimited});
  p.started = sys_days(2026y / March / 1);
  Warmup warmup(p);
  warmup.record_sent(march(1, 10, 5), 7);
  warmup.record_sent(march(1, 10, 59), 2);
  WarmupStatus expected;
  expected.source = "ip1";
  expected.started = "2026-03-01";
  expected.day = 1;
  expected.cap = 50;
  expected.window = "1h";
  expected.sent = 9;
  EXPECT_EQ(warmup.status("", march(1, 10, 59, 30)), expected);
  EXPECT_STREQ(warmup.status("", march(1, 10, 59, 30)).state_name(), "warming");

  expected.provider = "gmail";
  expected.day = 2;
  expected.cap = 1000;
  expected.window = "1d";
  expected.sent = 0;
  EXPECT_EQ(warmup.status("gmail", march(2, 8)), expected);

  const WarmupStatus warm = warmup.status("", march(3, 8));
  EXPECT_EQ(warm.day, 3u);
  EXPECT_EQ(warm.cap, std::nullopt);
  EXPECT_EQ(warm.window, std::nullopt);
  EXPECT_EQ(warm.sent, 0u);
  EXPECT_STREQ(warm.state_name(), "warm");

  // Never used, no started: day 1, no date yet.
  const Warmup fresh(plan({rate("5/m")}));
  EXPECT_EQ(fresh.status("", march(3)).started, std::nullopt);
  EXPECT_EQ(fresh.status("", march(3)).window, "1m");
}

TEST(Warmup, AStateReadBackKeepsDayAndCount) {
  conf::WarmupPlan p = plan({rate("5/m"), rate("10/m")});
  Warmup before(p);
  before.record_sent(march(2, 10, 0, 10), 4);
  before.record_sent(march(3, 10, 0, 10), 9);
  // A restart within the window: the count and the day stay.
  const Warmup after(p, before.state());
  EXPECT_EQ(after.day(march(3, 10, 0, 40)), 2u);
  EXPECT_EQ(after.sent_in_window(march(3, 10, 0, 40)), 9u);
  EXPECT_EQ(after.room(march(3, 10, 0, 40)), uint64_t{1});
}

TEST(WarmupTracker, ProvidersCountApartAndOtherSitesAreNotCapped) {
  conf::WarmupPlan per_provider = plan({rate("2/h")});
  per_provider.providers = {"gmail", "yahoo"};
  conf::WarmupPlan everywhere = plan({rate("2/h")});
  everywhere.source = "ip2";
  WarmupTracker tracker;
  tracker.set_plans({per_provider, everywhere});
  EXPECT_EQ(tracker.size(), 3u);

  const auto gmail = tracker.key_for("ip1", kGmailHosts);
  const auto yahoo = tracker.key_for("ip1", kYahooHosts);
  ASSERT_EQ(gmail, (WarmupKey{"ip1", "gmail"}));
  ASSERT_EQ(yahoo, (WarmupKey{"ip1", "yahoo"}));
  EXPECT_EQ(tracker.key_for("ip1", kOtherHosts), std::nullopt);  // not a named provider
  EXPECT_EQ(tracker.key_for("ip3", kGmailHosts), std::nullopt);  // no plan
  EXPECT_EQ(tracker.key_for("ip2", kGmailHosts), (WarmupKey{"ip2", ""}));
  EXPECT_EQ(tracker.key_for("ip2", kOtherHosts), (WarmupKey{"ip2", ""}));

  const WallTime now = march(2, 10);
  tracker.record_sent(*gmail, now, 2);
  EXPECT_EQ(tracker.decide(*gmail, now, now, hours(24)).kind, Kind::spill);
  EXPECT_EQ(tracker.decide(*yahoo, now, now, hours(24)).kind, Kind::send);
  tracker.record_sent(WarmupKey{"ip2", ""}, now, 1);
  tracker.record_sent(WarmupKey{"ip2", ""}, now, 1);  // a gmail site, then any other
  EXPECT_EQ(tracker.decide(WarmupKey{"ip2", ""}, now, now, hours(24)).kind, Kind::spill);
  // An unknown key is not capped and records nothing.
  tracker.record_sent(WarmupKey{"ip9", ""}, now, 5);
  EXPECT_EQ(tracker.decide(WarmupKey{"ip9", ""}, now, now, hours(24)).kind, Kind::send);

  const std::vector<WarmupStatus> status = tracker.status(now);
  ASSERT_EQ(status.size(), 3u);
  EXPECT_EQ(status[0].provider, "gmail");
  EXPECT_EQ(status[0].sent, 2u);
  EXPECT_EQ(status[1].provider, "yahoo");
  EXPECT_EQ(status[1].sent, 0u);
  EXPECT_EQ(status[2].source, "ip2");
  EXPECT_EQ(status[2].provider, std::nullopt);
  EXPECT_EQ(status[2].sent, 2u);
}

TEST(WarmupTracker, BackoffHoldsBackOnlyItsKey) {
  conf::WarmupPlan p = plan({rate("1/h"), rate("2/h")});
  p.providers = {"gmail", "yahoo"};
  WarmupTracker tracker;
  tracker.set_plans({p});
  const WarmupKey gmail{"ip1", "gmail"}, yahoo{"ip1", "yahoo"};
  tracker.record_sent(gmail, march(2, 9), 1);
  tracker.record_sent(yahoo, march(2, 9), 1);
  tracker.backoff_fired(gmail, march(2, 10));
  EXPECT_EQ(tracker.find(gmail)->day(march(3)), 1u);
  EXPECT_EQ(tracker.find(yahoo)->day(march(3)), 2u);
}

TEST(WarmupTracker, ReloadKeepsStateUnlessStartedChanges) {
  conf::WarmupPlan ip1 = plan({rate("5/m"), rate("10/m")});
  conf::WarmupPlan ip2 = plan({rate("5/m")});
  ip2.source = "ip2";
  WarmupTracker tracker;
  tracker.set_plans({ip1, ip2});
  tracker.record_sent(WarmupKey{"ip1", ""}, march(2, 10), 3);
  tracker.record_sent(WarmupKey{"ip2", ""}, march(3, 10), 3);
  std::vector<WarmupChange> changes;
  tracker.take_changes(&changes);
  EXPECT_EQ(changes.size(), 2u);
  changes.clear();
  tracker.take_changes(&changes);
  EXPECT_TRUE(changes.empty()) << "nothing changed since";

  // ip1: a new schedule but the same (absent) started: days and counts stay
  // and the new steps apply. ip2: dropped.
  conf::WarmupPlan ip1_faster = plan({rate("7/m"), rate("20/m")});
  ip1_faster.overflow = conf::WarmupOverflow::hold;
  tracker.set_plans({ip1_faster});
  const Warmup* kept = tracker.find(WarmupKey{"ip1", ""});
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->day(march(3, 10)), 2u);
  EXPECT_EQ(kept->cap(march(3, 10)), uint64_t{20});
  EXPECT_EQ(kept->plan().overflow, conf::WarmupOverflow::hold);
  EXPECT_EQ(tracker.find(WarmupKey{"ip2", ""}), nullptr);
  tracker.take_changes(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].key, (WarmupKey{"ip2", ""}));
  EXPECT_EQ(changes[0].state, std::nullopt);

  // A started given now: day 1 is that date, the old days are dropped.
  conf::WarmupPlan ip1_started = ip1_faster;
  ip1_started.started = sys_days(2026y / March / 3);
  tracker.set_plans({ip1_started});
  EXPECT_EQ(tracker.find(WarmupKey{"ip1", ""})->day(march(3, 10)), 1u);
  changes.clear();
  tracker.take_changes(&changes);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state, initial_warmup_state(ip1_started));
}

TEST(WarmupTracker, RestoreTakesOnlyStatesOfTheSameStarted) {
  conf::WarmupPlan p = plan({rate("5/m"), rate("10/m")});
  p.started = sys_days(2026y / March / 1);
  Warmup earlier(p);
  earlier.record_sent(march(2, 10), 4);

  WarmupTracker tracker;
  tracker.set_plans({p});
  EXPECT_FALSE(tracker.restore(WarmupKey{"ip7", ""}, earlier.state()));  // no such key
  WarmupState other_start = earlier.state();
  other_start.plan_started = other_start.plan_started.value() - 1;
  EXPECT_FALSE(tracker.restore(WarmupKey{"ip1", ""}, other_start));
  ASSERT_TRUE(tracker.restore(WarmupKey{"ip1", ""}, earlier.state()));
  EXPECT_EQ(tracker.find(WarmupKey{"ip1", ""})->sent_in_window(march(2, 10, 0, 30)), 4u);
  std::vector<WarmupChange> changes;
  tracker.take_changes(&changes);
  EXPECT_TRUE(changes.empty()) << "a restored state is what the spool has";
}

TEST(WarmupDays, UtcDayAndItsFormat) {
  EXPECT_EQ(utc_day(WallTime(sys_days(1970y / January / 1))), 0);
  EXPECT_EQ(utc_day(WallTime(sys_days(1970y / January / 1)) - milliseconds(1)), -1);
  EXPECT_EQ(utc_day(march(2, 23, 59, 59, 999)), utc_day(march(2)));
  EXPECT_EQ(utc_day(march(3)), utc_day(march(2)) + 1);
  EXPECT_EQ(format_utc_day(utc_day(march(2))), "2026-03-02");
  EXPECT_EQ(format_utc_day(0), "1970-01-01");
}

}  // namespace
}  // namespace ringmail::policy
