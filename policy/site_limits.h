// policy/site_limits.h — the limits in force for a destination, and what
// set each of them.
//
// Owns: the layering of a site's static limits (CONTRACT.md "Traffic
// policy in detail"), field by field, the later layer winning where it
// sets a value: the delivery defaults (delivery.max_connections_per_site,
// max_messages_per_connection, tls), then the shipped defaults of the
// provider the site's MX hosts belong to (policy/provider_defaults.h),
// then the first matching policy.shaping rule. The delivery planner takes
// its site limits from here; GET /api/v1/explain shows them with their
// provenance. Live adjustments (backoff, warm-up) are not here: the
// planner owns those.
//
// Pure: config and destination in, limits out; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "conf/config_policy.h"

namespace ringmail::policy {

// Which layer set a limit; text() is the explain route's "set_by".
struct LimitOrigin {
  enum class Kind { delivery_defaults, shipped_provider, shaping_rule };
  Kind kind = Kind::delivery_defaults;
  std::string provider;  // shipped_provider: the provider's name
  size_t rule = 0;       // shaping_rule: its index in policy.shaping
  // "delivery defaults", "shipped provider gmail", "policy.shaping[2]".
  std::string text() const;
  friend bool operator==(const LimitOrigin&, const LimitOrigin&) = default;
};

template <typename T>
struct SetLimit {
  T value{};
  LimitOrigin set_by;
};

// A token bucket's parameters; no rate: unlimited.
struct RateLimit {
  std::optional<conf::Rate> rate;
  // Events that may go at once: the rule's burst (message_rate only), else
  // one period's count; 0 when unlimited.
  uint64_t burst = 0;
  friend bool operator==(const RateLimit&, const RateLimit&) = default;
};

// Where a connection limit is counted: per (source, site), or per source
// across every site of the provider (a provider rule's or a shipped
// provider's max_connections).
enum class ConnectionScope { site, provider };

struct SiteLimits {
  std::string provider;  // the shipped provider of the site, "" for none
  SetLimit<uint32_t> max_connections;
  ConnectionScope connection_scope = ConnectionScope::site;
  SetLimit<uint32_t> max_messages_per_connection;
  SetLimit<RateLimit> message_rate;     // per (source, site), per recipient attempt
  SetLimit<RateLimit> connection_rate;  // new connections per (source, site)
  SetLimit<bool> tls_required;
};

// The limits for mail to `domain` whose site has these MX host names (a
// route's smarthost host, an address literal's IP), both lower case
// without a trailing dot. The shaping rules see `domain` as the planner's
// site does: the recipient domain that routed there, or a route's domain.
SiteLimits resolve_site_limits(const conf::Config& config, std::string_view domain,
                               const std::vector<std::string_view>& mx_hosts);

}  // namespace ringmail::policy
