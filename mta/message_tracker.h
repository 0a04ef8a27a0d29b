// mta/message_tracker.h — what became of a message, and the dead letters
// (CONTRACT "Control plane in detail": GET /api/v1/messages/{id}, GET
// /api/v1/dead, POST /api/v1/dead/{id}/retry, DELETE /api/v1/dead/{id}).
//
// Owns: the composition of what the operator sees. A message still in the
// spool is read from it (envelope, each recipient's state, attempts, next
// attempt and last response) and from delivery's live view (which
// recipients are in a transaction, which are held: held ones show as
// queued); a finished one from its status record, or its dead letter
// (queue/spool_retention.h). A retry builds the dead letter's message again
// with the failed recipients queued and hands it to the spool writer, whose
// commit takes the dead letter away in the same transaction; the writer's
// committed listener then schedules it like new mail. A retry also lifts
// the suppression entries the bounce itself made (source "bounce", the
// message's tenant, a requeued recipient): the operator who retries a
// dead letter says that bounce was wrong (a bad route, a receiver's
// mistake), so it must not keep the address off every later message.
// Complaint, unsubscribe and admin entries stay: those recipients end
// `suppressed` again.
//
// Threads: any (the admin API's threads). Reads are LMDB read transactions
// (never blocking the writer); the live view and the submission go through
// the injected functions, which wait with a timeout, never on the hot path.
// Trust: ids come from HTTP requests; they are only used as lookup keys.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mta/outbound/delivery_admin.h"
#include "queue/spool.h"
#include "queue/spool_message.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"

namespace ringmail::mta {

struct RecipientStatus {
  std::string address;
  queue::RecipientState state = queue::RecipientState::queued;
  uint32_t attempts = 0;
  std::optional<int64_t> next_attempt_unix_ms;  // deferred: when it is tried again
  queue::RecipientResponse response;            // code 0 and no text: none yet
  std::string category;                         // bounced or expired: the category name
};

struct MessageStatus {
  std::string id;
  std::string sender;
  std::string tenant;
  std::string campaign;
  int64_t received_unix_ms = 0;
  uint64_t size = 0;
  // Out of the spool: when it finished, and until when it is remembered.
  std::optional<int64_t> finished_unix_ms;
  std::optional<int64_t> kept_until_unix_ms;
  std::vector<RecipientStatus> recipients;
};

// "" = any. category: a recipient bounced or expired with that category.
struct DeadLetterFilter {
  std::string tenant;
  std::string campaign;
  std::string category;
};

struct DeadLetterOutcome {
  enum class Status { ok, not_found, failed };
  Status status = Status::failed;
  std::string detail;
  size_t requeued = 0;  // retry: the recipients queued again
};

class MessageTracker {
 public:
  // nullopt: delivery did not answer (the spool's states are shown alone).
  using LiveView = std::function<std::optional<MessageLiveView>(const std::string& id)>;
  // Commits the message through the spool writer (as a dead letter's
  // retry) and returns the commit's outcome.
  using Submit = std::function<queue::StoreOutcome(std::unique_ptr<queue::SpoolMessage>)>;

  // spool and clock must outlive the tracker.
  MessageTracker(queue::Spool& spool, const runtime::Clock& clock, LiveView live, Submit submit);

  // nullopt once the message is gone (or never was).
  std::optional<MessageStatus> find(const std::string& id) const;
  // One dead letter not yet expired.
  std::optional<MessageStatus> dead_letter(const std::string& id) const;
  // Dead letters not yet expired, by id (reception order).
  std::vector<MessageStatus> dead_letters(const DeadLetterFilter& filter) const;
  DeadLetterOutcome retry(const std::string& id);
  // The lists retry() lifts bounce entries from (none: it lifts nothing).
  // Must outlive the tracker.
  void set_suppressions(queue::SuppressionStore* suppressions) { suppressions_ = suppressions; }
  DeadLetterOutcome remove(const std::string& id);

 private:
  std::optional<MessageStatus> from_spool(const std::string& id) const;
  std::optional<MessageStatus> from_status_record(const std::string& id, int64_t now) const;
  std::optional<MessageStatus> from_dead_letter(const std::string& id, int64_t now) const;

  queue::Spool& spool_;
  const runtime::Clock& clock_;
  LiveView live_;
  Submit submit_;
  queue::SuppressionStore* suppressions_ = nullptr;
};

}  // namespace ringmail::mta
