// Tests of the DeliveryPlanner's decisions as the outbound engine and the
// delivery log see them: where a message goes (MX order, routes, address
// literals, shared sites), how many connections it may use, what each
// recipient's reply becomes, when a retry comes due and when a message
// expires, and the clear-text retry after a broken STARTTLS. Holds, stop
// and restart are in delivery_planner_holds_test.cc.
#include "mta/outbound/delivery_planner.h"

#include <gtest/gtest.h>

#include "conf/config_policy.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;

const MxResolution kTwoMx =
    mx_answer("a.test", "mx1.a.test,mx2.a.test",
              {host("mx1.a.test", 10, "192.0.2.10"), host("mx2.a.test", 20, "192.0.2.20")});

// --- routing and MX order

TEST_F(DeliveryPlannerTest, ResolvesTheDomainThenTriesEachMxInPreferenceOrder) {
  PlannerOutput out = commit(message({"alice@a.test"}));
  EXPECT_EQ(out.resolve, Strings{"a.test"});
  EXPECT_TRUE(out.open.empty());

  out = planner().resolved("a.test", kTwoMx);
  ASSERT_EQ(opened_ips(out), Strings{"192.0.2.10"});
  EXPECT_EQ(out.open[0].target.mx, "mx1.a.test");
  EXPECT_EQ(out.open[0].target.port, 25);
  EXPECT_TRUE(out.open[0].starttls);
  const ConnectionId first = out.open[0].id;

  out = planner().connection_failed(first, local_failure("connection refused"), false);
  ASSERT_EQ(opened_ips(out), Strings{"192.0.2.20"});
  EXPECT_EQ(out.open[0].target.mx, "mx2.a.test");
  EXPECT_NE(out.open[0].id, first);
  EXPECT_TRUE(out.records.empty()) << "not an attempt result while an MX is left";
}

TEST_F(DeliveryPlannerTest, EveryMxFailingDefersTheMessageAndMarksTheSiteDown) {
  const int64_t t0 = clock.unix_ms();
  auto first = message({"alice@a.test"});
  commit(first);
  PlannerOutput out = planner().resolved("a.test", kTwoMx);
  out = planner().connection_failed(out.open[0].id, local_failure("connection refused"), false);
  out = planner().connection_failed(out.open[0].id, local_failure("connection refused"), false);

  EXPECT_TRUE(out.open.empty());
  ASSERT_EQ(types(out), Strings{"TransientFailure"});
  const auto& record = out.records[0];
  EXPECT_EQ(record["recipient"], "alice@a.test");
  EXPECT_EQ(record["response"]["text"], "mx2.a.test [192.0.2.20]: connection refused");
  EXPECT_EQ(record["mx"], "mx2.a.test");
  EXPECT_EQ(record["site"], "mx1.a.test,mx2.a.test");
  EXPECT_EQ(record["attempt"], 1);
  EXPECT_TRUE(record.contains("next_attempt"));
  ASSERT_EQ(states(out), Strings{"deferred"});
  // retry.intervals[0] is one minute, with up to 10 % jitter.
  EXPECT_GE(out.updates[0].next_attempt_unix_ms, t0 + 54000);
  EXPECT_LE(out.updates[0].next_attempt_unix_ms, t0 + 66000);
  EXPECT_EQ(out.updates[0].attempts, 1u);
  EXPECT_TRUE(out.finished.empty());

  // Within the down second a new message does not knock again.
  clock.advance(500ms);
  out = commit(message({"bob@a.test"}));
  EXPECT_TRUE(out.resolve.empty());
  EXPECT_TRUE(out.open.empty());
  ASSERT_EQ(types(out), Strings{"TransientFailure"});
  EXPECT_EQ(out.records[0]["recipient"], "bob@a.test");
  EXPECT_EQ(out.records[0]["response"]["text"], "mx2.a.test [192.0.2.20]: connection refused");
  EXPECT_EQ(states(out), Strings{"deferred"});

  // Once it is over, the next message tries the preferred MX again.
  clock.advance(1s);
  out = commit(message({"carol@a.test"}));
  EXPECT_TRUE(out.records.empty());
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.10"});
}

