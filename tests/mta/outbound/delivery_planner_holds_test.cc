// Tests of what an operator and a restart see of the DeliveryPlanner:
// paused campaigns, tenants and all delivery, suspended sites, stop with
// its deadline, messages loaded from the spool at start-up and found again
// on a rescan.
#include <gtest/gtest.h>

#include "mta/outbound/delivery_planner.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;
using Kind = AdminCommand::Kind;

AdminCommand admin(Kind kind, std::string target = "", runtime::WallTime until = {}) {
  return AdminCommand{kind, std::move(target), until, ""};
}

// --- holds

struct PauseCase {
  const char* name;
  AdminCommand pause;
  AdminCommand resume;
  bool others_go;  // a message outside the hold goes meanwhile
};

TEST_F(DeliveryPlannerTest, HeldMessagesWaitWithoutAttemptsAndGoWhenResumed) {
  const std::vector<PauseCase> cases = {
      {"campaign", admin(Kind::pause_campaign, "spring"), admin(Kind::resume_campaign, "spring"),
       true},
      {"tenant", admin(Kind::pause_tenant, "app1"), admin(Kind::resume_tenant, "app1"), true},
      {"all delivery", admin(Kind::pause_all), admin(Kind::resume_all), false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
    planner.command(c.pause);
    auto held = message({"u@[192.0.2.1]"}, "spring");  // tenant app1
    auto other = message({"v@[192.0.2.2]"}, "autumn");
    other->meta.tenant = "app2";
    PlannerOutput out = planner.committed({held, other});
    EXPECT_EQ(opened_ips(out), c.others_go ? Strings{"192.0.2.2"} : Strings{});
    EXPECT_TRUE(out.records.empty());
    EXPECT_TRUE(out.updates.empty());

    clock.advance(1min);
    out = planner.tick();
    EXPECT_TRUE(out.open.empty());
    EXPECT_TRUE(out.records.empty());

    out = planner.command(c.resume);
    EXPECT_TRUE(out.records.empty());
    ASSERT_FALSE(out.open.empty());
    EXPECT_EQ(out.open[0].target.ip, "192.0.2.1");
    const ConnectionId id = out.open[0].id;
    out = planner.connection_ready(id);
    ASSERT_EQ(out.start.size(), 1u);
    out = planner.transaction_done(id, result({reply(250, "2.0.0", "ok")}), "");
    ASSERT_EQ(types(out), Strings{"Delivery"});
    EXPECT_EQ(out.records[0]["attempt"], 1) << "the hold was no attempt";
  }
}

TEST_F(DeliveryPlannerTest, ACampaignResumedDuringPauseAllGoesWithResumeAll) {
  planner().command(admin(Kind::pause_campaign, "spring"));
  EXPECT_TRUE(commit(message({"u@[192.0.2.1]"}, "spring")).open.empty());
  planner().command(admin(Kind::pause_all));
  EXPECT_TRUE(planner().command(admin(Kind::resume_campaign, "spring")).open.empty());
  // Not left on the campaign's list, where resume_all would not find it.
  PlannerOutput out = planner().command(admin(Kind::resume_all));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
  EXPECT_TRUE(out.records.empty());
}

TEST_F(DeliveryPlannerTest, HeldMailDoesNotExpireWhileTheHoldLasts) {
  const std::vector<AdminCommand> holds = {admin(Kind::pause_campaign, "spring"),
                                           admin(Kind::pause_tenant, "app1"),
                                           admin(Kind::pause_all)};
  for (const auto& hold : holds) {
    SCOPED_TRACE(static_cast<int>(hold.kind));
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
    planner.command(hold);
    planner.committed({message({"u@[192.0.2.1]"}, "spring")});
    // Well past retry.max_age (24 h), ticking as the engine does.
    for (int hour = 0; hour < 30; ++hour) {
      clock.advance(1h);
      PlannerOutput out = planner.tick();
      EXPECT_TRUE(out.records.empty());
      EXPECT_TRUE(out.updates.empty());
      EXPECT_TRUE(out.dsns.empty());
      EXPECT_TRUE(out.open.empty());
    }
    EXPECT_EQ(planner.active_messages(), 1u);
  }
}

TEST_F(DeliveryPlannerTest, ASuspendedSiteGetsNoConnectionWhileOthersGo) {
  PlannerOutput out =
      planner().command(admin(Kind::suspend_site, "[192.0.2.1]", clock.wall() + 10min));
  out = planner().committed({message({"u@[192.0.2.1]"}), message({"v@[192.0.2.2]"})});
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.2"});
  EXPECT_TRUE(out.records.empty());
  clock.advance(1min);
  out = planner().tick();
  EXPECT_TRUE(out.open.empty());
  EXPECT_TRUE(out.records.empty());

  out = planner().command(admin(Kind::resume_site, "[192.0.2.1]"));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
}

TEST_F(DeliveryPlannerTest, ASuspensionThatEndsLetsTheSiteGoAtTheNextTick) {
  planner().command(admin(Kind::suspend_site, "[192.0.2.1]", clock.wall() + 10min));
  PlannerOutput out = planner().committed({message({"u@[192.0.2.1]"})});
  EXPECT_TRUE(out.open.empty());
  clock.advance(9min);
  EXPECT_TRUE(planner().tick().open.empty());
  clock.advance(1min);
  out = planner().tick();
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
  EXPECT_TRUE(out.records.empty());
}

TEST_F(DeliveryPlannerTest, ASuspendedSitesIdleConnectionTakesNoNewMessage) {
  const ConnectionId c = only_open(commit(message({"u@[192.0.2.1]"})));
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(c);
  planner().command(admin(Kind::suspend_site, "[192.0.2.1]", clock.wall() + 10min));
  PlannerOutput out = commit(message({"v@[192.0.2.1]"}));
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.open.empty());
  out = planner().command(admin(Kind::resume_site, "[192.0.2.1]"));
  ASSERT_EQ(out.start.size(), 1u);
  EXPECT_EQ(out.start[0].id, c);
}

