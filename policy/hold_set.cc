#include "policy/hold_set.h"

namespace ringmail::policy {

bool HoldSet::holds_job(std::string_view tenant, std::string_view campaign) const {
  if (all_) return true;
  if (!tenant.empty() && tenants_.contains(tenant)) return true;
  return !campaign.empty() && campaigns_.contains(campaign);
}

std::optional<runtime::WallTime> HoldSet::site_suspended(const std::string& site,
                                                         runtime::WallTime now) const {
  auto it = sites_.find(site);
  if (it == sites_.end() || it->second <= now) return std::nullopt;
  return it->second;
}

bool HoldSet::expire(runtime::WallTime now) {
  return std::erase_if(sites_, [&](const auto& entry) { return entry.second <= now; }) > 0;
}

}  // namespace ringmail::policy
