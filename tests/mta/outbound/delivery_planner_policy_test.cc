// tests/mta/outbound/delivery_planner_policy_test.cc — the traffic policy
// as the planner applies it, with a fake clock and scripted replies:
// adaptive concurrency, reuse instead of new connections, message_rate and
// connection_rate tokens (waiting is neither an attempt nor a deferral),
// and backoff rules (suspend, rate cut, bounce, resume ends them, never on
// Ringmail's own failures).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;
const std::string kSite = "192.0.2.50:25";

class DeliveryPolicyTest : public DeliveryPlannerTest {
 protected:
  DeliveryPolicyTest() {
    config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
    config.delivery.max_connections_per_site = 8;
    config.delivery.initial_connections = 2;
  }
  std::shared_ptr<conf::PolicyConfig> policy() {
    if (!config.policy) config.policy = std::make_shared<conf::PolicyConfig>();
    return std::const_pointer_cast<conf::PolicyConfig>(config.policy);
  }
  void commit_n(int n, const std::string& domain = "a.test") {
    std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
    for (int i = 0; i < n; ++i) batch.push_back(message({"u" + std::to_string(i) + "@" + domain}));
    PlannerOutput out = planner().committed(batch);
    for (const OpenCommand& o : out.open) opened.push_back(o.id);
  }
  // A tick, with the engine's answer to each QUIT (the connection closes).
  PlannerOutput tick() {
    PlannerOutput out = planner().tick();
    for (ConnectionId id : out.quit) {
      PlannerOutput more = planner().connection_closed(id);
      for (auto& s : more.start) out.start.push_back(std::move(s));
      for (auto& o : more.open) out.open.push_back(o);
    }
    return out;
  }
  std::vector<ConnectionId> opened;
};

TEST_F(DeliveryPolicyTest, ASiteStartsAtInitialConnectionsAndGrowsWithABacklogOfSuccesses) {
  commit_n(40);
  ASSERT_EQ(opened.size(), 2u) << "initial_connections, not one per message";
  EXPECT_EQ(planner().site(kSite)->concurrency, 2u);
  std::vector<ConnectionId> ready;
  size_t delivered = 0;
  // Every connection delivers its message; ticks open what the grown
  // concurrency allows while the backlog lasts.
  for (int round = 0; round < 12 && delivered < 40; ++round) {
    for (ConnectionId id : opened) {
      PlannerOutput out = planner().connection_ready(id);
      if (!out.start.empty()) ready.push_back(id);
    }
    opened.clear();
    std::vector<ConnectionId> next;
    for (ConnectionId id : ready) {
      planner().transaction_done(id, result({reply(250, "2.0.0", "ok")}), "");
      ++delivered;
      next.push_back(id);
    }
    ready.clear();
    opened = next;
    PlannerOutput out = planner().tick();
    for (const OpenCommand& o : out.open) opened.push_back(o.id);
  }
  const SiteState* site = planner().site(kSite);
  EXPECT_GT(site->concurrency, 2u) << "grew with the backlog";
  EXPECT_LE(site->concurrency, 8u);
  EXPECT_LE(site->connections, site->concurrency);
}

TEST_F(DeliveryPolicyTest, MessagesOneAfterAnotherToASlowMxDoNotOpenAConnectionEach) {
  for (int i = 0; i < 20; ++i) commit_n(1);
  EXPECT_EQ(opened.size(), 2u);
  EXPECT_EQ(planner().tick().open.size(), 0u);
}

