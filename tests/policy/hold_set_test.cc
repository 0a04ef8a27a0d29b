// Which jobs and sites an operator's holds stop: tenants, campaigns, all
// delivery, and site suspensions that end by themselves.
#include "policy/hold_set.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

using namespace std::chrono_literals;

struct JobCase {
  const char* tenant;
  const char* campaign;
  bool held;
};

TEST(HoldSet, TenantAndCampaignPausesHoldOnlyTheirJobs) {
  HoldSet holds;
  holds.pause_tenant("acme");
  holds.pause_campaign("spring-sale");
  const std::vector<JobCase> cases = {
      {"acme", "", true},        {"acme", "newsletter", true},   {"other", "spring-sale", true},
      {"", "spring-sale", true}, {"other", "newsletter", false}, {"", "", false},
      {"ACME", "", false},  // names are exact
      {"acm", "spring", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(holds.holds_job(c.tenant, c.campaign), c.held)
        << "tenant \"" << c.tenant << "\" campaign \"" << c.campaign << "\"";
  }
}

TEST(HoldSet, ResumingReleasesOnlyWhatWasNamed) {
  HoldSet holds;
  holds.pause_tenant("acme");
  holds.pause_campaign("spring-sale");
  holds.resume_tenant("acme");
  EXPECT_FALSE(holds.holds_job("acme", ""));
  EXPECT_TRUE(holds.holds_job("acme", "spring-sale"));
  holds.resume_campaign("spring-sale");
  EXPECT_FALSE(holds.holds_job("acme", "spring-sale"));
  holds.resume_campaign("never-paused");  // harmless
  EXPECT_FALSE(holds.holds_job("", ""));
}

TEST(HoldSet, PauseAllHoldsEveryJobUntilResumed) {
  HoldSet holds;
  EXPECT_FALSE(holds.all_paused());
  holds.pause_all();
  EXPECT_TRUE(holds.all_paused());
  EXPECT_TRUE(holds.holds_job("", ""));
  EXPECT_TRUE(holds.holds_job("acme", "spring-sale"));
  holds.resume_all();
  EXPECT_FALSE(holds.all_paused());
  EXPECT_FALSE(holds.holds_job("acme", "spring-sale"));
}

TEST(HoldSet, ASiteSuspensionLastsUntilItsTime) {
  const runtime::WallTime t0{std::chrono::hours(1)};
  HoldSet holds;
  holds.suspend_site("mx.example.test", t0 + 10min);
  struct Case {
    const char* site;
    runtime::WallTime now;
    bool suspended;
  };
  const std::vector<Case> cases = {
      {"mx.example.test", t0, true},
      {"mx.example.test", t0 + 10min - 1ms, true},
      {"mx.example.test", t0 + 10min, false},  // ends at its time
      {"mx.other.test", t0, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.site);
    const auto until = holds.site_suspended(c.site, c.now);
    EXPECT_EQ(until.has_value(), c.suspended);
    if (until) {
      EXPECT_EQ(*until, t0 + 10min);
    }
  }
  // Site suspensions hold connections, not jobs.
  EXPECT_FALSE(holds.holds_job("", ""));
}

TEST(HoldSet, ExpireForgetsEndedSuspensionsAndSaysSo) {
  const runtime::WallTime t0{std::chrono::hours(1)};
  HoldSet holds;
  holds.suspend_site("a.test", t0 + 1min);
  holds.suspend_site("b.test", t0 + 5min);
  EXPECT_FALSE(holds.expire(t0));
  EXPECT_TRUE(holds.expire(t0 + 1min));
  EXPECT_FALSE(holds.expire(t0 + 2min));
  EXPECT_TRUE(holds.site_suspended("b.test", t0 + 2min).has_value());
  holds.resume_site("b.test");
  EXPECT_FALSE(holds.site_suspended("b.test", t0 + 2min).has_value());
  EXPECT_FALSE(holds.expire(t0 + 10min));
}

TEST(HoldSet, SuspendingAgainMovesTheEnd) {
  const runtime::WallTime t0{std::chrono::hours(1)};
  HoldSet holds;
  holds.suspend_site("a.test", t0 + 10min);
  holds.suspend_site("a.test", t0 + 1min);
  EXPECT_FALSE(holds.site_suspended("a.test", t0 + 2min).has_value());
}

}  // namespace
}  // namespace ringmail::policy
