// tests/policy/backoff_evaluator_test.cc — replies with times in, activations
// and overrides out: first match, `when` windows, which activation replaces
// which, linear recovery, the success run, cancel, expiry, memory, and
// operator rules replacing the shipped ones.
#include "policy/backoff_evaluator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "conf/config_policy.h"
#include "policy/backoff_defaults.h"
#include "runtime/clock.h"

namespace ringmail::policy {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

conf::BackoffAction suspend(conf::Duration d) {
  conf::BackoffAction a;
  a.kind = BackoffKind::suspend;
  a.suspend = d;
  return a;
}

conf::BackoffAction rate_cut(double factor, conf::Duration recover_after) {
  conf::BackoffAction a;
  a.kind = BackoffKind::rate_factor;
  a.rate_factor = factor;
  a.recover_after = recover_after;
  return a;
}

conf::BackoffAction bounce() {
  conf::BackoffAction a;
  a.kind = BackoffKind::bounce;
  return a;
}

conf::BackoffRule rule(std::optional<int> code, std::string enhanced, std::string text,
                       conf::BackoffAction action,
                       std::optional<conf::BackoffWhen> when = std::nullopt) {
  return conf::BackoffRule{conf::make_response_match(code, std::move(enhanced), std::move(text)),
                           action, when};
}

BackoffEvaluator configured(std::vector<conf::BackoffRule> rules) {
  return BackoffEvaluator(std::move(rules), BackoffRuleOrigin::configured);
}

const char* const kKey = "ip1|mx.example.test";
const char* const kTss04 =
    "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
    "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes";

TEST(BackoffEvaluator, OnlyFailuresAreMatched) {
  // A rule that would match any text: 2xx and 3xx still never reach it.
  auto backoff = configured({rule(std::nullopt, "", "", suspend(minutes(15)))});
  runtime::FakeClock clock;
  for (int code : {200, 220, 221, 250, 251, 252, 334, 354, 399, 600, 0, -1}) {
    EXPECT_FALSE(backoff.evaluate(kKey, code, "2.0.0", "OK rate limited", clock.wall())) << code;
  }
  EXPECT_EQ(backoff.tracked_keys(), 0u);
  EXPECT_TRUE(backoff.evaluate(kKey, 421, "", "", clock.wall()));
  EXPECT_TRUE(backoff.evaluate("ip1|other", 550, "5.1.1", "no such user", clock.wall()));
}

TEST(BackoffEvaluator, QueuesWithoutMatchingRepliesCostNothing) {
  BackoffEvaluator backoff;
  runtime::FakeClock clock;
  for (int i = 0; i < 20000; ++i) {
    std::string key = "ip1|site" + std::to_string(i);
    EXPECT_FALSE(backoff.evaluate(key, 250, "2.0.0", "OK", clock.wall()));
    EXPECT_FALSE(backoff.evaluate(key, 550, "5.1.1", "User unknown", clock.wall()));
    EXPECT_FALSE(backoff.delivered(key, clock.wall()));
    EXPECT_DOUBLE_EQ(backoff.rate_factor(key, clock.wall()), 1.0);
  }
  EXPECT_EQ(backoff.tracked_keys(), 0u);
}

TEST(BackoffEvaluator, FirstMatchWins) {
  auto backoff = configured({
      rule(421, "", "(?i)rate limit", suspend(minutes(15))),
      rule(421, "4.7", "", rate_cut(0.5, hours(1))),
      rule(std::nullopt, "5.7.1", "(?i)blocked", bounce()),
  });
  runtime::FakeClock clock;
  auto first = backoff.evaluate("a", 421, "4.7.0", "You are RATE LIMITED", clock.wall());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, BackoffKind::suspend);
  EXPECT_EQ(first->rule_index, 0u);
  EXPECT_FALSE(first->shipped);
  EXPECT_EQ(first->rule, "421 /(?i)rate limit/ -> suspend 15m");
  EXPECT_EQ(first->until, clock.wall() + minutes(15));

