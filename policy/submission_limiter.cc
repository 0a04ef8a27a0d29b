#include "policy/submission_limiter.h"

#include <algorithm>

namespace ringmail::policy {
namespace {

TokenBucket bucket_for(const conf::Rate& rate) {
  return TokenBucket(rate.count, std::chrono::duration_cast<TokenBucket::Nanos>(rate.per),
                     rate.count);
}

}  // namespace

void SubmissionLimiter::set_policy(const conf::PolicyConfig* policy, runtime::SteadyTime now) {
  std::lock_guard lock(mutex_);
  std::unordered_map<std::string, Limit, Hash, std::equal_to<>> next;
  if (policy) {
    for (const conf::TenantPolicy& tenant : policy->tenants) {
      if (!tenant.max_messages) continue;
      const conf::Rate& rate = *tenant.max_messages;
      auto old = limits_.find(tenant.name);
      if (old != limits_.end() && old->second.rate == rate) {
        next.emplace(tenant.name, old->second);
        continue;
      }
      Limit limit{rate, bucket_for(rate)};
      if (old != limits_.end()) {
        const TokenBucket& before = old->second.bucket;
        const uint64_t spent = std::min(before.burst() - before.available(now), rate.count);
        for (uint64_t i = 0; i < spent; ++i) limit.bucket.take(now);
      }
      next.emplace(tenant.name, std::move(limit));
    }
  }
  limits_ = std::move(next);
  any_.store(!limits_.empty(), std::memory_order_relaxed);
}

SubmissionVerdict SubmissionLimiter::admit(std::string_view tenant, runtime::SteadyTime now) {
  if (!any_.load(std::memory_order_relaxed)) return {};
  std::lock_guard lock(mutex_);
  auto it = limits_.find(tenant);
  if (it == limits_.end() || it->second.bucket.try_take(now)) return {};
  SubmissionVerdict refused;
  refused.admitted = false;
  refused.limit = conf::format_rate(it->second.rate);
  const auto wait = it->second.bucket.next_token(now) - now;
  refused.retry_after = std::max(runtime::Millis(1), std::chrono::ceil<runtime::Millis>(wait));
  return refused;
}

}  // namespace ringmail::policy
