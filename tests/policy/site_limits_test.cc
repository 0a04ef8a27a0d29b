// The limits in force for a destination and what set each: delivery
// defaults, under the shipped provider of the MX hosts, under the first
// matching policy.shaping rule, field by field; and whether the
// connection limit counts per site or per provider.
#include "policy/site_limits.h"

#include <gtest/gtest.h>

#include <memory>

namespace ringmail::policy {
namespace {

using Kind = conf::ShapingMatch::Kind;
using namespace std::chrono_literals;

conf::ShapingRule rule(Kind kind, std::string value, std::optional<uint32_t> connections,
                       std::optional<uint32_t> per_connection = std::nullopt,
                       std::optional<conf::Rate> message_rate = std::nullopt,
                       std::optional<conf::Rate> connection_rate = std::nullopt) {
  conf::ShapingRule r;
  r.match.kind = kind;
  r.match.value = std::move(value);
  r.max_connections = connections;
  r.max_messages_per_connection = per_connection;
  r.message_rate = message_rate;
  r.connection_rate = connection_rate;
  return r;
}

conf::Config config_with(std::vector<conf::ShapingRule> rules,
                         conf::OutboundTls tls = conf::OutboundTls::opportunistic) {
  conf::Config config;
  config.delivery.max_connections_per_site = 32;
  config.delivery.max_messages_per_connection = 100;
  config.delivery.tls = tls;
  auto policy = std::make_shared<conf::PolicyConfig>();
  policy->shaping = std::move(rules);
  config.policy = policy;
  return config;
}

const LimitOrigin kDefaults{};
LimitOrigin shipped(std::string provider) {
  return {LimitOrigin::Kind::shipped_provider, std::move(provider), 0};
}
LimitOrigin by_rule(size_t index) { return {LimitOrigin::Kind::shaping_rule, "", index}; }

const std::vector<std::string_view> kGmail = {"gmail-smtp-in.l.google.com",
                                              "alt1.gmail-smtp-in.l.google.com"};
const std::vector<std::string_view> kYahoo = {"mta6.am0.yahoodns.net"};
const std::vector<std::string_view> kLoopback = {"127.0.0.1"};

struct Case {
  const char* name;
  std::vector<conf::ShapingRule> rules;
  const char* domain;
  std::vector<std::string_view> hosts;
  // Expected:
  const char* provider;
  uint32_t connections;
  LimitOrigin connections_by;
  ConnectionScope scope;
  uint32_t per_connection;
  LimitOrigin per_connection_by;
  bool tls;
  LimitOrigin tls_by;
};

TEST(SiteLimits, LayersFieldByField) {
  using enum ConnectionScope;
  const conf::Rate per_minute{300, 60s};
  const Case cases[] = {
      {"a test MX: delivery defaults throughout",
       {},
       "a.test",
       kLoopback,
       "",
       32,
       kDefaults,
       site,
       100,
       kDefaults,
       false,
       kDefaults},
      {"a Gmail MX: the shipped gmail defaults, counted per provider",
       {},
       "gmail.com",
       kGmail,
       "gmail",
       5,
       shipped("gmail"),
       provider,
       50,
       shipped("gmail"),
       true,
       shipped("gmail")},
      {"Yahoo ships only a per-connection limit",
       {},
       "yahoo.com",
       kYahoo,
       "yahoo",
       32,
       kDefaults,
       site,
       20,
       shipped("yahoo"),
       false,
       kDefaults},
      {"a domain rule overrides what it sets, per site; the rest stays shipped",
       {rule(Kind::domain, "other.test", 1), rule(Kind::domain, "gmail.com", 9)},
       "gmail.com",
       kGmail,
       "gmail",
       9,
       by_rule(1),
       site,
       50,
       shipped("gmail"),
       true,
       shipped("gmail")},
      {"an mx_suffix rule is per site too",
       {rule(Kind::mx_suffix, ".google.com", 20, 100, per_minute)},
       "workspace.example",
       kGmail,
       "gmail",
       20,
       by_rule(0),
       site,
       100,
       by_rule(0),
       true,
       shipped("gmail")},
      {"a provider rule's connections count per provider",
       {rule(Kind::provider, "google", 12)},
       "gmail.com",
       kGmail,
       "gmail",
       12,
       by_rule(0),
       provider,
       50,
       shipped("gmail"),
       true,
       shipped("gmail")},
      {"a provider rule without max_connections keeps the shipped ones",
       {rule(Kind::provider, "gmail", std::nullopt, 7)},
       "gmail.com",
       kGmail,
       "gmail",
       5,
       shipped("gmail"),
       provider,
       7,
       by_rule(0),
       true,
       shipped("gmail")},
      {"a provider rule for Yahoo sets a per-provider limit Yahoo does not ship",
       {rule(Kind::provider, "aol", 3)},
       "aol.com",
       kYahoo,
       "yahoo",
       3,
       by_rule(0),
       provider,
       20,
       shipped("yahoo"),
       false,
       kDefaults},
      {"a rule on a test MX",
       {rule(Kind::mx_suffix, "127.0.0.1", 2, 3)},
       "a.test",
       kLoopback,
       "",
       2,
       by_rule(0),
       site,
       3,
       by_rule(0),
       false,
       kDefaults},
      {"first match wins: the later rule is not looked at",
       {rule(Kind::mx_suffix, ".google.com", std::nullopt, 60), rule(Kind::domain, "gmail.com", 1)},
       "gmail.com",
       kGmail,
       "gmail",
       5,
       shipped("gmail"),
       provider,
       60,
       by_rule(0),
       true,
       shipped("gmail")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const conf::Config config = config_with(c.rules);
    const SiteLimits limits = resolve_site_limits(config, c.domain, c.hosts);
    EXPECT_EQ(limits.provider, c.provider);
    EXPECT_EQ(limits.max_connections.value, c.connections);
    EXPECT_EQ(limits.max_connections.set_by.text(), c.connections_by.text());
    EXPECT_EQ(limits.connection_scope, c.scope);
    EXPECT_EQ(limits.max_messages_per_connection.value, c.per_connection);
    EXPECT_EQ(limits.max_messages_per_connection.set_by, c.per_connection_by);
    EXPECT_EQ(limits.tls_required.value, c.tls);
    EXPECT_EQ(limits.tls_required.set_by, c.tls_by);
  }
}

TEST(SiteLimits, RatesComeFromTheRuleAlone) {
  const conf::Rate messages{300, 60s}, connections{10, 1s};
  const conf::Config config = config_with(
      {rule(Kind::domain, "x.test", std::nullopt),
       rule(Kind::provider, "gmail", std::nullopt, std::nullopt, messages, connections)});
  SiteLimits limits = resolve_site_limits(config, "gmail.com", kGmail);
  EXPECT_EQ(limits.message_rate.value, (RateLimit{messages, 300}));
  EXPECT_EQ(limits.message_rate.set_by.text(), "policy.shaping[1]");
  EXPECT_EQ(limits.connection_rate.value, (RateLimit{connections, 10}));
  EXPECT_EQ(limits.connection_rate.set_by.text(), "policy.shaping[1]");
  // A burst beside message_rate is the bucket's depth.
  conf::Config bursty =
      config_with({rule(Kind::domain, "b.test", std::nullopt, std::nullopt, messages)});
  std::const_pointer_cast<conf::PolicyConfig>(bursty.policy)->shaping[0].burst = 40;
  EXPECT_EQ(resolve_site_limits(bursty, "b.test", kLoopback).message_rate.value,
            (RateLimit{messages, 40}));
  // Nothing ships a rate: unlimited, by the delivery defaults.
  limits = resolve_site_limits(config, "yahoo.com", kYahoo);
  EXPECT_EQ(limits.message_rate.value, RateLimit{});
  EXPECT_EQ(limits.message_rate.set_by.text(), "delivery defaults");
  EXPECT_EQ(limits.connection_rate.value, RateLimit{});
}

TEST(SiteLimits, DeliveryTlsSettingDecidesOverTheProvider) {
  // required: already by the delivery defaults; none: the operator turned
  // TLS off, and no provider turns it back on.
  SiteLimits limits =
      resolve_site_limits(config_with({}, conf::OutboundTls::required), "gmail.com", kGmail);
  EXPECT_TRUE(limits.tls_required.value);
  EXPECT_EQ(limits.tls_required.set_by.text(), "delivery defaults");
  limits = resolve_site_limits(config_with({}, conf::OutboundTls::required), "a.test", kLoopback);
  EXPECT_TRUE(limits.tls_required.value);
  limits = resolve_site_limits(config_with({}, conf::OutboundTls::none), "gmail.com", kGmail);
  EXPECT_FALSE(limits.tls_required.value);
  EXPECT_EQ(limits.tls_required.set_by.text(), "delivery defaults");
}

TEST(SiteLimits, NoPolicySectionIsDefaultsAndShippedProviders) {
  conf::Config config;
  config.policy.reset();
  const SiteLimits limits = resolve_site_limits(config, "icloud.com", {"mx01.mail.icloud.com"});
  EXPECT_EQ(limits.provider, "icloud");
  EXPECT_EQ(limits.max_connections.value, 10u);
  EXPECT_EQ(limits.max_messages_per_connection.value, 5u);
  EXPECT_EQ(limits.max_connections.set_by.text(), "shipped provider icloud");
}

TEST(SiteLimits, OriginTexts) {
  EXPECT_EQ(LimitOrigin{}.text(), "delivery defaults");
  EXPECT_EQ(shipped("gmail").text(), "shipped provider gmail");
  EXPECT_EQ(by_rule(2).text(), "policy.shaping[2]");
}

}  // namespace
}  // namespace ringmail::policy
