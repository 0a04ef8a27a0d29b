// queue/spool_writer.h — group commit: the one thread that writes the spool.
//
// Owns: the spool writer thread and the queue of commit requests. submit()
// may be called from any thread (shards); it holds a mutex only to push the
// request and wakes the writer. The writer takes everything that arrived
// (up to a bound), stores it with one Spool::store_batch() — one
// transaction, one fsync — and then calls each request's `done` on the
// writer thread. While a commit runs, new requests gather for the next one,
// so the batch grows with the load and throughput does not fall to one
// fsync per message.
//
// Durability: `done` with StoreStatus::ok is called only after the batch's
// commit returned (synced); that is when the session may say 250. Reception
// records go to the delivery log after the commit, never before, and before
// `done` runs. If a batch of several messages is refused (spool_full, or one
// bad message), its messages are retried one by one so that those that fit
// are still accepted.
//
// Space: new mail is refused (spool_full, 452 4.3.1) while taking it would
// leave less than the reserve (queue/spool_reserve.h), so that delivery
// results — which free space — can still be committed on a full disk.
// Delivery results are never dropped: a commit of them that fails is
// retried, in order and with backoff, until it succeeds; only at stop()
// are those still waiting reported failed (a restart repeats them).
// Refusals are logged once per episode, with a line when acceptance resumes.
//
// Delivery-log records that consumers (webhooks) keep in the spool go in
// the commit of the results they describe (queue/record_journal.h): the
// Reception records with their messages, a result's records with it.
//
// `done` runs on the writer thread and must be cheap (post to a shard).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "queue/record_journal.h"
#include "queue/spool.h"
#include "queue/spool_reserve.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"

namespace ringmail::queue {

class DeliveryLog;

struct SpoolWriterOptions {
  size_t max_batch_messages = 1024;
  uint64_t max_batch_bytes = 64ull << 20;  // content octets per transaction
  // queue_recipients{state="queued"} starts here (RecoverySummary::count(queued)).
  uint64_t initial_queued_recipients = 0;
  // How long recipient updates alone wait for new mail to share a commit.
  std::chrono::milliseconds updates_delay{20};
  // New mail is refused while it would leave less room than this (0: no
  // reserve; the daemon uses spool.reserve).
  uint64_t reserve_bytes = 0;
  // Delivery results that did not commit are tried again after this,
  // doubling up to the maximum while they keep failing.
  std::chrono::milliseconds results_retry_min{100};
  std::chrono::milliseconds results_retry_max{2000};
  // Wall time of Reception records (null: the system clock).
  const runtime::Clock* clock = nullptr;
  // While nothing else comes, a commit of nothing this often, so that
  // expired status records and dead letters are removed on an idle spool
  // too (Spool::commit; 0: only with other commits).
  std::chrono::milliseconds housekeeping_interval{60000};
};

class SpoolWriter {
 public:
  using Done = std::function<void(const SpoolMessage& message, StoreStatus status,
                                  const std::string& detail)>;

  // spool must outlive the writer; metrics and log may be null (tests).
  // The thread starts here.
  SpoolWriter(Spool& spool, runtime::MetricsRegistry* metrics, DeliveryLog* log,
              SpoolWriterOptions options = {});
  ~SpoolWriter();  // stop()
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // Any thread. After stop(), `done` is called at once, on the caller's
  // thread, with StoreStatus::failed.
  // delivery_report: a DSN the delivery engine made, which the reserve
  // lets through like a delivery result (its original is being deleted).
  // dead_letter_retry: a dead letter queued again by an operator
  // (queue/spool_retention.h): the reserve lets it through too (its dead
  // letter, as big, goes in the same commit), it gets no Reception record
  // and counts as queued again, not received. submit() sets the message's
  // origin to match.
  enum class Kind { new_mail, delivery_report, dead_letter_retry };
  void submit(std::unique_ptr<SpoolMessage> message, Done done, Kind kind = Kind::new_mail);

  // Recipient state changes and finished messages (the delivery engine's
  // results), committed in the same transaction as the next batch of
  // messages, so that delivery costs no fsync of its own. Any thread.
  // `done` (may be empty) runs on the writer thread after the commit.
  // `controls` (control-plane state that goes with these results, e.g. the
  // warm-up counts) are written in the same transaction as the updates.
  // `records`: the delivery-log records of these results, for the record
  // journal (written with them; ignored without a journal that wants them).
  // `additions` (complaints, unsubscribes) are counted into the campaign
  // and tenant statistics in the same transaction; like results, they are
  // retried until they commit.
  using UpdatesDone = std::function<void(StoreStatus status)>;
  void submit_updates(std::vector<RecipientUpdate> updates, std::vector<MessageId> finished,
                      UpdatesDone done = {}, std::vector<ControlWrite> controls = {},
                      std::vector<nlohmann::ordered_json> records = {},
                      std::vector<StatsAddition> additions = {});

  // Receives the messages of each commit, after their `done`, on the writer
  // thread, in one call per commit (the delivery engine schedules them; the
  // content comes along so that the first attempt need not read it back).
  // Set before the first submit(); must be cheap.
  using CommittedListener =
      std::function<void(std::vector<std::unique_ptr<SpoolMessage>> messages)>;
  void set_committed_listener(CommittedListener listener);
  // Where records go into the spool (null: nowhere). Set before the first
  // submit(); must outlive the writer's stop().
  void set_record_journal(RecordJournal* journal);

