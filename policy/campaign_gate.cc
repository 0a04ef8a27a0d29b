#include "policy/campaign_gate.h"

namespace ringmail::policy {

bool CampaignGate::refuses(std::string_view campaign) const {
  if (campaign.empty() || !any_.load(std::memory_order_relaxed)) return false;
  const std::shared_ptr<const Set> refused = refused_.load(std::memory_order_acquire);
  return refused->contains(campaign);
}

void CampaignGate::refuse(const std::string& campaign) {
  std::lock_guard lock(write_mutex_);
  const std::shared_ptr<const Set> old = refused_.load(std::memory_order_acquire);
  if (old->contains(campaign)) return;
  auto next = std::make_shared<Set>(*old);
  next->insert(campaign);
  refused_.store(std::move(next), std::memory_order_release);
  any_.store(true, std::memory_order_release);
}

}  // namespace ringmail::policy
