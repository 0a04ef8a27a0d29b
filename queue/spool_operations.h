// queue/spool_operations.h — operator actions on stored mail that go
// beyond one Spool call: releasing quarantined messages.
//
// Any thread; each action is one synced spool transaction. Used by
// `ringmaild --spool-release` (and later the admin API).
#pragma once

#include <cstdint>
#include <string>

#include "queue/spool.h"

namespace ringmail::queue {

struct ReleaseOutcome {
  StoreOutcome store;   // failed with a reason when the message is unknown
  size_t released = 0;  // recipients moved from quarantined to queued
};

// Moves every quarantined recipient of the message to queued, due now.
// A message with no quarantined recipient is left alone (released == 0).
ReleaseOutcome release_quarantined(Spool& spool, const MessageId& id, int64_t now_unix_ms);

}  // namespace ringmail::queue
