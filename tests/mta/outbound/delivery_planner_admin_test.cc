// tests/mta/outbound/delivery_planner_admin_test.cc — what the admin API
// sees of the DeliveryPlanner and asks of it: snapshot() per site and
// filter, the totals since start, domain suspensions (held, not attempted,
// released by a resume or at their end) and a site's bounce reaching mail
// that waits for a retry.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mta/outbound/delivery_planner.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;
using Kind = AdminCommand::Kind;

AdminCommand admin(Kind kind, std::string target = "", runtime::WallTime until = {},
                   std::string reason = "") {
  return AdminCommand{kind, std::move(target), until, std::move(reason)};
}

// Gmail's reply for an address that does not exist (InvalidRecipient).
SmtpReply no_such_user() {
  return reply(550, "5.1.1",
               "The email account that you tried to reach does not exist. Please try "
               "double-checking the recipient's email address for typos or unnecessary spaces.");
}

// A snapshot's sites by name.
std::map<std::string, SiteSnapshot> by_site(const DeliverySnapshot& snap) {
  std::map<std::string, SiteSnapshot> out;
  for (const SiteSnapshot& s : snap.sites) out[s.site] = s;
  return out;
}

QueueFilter filter(std::string site, std::string domain = "", std::string campaign = "",
                   std::string tenant = "") {
  return QueueFilter{std::move(site), std::move(domain), std::move(campaign), std::move(tenant)};
}
QueueFilter site_is(std::string site) { return filter(std::move(site)); }
QueueFilter domain_is(std::string domain) { return filter("", std::move(domain)); }
QueueFilter campaign_is(std::string campaign) { return filter("", "", std::move(campaign)); }
QueueFilter tenant_is(std::string tenant) { return filter("", "", "", std::move(tenant)); }

Strings site_names(const DeliverySnapshot& snap) {
  Strings out;
  for (const SiteSnapshot& s : snap.sites) out.push_back(s.site);
  return out;
}

struct Counts {
  uint64_t queued, deferred, in_flight, delivered, bounced;
  Strings domains;
};

void expect_site(const DeliverySnapshot& snap, const std::string& site, const Counts& want) {
  SCOPED_TRACE(site);
  const auto sites = by_site(snap);
  auto it = sites.find(site);
  ASSERT_NE(it, sites.end());
  const SiteSnapshot& s = it->second;
  EXPECT_EQ(s.source, "default");
  EXPECT_EQ(s.queued, want.queued);
  EXPECT_EQ(s.deferred, want.deferred);
  EXPECT_EQ(s.in_flight, want.in_flight);
  EXPECT_EQ(s.delivered, want.delivered);
  EXPECT_EQ(s.bounced, want.bounced);
  EXPECT_EQ(s.domains, want.domains);
}

class DeliveryPlannerAdminTest : public DeliveryPlannerTest {
 protected:
  DeliveryPlannerAdminTest() {
    config.delivery.max_connections_per_site = 1;
    config.delivery.idle_timeout = std::chrono::hours(1);  // idle connections stay
  }

  PlannerOutput answer(const std::string& domain, const std::string& site, const std::string& ip) {
    return planner().resolved(domain, mx_answer(domain, site, {host(site, 10, ip)}, 3600));
  }

  DeliverySnapshot snap(QueueFilter filter = {}, bool with_idle_sites = false) {
    return planner().snapshot(filter, with_idle_sites);
  }
};

// --- snapshot

