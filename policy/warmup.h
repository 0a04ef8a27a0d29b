// policy/warmup.h — IP warm-up: how many recipient attempts a warming egress
// source may make now, which day of its schedule it is on, and what happens
// to a job over its cap (CONTRACT.md "Traffic policy in detail", issue 12).
//
// Owns: the warm-up decision and its state per key (a source, or a source
// and one named provider). The algorithm, exactly:
//  - Days are UTC days. Day 1 is the plan's `started` date, else the UTC
//    day of first use (the first recorded send or backoff). Before day 1
//    (a `started` in the future) day 1 applies.
//  - Day d = 1 + the number of counting days before today since day 1. A
//    day counts when no backoff rule fired for the key on it and, under
//    `advance: calendar`, always (also days the daemon did not run), under
//    `advance: sending_day`, only if the key sent on it. Today never counts
//    for today.
//  - A key that sent once and then sent nothing on 30 whole UTC days in a
//    row (last sent on day L, today > L + 30) starts again: today is day 1.
//    A key that never sent is never idle (its `started` is the operator's
//    word for its age).
//  - On day d the step is schedule[d-1]; past the end the last step stays.
//    A rate step `N/unit` caps recipient attempts at N per fixed window of
//    one unit aligned to the Unix epoch, so UTC-aligned: 50/h counts in
//    [hh:00, hh+1:00), 1000/d in [00:00, 24:00) UTC. Every window lies in
//    one UTC day, so a step never changes inside a window. An `unlimited`
//    step has no window and counts nothing.
//  - A job may go while the window has room for one more recipient
//    (room() > 0); it records every recipient it attempts, so a job of n
//    recipients can overdraw a window by up to n - 1 unless the planner
//    splits it to room(). An overdraft is not carried into the next window.
//  - Over the cap: `overflow: spill` sends the job to another source;
//    `hold` keeps it until next_window(), the exact start of the next
//    window (when at least one recipient may go again), unless that is at
//    or past the job's expiry (received + max_age): then it spills too, so
//    no job expires because of warm-up alone.
//  - "warm" = the last step of the schedule is reached and it is
//    `unlimited` (it stays unlimited); "warming" otherwise, including an
//    `unlimited` step before the last and a schedule ending on a rate.
// A fixed-window count, not a token bucket (policy/token_bucket.h): the
// contract fixes UTC-aligned windows and the API shows "sent in the current
// window", which a GCRA bucket does not have.
//
// Threads: not thread-safe; one owner (the delivery planner's thread).
// Pure: every time is passed in (WallTime, since days and windows are UTC
// calendar facts that survive a restart); no clock, no I/O, no LMDB.
// Durability: none here. WarmupTracker::take_changes() hands the states
// that changed to the caller, which persists them in the spool's batches
// (queue/warmup_records.h) and gives them back with restore() at start-up.
// Not security-relevant: its inputs are the operator's config and
// Ringmail's own records (decoded and checked by queue/).
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/config_policy.h"
#include "runtime/clock.h"

namespace ringmail::policy {

// A UTC day as days since 1970-01-01 (negative before).
using UtcDay = int32_t;
UtcDay utc_day(runtime::WallTime t);
// "2026-03-01".
std::string format_utc_day(UtcDay day);

// After this many whole UTC days without a send, a key starts again at day 1.
inline constexpr int32_t kWarmupIdleRestartDays = 30;

// What a key's warm-up has done: small, explicit, and everything the day
// and the window count are computed from (queue/warmup_records.h persists
// exactly this). Days are UtcDay.
struct WarmupState {
  // Day 1. None until first use when the plan has no `started`.
  std::optional<UtcDay> first_day;
  // The last day accounted for (meaningful with first_day): the days
  // before it are summed up in `advanced`; it is "today" once rolled.
  UtcDay open_day = 0;
  // Days before open_day that advanced the schedule.
  uint32_t advanced = 0;
  // A backoff rule fired for the key on open_day: it will not count.
  bool backoff_on_open_day = false;
  // The last day it sent anything (for sending_day and the idle restart).
  std::optional<UtcDay> last_sent_day;
  // The plan's `started` this state was made under: a state whose plan
  // changed `started` is dropped (restore(), set_plans()).
  std::optional<UtcDay> plan_started;
  // The window the count belongs to ([start, start + length), Unix ms);
  // length 0: none (nothing sent under a rate step yet, or unlimited).
  int64_t window_start_ms = 0;
  int64_t window_ms = 0;
  uint64_t sent_in_window = 0;

  friend bool operator==(const WarmupState&, const WarmupState&) = default;
};

// The fresh state of a plan: day 1 at `started`, or at first use.
WarmupState initial_warmup_state(const conf::WarmupPlan& plan);

// What GET /api/v1/warmup shows of one key (source, pool and address are
// the caller's, from the config).
struct WarmupStatus {
  std::string source;
  std::optional<std::string> provider;  // null: all sites
  std::optional<std::string> started;   // day 1 as YYYY-MM-DD; null: not used yet
  uint32_t day = 1;
  std::optional<uint64_t> cap;        // null: unlimited
  std::optional<std::string> window;  // "1m", "1h", "1d"; null when unlimited
  uint64_t sent = 0;                  // in the current window
  bool warm = false;                  // "warm" / "warming"
  const char* state_name() const { return warm ? "warm" : "warming"; }
  friend bool operator==(const WarmupStatus&, const WarmupStatus&) = default;
};

// What to do with a job now.
struct WarmupDecision {
  enum class Kind {
    send,   // under the cap (or unlimited): attempt it
    hold,   // wait in the ready queue until `until` (not an attempt, not a deferral)
    spill,  // give it to another source of its pool
  };
  Kind kind = Kind::send;
  runtime::WallTime until{};  // hold: when the next window opens
  friend bool operator==(const WarmupDecision&, const WarmupDecision&) = default;
};

// Holding a job received at `received` until `next_window` would reach its
// expiry (received + max_age, delivery.retry.max_age): then it spills.
bool holding_would_expire(runtime::WallTime next_window, runtime::WallTime received,
                          runtime::Millis max_age);

// One key's warm-up: its plan and state. Const members compute from a
// copy of the state rolled forward to `now`; the others roll it for real.
class Warmup {
 public:
  explicit Warmup(conf::WarmupPlan plan) : Warmup(plan, initial_warmup_state(plan)) {}
  Warmup(conf::WarmupPlan plan, WarmupState state);

