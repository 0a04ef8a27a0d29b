// tests/mail/mailbox_provider_test.cc — the shipped provider table: names
// that the config accepts, and suffix matching on whole labels.
#include "mail/mailbox_provider.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace ringmail::mail {
namespace {

TEST(MailboxProvider, NamesAreSortedAndEachHasSuffixes) {
  const auto& names = provider_names();
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  for (std::string_view name : {"gmail", "outlook", "yahoo", "icloud", "gmx", "orange"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  for (std::string_view name : names) EXPECT_FALSE(provider_mx_suffixes(name).empty()) << name;
  EXPECT_TRUE(provider_mx_suffixes("hotmail").empty());
  EXPECT_TRUE(provider_mx_suffixes("Gmail").empty()) << "names are lower case";
}

TEST(MailboxProvider, SuffixesMatchWholeLabels) {
  EXPECT_TRUE(host_has_suffix("alt1.gmail-smtp-in.l.google.com", ".google.com"));
  EXPECT_FALSE(host_has_suffix("google.com", ".google.com"));
  EXPECT_TRUE(host_has_suffix("google.com", "google.com"));
  EXPECT_TRUE(host_has_suffix("mx.google.com", "google.com"));
  EXPECT_FALSE(host_has_suffix("notgoogle.com", "google.com"));
  EXPECT_FALSE(host_has_suffix("mx.google.com", ""));
  EXPECT_TRUE(hosts_of_provider("yahoo", {"mx.other.test", "mta5.am0.yahoodns.net"}));
  EXPECT_FALSE(hosts_of_provider("yahoo", {"mx.other.test"}));
  EXPECT_FALSE(hosts_of_provider("nosuch", {"mta5.am0.yahoodns.net"}));
}

TEST(MailboxProvider, ContractNamesAndAliases) {
  for (const char* name : {"gmail", "outlook", "yahoo", "icloud", "gmx", "comcast", "orange"}) {
    EXPECT_EQ(canonical_provider(name), name);
  }
  const struct {
    const char* alias;
    const char* name;
  } cases[] = {{"google", "gmail"},  {"microsoft", "outlook"}, {"office365", "outlook"},
               {"aol", "yahoo"},     {"apple", "icloud"},      {"xfinity", "comcast"},
               {"wanadoo", "orange"}};
  for (const auto& c : cases) {
    EXPECT_EQ(canonical_provider(c.alias), c.name) << c.alias;
    EXPECT_EQ(provider_mx_suffixes(c.alias), provider_mx_suffixes(c.name)) << c.alias;
  }
  EXPECT_EQ(canonical_provider("no-such-provider"), "");
}

TEST(MailboxProvider, RealMxHostsBelongToTheirProvider) {
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
  for (const auto& c : cases) EXPECT_EQ(provider_of_hosts({c.host}), c.provider) << c.host;
  // Any host of the set decides: a Google MX behind a backup MX of another.
  EXPECT_EQ(provider_of_hosts({"backup.example.test", "aspmx.l.google.com"}), "gmail");
}

TEST(MailboxProvider, NoTwoProvidersShareASuffix) {
  std::set<std::string> suffixes;
  std::set<std::string_view> providers;
  for (std::string_view name : provider_names()) {
    if (!providers.insert(canonical_provider(name)).second) continue;  // an alias, seen
    for (std::string_view s : provider_mx_suffixes(name)) {
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

}  // namespace
}  // namespace ringmail::mail