TEST_F(DeliveryPlannerTest, ALookupThatFindsNoHostBouncesAndAFailedOneDefers) {
  struct Case {
    const char* name;
    MxResolution::Status status;
    std::string type;
    std::string state;
    int code;
    std::string category;
  };
  const std::vector<Case> cases = {
      {"null MX", MxResolution::Status::null_mx, "Bounce", "bounced", 556, "BadDomain"},
      {"no such domain", MxResolution::Status::no_domain, "Bounce", "bounced", 550, "BadDomain"},
      {"no hosts", MxResolution::Status::no_hosts, "Bounce", "bounced", 550, "BadDomain"},
      {"SERVFAIL", MxResolution::Status::temporary, "TransientFailure", "deferred", 451,
       "DNSFailure"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
    // Two messages wait for one lookup.
    PlannerOutput out = planner.committed({message({"u@a.test"}), message({"v@a.test"}, "", "")});
    ASSERT_EQ(out.resolve, Strings{"a.test"});
    MxResolution answer;
    answer.status = c.status;
    answer.domain = "a.test";
    answer.error = "lookup said no";
    out = planner.resolved("a.test", answer);
    EXPECT_TRUE(out.open.empty());
    EXPECT_EQ(types(out), (Strings{c.type, c.type}));
    EXPECT_EQ(states(out), (Strings{c.state, c.state}));
    for (const auto& record : out.records) {
      EXPECT_EQ(record["response"]["code"], c.code);
      EXPECT_EQ(record["category"], c.category);
    }
    // A DSN for the first only: the second has the null sender.
    EXPECT_EQ(out.dsns.size(), c.state == "bounced" ? 1u : 0u);
  }
}

struct StaticRouteCase {
  const char* name;
  std::vector<conf::Route> routes;
  std::string recipient;
  std::string ip;
  uint16_t port;
};

TEST_F(DeliveryPlannerTest, RoutesAndAddressLiteralsConnectWithoutALookup) {
  const std::vector<StaticRouteCase> cases = {
      {"every domain to a smarthost",
       {{"*", smarthost("192.0.2.50", 2525)}},
       "u@anything.test",
       "192.0.2.50",
       2525},
      {"one domain to a smarthost",
       {{"b.test", smarthost("192.0.2.51", 587)}},
       "u@b.test",
       "192.0.2.51",
       587},
      {"subdomains to a smarthost",
       {{"*.corp.test", smarthost("192.0.2.52", 25)}},
       "u@eu.corp.test",
       "192.0.2.52",
       25},
      {"IPv4 address literal", {}, "u@[192.0.2.1]", "192.0.2.1", 25},
      {"IPv6 address literal", {}, "u@[IPv6:2001:db8::1]", "2001:db8::1", 25},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    conf::Config cfg = config;
    cfg.delivery.routes = c.routes;
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(cfg), 1);
    PlannerOutput out = planner.committed({message({c.recipient})});
    EXPECT_TRUE(out.resolve.empty());
    ASSERT_EQ(opened_ips(out), Strings{c.ip});
    EXPECT_EQ(out.open[0].target.port, c.port);
  }
}

TEST_F(DeliveryPlannerTest, DomainsNoRouteMatchesAreResolved) {
  config.delivery.routes = {{"b.test", smarthost("192.0.2.51", 587)},
                            {"*.corp.test", smarthost("192.0.2.52", 25)}};
  PlannerOutput out = commit(message({"u@a.test", "v@corp.test"}));
  EXPECT_TRUE(out.open.empty());
  EXPECT_EQ(out.resolve, (Strings{"a.test", "corp.test"}));
}

struct BadLiteralCase {
  const char* name;
  std::string sender;
  bool generate_dsn;
  size_t dsns;
};

