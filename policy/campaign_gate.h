// policy/campaign_gate.h — which campaigns' new mail is refused at the end
// of DATA (a cancelled campaign: 550 5.7.1, CONTRACT "Control plane").
//
// Owns: the set of refused campaign ids. Written rarely (the control
// plane, on cancel and at start-up), read by every inbound shard for each
// message that names a campaign: readers load an immutable snapshot
// through an atomic shared_ptr and take no lock; with nothing refused they
// pay one relaxed atomic load. Thread-safe.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace ringmail::policy {

class CampaignGate {
 public:
  // Any thread.
  bool refuses(std::string_view campaign) const;
  // Any thread; serialised among writers.
  void refuse(const std::string& campaign);

 private:
  using Set = std::set<std::string, std::less<>>;
  std::atomic<bool> any_{false};
  std::atomic<std::shared_ptr<const Set>> refused_{std::make_shared<const Set>()};
  std::mutex write_mutex_;
};

}  // namespace ringmail::policy
