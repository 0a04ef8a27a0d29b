#include "policy/warmup.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "mail/mailbox_provider.h"

namespace ringmail::policy {
namespace {

constexpr int64_t kDayMs = 86'400'000;

int64_t unix_ms(runtime::WallTime t) {
  return std::chrono::duration_cast<runtime::Millis>(t.time_since_epoch()).count();
}

runtime::WallTime wall_of_ms(int64_t ms) { return runtime::WallTime(runtime::Millis(ms)); }

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The fixed window of a rate step that holds `now`.
struct Window {
  int64_t start_ms = 0;
  int64_t length_ms = 0;
};

Window window_of(const conf::Rate& rate, runtime::WallTime now) {
  const int64_t length = std::max<int64_t>(rate.per.count(), 1);
  return Window{floor_div(unix_ms(now), length) * length, length};
}

std::string window_name(int64_t length_ms) {
  struct Unit {
    int64_t ms;
    const char* suffix;
  };
  for (const Unit unit :
       {Unit{kDayMs, "d"}, Unit{3'600'000, "h"}, Unit{60'000, "m"}, Unit{1'000, "s"}}) {
    if (length_ms % unit.ms == 0) return std::to_string(length_ms / unit.ms) + unit.suffix;
  }
  return std::to_string(length_ms) + "ms";
}

std::optional<conf::Rate> step_of_day(const conf::WarmupPlan& plan, uint32_t day) {
  if (plan.schedule.empty()) return std::nullopt;
  const size_t index = std::min<size_t>(std::max<uint32_t>(day, 1), plan.schedule.size()) - 1;
  return plan.schedule[index];
}

uint32_t day_of(const WarmupState& s) { return s.first_day ? s.advanced + 1 : 1; }

// Day 1 is today; the window count starts over.
void start_at(WarmupState& s, UtcDay today) {
  s.first_day = today;
  s.open_day = today;
  s.advanced = 0;
  s.backoff_on_open_day = false;
  s.window_start_ms = 0;
  s.window_ms = 0;
  s.sent_in_window = 0;
}

// Accounts for the days from open_day up to (not including) today.
void roll(WarmupState& s, const conf::WarmupPlan& plan, UtcDay today) {
  if (!s.first_day || today <= s.open_day) return;  // not begun, or the same day (or earlier)
  if (s.last_sent_day && today - *s.last_sent_day > kWarmupIdleRestartDays) {
    start_at(s, today);
    return;
  }
  const bool calendar = plan.advance == conf::WarmupAdvance::calendar;
  const bool open_day_counts =
      !s.backoff_on_open_day && (calendar || s.last_sent_day == s.open_day);
  uint64_t advanced = uint64_t{s.advanced} + (open_day_counts ? 1 : 0);
  // Days strictly between open_day and today: nothing was recorded on
  // them, so no backoff and no send; only the calendar counts them.
  if (calendar) advanced += static_cast<uint64_t>(today - s.open_day - 1);
  s.advanced = static_cast<uint32_t>(std::min<uint64_t>(advanced, UINT32_MAX - 1));
  s.open_day = today;
  s.backoff_on_open_day = false;
}

}  // namespace

UtcDay utc_day(runtime::WallTime t) {
  return static_cast<UtcDay>(std::chrono::floor<std::chrono::days>(t).time_since_epoch().count());
}

std::string format_utc_day(UtcDay day) {
  const std::chrono::year_month_day date{std::chrono::sys_days(std::chrono::days(day))};
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()));
  return text;
}

WarmupState initial_warmup_state(const conf::WarmupPlan& plan) {
  WarmupState s;
  if (plan.started) {
    const auto day = static_cast<UtcDay>(plan.started->time_since_epoch().count());
    s.first_day = day;
    s.open_day = day;
    s.plan_started = day;
  }
  return s;
}

bool holding_would_expire(runtime::WallTime next_window, runtime::WallTime received,
                          runtime::Millis max_age) {
  return next_window >= received + max_age;
}

