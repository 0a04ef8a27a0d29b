#include "queue/spool_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <iterator>
#include <string_view>

#include "queue/delivery_log.h"
#include "runtime/metrics_registry.h"

namespace ringmail::queue {
namespace {}  // namespace

SpoolWriter::SpoolWriter(Spool& spool, runtime::MetricsRegistry* metrics, DeliveryLog* log,
                         SpoolWriterOptions options)
    : spool_(spool),
      metrics_(metrics),
      log_(log),
      options_(options),
      reserve_(options.reserve_bytes),
      results_backoff_(options.results_retry_min) {
  if (options_.max_batch_messages == 0) options_.max_batch_messages = 1;
  if (metrics_) {
    commit_seconds_ = &metrics_->histogram(
        "spool_commit_seconds", "Time to commit one spool transaction (one fsync), per batch", {},
        runtime::latency_buckets());
    queued_recipients_ = &metrics_->gauge("queue_recipients", "Recipients in the spool by state",
                                          {{"state", "queued"}});
    queued_recipients_->set(static_cast<int64_t>(options_.initial_queued_recipients));
    spool_full_total_ = &metrics_->counter(
        "spool_full_total", "Messages refused because the spool (map or disk) was full");
    available_bytes_ = &metrics_->gauge(
        "spool_available_bytes",
        "Room for new spool records: LMDB free pages plus what the map and filesystem allow");
    accepting_ = &metrics_->gauge(
        "spool_accepting", "1 while the spool takes new mail, 0 while it refuses it as full");
    accepting_->set(1);
    results_waiting_ = &metrics_->gauge(
        "spool_results_waiting",
        "Delivery results (recipient updates, deletions) waiting to be committed again");
  }
  publish_space(CountFreePages::yes);
  thread_ = std::thread([this] { run(); });
}

SpoolWriter::~SpoolWriter() { stop(); }

void SpoolWriter::submit(std::unique_ptr<SpoolMessage> message, Done done, Kind kind) {
  message->origin =
      kind == Kind::dead_letter_retry ? MessageOrigin::dead_letter_retry : MessageOrigin::received;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      pending_.push_back(Request{std::move(message), std::move(done), kind});
      wake_.notify_one();
      return;
    }
  }
  done(*message, StoreStatus::failed, "spool writer is stopped");
}

void SpoolWriter::submit_updates(std::vector<RecipientUpdate> updates,
                                 std::vector<MessageId> finished, UpdatesDone done,
                                 std::vector<ControlWrite> controls,
                                 std::vector<nlohmann::ordered_json> records,
                                 std::vector<StatsAddition> additions) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      // Only the first of a batch wakes the writer: the rest join it while
      // it waits for new mail to share the commit with (one wake-up, not
      // one per delivered message).
      const bool first = pending_updates_.empty();
      pending_updates_.push_back(UpdateRequest{std::move(updates), std::move(finished),
                                               std::move(done), std::move(controls),
                                               std::move(records), std::move(additions)});
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

void SpoolWriter::set_record_journal(RecordJournal* journal) {
  std::lock_guard lock(mutex_);  // the writer thread reads it after taking the lock
  journal_ = journal;
}

bool SpoolWriter::records_wanted() const {
  return log_ != nullptr || (journal_ != nullptr && journal_->wants_records());
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
      // Delivery results that failed wait for their retry time; new mail
      // does not bring them forward (on a full disk it is refused anyway).
      auto results_due = [&] {
        return !pending_updates_.empty() && SteadyClock::now() >= results_retry_at_;
      };
      bool housekeeping = false;
      while (!(stopping_ || !pending_.empty() || !backlog.empty() || results_due())) {
        if (!pending_updates_.empty()) {
          wake_.wait_until(lock, results_retry_at_);
        } else if (options_.housekeeping_interval.count() > 0) {
          if (wake_.wait_for(lock, options_.housekeeping_interval) == std::cv_status::timeout) {
            housekeeping = pending_.empty() && pending_updates_.empty() && !stopping_;
            if (housekeeping) break;
          }
        } else {
          wake_.wait(lock);
        }
      }
      if (housekeeping) {
        lock.unlock();
        // Not a batch: it stores nothing and usually opens no transaction.
        StoreOutcome outcome = spool_.commit({}, {}, {});
        if (!outcome.ok()) spdlog::warn("spool: cleanup of expired records: {}", outcome.detail);
        continue;
      }
      if (pending_.empty() && backlog.empty() && !stopping_) {
        // Only delivery results: they need no prompt fsync (delivery is at
        // least once), so give them a moment to share the next commit of
        // new mail instead of paying for one of their own.
        wake_.wait_for(lock, options_.updates_delay,
                       [&] { return stopping_ || !pending_.empty(); });
      }
      incoming.swap(pending_);
      if (stopping_ || results_due()) updates.swap(pending_updates_);
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
    publish_space(CountFreePages::yes);
  }
}

