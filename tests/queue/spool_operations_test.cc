// Releasing quarantined mail and rewriting recipient state in the LMDB
// spool: state, indexes and persistence across a reopen.
#include "queue/spool_operations.h"

#include <gtest/gtest.h>

#include "queue/spool_lmdb.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

std::unique_ptr<Spool> open_spool(const TempDir& dir) {
  std::string error;
  auto spool = open_lmdb_spool(dir.path() / "spool", 64ull << 20, &error);
  EXPECT_TRUE(spool) << error;
  return spool;
}

SpoolMessage quarantined_message(size_t recipients) {
  SpoolMessage m = make_test_message(recipients, 2048, "spring-sale");
  for (auto& r : m.envelope.recipients) r.state = RecipientState::quarantined;
  return m;
}

TEST(SpoolRelease, QuarantinedMailIsHeldUntilReleasedAndTheReleaseIsDurable) {
  TempDir dir;
  SpoolMessage m = quarantined_message(2);
  {
    auto spool = open_spool(dir);
    SpoolMessage* batch[] = {&m};
    ASSERT_TRUE(spool->store_batch(batch).ok());
    RecoverySummary held = spool->recover();
    EXPECT_EQ(held.count(RecipientState::quarantined), 2u);
    EXPECT_EQ(held.scheduled, 0u) << "quarantined recipients must not be scheduled";

    ReleaseOutcome released = release_quarantined(*spool, m.id, 1'800'000'000'000);
    ASSERT_TRUE(released.store.ok()) << released.store.detail;
    EXPECT_EQ(released.released, 2u);
    // Releasing again finds nothing to release.
    EXPECT_EQ(release_quarantined(*spool, m.id, 1'800'000'000'000).released, 0u);
  }
  auto reopened = open_spool(dir);
  RecoverySummary after = reopened->recover();
  EXPECT_EQ(after.count(RecipientState::queued), 2u);
  EXPECT_EQ(after.count(RecipientState::quarantined), 0u);
  EXPECT_EQ(after.scheduled, 2u);
  EXPECT_EQ(after.corrupt_records, 0u) << (after.problems.empty() ? "" : after.problems[0]);
  auto loaded = reopened->load_message(m.id, true);
  ASSERT_TRUE(loaded);
  for (const auto& r : loaded->envelope.recipients) {
    EXPECT_EQ(r.state, RecipientState::queued);
    EXPECT_EQ(r.next_attempt_unix_ms, 1'800'000'000'000);
  }
  EXPECT_EQ(loaded->content, m.content);
}

TEST(SpoolRelease, UnknownMessageIsAnError) {
  TempDir dir;
  auto spool = open_spool(dir);
  ReleaseOutcome outcome = release_quarantined(*spool, MessageId{"0000000000000000dead"}, 1);
  EXPECT_EQ(outcome.store.status, StoreStatus::failed);
  EXPECT_NE(outcome.store.detail.find("0000000000000000dead"), std::string::npos);
}

TEST(SpoolUpdate, AllOrNothingAndIndexesFollowTheState) {
  TempDir dir;
  auto spool = open_spool(dir);
  SpoolMessage m = make_test_message(2, 1024);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool->store_batch(batch).ok());
  ASSERT_EQ(spool->recover().scheduled, 2u);

  // The second update names a recipient that does not exist: nothing changes.
  RecipientUpdate bad[] = {{m.id, 0, RecipientState::delivered, 1, 0},
                           {m.id, 7, RecipientState::delivered, 1, 0}};
  EXPECT_EQ(spool->update_recipients(bad).status, StoreStatus::failed);
  EXPECT_EQ(spool->load_message(m.id, false)->envelope.recipients[0].state, RecipientState::queued);

  // Delivered leaves the scheduler index; deferred stays in it, due later.
  RecipientUpdate good[] = {{m.id, 0, RecipientState::delivered, 1, 0},
                            {m.id, 1, RecipientState::deferred, 1, 2'000'000'000'000}};
  ASSERT_TRUE(spool->update_recipients(good).ok());
  RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.count(RecipientState::delivered), 1u);
  EXPECT_EQ(summary.count(RecipientState::deferred), 1u);
  EXPECT_EQ(summary.scheduled, 1u);
  EXPECT_EQ(summary.corrupt_records, 0u) << (summary.problems.empty() ? "" : summary.problems[0]);
  auto loaded = spool->load_message(m.id, false);
  EXPECT_EQ(loaded->envelope.recipients[1].attempts, 1u);
  EXPECT_EQ(loaded->envelope.recipients[1].next_attempt_unix_ms, 2'000'000'000'000);
}

}  // namespace
}  // namespace ringmail::queue
