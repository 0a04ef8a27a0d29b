#include "queue/spool_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "queue/delivery_log.h"
#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "queue/spool_retention.h"
#include "runtime/metrics_registry.h"
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
  runtime::MetricsRegistry metrics;
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
  runtime::MetricsRegistry metrics;
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

TEST(SpoolWriter, ControlWritesCommitWithTheirResultsAndSurviveARetry) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::failed, 2);  // the commit and its retry apart
  SpoolWriter writer(spool, nullptr, nullptr);
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus status) { done.set_value(status); },
                        {{"warmup/*/ip1", "count 1"}});
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_EQ(spool.control("warmup/*/ip1"), "count 1");
  EXPECT_EQ(spool.load_message(m.id, false)->envelope.recipients[0].state,
            RecipientState::delivered);
  // Controls alone (a deletion) commit too.
  std::promise<StoreStatus> deleted;
  writer.submit_updates({}, {}, [&](StoreStatus status) { deleted.set_value(status); },
                        {{"warmup/*/ip1", std::nullopt}});
  auto gone = deleted.get_future();
  ASSERT_EQ(gone.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_FALSE(spool.control("warmup/*/ip1"));
}

SpoolWriterOptions fast_retries() {
  SpoolWriterOptions options;
  options.results_retry_min = std::chrono::milliseconds(1);
  options.results_retry_max = std::chrono::milliseconds(5);
  return options;
}

// A complaint's count (no recipient changes) commits with its control
// record, and is counted once though its first commits failed.
TEST(SpoolWriter, StatsAdditionsCommitWithTheirControlsAndSurviveARetry) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1, 100, "spring");
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.commit(batch, {}, {}).ok());
  spool.fail_next_stores(StoreStatus::failed, 2);  // the commit and its retry apart
  SpoolWriter writer(spool, nullptr, nullptr, fast_retries());
  StatsAddition complaint{m.meta.tenant, "spring", {}};
  complaint.delta.complaints = 1;
  std::promise<StoreStatus> done;
  writer.submit_updates({}, {}, [&](StoreStatus status) { done.set_value(status); },
                        {{"feedback-seen/x", std::string("1")}}, {}, {complaint});
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_EQ(spool.control("feedback-seen/x"), "1");
  const StatsDeltas found = spool.delivery_stats(campaign_stats_key("spring"));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.begin()->second.complaints, 1u);
  EXPECT_EQ(spool.delivery_stats(tenant_stats_key(m.meta.tenant)).begin()->second.complaints, 1u);
}

bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A full disk once made the writer give up after five attempts, and a
// restart then delivered every message a second time.
TEST(SpoolWriter, UpdatesAreRetriedUntilTheyCommit) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::spool_full, 40);
  runtime::MetricsRegistry metrics;
  SpoolWriter writer(spool, &metrics, nullptr, fast_retries());
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {m.id},
                        [&](StoreStatus status) { done.set_value(status); });
  ASSERT_TRUE(wait_until([&] { return writer.results_waiting() > 0; }));
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::ok);
  EXPECT_FALSE(spool.load_message(m.id, false).has_value()) << "the delivered message stayed";
  EXPECT_EQ(writer.results_waiting(), 0u);
  EXPECT_EQ(metrics.gauge("spool_results_waiting", "").value(), 0);
}