// --- cancelled campaigns

TEST_F(DeliveryPlannerTest, ACancelledCampaignsQueuedMailLeavesAsCancelledAndOthersGo) {
  planner().command(admin(Kind::pause_all));  // everything waits: nothing is in flight
  commit(message({"a@[192.0.2.1]", "b@[192.0.2.1]"}, "spring"));
  commit(message({"c@[192.0.2.2]"}, "autumn"));
  PlannerOutput out = planner().command(admin(Kind::cancel_campaign, "spring"));
  EXPECT_EQ(types(out), (Strings{"Cancelled", "Cancelled"}));
  EXPECT_EQ(states(out), (Strings{"cancelled", "cancelled"}));
  ASSERT_EQ(out.updates.size(), 2u);
  EXPECT_EQ(out.updates[0].attempts, 0u) << "a cancellation is no attempt";
  EXPECT_EQ(out.records[0]["campaign"], "spring");
  EXPECT_EQ(out.finished.size(), 1u) << "the message has no recipient left";
  EXPECT_EQ(out.metrics.cancelled, 2u);
  EXPECT_TRUE(out.dsns.empty()) << "the operator dropped it: no DSN";
  out = planner().command(admin(Kind::resume_all));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.2"}) << "only the other campaign's mail goes";
  EXPECT_EQ(planner().snapshot({}, false).totals.cancelled, 2u);
}

TEST_F(DeliveryPlannerTest, MailOfACancelledCampaignThatComesUpLaterIsCancelledNotSent) {
  // In a transaction when the cancel comes: it finishes, and its deferral
  // is cancelled instead of retried.
  const ConnectionId c = only_open(commit(message({"u@[192.0.2.1]"}, "spring")));
  ASSERT_EQ(planner().connection_ready(c).start.size(), 1u);
  PlannerOutput out = planner().command(admin(Kind::cancel_campaign, "spring"));
  EXPECT_TRUE(out.records.empty()) << "in flight: left to finish";
  out = planner().transaction_done(c, result({reply(451, "4.3.0", "try later")}), "");
  EXPECT_EQ(types(out), Strings{"TransientFailure"});
  clock.advance(1h);
  out = planner().tick();
  EXPECT_EQ(types(out), Strings{"Cancelled"});
  EXPECT_TRUE(out.open.empty() && out.start.empty());

  // Committed after the cancel (accepted just before the gate closed).
  out = commit(message({"v@[192.0.2.1]"}, "spring"));
  EXPECT_EQ(types(out), Strings{"Cancelled"});
  EXPECT_TRUE(out.open.empty() && out.start.empty());
}

TEST_F(DeliveryPlannerTest, CancellingAPausedCampaignDropsItsHeldMail) {
  planner().command(admin(Kind::pause_campaign, "spring"));
  EXPECT_TRUE(commit(message({"u@[192.0.2.1]"}, "spring")).open.empty());
  PlannerOutput out = planner().command(admin(Kind::cancel_campaign, "spring"));
  EXPECT_EQ(types(out), Strings{"Cancelled"});
  // A resume after it finds nothing to release.
  out = planner().command(admin(Kind::resume_campaign, "spring"));
  EXPECT_TRUE(out.open.empty());
  EXPECT_TRUE(out.records.empty());
  EXPECT_EQ(planner().active_messages(), 0u);
}

