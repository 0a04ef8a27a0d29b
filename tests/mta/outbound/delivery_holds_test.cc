// tests/mta/outbound/delivery_holds_test.cc — how an operator's holds are
// written to the spool's control table and read back at start-up: the key
// and value each command writes, and what a restart makes of every value
// it may find there (current, ended, damaged).
#include "mta/outbound/delivery_holds.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ringmail::mta {
namespace {

using namespace std::chrono_literals;
using Kind = AdminCommand::Kind;
using Controls = std::vector<std::pair<std::string, std::string>>;
using Strings = std::vector<std::string>;

constexpr int64_t kNowMs = 1767225600000;  // 2026-01-01T00:00:00Z
const runtime::WallTime kNow{runtime::Millis(kNowMs)};

AdminCommand command(Kind kind, std::string target = "", runtime::WallTime until = {},
                     std::string reason = "") {
  return AdminCommand{kind, std::move(target), until, std::move(reason)};
}

struct PersistCase {
  const char* name;
  AdminCommand command;
  std::optional<PersistedHold> expected;
};

TEST(DeliveryHolds, EveryCommandKindPersistsItsHoldOrNothing) {
  const std::string in_an_hour = std::to_string(kNowMs + 3600 * 1000);
  const PersistCase cases[] = {
      {"suspend a site", command(Kind::suspend_site, "mx.example.test", kNow + 1h),
       PersistedHold{"hold/site/mx.example.test", in_an_hour}},
      {"resume a site", command(Kind::resume_site, "mx.example.test"),
       PersistedHold{"hold/site/mx.example.test", std::nullopt}},
      {"suspend a domain", command(Kind::suspend_domain, "gmail.com", kNow + 1h),
       PersistedHold{"hold/domain/gmail.com", in_an_hour}},
      {"resume a domain", command(Kind::resume_domain, "gmail.com"),
       PersistedHold{"hold/domain/gmail.com", std::nullopt}},
      {"a site with a port and a source",
       command(Kind::suspend_site, "pool@192.0.2.1/10.0.0.1:25", kNow + 1ms),
       PersistedHold{"hold/site/pool@192.0.2.1/10.0.0.1:25", std::to_string(kNowMs + 1)}},
      {"pause all", command(Kind::pause_all), PersistedHold{"hold/all", "1"}},
      {"resume all", command(Kind::resume_all), PersistedHold{"hold/all", std::nullopt}},
      {"pause a tenant", command(Kind::pause_tenant, "app1"),
       PersistedHold{"hold/tenant/app1", "1"}},
      {"a relay tenant's name", command(Kind::pause_tenant, "127.0.0.0/8"),
       PersistedHold{"hold/tenant/127.0.0.0/8", "1"}},
      {"resume a tenant", command(Kind::resume_tenant, "app1"),
       PersistedHold{"hold/tenant/app1", std::nullopt}},
      // Campaigns keep their state in their records; bounces are no hold.
      {"cancel a campaign", command(Kind::cancel_campaign, "spring"), std::nullopt},
      {"pause a campaign", command(Kind::pause_campaign, "spring"), std::nullopt},
      {"resume a campaign", command(Kind::resume_campaign, "spring"), std::nullopt},
      {"bounce a site", command(Kind::bounce_site, "mx.example.test", {}, "why"), std::nullopt},
      {"bounce a domain", command(Kind::bounce_domain, "gmail.com"), std::nullopt},
      {"bounce a campaign", command(Kind::bounce_campaign, "spring"), std::nullopt},
      {"bounce a tenant", command(Kind::bounce_tenant, "app1"), std::nullopt},
  };
  for (const PersistCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::optional<PersistedHold> got = persisted_hold(c.command);
    ASSERT_EQ(got.has_value(), c.expected.has_value());
    if (!got) continue;
    EXPECT_EQ(got->key, c.expected->key);
    EXPECT_EQ(got->value, c.expected->value);
  }
}

TEST(DeliveryHolds, APersistedSuspensionRestoresAsTheSameCommand) {
  for (const AdminCommand& c :
       {command(Kind::suspend_site, "mx.example.test", kNow + 90min),
        command(Kind::suspend_domain, "gmail.com", kNow + 30 * 24h), command(Kind::pause_all),
        command(Kind::pause_tenant, "app1"), command(Kind::pause_tenant, "127.0.0.0/8")}) {
    SCOPED_TRACE(static_cast<int>(c.kind));
    const std::optional<PersistedHold> hold = persisted_hold(c);
    ASSERT_TRUE(hold && hold->value);
    const RestoredHolds restored = restore_holds({{hold->key, *hold->value}}, kNow);
    ASSERT_EQ(restored.commands.size(), 1u);
    EXPECT_EQ(restored.commands[0].kind, c.kind);
    EXPECT_EQ(restored.commands[0].target, c.target);
    EXPECT_EQ(restored.commands[0].until, c.until);
    EXPECT_TRUE(restored.expired.empty());
    EXPECT_TRUE(restored.problems.empty());
  }
}

struct Restored {
  Kind kind;
  std::string target;
  int64_t until_ms;  // 0 for pause_all
};

struct RestoreCase {
  const char* name;
  Controls controls;
  std::vector<Restored> commands;
  Strings expired;
  Strings problems;
};

TEST(DeliveryHolds, RestoreHoldsSortsWhatItFindsIntoCommandsEndedAndDamaged) {
  const std::string later = std::to_string(kNowMs + 60000);
  const std::string earlier = std::to_string(kNowMs - 1);
  const std::string now = std::to_string(kNowMs);
  const RestoreCase cases[] = {
      {"nothing", {}, {}, {}, {}},
      {"a suspended site",
       {{"hold/site/mx.a.test", later}},
       {{Kind::suspend_site, "mx.a.test", kNowMs + 60000}},
       {},
       {}},
      {"a suspended domain",
       {{"hold/domain/a.test", later}},
       {{Kind::suspend_domain, "a.test", kNowMs + 60000}},
       {},
       {}},
      {"a site name with slashes",
       {{"hold/site/pool@192.0.2.1/mx.a.test", later}},
       {{Kind::suspend_site, "pool@192.0.2.1/mx.a.test", kNowMs + 60000}},
       {},
       {}},
      {"all delivery paused", {{"hold/all", "1"}}, {{Kind::pause_all, "", 0}}, {}, {}},
      {"a suspension that ended",
       {{"hold/site/mx.a.test", earlier}},
       {},
       {"hold/site/mx.a.test"},
       {}},
      {"a suspension that ends now", {{"hold/domain/a.test", now}}, {}, {"hold/domain/a.test"}, {}},
      {"a suspension from 1970", {{"hold/domain/a.test", "1"}}, {}, {"hold/domain/a.test"}, {}},
      {"all paused, another value", {{"hold/all", "0"}}, {}, {}, {"hold/all"}},
      {"all paused, empty", {{"hold/all", ""}}, {}, {}, {"hold/all"}},
      {"all paused, with a newline", {{"hold/all", "1\n"}}, {}, {}, {"hold/all"}},
      {"a time in words", {{"hold/site/a", "tomorrow"}}, {}, {}, {"hold/site/a"}},
      {"an empty time", {{"hold/site/a", ""}}, {}, {}, {"hold/site/a"}},
      {"trailing garbage", {{"hold/site/a", later + "x"}}, {}, {}, {"hold/site/a"}},
      {"a leading space", {{"hold/site/a", " " + later}}, {}, {}, {"hold/site/a"}},
      {"a plus sign", {{"hold/site/a", "+" + later}}, {}, {}, {"hold/site/a"}},
      {"negative", {{"hold/site/a", "-" + later}}, {}, {}, {"hold/site/a"}},
      {"zero", {{"hold/domain/a", "0"}}, {}, {}, {"hold/domain/a"}},
      {"a NUL inside", {{"hold/site/a", std::string("1\0", 2)}}, {}, {}, {"hold/site/a"}},
      {"over int64", {{"hold/site/a", "99999999999999999999"}}, {}, {}, {"hold/site/a"}},
      // Past what a time point holds (year 2262 in nanoseconds): damage,
      // not an overflow into some other time.
      {"past the clock's range", {{"hold/site/a", "9000000000000000000"}}, {}, {}, {"hold/site/a"}},
      {"a site without a name", {{"hold/site/", later}}, {}, {}, {"hold/site/"}},
      {"a domain without a name", {{"hold/domain/", later}}, {}, {}, {"hold/domain/"}},
      {"an unknown kind", {{"hold/tenant/app1", later}}, {}, {}, {"hold/tenant/app1"}},
      {"a site without its slash", {{"hold/sitemx.a.test", later}}, {}, {}, {"hold/sitemx.a.test"}},
      {"all, with more after it", {{"hold/all/x", "1"}}, {}, {}, {"hold/all/x"}},
      {"the prefix alone", {{"hold/", "1"}}, {}, {}, {"hold/"}},
      {"a key outside hold/", {{"campaign/spring", "{}"}}, {}, {}, {"campaign/spring"}},
      {"a mix, in key order",
       {{"hold/all", "1"},
        {"hold/domain/a.test", later},
        {"hold/domain/b.test", earlier},
        {"hold/domain/c.test", "junk"},
        {"hold/site/mx.a.test", later},
        {"hold/site/mx.b.test", earlier},
        {"hold/site/mx.c.test", later}},
       {{Kind::pause_all, "", 0},
        {Kind::suspend_domain, "a.test", kNowMs + 60000},
        {Kind::suspend_site, "mx.a.test", kNowMs + 60000},
        {Kind::suspend_site, "mx.c.test", kNowMs + 60000}},
       {"hold/domain/b.test", "hold/site/mx.b.test"},
       {"hold/domain/c.test"}},
  };
  for (const RestoreCase& c : cases) {
    SCOPED_TRACE(c.name);
    const RestoredHolds got = restore_holds(c.controls, kNow);
    ASSERT_EQ(got.commands.size(), c.commands.size());
    for (size_t i = 0; i < got.commands.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(got.commands[i].kind, c.commands[i].kind);
      EXPECT_EQ(got.commands[i].target, c.commands[i].target);
      EXPECT_EQ(got.commands[i].until,
                c.commands[i].until_ms ? runtime::WallTime(runtime::Millis(c.commands[i].until_ms))
                                       : runtime::WallTime{});
      EXPECT_TRUE(got.commands[i].reason.empty());
    }
    EXPECT_EQ(got.expired, c.expired);
    EXPECT_EQ(got.problems, c.problems);
  }
}

}  // namespace
}  // namespace ringmail::mta
