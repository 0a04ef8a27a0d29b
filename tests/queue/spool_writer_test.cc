#include "queue/spool_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "admin-api/metrics_registry.h"
#include "queue/delivery_log.h"
#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

struct Completion {
  std::string id;
  StoreStatus status;
  std::string detail;
  bool durable_when_acked = false;  // the spool already had it inside `done`
};

class Completions {
 public:
  void add(Completion c) {
    std::lock_guard lock(mutex_);
    done_.push_back(std::move(c));
    cv_.notify_all();
  }
  std::vector<Completion> wait_for(size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(60), [&] { return done_.size() >= n; });
    return done_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Completion> done_;
};

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(SpoolWriter, ConcurrentSubmittersAreBatchedAndAckedAfterCommit) {
  TempDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path() / "spool", 256ull << 20, &error);
  ASSERT_TRUE(spool) << error;
  admin::MetricsRegistry metrics;
  auto log = DeliveryLog::open(dir.path() / "delivery.jsonl", &error);
  ASSERT_TRUE(log) << error;

  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  Completions completions;
  std::set<std::string> submitted;
  std::mutex submitted_mutex;
  {
    SpoolWriter writer(*spool, &metrics, log.get(),
                       SpoolWriterOptions{.initial_queued_recipients = 5});
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto m = std::make_unique<SpoolMessage>(make_test_message(1 + (i % 2), 4096));
          m->meta.listener = t % 2 == 0 ? "submission" : "relay";
          {
            std::lock_guard lock(submitted_mutex);
            submitted.insert(m->id.value);
          }
          writer.submit(std::move(m), [&](const SpoolMessage& msg, StoreStatus status,
                                          const std::string& detail) {
            // What a session would do on ok: tell the client 250. By then a
            // reader must find the message.
            const bool durable = spool->load_message(msg.id, true).has_value();
            completions.add({msg.id.value, status, detail, durable});
          });
        }
      });
    }
    for (auto& th : threads) th.join();
    const auto done = completions.wait_for(kThreads * kPerThread);
    ASSERT_EQ(done.size(), size_t{kThreads * kPerThread});
    std::set<std::string> acked;
    for (const auto& c : done) {
      EXPECT_EQ(c.status, StoreStatus::ok) << c.detail;
      EXPECT_TRUE(c.durable_when_acked) << c.id;
      acked.insert(c.id);
    }
    EXPECT_EQ(acked, submitted);
    EXPECT_EQ(writer.committed_messages(), uint64_t{kThreads * kPerThread});
    EXPECT_LT(writer.batches(), uint64_t{kThreads * kPerThread}) << "no group commit happened";
    EXPECT_GE(writer.batches(), 1u);
  }

  EXPECT_EQ(metrics.counter("messages_received_total", "", {{"listener", "submission"}}).value(),
            200u);
  EXPECT_EQ(metrics.counter("messages_received_total", "", {{"listener", "relay"}}).value(), 200u);
  // 5 from recovery + 400 messages with 1 or 2 recipients.
  EXPECT_EQ(metrics.gauge("queue_recipients", "", {{"state", "queued"}}).value(), 5 + 600);
  const std::string exposition = metrics.render();
  EXPECT_NE(exposition.find("ringmail_spool_commit_seconds_count"), std::string::npos);

  // One Reception line per recipient, each a JSON object naming a committed message.
  const auto lines = read_lines(dir.path() / "delivery.jsonl");
  ASSERT_EQ(lines.size(), 600u);
  for (const auto& line : lines) {
    const auto record = nlohmann::json::parse(line);
    EXPECT_EQ(record.at("type"), "Reception");
    EXPECT_TRUE(submitted.contains(record.at("id").get<std::string>()));
    EXPECT_EQ(record.at("sender"), "app@sender.test");
    EXPECT_TRUE(record.at("recipient").get<std::string>().starts_with("user"));
    EXPECT_EQ(record.at("tenant"), "app1");
    EXPECT_EQ(record.at("client_ip"), "192.0.2.7");
    EXPECT_EQ(record.at("size"), 4096);
    EXPECT_TRUE(record.at("listener") == "submission" || record.at("listener") == "relay");
    EXPECT_EQ(record.at("campaign"), "");
    EXPECT_TRUE(record.at("time").get<std::string>().ends_with("Z"));
  }
}

