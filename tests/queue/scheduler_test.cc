// Tests of the delivery scheduler's bookkeeping: due order, per-site FIFOs,
// rescheduling from every place, and the retry interval arithmetic.
#include "queue/scheduler.h"

#include <gtest/gtest.h>

namespace ringmail::queue {
namespace {

runtime::WallTime T(int64_t unix_ms) { return runtime::from_unix_ms(unix_ms); }

Job job(const std::string& id, const std::string& domain, int64_t due, uint32_t recipients = 1) {
  Job j;
  j.id = MessageId{id};
  j.domain = domain;
  j.due = T(due);
  for (uint32_t i = 0; i < recipients; ++i) j.recipients.push_back(JobRecipient{i, 0, false});
  return j;
}

TEST(Scheduler, DueJobsComeOutEarliestFirstAndOnlyWhenDue) {
  Scheduler s;
  const JobId late = s.add(job("m1", "a.test", 300000));
  const JobId early = s.add(job("m2", "b.test", 100000));
  const JobId middle = s.add(job("m3", "c.test", 200000));
  std::vector<JobId> due;
  s.take_due(T(50000), &due);
  EXPECT_TRUE(due.empty());
  EXPECT_EQ(s.next_due(), T(100000));
  s.take_due(T(250000), &due);
  EXPECT_EQ(due, (std::vector<JobId>{early, middle}));
  EXPECT_EQ(s.place(early), Scheduler::Place::routing);
  EXPECT_EQ(s.place(late), Scheduler::Place::waiting);
  EXPECT_EQ(s.waiting(), 1u);
}

TEST(Scheduler, DueTimesRoundUpToATenthOfASecondNeverEarly) {
  Scheduler s;
  const JobId a = s.add(job("a", "a.test", 1001));
  const JobId b = s.add(job("b", "a.test", 1050));
  const JobId now = s.add(job("c", "a.test", 0));
  std::vector<JobId> due;
  s.take_due(T(1000), &due);
  EXPECT_EQ(due, (std::vector<JobId>{now}));
  s.take_due(T(1099), &due);
  EXPECT_EQ(due.size(), 1u);
  s.take_due(T(1100), &due);
  EXPECT_EQ(due, (std::vector<JobId>{now, a, b}));  // same tenth: in the order added
}

TEST(Scheduler, TakeDueHonoursItsLimit) {
  Scheduler s;
  for (int i = 0; i < 10; ++i) s.add(job("m" + std::to_string(i), "a.test", i * 1000));
  std::vector<JobId> due;
  s.take_due(T(100000), &due, 4);
  EXPECT_EQ(due.size(), 4u);
  EXPECT_EQ(s.waiting(), 6u);
}

TEST(Scheduler, EachSiteIsAFifoAndSitesAreIndependent) {
  Scheduler s;
  std::vector<JobId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(s.add(job("m" + std::to_string(i), "x.test", 0)));
  std::vector<JobId> due;
  s.take_due(T(0), &due);
  s.make_ready(ids[0], "gmail");
  s.make_ready(ids[1], "outlook");
  s.make_ready(ids[2], "gmail");
  s.make_ready(ids[3], "gmail");
  EXPECT_EQ(s.ready("gmail"), 3u);
  EXPECT_EQ(s.ready("outlook"), 1u);
  EXPECT_EQ(s.ready_total(), 4u);
  EXPECT_EQ(s.pick_next("gmail"), ids[0]);
  EXPECT_EQ(s.pick_next("gmail"), ids[2]);
  EXPECT_EQ(s.in_flight(), 2u);
  EXPECT_EQ(s.pick_next("outlook"), ids[1]);
  EXPECT_EQ(s.pick_next("outlook"), std::nullopt);
  EXPECT_EQ(s.find(ids[0])->site, "gmail");
}

TEST(Scheduler, RescheduleFromEveryPlaceKeepsCountsRight) {
  Scheduler s;
  const JobId a = s.add(job("a", "a.test", 0));
  const JobId b = s.add(job("b", "b.test", 0));
  const JobId c = s.add(job("c", "c.test", 0));
  const JobId d = s.add(job("d", "d.test", 500000));
  std::vector<JobId> due;
  s.take_due(T(0), &due);
  s.make_ready(a, "site");
  s.make_ready(b, "site");
  ASSERT_EQ(s.pick_next("site"), a);  // a in flight, b ready, c routing, d waiting
  s.reschedule(a, T(1000000));
  s.reschedule(b, T(900000));
  s.reschedule(c, T(800000));
  s.reschedule(d, T(700000));
  EXPECT_EQ(s.in_flight(), 0u);
  EXPECT_EQ(s.ready_total(), 0u);
  EXPECT_EQ(s.ready("site"), 0u);
  EXPECT_EQ(s.waiting(), 4u);
  due.clear();
  s.take_due(T(2000000), &due);
  EXPECT_EQ(due, (std::vector<JobId>{d, c, b, a}));
}

TEST(Scheduler, TakeReadyReturnsASitesJobsForRouting) {
  Scheduler s;
  const JobId a = s.add(job("a", "a.test", 0));
  const JobId b = s.add(job("b", "a.test", 0));
  std::vector<JobId> due;
  s.take_due(T(0), &due);
  s.make_ready(a, "down");
  s.make_ready(b, "down");
  std::vector<JobId> taken;
  s.take_ready("down", &taken);
  EXPECT_EQ(taken, (std::vector<JobId>{a, b}));
  EXPECT_EQ(s.ready_total(), 0u);
  EXPECT_EQ(s.place(a), Scheduler::Place::routing);
}

TEST(Scheduler, RemoveForgetsTheJobWherever) {
  Scheduler s;
  const JobId a = s.add(job("a", "a.test", 0));
  const JobId b = s.add(job("b", "a.test", 10000));
  std::vector<JobId> due;
  s.take_due(T(0), &due);
  s.make_ready(a, "site");
  s.remove(a);
  s.remove(b);
  s.remove(12345);  // unknown: nothing happens
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.ready("site"), 0u);
  EXPECT_EQ(s.waiting(), 0u);
  EXPECT_EQ(s.find(a), nullptr);
  EXPECT_TRUE(s.ready_sites().empty());
}

TEST(Scheduler, MakeReadyOfAJobThatIsNotBeingRoutedIsABug) {
  Scheduler s;
  const JobId a = s.add(job("a", "a.test", 100000));
  EXPECT_THROW(s.make_ready(a, "site"), std::logic_error);
}

TEST(RetryIntervals, TheLastIntervalRepeatsAndJitterScales) {
  const std::vector<runtime::Millis> intervals{runtime::Millis(60000), runtime::Millis(300000),
                                               runtime::Millis(900000)};
  EXPECT_EQ(next_attempt_time(T(0), 1, intervals, 1.0), T(60000));
  EXPECT_EQ(next_attempt_time(T(0), 2, intervals, 1.0), T(300000));
  EXPECT_EQ(next_attempt_time(T(0), 3, intervals, 1.0), T(900000));
  EXPECT_EQ(next_attempt_time(T(0), 9, intervals, 1.0), T(900000));
  EXPECT_EQ(next_attempt_time(T(1000), 1, intervals, 0.9), T(1000 + 54000));
  EXPECT_EQ(next_attempt_time(T(1000), 0, intervals, 1.0), T(61000));
}

}  // namespace
}  // namespace ringmail::queue
