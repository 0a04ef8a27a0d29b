// tests/mta/outbound/delivery_planner_suppression_test.cc — the planner and
// the suppression lists: a recipient on its tenant's list or on "*" ends
// `suppressed` without an attempt (logged Suppressed with the entry's
// reason, counted), its neighbours go on; a hard bounce puts the address on
// the tenant's list with the bounce's commit, a soft one and a DSN of ours
// do not.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mta/outbound/delivery_planner.h"
#include "queue/suppression_store.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;

class DeliveryPlannerSuppressionTest : public DeliveryPlannerTest {
 protected:
  DeliveryPlannerSuppressionTest() : store(spool) {}

  DeliveryPlanner& planner_with_lists() {
    DeliveryPlanner& p = planner();
    p.set_suppressions(&store);
    return p;
  }

  void suppress(const std::string& tenant, const std::string& address, const std::string& reason) {
    queue::SuppressionEntry e;
    e.tenant = tenant;
    e.address = address;
    e.reason = reason;
    e.source = queue::SuppressionSource::complaint;
    size_t added = 0;
    ASSERT_TRUE(store.add(std::vector{e}, &added).ok());
  }

  std::shared_ptr<queue::SpoolMessage> tenant_message(const Strings& recipients,
                                                      const std::string& tenant = "app") {
    // The planner takes the tenant from the committed message (the
    // spool's copy, stored by message(), has none).
    auto m = message(recipients);
    m->meta.tenant = tenant;
    return m;
  }

  queue::SuppressionStore store;
};

TEST_F(DeliveryPlannerSuppressionTest, ASuppressedRecipientIsNotAttemptedAndItsNeighboursAre) {
  suppress("app", "Complained@A.test", "complained on 2026-12-01");
  suppress("*", "everyone@a.test", "");
  auto m = tenant_message({"ok@a.test", "complained@a.test", "EVERYONE@a.test"});
  PlannerOutput out = planner_with_lists().committed({m});

  EXPECT_EQ(types(out), (Strings{"Suppressed", "Suppressed"}));
  EXPECT_EQ(states(out), (Strings{"suppressed", "suppressed"}));
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0]["recipient"], "complained@a.test");
  EXPECT_EQ(out.records[0]["reason"], "complained on 2026-12-01");
  EXPECT_EQ(out.records[0]["suppression"]["tenant"], "app");
  EXPECT_EQ(out.records[0]["suppression"]["source"], "complaint");
  EXPECT_EQ(out.records[1]["reason"], "complaint") << "no reason given: the entry's source";
  EXPECT_EQ(out.records[1]["suppression"]["tenant"], "*");
  EXPECT_EQ(out.metrics.suppressed, 2u);
  EXPECT_EQ(out.metrics.queued, -2);
  EXPECT_TRUE(out.finished.empty()) << "ok@a.test is still to go";
  EXPECT_EQ(out.resolve, (Strings{"a.test"}));

  const ConnectionId c = only_open(planner().resolved(
      "a.test", mx_answer("a.test", "mx.a.test", {host("mx.a.test", 10, "192.0.2.1")})));
  EXPECT_EQ(started(planner().connection_ready(c)), (std::vector<Strings>{{"ok@a.test"}}));
  PlannerOutput done = planner().transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  EXPECT_EQ(done.finished.size(), 1u) << "the last recipient finishes the message";
  EXPECT_EQ(planner().snapshot({}, true).totals.suppressed, 2u);
}

TEST_F(DeliveryPlannerSuppressionTest, AMessageAllSuppressedFinishesWithoutALookup) {
  suppress("app", "x@a.test", "bounced");
  auto m = tenant_message({"x@a.test"});
  PlannerOutput out = planner_with_lists().committed({m});
  EXPECT_EQ(types(out), (Strings{"Suppressed"}));
  EXPECT_TRUE(out.resolve.empty());
  EXPECT_TRUE(out.open.empty());
  ASSERT_EQ(out.finished.size(), 1u);
  EXPECT_EQ(out.finished[0], m->id);
}

TEST_F(DeliveryPlannerSuppressionTest, AnotherTenantsListDoesNotApply) {
  suppress("other", "x@a.test", "theirs");
  auto m = tenant_message({"x@a.test"});
  PlannerOutput out = planner_with_lists().committed({m});
  EXPECT_TRUE(types(out).empty());
  EXPECT_EQ(out.resolve, (Strings{"a.test"}));
}

