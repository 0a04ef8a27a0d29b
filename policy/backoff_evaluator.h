// policy/backoff_evaluator.h — what a remote reply asks of a ready queue
// (one (source, site)): nothing, a suspension, a rate cut, or an immediate
// bounce of that recipient; and which of those are in force, per queue.
//
// Owns: the backoff rules in force (the operator's policy.backoff, or the
// shipped rules of policy/backoff_defaults.h when policy.backoff is absent),
// the decision per reply, and per ready queue only what a rule left behind:
// the override in force (a suspension, or a rate cut recovering linearly)
// and the pending counts of `when` rules. A queue that never saw a matching
// reply has no state; a queue's state is forgotten as soon as its override
// has ended and no count is pending, so a million quiet queues cost nothing.
// Keys are the planner's ready-queue text, one per (source, site); this
// module does not parse them.
//
// Decisions (CONTRACT.md "Traffic policy in detail"):
// - Only 4xx and 5xx replies are matched; any other code returns at once,
//   without a look-up or a regex. The caller passes only replies a remote
//   server sent, never the ones Ringmail makes itself (timeouts, DNS,
//   refused connections): that filter is the planner's.
// - First matching rule wins, also while its `when` count is not reached
//   (the reply then only counts, later rules do not see it). `when: {count:
//   N, within: D}` fires on the Nth matching reply of one queue while the
//   first of the N is less than D old; it then counts from zero again.
// - `bounce` is per recipient: it is returned (and counted) but leaves no
//   state. `suspend` and `rate_factor` set the queue's override.
// - A new activation replaces the override in force only if it is stronger
//   now: a suspension beats a rate cut; of two suspensions the later end
//   wins; a new rate cut wins if its factor is below the current, partly
//   recovered factor (and recovery starts again from it). A rate
//   cut never replaces a suspension in force (nothing is sent while held),
//   and is not remembered for after it. An activation that replaces nothing
//   is not returned and not counted.
// - A rate cut ends early after kSuccessRunEndingRateCut consecutive
//   deliveries on its queue (delivered()); a 4xx reply, or a 5xx with a
//   security/policy enhanced code (5.7.x), on that queue resets the run
//   (other 5xx are verdicts on one recipient, not on the sender).
//
// Threads: not thread-safe; owned by the delivery planner's thread. Pure:
// every time is passed in (wall time, since overrides are shown to people
// and compared with the admin API's times); no clock reads, no I/O.
// Durability: none here. The planner persists each override in force
// (queue/backoff_records.h) and gives it back with restore() at start-up.
// Network: evaluate() takes reply text from remote servers; the rules'
// regexes are searched over it (conf::ResponseMatch), never compiled from
// it, and the copy kept for the admin API is capped at kMaxReplyText bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conf/config_policy.h"
#include "runtime/clock.h"

namespace ringmail::policy {

using BackoffKind = conf::BackoffAction::Kind;  // suspend, rate_factor, bounce

// Where the rules in force come from.
enum class BackoffRuleOrigin { configured, shipped };

// A rule that fired on a reply.
struct BackoffActivation {
  BackoffKind kind = BackoffKind::suspend;
  size_t rule_index = 0;  // in policy.backoff, or in shipped_backoff_rules()
  bool shipped = false;   // the rule is a shipped default
  std::string rule;       // the rule as text, see BackoffEvaluator::rule_text()
  // suspend: the end of the hold; rate_factor: when the rate is fully
  // recovered; bounce: the reply's time.
  runtime::WallTime until{};
  double factor = 1.0;  // rate_factor: the rate multiplier at activation; else 1
};

// The override in force on a queue, for the planner and the API's
// SITE.backoff.
struct BackoffOverride {
  BackoffKind kind = BackoffKind::suspend;  // suspend or rate_factor, never bounce
  runtime::WallTime since{};                // the activation's time
  runtime::WallTime until{};                // as BackoffActivation::until
  double factor = 1.0;                      // rate_factor at `since`
  size_t rule_index = 0;
  bool shipped = false;
  std::string rule;   // the rule as text
  std::string reply;  // "421 4.7.28 Our system has ...", at most kMaxReplyText bytes
};

class BackoffEvaluator {
 public:
  // Consecutive deliveries on a queue that end its rate cut before the
  // recovery time: enough that a provider which still limits would have
  // said so, few enough that a queue sending a few messages a minute gets
  // its rate back well before a 30m recovery.
  static constexpr uint32_t kSuccessRunEndingRateCut = 50;
  // The most bytes of a triggering reply kept per override.
  static constexpr size_t kMaxReplyText = 512;