  auto second = backoff.evaluate("b", 421, "4.7.1", "go away", clock.wall());
  ASSERT_TRUE(second);
  EXPECT_EQ(second->kind, BackoffKind::rate_factor);
  EXPECT_EQ(second->rule_index, 1u);
  EXPECT_EQ(second->rule, "421 4.7 -> rate_factor 0.5 recover_after 1h");
  EXPECT_DOUBLE_EQ(second->factor, 0.5);

  EXPECT_FALSE(backoff.evaluate("c", 421, "4.70.1", "go away", clock.wall()));
  EXPECT_FALSE(backoff.evaluate("c", 451, "4.7.1", "rate limit", clock.wall()));
}

TEST(BackoffEvaluator, BounceIsPerRecipientAndLeavesNoState) {
  auto backoff = configured({rule(550, "5.7.1", "(?i)blocked", bounce())});
  runtime::FakeClock clock;
  for (int i = 0; i < 3; ++i) {
    auto fired = backoff.evaluate(kKey, 550, "5.7.1", "Message blocked", clock.wall());
    ASSERT_TRUE(fired);
    EXPECT_EQ(fired->kind, BackoffKind::bounce);
    EXPECT_EQ(fired->until, clock.wall());
    EXPECT_EQ(fired->rule, "550 5.7.1 /(?i)blocked/ -> bounce");
  }
  EXPECT_EQ(backoff.tracked_keys(), 0u);
  EXPECT_FALSE(backoff.active(kKey, clock.wall()));
  EXPECT_DOUBLE_EQ(backoff.rate_factor(kKey, clock.wall()), 1.0);
  EXPECT_EQ(backoff.activations(BackoffKind::bounce), 3u);
  EXPECT_EQ(backoff.activations(BackoffKind::suspend), 0u);
}

// Replies at the given offsets from the start; whether each one fires.
struct WhenCase {
  const char* name;
  std::vector<runtime::Millis> at;
  std::vector<bool> fires;
};

TEST(BackoffEvaluator, WhenCountsWithinTheWindow) {
  const WhenCase cases[] = {
      {"N-1 within D", {minutes(0), minutes(1)}, {false, false}},
      {"N within D", {minutes(0), minutes(1), minutes(2)}, {false, false, true}},
      {"N within just under D",
       {minutes(0), minutes(5), minutes(10) - milliseconds(1)},
       {false, false, true}},
      {"N spread over exactly D", {minutes(0), minutes(5), minutes(10)}, {false, false, false}},
      {"N spread beyond D",
       {minutes(0), minutes(6), minutes(12), minutes(18)},
       {false, false, false, false}},
      {"old replies leave the window, new ones count",
       {minutes(0), minutes(11), minutes(12), minutes(13)},
       {false, false, false, true}},
      {"the count restarts after firing",
       {seconds(0), seconds(1), seconds(2), seconds(3), seconds(4), seconds(5)},
       {false, false, true, false, false, true}},
  };
  for (const WhenCase& c : cases) {
    SCOPED_TRACE(c.name);
    // Sent every time so that the fires show the count, not the override.
    auto backoff = configured(
        {rule(421, "", "(?i)try again later", bounce(), conf::BackoffWhen{3, minutes(10)})});
    runtime::FakeClock clock;
    const runtime::WallTime start = clock.wall();
    ASSERT_EQ(c.at.size(), c.fires.size());
    for (size_t i = 0; i < c.at.size(); ++i) {
      auto fired = backoff.evaluate(kKey, 421, "4.7.0", "Try again later", start + c.at[i]);
      EXPECT_EQ(fired.has_value(), c.fires[i]) << "reply " << i;
    }
  }
}

