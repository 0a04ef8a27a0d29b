// mta/feedback_processor.h — what the feedback listener does with each
// message it takes (CONTRACT.md "Feedback, suppression and compliance in
// detail"): parse it (mail/feedback_report.h), attribute it through its
// verified tokens and what the spool still knows of the sent message, and
// carry out the decisions of policy/feedback_attribution.h: suppression
// entries, complaint counts in the campaign and tenant statistics,
// `Feedback` delivery-log records and `feedback_total{feedback_type}`.
// What cannot be attributed, forged tokens and reports Ringmail does not
// act on are logged and dropped (`feedback_dropped_total{reason}`, a
// Ringmail extension). Nothing it takes is ever spooled for delivery, so
// no DSN is ever made about a DSN.
//
// Threads: one worker thread of its own takes the messages submit()
// queues (from the inbound shards), one at a time, in order; `done` runs
// on it. reload() and stop() from the daemon's main thread.
//
// Durability: `done` says committed (the client hears 250) only once what
// the report requires is on disk: the suppression entries (one synced
// transaction, SuppressionWriter::add) and then, in one spool commit
// through the writer, the complaint counts with a "feedback-seen/ID/INDEX"
// control record each and the Feedback records for the webhooks' journal
// (queue/record_journal.h). If anything fails, or the daemon dies in
// between, the client is told 451 (or hears nothing) and sends the report
// again; the entry is then replaced and the seen record keeps the
// complaint from being counted twice. Delivery-log lines are written after
// the commit, so after a crash a report may be logged (and posted) twice,
// never counted twice. Seen records are removed after 30 days.
//
// SECURITY: the messages come from anyone on the Internet. The parser
// bounds its work, only authenticated tokens attribute anything, and the
// address suppressed is always the one the spool stored. The queue of
// messages waiting for the worker is bounded (451 past it).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "conf/config.h"
#include "mta/inbound/inbound_server.h"
#include "mta/message_tracker.h"
#include "policy/feedback_attribution.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"

namespace ringmail::queue {
class DeliveryLog;
class SpoolWriter;
}  // namespace ringmail::queue

namespace ringmail::mta {

// Where suppression entries go: queue::SuppressionStore::add() (durable
// on return), behind an interface so that tests can make it fail.
class SuppressionWriter {
 public:
  virtual ~SuppressionWriter() = default;
  virtual queue::StoreOutcome add(std::span<const queue::SuppressionEntry> entries,
                                  size_t* added) = 0;
};

// The daemon's: the spool's suppression lists.
class StoreSuppressionWriter final : public SuppressionWriter {
 public:
  explicit StoreSuppressionWriter(queue::SuppressionStore& store) : store_(store) {}
  queue::StoreOutcome add(std::span<const queue::SuppressionEntry> entries,
                          size_t* added) override {
    return store_.add(entries, added);
  }

 private:
  queue::SuppressionStore& store_;
};

struct FeedbackDependencies {
  queue::Spool* spool = nullptr;         // required: the seen records
  queue::SpoolWriter* writer = nullptr;  // required: complaint counts
  // What the spool still knows of a sent message (MessageTracker::find):
  // in the spool, its status record or its dead letter. Required.
  std::function<std::optional<MessageStatus>(const std::string& id)> find_message;
  // Null: decisions are logged, but nobody is suppressed.
  SuppressionWriter* suppressions = nullptr;
  queue::DeliveryLog* log = nullptr;            // null: no delivery log
  runtime::MetricsRegistry* metrics = nullptr;  // required
  const runtime::Clock* clock = &runtime::system_clock();
};

class FeedbackProcessor final : public FeedbackSink {
 public:
  // The worker starts here. config: return path key and bounce rules.
  FeedbackProcessor(FeedbackDependencies deps, std::shared_ptr<const conf::Config> config);
  ~FeedbackProcessor() override;  // stop()
  FeedbackProcessor(const FeedbackProcessor&) = delete;
  FeedbackProcessor& operator=(const FeedbackProcessor&) = delete;

  // Messages taken from now on use the new key and rules.
  void reload(std::shared_ptr<const conf::Config> config);
  // Any thread. Past kMaxWaiting messages, or after stop(), done is called
  // at once with failed.
  void submit(std::unique_ptr<queue::SpoolMessage> message, Done done) override;
  // Processes what was submitted, then joins the worker. Idempotent.
  void stop();

  // A one-click unsubscribe (mta/unsubscribe_endpoint.h), any thread:
  // processed in order with the reports; `done` runs on the worker, with
  // true once the suppression and the count are on disk (or there was
  // nobody to suppress), false when they could not be stored.
  void unsubscribe(policy::UnsubscribeToken token, policy::UnsubscribeMethod method,
                   std::function<void(bool stored)> done);

  // What the worker does with one message, on the calling thread (tests;
  // never at the same time as the worker). Mail to the unsubscribe mailto
  // domain (u-TOKEN@policy.list_unsubscribe.mailto_domain) is an
  // unsubscribe per verified token, not a report.
  CommitResult process(const queue::SpoolMessage& message);
  CommitResult process_unsubscribe(const policy::UnsubscribeToken& token,
                                   policy::UnsubscribeMethod method);

  static constexpr size_t kMaxWaiting = 1000;
  static constexpr int64_t kSeenRecordMs = 30LL * 24 * 3600 * 1000;

 private:
  // A message, or else an unsubscribe.
  struct Job {
    std::unique_ptr<queue::SpoolMessage> message;
    Done done;
    policy::UnsubscribeToken unsubscribe;
    policy::UnsubscribeMethod method = policy::UnsubscribeMethod::one_click;
    std::function<void(bool)> unsubscribed;
  };
  void run();
  bool mailto_unsubscribe(const conf::Config& config, const queue::SpoolMessage& message,
                          CommitResult* result);
  // Suppressions first (durable on return), then counts (once per seen
  // key), Feedback records and the log; `what` names it in the log.
  CommitResult apply(const std::string& what, const std::vector<policy::FeedbackDecision>& records,
                     const std::vector<std::string>& seen_keys, int64_t now);
  // Removes seen records older than kSeenRecordMs, at most once an hour.
  void expire_seen_records(int64_t now_ms);
  std::shared_ptr<const conf::Config> current_config();

  FeedbackDependencies deps_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<const conf::Config> config_;  // guarded by mutex_
  std::deque<Job> waiting_;                     // guarded by mutex_
  bool stopping_ = false;                       // guarded by mutex_
  std::mutex stop_mutex_;
  std::thread thread_;
  int64_t seen_expired_at_ms_ = 0;  // worker only
  // Worker only (or process()'s caller).
  runtime::LabelledCounters feedback_total_{
      "feedback_total", "Feedback reports taken in, by feedback type", "feedback_type"};
  runtime::LabelledCounters dropped_total_{
      "feedback_dropped_total",
      "Messages to the feedback listener logged and dropped: forged, unattributed or not acted on",
      "reason"};
};

}  // namespace ringmail::mta
