#include "queue/spool_writer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>

#include "admin-api/metrics_registry.h"
#include "queue/delivery_log.h"

namespace ringmail::queue {
namespace {

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

SpoolWriter::SpoolWriter(Spool& spool, admin::MetricsRegistry* metrics, DeliveryLog* log,
                         SpoolWriterOptions options)
    : spool_(spool), metrics_(metrics), log_(log), options_(options) {
  if (options_.max_batch_messages == 0) options_.max_batch_messages = 1;
  if (metrics_) {
    commit_seconds_ = &metrics_->histogram(
        "spool_commit_seconds", "Time to commit one spool transaction (one fsync), per batch", {},
        admin::latency_buckets());
    queued_recipients_ = &metrics_->gauge("queue_recipients", "Recipients in the spool by state",
                                          {{"state", "queued"}});
    queued_recipients_->set(static_cast<int64_t>(options_.initial_queued_recipients));
    spool_full_total_ = &metrics_->counter(
        "spool_full_total", "Messages refused because the spool (map or disk) was full");
  }
  thread_ = std::thread([this] { run(); });
}

SpoolWriter::~SpoolWriter() { stop(); }

void SpoolWriter::submit(std::unique_ptr<SpoolMessage> message, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Request{std::move(message), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(*message, StoreStatus::failed, "spool writer is stopped");
}

void SpoolWriter::submit_updates(std::vector<RecipientUpdate> updates,
                                 std::vector<MessageId> finished, UpdatesDone done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // Only the first of a batch wakes the writer: the rest join it while
      // it waits for new mail to share the commit with (one wake-up, not
      // one per delivered message).
      const bool first = pending_updates_.empty();
      pending_updates_.push_back(
          UpdateRequest{std::move(updates), std::move(finished), std::move(done)});
      if (first) wake_.notify_one();
      return;
    }
  }
  if (done) done(StoreStatus::failed);
}

void SpoolWriter::set_committed_listener(CommittedListener listener) {
  std::lock_guard lock(mutex_);
  listener_ = std::move(listener);
}

void SpoolWriter::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SpoolWriter::run() {
  std::deque<Request> backlog;  // taken from pending_, not yet committed
  std::vector<Request> incoming;
  std::vector<Request> batch;
  std::vector<UpdateRequest> updates;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stopping_ || !pending_.empty() || !backlog.empty() || !pending_updates_.empty();
      });
      if (pending_.empty() && backlog.empty() && !stopping_) {
        // Only delivery results: they need no prompt fsync (delivery is at
        // least once), so give them a moment to share the next commit of
        // new mail instead of paying for one of their own.
        wake_.wait_for(lock, options_.updates_delay,
                       [&] { return stopping_ || !pending_.empty(); });
      }
      incoming.swap(pending_);
      updates.swap(pending_updates_);
      if (incoming.empty() && backlog.empty() && updates.empty() && stopping_) return;
    }
    for (Request& request : incoming) backlog.push_back(std::move(request));
    incoming.clear();

    uint64_t bytes = 0;
    while (!backlog.empty() && batch.size() < options_.max_batch_messages) {
      const uint64_t size = backlog.front().message->content.size();
      if (!batch.empty() && bytes + size > options_.max_batch_bytes) break;
      bytes += size;
      batch.push_back(std::move(backlog.front()));
      backlog.pop_front();
    }
    commit(batch, updates);
    batch.clear();
    updates.clear();
  }
}

