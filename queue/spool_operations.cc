#include "queue/spool_operations.h"

#include <vector>

namespace ringmail::queue {

ReleaseOutcome release_quarantined(Spool& spool, const MessageId& id, int64_t now_unix_ms) {
  ReleaseOutcome outcome;
  std::optional<SpoolMessage> message = spool.load_message(id, false);
  if (!message) {
    outcome.store = {StoreStatus::failed, "no message " + id.value + " in the spool"};
    return outcome;
  }
  std::vector<RecipientUpdate> updates;
  const auto& recipients = message->envelope.recipients;
  for (uint32_t i = 0; i < recipients.size(); ++i) {
    if (recipients[i].state != RecipientState::quarantined) continue;
    updates.push_back({id, i, RecipientState::queued, recipients[i].attempts, now_unix_ms});
  }
  outcome.store = spool.update_recipients(updates);
  if (outcome.store.ok()) outcome.released = updates.size();
  return outcome;
}

}  // namespace ringmail::queue
