// policy/backoff_evaluator.cc — backoff rules applied to remote replies,
// and the per-queue overrides they leave.
#include "policy/backoff_evaluator.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

#include "policy/backoff_defaults.h"

namespace ringmail::policy {
namespace {

size_t kind_slot(BackoffKind kind) {
  switch (kind) {
    case BackoffKind::suspend:
      return 0;
    case BackoffKind::rate_factor:
      return 1;
    case BackoffKind::bounce:
      return 2;
  }
  return 2;
}

// "15m", "2h", "500ms": the largest unit that divides the duration.
std::string duration_text(conf::Duration duration) {
  struct Unit {
    int64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {
      {24LL * 3600 * 1000, "d"}, {3600 * 1000, "h"}, {60 * 1000, "m"}, {1000, "s"}};
  int64_t ms = duration.count();
  for (const Unit& unit : kUnits) {
    if (ms != 0 && ms % unit.ms == 0) return std::to_string(ms / unit.ms) + unit.name;
  }
  return std::to_string(ms) + "ms";
}

std::string number_text(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : std::to_string(value);
}

// The reply as the API shows it, cut at kMaxReplyText bytes on a UTF-8
// character boundary.
std::string reply_text(int code, std::string_view enhanced, std::string_view text) {
  std::string reply = std::to_string(code);
  if (!enhanced.empty()) {
    reply += ' ';
    reply += enhanced;
  }
  if (!text.empty()) {
    reply += ' ';
    reply += text;
  }
  size_t limit = BackoffEvaluator::kMaxReplyText;
  if (reply.size() > limit) {
    while (limit > 0 && (static_cast<unsigned char>(reply[limit]) & 0xC0) == 0x80) --limit;
    reply.resize(limit);
  }
  return reply;
}

// A failure that says something about the sender rather than one
// recipient: it ends a run of deliveries.
bool breaks_success_run(int code, std::string_view enhanced) {
  return (code >= 400 && code < 500) || enhanced.starts_with("5.7.");
}

// The rate multiplier of a rate cut at `now`.
double recovered_factor(const BackoffOverride& cut, runtime::WallTime now) {
  if (now >= cut.until) return 1.0;
  if (now <= cut.since) return cut.factor;
  double elapsed = std::chrono::duration<double>(now - cut.since).count();
  double total = std::chrono::duration<double>(cut.until - cut.since).count();
  return cut.factor + (1.0 - cut.factor) * (elapsed / total);
}

bool in_force(const std::optional<BackoffOverride>& override_in_force, runtime::WallTime now) {
  return override_in_force && override_in_force->until > now;
}

// Whether `next` replaces what the queue has in force (see the header).
bool takes_over(const std::optional<BackoffOverride>& current, const BackoffActivation& next,
                runtime::WallTime now) {
  if (!in_force(current, now)) return true;
  if (next.kind == BackoffKind::suspend) {
    return current->kind != BackoffKind::suspend || next.until > current->until;
  }
  if (current->kind == BackoffKind::suspend) return false;
  return next.factor < recovered_factor(*current, now);
}

}  // namespace

BackoffEvaluator::BackoffEvaluator() : BackoffEvaluator(nullptr) {}

BackoffEvaluator::BackoffEvaluator(std::vector<conf::BackoffRule> rules, BackoffRuleOrigin origin) {
  reconfigure(std::move(rules), origin);
}

BackoffEvaluator::BackoffEvaluator(const conf::PolicyConfig* policy) { reconfigure(policy); }

void BackoffEvaluator::reconfigure(const conf::PolicyConfig* policy) {
  if (policy && policy->backoff_given) {
    reconfigure(policy->backoff, BackoffRuleOrigin::configured);
  } else {
    reconfigure(shipped_backoff_rules(), BackoffRuleOrigin::shipped);
  }
}

void BackoffEvaluator::reconfigure(std::vector<conf::BackoffRule> rules, BackoffRuleOrigin origin) {
  rules_.clear();
  rules_.reserve(rules.size());
  for (conf::BackoffRule& rule : rules) {
    std::string text = rule_text(rule);
    rules_.push_back(Rule{std::move(rule), std::move(text)});
  }
  origin_ = origin;
  for (auto it = keys_.begin(); it != keys_.end();) {
    it->second.pending.clear();
    it = it->second.empty() ? keys_.erase(it) : std::next(it);
  }
}

std::optional<BackoffActivation> BackoffEvaluator::evaluate(std::string_view key, int code,
                                                            std::string_view enhanced,
                                                            std::string_view text,
                                                            runtime::WallTime now) {
  if (code < 400 || code > 599) return std::nullopt;
  auto it = keys_.find(key);
  if (it != keys_.end() && breaks_success_run(code, enhanced)) it->second.success_run = 0;
  size_t index = 0;
  while (index < rules_.size() && !rules_[index].rule.match.matches(code, enhanced, text)) ++index;
  if (index == rules_.size()) return std::nullopt;
  const Rule& rule = rules_[index];

  if (rule.rule.when) {
    if (it == keys_.end()) it = keys_.emplace(std::string(key), KeyState{}).first;
    if (!count_reaches(it->second, index, *rule.rule.when, now)) return std::nullopt;
  }

  BackoffActivation activation;
  activation.kind = rule.rule.action.kind;
  activation.rule_index = index;
  activation.shipped = origin_ == BackoffRuleOrigin::shipped;
  activation.rule = rule.text;
  activation.until = now;
  switch (activation.kind) {
    case BackoffKind::suspend:
      activation.until = now + rule.rule.action.suspend;
      break;
    case BackoffKind::rate_factor:
      activation.until = now + rule.rule.action.recover_after;
      activation.factor = rule.rule.action.rate_factor;
      break;
    case BackoffKind::bounce:
      break;
  }

  if (activation.kind == BackoffKind::bounce) {
    if (it != keys_.end() && it->second.empty()) keys_.erase(it);
    ++activations_[kind_slot(activation.kind)];
    return activation;
  }
  if (it == keys_.end()) it = keys_.emplace(std::string(key), KeyState{}).first;
  KeyState& state = it->second;
  if (!takes_over(state.override_in_force, activation, now)) {
    if (state.empty()) keys_.erase(it);
    return std::nullopt;
  }
  state.override_in_force = BackoffOverride{activation.kind,
                                            now,
                                            activation.until,
                                            activation.factor,
                                            index,
                                            activation.shipped,
                                            activation.rule,
                                            reply_text(code, enhanced, text)};
  state.success_run = 0;
  ++activations_[kind_slot(activation.kind)];
  return activation;
}

bool BackoffEvaluator::count_reaches(KeyState& state, size_t rule_index,
                                     const conf::BackoffWhen& when, runtime::WallTime now) const {
  auto pending = std::find_if(state.pending.begin(), state.pending.end(),
                              [&](const PendingCount& p) { return p.rule_index == rule_index; });
  if (pending == state.pending.end()) {
    state.pending.push_back(PendingCount{rule_index, {}});
    pending = std::prev(state.pending.end());
  }
  // A reply counts while it is less than `within` old.
  const runtime::WallTime horizon = now - when.within;
  auto& replies = pending->replies;
  replies.erase(replies.begin(), std::find_if(replies.begin(), replies.end(),
                                              [&](runtime::WallTime t) { return t > horizon; }));
  replies.push_back(now);
  if (replies.size() < when.count) return false;
  state.pending.erase(pending);
  return true;
}

void BackoffEvaluator::prune_pending(KeyState& state, runtime::WallTime now) const {
  std::erase_if(state.pending, [&](const PendingCount& p) {
    const conf::BackoffRule& rule = rules_[p.rule_index].rule;
    return p.replies.empty() || !rule.when || p.replies.back() <= now - rule.when->within;
  });
}

bool BackoffEvaluator::delivered(std::string_view key, runtime::WallTime now) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return false;
  KeyState& state = it->second;
  if (!in_force(state.override_in_force, now) ||
      state.override_in_force->kind != BackoffKind::rate_factor) {
    return false;
  }
  if (++state.success_run < kSuccessRunEndingRateCut) return false;
  state.override_in_force.reset();
  state.success_run = 0;
  if (state.empty()) keys_.erase(it);
  return true;
}

const BackoffEvaluator::KeyState* BackoffEvaluator::find(std::string_view key) const {
  auto it = keys_.find(key);
  return it == keys_.end() ? nullptr : &it->second;
}

double BackoffEvaluator::rate_factor(std::string_view key, runtime::WallTime now) const {
  const KeyState* state = find(key);
  if (!state || !in_force(state->override_in_force, now) ||
      state->override_in_force->kind != BackoffKind::rate_factor) {
    return 1.0;
  }
  return recovered_factor(*state->override_in_force, now);
}

std::optional<runtime::WallTime> BackoffEvaluator::suspended_until(std::string_view key,
                                                                   runtime::WallTime now) const {
  const KeyState* state = find(key);
  if (!state || !in_force(state->override_in_force, now) ||
      state->override_in_force->kind != BackoffKind::suspend) {
    return std::nullopt;
  }
  return state->override_in_force->until;
}

std::optional<BackoffOverride> BackoffEvaluator::active(std::string_view key,
                                                        runtime::WallTime now) const {
  const KeyState* state = find(key);
  if (!state || !in_force(state->override_in_force, now)) return std::nullopt;
  return state->override_in_force;
}

void BackoffEvaluator::for_each_active(
    runtime::WallTime now,
    const std::function<void(const std::string& key, const BackoffOverride&)>& visit) const {
  for (const auto& [key, state] : keys_) {
    if (in_force(state.override_in_force, now)) visit(key, *state.override_in_force);
  }
}

bool BackoffEvaluator::restore(const std::string& key, const BackoffOverride& override_in_force,
                               runtime::WallTime now) {
  if (override_in_force.kind == BackoffKind::bounce || override_in_force.until <= now) return false;
  keys_[key].override_in_force = override_in_force;
  return true;
}

bool BackoffEvaluator::cancel(std::string_view key) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return false;
  bool had_override = it->second.override_in_force.has_value();
  keys_.erase(it);
  return had_override;
}

