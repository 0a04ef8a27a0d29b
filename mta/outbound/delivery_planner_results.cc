// The planner's results: what each reply means for a recipient (delivered,
// deferred with its next attempt, bounced, expired), the spool updates,
// delivery-log records, metric deltas and DSNs that follow.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "mta/outbound/delivery_planner.h"
#include "queue/delivery_log.h"
#include "queue/spool_codec.h"

namespace ringmail::mta {

void DeliveryPlanner::fail_job(queue::JobId id, const SmtpReply& reply, const std::string& mx,
                               PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  // The envelope is enough for the records; a DSN reads the body itself.
  std::shared_ptr<const queue::SpoolMessage> message = message_for(*job, /*content=*/false);
  std::vector<SmtpReply> replies(job->recipients.size(), reply);
  finish_job(id, message.get(), replies, site(job->site), mx, "", out);
}

void DeliveryPlanner::expire_job(queue::JobId id, PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  std::shared_ptr<const queue::SpoolMessage> message = message_for(*job, /*content=*/true);
  const SmtpReply reply = SmtpReply::made_here(
      0, "4.4.7",
      "message expired: not delivered within " +
          std::to_string(config_->delivery.retry.max_age.count() / 1000) + " s",
      conf::BounceCategory::MessageExpired);
  // A zero code is transient: finish_job turns it into an expiration since
  // the next attempt would be past max_age.
  std::vector<SmtpReply> replies(job->recipients.size(), reply);
  finish_job(id, message.get(), replies, site(job->site), "", "", out);
}

// Every recipient of the job has its reply: record each, update the spool,
// reschedule what is deferred, report what failed for good.
void DeliveryPlanner::finish_job(queue::JobId id, const queue::SpoolMessage* message,
                                 const std::vector<SmtpReply>& replies, const SiteState* where,
                                 const std::string& mx, const std::string& tls, PlannerOutput& out,
                                 const std::vector<bool>* bounce_now) {
  static const std::string kNone;
  const std::string& site_name = where ? where->key.site : kNone;
  const std::string& source = where ? where->source.name : EgressChoice::kDefault;
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  const int64_t now = unix_ms();
  std::vector<queue::JobRecipient> deferred;
  std::vector<queue::DsnRecipient> dsn;
  std::optional<runtime::WallTime> next_due;
  uint32_t final_count = 0;
  std::uniform_real_distribution<double> jitter(0.9, 1.1);

  for (size_t k = 0; k < job->recipients.size() && k < replies.size(); ++k) {
    const queue::JobRecipient& r = job->recipients[k];
    const SmtpReply& reply = replies[k];
    const uint32_t attempt = r.attempts + 1;
    const char* type = nullptr;
    std::optional<conf::BounceCategory> category;
    queue::RecipientUpdate update{job->id, r.index, queue::RecipientState::delivered, attempt, 0};
    update.response = queue::RecipientResponse{reply.code, reply.enhanced, reply.text};
    if (reply.positive()) {
      type = "Delivery";
      out.metrics.delivered_by_site.add(site_name);
      ++totals_.delivered;
      if (where) ++site_counts_[where->name].delivered;
    } else {
      category = reply.category ? *reply.category
                                : classifier_.classify(reply.code, reply.enhanced, reply.text);
      if (reply.permanent() || (bounce_now && k < bounce_now->size() && (*bounce_now)[k])) {
        type = "Bounce";
        update.state = queue::RecipientState::bounced;
      } else {
        const runtime::WallTime next =
            queue::next_attempt_time(wall(), attempt, retry_intervals_, jitter(random_));
        if (next - job->received > config_->delivery.retry.max_age) {
          type = "Expiration";
          category = conf::BounceCategory::MessageExpired;
          update.state = queue::RecipientState::expired;
        } else {
          type = "TransientFailure";
          update.state = queue::RecipientState::deferred;
          update.next_attempt_unix_ms = runtime::to_unix_ms(next);
          next_due = next_due ? std::min(*next_due, next) : next;
          deferred.push_back(queue::JobRecipient{r.index, attempt, true});
          out.metrics.deferred_by_site.add(site_name);
          ++totals_.deferred;
        }
      }
      if (update.state == queue::RecipientState::bounced && message) {
        suppress_after_bounce(*message, r.index, *category, reply, out);
      }
      if (update.state != queue::RecipientState::deferred) {
        update.category = category;
        const std::string name(conf::bounce_category_name(*category));
        out.metrics.bounced_by_category.add(name);
        ++totals_.bounced_by_category[name];
        ++(update.state == queue::RecipientState::expired ? totals_.expired : totals_.bounced);
        if (where) ++site_counts_[where->name].bounced;
      }
    }
    // Gauges: leave the state the spool had.
    if (update.state == queue::RecipientState::deferred) {
      if (!r.was_deferred) {
        out.metrics.queued -= 1;
        out.metrics.deferred += 1;
      }
    } else {
      ++final_count;
      (r.was_deferred ? out.metrics.deferred : out.metrics.queued) -= 1;
    }
    out.updates.push_back(update);

    if (message && records_wanted_) {
      queue::AttemptRecord record;
      record.type = type;
      record.now_unix_ms = now;
      record.message = message;
      record.recipient_index = r.index;
      record.site = site_name;
      record.mx = mx;
      record.source = source;
      record.code = reply.code;
      record.enhanced = reply.enhanced;
      record.text = reply.text;
      record.attempt = attempt;
      if (category) record.category = conf::bounce_category_name(*category);
      record.tls = tls;
      record.next_attempt_unix_ms = update.next_attempt_unix_ms;
      out.records.push_back(queue::attempt_record(record));
    }
    if (message && (update.state == queue::RecipientState::bounced ||
                    update.state == queue::RecipientState::expired)) {
      const queue::Recipient& rcpt = message->envelope.recipients[r.index];
      if (config_->delivery.generate_dsn &&
          queue::wants_dsn(message->envelope.sender, rcpt, "failed")) {
        queue::DsnRecipient d;
        d.address = rcpt.address;
        d.dsn_orcpt = rcpt.dsn_orcpt;
        d.action = "failed";
        d.status = update.state == queue::RecipientState::expired
                       ? "4.4.7"
                       : (reply.enhanced.empty() ? "5.0.0" : reply.enhanced);
        d.diagnostic = reply.local ? reply.text : reply.to_string();
        d.remote_mta = reply.local ? "" : mx;
        d.last_attempt_unix_ms = now;
        dsn.push_back(std::move(d));
      }
    }
  }

  const std::string message_id = job->id.value;
  if (!dsn.empty() && message) make_dsn(*message, std::move(dsn), out);
  const bool any_deferred = !deferred.empty();
  if (any_deferred) {
    job->recipients = std::move(deferred);
    job->last_site = job->site;
    job->site.clear();       // routed afresh at its next attempt
    job->rate_paid = false;  // its next start pays its tokens again
    scheduler_.reschedule(id, *next_due);
  } else {
    scheduler_.remove(id);
  }
  job = nullptr;
  bool finished = false;
  if (final_count > 0) {
    auto it = active_recipients_.find(message_id);
    if (it != active_recipients_.end()) {
      it->second -= std::min(it->second, final_count);
      if (it->second == 0) {
        active_recipients_.erase(it);
        finished = true;
        out.finished.push_back(queue::MessageId{message_id});
      }
    }
  }
  // A deferred message's body is read back from the spool at its next
  // attempt rather than held in memory meanwhile.
  if (finished || any_deferred) message_done(message_id);
  if (finished) {
    // Remembered for a while (commits take milliseconds), without a
    // confirmation per message: a rescan must not schedule it again.
    if (recently_finished_.insert(message_id).second) {
      recently_finished_order_.emplace_back(steady(), message_id);
    }
  }
}

void DeliveryPlanner::cancel_job(queue::JobId id, PlannerOutput& out) {
  const queue::Job* job = scheduler_.find(id);
  if (!job) return;
  const size_t n = job->recipients.size();
  totals_.cancelled += n;
  out.metrics.cancelled += n;
  finish_by_operator(id, queue::RecipientState::cancelled, "Cancelled",
                     "campaign " + job->campaign + " was cancelled", out);
}

void DeliveryPlanner::finish_by_operator(queue::JobId id, queue::RecipientState state,
                                         const char* type, const std::string& reason,
                                         PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  std::shared_ptr<const queue::SpoolMessage> message = message_for(*job, /*content=*/false);
  const int64_t now = unix_ms();
  const std::string message_id = job->id.value;
  // A job waiting for its retry has no site now: its record names the site
  // of its last attempt (the one a bounce by site matched).
  const std::string& site_key = job->site.empty() ? job->last_site : job->site;
  const SiteState* where = site_key.empty() ? nullptr : site(site_key);
  uint32_t count = 0;
  for (const queue::JobRecipient& r : job->recipients) {
    // The attempt count stays: the operator's decision is not an attempt.
    queue::RecipientUpdate update{job->id, r.index, state, r.attempts, 0};
    update.response.text = reason;
    out.updates.push_back(std::move(update));
    (r.was_deferred ? out.metrics.deferred : out.metrics.queued) -= 1;
    ++count;
    if (message && records_wanted_) {
      queue::AttemptRecord record;
      record.type = type;
      record.now_unix_ms = now;
      record.message = message.get();
      record.recipient_index = r.index;
      record.site = where ? std::string_view(where->key.site) : std::string_view();
      record.source = where ? where->source.name : EgressChoice::kDefault;
      record.text = reason;
      record.attempt = r.attempts;
      nlohmann::ordered_json json = queue::attempt_record(record);
      json["reason"] = reason;
      out.records.push_back(std::move(json));
    }
  }
  scheduler_.remove(id);
  job = nullptr;
  recipients_done(message_id, count, out);
}

void DeliveryPlanner::recipients_done(const std::string& message_id, uint32_t count,
                                      PlannerOutput& out) {
  auto it = active_recipients_.find(message_id);
  if (it == active_recipients_.end()) return;
  it->second -= std::min(it->second, count);
  if (it->second != 0) return;
  active_recipients_.erase(it);
  out.finished.push_back(queue::MessageId{message_id});
  message_done(message_id);
  if (recently_finished_.insert(message_id).second) {
    recently_finished_order_.emplace_back(steady(), message_id);
  }
}

bool DeliveryPlanner::suppress_recipients(queue::JobId id, PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  if (!job || !suppressions_ || suppressions_->size() == 0) return false;
  std::shared_ptr<const queue::SpoolMessage> message = message_for(*job, /*content=*/false);
  if (!message) return false;
  const int64_t now = unix_ms();
  std::vector<queue::JobRecipient> kept;
  uint32_t count = 0;
  for (const queue::JobRecipient& r : job->recipients) {
    const std::string& address = message->envelope.recipients[r.index].address;
    std::optional<queue::SuppressionEntry> entry = suppressions_->find(job->tenant, address);
    if (!entry) {
      kept.push_back(r);
      continue;
    }
    const std::string reason =
        entry->reason.empty() ? std::string(queue::to_string(entry->source)) : entry->reason;
    queue::RecipientUpdate update{job->id, r.index, queue::RecipientState::suppressed, r.attempts,
                                  0};
    update.response.text = reason;
    out.updates.push_back(std::move(update));
    (r.was_deferred ? out.metrics.deferred : out.metrics.queued) -= 1;
    ++count;
    if (records_wanted_) {
      queue::AttemptRecord record;
      record.type = "Suppressed";
      record.now_unix_ms = now;
      record.message = message.get();
      record.recipient_index = r.index;
      record.text = reason;
      record.attempt = r.attempts;
      nlohmann::ordered_json json = queue::attempt_record(record);
      json["reason"] = reason;
      json["suppression"] = {{"tenant", entry->tenant},
                             {"source", queue::to_string(entry->source)},
                             {"category", entry->category}};
      out.records.push_back(std::move(json));
    }
  }
  if (count == 0) return false;
  totals_.suppressed += count;
  out.metrics.suppressed += count;
  const std::string message_id = job->id.value;
  const bool gone = kept.empty();
  if (gone) {
    scheduler_.remove(id);
  } else {
    job->recipients = std::move(kept);
  }
  job = nullptr;
  recipients_done(message_id, count, out);
  return gone;
}

void DeliveryPlanner::suppress_after_bounce(const queue::SpoolMessage& message, uint32_t index,
                                            conf::BounceCategory category, const SmtpReply& reply,
                                            PlannerOutput& out) {
  // A DSN of ours counts for no tenant; mail without a tenant has no list
  // to go on ("*" is the operator's).
  if (!suppressions_ || !policy::is_hard_bounce(category) || message.meta.tenant.empty() ||
      message.meta.listener == queue::kDsnListener) {
    return;
  }
  queue::SuppressionEntry entry;
  entry.tenant = message.meta.tenant;
  entry.address = message.envelope.recipients[index].address;
  entry.reason = reply.to_string();
  entry.source = queue::SuppressionSource::bounce;
  entry.category = std::string(conf::bounce_category_name(category));
  entry.campaign = message.meta.campaign;
  entry.created_unix_ms = unix_ms();
  if (std::optional<queue::ControlWrite> write = suppressions_->stage(entry)) {
    out.controls.push_back(std::move(*write));
  }
}

void DeliveryPlanner::forget_job(queue::JobId id, PlannerOutput& out) {
  const queue::Job* job = scheduler_.find(id);
  if (!job) return;
  for (const queue::JobRecipient& r : job->recipients) {
    (r.was_deferred ? out.metrics.deferred : out.metrics.queued) -= 1;
  }
  auto it = active_recipients_.find(job->id.value);
  if (it != active_recipients_.end()) {
    it->second -= std::min<uint32_t>(it->second, static_cast<uint32_t>(job->recipients.size()));
    if (it->second == 0) active_recipients_.erase(it);
  }
  scheduler_.remove(id);
}

void DeliveryPlanner::forget_old_finished() {
  const runtime::SteadyTime horizon = steady() - kRecentlyFinished;
  while (!recently_finished_order_.empty() && recently_finished_order_.front().first < horizon) {
    recently_finished_.erase(recently_finished_order_.front().second);
    recently_finished_order_.pop_front();
  }
}

void DeliveryPlanner::message_done(const std::string& id) {
  auto it = cache_.find(id);
  if (it == cache_.end()) return;
  cache_bytes_ -= std::min<uint64_t>(cache_bytes_, it->second->content.size());
  cache_.erase(it);
}

void DeliveryPlanner::make_dsn(const queue::SpoolMessage& original,
                               std::vector<queue::DsnRecipient> recipients, PlannerOutput& out) {
  std::optional<queue::SpoolMessage> with_content;
  const queue::SpoolMessage* source = &original;
  if (original.content.empty() && original.meta.size > 0) {
    with_content = spool_.load_message(original.id, true);
    if (with_content) source = &*with_content;
  }
  queue::DsnRequest request;
  request.original = source;
  request.recipients = std::move(recipients);
  request.reporting_mta = config_->hostname;
  request.now_unix_ms = unix_ms();
  if (auto dsn = queue::make_dsn(request, queue::make_message_id())) {
    out.dsns.push_back(std::move(dsn));
  }
}

}  // namespace ringmail::mta