Warmup::Warmup(conf::WarmupPlan plan, WarmupState state)
    : plan_(std::move(plan)), state_(std::move(state)) {}

WarmupState Warmup::rolled(runtime::WallTime now) const {
  WarmupState s = state_;
  roll(s, plan_, utc_day(now));
  return s;
}

uint32_t Warmup::day(runtime::WallTime now) const { return day_of(rolled(now)); }

std::optional<conf::Rate> Warmup::step(runtime::WallTime now) const {
  return step_of_day(plan_, day(now));
}

std::optional<uint64_t> Warmup::cap(runtime::WallTime now) const {
  const auto rate = step(now);
  if (!rate) return std::nullopt;
  return rate->count;
}

uint64_t Warmup::sent_in_window(runtime::WallTime now) const {
  const WarmupState s = rolled(now);
  const auto rate = step_of_day(plan_, day_of(s));
  if (!rate) return 0;
  const Window w = window_of(*rate, now);
  return s.window_ms == w.length_ms && s.window_start_ms == w.start_ms ? s.sent_in_window : 0;
}

std::optional<uint64_t> Warmup::room(runtime::WallTime now) const {
  const auto limit = cap(now);
  if (!limit) return std::nullopt;
  const uint64_t sent = sent_in_window(now);
  return sent >= *limit ? 0 : *limit - sent;
}

bool Warmup::may_send(runtime::WallTime now) const {
  const auto left = room(now);
  return !left || *left > 0;
}

runtime::WallTime Warmup::next_window(runtime::WallTime now) const {
  if (may_send(now)) return now;
  // Over the cap means a rate step: the count starts over when its window
  // ends, and every step has room for at least one then.
  const Window w = window_of(*step(now), now);
  return wall_of_ms(w.start_ms + w.length_ms);
}

WarmupDecision Warmup::decide(runtime::WallTime now, runtime::WallTime received,
                              runtime::Millis max_age) const {
  if (may_send(now)) return {WarmupDecision::Kind::send, {}};
  if (plan_.overflow == conf::WarmupOverflow::spill) return {WarmupDecision::Kind::spill, {}};
  const runtime::WallTime until = next_window(now);
  if (holding_would_expire(until, received, max_age)) return {WarmupDecision::Kind::spill, {}};
  return {WarmupDecision::Kind::hold, until};
}

bool Warmup::warm(runtime::WallTime now) const {
  return !plan_.schedule.empty() && !plan_.schedule.back() && day(now) >= plan_.schedule.size();
}

void Warmup::record_sent(runtime::WallTime now, uint64_t n) {
  const UtcDay today = utc_day(now);
  roll(state_, plan_, today);
  if (!state_.first_day) start_at(state_, today);
  if (!state_.last_sent_day || *state_.last_sent_day < today) state_.last_sent_day = today;
  const auto rate = step_of_day(plan_, day_of(state_));
  if (!rate) {
    state_.window_start_ms = 0;
    state_.window_ms = 0;
    state_.sent_in_window = 0;
    return;
  }
  const Window w = window_of(*rate, now);
  if (state_.window_ms != w.length_ms || state_.window_start_ms != w.start_ms) {
    state_.window_start_ms = w.start_ms;
    state_.window_ms = w.length_ms;
    state_.sent_in_window = 0;
  }
  const uint64_t headroom = std::numeric_limits<uint64_t>::max() - state_.sent_in_window;
  state_.sent_in_window += std::min(n, headroom);
}

void Warmup::backoff_fired(runtime::WallTime now) {
  const UtcDay today = utc_day(now);
  roll(state_, plan_, today);
  if (!state_.first_day) start_at(state_, today);
  // Before day 1 (a `started` ahead) there is no day of the schedule to hold back.
  if (today == state_.open_day) state_.backoff_on_open_day = true;
}