TEST(BackoffEvaluator, WhenCountsPerQueueAndRule) {
  auto backoff = configured({
      rule(421, "", "alpha", suspend(minutes(5)), conf::BackoffWhen{2, minutes(10)}),
      rule(421, "", "beta", suspend(minutes(5)), conf::BackoffWhen{2, minutes(10)}),
  });
  runtime::FakeClock clock;
  EXPECT_FALSE(backoff.evaluate("q1", 421, "", "alpha", clock.wall()));
  EXPECT_FALSE(backoff.evaluate("q2", 421, "", "alpha", clock.wall()));
  EXPECT_FALSE(backoff.evaluate("q1", 421, "", "beta", clock.wall()));
  EXPECT_EQ(backoff.tracked_keys(), 2u);
  auto fired = backoff.evaluate("q1", 421, "", "alpha", clock.wall());
  ASSERT_TRUE(fired);
  EXPECT_EQ(fired->rule, "421 /alpha/ -> suspend 5m when 2 within 10m");
  EXPECT_FALSE(backoff.active("q2", clock.wall()));
}

TEST(BackoffEvaluator, RateCutRecoversLinearly) {
  auto backoff = configured({rule(421, "4.7.28", "", rate_cut(0.2, minutes(30)))});
  runtime::FakeClock clock;
  const runtime::WallTime t0 = clock.wall();
  ASSERT_TRUE(backoff.evaluate(kKey, 421, "4.7.28", "rate limited", t0));
  struct Point {
    runtime::Millis at;
    double factor;
  };
  const Point points[] = {
      {minutes(0), 0.2},
      {minutes(15), 0.6},
      {minutes(30), 1.0},
      {minutes(7) + seconds(30), 0.4},
      {minutes(45), 1.0},
      {-minutes(1), 0.2},
      {minutes(29), 0.2 + 0.8 * 29.0 / 30.0},
  };
  for (const Point& p : points) {
    EXPECT_NEAR(backoff.rate_factor(kKey, t0 + p.at), p.factor, 1e-9) << p.at.count();
  }
  EXPECT_FALSE(backoff.suspended_until(kKey, t0));
  auto active = backoff.active(kKey, t0 + minutes(15));
  ASSERT_TRUE(active);
  EXPECT_EQ(active->kind, BackoffKind::rate_factor);
  EXPECT_EQ(active->since, t0);
  EXPECT_EQ(active->until, t0 + minutes(30));
  EXPECT_FALSE(backoff.active(kKey, t0 + minutes(30)));
  EXPECT_DOUBLE_EQ(backoff.rate_factor("ip1|elsewhere", t0), 1.0);
}

TEST(BackoffEvaluator, SuccessRunEndsARateCutEarly) {
  auto backoff = configured({rule(421, "", "", rate_cut(0.1, hours(1)))});
  runtime::FakeClock clock;
  ASSERT_TRUE(backoff.evaluate(kKey, 421, "4.7.0", "slow down", clock.wall()));
  const uint32_t run = BackoffEvaluator::kSuccessRunEndingRateCut;
  for (uint32_t i = 1; i < run; ++i) EXPECT_FALSE(backoff.delivered(kKey, clock.wall())) << i;
  // A transient failure starts the run again; a verdict on one recipient
  // does not; a policy block does.
  EXPECT_FALSE(backoff.evaluate(kKey, 450, "4.2.1", "receiving mail too quickly", clock.wall()));
  for (uint32_t i = 1; i < run; ++i) EXPECT_FALSE(backoff.delivered(kKey, clock.wall())) << i;
  EXPECT_FALSE(backoff.evaluate(kKey, 550, "5.1.1", "User unknown", clock.wall()));
  EXPECT_FALSE(backoff.evaluate(kKey, 554, "5.7.1", "Message blocked", clock.wall()));
  for (uint32_t i = 1; i < run; ++i) EXPECT_FALSE(backoff.delivered(kKey, clock.wall())) << i;
  EXPECT_FALSE(backoff.evaluate(kKey, 550, "5.1.1", "User unknown", clock.wall()));
  EXPECT_LT(backoff.rate_factor(kKey, clock.wall()), 0.2);
  EXPECT_TRUE(backoff.delivered(kKey, clock.wall()));
  EXPECT_DOUBLE_EQ(backoff.rate_factor(kKey, clock.wall()), 1.0);
  EXPECT_FALSE(backoff.active(kKey, clock.wall()));
  EXPECT_EQ(backoff.tracked_keys(), 0u);
  std::vector<std::string> ended;
  backoff.expire(clock.wall() + hours(2), &ended);
  EXPECT_TRUE(ended.empty());
}