TEST_F(DeliveryPlannerAdminTest, ASnapshotCountsEachSitesRecipientsByWhereTheyWait) {
  auto m1 = message({"u1@a.test", "u2@a.test"});
  m1->meta.tenant = "app2";
  auto m2 = message({"v@b.test"});
  auto m3 = message({"w@c.test"}, "spring");
  PlannerOutput out = planner().committed({m1, m2, m3});
  EXPECT_EQ(out.resolve, (Strings{"a.test", "b.test", "c.test"}));

  // Not routed yet: counted under the domain itself.
  DeliverySnapshot s = snap();
  EXPECT_EQ(site_names(s), (Strings{"a.test", "b.test", "c.test"}));
  expect_site(s, "a.test", {2, 0, 0, 0, 0, {"a.test"}});
  EXPECT_EQ(s.queued, 4u);
  EXPECT_EQ(s.in_flight, 0u);

  // a.test and b.test share a provider's MX: one site.
  const ConnectionId shared = only_open(answer("a.test", "mx.shared.test", "192.0.2.10"));
  EXPECT_TRUE(answer("b.test", "mx.shared.test", "192.0.2.10").open.empty());
  only_open(answer("c.test", "mx.c.test", "192.0.2.20"));
  s = snap();
  EXPECT_EQ(site_names(s), (Strings{"mx.c.test", "mx.shared.test"}));
  expect_site(s, "mx.shared.test", {3, 0, 0, 0, 0, {"a.test", "b.test"}});
  expect_site(s, "mx.c.test", {1, 0, 0, 0, 0, {"c.test"}});
  EXPECT_FALSE(by_site(s)["mx.shared.test"].suspended_until);

  ASSERT_EQ(started(planner().connection_ready(shared)),
            (std::vector<Strings>{{"u1@a.test", "u2@a.test"}}));
  s = snap();
  expect_site(s, "mx.shared.test", {1, 0, 2, 0, 0, {"a.test", "b.test"}});
  EXPECT_EQ(s.queued, 4u) << "in flight counts as queued in the total";
  EXPECT_EQ(s.in_flight, 2u);

  planner().transaction_done(
      shared, result({reply(250, "2.0.0", "ok"), reply(450, "4.2.1", "try later")}), "");
  ASSERT_EQ(started(planner().connection_ready(shared)), (std::vector<Strings>{{"v@b.test"}}));
  s = snap();
  // u2 waits for its retry, still counted under the site of its attempt.
  expect_site(s, "mx.shared.test", {1, 1, 1, 1, 0, {"a.test", "b.test"}});

  planner().transaction_done(shared, result({no_such_user()}), "");
  planner().connection_ready(shared);
  s = snap();
  expect_site(s, "mx.shared.test", {1, 1, 0, 1, 1, {"a.test"}});
  expect_site(s, "mx.c.test", {1, 0, 0, 0, 0, {"c.test"}});
  EXPECT_EQ(s.queued, 2u);
  EXPECT_EQ(s.in_flight, 0u);

  // A suspended site says until when.
  planner().command(admin(Kind::suspend_site, "mx.c.test", clock.wall() + 1h));
  s = snap();
  EXPECT_EQ(by_site(s)["mx.c.test"].suspended_until, clock.wall() + 1h);
  EXPECT_FALSE(by_site(s)["mx.shared.test"].suspended_until);
  clock.advance(1h);
  EXPECT_FALSE(by_site(snap())["mx.c.test"].suspended_until) << "ended";
}

