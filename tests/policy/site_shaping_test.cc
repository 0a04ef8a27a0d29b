// Which shaping rule a destination gets: first match wins, by domain, MX
// suffix or provider, with real MX host names of large providers.
#include "policy/site_shaping.h"

#include <gtest/gtest.h>

namespace ringmail::policy {
namespace {

conf::ShapingRule rule(conf::ShapingMatch::Kind kind, std::string value, uint32_t connections) {
  conf::ShapingRule r;
  r.match.kind = kind;
  r.match.value = std::move(value);
  r.max_connections = connections;
  return r;
}

using Kind = conf::ShapingMatch::Kind;

TEST(SiteShaping, FirstMatchWinsAcrossKinds) {
  const std::vector<conf::ShapingRule> rules = {
      rule(Kind::domain, "vip.example", 2), rule(Kind::mx_suffix, ".google.com", 20),
      rule(Kind::provider, "outlook", 10),
      rule(Kind::provider, "gmail", 99),  // shadowed by the mx_suffix rule
  };
  const std::vector<std::string_view> gmail = {"gmail-smtp-in.l.google.com",
                                               "alt1.gmail-smtp-in.l.google.com"};
  const std::vector<std::string_view> outlook = {"example-com.mail.protection.outlook.com"};
  const std::vector<std::string_view> other = {"mx.other.test"};

  ASSERT_NE(match_shaping(rules, "gmail.com", gmail), nullptr);
  EXPECT_EQ(match_shaping(rules, "gmail.com", gmail)->max_connections, 20u);
  EXPECT_EQ(match_shaping(rules, "example.com", outlook)->max_connections, 10u);
  // A domain rule beats the MX rules that come after it.
  EXPECT_EQ(match_shaping(rules, "vip.example", gmail)->max_connections, 2u);
  EXPECT_EQ(match_shaping(rules, "other.test", other), nullptr);
}

TEST(SiteShaping, SuffixesMatchWholeLabels) {
  const std::vector<conf::ShapingRule> rules = {rule(Kind::mx_suffix, "google.com", 1)};
  EXPECT_NE(match_shaping(rules, "d", {"aspmx.l.google.com"}), nullptr);
  EXPECT_NE(match_shaping(rules, "d", {"google.com"}), nullptr);
  EXPECT_EQ(match_shaping(rules, "d", {"notgoogle.com"}), nullptr);
  const std::vector<conf::ShapingRule> dotted = {rule(Kind::mx_suffix, ".google.com", 1)};
  EXPECT_EQ(match_shaping(dotted, "d", {"google.com"}), nullptr);
  EXPECT_NE(match_shaping(dotted, "d", {"mx.google.com"}), nullptr);
}

TEST(SiteShaping, ProvidersKnowTheirMxHosts) {
  EXPECT_FALSE(provider_mx_suffixes("yahoo").empty());
  EXPECT_TRUE(provider_mx_suffixes("no-such-provider").empty());
  const std::vector<conf::ShapingRule> rules = {rule(Kind::provider, "yahoo", 5)};
  EXPECT_NE(match_shaping(rules, "yahoo.com", {"mta6.am0.yahoodns.net"}), nullptr);
  EXPECT_NE(match_shaping(rules, "aol.com", {"mx-aol.mail.gm0.yahoodns.net"}), nullptr);
  EXPECT_EQ(match_shaping(rules, "gmx.de", {"mx00.emig.gmx.net"}), nullptr);
}

}  // namespace
}  // namespace ringmail::policy