WarmupStatus Warmup::status(std::string_view provider, runtime::WallTime now) const {
  const WarmupState s = rolled(now);
  WarmupStatus out;
  out.source = plan_.source;
  if (!provider.empty()) out.provider = std::string(provider);
  if (s.first_day) out.started = format_utc_day(*s.first_day);
  out.day = day_of(s);
  if (const auto rate = step_of_day(plan_, out.day)) {
    out.cap = rate->count;
    out.window = window_name(window_of(*rate, now).length_ms);
    out.sent = sent_in_window(now);
  }
  out.warm = warm(now);
  return out;
}

void WarmupTracker::set_plans(const std::vector<conf::WarmupPlan>& plans) {
  std::map<WarmupKey, Entry> next;
  providers_by_source_.clear();
  for (const conf::WarmupPlan& plan : plans) {
    providers_by_source_[plan.source] = plan.providers;
    const std::optional<UtcDay> started = initial_warmup_state(plan).plan_started;
    std::vector<std::string> providers = plan.providers;
    if (providers.empty()) providers.emplace_back();
    for (const std::string& provider : providers) {
      WarmupKey key{plan.source, provider};
      auto old = entries_.find(key);
      if (old != entries_.end() && old->second.warmup.state().plan_started == started) {
        Entry kept = std::move(old->second);
        kept.warmup.set_plan(plan);
        next.emplace(std::move(key), std::move(kept));
      } else {
        next.emplace(std::move(key), Entry{Warmup(plan), {}, false});
      }
    }
  }
  for (const auto& [key, entry] : entries_) {
    if (!next.contains(key)) dropped_.push_back(key);
  }
  entries_ = std::move(next);
}

std::optional<WarmupKey> WarmupTracker::key_for(
    std::string_view source, const std::vector<std::string_view>& mx_hosts) const {
  auto plan = providers_by_source_.find(source);
  if (plan == providers_by_source_.end()) return std::nullopt;
  if (plan->second.empty()) return WarmupKey{std::string(source), ""};
  for (const std::string& provider : plan->second) {
    if (mail::hosts_of_provider(provider, mx_hosts))
      return WarmupKey{std::string(source), provider};
  }
  return std::nullopt;
}

Warmup* WarmupTracker::find(const WarmupKey& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second.warmup;
}

const Warmup* WarmupTracker::find(const WarmupKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second.warmup;
}

WarmupDecision WarmupTracker::decide(const WarmupKey& key, runtime::WallTime now,
                                     runtime::WallTime received, runtime::Millis max_age) const {
  const Warmup* warmup = find(key);
  if (!warmup) return {WarmupDecision::Kind::send, {}};
  return warmup->decide(now, received, max_age);
}

void WarmupTracker::record_sent(const WarmupKey& key, runtime::WallTime now, uint64_t n) {
  if (Warmup* warmup = find(key)) warmup->record_sent(now, n);
}

void WarmupTracker::backoff_fired(const WarmupKey& key, runtime::WallTime now) {
  if (Warmup* warmup = find(key)) warmup->backoff_fired(now);
}

bool WarmupTracker::restore(const WarmupKey& key, const WarmupState& state) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  Entry& entry = it->second;
  if (state.plan_started != initial_warmup_state(entry.warmup.plan()).plan_started) return false;
  entry.warmup = Warmup(entry.warmup.plan(), state);
  entry.saved = state;
  entry.saved_valid = true;
  return true;
}

void WarmupTracker::take_changes(std::vector<WarmupChange>* out) {
  for (WarmupKey& key : dropped_) {
    if (!entries_.contains(key)) out->push_back(WarmupChange{std::move(key), std::nullopt});
  }
  dropped_.clear();
  for (auto& [key, entry] : entries_) {
    if (entry.saved_valid && entry.saved == entry.warmup.state()) continue;
    entry.saved = entry.warmup.state();
    entry.saved_valid = true;
    out->push_back(WarmupChange{key, entry.saved});
  }
}

std::vector<WarmupStatus> WarmupTracker::status(runtime::WallTime now) const {
  std::vector<WarmupStatus> out;
  out.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) out.push_back(entry.warmup.status(key.provider, now));
  return out;
}

}  // namespace ringmail::policy
