// What each tenant may submit (policy.tenants[].max_messages): a token per
// message with a burst of the rate's count, other tenants unaffected, the
// time of the next token, reloads that keep what was spent, and many
// threads at once.
#include "policy/submission_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ringmail::policy {
namespace {

using namespace std::chrono_literals;

const runtime::SteadyTime kStart{std::chrono::hours(1000)};

conf::TenantPolicy tenant(std::string name, std::optional<const char*> max_messages) {
  conf::TenantPolicy t;
  t.name = std::move(name);
  if (max_messages) t.max_messages = conf::parse_rate(*max_messages);
  return t;
}

conf::PolicyConfig policy_with(std::vector<conf::TenantPolicy> tenants) {
  conf::PolicyConfig policy;
  policy.tenants = std::move(tenants);
  return policy;
}

// "+" admitted, "-" refused, one character per message.
std::string admit(SubmissionLimiter& limiter, std::string_view tenant, int n,
                  runtime::SteadyTime now) {
  std::string out;
  for (int i = 0; i < n; ++i) out += limiter.admit(tenant, now).admitted ? '+' : '-';
  return out;
}

TEST(SubmissionLimiter, EachTenantHasItsOwnLimit) {
  const conf::PolicyConfig policy =
      policy_with({tenant("app1", "3/h"), tenant("127.0.0.1/32", "5/m"), tenant("app2", {})});
  struct Case {
    const char* tenant;
    int messages;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"app1", 5, "+++--"},
      {"127.0.0.1/32", 7, "+++++--"},
      {"app2", 50, std::string(50, '+')},  // no max_messages
      {"stranger", 50, std::string(50, '+')},
      {"", 50, std::string(50, '+')},
  };
  for (const auto& c : cases) {
    SubmissionLimiter limiter;
    limiter.set_policy(&policy, kStart);
    EXPECT_TRUE(limiter.limits_any());
    // Another tenant spending its limit first changes nothing.
    admit(limiter, c.tenant == std::string("app1") ? "127.0.0.1/32" : "app1", 10, kStart);
    EXPECT_EQ(admit(limiter, c.tenant, c.messages, kStart), c.expected) << c.tenant;
  }
}

TEST(SubmissionLimiter, ARefusalNamesTheLimitAndTheNextToken) {
  const conf::PolicyConfig policy = policy_with({tenant("app1", "3/h")});
  SubmissionLimiter limiter;
  limiter.set_policy(&policy, kStart);
  EXPECT_EQ(admit(limiter, "app1", 3, kStart), "+++");
  SubmissionVerdict refused = limiter.admit("app1", kStart + 5min);
  EXPECT_FALSE(refused.admitted);
  EXPECT_EQ(refused.limit, "3/h");
  EXPECT_EQ(refused.retry_after, 15min);  // one token every 20 minutes
  // A refusal takes nothing: the token comes when announced.
  EXPECT_EQ(admit(limiter, "app1", 1, kStart + 20min - 1ms), "-");
  EXPECT_EQ(admit(limiter, "app1", 2, kStart + 20min), "+-");
  EXPECT_EQ(limiter.admit("app1", kStart + 20min).retry_after, 20min);
  EXPECT_EQ(admit(limiter, "app1", 4, kStart + 3h), "+++-");  // never more than the burst
}

TEST(SubmissionLimiter, WithoutLimitsEverythingIsAdmitted) {
  const conf::PolicyConfig none = policy_with({tenant("app1", {})});
  for (const conf::PolicyConfig* policy :
       {static_cast<const conf::PolicyConfig*>(nullptr), &none}) {
    SubmissionLimiter limiter;
    limiter.set_policy(policy, kStart);
    EXPECT_FALSE(limiter.limits_any());
    EXPECT_EQ(admit(limiter, "app1", 20, kStart), std::string(20, '+'));
  }
  SubmissionLimiter never_set;
  EXPECT_TRUE(never_set.admit("app1", kStart).admitted);
}

TEST(SubmissionLimiter, AReloadKeepsWhatWasSpent) {
  struct Case {
    const char* name;
    std::optional<const char*> before, after;
    int spent;             // messages admitted before the reload
    const char* expected;  // the next messages after it
  };
  const std::vector<Case> cases = {
      {"unchanged", "3/h", "3/h", 3, "-"}, {"raised", "3/h", "10/h", 3, "+++++++-"},
      {"lowered", "10/h", "2/h", 1, "+-"}, {"lowered below what was spent", "10/h", "2/h", 5, "-"},
      {"removed", "3/h", {}, 3, "+++++"},  {"added", {}, "2/h", 3, "++-"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const conf::PolicyConfig before = policy_with({tenant("app1", c.before)});
    const conf::PolicyConfig after = policy_with({tenant("app1", c.after)});
    SubmissionLimiter limiter;
    limiter.set_policy(&before, kStart);
    admit(limiter, "app1", c.spent, kStart);
    limiter.set_policy(&after, kStart + 1s);
    const std::string expected = c.expected;
    EXPECT_EQ(admit(limiter, "app1", static_cast<int>(expected.size()), kStart + 1s), expected);
  }
}

TEST(SubmissionLimiter, ThreadsNeverAdmitMoreThanTheLimit) {
  const conf::PolicyConfig policy = policy_with({tenant("app1", "1000/h")});
  SubmissionLimiter limiter;
  limiter.set_policy(&policy, kStart);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) admitted += limiter.admit("app1", kStart).admitted ? 1 : 0;
    });
  }
  threads.emplace_back([&] {  // reloads meanwhile keep the count
    for (int i = 0; i < 50; ++i) limiter.set_policy(&policy, kStart);
  });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 1000);
}

}  // namespace
}  // namespace ringmail::policy