TEST_F(DeliveryPolicyTest, A421AndConnectionFailuresShrinkConcurrency) {
  config.delivery.initial_connections = 4;
  commit_n(10);
  ASSERT_EQ(opened.size(), 4u);
  EXPECT_EQ(planner().site(kSite)->concurrency, 4u);
  planner().connection_ready(opened[0]);
  planner().transaction_done(opened[0], result({reply(421, "4.7.0", "too busy, slow down")}), "");
  EXPECT_EQ(planner().site(kSite)->concurrency, 3u);
  planner().connection_failed(opened[1], local_failure("connection refused"), false);
  EXPECT_EQ(planner().site(kSite)->concurrency, 2u);
  for (int i = 0; i < 5; ++i) {
    planner().connection_failed(opened[2], local_failure("connection refused"), false);
  }
  EXPECT_GE(planner().site(kSite)->concurrency, 1u) << "never below one";
}

TEST_F(DeliveryPolicyTest, MessageRateKeepsJobsReadyUntilTheirTokenIsDue) {
  conf::ShapingRule rule;
  rule.match = conf::ShapingMatch{conf::ShapingMatch::Kind::domain, "a.test"};
  rule.message_rate = conf::Rate{2, std::chrono::minutes(1)};  // a token per 30 s, burst 2
  policy()->shaping = {rule};
  config.delivery.routes = {{"a.test", smarthost("192.0.2.50", 25)}};
  commit_n(4);
  ASSERT_EQ(opened.size(), 2u);
  EXPECT_EQ(started(planner().connection_ready(opened[0])).size(), 1u);
  EXPECT_EQ(started(planner().connection_ready(opened[1])).size(), 1u);
  PlannerOutput out =
      planner().transaction_done(opened[0], result({reply(250, "2.0.0", "ok")}), "");
  out = planner().connection_ready(opened[0]);
  EXPECT_TRUE(out.start.empty()) << "the burst is spent";
  EXPECT_TRUE(out.updates.empty()) << "waiting is not a deferral";
  clock.advance(4s);
  out = tick();
  EXPECT_TRUE(out.start.empty() && out.open.empty());
  clock.advance(25s);
  out = tick();
  EXPECT_TRUE(out.start.empty() && out.open.empty()) << "idle ones closed, none opened";
  EXPECT_TRUE(out.records.empty());
  clock.advance(1s);
  out = tick();
  ASSERT_EQ(out.open.size(), 1u) << "the token is due: one job, one connection";
  EXPECT_EQ(started(planner().connection_ready(out.open[0].id)),
            (std::vector<Strings>{{"u2@a.test"}}));
  clock.advance(10s);
  out = tick();
  EXPECT_TRUE(out.start.empty() && out.open.empty());
}

TEST_F(DeliveryPolicyTest, ConnectionRateSpacesNewConnections) {
  conf::ShapingRule rule;
  rule.match = conf::ShapingMatch{conf::ShapingMatch::Kind::domain, "a.test"};
  rule.connection_rate = conf::Rate{1, std::chrono::seconds(10)};
  policy()->shaping = {rule};
  config.delivery.routes = {{"a.test", smarthost("192.0.2.50", 25)}};
  config.delivery.initial_connections = 4;
  commit_n(10);
  EXPECT_EQ(opened.size(), 1u) << "one token";
  clock.advance(5s);
  EXPECT_TRUE(planner().tick().open.empty());
  clock.advance(5s);
  EXPECT_EQ(planner().tick().open.size(), 1u);
}

