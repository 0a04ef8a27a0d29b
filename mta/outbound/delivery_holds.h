// mta/outbound/delivery_holds.h — how an operator's holds are kept in the
// spool's control table, so that they survive a restart and kill -9.
//
// Keys: "hold/site/NAME" and "hold/domain/NAME" (value: the end of the
// suspension, Unix milliseconds in decimal), "hold/all" (value "1": all
// delivery paused), "hold/tenant/NAME" (value "1": the tenant's delivery
// paused). Campaign pauses and cancellations are the state of their
// records ("campaign/ID", queue/campaign_records.h). Pure: no I/O; the daemon writes what
// persisted_hold() says before it carries the command out, and the delivery engine replays
// restore_holds() before its first attempt.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mta/outbound/delivery_admin.h"
#include "runtime/clock.h"

namespace ringmail::mta {

inline constexpr char kHoldPrefix[] = "hold/";

// A control-table write: value nullopt deletes the key.
struct PersistedHold {
  std::string key;
  std::optional<std::string> value;
};

// The write that persists the command; nullopt for commands that are not
// holds kept here (bounces; tenant and campaign pauses belong to campaigns).
std::optional<PersistedHold> persisted_hold(const AdminCommand& command);

struct RestoredHolds {
  std::vector<AdminCommand> commands;  // to replay, in key order
  std::vector<std::string> expired;    // keys of suspensions that ended: delete them
  std::vector<std::string> problems;   // keys whose value does not decode (ignored)
};
// The commands that restore campaigns' persisted states (pause_campaign,
// cancel_campaign) from the "campaign/" keys; keys that do not decode are
// appended to *problems.
std::vector<AdminCommand> campaign_holds(
    const std::vector<std::pair<std::string, std::string>>& campaign_controls,
    std::vector<std::string>* problems = nullptr);

RestoredHolds restore_holds(const std::vector<std::pair<std::string, std::string>>& controls,
                            runtime::WallTime now);

}  // namespace ringmail::mta