StoreOutcome SpoolWriter::store(std::span<SpoolMessage* const> messages,
                                std::span<const RecipientUpdate> updates,
                                std::span<const MessageId> finished) {
  const auto started = std::chrono::steady_clock::now();
  StoreOutcome outcome = spool_.commit(messages, updates, finished);
  if (commit_seconds_) {
    commit_seconds_->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  return outcome;
}

void SpoolWriter::commit(std::vector<Request>& batch, std::vector<UpdateRequest>& update_requests) {
  std::vector<SpoolMessage*> messages;
  messages.reserve(batch.size());
  for (Request& request : batch) messages.push_back(request.message.get());
  std::vector<RecipientUpdate> updates;
  std::vector<MessageId> finished;
  for (const UpdateRequest& request : update_requests) {  // copied: a failed commit retries them
    updates.insert(updates.end(), request.updates.begin(), request.updates.end());
    finished.insert(finished.end(), request.finished.begin(), request.finished.end());
  }
  auto updates_done = [&](StoreStatus status) {
    for (UpdateRequest& request : update_requests) {
      if (request.done) request.done(status);
    }
  };

  StoreOutcome outcome = store(messages, updates, finished);
  if (!outcome.ok() && !updates.empty()) {
    // Keep the delivery results apart from whatever sank the batch.
    spdlog::warn("spool: commit with {} updates refused ({}: {}); committing them apart",
                 updates.size(), to_string(outcome.status), outcome.detail);
    const StoreOutcome alone = store({}, updates, finished);
    if (alone.ok()) {
      updates_done(alone.status);
    } else {
      // Updates are idempotent: try them again with the next commits, a few
      // times, before giving up (then a restart repeats those deliveries).
      std::vector<UpdateRequest> again;
      for (UpdateRequest& request : update_requests) {
        if (++request.attempts < kUpdateAttempts) {
          again.push_back(std::move(request));
        } else {
          spdlog::error("spool: {} recipient updates not committed after {} attempts: {}",
                        request.updates.size(), kUpdateAttempts, alone.detail);
          if (request.done) request.done(alone.status);
        }
      }
      if (!again.empty()) {
        std::lock_guard lock(mutex_);
        for (UpdateRequest& request : again) pending_updates_.push_back(std::move(request));
      }
    }
    if (batch.empty()) return;
    outcome = store(messages, {}, {});
  } else {
    updates_done(outcome.status);
  }
  if (batch.empty()) return;
  if (outcome.ok() || batch.size() == 1) {
    complete(batch, 0, batch.size(), outcome, unix_now_ms());
    return;
  }
  // One oversized or bad message must not sink the others of its batch.
  spdlog::warn("spool: batch of {} messages refused ({}: {}); retrying one by one", batch.size(),
               to_string(outcome.status), outcome.detail);
  for (size_t i = 0; i < batch.size(); ++i) {
    const StoreOutcome single = store(std::span(messages).subspan(i, 1), {}, {});
    complete(batch, i, i + 1, single, unix_now_ms());
  }
}

void SpoolWriter::complete(std::vector<Request>& batch, size_t first, size_t last,
                           const StoreOutcome& outcome, int64_t now_ms) {
  switch (outcome.status) {
    case StoreStatus::ok: {
      committed_.fetch_add(last - first, std::memory_order_relaxed);
      std::vector<nlohmann::ordered_json> records;
      for (size_t i = first; i < last; ++i) {
        const SpoolMessage& m = *batch[i].message;
        if (metrics_) received_counter(m.meta.listener)->inc();
        int64_t queued = 0;
        for (size_t r = 0; r < m.envelope.recipients.size(); ++r) {
          if (m.envelope.recipients[r].state == RecipientState::queued) ++queued;
          if (log_) records.push_back(reception_record(m, r, now_ms));
        }
        if (queued_recipients_) queued_recipients_->add(queued);
      }
      if (log_ && !records.empty()) log_->write_all(records);
      break;
    }
    case StoreStatus::spool_full:
      if (spool_full_total_) spool_full_total_->inc(last - first);
      spdlog::warn("spool full: refused {} message(s): {}", last - first, outcome.detail);
      break;
    case StoreStatus::failed:
      spdlog::error("spool: store failed for {} message(s): {}", last - first, outcome.detail);
      break;
  }
  for (size_t i = first; i < last; ++i) {
    batch[i].done(*batch[i].message, outcome.status, outcome.detail);
  }
  if (outcome.ok()) {
    CommittedListener listener;
    {
      std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) {
      std::vector<std::unique_ptr<SpoolMessage>> committed;
      committed.reserve(last - first);
      for (size_t i = first; i < last; ++i) committed.push_back(std::move(batch[i].message));
      listener(std::move(committed));
    }
  }
}

admin::Counter* SpoolWriter::received_counter(const std::string& listener) {
  auto it = received_by_listener_.find(listener);
  if (it != received_by_listener_.end()) return it->second;
  admin::Counter* counter = &metrics_->counter(
      "messages_received_total", "Messages accepted and committed to the spool, by listener",
      {{"listener", listener}});
  received_by_listener_.emplace(listener, counter);
  return counter;
}

}  // namespace ringmail::queue