  // The shipped rules.
  BackoffEvaluator();
  BackoffEvaluator(std::vector<conf::BackoffRule> rules, BackoffRuleOrigin origin);
  // policy->backoff when policy.backoff was given (even []), else the
  // shipped rules; policy may be null (no policy: section).
  explicit BackoffEvaluator(const conf::PolicyConfig* policy);

  // A reload: the new rules apply from the next reply. Overrides in force
  // stay until they end (they carry their own rule text); pending `when`
  // counts are dropped, since rule positions may have changed.
  void reconfigure(const conf::PolicyConfig* policy);
  void reconfigure(std::vector<conf::BackoffRule> rules, BackoffRuleOrigin origin);

  BackoffRuleOrigin origin() const { return origin_; }
  size_t rule_count() const { return rules_.size(); }

  // One remote reply on queue `key`: code (e.g. 421), enhanced ("4.7.28" or
  // "") and text (lines joined with a space, without the codes). Returns
  // the activation when a rule fired and took effect (see above), else
  // nullopt. 2xx and 3xx return nullopt at once.
  std::optional<BackoffActivation> evaluate(std::string_view key, int code,
                                            std::string_view enhanced, std::string_view text,
                                            runtime::WallTime now);

  // One recipient delivered (2xx) on `key`. Returns true when this ended
  // the queue's rate cut (the kSuccessRunEndingRateCut-th delivery in a
  // row): the caller drops its gauge then, as for expire(); the key is not
  // reported again by expire().
  bool delivered(std::string_view key, runtime::WallTime now);

  // The multiplier of the queue's rate at `now`: 1.0 without a rate cut in
  // force (also while suspended); with one, linear from its factor at
  // activation to 1.0 at activation + recover_after.
  double rate_factor(std::string_view key, runtime::WallTime now) const;
  // The end of the queue's suspension, if one is in force at `now`.
  std::optional<runtime::WallTime> suspended_until(std::string_view key,
                                                   runtime::WallTime now) const;
  // The override in force at `now` (until > now), if any.
  std::optional<BackoffOverride> active(std::string_view key, runtime::WallTime now) const;
  // Each override in force at `now`, in no particular order.
  void for_each_active(
      runtime::WallTime now,
      const std::function<void(const std::string& key, const BackoffOverride&)>& visit) const;

  // An override read back at start-up: in force again on `key` when it
  // has not ended by `now` (true); a suspension or a rate cut only.
  bool restore(const std::string& key, const BackoffOverride& override_in_force,
               runtime::WallTime now);

  // POST /api/v1/queue/resume: forgets the queue's override and pending
  // counts. Returns whether an override was there.
  bool cancel(std::string_view key);
  // Ends the overrides whose until <= now, appending their keys to *ended
  // (ended may be null), and forgets counts no longer within their window.
  void expire(runtime::WallTime now, std::vector<std::string>* ended);
  // The earliest until among the overrides held (for the caller's timer).
  std::optional<runtime::WallTime> next_expiry() const;

  // Activations returned so far, by kind (for
  // ringmail_backoff_activations_total{action}).
  uint64_t activations(BackoffKind kind) const;
  // Queues with any state (an override or a pending count).
  size_t tracked_keys() const { return keys_.size(); }

  // "421 4.7.0 /(?i)try again later/ -> suspend 15m when 3 within 10m":
  // the given parts of the match, the action, the `when`.
  static std::string rule_text(const conf::BackoffRule& rule);

 private:
  struct Rule {
    conf::BackoffRule rule;
    std::string text;
  };
  struct PendingCount {
    size_t rule_index = 0;
    std::vector<runtime::WallTime> replies;  // oldest first, fewer than the rule's count
  };
  struct KeyState {
    std::optional<BackoffOverride> override_in_force;
    uint32_t success_run = 0;
    std::vector<PendingCount> pending;
    bool empty() const { return !override_in_force && pending.empty(); }
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  using KeyMap = std::unordered_map<std::string, KeyState, KeyHash, std::equal_to<>>;

  const KeyState* find(std::string_view key) const;
  // Counts one matching reply; true when it is the count-th within the window.
  bool count_reaches(KeyState& state, size_t rule_index, const conf::BackoffWhen& when,
                     runtime::WallTime now) const;
  void prune_pending(KeyState& state, runtime::WallTime now) const;

  std::vector<Rule> rules_;
  BackoffRuleOrigin origin_ = BackoffRuleOrigin::shipped;
  KeyMap keys_;
  std::array<uint64_t, 3> activations_{};
};

}  // namespace ringmail::policy