TEST(BackoffEvaluator, DeliveriesDoNotEndASuspension) {
  auto backoff = configured({rule(421, "", "", suspend(minutes(15)))});
  runtime::FakeClock clock;
  ASSERT_TRUE(backoff.evaluate(kKey, 421, "", kTss04, clock.wall()));
  for (uint32_t i = 0; i < 2 * BackoffEvaluator::kSuccessRunEndingRateCut; ++i) {
    EXPECT_FALSE(backoff.delivered(kKey, clock.wall()));
  }
  EXPECT_EQ(backoff.suspended_until(kKey, clock.wall()), clock.wall() + minutes(15));
  EXPECT_DOUBLE_EQ(backoff.rate_factor(kKey, clock.wall()), 1.0);
}

// One override in force, then another activation: which one is in force after.
struct ReplaceCase {
  const char* name;
  size_t first;  // rule index
  size_t second;
  runtime::Millis second_at;
  bool replaced;
};

TEST(BackoffEvaluator, AStrongerOrLaterActivationReplaces) {
  const std::vector<conf::BackoffRule> rules = {
      rule(421, "", "short", suspend(minutes(15))),          // 0
      rule(421, "", "long", suspend(hours(1))),              // 1
      rule(421, "", "deep", rate_cut(0.1, minutes(30))),     // 2
      rule(421, "", "shallow", rate_cut(0.5, minutes(30))),  // 3
  };
  const ReplaceCase cases[] = {
      {"a longer hold extends a short one", 0, 1, minutes(1), true},
      {"a short hold does not cut a long one", 1, 0, minutes(1), false},
      {"the same hold again, later, extends it", 0, 0, minutes(5), true},
      {"the same hold at the same time changes nothing", 0, 0, minutes(0), false},
      {"a rate cut does not replace a hold", 0, 2, minutes(1), false},
      {"a hold replaces a rate cut", 2, 0, minutes(1), true},
      {"a shallow cut does not undo a deep one", 2, 3, minutes(1), false},
      {"a shallow cut replaces a deep one mostly recovered", 2, 3, minutes(25), true},
      {"a deep cut replaces a shallow one", 3, 2, minutes(1), true},
      {"the same cut again restarts recovery", 3, 3, minutes(1), true},
      {"the same cut at the same time changes nothing", 3, 3, minutes(0), false},
      {"anything replaces an ended hold", 1, 3, hours(1), true},
  };
  const char* texts[] = {"short", "long", "deep", "shallow"};
  for (const ReplaceCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto backoff = configured(rules);
    runtime::FakeClock clock;
    const runtime::WallTime t0 = clock.wall();
    ASSERT_TRUE(backoff.evaluate(kKey, 421, "", texts[c.first], t0));
    auto second = backoff.evaluate(kKey, 421, "", texts[c.second], t0 + c.second_at);
    EXPECT_EQ(second.has_value(), c.replaced);
    auto active = backoff.active(kKey, t0 + c.second_at);
    ASSERT_TRUE(active);
    EXPECT_EQ(active->rule_index, c.replaced ? c.second : c.first);
    EXPECT_EQ(active->since, c.replaced ? t0 + c.second_at : t0);
    uint64_t total =
        backoff.activations(BackoffKind::suspend) + backoff.activations(BackoffKind::rate_factor);
    EXPECT_EQ(total, c.replaced ? 2u : 1u);
  }
}

