// tests/mta/outbound/delivery_planner_warmup_test.cc — IP warm-up as the
// planner applies it, with a fake clock and 250 replies: a source over its
// cap spills exactly to the others of its pool or holds until the next
// UTC window (holding is neither an attempt nor a deferral), a hold that
// would expire the job spills instead, `started` yesterday gives step 2,
// and the counts go out as control writes that a new planner restores.
#include <gtest/gtest.h>

#include <deque>
#include <map>

#include "queue/warmup_records.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using namespace std::chrono_literals;

class DeliveryWarmupTest : public DeliveryPlannerTest {
 protected:
  DeliveryWarmupTest() {
    config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
    auto policy = std::make_shared<conf::PolicyConfig>();
    policy->sources = {{"ip1", *conf::parse_ip_address("127.0.0.2")},
                       {"ip2", *conf::parse_ip_address("127.0.0.3")}};
    policy->pools = {{"default", {{"ip1"}, {"ip2"}}}};
    config.policy = policy;
  }
  conf::PolicyConfig& policy() { return const_cast<conf::PolicyConfig&>(*config.policy); }
  void warm(std::vector<std::optional<conf::Rate>> schedule, conf::WarmupOverflow overflow) {
    conf::WarmupPlan plan;
    plan.source = "ip1";
    plan.schedule = std::move(schedule);
    plan.overflow = overflow;
    policy().warmup = {plan};
  }
  PlannerOutput commit_n(DeliveryPlanner& p, int n) {
    std::vector<std::shared_ptr<queue::SpoolMessage>> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back(message({"u" + std::to_string(next_++) + "@a.test"}));
    }
    return p.committed(batch);
  }

  // Carries out what the planner asks until nothing is left to do: every
  // connection becomes ready (again after each transaction), every
  // transaction gets 250, every QUIT closes. Returns the
  // recipients started per source address.
  std::map<std::string, size_t> run(DeliveryPlanner& p, PlannerOutput out) {
    std::map<std::string, size_t> sent;
    std::deque<ConnectionId> opened, started, quitting;
    auto take = [&](const PlannerOutput& o) {
      for (ConnectionId id : o.quit) quitting.push_back(id);
      for (const OpenCommand& c : o.open) {
        source_[c.id] = c.source ? c.source->text : "default";
        opened.push_back(c.id);
      }
      for (const StartCommand& s : o.start) {
        sent[source_[s.id]] += s.message->recipients.size();
        started.push_back(s.id);
      }
      for (const queue::ControlWrite& w : o.controls) controls_[w.key] = w.value;
      deferrals_ += o.updates.size() - std::ranges::count_if(o.updates, [](const auto& u) {
                      return u.state == queue::RecipientState::delivered;
                    });
    };
    take(out);
    for (;;) {
      if (opened.empty() && started.empty() && quitting.empty()) {
        // What the last transaction counted is flushed by a tick, which
        // may also route what a split left (and start it).
        const PlannerOutput last = p.tick();
        take(last);
        if (opened.empty() && started.empty() && quitting.empty()) break;
      }
      if (!quitting.empty()) {
        const ConnectionId id = quitting.front();
        quitting.pop_front();
        take(p.connection_closed(id));
        continue;
      }
      if (!started.empty()) {
        const ConnectionId id = started.front();
        started.pop_front();
        take(p.transaction_done(id, result({reply(250, "2.0.0", "ok")}), ""));
        opened.push_back(id);  // the session is ready for the next one
        continue;
      }
      const ConnectionId id = opened.front();
      opened.pop_front();
      take(p.connection_ready(id));
    }
    return sent;
  }
  std::shared_ptr<queue::SpoolMessage> seven() {
    std::vector<std::string> rcpts;
    for (int i = 0; i < 7; ++i) rcpts.push_back("m" + std::to_string(i) + "@a.test");
    return message(rcpts);
  }
  // ip1's count as the spool would keep it.
  uint64_t persisted_sent() const {
    auto it = controls_.find("warmup/*/ip1");
    if (it == controls_.end() || !it->second) return 0;
    const auto state = queue::decode_warmup_state(*it->second);
    return state ? state->sent_in_window : 0;
  }

  std::map<ConnectionId, std::string> source_;
  std::map<std::string, std::optional<std::string>> controls_;
  size_t deferrals_ = 0;
  int next_ = 0;
};

