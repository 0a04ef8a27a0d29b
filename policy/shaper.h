// policy/shaper.h — whether a (source, site)'s next attempt or connection
// may go now, and if not, exactly when: the message_rate and
// connection_rate token buckets of CONTRACT.md ("Traffic policy in detail").
//
// Owns: two kinds of buckets, all policy/token_bucket.h.
//  - QueueShaping, one per ready queue (source, site), held in the
//    planner's site table: its message_rate (per recipient attempt) and
//    connection_rate (per new connection), from the site's shaping rule.
//    A rate cut of a backoff rule scales both (set_factor).
//  - Shaper: the rates across all sites of each tenant (policy.tenants[])
//    and campaign (the campaign's message_rate).
// A job waits for a token in its ready queue or in the tenant's or
// campaign's wait list (the planner's): not an attempt, not a deferral;
// the answer says when the token is due so that the planner wakes then,
// once, instead of polling. Recipients count one token each; a job of k
// recipients that finds a token takes k (the bucket goes into debt), so
// the rate holds over a window within one job's size.
// Pure: times passed in, no I/O; one thread (the planner's). Not durable:
// buckets start full after a restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "policy/token_bucket.h"
#include "runtime/clock.h"

namespace ringmail::conf {
struct Rate;
}

namespace ringmail::policy {

struct ShapingDecision {
  bool go = true;
  runtime::SteadyTime wait_until{};  // with go == false: a token is there then
};

// A rate as configured: count per period, with a burst (0: the count).
struct RateSpec {
  uint64_t count = 0;
  runtime::Millis per{0};
  uint64_t burst = 0;
  bool limited() const { return count > 0 && per.count() > 0; }
  friend bool operator==(const RateSpec&, const RateSpec&) = default;
};
RateSpec rate_spec(const conf::Rate& rate, uint64_t burst = 0);

// The buckets of one ready queue.
class QueueShaping {
 public:
  // Keeps the buckets' state when the rates are unchanged (a reload).
  void configure(const RateSpec& message_rate, const RateSpec& connection_rate);
  bool limited() const { return messages_.limited() || connections_.limited(); }

  ShapingDecision may_send(runtime::SteadyTime now) const { return decide(messages_, now); }
  void sent(uint32_t recipients, runtime::SteadyTime now);
  ShapingDecision may_connect(runtime::SteadyTime now) const { return decide(connections_, now); }
  void connected(runtime::SteadyTime now) { connections_.take(now); }

  // A backoff rule's rate cut (1.0 restores the configured rates).
  void set_factor(double factor, runtime::SteadyTime now);
  const RateSpec& message_rate() const { return message_spec_; }
  const RateSpec& connection_rate() const { return connection_spec_; }

  // Go, or wait until the bucket's next token.
  static ShapingDecision decide(const TokenBucket& bucket, runtime::SteadyTime now);

 private:
  RateSpec message_spec_, connection_spec_;
  TokenBucket messages_, connections_;
};

class Shaper {
 public:
  // Rates across all sites; a reload keeps the tokens of unchanged rates.
  void set_tenant_rate(const std::string& tenant, const RateSpec& rate);
  void set_campaign_rate(const std::string& campaign, const RateSpec& rate);
  // Drops tenants not in `keep` (a reload removed their rate).
  template <typename Keep>
  void retain_tenants(Keep&& keep) {
    std::erase_if(tenants_, [&](const auto& entry) { return !keep(entry.first); });
  }

  // True when neither a tenant nor a campaign has a rate: the planner
  // skips the per-job check (one branch on the delivery path).
  bool no_job_rates() const { return tenants_.empty() && campaigns_.empty(); }

  // Whether a job of this tenant and campaign may start now; if not, which
  // bucket holds it ("t:NAME" or "c:NAME", the planner's wait list) and
  // when its token is due.
  struct JobDecision {
    bool go = true;
    std::string bucket;
    runtime::SteadyTime wait_until{};
  };
  JobDecision may_send(std::string_view tenant, std::string_view campaign,
                       runtime::SteadyTime now) const;
  // The wait list's bucket: whether it has a token now, and when it will.
  ShapingDecision bucket_ready(std::string_view bucket, runtime::SteadyTime now) const;
  // A job of k recipients started (takes k tokens of each of its buckets).
  void sent(std::string_view tenant, std::string_view campaign, uint32_t recipients,
            runtime::SteadyTime now);

 private:
  struct Entry {
    RateSpec spec;
    TokenBucket bucket;
  };
  // Looked up by string_view on the delivery path: no string is built.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;
  static void set(Map& map, const std::string& name, const RateSpec& rate);
  const Entry* find(std::string_view bucket) const;

  Map tenants_;
  Map campaigns_;
};

}  // namespace ringmail::policy