void BackoffEvaluator::expire(runtime::WallTime now, std::vector<std::string>* ended) {
  for (auto it = keys_.begin(); it != keys_.end();) {
    KeyState& state = it->second;
    if (state.override_in_force && state.override_in_force->until <= now) {
      if (ended) ended->push_back(it->first);
      state.override_in_force.reset();
      state.success_run = 0;
    }
    prune_pending(state, now);
    it = state.empty() ? keys_.erase(it) : std::next(it);
  }
}

std::optional<runtime::WallTime> BackoffEvaluator::next_expiry() const {
  std::optional<runtime::WallTime> earliest;
  for (const auto& [key, state] : keys_) {
    if (!state.override_in_force) continue;
    if (!earliest || state.override_in_force->until < *earliest) {
      earliest = state.override_in_force->until;
    }
  }
  return earliest;
}

uint64_t BackoffEvaluator::activations(BackoffKind kind) const {
  return activations_[kind_slot(kind)];
}

std::string BackoffEvaluator::rule_text(const conf::BackoffRule& rule) {
  std::string text;
  auto part = [&](std::string_view piece) {
    if (!text.empty()) text += ' ';
    text += piece;
  };
  if (rule.match.code) part(std::to_string(*rule.match.code));
  if (!rule.match.enhanced.empty()) part(rule.match.enhanced);
  if (!rule.match.text.empty()) part("/" + rule.match.text + "/");
  switch (rule.action.kind) {
    case BackoffKind::suspend:
      part("-> suspend " + duration_text(rule.action.suspend));
      break;
    case BackoffKind::rate_factor:
      part("-> rate_factor " + number_text(rule.action.rate_factor) + " recover_after " +
           duration_text(rule.action.recover_after));
      break;
    case BackoffKind::bounce:
      part("-> bounce");
      break;
  }
  if (rule.when) {
    part("when " + std::to_string(rule.when->count) + " within " +
         duration_text(rule.when->within));
  }
  return text;
}

}  // namespace ringmail::policy
