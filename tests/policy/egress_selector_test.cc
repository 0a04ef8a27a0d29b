// Which source address a job's connection leaves from: smooth weighted
// round robin over its pool's sources (plain turns in the order configured
// when every weight is 1), unavailable sources yielding their turns, the
// default pool for unknown or empty pools, the machine's default address
// without any pool; and which pool a job belongs to.
#include "policy/egress_selector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

conf::EgressSource source(std::string name, const char* ip) {
  return conf::EgressSource{std::move(name), *conf::parse_ip_address(ip)};
}

// "name@address" for each choice, "default" for the machine's address.
std::vector<std::string> picks(EgressSelector& selector, std::string_view pool, int n) {
  std::vector<std::string> v;
  for (int i = 0; i < n; ++i) {
    EgressChoice c = selector.select(pool);
    v.push_back(c.address ? c.name + "@" + c.address->text : c.name);
  }
  return v;
}

conf::PolicyConfig two_pools() {
  conf::PolicyConfig policy;
  policy.sources = {source("ip1", "198.51.100.1"), source("ip2", "198.51.100.2"),
                    source("ip3", "2001:db8::3"), source("main", "198.51.100.9")};
  policy.pools = {{"bulk", {{"ip1"}, {"ip2"}, {"ip3"}}},
                  {"default", {{"main"}}},
                  {"empty", {}},
                  {"misspelt", {{"no-such-source"}}}};
  return policy;
}

TEST(EgressSelector, PoolsTakeTurnsAndUnknownPoolsUseTheDefaultPool) {
  const conf::PolicyConfig policy = two_pools();
  struct Case {
    const char* pool;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"bulk",
       {"ip1@198.51.100.1", "ip2@198.51.100.2", "ip3@2001:db8::3", "ip1@198.51.100.1",
        "ip2@198.51.100.2"}},
      {"default", {"main@198.51.100.9", "main@198.51.100.9"}},
      {"", {"main@198.51.100.9", "main@198.51.100.9"}},
      {"nonexistent", {"main@198.51.100.9"}},
      {"empty", {"main@198.51.100.9"}},
      {"misspelt", {"main@198.51.100.9"}},  // its only source is unknown
  };
  for (const auto& c : cases) {
    EgressSelector selector;
    selector.set_policy(&policy);
    EXPECT_EQ(picks(selector, c.pool, static_cast<int>(c.expected.size())), c.expected)
        << "pool \"" << c.pool << "\"";
  }
}

TEST(EgressSelector, EachPoolKeepsItsOwnTurn) {
  const conf::PolicyConfig policy = two_pools();
  EgressSelector selector;
  selector.set_policy(&policy);
  EXPECT_EQ(selector.select("bulk").name, "ip1");
  EXPECT_EQ(selector.select("default").name, "main");
  EXPECT_EQ(selector.select("bulk").name, "ip2");
}