StoreOutcome SpoolWriter::store(std::span<SpoolMessage* const> messages,
                                std::span<const RecipientUpdate> updates,
                                std::span<const MessageId> finished,
                                std::span<const ControlWrite> controls,
                                std::span<const nlohmann::ordered_json> records,
                                std::span<const nlohmann::ordered_json> receptions,
                                std::span<const StatsAddition> additions) {
  JournalBatch journaled;
  std::vector<ControlWrite> with_records;
  if (journal_ && (!records.empty() || !receptions.empty())) {
    journal_->stage(records, &journaled);
    journal_->stage(receptions, &journaled);
    if (!journaled.controls.empty()) {
      with_records.reserve(controls.size() + journaled.controls.size());
      with_records.assign(controls.begin(), controls.end());
      std::move(journaled.controls.begin(), journaled.controls.end(),
                std::back_inserter(with_records));
      journaled.controls.clear();
      controls = with_records;
    }
  }
  const auto started = std::chrono::steady_clock::now();
  StoreOutcome outcome = spool_.commit(messages, updates, finished, controls, additions);
  if (commit_seconds_) {
    commit_seconds_->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  if (outcome.ok() && !journaled.empty()) journal_->committed(std::move(journaled));
  return outcome;
}

std::vector<nlohmann::ordered_json> SpoolWriter::receptions(const std::vector<Request>& batch,
                                                            size_t first, size_t last,
                                                            int64_t now_ms,
                                                            std::vector<size_t>* starts) const {
  std::vector<nlohmann::ordered_json> out;
  const bool wanted = records_wanted();
  starts->clear();
  for (size_t i = first; i < last; ++i) {
    starts->push_back(out.size());
    const SpoolMessage& m = *batch[i].message;
    // A retried dead letter was received once, when it first came.
    if (!wanted || batch[i].kind == Kind::dead_letter_retry) continue;
    for (size_t r = 0; r < m.envelope.recipients.size(); ++r)
      out.push_back(reception_record(m, r, now_ms));
  }
  starts->push_back(out.size());
  return out;
}

void SpoolWriter::commit(std::vector<Request>& batch, std::vector<UpdateRequest>& update_requests) {
  refuse_over_reserve(batch);
  std::vector<SpoolMessage*> messages;
  messages.reserve(batch.size());
  for (Request& request : batch) messages.push_back(request.message.get());
  std::vector<RecipientUpdate> updates;
  std::vector<MessageId> finished;
  std::vector<ControlWrite> controls;
  std::vector<nlohmann::ordered_json> records;
  std::vector<StatsAddition> additions;
  // Copied: a failed commit retries them.
  gather(update_requests, &updates, &finished, &controls, &records, &additions);
  if (messages.empty() && update_requests.empty()) return;
  std::vector<size_t> starts;
  const std::vector<nlohmann::ordered_json> received =
      receptions(batch, 0, batch.size(), clock().unix_ms(), &starts);

  StoreOutcome outcome = store(messages, updates, finished, controls, records, received, additions);
  if (!outcome.ok() && !update_requests.empty()) {
    // Keep the delivery results apart from whatever sank the batch.
    if (!batch.empty()) {
      spdlog::debug("spool: commit of {} messages with {} updates refused ({}: {})", batch.size(),
                    updates.size(), to_string(outcome.status), outcome.detail);
    }
    commit_results_apart(update_requests);
    if (batch.empty()) return;
    outcome = store(messages, {}, {}, {}, {}, received);
  } else {
    results_committed(update_requests, update_requests.size());
  }
  if (batch.empty()) return;
  if (outcome.ok() || batch.size() == 1) {
    complete(batch, 0, batch.size(), outcome, received);
    return;
  }
  // One oversized or bad message must not sink the others of its batch.
  spdlog::warn("spool: batch of {} messages refused ({}: {}); retrying one by one", batch.size(),
               to_string(outcome.status), outcome.detail);
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto own = std::span(received).subspan(starts[i], starts[i + 1] - starts[i]);
    const StoreOutcome single = store(std::span(messages).subspan(i, 1), {}, {}, {}, {}, own);
    complete(batch, i, i + 1, single, own);
  }
}