TEST(SpoolWriter, UpdatesKeepTheirOrderAcrossRetries) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::failed, 3);
  SpoolWriterOptions options;
  options.results_retry_min = std::chrono::milliseconds(200);
  SpoolWriter writer(spool, nullptr, nullptr, options);
  std::promise<void> first, second;
  // Deferred, then delivered: applied the other way round the recipient
  // would be tried again.
  writer.submit_updates({{m.id, 0, RecipientState::deferred, 1, 1767225600000}}, {},
                        [&](StoreStatus) { first.set_value(); });
  ASSERT_TRUE(wait_until([&] { return writer.results_waiting() > 0; }));
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 2, 0}}, {},
                        [&](StoreStatus) { second.set_value(); });
  ASSERT_EQ(first.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  ASSERT_EQ(second.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto loaded = spool.load_message(m.id, false);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(loaded->envelope.recipients[0].attempts, 2u);
}

TEST(SpoolWriter, UpdatesStillWaitingAtStopAreReportedFailed) {
  MemorySpool spool(1 << 20);
  SpoolMessage m = make_test_message(1);
  SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  spool.fail_next_stores(StoreStatus::failed, 1000000);
  SpoolWriter writer(spool, nullptr, nullptr, fast_retries());
  std::promise<StoreStatus> done;
  writer.submit_updates({{m.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus status) { done.set_value(status); });
  ASSERT_TRUE(wait_until([&] { return writer.results_waiting() > 0; }));
  writer.stop();
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(future.get(), StoreStatus::failed);
}

// A result that no commit takes, for another reason than space, is given
// up after kMaxFailedRounds retries instead of holding up every later one.
TEST(SpoolWriter, AResultThatNeverCommitsDoesNotHoldUpLaterOnes) {
  MemorySpool spool(1 << 20);
  SpoolMessage first = make_test_message(1);
  SpoolMessage second = make_test_message(1);
  SpoolMessage* batch[] = {&first, &second};
  ASSERT_TRUE(spool.store_batch(batch).ok());
  // Each failed round costs three commits (with the batch, apart, its one
  // piece): ten rounds give the first result up; the second fails five
  // rounds, then commits.
  spool.fail_next_stores(StoreStatus::failed, 45);
  SpoolWriter writer(spool, nullptr, nullptr, fast_retries());
  std::promise<void> first_done, second_done;
  writer.submit_updates({{first.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus) { first_done.set_value(); });
  ASSERT_EQ(first_done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  writer.submit_updates({{second.id, 0, RecipientState::delivered, 1, 0}}, {},
                        [&](StoreStatus) { second_done.set_value(); });
  ASSERT_EQ(second_done.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(spool.load_message(first.id, false)->envelope.recipients[0].state,
            RecipientState::queued)
      << "given up: a restart repeats it";
  EXPECT_EQ(spool.load_message(second.id, false)->envelope.recipients[0].state,
            RecipientState::delivered);
}

// A DSN the engine makes is let into the reserve: its original is being
// deleted, and the sender must hear of the bounce.
TEST(SpoolWriter, DeliveryReportsAreTakenInsideTheReserve) {
  MemorySpool spool(1 << 20);
  SpoolWriterOptions options = fast_retries();
  options.reserve_bytes = 256 << 10;
  SpoolWriter writer(spool, nullptr, nullptr, options);
  auto submit = [&](SpoolWriter::Kind kind) {
    std::promise<StoreStatus> result;
    auto future = result.get_future();
    writer.submit(
        std::make_unique<SpoolMessage>(make_test_message(1, 60 << 10)),
        [&](const SpoolMessage&, StoreStatus status, const std::string&) {
          result.set_value(status);
        },
        kind);
    return future.get();
  };
  StoreStatus last = StoreStatus::ok;
  for (int i = 0; i < 20 && last == StoreStatus::ok; ++i)
    last = submit(SpoolWriter::Kind::new_mail);
  ASSERT_EQ(last, StoreStatus::spool_full);
  EXPECT_EQ(submit(SpoolWriter::Kind::delivery_report), StoreStatus::ok);
  EXPECT_EQ(submit(SpoolWriter::Kind::new_mail), StoreStatus::spool_full);
}

// A dead letter's retry: committed with its dead letter taken back, heard
// by the listener as a retry, and not received again.
TEST(SpoolWriter, ADeadLetterRetryIsNotReceivedTwice) {
  TempDir dir;
  std::string error;
  SpoolOptions spool_options;
  spool_options.retention.keep_failed_ms = 3600 * 1000;
  auto spool = open_lmdb_spool(dir.path() / "spool", 64ull << 20, &error, spool_options);
  ASSERT_TRUE(spool) << error;
  auto log = DeliveryLog::open(dir.path() / "delivery.jsonl", &error);
  ASSERT_TRUE(log) << error;
  runtime::MetricsRegistry metrics;
  SpoolWriter writer(*spool, &metrics, log.get(), fast_retries());
  std::mutex mutex;
  std::vector<MessageOrigin> heard;
  writer.set_committed_listener([&](std::vector<std::unique_ptr<SpoolMessage>> messages) {
    std::lock_guard lock(mutex);
    for (const auto& m : messages) heard.push_back(m->origin);
  });
  auto submit = [&](SpoolMessage m, SpoolWriter::Kind kind) {
    std::promise<StoreStatus> result;
    writer.submit(
        std::make_unique<SpoolMessage>(std::move(m)),
        [&](const SpoolMessage&, StoreStatus status, const std::string&) {
          result.set_value(status);
        },
        kind);
    return result.get_future().get();
  };
  SpoolMessage m = make_test_message(1, 500);
  ASSERT_EQ(submit(m, SpoolWriter::Kind::new_mail), StoreStatus::ok);
  RecipientUpdate bounce{m.id, 0, RecipientState::bounced, 1, 0};
  bounce.response = {550, "5.1.1", "no such user"};
  std::promise<StoreStatus> updated;
  writer.submit_updates({bounce}, {m.id}, [&](StoreStatus s) { updated.set_value(s); });
  ASSERT_EQ(updated.get_future().get(), StoreStatus::ok);
  ASSERT_TRUE(spool->control(dead_key(m.id.value)));

  SpoolMessage retry = m;  // as MessageTracker builds it; submit() sets the origin
  EXPECT_EQ(submit(retry, SpoolWriter::Kind::dead_letter_retry), StoreStatus::ok);
  EXPECT_FALSE(spool->control(dead_key(m.id.value)));
  EXPECT_TRUE(spool->load_message(m.id, false));
  // No dead letter any more: a second retry is refused, and not received either.
  EXPECT_EQ(submit(retry, SpoolWriter::Kind::dead_letter_retry), StoreStatus::failed);
  writer.stop();
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(heard, (std::vector<MessageOrigin>{MessageOrigin::received,
                                                 MessageOrigin::dead_letter_retry}));
  }
  size_t receptions = 0;
  for (const std::string& line : read_lines(dir.path() / "delivery.jsonl")) {
    receptions += nlohmann::json::parse(line)["type"] == "Reception";
  }
  EXPECT_EQ(receptions, 1u);
  EXPECT_EQ(metrics.counter("messages_received_total", "", {{"listener", "submission"}}).value(),
            1u);
}

// Expired status records go on an idle spool too: the writer commits
// nothing now and then, and that commit cleans up.
TEST(SpoolWriter, AnIdleWriterStillRemovesExpiredRecords) {
  TempDir dir;
  std::string error;
  SpoolOptions spool_options;
  spool_options.retention.keep_status_ms = 1;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error, spool_options);
  ASSERT_TRUE(spool) << error;
  SpoolWriterOptions options = fast_retries();
  options.housekeeping_interval = std::chrono::milliseconds(20);
  SpoolWriter writer(*spool, nullptr, nullptr, options);
  std::promise<StoreStatus> stored;
  SpoolMessage m = make_test_message(1, 300);
  writer.submit(
      std::make_unique<SpoolMessage>(m),
      [&](const SpoolMessage&, StoreStatus s, const std::string&) { stored.set_value(s); });
  ASSERT_EQ(stored.get_future().get(), StoreStatus::ok);
  std::promise<StoreStatus> updated;
  writer.submit_updates({RecipientUpdate{m.id, 0, RecipientState::delivered, 1, 0}}, {m.id},
                        [&](StoreStatus s) { updated.set_value(s); });
  ASSERT_EQ(updated.get_future().get(), StoreStatus::ok);
  const uint64_t batches = writer.batches();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (spool->control(status_key(m.id.value)) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(spool->control(status_key(m.id.value)));
  EXPECT_TRUE(spool->controls(kExpiryPrefix).empty());
  EXPECT_EQ(writer.batches(), batches) << "housekeeping is not a batch";
}

// An operator's retry of a dead letter is let into the reserve like a DSN.
TEST(SpoolWriter, DeadLetterRetriesAreTakenInsideTheReserve) {
  SpoolOptions spool_options;
  spool_options.retention.keep_failed_ms = 3600 * 1000;
  MemorySpool spool(1 << 20, spool_options);
  SpoolWriterOptions options = fast_retries();
  options.reserve_bytes = 256 << 10;
  SpoolWriter writer(spool, nullptr, nullptr, options);
  auto submit = [&](SpoolMessage m, SpoolWriter::Kind kind) {
    std::promise<StoreStatus> result;
    auto future = result.get_future();
    writer.submit(
        std::make_unique<SpoolMessage>(std::move(m)),
        [&](const SpoolMessage&, StoreStatus status, const std::string&) {
          result.set_value(status);
        },
        kind);
    return future.get();
  };
  SpoolMessage dead = make_test_message(1, 60 << 10);
  ASSERT_EQ(submit(dead, SpoolWriter::Kind::new_mail), StoreStatus::ok);
  std::promise<StoreStatus> bounced;
  writer.submit_updates({RecipientUpdate{dead.id, 0, RecipientState::bounced, 1, 0}}, {dead.id},
                        [&](StoreStatus s) { bounced.set_value(s); });
  ASSERT_EQ(bounced.get_future().get(), StoreStatus::ok);
  StoreStatus last = StoreStatus::ok;
  for (int i = 0; i < 20 && last == StoreStatus::ok; ++i)
    last = submit(make_test_message(1, 60 << 10), SpoolWriter::Kind::new_mail);
  ASSERT_EQ(last, StoreStatus::spool_full);
  EXPECT_EQ(submit(dead, SpoolWriter::Kind::dead_letter_retry), StoreStatus::ok);
  EXPECT_EQ(submit(make_test_message(1, 60 << 10), SpoolWriter::Kind::new_mail),
            StoreStatus::spool_full);
}

// New mail stops at the reserve, so that delivery results still fit; once
// deliveries free space it is taken again, with no restart.
TEST(SpoolWriter, NewMailIsRefusedAtTheReserveAndTakenAgainAfterDeliveries) {
  constexpr uint64_t kCapacity = 1 << 20;
  MemorySpool spool(kCapacity);
  runtime::MetricsRegistry metrics;
  SpoolWriterOptions options = fast_retries();
  options.reserve_bytes = 256 << 10;
  SpoolWriter writer(spool, &metrics, nullptr, options);
  auto submit = [&] {
    std::promise<StoreStatus> result;
    auto future = result.get_future();
    auto message = std::make_unique<SpoolMessage>(make_test_message(1, 60 << 10));
    const MessageId id = message->id;
    writer.submit(std::move(message), [&](const SpoolMessage&, StoreStatus status,
                                          const std::string&) { result.set_value(status); });
    return std::make_pair(id, future.get());
  };
  std::vector<MessageId> stored;
  StoreStatus last = StoreStatus::ok;
  for (int i = 0; i < 20 && last == StoreStatus::ok; ++i) {
    auto [id, status] = submit();
    last = status;
    if (status == StoreStatus::ok) stored.push_back(id);
  }
  ASSERT_EQ(last, StoreStatus::spool_full);
  EXPECT_GE(stored.size(), 8u);
  // The refusal came with room to spare: the reserve, not the capacity.
  EXPECT_GE(kCapacity - spool.space(CountFreePages::yes).map_used_bytes, options.reserve_bytes);
  EXPECT_EQ(submit().second, StoreStatus::spool_full);
  EXPECT_EQ(metrics.counter("spool_full_total", "").value(), 2u);
  EXPECT_EQ(metrics.gauge("spool_accepting", "").value(), 0);

  // Deliveries of the first four free their room.
  std::vector<RecipientUpdate> updates;
  std::vector<MessageId> finished(stored.begin(), stored.begin() + 4);
  for (const MessageId& id : finished) updates.push_back({id, 0, RecipientState::delivered, 1, 0});
  std::promise<StoreStatus> updated;
  writer.submit_updates(updates, finished, [&](StoreStatus s) { updated.set_value(s); });
  EXPECT_EQ(updated.get_future().get(), StoreStatus::ok);
  EXPECT_EQ(submit().second, StoreStatus::ok);
  EXPECT_EQ(metrics.gauge("spool_accepting", "").value(), 1);
}

}  // namespace
}  // namespace ringmail::queue