  // Day d (1 = first day).
  uint32_t day(runtime::WallTime now) const;
  // The step in force: a rate, or nullopt (unlimited).
  std::optional<conf::Rate> step(runtime::WallTime now) const;
  // The cap of the current window; nullopt: unlimited.
  std::optional<uint64_t> cap(runtime::WallTime now) const;
  // Recipients counted in the current window.
  uint64_t sent_in_window(runtime::WallTime now) const;
  // What may still go in the current window; nullopt: unlimited.
  std::optional<uint64_t> room(runtime::WallTime now) const;
  // room() > 0 (or unlimited).
  bool may_send(runtime::WallTime now) const;
  // When a job held now may go: `now` when may_send(now), else the exact
  // start of the next window. Wake the planner then, do not poll.
  runtime::WallTime next_window(runtime::WallTime now) const;
  // send / hold until next_window / spill, by the plan's overflow and the
  // job's expiry (received + max_age).
  WarmupDecision decide(runtime::WallTime now, runtime::WallTime received,
                        runtime::Millis max_age) const;
  bool warm(runtime::WallTime now) const;

  // n recipient attempts were started at `now` (counted whether or not
  // there was room: they happened).
  void record_sent(runtime::WallTime now, uint64_t n);
  // A backoff rule fired for this key at `now`: that UTC day will not
  // advance the schedule.
  void backoff_fired(runtime::WallTime now);

  // For GET /api/v1/warmup; provider as the key has it ("" = all sites).
  WarmupStatus status(std::string_view provider, runtime::WallTime now) const;

  const conf::WarmupPlan& plan() const { return plan_; }
  // The plan may change (reload) while the state is kept.
  void set_plan(conf::WarmupPlan plan) { plan_ = std::move(plan); }
  // What to persist.
  const WarmupState& state() const { return state_; }

 private:
  WarmupState rolled(runtime::WallTime now) const;

  conf::WarmupPlan plan_;
  WarmupState state_;
};

// Names one Warmup: a source, and the provider of plan.providers it counts
// for ("" = all sites of the source).
struct WarmupKey {
  std::string source;
  std::string provider;
  friend auto operator<=>(const WarmupKey&, const WarmupKey&) = default;
};

// A state to write to the spool (state set) or to delete (nullopt: the
// key's plan is gone).
struct WarmupChange {
  WarmupKey key;
  std::optional<WarmupState> state;
};

// The warm-up of every configured source: one Warmup per source without
// `providers`, one per (source, provider) with.
class WarmupTracker {
 public:
  // Builds the keys of `plans`. A key that was there before keeps its
  // state when its plan kept its `started` (schedule, overflow, advance and
  // the other providers may change: the new plan applies to the kept days
  // and counts); otherwise it starts fresh. Keys no longer configured are
  // dropped and reported by take_changes() for deletion.
  void set_plans(const std::vector<conf::WarmupPlan>& plans);

  // The key a (source, site) counts under: nullopt when the source has no
  // warm-up plan, or its plan names providers and none of them has one of
  // the site's MX hosts (such sites are not capped). mx_hosts are lower
  // case without the trailing dot. The first matching provider of the plan
  // wins. Callers may cache the answer per (source, site) until set_plans.
  std::optional<WarmupKey> key_for(std::string_view source,
                                   const std::vector<std::string_view>& mx_hosts) const;

  Warmup* find(const WarmupKey& key);
  const Warmup* find(const WarmupKey& key) const;

  // Shorthands over find(); a key that is not configured is not capped
  // (send, now) and records nothing.
  WarmupDecision decide(const WarmupKey& key, runtime::WallTime now, runtime::WallTime received,
                        runtime::Millis max_age) const;
  void record_sent(const WarmupKey& key, runtime::WallTime now, uint64_t n);
  void backoff_fired(const WarmupKey& key, runtime::WallTime now);

  // A state read back from the spool at start-up. Kept (true) when the key
  // is configured and its plan has the same `started`; else ignored
  // (false: the caller may delete the record; the fresh state is written
  // at the next take_changes()).
  bool restore(const WarmupKey& key, const WarmupState& state);

  // Appends to *out what changed since the last call: the state of every
  // key whose state changed, and the deletion of every key dropped.
  void take_changes(std::vector<WarmupChange>* out);

  // Every key, ordered by source then provider.
  std::vector<WarmupStatus> status(runtime::WallTime now) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Warmup warmup;
    WarmupState saved;  // as last handed out by take_changes (or restored)
    bool saved_valid = false;
  };
  std::map<WarmupKey, Entry> entries_;
  std::map<std::string, std::vector<std::string>, std::less<>> providers_by_source_;
  std::vector<WarmupKey> dropped_;
};

}  // namespace ringmail::policy