TEST_F(DeliveryPlannerTest, AMalformedAddressLiteralBounces) {
  const std::vector<BadLiteralCase> cases = {
      {"a DSN to the sender", "app@sender.test", true, 1},
      {"never a DSN to the null sender", "", true, 0},
      {"no DSN when generate_dsn is off", "app@sender.test", false, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    conf::Config cfg = config;
    cfg.delivery.generate_dsn = c.generate_dsn;
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(cfg), 1);
    auto m = message({"u@[192.0.2.999]"}, "", c.sender);
    PlannerOutput out = planner.committed({m});
    EXPECT_TRUE(out.open.empty());
    EXPECT_TRUE(out.resolve.empty());
    ASSERT_EQ(types(out), Strings{"Bounce"});
    EXPECT_EQ(out.records[0]["category"], "BadDomain");
    EXPECT_EQ(out.records[0]["response"]["code"], 553);
    EXPECT_EQ(out.records[0]["response"]["enhanced"], "5.1.2");
    EXPECT_EQ(states(out), Strings{"bounced"});
    ASSERT_EQ(out.finished.size(), 1u);
    EXPECT_EQ(out.finished[0], m->id);
    EXPECT_EQ(counts(out.metrics.bounced_by_category),
              (std::vector<std::pair<std::string, uint64_t>>{{"BadDomain", 1}}));
    ASSERT_EQ(out.dsns.size(), c.dsns);
    if (c.dsns > 0) {
      EXPECT_EQ(out.dsns[0]->envelope.sender, "");
      ASSERT_EQ(out.dsns[0]->envelope.recipients.size(), 1u);
      EXPECT_EQ(out.dsns[0]->envelope.recipients[0].address, "app@sender.test");
    }
  }
}

// --- sites

TEST_F(DeliveryPlannerTest, DomainsOfOneSiteShareItsConnection) {
  config.delivery.max_connections_per_site = 1;
  const std::vector<MxHost> hosts = {host("mx.provider.test", 10, "192.0.2.30")};
  PlannerOutput out = planner().committed({message({"u@a.test"}), message({"v@b.test"})});
  EXPECT_EQ(out.resolve, (Strings{"a.test", "b.test"}));

  out = planner().resolved("a.test", mx_answer("a.test", "mx.provider.test", hosts));
  const ConnectionId c = only_open(out);
  // A site of its own would open a second connection here.
  out = planner().resolved("b.test", mx_answer("b.test", "mx.provider.test", hosts));
  EXPECT_TRUE(out.open.empty());

  out = planner().connection_ready(c);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"u@a.test"}}));
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "TLSv1.3");
  ASSERT_EQ(types(out), Strings{"Delivery"});
  EXPECT_EQ(out.records[0]["site"], "mx.provider.test");
  EXPECT_EQ(out.records[0]["tls"], "TLSv1.3");
  out = planner().connection_ready(c);
  ASSERT_EQ(out.start.size(), 1u);
  EXPECT_EQ(out.start[0].id, c);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"v@b.test"}}));
  out = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(out.records[0]["site"], "mx.provider.test");
  EXPECT_EQ(counts(out.metrics.delivered_by_site),
            (std::vector<std::pair<std::string, uint64_t>>{{"mx.provider.test", 1}}));
}

TEST_F(DeliveryPlannerTest, ConnectionsLeaveFromTheDefaultPoolsSourcesInTurn) {
  auto policy = std::make_shared<conf::PolicyConfig>();
  policy->sources = {{"ip1", *conf::parse_ip_address("198.51.100.1")},
                     {"ip2", *conf::parse_ip_address("198.51.100.2")}};
  policy->pools = {{"default", {{"ip1"}, {"ip2"}}}};
  config.policy = policy;
  PlannerOutput out = planner().committed({message({"u@[192.0.2.1]"}), message({"v@[192.0.2.1]"})});
  ASSERT_EQ(out.open.size(), 2u);
  ASSERT_TRUE(out.open[0].source && out.open[1].source);
  EXPECT_EQ(out.open[0].source->text, "198.51.100.1");
  EXPECT_EQ(out.open[1].source->text, "198.51.100.2");
  // One ready queue per source: each has its own limits.
  EXPECT_NE(planner().site("ip1@198.51.100.1/[192.0.2.1]"), nullptr);
  EXPECT_NE(planner().site("ip2@198.51.100.2/[192.0.2.1]"), nullptr);
}

// --- connection reuse and limits

TEST_F(DeliveryPlannerTest, ASiteGetsAtMostItsConnectionsAndReusesThem) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  config.delivery.max_connections_per_site = 2;
  std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(message({"u" + std::to_string(i) + "@a.test"}));
  PlannerOutput out = planner().committed(batch);
  ASSERT_EQ(out.open.size(), 2u);
  const ConnectionId c1 = out.open[0].id, c2 = out.open[1].id;

  EXPECT_EQ(started(planner().connection_ready(c1)), (std::vector<Strings>{{"u0@a.test"}}));
  EXPECT_EQ(started(planner().connection_ready(c2)), (std::vector<Strings>{{"u1@a.test"}}));
  out = planner().transaction_done(c1, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.open.empty());
  out = planner().connection_ready(c1);
  ASSERT_EQ(out.start.size(), 1u);
  EXPECT_EQ(out.start[0].id, c1);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"u2@a.test"}}));
  EXPECT_TRUE(out.open.empty());
}