TEST(BackoffEvaluator, OverrideShowsRuleAndReply) {
  BackoffEvaluator backoff;
  runtime::FakeClock clock;
  auto fired = backoff.evaluate(kKey, 421, "4.7.0", kTss04, clock.wall());
  ASSERT_TRUE(fired);
  EXPECT_TRUE(fired->shipped);
  auto active = backoff.active(kKey, clock.wall());
  ASSERT_TRUE(active);
  EXPECT_EQ(active->kind, BackoffKind::suspend);
  EXPECT_EQ(active->rule, "421 /\\[TSS04\\]/ -> suspend 2h");
  EXPECT_EQ(active->reply, std::string("421 4.7.0 ") + kTss04);
  EXPECT_EQ(active->until, clock.wall() + hours(2));
  EXPECT_EQ(backoff.suspended_until(kKey, clock.wall()), clock.wall() + hours(2));
  EXPECT_FALSE(backoff.suspended_until(kKey, clock.wall() + hours(2)));

  // A long reply is cut, and not inside a UTF-8 character: "553 5.7.2 [TSS09] "
  // is 18 bytes, so the first "é" takes the last byte within the cap and the
  // one after it.
  const size_t cap = BackoffEvaluator::kMaxReplyText;
  std::string text = "[TSS09] " + std::string(cap - 1 - 18, 'x') + "\xC3\xA9\xC3\xA9";
  ASSERT_TRUE(backoff.evaluate("ip1|long", 553, "5.7.2", text, clock.wall()));
  const std::string reply = backoff.active("ip1|long", clock.wall())->reply;
  EXPECT_EQ(reply, "553 5.7.2 [TSS09] " + std::string(cap - 1 - 18, 'x'));
}

TEST(BackoffEvaluator, CancelEndsTheOverride) {
  auto backoff = configured({
      rule(421, "", "hold", suspend(hours(1))),
      rule(421, "", "count", suspend(hours(1)), conf::BackoffWhen{2, hours(1)}),
  });
  runtime::FakeClock clock;
  ASSERT_TRUE(backoff.evaluate(kKey, 421, "", "hold", clock.wall()));
  EXPECT_FALSE(backoff.evaluate(kKey, 421, "", "count", clock.wall()));
  EXPECT_TRUE(backoff.cancel(kKey));
  EXPECT_FALSE(backoff.active(kKey, clock.wall()));
  EXPECT_FALSE(backoff.suspended_until(kKey, clock.wall()));
  EXPECT_EQ(backoff.tracked_keys(), 0u);
  EXPECT_FALSE(backoff.cancel(kKey));
  EXPECT_FALSE(backoff.cancel("ip1|never"));
  // The pending count went too: one more reply is the first again.
  EXPECT_FALSE(backoff.evaluate(kKey, 421, "", "count", clock.wall()));
}