void SpoolWriter::refuse_over_reserve(std::vector<Request>& batch) {
  if (batch.empty() || reserve_.reserve_bytes() == 0) return;
  uint64_t need = 0;
  for (const Request& request : batch) {
    need += spool_footprint(request.message->content.size(),
                            request.message->envelope.recipients.size());
  }
  SpoolSpace space = spool_.space(CountFreePages::no);
  if (!reserve_.clearly_fits(space, need)) space = spool_.space(CountFreePages::yes);
  uint64_t available = space.available_bytes();
  std::vector<Request> admitted;
  std::vector<Request> refused;
  admitted.reserve(batch.size());
  for (Request& request : batch) {
    const uint64_t bytes = spool_footprint(request.message->content.size(),
                                           request.message->envelope.recipients.size());
    if (request.kind == Kind::delivery_report || request.kind == Kind::dead_letter_retry) {
      available -= std::min(available, bytes);  // inside the reserve: it is kept for these
      admitted.push_back(std::move(request));
    } else if (reserve_.admit(available, bytes)) {
      available -= bytes;
      admitted.push_back(std::move(request));
    } else {
      refused.push_back(std::move(request));
    }
  }
  batch = std::move(admitted);
  if (refused.empty()) return;
  const StoreOutcome outcome{
      StoreStatus::spool_full,
      fmt::format("spool reserve reached: {} bytes of room, {} kept for delivery results",
                  space.available_bytes(), reserve_.reserve_bytes())};
  complete(refused, 0, refused.size(), outcome, {});
}

void SpoolWriter::gather(const std::vector<UpdateRequest>& requests,
                         std::vector<RecipientUpdate>* updates, std::vector<MessageId>* finished,
                         std::vector<ControlWrite>* controls,
                         std::vector<nlohmann::ordered_json>* records,
                         std::vector<StatsAddition>* additions) {
  // A key written by many requests (a warm-up count, once per delivery
  // event) is written once, with its last value, in request order.
  std::unordered_map<std::string_view, size_t> written;
  for (const UpdateRequest& request : requests) {
    updates->insert(updates->end(), request.updates.begin(), request.updates.end());
    finished->insert(finished->end(), request.finished.begin(), request.finished.end());
    records->insert(records->end(), request.records.begin(), request.records.end());
    additions->insert(additions->end(), request.additions.begin(), request.additions.end());
    for (const ControlWrite& w : request.controls) {
      auto [it, fresh] = written.try_emplace(w.key, controls->size());
      if (fresh) {
        controls->push_back(w);
      } else {
        (*controls)[it->second].value = w.value;
      }
    }
  }
}

