// The shipped provider table: every name CONTRACT promises, real MX host
// names of each provider mapped to it, aliases, and no suffix shared by
// two providers (a host belongs to one provider at most).
#include "policy/provider_defaults.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace ringmail::policy {
namespace {

TEST(ProviderDefaults, ContractNamesAreShipped) {
  for (const char* name : {"gmail", "outlook", "yahoo", "icloud", "gmx", "comcast", "orange"}) {
    const ShippedProvider* p = find_provider(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->name, name);
    EXPECT_FALSE(p->mx_suffixes.empty()) << name;
  }
  EXPECT_EQ(find_provider("no-such-provider"), nullptr);
  EXPECT_EQ(find_provider("Gmail"), nullptr) << "names are lower case (the config lower-cases)";
}

TEST(ProviderDefaults, AliasesNameTheSameProvider) {
  const struct {
    const char* alias;
    const char* name;
  } cases[] = {{"google", "gmail"},    {"microsoft", "outlook"}, {"office365", "outlook"},
               {"hotmail", "outlook"}, {"aol", "yahoo"},         {"apple", "icloud"},
               {"web.de", "webde"},    {"xfinity", "comcast"},   {"wanadoo", "orange"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.alias);
    ASSERT_NE(find_provider(c.alias), nullptr);
    EXPECT_EQ(find_provider(c.alias)->name, c.name);
  }
}

TEST(ProviderDefaults, RealMxHostsBelongToTheirProvider) {
  const struct {
    const char* host;
    const char* provider;  // "" = none
  } cases[] = {
      {"gmail-smtp-in.l.google.com", "gmail"},
      {"alt4.gmail-smtp-in.l.google.com", "gmail"},
      {"aspmx.l.google.com", "gmail"},
      {"smtp.google.com", "gmail"},
      {"aspmx2.googlemail.com", "gmail"},
      {"outlook-com.olc.protection.outlook.com", "outlook"},
      {"hotmail-com.olc.protection.outlook.com", "outlook"},
      {"example-com.mail.protection.outlook.com", "outlook"},
      {"example-com.o-v1.mx.microsoft", "outlook"},
      {"mx1.hotmail.com", "outlook"},
      {"mta6.am0.yahoodns.net", "yahoo"},
      {"mx-aol.mail.gm0.yahoodns.net", "yahoo"},
      {"mx01.mail.icloud.com", "icloud"},
      {"mx00.emig.gmx.net", "gmx"},
      {"mx00.gmx.com", "gmx"},
      {"mx-ha03.web.de", "webde"},
      {"mx1h1.comcast.net", "comcast"},
      {"mx2.comcast.net", "comcast"},
      {"smtp-in.orange.fr", "orange"},
      {"mxs.mail.ru", "mailru"},
      {"in1-smtp.messagingengine.com", "fastmail"},
      {"mail.protonmail.ch", "proton"},
      // Not a provider's: a look-alike label, the bare suffix, a test MX.
      {"notgoogle.com", ""},
      {"google.com", ""},
      {"mx.comcast.net.example", ""},
      {"127.0.0.1", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.host);
    const ShippedProvider* p = provider_of_mx({c.host});
    EXPECT_EQ(p ? std::string(p->name) : "", c.provider);
  }
  // Any host of the set decides: a Google MX behind a backup MX of another.
  const ShippedProvider* p = provider_of_mx({"backup.example.test", "aspmx.l.google.com"});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "gmail");
}

TEST(ProviderDefaults, ShippedNumbers) {
  const struct {
    const char* name;
    std::optional<uint32_t> connections, per_connection;
    bool tls;
  } cases[] = {
      {"gmail", 5, 50, true},
      {"outlook", 5, 50, false},
      {"yahoo", std::nullopt, 20, false},
      {"icloud", 10, 5, false},
      {"comcast", 25, 1000, true},
      {"orange", 2, 100, false},
      {"gmx", 4, 20, true},
      {"mailru", std::nullopt, std::nullopt, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ShippedProvider* p = find_provider(c.name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->max_connections, c.connections);
    EXPECT_EQ(p->max_messages_per_connection, c.per_connection);
    EXPECT_EQ(p->tls_required, c.tls);
  }
}

TEST(ProviderDefaults, NoSuffixOrNameIsShared) {
  std::set<std::string> suffixes, names;
  for (const ShippedProvider& p : shipped_providers()) {
    EXPECT_TRUE(names.insert(std::string(p.name)).second) << p.name;
    for (std::string_view alias : p.aliases) {
      EXPECT_TRUE(names.insert(std::string(alias)).second) << alias;
    }
    for (std::string_view s : p.mx_suffixes) {
      EXPECT_EQ(s.front(), '.') << s << ": strictly below, never the bare domain";
      EXPECT_TRUE(suffixes.insert(std::string(s)).second) << s;
    }
  }
  // Nor does one suffix end another (a host would match both).
  for (const std::string& a : suffixes) {
    for (const std::string& b : suffixes) {
      if (a != b) {
        EXPECT_FALSE(a.ends_with(b)) << a << " ends with " << b;
      }
    }
  }
}

TEST(ProviderDefaults, HostSuffixMatchesWholeLabels) {
  EXPECT_TRUE(host_has_suffix("aspmx.l.google.com", "google.com"));
  EXPECT_TRUE(host_has_suffix("google.com", "google.com"));
  EXPECT_FALSE(host_has_suffix("notgoogle.com", "google.com"));
  EXPECT_FALSE(host_has_suffix("google.com", ".google.com"));
  EXPECT_TRUE(host_has_suffix("mx.google.com", ".google.com"));
  EXPECT_FALSE(host_has_suffix("mx.google.com", ""));
}

}  // namespace
}  // namespace ringmail::policy
