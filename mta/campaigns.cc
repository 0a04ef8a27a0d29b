#include "mta/campaigns.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "conf/config_policy.h"

namespace ringmail::mta {

namespace {

constexpr std::string_view kTenantHold = "hold/tenant/";
constexpr size_t kMaxText = 256;  // name, tenant

// Printable UTF-8 text without control characters (tab excepted).
bool plain_text(const std::string& text) {
  return std::none_of(text.begin(), text.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
}

}  // namespace

CampaignRegistry::CampaignRegistry(queue::Spool& spool, policy::CampaignGate& gate,
                                   const runtime::Clock& clock)
    : spool_(spool), gate_(gate), clock_(clock) {}

void CampaignRegistry::load() {
  size_t cancelled = 0;
  for (const auto& [key, value] : spool_.controls(queue::kCampaignPrefix)) {
    queue::CampaignRecord record;
    if (!queue::decode_campaign(value, &record)) continue;  // delivery logs it
    if (record.state == queue::CampaignState::cancelled) {
      gate_.refuse(record.id);
      ++cancelled;
    }
  }
  if (cancelled > 0) spdlog::info("campaigns: {} cancelled campaign(s) refuse new mail", cancelled);
}

std::optional<queue::CampaignRecord> CampaignRegistry::read_record(const std::string& id) const {
  const std::optional<std::string> bytes = spool_.control(queue::campaign_record_key(id));
  if (!bytes) return std::nullopt;
  queue::CampaignRecord record;
  if (queue::DecodeResult r = queue::decode_campaign(*bytes, &record); !r) {
    spdlog::error("campaigns: record of {} does not decode: {}", id, r.error);
    return std::nullopt;
  }
  return record;
}

queue::DeliveryStats CampaignRegistry::read_stats(const std::string& key) const {
  const queue::StatsDeltas found = spool_.delivery_stats(key);  // may hold longer keys too
  auto it = found.find(key);
  return it == found.end() ? queue::DeliveryStats{} : it->second;
}

bool CampaignRegistry::write_record(const queue::CampaignRecord& record, std::string* error) {
  std::string bytes;
  queue::encode_campaign(record, &bytes);
  const queue::StoreOutcome stored =
      spool_.put_control(queue::campaign_record_key(record.id), bytes);
  if (!stored.ok()) {
    *error = "the spool refused the write: " + stored.detail;
    return false;
  }
  return true;
}

std::vector<CampaignView> CampaignRegistry::list(const std::string& tenant) const {
  std::map<std::string, queue::DeliveryStats> stats;
  const std::string_view stats_prefix = queue::kCampaignStatsPrefix;
  for (const auto& [key, s] : spool_.delivery_stats(queue::kCampaignStatsPrefix)) {
    stats.emplace(key.substr(stats_prefix.size()), s);
  }
  std::vector<CampaignView> out;
  for (const auto& [key, value] : spool_.controls(queue::kCampaignPrefix)) {
    CampaignView view;
    if (!queue::decode_campaign(value, &view.record)) continue;
    if (!tenant.empty() && view.record.tenant != tenant) continue;
    if (auto it = stats.find(view.record.id); it != stats.end()) view.stats = it->second;
    out.push_back(std::move(view));
  }
  return out;
}

std::optional<CampaignView> CampaignRegistry::find(const std::string& id) const {
  if (!queue::valid_campaign_id(id)) return std::nullopt;
  std::optional<queue::CampaignRecord> record = read_record(id);
  if (!record) return std::nullopt;
  return CampaignView{std::move(*record), read_stats(queue::campaign_stats_key(id))};
}

CampaignOutcome CampaignRegistry::update(const CampaignUpdate& update, const conf::Config& config,
                                         const Deliver* deliver) {
  CampaignOutcome out;
  auto invalid = [&](std::string detail) {
    out.status = CampaignOutcome::Status::invalid;
    out.detail = std::move(detail);
    return out;
  };
  if (!queue::valid_campaign_id(update.id)) return invalid("id: 1 to 64 of A-Z a-z 0-9 . _ -");
  for (const auto& [field, value] : {std::pair{"name", &update.name}, {"tenant", &update.tenant}}) {
    if (*value && ((*value)->size() > kMaxText || !plain_text(**value)))
      return invalid(std::string(field) + ": at most 256 octets, no control characters");
  }
  if (update.pool && !update.pool->empty()) {
    std::vector<std::string> known;
    if (config.policy) {
      for (const conf::EgressPool& pool : config.policy->pools) known.push_back(pool.name);
    }
    if (std::find(known.begin(), known.end(), *update.pool) == known.end()) {
      std::string names;
      for (const std::string& n : known) names += (names.empty() ? "" : ", ") + n;
      return invalid("pool: unknown pool \"" + *update.pool + "\" (policy.pools has " +
                     (names.empty() ? std::string("none") : names) + ")");
    }
  }
  if (update.message_rate && !update.message_rate->empty() &&
      !conf::parse_rate(*update.message_rate)) {
    return invalid("message_rate: \"" + *update.message_rate +
                   "\" is not a rate such as 300/m (count / s, m, h or d)");
  }

  std::lock_guard lock(mutex_);
  std::optional<queue::CampaignRecord> existing = read_record(update.id);
  queue::CampaignRecord record;
  if (existing) {
    record = std::move(*existing);
  } else {
    record.id = update.id;
    record.created_unix_ms = clock_.unix_ms();
  }
  if (update.name) record.name = *update.name;
  if (update.tenant) record.tenant = *update.tenant;
  if (update.pool) record.pool = *update.pool;
  if (update.message_rate) record.message_rate = *update.message_rate;
  if (!write_record(record, &out.detail)) {
    out.status = CampaignOutcome::Status::failed;
    return out;
  }
  out.status = existing ? CampaignOutcome::Status::ok : CampaignOutcome::Status::created;
  if (deliver && (update.pool || update.message_rate)) {
    std::string error;
    if (!(*deliver)(campaign_policy_command(record.id, record.pool, record.message_rate), &error)) {
      spdlog::warn("campaign {}: pool and rate saved; delivery takes them at restart: {}",
                   record.id, error);
    }
  }
  out.campaign = CampaignView{std::move(record), read_stats(queue::campaign_stats_key(update.id))};
  return out;
}

CampaignOutcome CampaignRegistry::act(const std::string& id, CampaignAction action,
                                      const Deliver& deliver) {
  CampaignOutcome out;
  std::unique_lock lock(mutex_);
  std::optional<queue::CampaignRecord> record =
      queue::valid_campaign_id(id) ? read_record(id) : std::nullopt;
  if (!record) {
    out.status = CampaignOutcome::Status::not_found;
    out.detail = "no campaign \"" + id + "\"";
    return out;
  }
  const bool was_cancelled = record->state == queue::CampaignState::cancelled;
  AdminCommand command;
  command.target = id;
  switch (action) {
    case CampaignAction::pause:
      record->state = queue::CampaignState::paused;
      command.kind = AdminCommand::Kind::pause_campaign;
      break;
    case CampaignAction::resume:
      record->state = queue::CampaignState::active;
      command.kind = AdminCommand::Kind::resume_campaign;
      break;
    case CampaignAction::cancel:
      record->state = queue::CampaignState::cancelled;
      command.kind = AdminCommand::Kind::cancel_campaign;
      break;
  }
  if (was_cancelled && action != CampaignAction::cancel) {
    out.status = CampaignOutcome::Status::conflict;
    out.detail = "campaign \"" + id + "\" is cancelled; it cannot be paused or resumed";
    return out;
  }
  if (!write_record(*record, &out.detail)) {
    out.status = CampaignOutcome::Status::failed;
    return out;
  }
  // Refused at the end of DATA from now on: nothing new slips in behind
  // the cancellation that delivery is about to carry out.
  if (action == CampaignAction::cancel) gate_.refuse(id);
  lock.unlock();
  std::string error;
  if (!deliver(command, &error)) {
    out.status = CampaignOutcome::Status::failed;
    out.detail = "saved, but delivery did not carry it out yet: " + error;
    return out;
  }
  out.status = CampaignOutcome::Status::ok;
  out.campaign = CampaignView{std::move(*record), read_stats(queue::campaign_stats_key(id))};
  return out;
}

std::vector<TenantView> CampaignRegistry::tenants() const {
  std::map<std::string, TenantView> by_name;
  const std::string_view stats_prefix = queue::kTenantStatsPrefix;
  for (const auto& [key, stats] : spool_.delivery_stats(queue::kTenantStatsPrefix)) {
    by_name[key.substr(stats_prefix.size())].stats = stats;
  }
  for (const auto& [key, value] : spool_.controls(std::string(kTenantHold))) {
    by_name[key.substr(kTenantHold.size())].paused = value == "1";
  }
  std::vector<TenantView> out;
  for (auto& [name, view] : by_name) {
    if (name.empty()) continue;
    view.name = name;
    out.push_back(std::move(view));
  }
  return out;
}

std::optional<TenantView> CampaignRegistry::tenant(const std::string& name) const {
  if (name.empty()) return std::nullopt;
  const std::string key = queue::tenant_stats_key(name);
  const queue::StatsDeltas stats = spool_.delivery_stats(key);
  const auto it = stats.find(key);
  const std::optional<std::string> hold = spool_.control(std::string(kTenantHold) + name);
  if (it == stats.end() && !hold) return std::nullopt;
  TenantView view;
  view.name = name;
  view.paused = hold && *hold == "1";
  if (it != stats.end()) view.stats = it->second;
  return view;
}

}  // namespace ringmail::mta