TEST(BackoffEvaluator, ExpireReturnsTheQueuesWhoseOverrideEnded) {
  auto backoff = configured({
      rule(421, "", "hold", suspend(minutes(15))),
      rule(421, "", "cut", rate_cut(0.5, hours(1))),
      rule(421, "", "count", suspend(hours(1)), conf::BackoffWhen{5, minutes(10)}),
  });
  runtime::FakeClock clock;
  const runtime::WallTime t0 = clock.wall();
  ASSERT_TRUE(backoff.evaluate("ip1|a", 421, "", "hold", t0));
  ASSERT_TRUE(backoff.evaluate("ip1|b", 421, "", "cut", t0));
  EXPECT_FALSE(backoff.evaluate("ip1|c", 421, "", "count", t0));
  EXPECT_EQ(backoff.tracked_keys(), 3u);
  EXPECT_EQ(backoff.next_expiry(), t0 + minutes(15));

  std::map<std::string, double> seen;
  backoff.for_each_active(t0 + minutes(30), [&](const std::string& key, const BackoffOverride& o) {
    seen[key] = o.factor;
  });
  EXPECT_EQ(seen, (std::map<std::string, double>{{"ip1|b", 0.5}}));

  std::vector<std::string> ended;
  backoff.expire(t0 + minutes(15) - milliseconds(1), &ended);
  EXPECT_TRUE(ended.empty());
  backoff.expire(t0 + minutes(15), &ended);
  EXPECT_EQ(ended, std::vector<std::string>{"ip1|a"});
  // The pending count is forgotten once its reply left the window.
  EXPECT_EQ(backoff.tracked_keys(), 1u);
  EXPECT_EQ(backoff.next_expiry(), t0 + hours(1));
  ended.clear();
  backoff.expire(t0 + hours(1), &ended);
  EXPECT_EQ(ended, std::vector<std::string>{"ip1|b"});
  EXPECT_EQ(backoff.tracked_keys(), 0u);
  EXPECT_FALSE(backoff.next_expiry());
  backoff.expire(t0 + hours(2), nullptr);
}

TEST(BackoffEvaluator, OperatorRulesReplaceTheShippedOnes) {
  const char* gmail =
      "Our system has detected an unusual rate of unsolicited mail originating from your IP "
      "address. To protect our users from spam, mail sent from your IP address has been "
      "temporarily rate limited. - gsmtp";
  runtime::FakeClock clock;

  BackoffEvaluator no_policy(nullptr);
  EXPECT_EQ(no_policy.origin(), BackoffRuleOrigin::shipped);
  EXPECT_EQ(no_policy.rule_count(), shipped_backoff_rules().size());
  EXPECT_TRUE(no_policy.evaluate(kKey, 421, "4.7.28", gmail, clock.wall()));

  conf::PolicyConfig absent;  // policy: without backoff
  EXPECT_TRUE(BackoffEvaluator(&absent).evaluate(kKey, 421, "4.7.28", gmail, clock.wall()));

  conf::PolicyConfig disabled;  // backoff: []
  disabled.backoff_given = true;
  BackoffEvaluator none(&disabled);
  EXPECT_EQ(none.origin(), BackoffRuleOrigin::configured);
  EXPECT_EQ(none.rule_count(), 0u);
  EXPECT_FALSE(none.evaluate(kKey, 421, "4.7.28", gmail, clock.wall()));
  EXPECT_FALSE(none.evaluate(kKey, 421, "4.7.0", kTss04, clock.wall()));

  conf::PolicyConfig own;
  own.backoff_given = true;
  own.backoff.push_back(rule(421, "", "(?i)try again later", suspend(minutes(15))));
  BackoffEvaluator mine(&own);
  EXPECT_FALSE(mine.evaluate(kKey, 421, "4.7.28", gmail, clock.wall()));
  auto fired = mine.evaluate(kKey, 421, "4.7.0", "Try again later", clock.wall());
  ASSERT_TRUE(fired);
  EXPECT_FALSE(fired->shipped);
  EXPECT_EQ(fired->rule_index, 0u);
}

TEST(BackoffEvaluator, ReconfigureKeepsOverridesAndDropsCounts) {
  auto backoff = configured({
      rule(421, "", "hold", suspend(hours(1))),
      rule(421, "", "count", suspend(hours(1)), conf::BackoffWhen{2, hours(1)}),
  });
  runtime::FakeClock clock;
  ASSERT_TRUE(backoff.evaluate("ip1|a", 421, "", "hold", clock.wall()));
  EXPECT_FALSE(backoff.evaluate("ip1|b", 421, "", "count", clock.wall()));
  EXPECT_EQ(backoff.tracked_keys(), 2u);

  conf::PolicyConfig reloaded;
  reloaded.backoff_given = true;
  reloaded.backoff.push_back(
      rule(421, "", "count", suspend(hours(1)), conf::BackoffWhen{2, hours(1)}));
  backoff.reconfigure(&reloaded);
  EXPECT_EQ(backoff.tracked_keys(), 1u);
  auto kept = backoff.active("ip1|a", clock.wall());
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->rule, "421 /hold/ -> suspend 1h");
  EXPECT_FALSE(backoff.evaluate("ip1|b", 421, "", "count", clock.wall()));
  EXPECT_TRUE(backoff.evaluate("ip1|b", 421, "", "count", clock.wall()));

  backoff.reconfigure(nullptr);
  EXPECT_EQ(backoff.origin(), BackoffRuleOrigin::shipped);
  EXPECT_TRUE(backoff.active("ip1|a", clock.wall()));
}

