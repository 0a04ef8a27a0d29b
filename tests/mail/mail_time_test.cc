// tests/mail/mail_time_test.cc — the one RFC 5322 date and RFC 3339
// timestamp formatter, at ordinary times and at the edges.
#include "mail/mail_time.h"

#include <gtest/gtest.h>

namespace ringmail::mail {
namespace {

TEST(MailTime, Rfc5322AndRfc3339) {
  const struct {
    int64_t unix_ms;
    const char* rfc5322;
    const char* rfc3339;
  } cases[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 +0000", "1970-01-01T00:00:00.000Z"},
      {1767225600000, "Thu, 01 Jan 2026 00:00:00 +0000", "2026-01-01T00:00:00.000Z"},
      {1709294096789, "Fri, 01 Mar 2024 11:54:56 +0000", "2024-03-01T11:54:56.789Z"},
      {1709164800000 - 1, "Wed, 28 Feb 2024 23:59:59 +0000", "2024-02-28T23:59:59.999Z"},
      {951782400000, "Tue, 29 Feb 2000 00:00:00 +0000", "2000-02-29T00:00:00.000Z"},
      // Before 1970 the seconds round down, not towards zero.
      {-1, "Wed, 31 Dec 1969 23:59:59 +0000", "1969-12-31T23:59:59.999Z"},
      {-1500, "Wed, 31 Dec 1969 23:59:58 +0000", "1969-12-31T23:59:58.500Z"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(format_rfc5322_date(c.unix_ms), c.rfc5322) << c.unix_ms;
    EXPECT_EQ(format_rfc3339_ms(c.unix_ms), c.rfc3339) << c.unix_ms;
  }
}

}  // namespace
}  // namespace ringmail::mail
