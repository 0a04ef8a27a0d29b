// tests/mta/message_tracker_test.cc — what an operator learns of a message
// (MessageTracker): its recipients' states from the spool and delivery's
// live view while it is queued, its status record once finished, nothing
// once that expired; and the dead letters: listed with filters, retried
// (back in the spool, the dead letter gone) and deleted.
#include "mta/message_tracker.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/spool_memory.h"
#include "queue/spool_retention.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::mta {
namespace {

using namespace std::chrono_literals;
using queue::RecipientState;

constexpr int64_t kHour = 3600 * 1000;

class MessageTrackerTest : public ::testing::Test {
 protected:
  MessageTrackerTest() { open({.keep_status_ms = kHour, .keep_failed_ms = 2 * kHour}); }

  void open(queue::RetentionPolicy policy) {
    queue::SpoolOptions options;
    options.retention = policy;
    options.clock = &clock;
    spool = std::make_unique<queue::MemorySpool>(std::numeric_limits<uint64_t>::max(), options);
    tracker = std::make_unique<MessageTracker>(
        *spool, clock,
        [this](const std::string& id) -> std::optional<MessageLiveView> {
          asked.push_back(id);
          return live;
        },
        [this](std::unique_ptr<queue::SpoolMessage> m) -> queue::StoreOutcome {
          submitted.push_back(*m);
          if (!submit_error.empty()) return {queue::StoreStatus::failed, submit_error};
          queue::SpoolMessage* batch[] = {m.get()};
          return spool->commit(batch, {}, {});
        });
  }

  queue::SpoolMessage stored(size_t recipients, std::string campaign = "",
                             std::string tenant = "app1") {
    queue::SpoolMessage m = queue::testing::make_test_message(recipients, 600, std::move(campaign));
    m.meta.tenant = std::move(tenant);
    queue::SpoolMessage* batch[] = {&m};
    EXPECT_TRUE(spool->commit(batch, {}, {}).ok());
    return m;
  }

  void update(const queue::SpoolMessage& m, uint32_t index, RecipientState state,
              queue::RecipientResponse response, int64_t next_attempt = 0,
              std::optional<mail::BounceCategory> category = {}) {
    queue::RecipientUpdate u{m.id, index, state, 1, next_attempt};
    u.response = std::move(response);
    u.category = category;
    const queue::MessageId finished[] = {m.id};
    ASSERT_TRUE(spool->commit({}, std::span(&u, 1), finished).ok());
  }
  void bounce(const queue::SpoolMessage& m, uint32_t index,
              mail::BounceCategory category = mail::BounceCategory::InvalidRecipient) {
    update(m, index, RecipientState::bounced, {550, "5.1.1", "no such user"}, 0, category);
  }

  runtime::FakeClock clock;
  std::unique_ptr<queue::MemorySpool> spool;
  std::unique_ptr<MessageTracker> tracker;
  std::optional<MessageLiveView> live = MessageLiveView{};
  std::vector<std::string> asked;
  std::vector<queue::SpoolMessage> submitted;
  std::string submit_error;
};

TEST_F(MessageTrackerTest, AQueuedMessageShowsEachRecipientsStateFromSpoolAndDelivery) {
  const queue::SpoolMessage m = stored(5, "spring");
  const int64_t retry_at = clock.unix_ms() + 5 * 60 * 1000;
  update(m, 1, RecipientState::deferred, {451, "4.3.0", "try later"}, retry_at);
  update(m, 2, RecipientState::delivered, {250, "2.0.0", "Ok: queued as 7"});
  update(m, 4, RecipientState::deferred, {421, "4.7.0", "slow down"}, retry_at);
  live = MessageLiveView{true, {3}, {4}};  // 3 in a transaction, 4 held by a pause

  const std::optional<MessageStatus> s = tracker->find(m.id.value);
  ASSERT_TRUE(s);
  EXPECT_EQ(asked, std::vector<std::string>{m.id.value});
  EXPECT_EQ(s->id, m.id.value);
  EXPECT_EQ(s->sender, "app@sender.test");
  EXPECT_EQ(s->tenant, "app1");
  EXPECT_EQ(s->campaign, "spring");
  EXPECT_EQ(s->received_unix_ms, m.meta.received_unix_ms);
  EXPECT_EQ(s->size, m.meta.size);
  EXPECT_FALSE(s->finished_unix_ms);
  ASSERT_EQ(s->recipients.size(), 5u);
  EXPECT_EQ(s->recipients[0].state, RecipientState::queued);
  EXPECT_EQ(s->recipients[0].response, queue::RecipientResponse{});
  EXPECT_FALSE(s->recipients[0].next_attempt_unix_ms);
  EXPECT_EQ(s->recipients[1].state, RecipientState::deferred);
  EXPECT_EQ(s->recipients[1].next_attempt_unix_ms, retry_at);
  EXPECT_EQ(s->recipients[1].attempts, 1u);
  EXPECT_EQ(s->recipients[1].response, (queue::RecipientResponse{451, "4.3.0", "try later"}));
  EXPECT_EQ(s->recipients[2].state, RecipientState::delivered);
  EXPECT_EQ(s->recipients[2].response.text, "Ok: queued as 7");
  EXPECT_EQ(s->recipients[3].state, RecipientState::in_flight);
  EXPECT_EQ(s->recipients[4].state, RecipientState::queued) << "held shows as queued";
  EXPECT_FALSE(s->recipients[4].next_attempt_unix_ms);
  EXPECT_EQ(s->recipients[4].response.code, 421) << "the last response stays";

  live.reset();  // delivery does not answer: the spool's states alone
  const std::optional<MessageStatus> alone = tracker->find(m.id.value);
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->recipients[3].state, RecipientState::queued);
  EXPECT_EQ(alone->recipients[4].state, RecipientState::deferred);
}

