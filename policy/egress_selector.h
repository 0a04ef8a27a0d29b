// policy/egress_selector.h — which egress source a job's connection leaves
// from, chosen from the job's pool.
//
// Owns: the pools of the config (sources resolved by name) and the turn of
// each pool. Today every source of a pool takes its turn in order (round
// robin, as the delivery engine always did) and a job whose pool is
// unknown or empty uses the pool "default"; without any, the machine's
// default address. Weights and warm-up caps are the traffic-policy work.
// Pure: no clock, no I/O; one thread (the delivery planner's).
#pragma once

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

class EgressSelector {
 public:
  // policy may be null (no sources configured).
  void set_policy(const conf::PolicyConfig* policy);
  // The source for the next job of `pool` ("" is the default pool).
  EgressChoice select(std::string_view pool);

 private:
  struct Pool {
    std::vector<EgressChoice> sources;
    size_t next = 0;
  };
  Pool* find(std::string_view pool);

  std::unordered_map<std::string, Pool> pools_;
};

}  // namespace ringmail::policy