TEST_F(DeliveryPlannerTest, ResultsCarryTheReplyAndTheBounceCategoryForTheStatistics) {
  const ConnectionId c =
      only_open(commit(message({"a@[192.0.2.1]", "b@[192.0.2.1]", "c@[192.0.2.1]"}, "spring")));
  planner().connection_ready(c);
  PlannerOutput out = planner().transaction_done(
      c,
      result({reply(250, "2.1.5", "ok"), reply(550, "5.1.1", "no such user"),
              reply(451, "4.3.0", "later")}),
      "");
  ASSERT_EQ(out.updates.size(), 3u);
  EXPECT_EQ(out.updates[0].response, (queue::RecipientResponse{250, "2.1.5", "ok"}));
  EXPECT_FALSE(out.updates[0].category.has_value());
  EXPECT_EQ(out.updates[1].response.code, 550);
  EXPECT_EQ(out.updates[1].category, conf::BounceCategory::InvalidRecipient);
  EXPECT_EQ(out.updates[2].response.text, "later");
  EXPECT_FALSE(out.updates[2].category.has_value()) << "a deferral is no bounce";
}

TEST_F(DeliveryPlannerTest, DeliveryPausedInTheConfigIsTheStartUpDefaultTheApiCanResume) {
  config.delivery.paused = true;
  DeliveryPlanner paused(spool, clock, std::make_shared<const conf::Config>(config), 1);
  EXPECT_TRUE(paused.committed({message({"u@[192.0.2.1]"})}).open.empty());
  PlannerOutput out = paused.command(admin(Kind::resume_all));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
  // A reload that sets it pauses again; one that clears it resumes.
  paused.set_config(std::make_shared<const conf::Config>(config));  // unchanged: no effect
  EXPECT_EQ(opened_ips(paused.committed({message({"v@[192.0.2.2]"})})), Strings{"192.0.2.2"});
  config.delivery.paused = false;
  paused.set_config(std::make_shared<const conf::Config>(config));
  config.delivery.paused = true;
  paused.set_config(std::make_shared<const conf::Config>(config));
  EXPECT_TRUE(paused.committed({message({"w@[192.0.2.3]"})}).open.empty());
}

// --- stop

TEST_F(DeliveryPlannerTest,
       StopQuitsIdleConnectionsClosesConnectingOnesAndCutsTheRestAtTheDeadline) {
  const ConnectionId idle = only_open(commit(message({"u@[192.0.2.1]"})));
  planner().connection_ready(idle);
  planner().transaction_done(idle, result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(idle);
  const ConnectionId busy = only_open(commit(message({"v@[192.0.2.2]"})));
  ASSERT_EQ(planner().connection_ready(busy).start.size(), 1u);
  const ConnectionId connecting = only_open(commit(message({"w@[192.0.2.3]"})));

  PlannerOutput out = planner().stop(30s);
  EXPECT_EQ(out.quit, std::vector<ConnectionId>{idle});
  EXPECT_EQ(out.close, std::vector<ConnectionId>{connecting});
  EXPECT_FALSE(planner().stopped());

  planner().connection_closed(idle);
  planner().connection_closed(connecting);
  EXPECT_FALSE(planner().stopped());
  out = commit(message({"x@[192.0.2.4]"}));
  EXPECT_TRUE(out.open.empty()) << "nothing new while stopping";

  clock.advance(29s);
  EXPECT_TRUE(planner().tick().close.empty());
  clock.advance(1s);
  out = planner().tick();
  EXPECT_EQ(out.close, std::vector<ConnectionId>{busy});
  out = planner().connection_closed(busy);
  ASSERT_EQ(types(out), Strings{"TransientFailure"});
  EXPECT_EQ(out.records[0]["recipient"], "v@[192.0.2.2]");
  EXPECT_EQ(states(out), Strings{"deferred"});
  EXPECT_TRUE(planner().stopped());
}

// --- start-up and rescans

TEST_F(DeliveryPlannerTest, AStoredMessageSendsItsQueuedRecipientNowAndItsDeferredOneLater) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  struct Case {
    const char* name;
    bool rescan;  // adopt(), else load() and start()
  };
  for (const Case& k : {Case{"start-up", false}, Case{"rescan", true}}) {
    SCOPED_TRACE(k.name);
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
    queue::SpoolMessage m = *message({"due@a.test", "later@a.test"});
    m.envelope.recipients[1].state = RecipientState::deferred;
    m.envelope.recipients[1].attempts = 2;
    m.envelope.recipients[1].next_attempt_unix_ms = clock.unix_ms() + 10 * 60 * 1000;
    m.id = queue::make_message_id();
    store(m);

    PlannerOutput out;
    if (k.rescan) {
      out = planner.adopt({m});
    } else {
      planner.load(m, {0, 1});
      out = planner.start();
    }
    const ConnectionId c = only_open(out);
    out = planner.connection_ready(c);
    EXPECT_EQ(started(out), (std::vector<Strings>{{"due@a.test"}}));
    out = planner.transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
    ASSERT_EQ(types(out), Strings{"Delivery"});
    EXPECT_EQ(out.records[0]["attempt"], 1);
    EXPECT_TRUE(out.finished.empty());
    planner.connection_ready(c);

    clock.advance(9min);
    out = planner.tick();
    EXPECT_TRUE(out.open.empty());
    EXPECT_TRUE(out.start.empty());
    clock.advance(1min);
    out = planner.tick();
    const ConnectionId retry = only_open(out);
    out = planner.connection_ready(retry);
    EXPECT_EQ(started(out), (std::vector<Strings>{{"later@a.test"}}));
    out = planner.transaction_done(retry, result({reply(250, "2.0.0", "ok")}), "");
    ASSERT_EQ(types(out), Strings{"Delivery"});
    EXPECT_EQ(out.records[0]["attempt"], 3) << "attempts continue from the spool";
    EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m.id});
  }
}