TEST_F(DeliveryPlannerAdminTest, SnapshotFiltersBySiteDomainCampaignAndTenant) {
  auto m1 = message({"u1@a.test", "u2@a.test"});
  m1->meta.tenant = "app2";
  auto m2 = message({"v@b.test"}, "autumn");
  auto m3 = message({"w@c.test"}, "spring");
  planner().committed({m1, m2, m3});
  answer("a.test", "mx.shared.test", "192.0.2.10");
  answer("b.test", "mx.shared.test", "192.0.2.10");
  answer("c.test", "mx.c.test", "192.0.2.20");

  struct Case {
    const char* name;
    QueueFilter filter;
    Strings sites;
    uint64_t queued;
    Strings shared_domains;  // of mx.shared.test, when listed
  };
  const Case cases[] = {
      {"none", {}, {"mx.c.test", "mx.shared.test"}, 4, {"a.test", "b.test"}},
      {"site", site_is("mx.shared.test"), {"mx.shared.test"}, 3, {"a.test", "b.test"}},
      {"another site", site_is("mx.c.test"), {"mx.c.test"}, 1, {}},
      {"domain", domain_is("b.test"), {"mx.shared.test"}, 1, {"b.test"}},
      {"campaign", campaign_is("spring"), {"mx.c.test"}, 1, {}},
      {"tenant", tenant_is("app2"), {"mx.shared.test"}, 2, {"a.test"}},
      {"tenant of the rest", tenant_is("app1"), {"mx.c.test", "mx.shared.test"}, 2, {"b.test"}},
      {"site and domain", filter("mx.shared.test", "a.test"), {"mx.shared.test"}, 2, {"a.test"}},
      {"site and a domain elsewhere", filter("mx.c.test", "a.test"), {}, 0, {}},
      {"a site by its domain's name", site_is("a.test"), {}, 0, {}},
      {"nothing matches", campaign_is("winter"), {}, 0, {}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const DeliverySnapshot s = snap(c.filter);
    EXPECT_EQ(site_names(s), c.sites);
    EXPECT_EQ(s.queued, c.queued);
    if (!c.shared_domains.empty()) {
      EXPECT_EQ(by_site(s)["mx.shared.test"].domains, c.shared_domains);
    }
    EXPECT_EQ(s.totals.received, 4u) << "totals are not filtered";
  }
}

TEST_F(DeliveryPlannerAdminTest, IdleSitesAreListedOnlyWhenAskedAndUnfilteredByMail) {
  const ConnectionId c = only_open(commit(message({"u@[192.0.2.9]"})));
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(c);
  commit(message({"v@a.test"}));  // queued, waiting for DNS

  EXPECT_EQ(site_names(snap({}, false)), Strings{"a.test"});
  const DeliverySnapshot s = snap({}, true);
  EXPECT_EQ(site_names(s), (Strings{"[192.0.2.9]", "a.test"}));
  expect_site(s, "[192.0.2.9]", {0, 0, 0, 1, 0, {"[192.0.2.9]"}});
  EXPECT_EQ(s.queued, 1u);
  EXPECT_EQ(site_names(snap(site_is("[192.0.2.9]"), true)), Strings{"[192.0.2.9]"});
  EXPECT_TRUE(snap(site_is("[192.0.2.9]"), false).sites.empty());
  // A filter on mail (domain, campaign, tenant) has nothing to match in a
  // site's past: idle sites are left out.
  EXPECT_EQ(site_names(snap(domain_is("a.test"), true)), Strings{"a.test"});
  EXPECT_TRUE(snap(domain_is("[192.0.2.9]"), true).sites.empty());
  EXPECT_TRUE(snap(campaign_is("x"), true).sites.empty());
  EXPECT_EQ(site_names(snap(tenant_is("app1"), true)), Strings{"a.test"});
}

// --- totals

TEST_F(DeliveryPlannerAdminTest, TotalsCountEveryOutcomeSinceStart) {
  auto delivered_later = message({"a@[192.0.2.1]"});
  auto bounced = message({"b@[192.0.2.2]"});
  auto expired = message({"c@[192.0.2.3]"});
  expired->meta.received_unix_ms = clock.unix_ms() - 25 * 3600 * 1000;  // past max_age (24 h)
  auto admin_bounced = message({"d@[192.0.2.4]", "e@[192.0.2.4]"}, "purge-me");
  planner().command(admin(Kind::pause_campaign, "purge-me"));

  PlannerOutput out = planner().committed({delivered_later, bounced, expired, admin_bounced});
  EXPECT_EQ(types(out), Strings{"Expiration"});
  ASSERT_EQ(out.open.size(), 2u);
  const ConnectionId c1 = out.open[0].id;
  const ConnectionId c2 = out.open[1].id;

  // Deferred twice, then delivered: two deferrals, one delivery.
  planner().connection_ready(c1);
  planner().transaction_done(c1, result({reply(451, "4.3.0", "busy")}), "");
  planner().connection_ready(c1);
  clock.advance(std::chrono::minutes(2));
  out = planner().tick();
  ASSERT_EQ(out.start.size(), 1u);
  planner().transaction_done(c1, result({reply(451, "4.3.0", "busy")}), "");
  planner().connection_ready(c1);
  clock.advance(std::chrono::minutes(12));
  out = planner().tick();
  ASSERT_EQ(out.start.size(), 1u);
  out = planner().transaction_done(c1, result({reply(250, "2.0.0", "ok")}), "");
  ASSERT_EQ(types(out), Strings{"Delivery"});

  planner().connection_ready(c2);
  out = planner().transaction_done(c2, result({no_such_user()}), "");
  ASSERT_EQ(types(out), Strings{"Bounce"});

  out = planner().command(admin(Kind::bounce_campaign, "purge-me", {}, "list purge"));
  EXPECT_EQ(out.admin_bounced, 2u);

  const DeliveryTotals t = snap().totals;
  EXPECT_EQ(t.received, 5u);
  EXPECT_EQ(t.delivered, 1u);
  EXPECT_EQ(t.deferred, 2u) << "deferrals, not recipients";
  EXPECT_EQ(t.bounced, 1u) << "expirations and admin bounces apart";
  EXPECT_EQ(t.expired, 1u);
  EXPECT_EQ(t.admin_bounced, 2u);
  EXPECT_EQ(t.bounced_by_category,
            (std::map<std::string, uint64_t>{{"InvalidRecipient", 1}, {"MessageExpired", 1}}));
  EXPECT_EQ(snap().queued, 0u);

  // Per site, since start.
  const DeliverySnapshot s = snap({}, true);
  expect_site(s, "[192.0.2.1]", {0, 0, 0, 1, 0, {"[192.0.2.1]"}});
  expect_site(s, "[192.0.2.2]", {0, 0, 0, 0, 1, {"[192.0.2.2]"}});
}

TEST_F(DeliveryPlannerAdminTest, ReceivedCountsActiveRecipientsOnly) {
  auto m = message({"a@[192.0.2.1]", "b@[192.0.2.1]", "c@[192.0.2.1]"});
  m->envelope.recipients[1].state = RecipientState::quarantined;
  m->envelope.recipients[2].state = RecipientState::delivered;
  commit(m);
  auto all_quarantined = message({"q@[192.0.2.1]"});
  all_quarantined->envelope.recipients[0].state = RecipientState::quarantined;
  commit(all_quarantined);
  EXPECT_EQ(snap().totals.received, 1u);
  commit(m);  // committed twice (a rescan found it first): counted once
  EXPECT_EQ(snap().totals.received, 1u);
}

TEST_F(DeliveryPlannerAdminTest, ARetriedDeadLetterIsNotReceivedAgain) {
  auto m = message({"a@[192.0.2.1]"});
  m->origin = queue::MessageOrigin::dead_letter_retry;
  const PlannerOutput out = commit(m);
  EXPECT_EQ(snap().totals.received, 0u);
  EXPECT_EQ(out.open.size(), 1u) << "it is delivered like new mail";
  EXPECT_EQ(snap().queued, 1u);
}

// --- one message's live view (GET /api/v1/messages/ID)

TEST_F(DeliveryPlannerAdminTest, LiveViewNamesRecipientsInFlightAndHeld) {
  auto m = message({"a@[192.0.2.1]", "b@[192.0.2.1]", "c@hold.test"});
  auto held = message({"h@[192.0.2.1]"}, "paused-campaign");
  planner().command(admin(Kind::pause_campaign, "paused-campaign"));
  const ConnectionId c = only_open(commit(m));
  commit(held);

  MessageLiveView view = planner().live_view(m->id.value);
  EXPECT_TRUE(view.scheduled);
  EXPECT_TRUE(view.in_flight.empty());
  EXPECT_TRUE(view.held.empty());

  planner().command(admin(Kind::suspend_domain, "hold.test", clock.wall() + 1h));
  ASSERT_EQ(started(planner().connection_ready(c)),
            (std::vector<Strings>{{"a@[192.0.2.1]", "b@[192.0.2.1]"}}));
  view = planner().live_view(m->id.value);
  EXPECT_EQ(view.in_flight, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(view.held, (std::vector<uint32_t>{2}));

  view = planner().live_view(held->id.value);
  EXPECT_TRUE(view.scheduled);
  EXPECT_TRUE(view.in_flight.empty());
  EXPECT_EQ(view.held, (std::vector<uint32_t>{0}));

  planner().transaction_done(c, result({reply(250, "2.0.0", "ok"), reply(250, "2.0.0", "ok")}), "");
  view = planner().live_view(m->id.value);
  EXPECT_TRUE(view.in_flight.empty());
  EXPECT_EQ(view.held, (std::vector<uint32_t>{2}));

  const MessageLiveView unknown = planner().live_view("no-such-id");
  EXPECT_FALSE(unknown.scheduled);
  EXPECT_TRUE(unknown.in_flight.empty() && unknown.held.empty());
}

// --- domain suspensions

TEST_F(DeliveryPlannerAdminTest, ASuspendedDomainsMailWaitsWithoutAttemptsWhileItsSiteGoes) {
  config.delivery.routes = {{"*.test", smarthost("192.0.2.50", 25)}};
  const std::string site = "192.0.2.50:25";
  auto a1 = message({"u@a.test"});
  auto b1 = message({"v@b.test"});
  const ConnectionId c = only_open(planner().committed({a1, b1}));
  // Both ready at the site; a.test's goes back when its domain is suspended.
  PlannerOutput out = planner().command(admin(Kind::suspend_domain, "a.test", clock.wall() + 1h));
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.updates.empty()) << "held, not deferred: no spool write";
  EXPECT_TRUE(out.open.empty());

  out = planner().connection_ready(c);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"v@b.test"}}));
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(types(out), Strings{"Delivery"});
  out = planner().connection_ready(c);
  EXPECT_TRUE(out.start.empty()) << "the held job is not in the site's queue";

  // New mail: a.test's is held at once, b.test's goes on the idle connection.
  out = commit(message({"w@a.test"}));
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.open.empty());
  EXPECT_TRUE(out.records.empty());
  out = commit(message({"x@b.test"}));
  EXPECT_EQ(started(out), (std::vector<Strings>{{"x@b.test"}}));
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_TRUE(planner().connection_ready(c).start.empty());

  // Held mail stays queued in the snapshot, not deferred: the job that was
  // ready under its site, the new one (never routed) under its domain.
  DeliverySnapshot s = snap();
  expect_site(s, site, {1, 0, 0, 2, 0, {"a.test"}});
  expect_site(s, "a.test", {1, 0, 0, 0, 0, {"a.test"}});

  clock.advance(std::chrono::minutes(30));
  out = planner().tick();
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.updates.empty());

  // Resumed: out at once, on the idle connection, as first attempts.
  out = planner().command(admin(Kind::resume_domain, "a.test"));
  ASSERT_EQ(started(out), (std::vector<Strings>{{"u@a.test"}}));
  EXPECT_EQ(out.start[0].id, c);
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  ASSERT_EQ(types(out), Strings{"Delivery"});
  EXPECT_EQ(out.records[0]["attempt"], 1) << "the suspension was no attempt";
  out = planner().connection_ready(c);
  ASSERT_EQ(started(out), (std::vector<Strings>{{"w@a.test"}}));
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(out.records[0]["attempt"], 1);
}

