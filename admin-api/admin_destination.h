// admin-api/admin_destination.h — where delivery would send mail for a
// domain, and from which egress source, found on an admin thread the way
// the delivery planner finds it: the first matching delivery.routes entry
// (mta::route_matches), else the domain's MX hosts. Shared by
// POST /api/v1/probe and GET /api/v1/explain.
//
// Owns: one blocking look-up per call on the calling admin thread, with
// its own resolver (nothing shared with the delivery thread, which keeps
// its own cache) and a deadline. Trust: the domain was checked by the
// router; DNS answers are untrusted and only passed on as names.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "conf/config_policy.h"
#include "mta/dns/dns_resolver.h"
#include "policy/egress_selector.h"

namespace ringmail::admin {

struct Destination {
  enum class Outcome {
    found,           // site and hosts are set
    no_destination,  // NXDOMAIN, null MX, no host with an address: mail to it bounces
    lookup_failed,   // a temporary DNS failure, a timeout, no resolver
  };
  Outcome outcome = Outcome::lookup_failed;
  std::string site;  // as the planner names it: the route's smarthost, or the MX host set
  // The domain policy.shaping `domain` rules see for that site, as the
  // planner gives it: a route's domain pattern, else the domain itself.
  std::string shaping_domain;
  std::vector<mta::MxHost> hosts;  // by preference; a route: its smarthost
  uint16_t port = 25;
  std::string error;  // why not found: "DNS: …", "DNS lookup of D timed out", …
};

class DestinationFinder {
 public:
  virtual ~DestinationFinder() = default;
  // `domain` lower case, checked by the router.
  virtual Destination find(const conf::Config& config, const std::string& domain) = 0;
};

// Routes from the config, MX answers from the config's nameservers.
class DnsDestinationFinder final : public DestinationFinder {
 public:
  Destination find(const conf::Config& config, const std::string& domain) override;

  static constexpr std::chrono::seconds kLookupTimeout{30};
};

// The source a job of the default pool gets first, as the planner's
// EgressSelector chooses it; the machine's default address (name
// "default") without one. Inline, as named_source: config look-ups only.
inline policy::EgressChoice default_source(const conf::Config& config) {
  policy::EgressSelector selector;
  selector.set_policy(config.policy.get());
  return selector.select("");
}

// A policy.sources entry by name, or "default" for the machine's default
// address; nullopt when the config has no such source.
inline std::optional<policy::EgressChoice> named_source(const conf::Config& config,
                                                        std::string_view name) {
  if (config.policy) {
    if (const conf::EgressSource* s = config.policy->find_source(name))
      return policy::EgressChoice{s->name, s->address};
  }
  if (name == policy::EgressChoice::kDefault) return policy::EgressChoice{};
  return std::nullopt;
}

}  // namespace ringmail::admin
