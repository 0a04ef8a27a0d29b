#include "policy/egress_selector.h"

namespace ringmail::policy {

void EgressSelector::set_policy(const conf::PolicyConfig* policy) {
  // A reload keeps each pool's turn, so that frequent reloads do not send
  // more traffic from its first source.
  std::unordered_map<std::string, Pool> before = std::move(pools_);
  pools_.clear();
  if (!policy) return;
  for (const conf::EgressPool& pool : policy->pools) {
    Pool& entry = pools_[pool.name];
    if (auto it = before.find(pool.name); it != before.end()) entry.next = it->second.next;
    for (const std::string& name : pool.sources) {
      if (const conf::EgressSource* source = policy->find_source(name)) {
        entry.sources.push_back(EgressChoice{source->name, source->address});
      }
    }
  }
}

EgressSelector::Pool* EgressSelector::find(std::string_view pool) {
  if (!pool.empty()) {
    auto it = pools_.find(std::string(pool));
    if (it != pools_.end() && !it->second.sources.empty()) return &it->second;
  }
  auto it = pools_.find("default");
  return it != pools_.end() && !it->second.sources.empty() ? &it->second : nullptr;
}

EgressChoice EgressSelector::select(std::string_view pool) {
  Pool* found = find(pool);
  if (!found) return EgressChoice{};
  return found->sources[found->next++ % found->sources.size()];
}

}  // namespace ringmail::policy