void SpoolWriter::commit_results_apart(std::vector<UpdateRequest>& requests) {
  std::vector<RecipientUpdate> updates;
  std::vector<MessageId> finished;
  std::vector<ControlWrite> controls;
  std::vector<nlohmann::ordered_json> records;
  std::vector<StatsAddition> additions;
  gather(requests, &updates, &finished, &controls, &records, &additions);
  StoreOutcome last = store({}, updates, finished, controls, records, {}, additions);
  if (last.ok()) {
    results_committed(requests, requests.size());
    return;
  }
  // Smaller commits may still succeed: on a full spool each one that
  // deletes finished messages frees pages for the next, and a transaction
  // too large for LMDB fits in halves. Updates set a recipient's whole
  // state, so a piece committed twice does no harm.
  size_t committed = 0;
  while (committed < requests.size() && commit_in_pieces(requests[committed], &last)) ++committed;
  if (committed < requests.size() && last.status != StoreStatus::spool_full &&
      ++requests[committed].failed_rounds >= kMaxFailedRounds) {
    UpdateRequest& stuck = requests[committed];
    stuck.failed_rounds = 0;
    if (!stuck.updates.empty()) {
      const RecipientUpdate& u = stuck.updates.front();
      spdlog::error(
          "spool: giving up the result of recipient {} of {} after {} failed commits ({}); a "
          "restart repeats its delivery",
          u.index, u.id.value, kMaxFailedRounds, last.detail);
      stuck.updates.erase(stuck.updates.begin());
    } else if (!stuck.finished.empty()) {
      spdlog::error("spool: giving up deleting {} after {} failed commits ({})",
                    stuck.finished.front().value, kMaxFailedRounds, last.detail);
      stuck.finished.erase(stuck.finished.begin());
    } else if (!stuck.controls.empty() || !stuck.records.empty() || !stuck.additions.empty()) {
      spdlog::error(
          "spool: giving up writing {} control records ({}...), {} webhook records and {} "
          "statistics counts after {} failed commits ({})",
          stuck.controls.size(), stuck.controls.empty() ? "" : stuck.controls.front().key,
          stuck.records.size(), stuck.additions.size(), kMaxFailedRounds, last.detail);
      stuck.controls.clear();
      stuck.records.clear();
      stuck.additions.clear();
    }
  }
  results_committed(requests, committed);
  std::vector<UpdateRequest> rest(std::make_move_iterator(requests.begin() + long(committed)),
                                  std::make_move_iterator(requests.end()));
  if (!rest.empty()) wait_for_retry(std::move(rest), last);
}

bool SpoolWriter::commit_in_pieces(UpdateRequest& request, StoreOutcome* last) {
  size_t step = request.updates.size();
  while (!request.updates.empty()) {
    const size_t n = std::min(step, request.updates.size());
    const bool whole = n == request.updates.size();
    *last = store(
        {}, std::span(request.updates).first(n),
        whole ? std::span<const MessageId>(request.finished) : std::span<const MessageId>(),
        whole ? std::span<const ControlWrite>(request.controls) : std::span<const ControlWrite>(),
        whole ? std::span<const nlohmann::ordered_json>(request.records)
              : std::span<const nlohmann::ordered_json>(),
        {},
        whole ? std::span<const StatsAddition>(request.additions)
              : std::span<const StatsAddition>());
    if (last->ok()) {
      request.updates.erase(request.updates.begin(), request.updates.begin() + long(n));
      if (whole) {
        request.finished.clear();
        request.controls.clear();
        request.records.clear();
        request.additions.clear();
      }
      continue;
    }
    if (n == 1) return false;  // this one update is what fails
    step = (n + 1) / 2;
  }
  if (!request.finished.empty() || !request.controls.empty() || !request.records.empty() ||
      !request.additions.empty()) {
    *last =
        store({}, {}, request.finished, request.controls, request.records, {}, request.additions);
    if (!last->ok()) return false;
    request.finished.clear();
    request.controls.clear();
    request.records.clear();
    request.additions.clear();
  }
  return true;
}

void SpoolWriter::results_committed(std::vector<UpdateRequest>& requests, size_t count) {
  if (count > 0 && count == requests.size() && results_stuck_) {
    {
      std::lock_guard lock(mutex_);
      results_retry_at_ = {};  // what arrived meanwhile need not wait any more
    }
    spdlog::info("spool: delivery results committed again after {:.1f} s of retries",
                 std::chrono::duration<double>(SteadyClock::now() - results_stuck_since_).count());
    results_stuck_ = false;
    results_backoff_ = options_.results_retry_min;
    results_waiting_count_.store(0, std::memory_order_relaxed);
    if (results_waiting_) results_waiting_->set(0);
  }
  for (size_t i = 0; i < count; ++i) {
    if (requests[i].done) requests[i].done(StoreStatus::ok);
  }
}

