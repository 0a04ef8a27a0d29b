// The shaping defaults shipped per provider: the numbers of the README
// table, by the provider's own name only (aliases are resolved before).
#include "policy/provider_defaults.h"

#include <gtest/gtest.h>

#include "mail/mailbox_provider.h"

namespace ringmail::policy {
namespace {

TEST(ProviderDefaults, ShippedNumbers) {
  const struct {
    const char* name;
    std::optional<uint32_t> connections, per_connection;
    bool tls;
  } cases[] = {
      {"gmail", 5, 50, true},   {"outlook", 5, 50, false},   {"yahoo", std::nullopt, 20, false},
      {"icloud", 10, 5, false}, {"comcast", 25, 1000, true}, {"orange", 2, 100, false},
      {"gmx", 4, 20, true},     {"webde", 4, 20, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ProviderDefaults* p = shipped_defaults(c.name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->max_connections, c.connections);
    EXPECT_EQ(p->max_messages_per_connection, c.per_connection);
    EXPECT_EQ(p->tls_required, c.tls);
  }
  EXPECT_EQ(shipped_defaults("mailru"), nullptr) << "known by name only";
  EXPECT_EQ(shipped_defaults("google"), nullptr) << "an alias: canonical_provider first";
  EXPECT_EQ(shipped_defaults(""), nullptr);
}

TEST(ProviderDefaults, EveryShippedProviderIsInTheTable) {
  for (std::string_view name : mail::provider_names()) {
    if (shipped_defaults(name)) {
      EXPECT_EQ(mail::canonical_provider(name), name);
    }
  }
}

}  // namespace
}  // namespace ringmail::policy
