// Which source address a job's connection leaves from: round robin over
// its pool's sources in the order configured, the default pool for unknown
// or empty pools, the machine's default address without any pool.
#include "policy/egress_selector.h"

#include <gtest/gtest.h>

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
  policy.pools = {{"bulk", {"ip1", "ip2", "ip3"}},
                  {"default", {"main"}},
                  {"empty", {}},
                  {"misspelt", {"no-such-source"}}};
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
  only_bulk.pools = {{"bulk", {"ip1"}}};
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

}  // namespace
}  // namespace ringmail::policy
