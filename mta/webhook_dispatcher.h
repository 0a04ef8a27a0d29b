// mta/webhook_dispatcher.h — webhooks[] (CONTRACT.md "Feedback,
// suppression and compliance in detail"): delivery-log records POSTed to
// each webhook's URL as JSON arrays of at most `batch` records, signed with
// X-Ringmail-Signature (policy/webhook_delivery.h), at least once and in
// order per webhook, each record with a stable event_id.
//
// Owns: each webhook's backlog in memory (every record not yet answered
// with a 2xx, oldest first), the event sequence, and one HTTP thread for
// all webhooks (libcurl's multi interface). The backlog's durable copy is
// the spool's control table (queue/webhook_records.h).
//
// Threads: as the spool writer's record journal (queue/record_journal.h),
// stage() and committed() run on the writer thread; they take a mutex only
// to read the filters and append to the backlogs, never wait for HTTP, so a
// dead or slow endpoint never slows reception or delivery. load(), start(),
// reload() and stop() are called by the daemon's main thread (reload() also
// from the admin API's, serialised by the daemon). The HTTP thread builds
// the POSTs and handles their outcomes.
//
// Durability: a record is written to the spool in the same commit as the
// result it describes (a Reception with its message, a Delivery with the
// recipient's new state), so a kill -9 loses a record only together with
// its result. A batch leaves the spool when its POST was answered 2xx: the
// deletions go to the spool writer and commit with its next transaction
// (a kill -9 before that commit makes the batch go again after the restart,
// with the same event ids). One POST per webhook at a time: the next batch
// waits until the previous one succeeded; failures (non-2xx, connection
// errors, timeouts) are retried after 1 s doubling to 5 min. Over
// `max_backlog` records the oldest are dropped (ringmail_webhook_dropped_total,
// a log line at most once a minute per webhook).
//
// Network: the HTTP thread talks to the configured URLs only (http or
// https, certificates verified, no redirects followed), with a connect
// timeout of 10 s and a transfer timeout of 30 s; answers are read and
// discarded. SECURITY: what the endpoint answers decides nothing but
// whether the batch is done; record texts come from the network (addresses)
// and are sent as JSON strings, invalid UTF-8 replaced.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "conf/config.h"
#include "policy/webhook_delivery.h"
#include "queue/record_journal.h"
#include "queue/spool.h"
#include "queue/spool_writer.h"
#include "queue/webhook_records.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {

struct WebhookDispatcherOptions {
  policy::WebhookRetrySchedule retry;
  runtime::Millis connect_timeout{10000};
  runtime::Millis transfer_timeout{30000};
};

class WebhookDispatcher final : public queue::RecordJournal {
 public:
  WebhookDispatcher(queue::Spool& spool, runtime::MetricsRegistry& metrics,
                    const runtime::Clock& clock, WebhookDispatcherOptions options = {});
  ~WebhookDispatcher() override;  // stop()
  WebhookDispatcher(const WebhookDispatcher&) = delete;
  WebhookDispatcher& operator=(const WebhookDispatcher&) = delete;

  // Before the spool writer's first commit: reads the event sequence and
  // the backlog of each configured webhook from the spool (values that do
  // not decode are dropped and logged; over max_backlog the oldest are
  // dropped); the backlog of a webhook no longer configured is deleted.
  void load(const std::vector<conf::Webhook>& webhooks);
  // The writer takes the deletions of what was posted; starts the HTTP
  // thread when there is a webhook (later, at the reload that adds one).
  bool start(queue::SpoolWriter* writer, std::string* error);
  // A changed list: a webhook of the same name keeps its backlog and takes
  // the new url, secret, events, batch and max_backlog from its next POST
  // (events: for records from now on); a new one starts empty (or with
  // what the spool still holds under its name); a removed one's POST in
  // flight is abandoned and its backlog deleted from the spool.
  void reload(const std::vector<conf::Webhook>& webhooks);
  // Ends the HTTP thread. A POST in flight is abandoned: its batch stays in
  // the spool and goes again after the restart. The deletions of what was
  // posted go to the writer, which must still run. Idempotent.
  void stop();

  // queue::RecordJournal (writer thread).
  bool wants_records() const override { return active_.load(std::memory_order_relaxed); }
  void stage(std::span<const nlohmann::ordered_json> records, queue::JournalBatch* batch) override;
  void committed(queue::JournalBatch batch) override;

  // The JSON texts waiting for `webhook`, oldest first (tests, any thread).
  std::vector<std::string> backlog(const std::string& webhook) const;

 private:
  struct Entry {
    uint64_t sequence = 0;
    std::shared_ptr<const std::string> json;
  };
  struct Transfer;
  struct Hook {
    conf::Webhook config;                            // guarded by mutex_
    std::deque<Entry> entries;                       // guarded by mutex_
    bool removed = false;                            // guarded by mutex_
    uint64_t dropped_unlogged = 0;                   // guarded by mutex_
    std::optional<runtime::SteadyTime> drop_logged;  // guarded by mutex_
    runtime::Counter* dropped = nullptr;
    runtime::Gauge* waiting = nullptr;
    // HTTP thread only.
    std::unique_ptr<Transfer> transfer;
    uint32_t failures = 0;
    runtime::SteadyTime next_attempt{};
  };
  // Which record types a webhook takes; an immutable copy for stage().
  struct Filter {
    std::string name;
    std::vector<std::string> events;  // empty: every type
  };

  std::shared_ptr<Hook> make_hook(const conf::Webhook& config);
  // mutex_ held: drops the oldest entries over max_backlog.
  void enforce_backlog(Hook& hook, runtime::SteadyTime now);
  void note_waiting(Hook& hook);
  void publish_filters();  // mutex_ held
  void start_thread();     // mutex_ held
  void wake();
  void run();
  void begin_post(Hook& hook);
  void finish_post(Hook& hook, int curl_code, long status);
  void abandon(Hook& hook);
  void flush_deletions();

  queue::Spool& spool_;
  runtime::MetricsRegistry& metrics_;
  const runtime::Clock& clock_;
  WebhookDispatcherOptions options_;
  std::atomic<bool> active_{false};

  // Writer thread only (and load(), before the writer runs).
  queue::WebhookSequence sequence_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Hook>> hooks_;  // guarded by mutex_
  std::vector<std::shared_ptr<Hook>> retired_;          // removed, for the HTTP thread
  std::shared_ptr<const std::vector<Filter>> filters_;  // guarded by mutex_
  std::vector<queue::ControlWrite> deletions_;          // guarded by mutex_
  queue::SpoolWriter* writer_ = nullptr;                // guarded by mutex_
  bool stopping_ = false;                               // guarded by mutex_
  bool started_ = false;                                // guarded by mutex_
  std::atomic<void*> multi_{nullptr};  // CURLM*, made with the thread, freed in the destructor
  std::thread thread_;
  std::mutex stop_mutex_;  // serialises stop()

  // HTTP thread only.
  runtime::LabelledCounters posts_{"webhook_posts_total", "Webhook POSTs, by webhook and result",
                                   std::vector<std::string>{"result", "webhook"}};
  std::mt19937_64 jitter_{std::random_device{}()};
};

}  // namespace ringmail::mta
