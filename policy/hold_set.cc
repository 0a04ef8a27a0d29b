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

std::optional<runtime::WallTime> HoldSet::domain_suspended(const std::string& domain,
                                                           runtime::WallTime now) const {
  auto it = domains_.find(domain);
  if (it == domains_.end() || it->second <= now) return std::nullopt;
  return it->second;
}

bool HoldSet::expire(runtime::WallTime now, std::vector<std::string>* ended_domains) {
  bool ended = std::erase_if(sites_, [&](const auto& entry) { return entry.second <= now; }) > 0;
  for (auto it = domains_.begin(); it != domains_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    if (ended_domains) ended_domains->push_back(it->first);
    it = domains_.erase(it);
    ended = true;
  }
  return ended;
}

}  // namespace ringmail::policy