TEST_F(DeliveryPlannerAdminTest, ADomainSuspensionThatEndsIsReleasedByTick) {
  config.delivery.routes = {{"*.test", smarthost("192.0.2.50", 25)}};
  planner().command(admin(Kind::suspend_domain, "a.test", clock.wall() + std::chrono::minutes(10)));
  PlannerOutput out = commit(message({"u@a.test"}));
  EXPECT_TRUE(out.open.empty());
  clock.advance(std::chrono::minutes(9));
  out = planner().tick();
  EXPECT_TRUE(out.open.empty());
  EXPECT_TRUE(out.records.empty());
  clock.advance(std::chrono::minutes(1));
  out = planner().tick();
  const ConnectionId c = only_open(out);
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.50"});
  EXPECT_TRUE(out.records.empty());
  out = planner().connection_ready(c);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"u@a.test"}}));
}

TEST_F(DeliveryPlannerAdminTest, ASuspendedDomainsDeferredMailWaitsPastItsRetryTime) {
  config.delivery.routes = {{"*.test", smarthost("192.0.2.50", 25)}};
  const ConnectionId c = only_open(commit(message({"u@a.test"})));
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(451, "4.3.0", "busy")}), "");
  planner().connection_ready(c);
  planner().command(admin(Kind::suspend_domain, "a.test", clock.wall() + 1h));
  clock.advance(std::chrono::minutes(5));  // past its retry time
  PlannerOutput out = planner().tick();
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.records.empty());
  out = planner().command(admin(Kind::resume_domain, "a.test"));
  ASSERT_EQ(out.start.size(), 1u);
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(out.records[0]["attempt"], 2) << "one real attempt before, none while held";
}

