// tests/conf/config_policy_test.cc — the policy: section: rates, response
// matches, backoff actions, warm-up schedules and bounce rules.
#include "conf/config_policy.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "conf/config.h"
#include "conf/config_users.h"
#include "tests/conf/conf_test_support.h"

namespace ringmail::conf {
namespace {

using testing::has_problem;
using testing::TempDir;

constexpr const char* kBase =
    "hostname: mx.example.test\n"                        // 1
    "listeners: [{name: a, address: 127.0.0.1:2525}]\n"  // 2
    "spool: {path: spool}\n"                             // 3
    "policy:\n"                                          // 4
    "  sources:\n"                                       // 5
    "    - {name: ip1, address: 192.0.2.10}\n"           // 6
    "    - {name: ip2, address: \"2001:db8::10\"}\n";    // 7

class PolicyTest : public ::testing::Test {
 protected:
  LoadResult load(std::string_view policy_lines) {
    file_ = dir_.write("ringmail.yaml", std::string(kBase) + std::string(policy_lines));
    return load_config(file_);
  }
  std::string at(int line, std::string_view key_path) const {
    return file_.string() + ":" + std::to_string(line) + ": " + std::string(key_path) + ": ";
  }
  TempDir dir_;
  std::filesystem::path file_;
};

TEST(ParseRate, Table) {
  EXPECT_EQ(parse_rate("300/m"), (Rate{300, std::chrono::minutes(1)}));
  EXPECT_EQ(parse_rate("5/s"), (Rate{5, std::chrono::seconds(1)}));
  EXPECT_EQ(parse_rate("50/h"), (Rate{50, std::chrono::hours(1)}));
  EXPECT_EQ(parse_rate("1000/d"), (Rate{1000, std::chrono::hours(24)}));
  EXPECT_DOUBLE_EQ(parse_rate("300/m")->per_second(), 5.0);
  for (const char* bad : {"300", "/m", "300/", "300/w", "0/m", "-1/m", "1.5/s", "300 /m", "x/m"}) {
    EXPECT_FALSE(parse_rate(bad).has_value()) << bad;
  }
}

TEST(FormatRate, RoundTripsWithParseRate) {
  for (const char* text : {"300/m", "5/s", "10000/h", "1000/d"}) {
    EXPECT_EQ(format_rate(*parse_rate(text)), text);
  }
  EXPECT_EQ(format_rate(Rate{5, std::chrono::milliseconds(1500)}), "5/1500ms");
}

TEST(BounceCategories, RoundTrip) {
  EXPECT_EQ(all_bounce_categories().size(), 29u);
  for (BounceCategory category : all_bounce_categories()) {
    EXPECT_EQ(parse_bounce_category(bounce_category_name(category)), category);
  }
  EXPECT_EQ(bounce_category_name(BounceCategory::InvalidRecipient), "InvalidRecipient");
  EXPECT_FALSE(parse_bounce_category("invalidrecipient").has_value());
}

TEST_F(PolicyTest, FullPolicyLoads) {
  auto result = load(
      "  pools:\n"
      "    - {name: default, sources: [ip1, ip2]}\n"
      "  shaping:\n"
      "    - match: {domain: Example.ORG}\n"
      "      connection_rate: 10/s\n"
      "    - match: {provider: yahoo}\n"
      "      max_messages_per_connection: 20\n"
      "  backoff:\n"
      "    - match: {code: 421, enhanced: \"4.7\"}\n"
      "      action: {rate_factor: 0.5, recover_after: 1h}\n"
      "    - match: {enhanced: 5.7.1, text: blocked}\n"
      "      action: {bounce: true}\n"
      "  warmup:\n"
      "    - {source: ip2, schedule: [50/h, 1000/d, unlimited]}\n"
      "  bounce_rules:\n"
      "    - match: {code: 550, text: \"(?i)user unknown\"}\n"
      "      category: InvalidRecipient\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const PolicyConfig& policy = *result.config->policy;
  ASSERT_EQ(policy.sources.size(), 2u);
  EXPECT_EQ(policy.find_source("ip2")->address.family, AF_INET6);
  EXPECT_EQ(policy.find_pool("default")->sources.size(), 2u);
  ASSERT_EQ(policy.shaping.size(), 2u);
  EXPECT_EQ(policy.shaping[0].match.value, "example.org");
  EXPECT_EQ(policy.shaping[0].connection_rate, (Rate{10, std::chrono::seconds(1)}));
  EXPECT_FALSE(policy.shaping[0].max_connections.has_value());
  EXPECT_EQ(policy.shaping[1].match.kind, ShapingMatch::Kind::provider);
  ASSERT_EQ(policy.backoff.size(), 2u);
  EXPECT_EQ(policy.backoff[0].action.kind, BackoffAction::Kind::rate_factor);
  EXPECT_DOUBLE_EQ(policy.backoff[0].action.rate_factor, 0.5);
  EXPECT_EQ(policy.backoff[0].action.recover_after, std::chrono::hours(1));
  EXPECT_TRUE(policy.backoff[0].match.matches(421, "4.7.0", "anything"));
  EXPECT_FALSE(policy.backoff[0].match.matches(421, "4.70.0", "anything"));
  EXPECT_FALSE(policy.backoff[0].match.matches(451, "4.7.0", "anything"));
  EXPECT_EQ(policy.backoff[1].action.kind, BackoffAction::Kind::bounce);
  EXPECT_TRUE(policy.backoff[1].match.matches(554, "5.7.1", "Message blocked by policy"));
  EXPECT_FALSE(policy.backoff[1].match.matches(554, "5.7.1", "Message BLOCKED"));
  ASSERT_NE(policy.find_warmup("ip2"), nullptr);
  const auto& schedule = policy.find_warmup("ip2")->schedule;
  ASSERT_EQ(schedule.size(), 3u);
  EXPECT_EQ(schedule[1], (Rate{1000, std::chrono::hours(24)}));
  EXPECT_FALSE(schedule[2].has_value());
  ASSERT_EQ(policy.bounce_rules.size(), 1u);
  EXPECT_EQ(policy.bounce_rules[0].category, BounceCategory::InvalidRecipient);
  EXPECT_TRUE(policy.bounce_rules[0].match.matches(550, "5.1.1", "No such USER UNKNOWN here"));
}

TEST_F(PolicyTest, RuleShapeProblems) {
  auto result = load(
      "  shaping:\n"                                         // 8
      "    - match: {domain: a.test, mx_suffix: .b.test}\n"  // 9
      "      message_rate: 300/w\n"                          // 10
      "  backoff:\n"                                         // 11
      "    - match: {}\n"                                    // 12
      "      action: {suspend: 15m, bounce: true}\n"         // 13
      "    - match: {code: 700}\n"                           // 14
      "      action: {rate_factor: 1.5}\n"                   // 15
      "    - match: {enhanced: 5.x.1}\n"                     // 16
      "      action: {bounce: false}\n"                      // 17
      "  warmup:\n"                                          // 18
      "    - {source: ip1, schedule: [50/h, lots]}\n"        // 19
      "    - {source: ip1, schedule: []}\n");                // 20
  EXPECT_TRUE(has_problem(result.errors, at(9, "policy.shaping[0].match") +
                                             "needs exactly one of domain, mx_suffix, provider"));
  EXPECT_TRUE(
      has_problem(result.errors, at(10, "policy.shaping[0].message_rate") + "bad rate \"300/w\""));
  EXPECT_TRUE(has_problem(result.errors, at(12, "policy.backoff[0].match") +
                                             "needs at least one of code, enhanced, text"));
  EXPECT_TRUE(has_problem(result.errors, at(13, "policy.backoff[0].action") +
                                             "needs exactly one of suspend, rate_factor, bounce"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(14, "policy.backoff[1].match.code") + "must be between 200 and 599"));
  EXPECT_TRUE(has_problem(
      result.errors, at(15, "policy.backoff[1].action.rate_factor") + "must be between 0 and 1"));
  EXPECT_TRUE(has_problem(
      result.errors, at(15, "policy.backoff[1].action.recover_after") + "required key missing"));
  EXPECT_TRUE(has_problem(result.errors, at(16, "policy.backoff[2].match.enhanced") +
                                             "bad enhanced status code \"5.x.1\""));
  EXPECT_TRUE(has_problem(result.errors, at(17, "policy.backoff[2].action.bounce") +
                                             "only \"bounce: true\" is meaningful"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(19, "policy.warmup[0].schedule[1]") + "bad warm-up step \"lots\""));
  EXPECT_TRUE(has_problem(
      result.errors, at(20, "policy.warmup[1].schedule") + "a schedule needs at least one step"));
}

TEST(ParseUtcDate, Table) {
  using namespace std::chrono;
  EXPECT_EQ(parse_utc_date("2026-03-01"), sys_days(2026y / March / 1));
  EXPECT_EQ(parse_utc_date("1970-01-01"), sys_days(1970y / January / 1));
  EXPECT_EQ(parse_utc_date("2028-02-29"), sys_days(2028y / February / 29));  // leap year
  for (const char* bad :
       {"", "2026-3-1", "2026-02-30", "2027-02-29", "2026-13-01", "2026-00-10", "1969-12-31",
        "2026/03/01", "2026-03-01T00:00", " 2026-03-01", "+026-03-01", "2026-03-1x", "20260301"}) {
    EXPECT_FALSE(parse_utc_date(bad).has_value()) << bad;
  }
}

TEST_F(PolicyTest, WarmupExtrasLoad) {
  auto result = load(
      "  warmup:\n"
      "    - source: ip1\n"
      "      schedule: [5/m, 100/h, unlimited]\n"
      "      started: 2026-03-01\n"
      "      providers: [gmail, Yahoo]\n"
      "      overflow: hold\n"
      "      advance: sending_day\n"
      "    - {source: ip2, schedule: [50/h]}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const PolicyConfig& policy = *result.config->policy;
  const WarmupPlan* full = policy.find_warmup("ip1");
  ASSERT_NE(full, nullptr);
  using namespace std::chrono;
  EXPECT_EQ(full->started, sys_days(2026y / March / 1));
  EXPECT_EQ(full->providers, (std::vector<std::string>{"gmail", "yahoo"}));
  EXPECT_EQ(full->overflow, WarmupOverflow::hold);
  EXPECT_EQ(full->advance, WarmupAdvance::sending_day);
  // Defaults: started at first use, one cap across all sites, spill, calendar.
  const WarmupPlan* plain = policy.find_warmup("ip2");
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->started.has_value());
  EXPECT_TRUE(plain->providers.empty());
  EXPECT_EQ(plain->overflow, WarmupOverflow::spill);
  EXPECT_EQ(plain->advance, WarmupAdvance::calendar);
}

TEST_F(PolicyTest, WarmupExtrasProblems) {
  auto result = load(
      "  warmup:\n"                                                         // 8
      "    - source: ip1\n"                                                 // 9
      "      schedule: [50/h]\n"                                            // 10
      "      started: 2026-02-30\n"                                         // 11
      "      providers: [gmail, hotmail, gmail]\n"                          // 12
      "      overflow: queue\n"                                             // 13
      "      advance: weekly\n"                                             // 14
      "    - {source: ip2, schedule: [50/h], providers: [], started: 3}\n"  // 15
      "    - {source: ip2, schedule: [50/h], pace: fast}\n");               // 16
  EXPECT_TRUE(has_problem(result.errors, at(11, "policy.warmup[0].started") +
                                             "bad date \"2026-02-30\" (expected a UTC date"));
  EXPECT_TRUE(has_problem(result.errors, at(12, "policy.warmup[0].providers[1]") +
                                             "unknown provider \"hotmail\" (known: aol, apple"));
  EXPECT_TRUE(has_problem(result.errors, at(12, "policy.warmup[0].providers[2]") +
                                             "provider \"gmail\" is listed twice"));
  EXPECT_TRUE(has_problem(result.errors, at(13, "policy.warmup[0].overflow") +
                                             "expected one of spill, hold; got \"queue\""));
  EXPECT_TRUE(has_problem(
      result.errors, at(14, "policy.warmup[0].advance") + "expected one of calendar, sending_day"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(15, "policy.warmup[1].providers") + "list at least one provider"));
  EXPECT_TRUE(has_problem(result.errors, at(15, "policy.warmup[1].started") + "bad date \"3\""));
  EXPECT_TRUE(has_problem(result.errors, at(16, "policy.warmup[2].pace") + "unknown key"));
  EXPECT_EQ(result.config, nullptr);
}

TEST_F(PolicyTest, BackoffWhenLoads) {
  auto result = load(
      "  backoff:\n"
      "    - match: {code: 421, text: \"(?i)try again later\"}\n"
      "      action: {suspend: 15m}\n"
      "      when: {count: 3, within: 10m}\n"
      "    - match: {code: 451}\n"
      "      action: {rate_factor: 0.5, recover_after: 30m}\n"
      "      when: {count: 1, within: 500ms}\n"
      "    - match: {enhanced: \"4.7.28\"}\n"
      "      action: {suspend: 1h}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const PolicyConfig& policy = *result.config->policy;
  EXPECT_TRUE(policy.backoff_given);
  ASSERT_EQ(policy.backoff.size(), 3u);
  EXPECT_EQ(policy.backoff[0].when, (BackoffWhen{3, std::chrono::minutes(10)}));
  EXPECT_EQ(policy.backoff[1].when, (BackoffWhen{1, std::chrono::milliseconds(500)}));
  EXPECT_FALSE(policy.backoff[2].when.has_value());
}

// Absent: the shipped rules apply (backoff_given false); given, even as an
// empty list, it replaces them.
TEST_F(PolicyTest, BackoffGivenOrAbsent) {
  struct Case {
    const char* lines;
    bool given;
  };
  const Case cases[] = {
      {"", false},
      {"  backoff: []\n", true},
      {"  backoff:\n", true},
      {"  backoff:\n    - {match: {code: 421}, action: {suspend: 1m}}\n", true},
  };
  for (const Case& c : cases) {
    auto result = load(c.lines);
    ASSERT_TRUE(result.errors.empty()) << c.lines << testing::describe(result.errors);
    EXPECT_EQ(result.config->policy->backoff_given, c.given) << c.lines;
  }
  file_ = dir_.write("ringmail.yaml",
                     "hostname: mx.example.test\n"
                     "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
                     "spool: {path: spool}\n");
  auto no_policy = load_config(file_);
  ASSERT_TRUE(no_policy.errors.empty()) << testing::describe(no_policy.errors);
  ASSERT_TRUE(no_policy.config->policy);
  EXPECT_FALSE(no_policy.config->policy->backoff_given);
}

TEST_F(PolicyTest, BackoffWhenProblems) {
  auto result = load(
      "  backoff:\n"                                                 // 8
      "    - match: {code: 421}\n"                                   // 9
      "      action: {suspend: 15m}\n"                               // 10
      "      when: {count: 0, within: 10m}\n"                        // 11
      "    - match: {code: 421}\n"                                   // 12
      "      action: {suspend: 15m}\n"                               // 13
      "      when: {count: 3, within: 0s}\n"                         // 14
      "    - match: {code: 421}\n"                                   // 15
      "      action: {suspend: 15m}\n"                               // 16
      "      when: {count: 3}\n"                                     // 17
      "    - match: {code: 421}\n"                                   // 18
      "      action: {suspend: 15m}\n"                               // 19
      "      when: {count: 2.5, within: ten minutes, often: yes}\n"  // 20
      "    - match: {code: 421}\n"                                   // 21
      "      action: {suspend: 15m}\n"                               // 22
      "      when: 3\n"                                              // 23
      "    - match: {code: 421}\n"                                   // 24
      "      action: {suspend: 15m}\n"                               // 25
      "      when: {count: 10001, within: 1h}\n");                   // 26
  EXPECT_TRUE(has_problem(result.errors, at(11, "policy.backoff[0].when.count") +
                                             "must be between 1 and 10000, got 0"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(14, "policy.backoff[1].when.within") + "must be longer than 0"));
  EXPECT_TRUE(
      has_problem(result.errors, at(17, "policy.backoff[2].when.within") + "required key missing"));
  EXPECT_TRUE(has_problem(result.errors, at(20, "policy.backoff[3].when.count") +
                                             "expected a whole number, got \"2.5\""));
  EXPECT_TRUE(has_problem(
      result.errors, at(20, "policy.backoff[3].when.within") + "bad duration \"ten minutes\""));
  EXPECT_TRUE(has_problem(result.errors, at(20, "policy.backoff[3].when.often")));
  EXPECT_TRUE(has_problem(result.errors, at(23, "policy.backoff[4].when")));
  EXPECT_TRUE(has_problem(result.errors,
                          at(26, "policy.backoff[5].when.count") + "must be between 1 and 10000"));
  EXPECT_FALSE(result.config);
}

TEST_F(PolicyTest, SourceProblemsAreReportedOnce) {
  file_ = dir_.write("ringmail.yaml",
                     "hostname: mx.example.test\n"
                     "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
                     "spool: {path: spool}\n"
                     "policy:\n"
                     "  sources:\n"
                     "    - {name: ip1, address: 192.0.2.10:25}\n"
                     "    - {name: ip1, address: 192.0.2.11}\n"
                     "  pools: [{name: p, sources: [ip1]}, {name: p, sources: [ip1]}]\n"
                     "  warmup: [{source: ip1, schedule: [unlimited]}]\n");
  auto result = load_config(file_);
  EXPECT_TRUE(has_problem(result.errors, at(6, "policy.sources[0].address") +
                                             "\"192.0.2.10:25\" is not an IP address"));
  EXPECT_TRUE(
      has_problem(result.errors, at(8, "policy.pools[1].name") + "duplicate pool name \"p\""));
  for (const auto& e : result.errors) {
    EXPECT_EQ(e.problem.find("unknown source"), std::string::npos) << e.to_string();
  }
}

TEST_F(PolicyTest, PoolWeightsAndTenantsLoad) {
  auto result = load(
      "    - {name: ip3, address: 192.0.2.12}\n"
      "  pools:\n"
      "    - {name: default, sources: [ip1, {source: ip2, weight: 3}, {source: ip3}]}\n"
      "    - {name: bulk, sources: [{source: ip3, weight: 1000}]}\n"
      "  tenants:\n"
      "    - {name: app1, pool: bulk, message_rate: 300/m, burst: 10, max_messages: 10000/h}\n"
      "    - {name: 127.0.0.1/32, message_rate: 5/s}\n"
      "    - {name: app2, max_messages: 3/h}\n"
      "  shaping:\n"
      "    - match: {domain: a.test}\n"
      "      message_rate: 60/m\n"
      "      burst: 5\n"
      "    - match: {domain: b.test}\n"
      "      message_rate: 60/m\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const PolicyConfig& policy = *result.config->policy;
  EXPECT_EQ(policy.find_pool("default")->sources,
            (std::vector<PoolMember>{{"ip1", 1}, {"ip2", 3}, {"ip3", 1}}));
  EXPECT_EQ(policy.find_pool("bulk")->sources, (std::vector<PoolMember>{{"ip3", 1000}}));
  ASSERT_EQ(policy.tenants.size(), 3u);
  const TenantPolicy* app1 = policy.find_tenant("app1");
  ASSERT_NE(app1, nullptr);
  EXPECT_EQ(app1->pool, "bulk");
  EXPECT_EQ(app1->message_rate, (Rate{300, std::chrono::minutes(1)}));
  EXPECT_EQ(app1->burst, 10u);
  EXPECT_EQ(app1->max_messages, (Rate{10000, std::chrono::hours(1)}));
  const TenantPolicy* relay = policy.find_tenant("127.0.0.1/32");
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->pool, "");
  EXPECT_EQ(relay->burst, 0u);  // not given: the rate's count
  EXPECT_FALSE(relay->max_messages.has_value());
  EXPECT_EQ(policy.find_tenant("app2")->max_messages, (Rate{3, std::chrono::hours(1)}));
  EXPECT_FALSE(policy.find_tenant("app2")->message_rate.has_value());
  EXPECT_EQ(policy.find_tenant("app3"), nullptr);
  ASSERT_EQ(policy.shaping.size(), 2u);
  EXPECT_EQ(policy.shaping[0].burst, 5u);
  EXPECT_EQ(policy.shaping[1].burst, 0u);
}

TEST_F(PolicyTest, PoolWeightAndTenantProblems) {
  auto result = load(
      "  pools:\n"                                                   // 8
      "    - name: p\n"                                              // 9
      "      sources:\n"                                             // 10
      "        - {source: ip1, weight: 0}\n"                         // 11
      "        - {source: ip2, weight: 1001}\n"                      // 12
      "        - {source: ip9, weight: 2}\n"                         // 13
      "        - {weight: 2}\n"                                      // 14
      "        - {source: ip1, weigth: 2}\n"                         // 15
      "    - {name: q, sources: [ip1, {source: ip1, weight: 2}]}\n"  // 16
      "    - {name: ok, sources: [ip1]}\n"                           // 17
      "  tenants:\n"                                                 // 18
      "    - {name: app1, pool: nowhere}\n"                          // 19
      "    - {name: app1, pool: ok}\n"                               // 20
      "    - {name: app2, pool: p, max_messages: 10000/w}\n"         // 21
      "    - {name: app3, burst: 5}\n"                               // 22
      "    - {name: app4, message_rate: 5/s, burst: 0}\n"            // 23
      "    - {pool: ok}\n"                                           // 24
      "    - {name: app5, max_messages: lots, colour: red}\n"        // 25
      "  shaping:\n"                                                 // 26
      "    - match: {domain: a.test}\n"                              // 27
      "      burst: 3\n");                                           // 28
  struct Problem {
    int line;
    const char* path;
    const char* text;  // the start of the problem
  };
  const std::vector<Problem> expected = {
      {11, "policy.pools[0].sources[0].weight", "must be between 1 and 1000, got 0"},
      {12, "policy.pools[0].sources[1].weight", "must be between 1 and 1000, got 1001"},
      {13, "policy.pools[0].sources[2].source", "unknown source \"ip9\""},
      {14, "policy.pools[0].sources[3].source", "required key missing"},
      {15, "policy.pools[0].sources[4].weigth", "unknown key"},
      {16, "policy.pools[1].sources[1]", "source \"ip1\" is already in this pool"},
      {19, "policy.tenants[0].pool", "unknown pool \"nowhere\" (policy.pools has ok)"},
      {20, "policy.tenants[1].name", "duplicate tenant name \"app1\""},
      {21, "policy.tenants[2].max_messages", "bad rate \"10000/w\""},
      {22, "policy.tenants[3].burst", "only goes with message_rate"},
      {23, "policy.tenants[4].burst", "must be between 1"},
      {24, "policy.tenants[5].name", "required key missing"},
      {25, "policy.tenants[6].max_messages", "bad rate \"lots\""},
      {25, "policy.tenants[6].colour", "unknown key"},
      {28, "policy.shaping[0].burst", "only goes with message_rate"},
  };
  for (const Problem& p : expected) {
    EXPECT_TRUE(has_problem(result.errors, at(p.line, p.path) + p.text)) << p.path;
  }
  // Pool p had errors of its own: app2's reference to it is not one more.
  for (const auto& e : result.errors) {
    EXPECT_EQ(e.problem.find("unknown pool \"p\""), std::string::npos) << e.to_string();
  }
}

TEST(UsersFile, LoadsHashesAndReportsProblems) {
  TempDir dir;
  auto file = dir.write(
      "users.yaml",
      "# comment\n"
      "- name: app1\n"
      "  password: "
      "'$6$rounds=5000$saltsalt$"
      "Kq5d0eDk1xvRZ3Ls9eMZ2QzQ7s0Zb0v3kQ1yH1q1e2VfWmOe0Y1N0w3Tq9r8u7x6b5c4d3e2f1a0.0000000000'\n"
      "- {name: app2, password: '$2b$12$abcdefghijklmnopqrstuuMZsQ2oZ4q5d6e7f8g9h0i1j2k3l4m5n6'}\n"
      "- {name: app1, password: '$5$salt$0123456789abcdef0123456789abcdef01234567890'}\n"
      "- {name: 'bad name', password: '$y$j9T$abc$def'}\n"
      "- {name: app3, password: plain}\n"
      "- {name: app4}\n");
  UsersFile users = load_users_file(file);
  ASSERT_EQ(users.users.size(), 2u) << testing::describe(users.errors);
  EXPECT_EQ(users.users[0].name, "app1");
  EXPECT_EQ(users.users[0].line, 2);
  EXPECT_TRUE(users.users[0].password_hash.starts_with("$6$"));
  EXPECT_EQ(users.users[1].name, "app2");
  EXPECT_TRUE(
      has_problem(users.errors, file.string() + ":5: users[2].name: user \"app1\" given twice"));
  EXPECT_TRUE(
      has_problem(users.errors, file.string() + ":6: users[3].name: user names must be printable"));
  EXPECT_TRUE(
      has_problem(users.errors, file.string() + ":7: users[4].password: not a crypt(3) hash"));
  EXPECT_TRUE(
      has_problem(users.errors, file.string() + ":8: users[5].password: required key missing"));
}

TEST(UsersFile, NotAListAndSyntaxErrors) {
  TempDir dir;
  auto map = dir.write("map.yaml", "app1: '$y$j9T$abc$def'\n");
  EXPECT_TRUE(has_problem(load_users_file(map).errors, map.string() + ":1: expected a list"));
  auto broken = dir.write("broken.yaml", "- name: a\n  password: x: y\n");
  EXPECT_TRUE(
      has_problem(load_users_file(broken).errors, broken.string() + ":2: YAML syntax error"));
  auto missing = load_users_file(dir / "none.yaml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_TRUE(missing.users.empty());
}

TEST(CryptHash, Shapes) {
  EXPECT_TRUE(looks_like_crypt_hash(
      "$y$j9T$YV.5HfzG1NMMGA1VwLMp4/$AoPg6ls8AXjmC7WOCa5SvTTfRMgb640fvNXd4rGQas5"));
  EXPECT_TRUE(looks_like_crypt_hash("$5$rounds=1000$salt$abcdefghijklmnop"));
  EXPECT_FALSE(looks_like_crypt_hash("secret"));
  EXPECT_FALSE(looks_like_crypt_hash("$1$salt$abcdefghijklmnopqrstuv"));  // md5crypt: too weak
  EXPECT_FALSE(looks_like_crypt_hash("$y$j9T$salt$"));
  EXPECT_FALSE(looks_like_crypt_hash("$y$j9T$salt hash$abcdefghijkl"));
}

}  // namespace
}  // namespace ringmail::conf