TEST(SpoolWriter, SpoolFullRefusesOnlyWhatDoesNotFit) {
  TempDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 1ull << 20, &error);
  ASSERT_TRUE(spool) << error;
  admin::MetricsRegistry metrics;
  Completions completions;
  SpoolWriter writer(*spool, &metrics, nullptr);

  // Submitted back to back so that they are likely to share a batch.
  auto huge = std::make_unique<SpoolMessage>(make_test_message(1, 3 << 20));
  auto small = std::make_unique<SpoolMessage>(make_test_message(1, 2048));
  const std::string huge_id = huge->id.value;
  const std::string small_id = small->id.value;
  auto record = [&](const SpoolMessage& m, StoreStatus status, const std::string& detail) {
    completions.add({m.id.value, status, detail});
  };
  writer.submit(std::move(huge), record);
  writer.submit(std::move(small), record);
  const auto done = completions.wait_for(2);
  ASSERT_EQ(done.size(), 2u);
  for (const auto& c : done) {
    if (c.id == huge_id) {
      EXPECT_EQ(c.status, StoreStatus::spool_full) << c.detail;
    } else {
      EXPECT_EQ(c.id, small_id);
      EXPECT_EQ(c.status, StoreStatus::ok) << c.detail;
    }
  }
  EXPECT_EQ(metrics.counter("spool_full_total", "").value(), 1u);
  EXPECT_TRUE(spool->load_message(MessageId{small_id}, true));
  EXPECT_FALSE(spool->load_message(MessageId{huge_id}, false));
}

TEST(SpoolWriter, StopDrainsPendingAndRefusesLaterSubmits) {
  MemorySpool spool;
  std::atomic<int> ok{0};
  std::atomic<int> refused{0};
  auto count = [&](const SpoolMessage&, StoreStatus status, const std::string&) {
    (status == StoreStatus::ok ? ok : refused)++;
  };
  SpoolWriter writer(spool, nullptr, nullptr);
  for (int i = 0; i < 50; ++i) {
    writer.submit(std::make_unique<SpoolMessage>(make_test_message()), count);
  }
  writer.stop();
  EXPECT_EQ(ok.load(), 50);
  EXPECT_EQ(spool.stats().messages, 50u);

  writer.submit(std::make_unique<SpoolMessage>(make_test_message()), count);
  EXPECT_EQ(refused.load(), 1);
  writer.stop();  // idempotent
}

TEST(SpoolWriter, FailedStoreIsReportedAndLogsNothing) {
  TempDir dir;
  std::string error;
  auto log = DeliveryLog::open(dir.path() / "delivery.jsonl", &error);
  ASSERT_TRUE(log) << error;
  MemorySpool spool;
  spool.fail_next_stores(StoreStatus::failed);
  std::promise<StoreStatus> result;
  SpoolWriter writer(spool, nullptr, log.get());
  writer.submit(std::make_unique<SpoolMessage>(make_test_message()),
                [&](const SpoolMessage&, StoreStatus status, const std::string&) {
                  result.set_value(status);
                });
  EXPECT_EQ(result.get_future().get(), StoreStatus::failed);
  writer.stop();
  EXPECT_TRUE(read_lines(dir.path() / "delivery.jsonl").empty());
}