TEST_F(DeliveryPlannerTest, ARescanDoesNotScheduleAKnownMessageTwice) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  config.delivery.max_connections_per_site = 10;
  auto m = message({"u@a.test"});
  const ConnectionId c = only_open(commit(m));
  EXPECT_EQ(planner().scheduler().size(), 1u);

  PlannerOutput out = planner().adopt({*m});
  EXPECT_TRUE(out.open.empty());
  EXPECT_EQ(out.metrics.queued, 0);
  EXPECT_EQ(planner().scheduler().size(), 1u);

  // Delivered, its deletion not committed yet: a rescan still finds it.
  planner().connection_ready(c);
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m->id});
  out = planner().adopt({*m});
  EXPECT_TRUE(out.open.empty());
  EXPECT_TRUE(out.start.empty());
  EXPECT_EQ(planner().scheduler().size(), 0u);

  // A message released from quarantine is new to it: scheduled.
  auto released = message({"v@a.test"});
  out = planner().adopt({*released});
  EXPECT_EQ(out.metrics.queued, 1);
  EXPECT_EQ(out.start.size() + out.open.size(), 1u);
}

// --- an operator's bounce

TEST_F(DeliveryPlannerTest, AnAdminBounceTakesTheQueuedRecipientsOutWithTheirReason) {
  planner().command(admin(Kind::pause_all));  // nothing is attempted meanwhile
  auto a = message({"u1@[192.0.2.1]", "u2@[192.0.2.1]"}, "spring");
  auto b = message({"u3@[192.0.2.3]"}, "spring");
  auto c = message({"u4@[192.0.2.4]"}, "autumn");
  planner().committed({a, b, c});

  AdminCommand bounce = admin(Kind::bounce_campaign, "spring");
  bounce.reason = "list purge";
  PlannerOutput out = planner().command(bounce);
  EXPECT_EQ(out.admin_bounced, 3u);
  EXPECT_EQ(types(out), (Strings{"AdminBounce", "AdminBounce", "AdminBounce"}));
  EXPECT_EQ(states(out), (Strings{"bounced", "bounced", "bounced"}));
  for (const auto& record : out.records) {
    EXPECT_EQ(record["reason"], "list purge");
    EXPECT_EQ(record["campaign"], "spring");
    EXPECT_EQ(record["attempt"], 0) << "an operator's bounce is not an attempt";
  }
  ASSERT_EQ(out.finished.size(), 2u);
  EXPECT_EQ(out.finished[0], a->id);
  EXPECT_EQ(out.finished[1], b->id);
  EXPECT_TRUE(out.dsns.empty()) << "the operator chose to drop the mail";
  EXPECT_EQ(out.metrics.queued, -3);

  out = planner().command(admin(Kind::resume_all));
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.4"}) << "only autumn is left";
}

TEST_F(DeliveryPlannerTest, AnAdminBounceLeavesTransactionsInFlightAlone) {
  config.delivery.max_connections_per_site = 1;
  auto a = message({"u1@[192.0.2.1]"});
  auto b = message({"u2@[192.0.2.1]"});
  PlannerOutput out = planner().committed({a, b});
  const ConnectionId id = only_open(out);
  out = planner().connection_ready(id);
  ASSERT_EQ(started(out).size(), 1u);  // a is in flight, b waits in the site's queue
  out = planner().command(admin(Kind::bounce_domain, "[192.0.2.1]"));
  EXPECT_EQ(out.admin_bounced, 1u);
  ASSERT_EQ(out.updates.size(), 1u);
  EXPECT_EQ(out.updates[0].id, b->id);
  out = planner().transaction_done(id, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(types(out), Strings{"Delivery"});
  out = planner().connection_ready(id);
  EXPECT_TRUE(out.start.empty()) << "the bounced one is not sent";
}

}  // namespace
}  // namespace ringmail::mta::testing
