#include "mta/message_tracker.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "queue/spool_codec.h"
#include "queue/spool_retention.h"

namespace ringmail::mta {

namespace {

bool plausible_id(const std::string& id) {
  return !id.empty() && id.size() <= queue::kMaxRetainedIdSize &&
         id.find('\0') == std::string::npos;
}

MessageStatus header_of(const queue::SpoolMessage& m) {
  MessageStatus status;
  status.id = m.id.value;
  status.sender = m.envelope.sender;
  status.tenant = m.meta.tenant;
  status.campaign = m.meta.campaign;
  status.received_unix_ms = m.meta.received_unix_ms;
  status.size = m.meta.size;
  return status;
}

RecipientStatus recipient_of(const queue::Recipient& r) {
  RecipientStatus status;
  status.address = r.address;
  status.state = r.state;
  status.attempts = r.attempts;
  status.response = r.last_response;
  status.category = r.category;
  if (r.state == queue::RecipientState::deferred)
    status.next_attempt_unix_ms = r.next_attempt_unix_ms;
  return status;
}

bool contains(const std::vector<uint32_t>& list, size_t index) {
  return std::find(list.begin(), list.end(), index) != list.end();
}

}  // namespace

MessageTracker::MessageTracker(queue::Spool& spool, const runtime::Clock& clock, LiveView live,
                               Submit submit)
    : spool_(spool), clock_(clock), live_(std::move(live)), submit_(std::move(submit)) {}

std::optional<MessageStatus> MessageTracker::find(const std::string& id) const {
  if (!plausible_id(id)) return std::nullopt;
  // In this order: a message that finishes between the reads is in the
  // spool at the first or has its records at the second (one commit).
  if (std::optional<MessageStatus> status = from_spool(id)) return status;
  const int64_t now = clock_.unix_ms();
  if (std::optional<MessageStatus> status = from_status_record(id, now)) return status;
  return from_dead_letter(id, now);
}

std::optional<MessageStatus> MessageTracker::from_spool(const std::string& id) const {
  const std::optional<queue::SpoolMessage> m = spool_.load_message(queue::MessageId{id}, false);
  if (!m) return std::nullopt;
  MessageStatus status = header_of(*m);
  const std::optional<MessageLiveView> live = live_ ? live_(id) : std::nullopt;
  for (size_t i = 0; i < m->envelope.recipients.size(); ++i) {
    RecipientStatus r = recipient_of(m->envelope.recipients[i]);
    if (live && queue::is_active(r.state)) {
      if (contains(live->in_flight, i)) {
        r.state = queue::RecipientState::in_flight;
        r.next_attempt_unix_ms.reset();
      } else if (contains(live->held, i)) {
        // CONTRACT: a held recipient is queued, whatever retry it waited for.
        r.state = queue::RecipientState::queued;
        r.next_attempt_unix_ms.reset();
      }
    }
    status.recipients.push_back(std::move(r));
  }
  return status;
}

std::optional<MessageStatus> MessageTracker::from_status_record(const std::string& id,
                                                                int64_t now) const {
  const std::optional<std::string> bytes = spool_.control(queue::status_key(id));
  if (!bytes) return std::nullopt;
  queue::StatusRecord record;
  if (queue::DecodeResult decoded = queue::decode_status(*bytes, &record); !decoded) {
    spdlog::warn("spool: status record of {} does not decode: {}", id, decoded.error);
    return std::nullopt;
  }
  if (record.expires_unix_ms <= now || record.id != id) return std::nullopt;
  MessageStatus status;
  status.id = record.id;
  status.sender = record.sender;
  status.tenant = record.tenant;
  status.campaign = record.campaign;
  status.received_unix_ms = record.received_unix_ms;
  status.size = record.size;
  status.finished_unix_ms = record.finished_unix_ms;
  status.kept_until_unix_ms = record.expires_unix_ms;
  for (const queue::StatusRecipient& r : record.recipients) {
    status.recipients.push_back(
        RecipientStatus{r.address, r.state, r.attempts, std::nullopt, r.response, r.category});
  }
  return status;
}

std::optional<MessageStatus> MessageTracker::from_dead_letter(const std::string& id,
                                                              int64_t now) const {
  const std::optional<std::string> bytes = spool_.control(queue::dead_key(id));
  if (!bytes) return std::nullopt;
  queue::DeadLetter dead;
  if (queue::DecodeResult decoded = queue::decode_dead_letter(*bytes, &dead); !decoded) {
    spdlog::warn("spool: dead letter {} does not decode: {}", id, decoded.error);
    return std::nullopt;
  }
  if (dead.expires_unix_ms <= now || dead.message.id.value != id) return std::nullopt;
  MessageStatus status = header_of(dead.message);
  status.finished_unix_ms = dead.finished_unix_ms;
  status.kept_until_unix_ms = dead.expires_unix_ms;
  for (const queue::Recipient& r : dead.message.envelope.recipients) {
    RecipientStatus rs = recipient_of(r);
    rs.next_attempt_unix_ms.reset();
    status.recipients.push_back(std::move(rs));
  }
  return status;
}

std::optional<MessageStatus> MessageTracker::dead_letter(const std::string& id) const {
  if (!plausible_id(id)) return std::nullopt;
  return from_dead_letter(id, clock_.unix_ms());
}

std::vector<MessageStatus> MessageTracker::dead_letters(const DeadLetterFilter& filter) const {
  std::vector<MessageStatus> out;
  const int64_t now = clock_.unix_ms();
  const std::string_view prefix = queue::kDeadPrefix;
  for (const auto& [key, value] : spool_.controls(queue::kDeadPrefix)) {
    queue::DeadLetter dead;
    if (!queue::decode_dead_letter(value, &dead)) {
      spdlog::warn("spool: dead letter {} does not decode", key.substr(prefix.size()));
      continue;
    }
    if (dead.expires_unix_ms <= now) continue;
    const queue::SpoolMessage& m = dead.message;
    if (!filter.tenant.empty() && m.meta.tenant != filter.tenant) continue;
    if (!filter.campaign.empty() && m.meta.campaign != filter.campaign) continue;
    if (!filter.category.empty() &&
        std::none_of(m.envelope.recipients.begin(), m.envelope.recipients.end(),
                     [&](const queue::Recipient& r) {
                       return queue::is_failed(r.state) && r.category == filter.category;
                     }))
      continue;
    std::optional<MessageStatus> status = from_dead_letter(m.id.value, now);
    if (status) out.push_back(std::move(*status));
  }
  return out;
}

DeadLetterOutcome MessageTracker::retry(const std::string& id) {
  DeadLetterOutcome outcome;
  auto not_found = [&] {
    outcome.status = DeadLetterOutcome::Status::not_found;
    outcome.detail = "no dead letter \"" + id + "\"";
    return outcome;
  };
  if (!plausible_id(id)) return not_found();
  const int64_t now = clock_.unix_ms();
  const std::optional<std::string> bytes = spool_.control(queue::dead_key(id));
  queue::DeadLetter dead;
  if (!bytes || !queue::decode_dead_letter(*bytes, &dead) || dead.expires_unix_ms <= now ||
      dead.message.id.value != id)
    return not_found();
  const std::optional<std::string> body = spool_.control(queue::dead_body_key(id));
  std::string content;
  if (!body || !queue::decode_body(*body, &content) || content.size() != dead.body_size) {
    outcome.detail = "the dead letter's body is missing or damaged";
    return outcome;
  }
  auto message = std::make_unique<queue::SpoolMessage>(
      queue::retry_message(dead, std::move(content), now, &outcome.requeued));
  if (outcome.requeued == 0) {
    outcome.detail = "the dead letter has no bounced or expired recipient";
    return outcome;
  }
  // Before the commit, so that the planner, which schedules the retry once
  // it is committed, finds the list without them.
  if (suppressions_ && !dead.message.meta.tenant.empty()) {
    for (const queue::Recipient& r : dead.message.envelope.recipients) {
      if (!queue::is_failed(r.state)) continue;
      const std::optional<queue::SuppressionEntry> entry =
          suppressions_->find(dead.message.meta.tenant, r.address);
      if (!entry || entry->source != queue::SuppressionSource::bounce ||
          entry->tenant != dead.message.meta.tenant) {
        continue;
      }
      bool found = false;
      const queue::StoreOutcome lifted =
          suppressions_->remove(entry->tenant, entry->address, &found);
      if (!lifted.ok()) {
        outcome.detail =
            "the spool refused to lift the suppression of " + entry->address + ": " + lifted.detail;
        return outcome;
      }
      if (found) {
        spdlog::info(
            "dead letter {}: suppression of {} for tenant {} lifted (it came from a bounce)", id,
            entry->address, entry->tenant);
      }
    }
  }
  const queue::StoreOutcome stored = submit_(std::move(message));
  if (stored.ok()) {
    spdlog::info("dead letter {}: {} recipient(s) queued again", id, outcome.requeued);
    outcome.status = DeadLetterOutcome::Status::ok;
    return outcome;
  }
  // Dropped or retried by another request meanwhile: the commit refused it.
  if (!spool_.control(queue::dead_key(id))) return not_found();
  outcome.detail = "the spool did not take it: " + stored.detail;
  return outcome;
}

DeadLetterOutcome MessageTracker::remove(const std::string& id) {
  DeadLetterOutcome outcome;
  bool found = false;
  if (plausible_id(id)) {
    const queue::StoreOutcome dropped = spool_.drop_dead_letter(queue::MessageId{id}, &found);
    if (!dropped.ok()) {
      outcome.detail = "the spool refused the change: " + dropped.detail;
      return outcome;
    }
  }
  if (!found) {
    outcome.status = DeadLetterOutcome::Status::not_found;
    outcome.detail = "no dead letter \"" + id + "\"";
    return outcome;
  }
  spdlog::info("dead letter {} deleted", id);
  outcome.status = DeadLetterOutcome::Status::ok;
  return outcome;
}

}  // namespace ringmail::mta
