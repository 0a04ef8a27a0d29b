// policy/submission_limiter.h — how much mail each tenant may submit:
// policy.tenants[].max_messages (CONTRACT "Traffic policy").
//
// Owns: one token bucket (policy/token_bucket.h) per tenant that has
// max_messages: "N/unit" refills N tokens per unit with a burst of N. A
// message counts once, when its transaction starts (SMTP MAIL FROM, an
// injection request that passed validation), whatever its recipients; a
// refused message takes no token. Over the limit the caller refuses the
// message (SMTP 452 4.7.1, injection 429 with Retry-After) and is told when
// the next token is due. Tenants without max_messages, and mail of no
// tenant, are never limited.
//
// Threads: any. admit() is called from every inbound shard thread and the
// admin HTTP threads; set_policy() from the reload. One mutex guards the
// buckets: its critical section is a hash lookup and a few integer
// operations (GCRA), far below the cost of the SMTP command around it, so a
// finer scheme (per-tenant locks, atomics) would buy nothing measurable.
// With no tenant limited, admit() is one relaxed atomic load and returns.
// Pure otherwise: times are passed in (steady time), no I/O.
// Durability: none; the buckets start full at start-up (a restart forgives
// what was spent, as a restart of a rate limiter commonly does).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "conf/config_policy.h"
#include "policy/token_bucket.h"
#include "runtime/clock.h"

namespace ringmail::policy {

struct SubmissionVerdict {
  bool admitted = true;
  // When refused: the tenant's limit as configured ("10000/h") and how
  // long until its next token (> 0).
  std::string limit;
  runtime::Millis retry_after{0};
};

class SubmissionLimiter {
 public:
  // The buckets of `policy`'s tenants (null: none). A tenant whose
  // max_messages is unchanged keeps its bucket as it is; one whose limit
  // changed gets a bucket of the new rate that has spent as many tokens as
  // the old one had at `now` (at most the new burst): a raised limit lets
  // mail in at once, a lowered one holds a tenant that already used it up.
  // Tenants no longer limited lose their buckets.
  void set_policy(const conf::PolicyConfig* policy, runtime::SteadyTime now);

  // One message of `tenant` at `now`: admitted (a token taken) or refused.
  SubmissionVerdict admit(std::string_view tenant, runtime::SteadyTime now);

  // Whether any tenant is limited.
  bool limits_any() const { return any_.load(std::memory_order_relaxed); }

 private:
  struct Limit {
    conf::Rate rate;
    TokenBucket bucket;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::atomic<bool> any_{false};
  std::mutex mutex_;
  std::unordered_map<std::string, Limit, Hash, std::equal_to<>> limits_;
};

}  // namespace ringmail::policy