TEST_F(DeliveryPlannerAdminTest, MailWaitingForItsMxWhenTheDomainIsSuspendedIsHeldToo) {
  PlannerOutput out = commit(message({"u@a.test"}));
  ASSERT_EQ(out.resolve, Strings{"a.test"});
  planner().command(admin(Kind::suspend_domain, "a.test", clock.wall() + 1h));
  out = answer("a.test", "mx.a.test", "192.0.2.10");
  EXPECT_TRUE(out.open.empty()) << "the answer does not make it ready";
  EXPECT_TRUE(out.records.empty());
  EXPECT_EQ(snap().queued, 1u);
  out = planner().command(admin(Kind::resume_domain, "a.test"));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.10"});
}

TEST_F(DeliveryPlannerAdminTest, ADomainLookupThatFailsWhileSuspendedIsNoAttempt) {
  commit(message({"u@a.test"}));
  planner().command(admin(Kind::suspend_domain, "a.test", clock.wall() + 1h));
  MxResolution failed;
  failed.status = MxResolution::Status::temporary;
  failed.domain = "a.test";
  failed.error = "timeout";
  PlannerOutput out = planner().resolved("a.test", failed);
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.updates.empty());
}

// --- an operator's bounce of a site

TEST_F(DeliveryPlannerAdminTest, ABounceOfASiteReachesMailWaitingForARetryThere) {
  config.delivery.routes = {{"*.test", smarthost("192.0.2.50", 25)}};
  const std::string site = "192.0.2.50:25";
  auto m = message({"u@a.test"});
  auto elsewhere = message({"v@[192.0.2.9]"});
  PlannerOutput out = planner().committed({m, elsewhere});
  ASSERT_EQ(out.open.size(), 2u);
  const std::vector<OpenCommand> opened = out.open;
  for (const OpenCommand& open : opened) {
    planner().connection_ready(open.id);
    out = planner().transaction_done(open.id, result({reply(451, "4.3.0", "busy")}), "");
    ASSERT_EQ(types(out), Strings{"TransientFailure"});
  }
  expect_site(snap(), site, {1, 1, 0, 0, 0, {"a.test"}});

  out = planner().command(admin(Kind::bounce_site, site, {}, "site retired"));
  EXPECT_EQ(out.admin_bounced, 1u);
  ASSERT_EQ(types(out), Strings{"AdminBounce"});
  EXPECT_EQ(out.records[0]["recipient"], "u@a.test");
  EXPECT_EQ(out.records[0]["reason"], "site retired");
  EXPECT_EQ(out.records[0]["site"], site) << "the site it was bounced by";
  EXPECT_EQ(out.records[0]["attempt"], 1);
  EXPECT_EQ(states(out), Strings{"bounced"});
  EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m->id});
  EXPECT_EQ(out.metrics.deferred, -1);
  EXPECT_EQ(snap().totals.admin_bounced, 1u);
  EXPECT_EQ(site_names(snap()), Strings{"[192.0.2.9]"}) << "the other site's mail stays";
}

}  // namespace
}  // namespace ringmail::mta::testing