TEST_F(DeliveryPolicyTest, AShippedYahooRuleSuspendsTheQueueUntilItEndsOrIsResumed) {
  commit_n(3);
  ASSERT_EQ(opened.size(), 2u);
  planner().connection_ready(opened[0]);
  planner().connection_ready(opened[1]);
  PlannerOutput out = planner().transaction_done(
      opened[0],
      result({reply(421, "4.7.0",
                    "[TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected "
                    "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/"
                    "error-codes")}),
      "");
  ASSERT_EQ(counts(out.metrics.backoff_activations),
            (std::vector<std::pair<std::string, uint64_t>>{{"suspend", 1}}));
  ASSERT_EQ(out.metrics.backoff_active.size(), 1u);
  EXPECT_TRUE(out.metrics.backoff_active[0].active);
  EXPECT_EQ(out.metrics.backoff_active[0].site, kSite);
  // Nothing goes during the suspension: not on the idle connection, not
  // on the other one when its transaction ends.
  EXPECT_TRUE(planner().connection_ready(opened[0]).start.empty());
  planner().transaction_done(opened[1], result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_TRUE(planner().connection_ready(opened[1]).start.empty());
  clock.advance(1h);
  EXPECT_TRUE(tick().start.empty());
  EXPECT_TRUE(tick().open.empty());
  DeliverySnapshot snap = planner().snapshot(QueueFilter{}, true);
  ASSERT_EQ(snap.sites.size(), 1u);
  ASSERT_TRUE(snap.sites[0].backoff.has_value());
  EXPECT_EQ(snap.sites[0].backoff->action, "suspend");
  EXPECT_NE(snap.sites[0].backoff->reply.find("TSS04"), std::string::npos);
  // An operator's resume ends it at once.
  AdminCommand resume;
  resume.kind = AdminCommand::Kind::resume_site;
  resume.target = kSite;
  out = planner().command(resume);
  EXPECT_EQ(out.start.size() + out.open.size(), 2u)
      << "the held job and the one deferred by the 421 (due by now) go again";
  ASSERT_EQ(out.metrics.backoff_active.size(), 1u);
  EXPECT_FALSE(out.metrics.backoff_active[0].active);
  EXPECT_FALSE(planner().snapshot(QueueFilter{}, true).sites[0].backoff.has_value());
}

TEST_F(DeliveryPolicyTest, ABackoffSuspensionSurvivesARestartUntilItEndsOrIsResumed) {
  commit_n(1);
  ASSERT_EQ(opened.size(), 1u);
  planner().connection_ready(opened[0]);
  planner().transaction_done(
      opened[0], result({reply(421, "4.7.0", "[TSS04] Messages from 192.0.2.10 deferred")}), "");
  // The override goes out with the next event's output, for the next commit.
  PlannerOutput out = planner().connection_ready(opened[0]);
  std::map<std::string, std::optional<std::string>> writes;
  for (const queue::ControlWrite& w : out.controls) writes[w.key] = w.value;
  const std::string key = "backoff/" + kSite;
  ASSERT_TRUE(writes.contains(key) && writes[key]) << "suspension persisted";
  ASSERT_TRUE(spool.put_control(key, writes[key]).ok());  // what the writer commits

  // A restart 10 minutes later: the site is still suspended for 1 h 50.
  clock.advance(10min);
  DeliveryPlanner again(spool, clock, std::make_shared<const conf::Config>(config), 7);
  out = again.start();
  ASSERT_EQ(out.metrics.backoff_active.size(), 1u);
  EXPECT_TRUE(out.metrics.backoff_active[0].active);
  EXPECT_EQ(out.metrics.backoff_active[0].site, kSite);
  out = again.committed({message({"new@a.test"})});
  EXPECT_TRUE(out.open.empty()) << "no connection to a suspended site after the restart";
  DeliverySnapshot snap = again.snapshot(QueueFilter{}, true);
  ASSERT_EQ(snap.sites.size(), 1u);
  ASSERT_TRUE(snap.sites[0].backoff);
  EXPECT_EQ(snap.sites[0].backoff->action, "suspend");
  EXPECT_EQ(snap.sites[0].backoff->until, runtime::WallTime(1767225600000ms + 2h));
  clock.advance(1h);
  EXPECT_TRUE(again.tick().open.empty());

  // Resume ends it, and deletes its record.
  AdminCommand resume;
  resume.kind = AdminCommand::Kind::resume_site;
  resume.target = kSite;
  out = again.command(resume);
  EXPECT_EQ(out.open.size(), 1u);
  out = again.tick();
  bool deleted = false;
  for (const queue::ControlWrite& w : out.controls) deleted |= w.key == key && !w.value;
  EXPECT_TRUE(deleted);
}

TEST_F(DeliveryPolicyTest, ARestoredSuspensionOfAnUnusedSiteEndsAndIsResumable) {
  queue::BackoffRecord r;
  r.source = "default";
  r.site = kSite;
  r.override_in_force.kind = policy::BackoffKind::suspend;
  r.override_in_force.since = clock.wall() - 1h;
  r.override_in_force.until = clock.wall() + 30min;
  ASSERT_TRUE(spool.put_control("backoff/" + kSite, queue::encode_backoff_record(r)).ok());
  r.override_in_force.until = clock.wall() - 1min;  // ended while the daemon was down
  ASSERT_TRUE(spool.put_control("backoff/gone.test:25", queue::encode_backoff_record(r)).ok());
  ASSERT_TRUE(spool.put_control("backoff/bad", "{not json").ok());
  PlannerOutput out = planner().start();
  std::set<std::string> deleted;
  for (const queue::ControlWrite& w : out.controls) {
    if (!w.value) deleted.insert(w.key);
  }
  EXPECT_EQ(deleted, (std::set<std::string>{"backoff/gone.test:25", "backoff/bad"}));
  ASSERT_EQ(out.metrics.backoff_active.size(), 1u);
  clock.advance(30min);
  out = tick();
  ASSERT_EQ(out.metrics.backoff_active.size(), 1u);
  EXPECT_FALSE(out.metrics.backoff_active[0].active) << "ended at its time, never used";
}

TEST_F(DeliveryPolicyTest, ASuspensionEndsByItselfAtItsTime) {
  auto p = policy();
  conf::BackoffRule rule;
  rule.match = conf::make_response_match(421, "", "(?i)slow down");
  rule.action.kind = conf::BackoffAction::Kind::suspend;
  rule.action.suspend = std::chrono::minutes(15);
  p->backoff = {rule};
  p->backoff_given = true;
  commit_n(2);
  planner().connection_ready(opened[0]);
  planner().connection_ready(opened[1]);
  planner().transaction_done(opened[0], result({reply(421, "4.4.2", "Slow down please")}), "");
  EXPECT_TRUE(planner().connection_ready(opened[0]).start.empty());
  planner().transaction_done(opened[1], result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(opened[1]);
  clock.advance(14min);
  PlannerOutput out = tick();
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.open.empty());
  clock.advance(1min);
  out = tick();
  EXPECT_EQ(out.open.size(), 1u) << "the retry of the deferred job, due meanwhile, goes now";
}

TEST_F(DeliveryPolicyTest, ABounceRuleBouncesTheRecipientAtOnce) {
  auto p = policy();
  conf::BackoffRule rule;
  rule.match = conf::make_response_match(450, "", "(?i)blocked for policy");
  rule.action.kind = conf::BackoffAction::Kind::bounce;
  p->backoff = {rule};
  p->backoff_given = true;
  commit_n(1);
  planner().connection_ready(opened[0]);
  PlannerOutput out = planner().transaction_done(
      opened[0], result({reply(450, "4.7.1", "Sender blocked for policy reasons")}), "");
  EXPECT_EQ(types(out), Strings{"Bounce"});
  EXPECT_EQ(states(out), Strings{"bounced"});
}

TEST_F(DeliveryPolicyTest, RingmailsOwnFailuresNeverTriggerARule) {
  auto p = policy();
  conf::BackoffRule rule;
  rule.match = conf::make_response_match(std::nullopt, "", "(?i)timed out|refused");
  rule.action.kind = conf::BackoffAction::Kind::suspend;
  rule.action.suspend = std::chrono::hours(1);
  p->backoff = {rule};
  p->backoff_given = true;
  commit_n(1);
  SmtpReply timeout = local_failure("timed out waiting for the greeting");
  timeout.code = 421;
  PlannerOutput out = planner().connection_failed(opened[0], timeout, false);
  EXPECT_TRUE(out.metrics.backoff_activations.counts.empty());
  EXPECT_FALSE(planner().snapshot(QueueFilter{}, true).sites.empty() &&
               planner().snapshot(QueueFilter{}, true).sites[0].backoff.has_value());
}

TEST_F(DeliveryPolicyTest, AGmailRateCutSlowsAnUnlimitedQueueAndRecovers) {
  config.delivery.initial_connections = 1;
  commit_n(30);
  ASSERT_EQ(opened.size(), 1u);
  const ConnectionId c = opened[0];
  planner().connection_ready(c);
  for (int i = 0; i < 9; ++i) {
    planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
    planner().connection_ready(c);
  }
  PlannerOutput out = planner().transaction_done(
      c,
      result({reply(421, "4.7.28",
                    "[192.0.2.10 15] Our system has detected an unusual rate of unsolicited mail "
                    "originating from your IP address. To protect our users from spam, mail sent "
                    "from your IP address has been temporarily rate limited.")}),
      "");
  ASSERT_EQ(counts(out.metrics.backoff_activations),
            (std::vector<std::pair<std::string, uint64_t>>{{"rate_factor", 1}}));
  EXPECT_TRUE(planner().site(kSite)->rate_cut);
  // Ten a minute before; a tenth of that now: one token, then a wait.
  EXPECT_EQ(planner().connection_ready(c).start.size(), 1u);
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_TRUE(planner().connection_ready(c).start.empty());
  DeliverySnapshot snap = planner().snapshot(QueueFilter{}, true);
  ASSERT_TRUE(snap.sites[0].backoff.has_value());
  EXPECT_EQ(snap.sites[0].backoff->action, "rate_factor");
  clock.advance(31min);
  out = tick();
  EXPECT_FALSE(planner().site(kSite)->rate_cut) << "recovered after 30 minutes";
  EXPECT_GE(out.open.size(), 1u);
}

TEST_F(DeliveryPolicyTest, ACampaignRateHoldsOnlyThatCampaignsJobsAndReleasesOnePerToken) {
  config.delivery.initial_connections = 4;
  planner().command(campaign_policy_command("c1", "", "2/m"));  // a token per 30 s, burst 2
  std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
  for (int i = 0; i < 4; ++i) batch.push_back(message({"c" + std::to_string(i) + "@a.test"}, "c1"));
  batch.push_back(message({"other@a.test"}, "c2"));
  PlannerOutput out = planner().committed(batch);
  ASSERT_EQ(out.open.size(), 4u);
  Strings starts;
  std::vector<ConnectionId> ids;
  for (const OpenCommand& o : out.open) {
    ids.push_back(o.id);
    for (const auto& rcpts : started(planner().connection_ready(o.id))) starts.push_back(rcpts[0]);
  }
  // c1's burst of two, and c2 behind c1's waiting jobs is not held up.
  EXPECT_EQ(starts, (Strings{"c0@a.test", "c1@a.test", "other@a.test"}));
  for (size_t i = 0; i < 3; ++i) {
    out = planner().transaction_done(ids[i], result({reply(250, "2.0.0", "ok")}), "");
    EXPECT_TRUE(out.updates.size() == 1 && out.updates[0].state == RecipientState::delivered);
  }
  clock.advance(29s);
  EXPECT_TRUE(tick().open.empty());
  clock.advance(1s);
  out = tick();
  ASSERT_EQ(out.open.size(), 1u) << "one token, one job";
  const ConnectionId c = out.open[0].id;
  EXPECT_EQ(started(planner().connection_ready(c)), (std::vector<Strings>{{"c2@a.test"}}));
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(c);
  clock.advance(30s);
  out = tick();
  ASSERT_EQ(out.open.size() + out.start.size(), 1u);
}

TEST_F(DeliveryPolicyTest, ACampaignsPoolChoosesTheSourceOfItsConnections) {
  auto p = policy();
  p->sources = {{"ip1", *conf::parse_ip_address("127.0.0.2")},
                {"ip2", *conf::parse_ip_address("127.0.0.3")}};
  p->pools = {{"default", {{"ip1"}}}, {"bulk", {{"ip2"}}}};
  planner().command(campaign_policy_command("c1", "bulk", ""));
  PlannerOutput out = planner().committed({message({"a@a.test"}, "c1")});
  ASSERT_EQ(out.open.size(), 1u);
  ASSERT_TRUE(out.open[0].source.has_value());
  EXPECT_EQ(out.open[0].source->text, "127.0.0.3");
  out = planner().committed({message({"b@b.test"}, "c9")});
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_EQ(out.open[0].source->text, "127.0.0.2");
}

TEST_F(DeliveryPolicyTest, ATenantRateHoldsThatTenantOnly) {
  conf::TenantPolicy t1;
  t1.name = "t1";
  t1.message_rate = conf::Rate{1, std::chrono::minutes(1)};
  policy()->tenants = {t1};
  config.delivery.initial_connections = 3;
  auto of = [&](const std::string& rcpt, const std::string& tenant) {
    auto m = message({rcpt});
    m->meta.tenant = tenant;
    return m;
  };
  PlannerOutput out =
      planner().committed({of("a@a.test", "t1"), of("b@a.test", "t1"), of("c@a.test", "t2")});
  ASSERT_EQ(out.open.size(), 3u);
  Strings starts;
  std::vector<ConnectionId> busy;
  for (const OpenCommand& o : out.open) {
    for (const auto& rcpts : started(planner().connection_ready(o.id))) {
      starts.push_back(rcpts[0]);
      busy.push_back(o.id);
    }
  }
  EXPECT_EQ(starts, (Strings{"a@a.test", "c@a.test"})) << "b waits a minute for t1's token";
  for (ConnectionId id : busy) {
    planner().transaction_done(id, result({reply(250, "2.0.0", "ok")}), "");
    EXPECT_TRUE(planner().connection_ready(id).start.empty());
  }
  clock.advance(59s);
  out = tick();
  EXPECT_TRUE(out.start.empty() && out.open.empty());
  clock.advance(1s);
  out = tick();
  EXPECT_EQ(out.start.size() + out.open.size(), 1u);
}

TEST_F(DeliveryPolicyTest, ASourceSuspendedByBackoffYieldsToTheOthersOfItsPool) {
  auto p = policy();
  p->sources = {{"ip1", *conf::parse_ip_address("127.0.0.2")},
                {"ip2", *conf::parse_ip_address("127.0.0.3")}};
  p->pools = {{"default", {{"ip1"}, {"ip2"}}}};
  PlannerOutput out = planner().committed({message({"a@a.test"})});
  ASSERT_EQ(out.open.size(), 1u);
  ASSERT_EQ(out.open[0].source->text, "127.0.0.2");
  const ConnectionId c = out.open[0].id;
  planner().connection_ready(c);
  out = planner().transaction_done(
      c, result({reply(421, "4.7.0", "[TSS04] Messages from 127.0.0.2 temporarily deferred")}), "");
  ASSERT_EQ(out.metrics.backoff_activations.counts.size(), 1u);
  Strings sources;
  for (int i = 0; i < 3; ++i) {
    out = planner().committed({message({"n" + std::to_string(i) + "@a.test"})});
    for (const OpenCommand& o : out.open) sources.push_back(o.source->text);
    for (const OpenCommand& o : out.open) {
      planner().connection_ready(o.id);
      planner().transaction_done(o.id, result({reply(250, "2.0.0", "ok")}), "");
    }
  }
  ASSERT_FALSE(sources.empty());
  for (const std::string& s : sources) EXPECT_EQ(s, "127.0.0.3") << "ip1 is suspended";
}

TEST_F(DeliveryPolicyTest, ASmarthostListFailsOverInOrder) {
  conf::Route route{"a.test", smarthost("192.0.2.50", 25)};
  route.failover = {smarthost("192.0.2.51", 2525), smarthost("192.0.2.52", 587)};
  config.delivery.routes = {route};
  PlannerOutput out = planner().committed({message({"u@a.test"})});
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_EQ(out.open[0].target.ip, "192.0.2.50");
  out = planner().connection_failed(out.open[0].id, local_failure("connection refused"), false);
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_EQ(out.open[0].target.ip, "192.0.2.51");
  EXPECT_EQ(out.open[0].target.port, 2525);
  out = planner().connection_failed(out.open[0].id, local_failure("connection refused"), false);
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_EQ(out.open[0].target.ip, "192.0.2.52");
  EXPECT_EQ(out.open[0].target.port, 587);
  EXPECT_EQ(started(planner().connection_ready(out.open[0].id)),
            (std::vector<Strings>{{"u@a.test"}}));
  const SiteState* site = planner().site("192.0.2.50:25,192.0.2.51:2525,192.0.2.52:587");
  ASSERT_NE(site, nullptr) << "the log's site names the whole list";
}

TEST_F(DeliveryPolicyTest, ASiteThatKeepsFailingIsLeftAloneLongerAndProbedWithOneConnection) {
  config.delivery.initial_connections = 4;
  config.delivery.retry.intervals = {std::chrono::seconds(1)};
  // Each round: every waiting job comes due, one probe connection fails.
  std::vector<runtime::Millis> gaps;
  commit_n(6);
  ASSERT_EQ(opened.size(), 4u) << "the first try is not a probe";
  PlannerOutput out;
  for (ConnectionId id : opened) {
    out = planner().connection_failed(id, local_failure("connection refused"), false);
  }
  EXPECT_EQ(planner().site(kSite)->down_streak, 1u);
  runtime::SteadyTime last = clock.steady();
  for (int round = 0; round < 4; ++round) {
    std::vector<ConnectionId> probes;
    for (int step = 0; step < 200 && probes.empty(); ++step) {
      clock.advance(100ms);
      for (const OpenCommand& o : tick().open) probes.push_back(o.id);
    }
    ASSERT_EQ(probes.size(), 1u) << "one probe, round " << round;
    gaps.push_back(std::chrono::duration_cast<runtime::Millis>(clock.steady() - last));
    last = clock.steady();
    planner().connection_failed(probes[0], local_failure("connection refused"), false);
  }
  // 1 s, 2 s, 4 s, 8 s after each failure (within a tick).
  for (size_t i = 1; i < gaps.size(); ++i) EXPECT_GT(gaps[i], gaps[i - 1]) << i;
  EXPECT_GE(gaps.back(), 8s);
  EXPECT_LE(gaps.back(), 8400ms);  // the scheduler's 100 ms buckets and the tick
  DeliverySnapshot snap = planner().snapshot(QueueFilter{}, true);
  ASSERT_EQ(snap.sites.size(), 1u);
  ASSERT_TRUE(snap.sites[0].circuit.has_value());
  EXPECT_EQ(snap.sites[0].circuit->failures, 5u);
  // The probe that gets a session closes the circuit: connections grow again.
  std::vector<ConnectionId> probes;
  for (int step = 0; step < 400 && probes.empty(); ++step) {
    clock.advance(100ms);
    for (const OpenCommand& o : tick().open) probes.push_back(o.id);
  }
  ASSERT_EQ(probes.size(), 1u);
  planner().connection_ready(probes[0]);
  EXPECT_EQ(planner().site(kSite)->down_streak, 0u);
  EXPECT_FALSE(planner().snapshot(QueueFilter{}, true).sites[0].circuit.has_value());
}

TEST_F(DeliveryPolicyTest, AProviderLimitCountsConnectionsAcrossAllItsSites) {
  // Two Workspace domains on different Google MX sets: one limit of 5
  // (shipped gmail default) per source, not 5 each.
  config.delivery.routes.clear();
  config.delivery.initial_connections = 8;
  std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
  for (int i = 0; i < 8; ++i) {
    batch.push_back(message({"u" + std::to_string(i) + "@one.test"}));
    batch.push_back(message({"v" + std::to_string(i) + "@two.test"}));
  }
  PlannerOutput out = planner().committed(batch);
  ASSERT_EQ(out.resolve, (Strings{"one.test", "two.test"}));
  size_t opened_total = 0;
  out = planner().resolved("one.test", mx_answer("one.test", "aspmx.l.google.com",
                                                 {host("aspmx.l.google.com", 1, "192.0.2.70")}));
  opened_total += out.open.size();
  EXPECT_EQ(out.open.size(), 5u) << "the provider's 5";
  out =
      planner().resolved("two.test", mx_answer("two.test", "alt1.aspmx.l.google.com",
                                               {host("alt1.aspmx.l.google.com", 5, "192.0.2.71")}));
  opened_total += out.open.size();
  EXPECT_EQ(opened_total, 5u) << "the second site shares the first's limit";
  const SiteState* two = planner().site("alt1.aspmx.l.google.com");
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->provider, "gmail");
  EXPECT_EQ(two->connections, 0u);
  EXPECT_TRUE(tick().open.empty()) << "still five in all";
}