const conf::Rate kThreePerMinute{3, std::chrono::minutes(1)};

TEST_F(DeliveryWarmupTest, OverItsCapASourceSpillsExactlyToTheOthersOfItsPool) {
  warm({kThreePerMinute}, conf::WarmupOverflow::spill);
  std::map<std::string, size_t> sent = run(planner(), commit_n(planner(), 8));
  EXPECT_EQ(sent["127.0.0.2"], 3u) << "ip1 stops at its cap";
  EXPECT_EQ(sent["127.0.0.3"], 5u) << "the rest went from ip2";
  EXPECT_EQ(deferrals_, 0u) << "a spill is not a deferral";
  EXPECT_EQ(persisted_sent(), 3u);

  // Within the minute ip1 takes nothing more; in the next one, 3 again.
  sent = run(planner(), commit_n(planner(), 4));
  EXPECT_EQ(sent["127.0.0.2"], 0u);
  EXPECT_EQ(sent["127.0.0.3"], 4u);
  clock.advance(60s);
  sent = run(planner(), commit_n(planner(), 8));
  EXPECT_EQ(sent["127.0.0.2"], 3u);
  EXPECT_EQ(sent["127.0.0.3"], 5u);
}

// A job of 7 recipients meets a cap of 3: it is split at the cap.
TEST_F(DeliveryWarmupTest, AJobWithMoreRecipientsThanTheRoomLeftSpillsWhatIsOverTheCap) {
  warm({kThreePerMinute}, conf::WarmupOverflow::spill);
  std::map<std::string, size_t> sent = run(planner(), planner().committed({seven()}));
  EXPECT_EQ(sent["127.0.0.2"], 3u) << "exactly the cap, not the whole job";
  // The rest is a job of its own, due now: routed at the next tick (the
  // scheduler's 100 ms buckets).
  clock.advance(100ms);
  std::map<std::string, size_t> more = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.3"] + more["127.0.0.3"], 4u) << "the rest went from ip2";
  EXPECT_EQ(more["127.0.0.2"], 0u);
  EXPECT_EQ(persisted_sent(), 3u);
  EXPECT_EQ(deferrals_, 0u);
}

TEST_F(DeliveryWarmupTest, AJobWithMoreRecipientsThanTheRoomLeftHoldsWhatIsOverTheCap) {
  warm({kThreePerMinute}, conf::WarmupOverflow::hold);
  policy().pools = {{"default", {{"ip1"}}}};
  std::map<std::string, size_t> sent = run(planner(), planner().committed({seven()}));
  EXPECT_EQ(sent["127.0.0.2"], 3u) << "exactly the cap, not the whole job";
  EXPECT_EQ(planner().scheduler().size(), 1u) << "the other four wait as one job";
  EXPECT_EQ(deferrals_, 0u);
  clock.advance(60s);
  sent = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.2"], 3u) << "three more in the next window";
  clock.advance(60s);
  sent = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.2"], 1u);
  EXPECT_EQ(planner().scheduler().size(), 0u);
}

TEST_F(DeliveryWarmupTest, UnderHoldJobsWaitForTheNextWindowWithoutAnAttempt) {
  warm({conf::Rate{2, std::chrono::minutes(1)}}, conf::WarmupOverflow::hold);
  policy().pools = {{"default", {{"ip1"}}}};
  std::map<std::string, size_t> sent = run(planner(), commit_n(planner(), 5));
  EXPECT_EQ(sent["127.0.0.2"], 2u);
  EXPECT_EQ(deferrals_, 0u) << "holding is not a deferral";
  EXPECT_EQ(planner().scheduler().size(), 3u) << "three wait";

  clock.advance(59s);
  sent = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.2"], 0u) << "not before the window";
  clock.advance(1s);
  sent = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.2"], 2u) << "woken when the next UTC minute opens";
  clock.advance(60s);
  sent = run(planner(), planner().tick());
  EXPECT_EQ(sent["127.0.0.2"], 1u);
  EXPECT_EQ(planner().scheduler().size(), 0u);
  EXPECT_EQ(deferrals_, 0u);
}