  // Commits everything submitted so far, then joins the thread. Idempotent.
  void stop();
  // False while new mail is refused for want of space (452 4.3.1). Any thread.
  bool accepting() const { return !refusing_.load(std::memory_order_relaxed); }

  // Counters for tests and benchmarks (any thread).
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }
  uint64_t committed_messages() const { return committed_.load(std::memory_order_relaxed); }
  // Recipient updates and message deletions waiting for a retry (any thread).
  uint64_t results_waiting() const {
    return results_waiting_count_.load(std::memory_order_relaxed);
  }

 private:
  struct Request {
    std::unique_ptr<SpoolMessage> message;
    Done done;
    Kind kind = Kind::new_mail;
  };
  struct UpdateRequest {
    std::vector<RecipientUpdate> updates;
    std::vector<MessageId> finished;
    UpdatesDone done;
    std::vector<ControlWrite> controls;           // committed with the last piece of `updates`
    std::vector<nlohmann::ordered_json> records;  // journaled with the last piece too
    std::vector<StatsAddition> additions;         // counted with the last piece too
    int failed_rounds = 0;  // retries in a row whose first piece failed, not for space
  };
  // A result that fails this many retries in a row for another reason than
  // space is given up (logged), so that it cannot hold up every later one.
  static constexpr int kMaxFailedRounds = 10;
  using SteadyClock = std::chrono::steady_clock;

  void run();
  void commit(std::vector<Request>& batch, std::vector<UpdateRequest>& updates);
  // `records` and `receptions` go to the record journal with the commit.
  StoreOutcome store(std::span<SpoolMessage* const> messages,
                     std::span<const RecipientUpdate> updates, std::span<const MessageId> finished,
                     std::span<const ControlWrite> controls = {},
                     std::span<const nlohmann::ordered_json> records = {},
                     std::span<const nlohmann::ordered_json> receptions = {},
                     std::span<const StatsAddition> additions = {});
  bool records_wanted() const;
  // The Reception records of batch[first, last) (empty when nobody wants
  // them), with per message the offset of its first: (*starts)[i - first],
  // and one more at the end.
  std::vector<nlohmann::ordered_json> receptions(const std::vector<Request>& batch, size_t first,
                                                 size_t last, int64_t now_ms,
                                                 std::vector<size_t>* starts) const;
  void complete(std::vector<Request>& batch, size_t first, size_t last, const StoreOutcome& outcome,
                std::span<const nlohmann::ordered_json> receptions);
  // Refuses (spool_full) the messages of `batch` that the reserve does not
  // admit, and removes them from it.
  void refuse_over_reserve(std::vector<Request>& batch);
  // The delivery results of a commit that failed, committed on their own,
  // in order and in smaller pieces when the spool is full; what still does
  // not fit goes back to wait for a retry.
  static void gather(const std::vector<UpdateRequest>& requests,
                     std::vector<RecipientUpdate>* updates, std::vector<MessageId>* finished,
                     std::vector<ControlWrite>* controls,
                     std::vector<nlohmann::ordered_json>* records,
                     std::vector<StatsAddition>* additions);
  void commit_results_apart(std::vector<UpdateRequest>& requests);
  bool commit_in_pieces(UpdateRequest& request, StoreOutcome* last);
  void results_committed(std::vector<UpdateRequest>& requests, size_t count);
  void wait_for_retry(std::vector<UpdateRequest> requests, const StoreOutcome& why);
  void note_refused(uint64_t count, const std::string& detail);
  void note_accepted();
  void publish_space(CountFreePages count);
  const runtime::Clock& clock() const {
    return options_.clock ? *options_.clock : runtime::system_clock();
  }

  Spool& spool_;
  runtime::MetricsRegistry* metrics_;
  DeliveryLog* log_;
  SpoolWriterOptions options_;

  runtime::Histogram* commit_seconds_ = nullptr;
  runtime::Gauge* queued_recipients_ = nullptr;
  runtime::Counter* spool_full_total_ = nullptr;
  runtime::Gauge* available_bytes_ = nullptr;
  runtime::Gauge* accepting_ = nullptr;
  std::atomic<bool> refusing_{false};
  runtime::Gauge* results_waiting_ = nullptr;
  runtime::LabelledCounters received_{
      // writer thread only
      "messages_received_total", "Messages accepted and committed to the spool, by listener",
      "listener"};

  // Writer thread only.
  SpoolReserve reserve_;
  bool refusing_episode_ = false;  // since the first refusal, until a message commits again
  uint64_t refused_in_episode_ = 0;
  SteadyClock::time_point refusing_since_{};
  bool results_stuck_ = false;  // delivery results wait for a retry
  SteadyClock::time_point results_stuck_since_{};
  std::chrono::milliseconds results_backoff_{0};
  SteadyClock::time_point space_published_{};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Request> pending_;                // guarded by mutex_
  std::vector<UpdateRequest> pending_updates_;  // guarded by mutex_
  CommittedListener listener_;
  RecordJournal* journal_ = nullptr;  // set before the first submit
  bool stopping_ = false;             // guarded by mutex_
  // Before this, waiting delivery results are not tried again; guarded by mutex_.
  SteadyClock::time_point results_retry_at_{};
  std::mutex stop_mutex_;  // serialises stop()
  std::thread thread_;

  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> results_waiting_count_{0};
};

}  // namespace ringmail::queue