TEST(BackoffEvaluator, RuleText) {
  struct Case {
    conf::BackoffRule rule;
    const char* text;
  };
  const Case cases[] = {
      {rule(421, "", "(?i)rate limit", suspend(minutes(15))),
       "421 /(?i)rate limit/ -> suspend 15m"},
      {rule(std::nullopt, "5.7", "", bounce()), "5.7 -> bounce"},
      {rule(451, "4.7.650", "", suspend(hours(36))), "451 4.7.650 -> suspend 36h"},
      {rule(421, "", "", suspend(hours(48))), "421 -> suspend 2d"},
      {rule(421, "", "", suspend(milliseconds(1500))), "421 -> suspend 1500ms"},
      {rule(421, "", "", rate_cut(0.25, seconds(90)), conf::BackoffWhen{4, seconds(30)}),
       "421 -> rate_factor 0.25 recover_after 90s when 4 within 30s"},
  };
  for (const Case& c : cases) EXPECT_EQ(BackoffEvaluator::rule_text(c.rule), c.text);
}

TEST(BackoffEvaluator, RestoredOverridesAreInForceUntilTheirEnd) {
  BackoffEvaluator e = configured({rule(421, "", "", suspend(hours(2)))});
  const runtime::WallTime now = runtime::WallTime(hours(1000));
  BackoffOverride held;
  held.kind = BackoffKind::suspend;
  held.since = now - minutes(30);
  held.until = now + minutes(90);
  held.rule = "421 -> suspend 2h";
  held.reply = "421 4.7.0 [TSS04] deferred";
  ASSERT_TRUE(e.restore(kKey, held, now));
  EXPECT_EQ(e.suspended_until(kKey, now), held.until);
  ASSERT_TRUE(e.active(kKey, now));
  EXPECT_EQ(e.active(kKey, now)->reply, held.reply);
  EXPECT_EQ(e.next_expiry(), held.until);
  EXPECT_EQ(e.activations(BackoffKind::suspend), 0u) << "a restore is not a new activation";

  BackoffOverride cut;
  cut.kind = BackoffKind::rate_factor;
  cut.since = now - minutes(15);
  cut.until = now + minutes(15);
  cut.factor = 0.2;
  ASSERT_TRUE(e.restore("other", cut, now));
  EXPECT_NEAR(e.rate_factor("other", now), 0.6, 1e-9) << "halfway through its recovery";

  BackoffOverride ended = held;
  ended.until = now;
  EXPECT_FALSE(e.restore("ended", ended, now)) << "ended while the daemon was down";
  BackoffOverride bounced = held;
  bounced.kind = BackoffKind::bounce;
  EXPECT_FALSE(e.restore("bounce", bounced, now)) << "a bounce leaves no override";
  EXPECT_FALSE(e.active("ended", now));
  EXPECT_EQ(e.tracked_keys(), 2u);

  std::vector<std::string> expired;
  e.expire(held.until, &expired);
  std::sort(expired.begin(), expired.end());
  EXPECT_EQ(expired, (std::vector<std::string>{kKey, "other"}));
  EXPECT_FALSE(e.active(kKey, held.until));
}

}  // namespace
}  // namespace ringmail::policy
