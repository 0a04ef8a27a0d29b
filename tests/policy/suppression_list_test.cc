// Which recipients are suppressed: per tenant or for every tenant ("*"),
// addresses compared without regard to case, with the reason kept.
#include "policy/suppression_list.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

TEST(SuppressionList, LooksUpPerTenantAndForEveryTenantIgnoringCase) {
  SuppressionList list;
  list.add("acme", "Bounced@Example.test", "hard bounce 2026-01-01");
  list.add("*", "complainer@example.test", "spam complaint");
  list.add("other", "only-other@example.test", "unsubscribed");
  struct Case {
    const char* tenant;
    const char* address;
    std::optional<std::string> reason;
  };
  const std::vector<Case> cases = {
      {"acme", "bounced@example.test", "hard bounce 2026-01-01"},
      {"acme", "BOUNCED@EXAMPLE.TEST", "hard bounce 2026-01-01"},
      {"acme", "Bounced@Example.test", "hard bounce 2026-01-01"},
      {"other", "bounced@example.test", std::nullopt},  // acme's entry only
      {"", "bounced@example.test", std::nullopt},
      {"acme", "complainer@example.test", "spam complaint"},
      {"other", "Complainer@EXAMPLE.test", "spam complaint"},
      {"", "complainer@example.test", "spam complaint"},
      {"other", "only-other@example.test", "unsubscribed"},
      {"acme", "only-other@example.test", std::nullopt},
      {"acme", "bounced@example.tes", std::nullopt},
      {"ACME", "bounced@example.test", std::nullopt},  // tenants are exact
  };
  for (const auto& c : cases) {
    EXPECT_EQ(list.find(c.tenant, c.address), c.reason)
        << "tenant \"" << c.tenant << "\" address " << c.address;
  }
}

TEST(SuppressionList, AddingAgainReplacesTheReasonAndRemoveTakesItOut) {
  SuppressionList list;
  EXPECT_EQ(list.find("acme", "a@example.test"), std::nullopt);
  list.add("acme", "a@example.test", "bounce");
  list.add("acme", "A@EXAMPLE.TEST", "complaint");
  EXPECT_EQ(list.size(), 1u);
  EXPECT_EQ(list.find("acme", "a@example.test"), "complaint");
  EXPECT_FALSE(list.remove("other", "a@example.test"));
  EXPECT_TRUE(list.remove("acme", "A@Example.Test"));
  EXPECT_FALSE(list.remove("acme", "a@example.test"));
  EXPECT_EQ(list.find("acme", "a@example.test"), std::nullopt);
  EXPECT_EQ(list.size(), 0u);
}

TEST(SuppressionList, AnEveryTenantEntryDoesNotHideATenantsOwnReason) {
  SuppressionList list;
  list.add("*", "a@example.test", "global");
  list.add("acme", "a@example.test", "acme's own");
  EXPECT_EQ(list.find("acme", "a@example.test"), "acme's own");
  EXPECT_EQ(list.find("other", "a@example.test"), "global");
}

}  // namespace
}  // namespace ringmail::policy