TEST_F(DeliveryPlannerTest, AConnectionQuitsAfterMaxMessagesAndAFreshOneTakesOver) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  config.delivery.max_connections_per_site = 1;
  config.delivery.max_messages_per_connection = 2;
  std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(message({"u" + std::to_string(i) + "@a.test"}));
  const ConnectionId c = only_open(planner().committed(batch));
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(planner().connection_ready(c).start.size(), 1u);
    planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  }
  PlannerOutput out = planner().connection_ready(c);
  EXPECT_TRUE(out.start.empty());
  EXPECT_EQ(out.quit, std::vector<ConnectionId>{c});

  out = planner().connection_closed(c);
  const ConnectionId next = only_open(out);
  EXPECT_NE(next, c);
  EXPECT_EQ(started(planner().connection_ready(next)), (std::vector<Strings>{{"u2@a.test"}}));
}

TEST_F(DeliveryPlannerTest, TheGlobalConnectionLimitHoldsAcrossSitesAndIdleOnesQuit) {
  config.delivery.max_connections = 1;
  config.delivery.idle_timeout = 5s;
  PlannerOutput out = planner().committed({message({"u@[192.0.2.1]"}), message({"v@[192.0.2.2]"})});
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
  const ConnectionId c = out.open[0].id;
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  out = planner().connection_ready(c);  // nothing left for this site: idle
  EXPECT_TRUE(out.start.empty());
  EXPECT_TRUE(out.quit.empty());

  clock.advance(4s);
  out = planner().tick();
  EXPECT_TRUE(out.quit.empty());
  EXPECT_TRUE(out.open.empty()) << "the idle connection still counts";

  clock.advance(1s);
  out = planner().tick();
  EXPECT_EQ(out.quit, std::vector<ConnectionId>{c});
  EXPECT_TRUE(out.open.empty()) << "closing, not closed yet";

  planner().connection_closed(c);
  out = planner().tick();
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.2"});
}

// --- results

TEST_F(DeliveryPlannerTest, EachRecipientGetsItsOwnResult) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  const int64_t t0 = clock.unix_ms();
  auto m = message({"ann@a.test", "bob@a.test", "cid@a.test"});
  const ConnectionId c = only_open(commit(m));
  PlannerOutput out = planner().connection_ready(c);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"ann@a.test", "bob@a.test", "cid@a.test"}}));

  clock.advance(2s);
  out = planner().transaction_done(
      c,
      result({reply(250, "2.0.0", "queued as 1"), reply(450, "4.2.1", "mailbox busy, try later"),
              reply(550, "5.1.1", "no such user")}),
      "");
  ASSERT_EQ(types(out), (Strings{"Delivery", "TransientFailure", "Bounce"}));
  EXPECT_EQ(out.records[0]["recipient"], "ann@a.test");
  EXPECT_EQ(out.records[0]["response"]["text"], "queued as 1");
  EXPECT_FALSE(out.records[0].contains("next_attempt"));
  EXPECT_EQ(out.records[1]["recipient"], "bob@a.test");
  EXPECT_EQ(out.records[1]["response"]["code"], 450);
  EXPECT_TRUE(out.records[1].contains("next_attempt"));
  EXPECT_EQ(out.records[2]["recipient"], "cid@a.test");
  EXPECT_EQ(out.records[2]["category"], "InvalidRecipient");
  for (const auto& record : out.records) {
    EXPECT_EQ(record["site"], "192.0.2.50:25");
    EXPECT_EQ(record["mx"], "192.0.2.50");
    EXPECT_EQ(record["attempt"], 1);
  }
  EXPECT_EQ(states(out), (Strings{"delivered", "deferred", "bounced"}));
  EXPECT_GE(out.updates[1].next_attempt_unix_ms, t0 + 2000 + 54000);
  EXPECT_LE(out.updates[1].next_attempt_unix_ms, t0 + 2000 + 66000);
  EXPECT_TRUE(out.finished.empty()) << "bob is still to be delivered";
  ASSERT_EQ(out.dsns.size(), 1u) << "for cid";

  using Counts = std::vector<std::pair<std::string, uint64_t>>;
  EXPECT_EQ(counts(out.metrics.delivered_by_site), (Counts{{"192.0.2.50:25", 1}}));
  EXPECT_EQ(counts(out.metrics.deferred_by_site), (Counts{{"192.0.2.50:25", 1}}));
  EXPECT_EQ(counts(out.metrics.bounced_by_category), (Counts{{"InvalidRecipient", 1}}));
  EXPECT_EQ(out.metrics.queued, -3);
  EXPECT_EQ(out.metrics.deferred, 1);
  EXPECT_EQ(out.metrics.attempt_seconds, std::vector<double>{2.0});
  planner().connection_ready(c);

  // The retry: not before its interval, then on a fresh connection (the
  // old one went idle and quit meanwhile).
  clock.advance(50s);
  out = planner().tick();
  EXPECT_EQ(out.quit, std::vector<ConnectionId>{c});
  EXPECT_TRUE(out.open.empty());
  clock.advance(20s);
  out = planner().tick();
  const ConnectionId retry = only_open(out);
  out = planner().connection_ready(retry);
  EXPECT_EQ(started(out), (std::vector<Strings>{{"bob@a.test"}}));
  out = planner().transaction_done(retry, result({reply(250, "2.0.0", "ok")}), "");
  ASSERT_EQ(types(out), Strings{"Delivery"});
  EXPECT_EQ(out.records[0]["attempt"], 2);
  EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m->id});
  EXPECT_EQ(out.metrics.deferred, -1);
  EXPECT_EQ(out.metrics.queued, 0);
}