TEST_F(MessageTrackerTest, AFinishedMessageAnswersFromItsStatusRecordUntilItExpires) {
  const queue::SpoolMessage m = stored(2);
  update(m, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  clock.advance(1min);
  update(m, 1, RecipientState::expired, {0, "4.4.7", "message expired"}, 0,
         mail::BounceCategory::MessageExpired);
  const std::optional<MessageStatus> s = tracker->find(m.id.value);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->finished_unix_ms, clock.unix_ms());
  EXPECT_EQ(s->kept_until_unix_ms, clock.unix_ms() + kHour);
  ASSERT_EQ(s->recipients.size(), 2u);
  EXPECT_EQ(s->recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(s->recipients[1].state, RecipientState::expired);
  EXPECT_EQ(s->recipients[1].category, "MessageExpired");
  EXPECT_EQ(s->recipients[1].response.enhanced, "4.4.7");

  clock.advance(1h);  // expired: gone, though no commit has cleaned it up yet
  ASSERT_TRUE(spool->control(queue::status_key(m.id.value)));
  // The dead letter (kept 2h) still answers for it.
  const std::optional<MessageStatus> dead = tracker->find(m.id.value);
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->recipients[1].state, RecipientState::expired);
  clock.advance(1h);
  EXPECT_FALSE(tracker->find(m.id.value));
  EXPECT_FALSE(tracker->find("never-was"));
  EXPECT_FALSE(tracker->find(""));
}

