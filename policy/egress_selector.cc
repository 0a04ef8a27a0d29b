#include "policy/egress_selector.h"

#include <algorithm>

namespace ringmail::policy {

std::string_view job_pool(std::string_view campaign_pool, std::string_view tenant,
                          const conf::PolicyConfig* policy) {
  if (!campaign_pool.empty()) return campaign_pool;
  if (policy && !tenant.empty()) {
    const conf::TenantPolicy* t = policy->find_tenant(tenant);
    if (t && !t->pool.empty()) return t->pool;
  }
  return EgressChoice::kDefault;
}

void EgressSelector::set_policy(const conf::PolicyConfig* policy) {
  std::unordered_map<std::string, Pool> before = std::move(pools_);
  pools_.clear();
  if (!policy) return;
  for (const conf::EgressPool& pool : policy->pools) {
    Pool& entry = pools_[pool.name];
    for (const conf::PoolMember& member : pool.sources) {
      if (const conf::EgressSource* source = policy->find_source(member.source)) {
        entry.members.push_back(
            Member{EgressChoice{source->name, source->address}, member.weight, 0});
      }
    }
    auto it = before.find(pool.name);
    const auto same = [](const Member& x, const Member& y) {
      return x.choice.name == y.choice.name && x.weight == y.weight;
    };
    if (it == before.end() ||
        !std::equal(entry.members.begin(), entry.members.end(), it->second.members.begin(),
                    it->second.members.end(), same)) {
      continue;
    }
    for (size_t i = 0; i < entry.members.size(); ++i) {
      entry.members[i].credit = it->second.members[i].credit;
    }
  }
}

EgressSelector::Pool* EgressSelector::find(std::string_view pool) {
  if (!pool.empty()) {
    auto it = pools_.find(std::string(pool));
    if (it != pools_.end() && !it->second.members.empty()) return &it->second;
  }
  auto it = pools_.find(EgressChoice::kDefault);
  return it != pools_.end() && !it->second.members.empty() ? &it->second : nullptr;
}

EgressChoice EgressSelector::select(std::string_view pool) {
  // Everything is available: the general pick never comes back empty.
  return *select(pool, [](const EgressChoice&) { return true; });
}

std::optional<EgressChoice> EgressSelector::select(std::string_view pool,
                                                   const EgressAvailable& available) {
  Pool* found = find(pool);
  if (!found) {
    EgressChoice machine_default;
    if (!available(machine_default)) return std::nullopt;
    return machine_default;
  }
  Member* best = nullptr;
  int64_t total = 0;
  for (Member& m : found->members) {
    if (!available(m.choice)) continue;  // frozen: see the header
    m.credit += m.weight;
    total += m.weight;
    if (!best || m.credit > best->credit) best = &m;
  }
  if (!best) return std::nullopt;
  best->credit -= total;
  return best->choice;
}

}  // namespace ringmail::policy