TEST(SpoolWriter, BatchesAreBoundedBySize) {
  MemorySpool spool;
  SpoolWriterOptions options;
  options.max_batch_messages = 4;
  std::atomic<int> ok{0};
  {
    SpoolWriter writer(spool, nullptr, nullptr, options);
    // Queue up work before the writer can take it: submissions race the
    // writer, so only the bound is certain: at least 40 / 4 batches.
    for (int i = 0; i < 40; ++i) {
      writer.submit(std::make_unique<SpoolMessage>(make_test_message()),
                    [&](const SpoolMessage&, StoreStatus status, const std::string&) {
                      if (status == StoreStatus::ok) ++ok;
                    });
    }
    writer.stop();
    EXPECT_GE(writer.batches(), 10u);
  }
  EXPECT_EQ(ok.load(), 40);
}

}  // namespace
}  // namespace ringmail::queue

namespace ringmail::queue {
namespace {

TEST(SpoolWriter, CommittedMessagesReachTheListenerWithTheirContent) {
  TempDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
  ASSERT_NE(spool, nullptr) << error;
  SpoolWriter writer(*spool, nullptr, nullptr);
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::unique_ptr<SpoolMessage>> heard;
  writer.set_committed_listener([&](std::vector<std::unique_ptr<SpoolMessage>> messages) {
    std::lock_guard lock(mutex);
    for (auto& m : messages) {
      // The commit is durable before the listener hears of it.
      EXPECT_TRUE(spool->load_message(m->id, false).has_value());
      heard.push_back(std::move(m));
    }
    cv.notify_all();
  });
  SpoolMessage original = make_test_message(2, 4096);
  writer.submit(std::make_unique<SpoolMessage>(original),
                [](const SpoolMessage&, StoreStatus, const std::string&) {});
  std::unique_lock lock(mutex);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return heard.size() == 1; }));
  EXPECT_EQ(heard[0]->id, original.id);
  EXPECT_EQ(heard[0]->content, original.content);
  EXPECT_EQ(heard[0]->envelope.recipients.size(), 2u);
}

TEST(SpoolWriter, UpdatesAreCommittedAndReported) {
  TempDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
  ASSERT_NE(spool, nullptr) << error;
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool->store_batch(batch).ok());
  SpoolWriter writer(*spool, nullptr, nullptr);
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {m.id},
                        [&](StoreStatus status) { done.set_value(status); });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_FALSE(spool->load_message(m.id, false).has_value()) << "delivered message not deleted";
}

TEST(SpoolWriter, UpdatesSurviveABatchThatTheSpoolRefuses) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  SpoolWriter writer(spool, nullptr, nullptr);
  std::promise<StoreStatus> updated;
  std::promise<StoreStatus> stored;
  // The next store fails; the updates that share its commit must still land.
  spool.fail_next_stores(StoreStatus::failed, 1);
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus status) { updated.set_value(status); });
  writer.submit(std::make_unique<SpoolMessage>(make_test_message(1)),
                [&](const SpoolMessage&, StoreStatus status, const std::string&) {
                  stored.set_value(status);
                });
  auto u = updated.get_future();
  auto s = stored.get_future();
  ASSERT_EQ(u.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(s.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto loaded = spool.load_message(m.id, false);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(u.get(), StoreStatus::ok);
  (void)s.get();  // either outcome is fine for the message: it was told which
}

}  // namespace
}  // namespace ringmail::queue

namespace ringmail::queue {
namespace {

TEST(SpoolWriter, FailedUpdatesAreRetriedWithTheNextCommits) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  const uint64_t calls_before = spool.store_calls();
  spool.fail_next_stores(StoreStatus::failed, 3);  // the commit, its retry apart, one more
  SpoolWriter writer(spool, nullptr, nullptr);
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {m.id},
                        [&](StoreStatus status) { done.set_value(status); });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_GE(spool.store_calls() - calls_before, 4u);
  EXPECT_FALSE(spool.load_message(m.id, false).has_value()) << "the delivered message stayed";
}

TEST(SpoolWriter, UpdatesThatNeverCommitAreReportedAsFailed) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::failed, 100);
  SpoolWriter writer(spool, nullptr, nullptr);
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus status) { done.set_value(status); });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::failed);
  auto kept = spool.load_message(m.id, false);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->envelope.recipients[0].state, RecipientState::queued);
}

}  // namespace
}  // namespace ringmail::queue