TEST_F(MessageTrackerTest, DeadLettersAreListedWithFilters) {
  const queue::SpoolMessage a = stored(1, "spring", "app1");
  const queue::SpoolMessage b = stored(2, "autumn", "app2");
  const queue::SpoolMessage fine = stored(1, "spring", "app1");
  bounce(a, 0);
  update(b, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  bounce(b, 1, mail::BounceCategory::BadDomain);
  update(fine, 0, RecipientState::delivered, {250, "2.0.0", "ok"});

  auto ids = [&](DeadLetterFilter f) {
    std::vector<std::string> out;
    for (const MessageStatus& m : tracker->dead_letters(f)) out.push_back(m.id);
    return out;
  };
  EXPECT_EQ(ids({}), (std::vector<std::string>{a.id.value, b.id.value}));
  EXPECT_EQ(ids({"app2", "", ""}), std::vector<std::string>{b.id.value});
  EXPECT_EQ(ids({"", "spring", ""}), std::vector<std::string>{a.id.value});
  EXPECT_EQ(ids({"", "", "BadDomain"}), std::vector<std::string>{b.id.value});
  EXPECT_EQ(ids({"", "", "InvalidRecipient"}), std::vector<std::string>{a.id.value});
  EXPECT_TRUE(ids({"app1", "", "BadDomain"}).empty());
  const std::vector<MessageStatus> all = tracker->dead_letters({});
  ASSERT_EQ(all[1].recipients.size(), 2u);
  EXPECT_EQ(all[1].recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(all[1].recipients[1].category, "BadDomain");
  EXPECT_EQ(all[1].kept_until_unix_ms, clock.unix_ms() + 2 * kHour);
  ASSERT_TRUE(tracker->dead_letter(b.id.value));
  EXPECT_FALSE(tracker->dead_letter(fine.id.value));

  clock.advance(2h);
  EXPECT_TRUE(ids({}).empty());
}

TEST_F(MessageTrackerTest, RetryQueuesTheFailedRecipientsAgainThroughTheWriter) {
  const queue::SpoolMessage m = stored(2, "spring");
  update(m, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  bounce(m, 1);
  clock.advance(5min);

  const DeadLetterOutcome done = tracker->retry(m.id.value);
  EXPECT_EQ(done.status, DeadLetterOutcome::Status::ok) << done.detail;
  EXPECT_EQ(done.requeued, 1u);
  ASSERT_EQ(submitted.size(), 1u);
  EXPECT_EQ(submitted[0].origin, queue::MessageOrigin::dead_letter_retry);
  EXPECT_EQ(submitted[0].content, m.content);
  EXPECT_EQ(submitted[0].meta.received_unix_ms, clock.unix_ms());
  const auto back = spool->load_message(m.id, true);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->content, m.content);
  EXPECT_EQ(back->envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(back->envelope.recipients[1].state, RecipientState::queued);
  EXPECT_TRUE(tracker->dead_letters({}).empty());
  const std::optional<MessageStatus> s = tracker->find(m.id.value);
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->finished_unix_ms) << "back in the spool";
  EXPECT_EQ(s->recipients[1].state, RecipientState::queued);

  EXPECT_EQ(tracker->retry(m.id.value).status, DeadLetterOutcome::Status::not_found);
  EXPECT_EQ(tracker->retry("never-was").status, DeadLetterOutcome::Status::not_found);
  EXPECT_EQ(submitted.size(), 1u);
}

TEST_F(MessageTrackerTest, ARetryTheSpoolRefusesIsAFailureAndTheDeadLetterStays) {
  const queue::SpoolMessage m = stored(1);
  bounce(m, 0);
  submit_error = "spool full";
  const DeadLetterOutcome refused = tracker->retry(m.id.value);
  EXPECT_EQ(refused.status, DeadLetterOutcome::Status::failed);
  EXPECT_NE(refused.detail.find("spool full"), std::string::npos) << refused.detail;
  EXPECT_EQ(tracker->dead_letters({}).size(), 1u);
}

// A retry says the bounce was wrong: the entry that bounce made goes; what
// a complaint, an unsubscribe or the operator put there, another tenant's
// entry and the "*" list stay, and so does the entry of a recipient that
// is not retried.
TEST_F(MessageTrackerTest, RetryLiftsOnlyTheBounceEntriesOfTheRetriedRecipients) {
  queue::SuppressionStore lists(*spool);
  tracker->set_suppressions(&lists);
  const queue::SpoolMessage m = stored(5, "spring", "app1");
  update(m, 4, RecipientState::delivered, {250, "2.0.0", "ok"});
  for (uint32_t i = 0; i < 4; ++i) bounce(m, i);
  const std::string& a0 = m.envelope.recipients[0].address;
  const std::string& a1 = m.envelope.recipients[1].address;
  const std::string& a2 = m.envelope.recipients[2].address;
  const std::string& a3 = m.envelope.recipients[3].address;
  const std::string& a4 = m.envelope.recipients[4].address;
  using Source = queue::SuppressionSource;
  struct Row {
    std::string tenant, address;
    Source source;
    bool lifted;
  };
  const Row rows[] = {
      {"app1", a0, Source::bounce, true},      // made by this bounce
      {"app1", a1, Source::complaint, false},  // a complaint always suppresses
      {"app1", a2, Source::admin, false},      // the operator's
      {"*", a3, Source::bounce, false},        // the every-tenant list
      {"app2", a0, Source::bounce, false},     // another tenant's
      {"app1", a4, Source::bounce, false},     // delivered, not retried
  };
  std::vector<queue::SuppressionEntry> entries;
  for (const Row& row : rows) {
    queue::SuppressionEntry e;
    e.tenant = row.tenant;
    e.address = row.address;
    e.source = row.source;
    entries.push_back(e);
  }
  size_t added = 0;
  ASSERT_TRUE(lists.add(entries, &added).ok());
  ASSERT_EQ(added, std::size(rows));

  const DeadLetterOutcome done = tracker->retry(m.id.value);
  ASSERT_EQ(done.status, DeadLetterOutcome::Status::ok) << done.detail;
  EXPECT_EQ(done.requeued, 4u);
  for (const Row& row : rows) {
    const bool still = !lists.list(row.tenant, row.address, 10).empty();
    EXPECT_EQ(still, !row.lifted) << row.tenant << " " << row.address;
  }
  queue::SuppressionStore reloaded(*spool);
  EXPECT_EQ(reloaded.load(), std::size(rows) - 1) << "the lift is on disk";
}

TEST_F(MessageTrackerTest, DeleteDropsTheDeadLetterOnce) {
  const queue::SpoolMessage m = stored(1);
  bounce(m, 0);
  EXPECT_EQ(tracker->remove(m.id.value).status, DeadLetterOutcome::Status::ok);
  EXPECT_TRUE(tracker->dead_letters({}).empty());
  EXPECT_FALSE(spool->control(queue::dead_body_key(m.id.value)));
  EXPECT_EQ(tracker->remove(m.id.value).status, DeadLetterOutcome::Status::not_found);
  EXPECT_EQ(tracker->retry(m.id.value).status, DeadLetterOutcome::Status::not_found);
  EXPECT_TRUE(tracker->find(m.id.value)) << "the status record is not the dead letter";
}

}  // namespace
}  // namespace ringmail::mta