TEST_F(DeliveryPlannerTest, ARetryThatWouldComePastMaxAgeExpires) {
  config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
  config.delivery.retry.intervals = {60s};
  config.delivery.retry.max_age = 90s;
  auto m = message({"ann@a.test"});
  ConnectionId c = only_open(commit(m));
  planner().connection_ready(c);
  PlannerOutput out = planner().transaction_done(c, result({reply(451, "4.3.0", "later")}), "");
  EXPECT_EQ(types(out), Strings{"TransientFailure"});
  planner().connection_ready(c);

  clock.advance(70s);
  out = planner().tick();
  EXPECT_EQ(out.quit, std::vector<ConnectionId>{c});
  c = only_open(out);
  planner().connection_ready(c);
  out = planner().transaction_done(c, result({reply(451, "4.3.0", "later")}), "");
  ASSERT_EQ(types(out), Strings{"Expiration"});
  EXPECT_EQ(out.records[0]["category"], "MessageExpired");
  EXPECT_EQ(out.records[0]["attempt"], 2);
  EXPECT_EQ(states(out), Strings{"expired"});
  EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m->id});
  ASSERT_EQ(out.dsns.size(), 1u);
  EXPECT_EQ(out.dsns[0]->envelope.recipients[0].address, "app@sender.test");
}

TEST_F(DeliveryPlannerTest, AJobDueAfterMaxAgeExpiresWithoutAnAttempt) {
  // Found at start-up: received 25 hours ago (max_age 24 h), deferred, due now.
  queue::SpoolMessage m = *message({"ann@a.test"});
  m.meta.received_unix_ms = clock.unix_ms() - 25 * 3600 * 1000;
  m.envelope.recipients[0].state = RecipientState::deferred;
  m.envelope.recipients[0].attempts = 4;
  m.envelope.recipients[0].next_attempt_unix_ms = clock.unix_ms();
  m.id = queue::make_message_id();
  store(m);
  planner().load(m, {0});
  PlannerOutput out = planner().start();
  EXPECT_TRUE(out.resolve.empty());
  EXPECT_TRUE(out.open.empty());
  ASSERT_EQ(types(out), Strings{"Expiration"});
  EXPECT_EQ(out.records[0]["category"], "MessageExpired");
  EXPECT_EQ(out.records[0]["response"]["text"], "message expired: not delivered within 86400 s");
  EXPECT_EQ(out.records[0]["attempt"], 5);
  EXPECT_EQ(states(out), Strings{"expired"});
  EXPECT_EQ(out.finished, std::vector<queue::MessageId>{m.id});
  EXPECT_EQ(out.dsns.size(), 1u);
  EXPECT_EQ(out.metrics.deferred, -1);
}

// --- failed connections

struct TlsCase {
  const char* name;
  conf::OutboundTls tls;
  bool first_starttls;
  bool reopens_in_clear_text;
};

