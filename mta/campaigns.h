// mta/campaigns.h — campaigns and tenants as the operator sees them:
// their records and statistics from the spool's control table, and the
// pause / resume / cancel that move them (CONTRACT "Control plane").
//
// Owns: the read-modify-write of campaign records (one at a time, under a
// mutex: the admin API's threads), and the campaign gate's contents.
// Records a message creates (the spool writer, in its commit, never over
// an existing one) and statistics (the spool writer only) are written
// elsewhere; see queue/campaign_records.h.
//
// Order: a state change is written to the spool first (it survives a
// restart, and OutboundEngine::load_spool replays it before the first
// attempt), then carried out by delivery through `deliver`.
//
// Threads: any; the methods serialise on a mutex that neither the shards
// nor the delivery thread ever take.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/outbound/delivery_admin.h"
#include "policy/campaign_gate.h"
#include "queue/campaign_records.h"
#include "queue/spool.h"
#include "runtime/clock.h"

namespace ringmail::mta {

struct CampaignView {
  queue::CampaignRecord record;
  queue::DeliveryStats stats;
};

struct TenantView {
  std::string name;
  bool paused = false;
  queue::DeliveryStats stats;
};

// POST /api/v1/campaigns: absent fields keep their value ("" clears).
struct CampaignUpdate {
  std::string id;
  std::optional<std::string> name, tenant, pool, message_rate;
};

enum class CampaignAction { pause, resume, cancel };

struct CampaignOutcome {
  enum class Status { ok, created, not_found, invalid, conflict, failed };
  Status status = Status::failed;
  std::string detail;  // what is wrong (invalid, conflict, failed)
  CampaignView campaign;
};

class CampaignRegistry {
 public:
  // Carries an AdminCommand out in delivery; false with *error when it
  // could not (the state is persisted all the same).
  using Deliver = std::function<bool(const AdminCommand& command, std::string* error)>;

  // spool, gate and clock must outlive the registry.
  CampaignRegistry(queue::Spool& spool, policy::CampaignGate& gate, const runtime::Clock& clock);

  // Start-up, before the listeners accept: cancelled campaigns refuse mail.
  void load();

  std::vector<CampaignView> list(const std::string& tenant) const;  // "" = every tenant
  std::optional<CampaignView> find(const std::string& id) const;
  // Creates or updates a record; pool and message_rate are checked
  // against the config in force.
  // With `deliver`, its pool and rate are handed to delivery too.
  CampaignOutcome update(const CampaignUpdate& update, const conf::Config& config,
                         const Deliver* deliver = nullptr);
  // pause / resume / cancel. A cancelled campaign stays cancelled: pause
  // or resume of it is a conflict; cancel again is ok.
  CampaignOutcome act(const std::string& id, CampaignAction action, const Deliver& deliver);

  // Tenants that have statistics or a pause, by name.
  std::vector<TenantView> tenants() const;
  std::optional<TenantView> tenant(const std::string& name) const;

 private:
  std::optional<queue::CampaignRecord> read_record(const std::string& id) const;
  queue::DeliveryStats read_stats(const std::string& key) const;
  bool write_record(const queue::CampaignRecord& record, std::string* error);

  queue::Spool& spool_;
  policy::CampaignGate& gate_;
  const runtime::Clock& clock_;
  std::mutex mutex_;  // serialises read-modify-write of records
};

}  // namespace ringmail::mta
