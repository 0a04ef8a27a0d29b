// tests/policy/backoff_defaults_test.cc — the shipped backoff rules against
// the real rate-limit replies of Gmail, Yahoo and Microsoft, and against
// near-misses that must leave the queue alone.
#include "policy/backoff_defaults.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>

#include "policy/backoff_evaluator.h"
#include "runtime/clock.h"

namespace ringmail::policy {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

struct Case {
  int code;
  const char* enhanced;
  const char* text;  // as the client session joins it: without code and enhanced code
  std::optional<BackoffKind> kind;  // nullopt: no rule may fire
  runtime::Millis lasts{0};         // suspend: the hold; rate_factor: the recovery
  double factor = 1.0;
  int replies = 1;  // how many of them it takes (a `when` rule)
};

const auto kSuspend = BackoffKind::suspend;
const auto kRate = BackoffKind::rate_factor;

// Replies as the servers send them (from the providers' pages and from
// delivery logs quoted in their help forums).
const Case kCorpus[] = {
    // Gmail, 4.7.28: cut to a trickle.
    {421, "4.7.28",
     "[192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail originating "
     "from your IP address. To protect our users from spam, mail sent from your IP address has "
     "been temporarily rate limited. Please visit "
     "https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email "
     "Senders Guidelines. d75a77b69052e-4b2f5a9c3e1si1234567qtb.404 - gsmtp",
     kRate, minutes(30), 0.1},
    {421, "4.7.28",
     "Gmail has detected an unusual rate of unsolicited mail originating from your SPF domain. To "
     "protect our users from spam, mail sent from your domain has been temporarily rate limited. "
     "Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our "
     "Bulk Email Senders Guidelines. - gsmtp",
     kRate, minutes(30), 0.1},
    {421, "4.7.28",
     "Gmail has detected an unusual rate of unsolicited mail originating from your DKIM domain. "
     "To protect our users from spam, mail sent from your domain has been temporarily rate "
     "limited. - gsmtp",
     kRate, minutes(30), 0.1},
    // Gmail, 4.7.0 "rate limited" / "try again later": a gentler cut.
    {421, "4.7.0",
     "[192.0.2.10] Our system has detected that this message is suspicious due to the very low "
     "reputation of the sending IP address. To protect our users from spam, mail sent from your "
     "IP address has been temporarily rate limited. Please visit "
     "https://support.google.com/mail/answer/188131 for more information. - gsmtp",
     kRate, minutes(30), 0.5},
    {421, "4.7.0", "Try again later, closing connection. (EHLO) - gsmtp", kRate, minutes(30), 0.5},
    {421, "4.7.0", "Temporary System Problem. Try again later. - gsmtp", kRate, minutes(30), 0.5},
    // Yahoo: holds.
    {421, "4.7.0",
     "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     kSuspend, hours(2)},
    {421, "4.7.0",
     "[TSS05] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     kSuspend, hours(4)},
    {421, "4.7.0",
     "[TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT "
     "succeed. See https://postmaster.yahooinc.com/error-codes",
     kSuspend, hours(4)},
    {553, "5.7.2",
     "[TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT "
     "succeed. See https://postmaster.yahooinc.com/error-codes",
     kSuspend, hours(4)},
    // Microsoft: holds.
    {451, "4.7.650",
     "The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For "
     "e-mail delivery information, see https://postmaster.live.com (S775) "
     "[DB5EUR03FT012.eop-EUR03.prod.protection.outlook.com 2026-12-03T10:00:00.000Z]",
     kSuspend, hours(1)},
    {451, "4.7.651",
     "The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. For "
     "e-mail delivery information, see https://postmaster.live.com (S3114)",
     kSuspend, hours(1)},
    {451, "4.7.500",
     "Server busy. Please try again later from [192.0.2.10]. (S77719) "
     "[BN8NAM11FT066.eop-nam11.prod.protection.outlook.com]",
     kSuspend, minutes(30)},
    {451, "4.7.500", "Server busy. Please try again later from [192.0.2.10]. (S77714)", kSuspend,
     minutes(30)},
    // Generic throttles: three within ten minutes.
    {421, "4.7.0", "mail.example.net Error: too many connections from 192.0.2.10", kRate,
     minutes(30), 0.5, 3},
    // (this one written for the test: the reputation text of Microsoft's
    // 4.7.650 under another code, as smaller providers copy it)
    {450, "4.7.1",
     "Service unavailable, Client host [192.0.2.10] has been rate limited due to IP reputation",
     kRate, minutes(30), 0.5, 3},
    {421, "",
     "Connection refused, too many sessions from 192.0.2.10. Please lower the number of "
     "concurrent sessions. IB007",
     kRate, minutes(30), 0.5, 3},

    // Near-misses: nothing.
    {550, "5.7.1",
     "[192.0.2.10] Our system has detected an unusual rate of unsolicited mail originating from "
     "your IP address. To protect our users from spam, mail sent from your IP address has been "
     "blocked. - gsmtp",
     std::nullopt},
    {554, "5.7.1", "Service unavailable; Client host [192.0.2.10] blocked using Spamhaus",
     std::nullopt},
    // (written for the test: a permanent reply in the generic throttle's words)
    {550, "5.7.1", "Message rejected: sender rate limited due to IP reputation", std::nullopt},
    {450, "4.2.1",
     "The user you are trying to contact is receiving mail at a rate that prevents additional "
     "messages from being delivered. Please resend your message at a later time. - gsmtp",
     std::nullopt},
    {421, "4.7.0", "TLS required for RCPT domain, closing connection. - gsmtp", std::nullopt},
    {421, "4.7.0", "IP not in whitelist for RCPT domain, closing connection. - gsmtp",
     std::nullopt},
    {421, "4.4.5", "Server busy, try again later. - gsmtp", std::nullopt},
    {421, "4.7.1",
     "[TS03] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT succeed",
     std::nullopt},
    {452, "4.2.2", "The recipient's inbox is out of storage space. - gsmtp", std::nullopt},
    {550, "5.1.1", "The email account that you tried to reach does not exist. - gsmtp",
     std::nullopt},
    {451, "4.7.5", "Temporary failure, try again later", std::nullopt},
    {250, "2.0.0", "OK 1764756000 d75a77b69052e-4b2f5a9c3e1si - gsmtp", std::nullopt},
};

TEST(ShippedBackoffRules, RealRepliesAndNearMisses) {
  runtime::FakeClock clock;
  std::set<size_t> rules_hit;
  int n = 0;
  for (const Case& c : kCorpus) {
    BackoffEvaluator backoff;  // the shipped rules
    const std::string key = "ip1|site" + std::to_string(n++);
    SCOPED_TRACE(std::to_string(c.code) + " " + c.enhanced + " " + c.text);
    for (int i = 1; i < c.replies; ++i) {
      EXPECT_FALSE(backoff.evaluate(key, c.code, c.enhanced, c.text, clock.wall()))
          << "reply " << i << " of " << c.replies;
    }
    auto fired = backoff.evaluate(key, c.code, c.enhanced, c.text, clock.wall());
    if (!c.kind) {
      EXPECT_FALSE(fired) << (fired ? fired->rule : "");
      EXPECT_EQ(backoff.tracked_keys(), 0u);
      continue;
    }
    ASSERT_TRUE(fired);
    rules_hit.insert(fired->rule_index);
    EXPECT_TRUE(fired->shipped);
    EXPECT_EQ(fired->kind, *c.kind) << fired->rule;
    EXPECT_EQ(fired->until - clock.wall(), c.lasts) << fired->rule;
    EXPECT_DOUBLE_EQ(fired->factor, c.factor) << fired->rule;
    EXPECT_EQ(fired->rule, BackoffEvaluator::rule_text(shipped_backoff_rules()[fired->rule_index]));
    ASSERT_TRUE(backoff.active(key, clock.wall()));
  }
  // Every shipped rule is shown a reply it exists for.
  EXPECT_EQ(rules_hit.size(), shipped_backoff_rules().size());
}

TEST(ShippedBackoffRules, AsText) {
  const auto& rules = shipped_backoff_rules();
  ASSERT_GE(rules.size(), 10u);
  EXPECT_EQ(BackoffEvaluator::rule_text(rules[0]),
            "421 4.7.28 -> rate_factor 0.1 recover_after 30m");
  EXPECT_EQ(BackoffEvaluator::rule_text(rules[1]), "421 /\\[TSS04\\]/ -> suspend 2h");
  EXPECT_EQ(BackoffEvaluator::rule_text(rules.back()),
            "421 /(?i)rate limited due to (ip|sender|domain) reputation|too many (concurrent "
            "|simultaneous )?(smtp )?(connections|sessions)/ -> rate_factor 0.5 recover_after 30m "
            "when 3 within 10m");
}

}  // namespace
}  // namespace ringmail::policy