TEST_F(DeliveryPlannerTest, ABrokenStarttlsIsRetriedInClearTextOnlyWhenOpportunistic) {
  const std::vector<TlsCase> cases = {
      {"opportunistic", conf::OutboundTls::opportunistic, true, true},
      {"required", conf::OutboundTls::required, true, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    conf::Config cfg = config;
    cfg.delivery.tls = c.tls;
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(cfg), 1);
    PlannerOutput out = planner.committed({message({"u@[192.0.2.1]"})});
    ASSERT_EQ(out.open.size(), 1u);
    EXPECT_EQ(out.open[0].starttls, c.first_starttls);
    const ConnectionId first = out.open[0].id;
    out = planner.connection_failed(first, local_failure("TLS handshake failed"), true);
    if (c.reopens_in_clear_text) {
      ASSERT_EQ(opened_ips(out), Strings{"192.0.2.1"});
      EXPECT_NE(out.open[0].id, first);
      EXPECT_FALSE(out.open[0].starttls);
      EXPECT_TRUE(out.records.empty());
    } else {
      EXPECT_TRUE(out.open.empty());
      ASSERT_EQ(types(out), Strings{"TransientFailure"});
      EXPECT_EQ(out.records[0]["response"]["text"], "192.0.2.1 [192.0.2.1]: TLS handshake failed");
    }
  }
}

TEST_F(DeliveryPlannerTest, WithoutTlsStarttlsIsNeverOffered) {
  config.delivery.tls = conf::OutboundTls::none;
  PlannerOutput out = commit(message({"u@[192.0.2.1]"}));
  ASSERT_EQ(out.open.size(), 1u);
  EXPECT_FALSE(out.open[0].starttls);
}

TEST_F(DeliveryPlannerTest, TheClearTextRetryIsForOneAddressOnly) {
  commit(message({"alice@a.test"}));
  PlannerOutput out = planner().resolved("a.test", kTwoMx);
  out = planner().connection_failed(out.open[0].id, local_failure("TLS handshake failed"), true);
  ASSERT_EQ(opened_ips(out), Strings{"192.0.2.10"});
  EXPECT_FALSE(out.open[0].starttls);
  out = planner().connection_failed(out.open[0].id, local_failure("connection reset"), false);
  ASSERT_EQ(opened_ips(out), Strings{"192.0.2.20"});
  EXPECT_TRUE(out.open[0].starttls);
}

TEST_F(DeliveryPlannerTest, AConnectionThatWasReadyFailingDoesNotMarkTheSiteDown) {
  const ConnectionId c = only_open(commit(message({"u@[192.0.2.1]"})));
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  planner().connection_ready(c);
  PlannerOutput out = planner().connection_failed(c, local_failure("read timeout"), false);
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.open.empty());

  out = commit(message({"v@[192.0.2.1]"}));
  EXPECT_TRUE(out.records.empty()) << "not deferred as if the site were down";
  EXPECT_EQ(opened_ips(out), Strings{"192.0.2.1"});
}

TEST_F(DeliveryPlannerTest, AConnectionLostInATransactionDefersItsRecipients) {
  struct Case {
    const char* name;
    bool failed;  // connection_failed, else connection_closed
  };
  for (const Case& k : {Case{"closed", false}, Case{"failed", true}}) {
    SCOPED_TRACE(k.name);
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
    PlannerOutput out = planner.committed({message({"u@[192.0.2.1]", "v@[192.0.2.1]"})});
    const ConnectionId c = only_open(out);
    ASSERT_EQ(planner.connection_ready(c).start.size(), 1u);
    out = k.failed ? planner.connection_failed(c, local_failure("connection reset"), false)
                   : planner.connection_closed(c);
    ASSERT_EQ(types(out), (Strings{"TransientFailure", "TransientFailure"}));
    EXPECT_EQ(out.records[0]["response"]["text"], "connection closed during the transaction");
    EXPECT_EQ(states(out), (Strings{"deferred", "deferred"}));
    EXPECT_TRUE(out.finished.empty());

    out = planner.committed({message({"w@[192.0.2.1]"})});
    EXPECT_TRUE(out.records.empty()) << "the site is not down";
    EXPECT_EQ(out.open.size(), 1u);
  }
}

}  // namespace
}  // namespace ringmail::mta::testing
