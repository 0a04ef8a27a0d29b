// tests/mail/mailbox_provider_test.cc — the shipped provider table: names
// that the config accepts, and suffix matching on whole labels.
#include "mail/mailbox_provider.h"

#include <gtest/gtest.h>

#include <algorithm>

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

}  // namespace
}  // namespace ringmail::mail
