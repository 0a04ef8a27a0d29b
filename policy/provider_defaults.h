// policy/provider_defaults.h — the mailbox providers Ringmail knows by
// name, and the shaping defaults it ships for them.
//
// Owns: the shipped provider table (CONTRACT.md "Traffic policy in
// detail"): each provider's name (what `match: {provider: …}` and the
// explain route call it), the other names a rule may use for it, the MX
// host suffixes that define it, and the limits its sites get where no
// policy.shaping rule sets them. A provider's max_connections counts per
// egress source across all sites of the provider, not per site. Each entry
// names where its numbers come from (provider_defaults.cc, README).
// Constant data and pure look-ups; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace ringmail::policy {

struct ShippedProvider {
  std::string_view name;                      // "gmail"
  std::vector<std::string_view> aliases;      // also accepted in rules: "google"
  std::vector<std::string_view> mx_suffixes;  // ".google.com" (see host_has_suffix)
  std::optional<uint32_t> max_connections;    // per source, across the provider's sites
  std::optional<uint32_t> max_messages_per_connection;
  bool tls_required = false;  // no delivery in clear text (unless delivery.tls: none)
};

// Every shipped provider, in the order MX hosts are matched against them.
// No two share a suffix, so a host belongs to at most one.
const std::vector<ShippedProvider>& shipped_providers();

// By name or alias (lower case); null when unknown.
const ShippedProvider* find_provider(std::string_view name);

// The provider one of whose suffixes ends one of mx_hosts (lower case, no
// trailing dot), the first in table order; null when none does.
const ShippedProvider* provider_of_mx(const std::vector<std::string_view>& mx_hosts);

// "google.com" matches "google.com" and "x.google.com"; ".google.com" only
// the latter (a leading dot: strictly below). Whole labels only.
bool host_has_suffix(std::string_view host, std::string_view suffix);

}  // namespace ringmail::policy