TEST_F(DeliveryPlannerSuppressionTest, ARecipientSuppressedWhileDeferredIsNotRetried) {
  auto m = tenant_message({"later@a.test"});
  planner_with_lists().committed({m});
  const ConnectionId c = only_open(planner().resolved(
      "a.test", mx_answer("a.test", "mx.a.test", {host("mx.a.test", 10, "192.0.2.1")})));
  planner().connection_ready(c);
  planner().transaction_done(c, result({reply(451, "4.3.0", "later")}), "");
  suppress("app", "later@a.test", "unsubscribed");
  clock.advance(2min);
  PlannerOutput out = planner().tick();
  EXPECT_EQ(types(out), (Strings{"Suppressed"}));
  EXPECT_TRUE(out.start.empty());
  EXPECT_EQ(out.metrics.deferred, -1) << "it left the deferred gauge";
}

struct BounceCase {
  const char* name;
  SmtpReply reply;
  std::string tenant;
  bool suppresses;
};

TEST_F(DeliveryPlannerSuppressionTest, AHardBounceGoesOnTheTenantsListWithItsCommit) {
  const BounceCase cases[] = {
      {"no such user", reply(550, "5.1.1", "user unknown"), "app", true},
      {"disabled mailbox", reply(550, "5.2.1", "mailbox disabled"), "app", true},
      {"spam block (not hard)", reply(550, "5.7.1", "message refused as spam"), "app", false},
      {"mail without a tenant", reply(550, "5.1.1", "user unknown"), "", false},
  };
  for (const BounceCase& c : cases) {
    SCOPED_TRACE(c.name);
    // A domain (and site) per case, so each has its own connection.
    const std::string domain = "d" + std::to_string(&c - cases) + ".test";
    const std::string address = "user@" + domain;
    auto m = tenant_message({address}, c.tenant);
    PlannerOutput first = planner_with_lists().committed({m});
    ASSERT_EQ(first.resolve, (Strings{domain}));
    const ConnectionId conn = only_open(planner().resolved(
        domain, mx_answer(domain, "mx." + domain, {host("mx." + domain, 10, "192.0.2.1")})));
    ASSERT_EQ(planner().connection_ready(conn).start.size(), 1u);
    PlannerOutput done = planner().transaction_done(conn, result({c.reply}), "");
    EXPECT_EQ(types(done), (Strings{"Bounce"}));
    size_t writes = 0;
    for (const queue::ControlWrite& w : done.controls) {
      if (!w.key.starts_with(queue::kSuppressionPrefix)) continue;
      ++writes;
      EXPECT_EQ(w.key, "suppress/app\n" + address);
      ASSERT_TRUE(w.value);
      auto e = queue::decode_suppression(w.key, *w.value);
      ASSERT_TRUE(e);
      EXPECT_EQ(e->source, queue::SuppressionSource::bounce);
      EXPECT_EQ(e->category, c.reply.enhanced == "5.1.1" ? "InvalidRecipient" : "InactiveMailbox");
      EXPECT_EQ(e->reason, c.reply.to_string());
      // The writer commits it with the bounce.
      ASSERT_TRUE(spool.commit({}, {}, {}, std::span(&w, 1)).ok());
    }
    EXPECT_EQ(writes, c.suppresses ? 1u : 0u);
    // The next message to the address.
    auto again = tenant_message({address}, c.tenant);
    PlannerOutput next = planner().committed({again});
    EXPECT_EQ(types(next), c.suppresses ? Strings{"Suppressed"} : Strings{});
  }
}

TEST_F(DeliveryPlannerSuppressionTest, ADsnOfOursThatBouncesSuppressesNobody) {
  auto m = tenant_message({"sender@a.test"});
  m->meta.listener = queue::kDsnListener;
  m->envelope.sender.clear();
  planner_with_lists().committed({m});
  const ConnectionId conn = only_open(planner().resolved(
      "a.test", mx_answer("a.test", "mx.a.test", {host("mx.a.test", 10, "192.0.2.1")})));
  planner().connection_ready(conn);
  PlannerOutput done =
      planner().transaction_done(conn, result({reply(550, "5.1.1", "user unknown")}), "");
  for (const queue::ControlWrite& w : done.controls) {
    EXPECT_FALSE(w.key.starts_with(queue::kSuppressionPrefix)) << w.key;
  }
  EXPECT_EQ(store.size(), 0u);
}

}  // namespace
}  // namespace ringmail::mta::testing
