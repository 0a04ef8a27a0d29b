#include "policy/site_limits.h"

#include "mail/mailbox_provider.h"
#include "policy/provider_defaults.h"
#include "policy/site_shaping.h"

namespace ringmail::policy {

namespace {

RateLimit rate_limit(const conf::Rate& rate) { return RateLimit{rate, rate.count}; }

}  // namespace

std::string LimitOrigin::text() const {
  switch (kind) {
    case Kind::delivery_defaults:
      return "delivery defaults";
    case Kind::shipped_provider:
      return "shipped provider " + provider;
    case Kind::shaping_rule:
      return "policy.shaping[" + std::to_string(rule) + "]";
  }
  return "delivery defaults";
}

SiteLimits resolve_site_limits(const conf::Config& config, std::string_view domain,
                               const std::vector<std::string_view>& mx_hosts) {
  const conf::DeliveryConfig& delivery = config.delivery;
  SiteLimits limits;
  limits.max_connections.value = delivery.max_connections_per_site;
  limits.max_messages_per_connection.value = delivery.max_messages_per_connection;
  limits.tls_required.value = delivery.tls == conf::OutboundTls::required;

  const conf::ShapingRule* rule = nullptr;
  if (config.policy) rule = match_shaping(config.policy->shaping, domain, mx_hosts);
  const bool provider_rule = rule && rule->match.kind == conf::ShapingMatch::Kind::provider;
  // A provider rule matched through that provider's suffixes; otherwise
  // the MX hosts say whose they are.
  limits.provider = std::string(provider_rule ? mail::canonical_provider(rule->match.value)
                                              : mail::provider_of_hosts(mx_hosts));
  if (const ProviderDefaults* shipped_limits = shipped_defaults(limits.provider)) {
    const LimitOrigin shipped{LimitOrigin::Kind::shipped_provider, limits.provider, 0};
    if (shipped_limits->max_connections) {
      limits.max_connections = {*shipped_limits->max_connections, shipped};
      limits.connection_scope = ConnectionScope::provider;
    }
    if (shipped_limits->max_messages_per_connection) {
      limits.max_messages_per_connection = {*shipped_limits->max_messages_per_connection, shipped};
    }
    // delivery.tls: none is the operator turning TLS off altogether;
    // required is already the strongest.
    if (shipped_limits->tls_required && delivery.tls == conf::OutboundTls::opportunistic) {
      limits.tls_required = {true, shipped};
    }
  }

  if (rule) {
    const LimitOrigin by_rule{LimitOrigin::Kind::shaping_rule, "",
                              static_cast<size_t>(rule - config.policy->shaping.data())};
    if (rule->max_connections) {
      limits.max_connections = {*rule->max_connections, by_rule};
      limits.connection_scope = provider_rule ? ConnectionScope::provider : ConnectionScope::site;
    }
    if (rule->max_messages_per_connection) {
      limits.max_messages_per_connection = {*rule->max_messages_per_connection, by_rule};
    }
    if (rule->message_rate) {
      RateLimit rate = rate_limit(*rule->message_rate);
      if (rule->burst > 0) rate.burst = rule->burst;
      limits.message_rate = {rate, by_rule};
    }
    if (rule->connection_rate) {
      limits.connection_rate = {rate_limit(*rule->connection_rate), by_rule};
    }
  }
  return limits;
}

}  // namespace ringmail::policy