TEST(EgressSelector, WithoutPoolsEveryJobUsesTheDefaultAddress) {
  conf::PolicyConfig sources_only;
  sources_only.sources = {source("ip1", "198.51.100.1")};
  conf::PolicyConfig only_bulk;
  only_bulk.sources = {source("ip1", "198.51.100.1")};
  only_bulk.pools = {{"bulk", {{"ip1"}}}};
  struct Case {
    const char* name;
    const conf::PolicyConfig* policy;
    const char* pool;
  };
  const std::vector<Case> cases = {
      {"no policy", nullptr, ""},
      {"no policy, named pool", nullptr, "bulk"},
      {"sources but no pools", &sources_only, ""},
      {"no default pool", &only_bulk, "transactional"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EgressSelector selector;
    selector.set_policy(c.policy);
    const EgressChoice choice = selector.select(c.pool);
    EXPECT_EQ(choice.name, EgressChoice::kDefault);
    EXPECT_FALSE(choice.address.has_value());
  }
}

TEST(EgressSelector, ANewPolicyReplacesTheOldPools) {
  conf::PolicyConfig policy = two_pools();
  EgressSelector selector;
  selector.set_policy(&policy);
  EXPECT_EQ(selector.select("bulk").name, "ip1");
  selector.set_policy(nullptr);
  EXPECT_EQ(selector.select("bulk").name, EgressChoice::kDefault);
}

TEST(EgressSelector, AReloadKeepsEachPoolsTurn) {
  const conf::PolicyConfig policy = two_pools();
  EgressSelector selector;
  selector.set_policy(&policy);
  EXPECT_EQ(picks(selector, "bulk", 1), std::vector<std::string>{"ip1@198.51.100.1"});
  selector.set_policy(&policy);  // SIGHUP with the same pools
  EXPECT_EQ(picks(selector, "bulk", 2),
            (std::vector<std::string>{"ip2@198.51.100.2", "ip3@2001:db8::3"}));
}

// Sources a, b, c with weights 5:3:2 in pool "w", and x, y, z with 3:1:1
// in "default".
conf::PolicyConfig weighted() {
  conf::PolicyConfig policy;
  policy.sources = {source("a", "198.51.100.1"), source("b", "198.51.100.2"),
                    source("c", "198.51.100.3"), source("x", "127.0.0.2"),
                    source("y", "127.0.0.3"),    source("z", "127.0.0.4")};
  policy.pools = {{"w", {{"a", 5}, {"b", 3}, {"c", 2}}},
                  {"default", {{"x", 3}, {"y", 1}, {"z", 1}}}};
  return policy;
}

std::string names(
    EgressSelector& selector, std::string_view pool, int n,
    const EgressAvailable& available = [](const EgressChoice&) { return true; }) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    std::optional<EgressChoice> c = selector.select(pool, available);
    out += c ? c->name : "-";
  }
  return out;
}

size_t longest_run(const std::string& picks) {
  size_t longest = 0;
  for (size_t i = 0, run = 0; i < picks.size(); ++i) {
    run = i > 0 && picks[i] == picks[i - 1] ? run + 1 : 1;
    longest = std::max(longest, run);
  }
  return longest;
}

TEST(EgressSelector, WeightsGiveTheirShareSmoothlyInterleaved) {
  const conf::PolicyConfig policy = weighted();
  struct Case {
    const char* pool;
    const char* first_cycle;  // nginx's smooth weighted round robin
    std::map<char, size_t> per_100;
    size_t longest_run;
  };
  const std::vector<Case> cases = {
      {"w", "abcaabacba", {{'a', 50}, {'b', 30}, {'c', 20}}, 2},
      {"default", "xyxzx", {{'x', 60}, {'y', 20}, {'z', 20}}, 2},
      {"bulk-unknown", "xyxzx", {{'x', 60}, {'y', 20}, {'z', 20}}, 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pool);
    EgressSelector selector;
    selector.set_policy(&policy);
    const std::string cycle = c.first_cycle;
    const std::string picks = names(selector, c.pool, 100);
    EXPECT_EQ(picks.substr(0, cycle.size()), cycle);
    // The cycle repeats exactly: every cycle-long window has the exact share.
    for (size_t i = 0; i + cycle.size() <= picks.size(); i += cycle.size()) {
      EXPECT_EQ(picks.substr(i, cycle.size()), cycle) << "at pick " << i;
    }
    std::map<char, size_t> counts;
    for (char p : picks) ++counts[p];
    EXPECT_EQ(counts, c.per_100);
    EXPECT_EQ(longest_run(picks), c.longest_run);
  }
}

TEST(EgressSelector, EqualWeightsArePlainTurns) {
  conf::PolicyConfig policy = weighted();
  policy.pools = {{"w", {{"a", 7}, {"b", 7}, {"c", 7}}}};
  EgressSelector selector;
  selector.set_policy(&policy);
  EXPECT_EQ(names(selector, "w", 9), "abcabcabc");
}

