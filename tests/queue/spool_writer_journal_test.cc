// tests/queue/spool_writer_journal_test.cc — the spool writer hands each
// commit's delivery-log records to the record journal and writes what it
// returns in the same commit: Reception records with their message (with
// or without a delivery log), a result's records with the result, also
// after a failed commit; committed() follows only a commit that succeeded.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "queue/record_journal.h"
#include "queue/spool_memory.h"
#include "queue/spool_writer.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;

// Keeps each record as control "journal/N" = TYPE/RECIPIENT.
class FakeJournal final : public RecordJournal {
 public:
  explicit FakeJournal(bool wanted) : wanted_(wanted) {}
  bool wants_records() const override { return wanted_; }
  void stage(std::span<const nlohmann::ordered_json> records, JournalBatch* batch) override {
    std::lock_guard lock(mutex_);
    for (const auto& record : records) {
      const std::string text =
          record["type"].get<std::string>() + "/" + record["recipient"].get<std::string>();
      ++staged_;
      batch->controls.push_back({"journal/" + std::to_string(staged_), text});
      batch->records.push_back({"fake", staged_, std::make_shared<const std::string>(text)});
    }
  }
  void committed(JournalBatch batch) override {
    std::lock_guard lock(mutex_);
    for (const auto& r : batch.records) committed_.push_back(*r.json);
  }
  std::vector<std::string> committed_records() {
    std::lock_guard lock(mutex_);
    return committed_;
  }
  uint64_t staged() {
    std::lock_guard lock(mutex_);
    return staged_;
  }

 private:
  bool wanted_;
  std::mutex mutex_;
  uint64_t staged_ = 0;
  std::vector<std::string> committed_;
};

nlohmann::ordered_json record(const char* type, const std::string& recipient) {
  return nlohmann::ordered_json{{"type", type}, {"recipient", recipient}};
}

TEST(SpoolWriterJournal, ReceptionRecordsCommitWithTheirMessage) {
  MemorySpool spool(1 << 20);
  FakeJournal journal(true);
  SpoolWriter writer(spool, nullptr, nullptr);  // no delivery log
  writer.set_record_journal(&journal);
  SpoolMessage m = make_test_message(2);
  std::promise<bool> durable;
  writer.submit(std::make_unique<SpoolMessage>(m),
                [&](const SpoolMessage& message, StoreStatus status, const std::string&) {
                  // Inside done: message and records are in the spool together.
                  durable.set_value(status == StoreStatus::ok &&
                                    spool.load_message(message.id, false).has_value() &&
                                    spool.controls("journal/").size() == 2);
                });
  auto future = durable.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_TRUE(future.get());
  const auto r0 = "Reception/" + m.envelope.recipients[0].address;
  const auto r1 = "Reception/" + m.envelope.recipients[1].address;
  EXPECT_EQ(spool.control("journal/1"), r0);
  EXPECT_EQ(spool.control("journal/2"), r1);
  EXPECT_EQ(journal.committed_records(), (std::vector<std::string>{r0, r1}));
}

TEST(SpoolWriterJournal, ResultRecordsSurviveAFailedCommit) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::failed, 2);  // the commit and its retry apart
  FakeJournal journal(true);
  SpoolWriter writer(spool, nullptr, nullptr);
  writer.set_record_journal(&journal);
  const std::string rcpt = m.envelope.recipients[0].address;
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus status) { done.set_value(status); }, {},
                        {record("Delivery", rcpt)});
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  // Staged once per try; only the commit that held is journaled.
  EXPECT_EQ(journal.committed_records(), std::vector<std::string>{"Delivery/" + rcpt});
  const auto kept = spool.controls("journal/");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].second, "Delivery/" + rcpt);
  EXPECT_EQ(kept[0].first, "journal/" + std::to_string(journal.staged()));
  EXPECT_EQ(spool.load_message(m.id, false)->envelope.recipients[0].state,
            RecipientState::delivered);

  // Records alone (no update) commit too.
  std::promise<StoreStatus> alone;
  writer.submit_updates({}, {}, [&](StoreStatus status) { alone.set_value(status); }, {},
                        {record("Feedback", rcpt)});
  auto alone_future = alone.get_future();
  ASSERT_EQ(alone_future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(spool.controls("journal/").size(), 2u);
}

TEST(SpoolWriterJournal, NothingIsBuiltWhileNobodyWantsRecords) {
  MemorySpool spool(1 << 20);
  FakeJournal journal(false);
  SpoolWriter writer(spool, nullptr, nullptr);
  writer.set_record_journal(&journal);
  std::promise<StoreStatus> done;
  writer.submit(
      std::make_unique<SpoolMessage>(make_test_message(3)),
      [&](const SpoolMessage&, StoreStatus status, const std::string&) { done.set_value(status); });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_EQ(journal.staged(), 0u);
  EXPECT_TRUE(spool.controls("journal/").empty());
}

}  // namespace
}  // namespace ringmail::queue