TEST_F(DeliveryWarmupTest, AHoldThatWouldExpireTheJobSpillsInstead) {
  warm({conf::Rate{1, std::chrono::hours(1)}}, conf::WarmupOverflow::hold);
  // Jobs that can wait an hour are held for ip1...
  std::map<std::string, size_t> sent = run(planner(), commit_n(planner(), 4));
  EXPECT_EQ(sent["127.0.0.2"], 1u);
  EXPECT_EQ(sent["127.0.0.3"], 2u) << "ip2's own turns";
  EXPECT_EQ(planner().scheduler().size(), 1u) << "ip1's second job waits for the next hour";
}

TEST_F(DeliveryWarmupTest, AHoldPastMaxAgeSpills) {
  warm({conf::Rate{1, std::chrono::hours(1)}}, conf::WarmupOverflow::hold);
  config.delivery.retry.max_age = std::chrono::minutes(30);
  // ...but not when the next window comes after the job would expire.
  std::map<std::string, size_t> sent = run(planner(), commit_n(planner(), 4));
  EXPECT_EQ(sent["127.0.0.2"], 1u);
  EXPECT_EQ(sent["127.0.0.3"], 3u);
  EXPECT_EQ(planner().scheduler().size(), 0u);
}

TEST_F(DeliveryWarmupTest, StartedYesterdayGivesStepTwoInTheSnapshot) {
  warm({conf::Rate{1, std::chrono::minutes(1)}, kThreePerMinute, std::nullopt},
       conf::WarmupOverflow::spill);
  policy().warmup[0].started =
      std::chrono::floor<std::chrono::days>(clock.wall()) - std::chrono::days(1);
  std::map<std::string, size_t> sent = run(planner(), commit_n(planner(), 8));
  EXPECT_EQ(sent["127.0.0.2"], 3u);
  const DeliverySnapshot snap = planner().snapshot({}, false);
  ASSERT_EQ(snap.warmup.size(), 1u);
  EXPECT_EQ(snap.warmup[0].source, "ip1");
  EXPECT_EQ(snap.warmup[0].day, 2u);
  EXPECT_EQ(snap.warmup[0].cap, 3u);
  EXPECT_EQ(snap.warmup[0].sent, 3u);
  EXPECT_EQ(snap.warmup[0].window, "1m");
  EXPECT_FALSE(snap.warmup[0].warm);
}

TEST_F(DeliveryWarmupTest, ANewPlannerRestoresTheCountsTheSpoolKept) {
  warm({kThreePerMinute}, conf::WarmupOverflow::spill);
  run(planner(), commit_n(planner(), 4));  // two from each source
  ASSERT_EQ(persisted_sent(), 2u);
  // What the writer would have committed, then a restart in the same minute.
  for (const auto& [key, value] : controls_) ASSERT_TRUE(spool.put_control(key, value).ok());
  ASSERT_TRUE(spool.put_control("warmup/*/gone", "stale record of a source not warming").ok());
  clock.advance(10s);
  DeliveryPlanner again(spool, clock, std::make_shared<const conf::Config>(config), 7);
  controls_.clear();
  std::map<std::string, size_t> sent = run(again, commit_n(again, 6));
  EXPECT_EQ(sent["127.0.0.2"], 1u) << "two of its three were used before the restart";
  EXPECT_EQ(sent["127.0.0.3"], 5u);
  EXPECT_EQ(persisted_sent(), 3u);
  ASSERT_TRUE(controls_.contains("warmup/*/gone"));
  EXPECT_FALSE(controls_["warmup/*/gone"]) << "a record nobody uses is deleted";
}

}  // namespace
}  // namespace ringmail::mta::testing