void SpoolWriter::wait_for_retry(std::vector<UpdateRequest> requests, const StoreOutcome& why) {
  uint64_t waiting = 0;
  for (const UpdateRequest& request : requests)
    waiting += request.updates.size() + request.finished.size();
  std::unique_lock lock(mutex_);
  if (stopping_) {
    lock.unlock();
    spdlog::error(
        "spool: {} delivery results not committed at shutdown ({}); those recipients will be "
        "tried again after the restart",
        waiting, why.detail);
    for (UpdateRequest& request : requests) {
      if (request.done) request.done(why.status);
    }
    return;
  }
  // In front of whatever arrived meanwhile: results are applied in order.
  pending_updates_.insert(pending_updates_.begin(), std::make_move_iterator(requests.begin()),
                          std::make_move_iterator(requests.end()));
  results_retry_at_ = SteadyClock::now() + results_backoff_;
  lock.unlock();
  results_backoff_ = std::min(results_backoff_ * 2, options_.results_retry_max);
  results_waiting_count_.store(waiting, std::memory_order_relaxed);
  if (results_waiting_) results_waiting_->set(int64_t(waiting));
  if (!results_stuck_) {
    results_stuck_ = true;
    results_stuck_since_ = SteadyClock::now();
    spdlog::warn(
        "spool: {} delivery results could not be committed ({}: {}); retrying until they are",
        waiting, to_string(why.status), why.detail);
  }
}

void SpoolWriter::note_refused(uint64_t count, const std::string& detail) {
  if (spool_full_total_) spool_full_total_->inc(count);
  refused_in_episode_ += count;
  if (refusing_episode_) return;
  refusing_episode_ = true;
  refusing_since_ = SteadyClock::now();
  refusing_.store(true, std::memory_order_relaxed);
  if (accepting_) accepting_->set(0);
  spdlog::warn("spool full: refusing new mail with 452 4.3.1 until delivery frees space ({})",
               detail);
}

void SpoolWriter::note_accepted() {
  if (!refusing_episode_) return;
  refusing_episode_ = false;
  refusing_.store(false, std::memory_order_relaxed);
  if (accepting_) accepting_->set(1);
  spdlog::info("spool: accepting new mail again after refusing {} message(s) for {:.1f} s",
               refused_in_episode_,
               std::chrono::duration<double>(SteadyClock::now() - refusing_since_).count());
  refused_in_episode_ = 0;
}

void SpoolWriter::publish_space(CountFreePages count) {
  if (!available_bytes_) return;
  const auto now = SteadyClock::now();
  if (now - space_published_ < std::chrono::seconds(1)) return;
  space_published_ = now;
  available_bytes_->set(
      int64_t(std::min<uint64_t>(spool_.space(count).available_bytes(), uint64_t(INT64_MAX))));
}

void SpoolWriter::complete(std::vector<Request>& batch, size_t first, size_t last,
                           const StoreOutcome& outcome,
                           std::span<const nlohmann::ordered_json> receptions) {
  switch (outcome.status) {
    case StoreStatus::ok: {
      note_accepted();
      committed_.fetch_add(last - first, std::memory_order_relaxed);
      for (size_t i = first; i < last; ++i) {
        const SpoolMessage& m = *batch[i].message;
        // A retried dead letter was received once, when it first came.
        const bool received = batch[i].kind != Kind::dead_letter_retry;
        if (metrics_ && received) received_.get(*metrics_, m.meta.listener).inc();
        int64_t queued = 0;
        for (size_t r = 0; r < m.envelope.recipients.size(); ++r) {
          if (m.envelope.recipients[r].state == RecipientState::queued) ++queued;
        }
        if (queued_recipients_) queued_recipients_->add(queued);
      }
      if (log_ && !receptions.empty()) log_->write_all(receptions);
      break;
    }
    case StoreStatus::spool_full:
      reserve_.spool_reported_full();
      note_refused(last - first, outcome.detail);
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

}  // namespace ringmail::queue
