// policy/egress_selector.h — which egress source a job's connection leaves
// from, chosen from the job's pool.
//
// Owns: the pools of the config (sources resolved by name, with their
// weights) and the turn state of each pool. A pool's sources are used in
// proportion to their weights by smooth weighted round robin (nginx's
// upstream algorithm): at each pick every source adds its weight to its
// credit, the source with the most credit is picked (the first configured
// on a tie) and loses the pool's total weight. Weights 5:3:2 give exactly
// 5, 3 and 2 picks in every 10, interleaved (a b a c a b a b a c ...)
// rather than in runs. A job whose pool is unknown or empty uses the pool
// "default"; without any, the machine's default address.
//
// Unavailable sources (select(pool, available)): a source the caller says
// is unavailable (its (source, site) suspended, over its warm-up cap) is
// left out of that pick entirely: its credit is frozen, neither earning
// while it is skipped nor losing what it had, and the others share the
// pick by their weights. So it yields its turns while it is out and gets
// its weight's share again from the pick it returns, with no catch-up
// burst (no unbounded credit: every credit stays within the pool's total
// weight). When no source of the pool is available, the answer is
// nullopt and the caller holds the job; nothing falls back to another
// pool or to the machine's address.
//
// A reload keeps a pool's credits when its members (names and weights, in
// order) are unchanged, so that frequent reloads do not favour its first
// source; a pool whose members changed starts afresh.
//
// Pure: no clock, no I/O; one thread (the delivery planner's).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "conf/config_policy.h"

namespace ringmail::policy {

// The egress source of a connection: a policy.sources entry, or the
// machine's default address (name "default", no address).
struct EgressChoice {
  static inline const std::string kDefault = "default";
  std::string name = kDefault;
  std::optional<conf::IpAddress> address;  // bound before connect; none: the default
};

// Whether a source may take the job now (the caller's facts: suspension,
// warm-up cap, ...).
using EgressAvailable = std::function<bool(const EgressChoice&)>;

// The name of the pool a job leaves from (CONTRACT "Traffic policy"): its
// campaign's pool if it has one, else its tenant's (policy.tenants[].pool),
// else "default". The result views campaign_pool, the policy or a literal.
// policy may be null.
std::string_view job_pool(std::string_view campaign_pool, std::string_view tenant,
                          const conf::PolicyConfig* policy);

class EgressSelector {
 public:
  // policy may be null (no sources configured).
  void set_policy(const conf::PolicyConfig* policy);
  // The source for the next job of `pool` ("" is the default pool).
  EgressChoice select(std::string_view pool);
  // The same, leaving out the sources for which available() is false (see
  // the header comment); nullopt when none of the pool is available. The
  // machine's default address, used without a pool, is asked about too.
  std::optional<EgressChoice> select(std::string_view pool, const EgressAvailable& available);

 private:
  struct Member {
    EgressChoice choice;
    int64_t weight = 1;
    int64_t credit = 0;  // nginx's current_weight
  };
  struct Pool {
    std::vector<Member> members;
  };
  Pool* find(std::string_view pool);

  std::unordered_map<std::string, Pool> pools_;
};

}  // namespace ringmail::policy
