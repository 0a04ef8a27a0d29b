#include "policy/shaper.h"

#include "conf/config_policy.h"

namespace ringmail::policy {

namespace {

TokenBucket bucket_of(const RateSpec& spec) {
  if (!spec.limited()) return TokenBucket();
  return TokenBucket(spec.count, spec.per, spec.burst == 0 ? spec.count : spec.burst);
}

}  // namespace

RateSpec rate_spec(const conf::Rate& rate, uint64_t burst) {
  return RateSpec{rate.count, rate.per, burst};
}

void QueueShaping::configure(const RateSpec& message_rate, const RateSpec& connection_rate) {
  if (!(message_rate == message_spec_)) {
    message_spec_ = message_rate;
    messages_ = bucket_of(message_rate);
  }
  if (!(connection_rate == connection_spec_)) {
    connection_spec_ = connection_rate;
    connections_ = bucket_of(connection_rate);
  }
}

void QueueShaping::sent(uint32_t recipients, runtime::SteadyTime now) {
  messages_.take(now, recipients);
}

void QueueShaping::set_factor(double factor, runtime::SteadyTime now) {
  messages_.set_factor(factor, now);
  connections_.set_factor(factor, now);
}

ShapingDecision QueueShaping::decide(const TokenBucket& bucket, runtime::SteadyTime now) {
  const runtime::SteadyTime due = bucket.next_token(now);
  return due <= now ? ShapingDecision{} : ShapingDecision{false, due};
}

void Shaper::set(Map& map, const std::string& name, const RateSpec& rate) {
  if (!rate.limited()) {
    map.erase(name);
    return;
  }
  auto it = map.find(name);
  if (it != map.end() && it->second.spec == rate) return;
  map[name] = Entry{rate, bucket_of(rate)};
}

void Shaper::set_tenant_rate(const std::string& tenant, const RateSpec& rate) {
  set(tenants_, tenant, rate);
}

void Shaper::set_campaign_rate(const std::string& campaign, const RateSpec& rate) {
  set(campaigns_, campaign, rate);
}

const Shaper::Entry* Shaper::find(std::string_view bucket) const {
  if (bucket.size() < 2) return nullptr;
  const auto& map = bucket[0] == 't' ? tenants_ : campaigns_;
  auto it = map.find(bucket.substr(2));
  return it == map.end() ? nullptr : &it->second;
}

Shaper::JobDecision Shaper::may_send(std::string_view tenant, std::string_view campaign,
                                     runtime::SteadyTime now) const {
  JobDecision d;
  if (no_job_rates()) return d;
  // The later of the two tokens decides; the tenant's first when equal.
  auto consider = [&](const Map& map, std::string_view name, char kind) {
    if (name.empty() || map.empty()) return;
    auto it = map.find(name);
    if (it == map.end()) return;
    const runtime::SteadyTime due = it->second.bucket.next_token(now);
    if (due <= now || (!d.go && due <= d.wait_until)) return;
    d.go = false;
    d.wait_until = due;
    d.bucket = std::string(1, kind) + ":" + std::string(name);
  };
  consider(tenants_, tenant, 't');
  consider(campaigns_, campaign, 'c');
  return d;
}

ShapingDecision Shaper::bucket_ready(std::string_view bucket, runtime::SteadyTime now) const {
  const Entry* e = find(bucket);
  if (!e) return {};  // its rate was removed: go
  return QueueShaping::decide(e->bucket, now);
}

void Shaper::sent(std::string_view tenant, std::string_view campaign, uint32_t recipients,
                  runtime::SteadyTime now) {
  if (no_job_rates()) return;
  auto take = [&](Map& map, std::string_view name) {
    if (name.empty() || map.empty()) return;
    auto it = map.find(name);
    if (it == map.end()) return;
    it->second.bucket.take(now, recipients);
  };
  take(tenants_, tenant);
  take(campaigns_, campaign);
}

}  // namespace ringmail::policy