TEST_F(DeliveryPolicyTest, AProviderThatRequiresTlsGetsNoClearTextRetry) {
  config.delivery.routes.clear();
  config.delivery.initial_connections = 1;
  PlannerOutput out = planner().committed({message({"u@one.test"}), message({"v@plain.test"})});
  out = planner().resolved("one.test", mx_answer("one.test", "aspmx.l.google.com",
                                                 {host("aspmx.l.google.com", 1, "192.0.2.70")}));
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_TRUE(out.open[0].starttls);
  EXPECT_TRUE(out.open[0].require_tls) << "shipped gmail default";
  // A broken handshake: opportunistic TLS would retry in clear; Google's may not.
  out = planner().connection_failed(out.open[0].id, local_failure("TLS handshake failed"), true);
  EXPECT_TRUE(out.open.empty());
  ASSERT_EQ(types(out), Strings{"TransientFailure"});
  out = planner().resolved("plain.test", mx_answer("plain.test", "mx.plain.test",
                                                   {host("mx.plain.test", 1, "192.0.2.80")}));
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_FALSE(out.open[0].require_tls);
}

TEST_F(DeliveryPolicyTest, ARefusalThatSuspendsTheSiteStopsTheFailoverToItsNextAddress) {
  auto p = policy();
  conf::BackoffRule rule;
  rule.match = conf::make_response_match(421, "", "(?i)too many connections");
  rule.action.kind = conf::BackoffAction::Kind::suspend;
  rule.action.suspend = std::chrono::minutes(10);
  p->backoff = {rule};
  p->backoff_given = true;
  conf::Route route{"a.test", smarthost("192.0.2.50", 25)};
  route.failover = {smarthost("192.0.2.51", 25)};
  config.delivery.routes = {route};
  PlannerOutput out = planner().committed({message({"u@a.test"})});
  ASSERT_EQ(out.open.size(), 1u);
  out = planner().connection_failed(
      out.open[0].id, reply(421, "4.7.0", "Too many connections from your IP"), false);
  EXPECT_TRUE(out.open.empty()) << "not the next address of a suspended site";
  EXPECT_TRUE(out.records.empty()) << "the job waits, it is not deferred";
  EXPECT_EQ(counts(out.metrics.backoff_activations),
            (std::vector<std::pair<std::string, uint64_t>>{{"suspend", 1}}));
}

}  // namespace
}  // namespace ringmail::mta::testing