TEST(EgressSelector, UnavailableSourcesYieldTheirTurns) {
  const conf::PolicyConfig policy = weighted();
  const auto all_but = [](std::set<std::string> out) {
    return [out](const EgressChoice& c) { return !out.contains(c.name); };
  };
  struct Case {
    const char* name;
    std::set<std::string> unavailable;
    const char* picks;
  };
  const std::vector<Case> cases = {
      // b and c share the picks 3:2 while a is out.
      {"a out", {"a"}, "bcbcbbcbcb"},
      {"b out", {"b"}, "acaaacaaca"},
      {"only c", {"a", "b"}, "cccccccccc"},
      {"none", {"a", "b", "c"}, "----------"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EgressSelector selector;
    selector.set_policy(&policy);
    EXPECT_EQ(names(selector, "w", 10, all_but(c.unavailable)), c.picks);
    // Back to all available: the exact 5:3:2 share again at once, with no
    // catch-up burst of the source that was out.
    std::string after = names(selector, "w", 100);
    std::map<char, size_t> counts;
    for (char p : after) ++counts[p];
    EXPECT_NEAR(static_cast<double>(counts['a']), 50, 1);
    EXPECT_NEAR(static_cast<double>(counts['b']), 30, 1);
    EXPECT_NEAR(static_cast<double>(counts['c']), 20, 1);
    EXPECT_LE(longest_run(after), 3u) << after;
  }
}

TEST(EgressSelector, NoCreditBuildsUpWhileSourcesComeAndGo) {
  const conf::PolicyConfig policy = weighted();
  EgressSelector selector;
  selector.set_policy(&policy);
  std::mt19937 random(12345);
  std::bernoulli_distribution out(0.5);
  for (int i = 0; i < 20000; ++i) {
    const bool a_out = out(random), b_out = out(random), c_out = out(random);
    selector.select("w", [&](const EgressChoice& c) {
      return !((c.name == "a" && a_out) || (c.name == "b" && b_out) || (c.name == "c" && c_out));
    });
  }
  // However the turns were skipped, 1000 picks with everything back give
  // the weights' share within a pick or two (a credit is below the total).
  std::map<char, size_t> counts;
  for (char p : names(selector, "w", 1000)) ++counts[p];
  EXPECT_NEAR(static_cast<double>(counts['a']), 500, 2);
  EXPECT_NEAR(static_cast<double>(counts['b']), 300, 2);
  EXPECT_NEAR(static_cast<double>(counts['c']), 200, 2);
}

TEST(EgressSelector, WithoutPoolsTheMachineAddressIsAskedAboutToo) {
  EgressSelector selector;
  selector.set_policy(nullptr);
  EXPECT_EQ(selector.select("", [](const EgressChoice&) { return true; })->name,
            EgressChoice::kDefault);
  EXPECT_FALSE(selector.select("", [](const EgressChoice&) { return false; }).has_value());
}

TEST(EgressSelector, AReloadKeepsTurnsOfUnchangedPoolsOnly) {
  const conf::PolicyConfig policy = weighted();
  conf::PolicyConfig reweighted = weighted();
  reweighted.pools[0].sources[2].weight = 3;  // w becomes 5:3:3; default unchanged
  EgressSelector selector;
  selector.set_policy(&policy);
  EXPECT_EQ(names(selector, "w", 4), "abca");
  EXPECT_EQ(names(selector, "default", 2), "xy");
  selector.set_policy(&policy);  // SIGHUP with the same pools: the cycle goes on
  EXPECT_EQ(names(selector, "w", 6), "abacba");
  EXPECT_EQ(names(selector, "default", 3), "xzx");
  EXPECT_EQ(names(selector, "w", 1), "a");
  EXPECT_EQ(names(selector, "default", 1), "x");
  selector.set_policy(&reweighted);  // w changed: it starts afresh (kept: "b")
  EXPECT_EQ(names(selector, "w", 3), "abc");
  EXPECT_EQ(names(selector, "default", 4), "yxzx");  // unchanged: goes on
}

TEST(JobPool, CampaignThenTenantThenDefault) {
  conf::PolicyConfig policy = weighted();
  policy.tenants = {{"app1", "w", std::nullopt, 0, std::nullopt},
                    {"127.0.0.1/32", "", std::nullopt, 0, std::nullopt}};
  struct Case {
    const char* campaign_pool;
    const char* tenant;
    const conf::PolicyConfig* policy;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"bulk", "app1", &policy, "bulk"},         // the campaign's pool first
      {"", "app1", &policy, "w"},                // then the tenant's
      {"", "127.0.0.1/32", &policy, "default"},  // a tenant without a pool
      {"", "stranger", &policy, "default"},      // not in policy.tenants
      {"", "", &policy, "default"},
      {"", "app1", nullptr, "default"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(job_pool(c.campaign_pool, c.tenant, c.policy), c.expected)
        << c.campaign_pool << " / " << c.tenant;
  }
}

}  // namespace
}  // namespace ringmail::policy
