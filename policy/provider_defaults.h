// policy/provider_defaults.h — the shaping defaults Ringmail ships for the
// large mailbox providers.
//
// Owns: the limits a provider's sites get where no policy.shaping rule
// sets them (CONTRACT.md "Traffic policy in detail"), by the provider's
// own name from the provider table (mail/mailbox_provider.h, which defines
// each provider by its MX host suffixes). A provider's max_connections
// counts per egress source across all sites of the provider, not per site.
// Each entry names where its numbers come from (provider_defaults.cc,
// README). Constant data; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ringmail::policy {

struct ProviderDefaults {
  std::optional<uint32_t> max_connections;  // per source, across the provider's sites
  std::optional<uint32_t> max_messages_per_connection;
  bool tls_required = false;  // no delivery in clear text (unless delivery.tls: none)
};

// The shipped defaults of a provider by its own name ("gmail", not
// "google": mail::canonical_provider); null when it ships none.
const ProviderDefaults* shipped_defaults(std::string_view provider);

}  // namespace ringmail::policy
