#include "policy/provider_defaults.h"

#include <map>
#include <string>

namespace ringmail::policy {

const ProviderDefaults* shipped_defaults(std::string_view provider) {
  // Starting points that large senders use, which an operator's
  // policy.shaping rule overrides field by field.
  static const std::map<std::string, ProviderDefaults, std::less<>> table = {
      // Gmail and Google Workspace share one edge (KumoMTA combines them
      // too). 5 connections per source, 50 messages each: KumoMTA's shipped
      // shaping.toml (provider "google", provider_connection_limit). TLS:
      // Google's sender guidelines (support.google.com/mail/answer/81126)
      // require a TLS connection of every sender since February 2024.
      {"gmail", {5, 50, true}},
      // Outlook.com, Microsoft 365 and its DANE MX. 5 connections per source,
      // 50 messages each: KumoMTA's shaping.toml (providers "outlook",
      // "office365", "office365-dane"; Microsoft's sender policies at
      // sendersupport.olc.protection.outlook.com). KumoMTA counts the three
      // edges apart; here they share one limit.
      {"outlook", {5, 50, false}},
      // Yahoo and AOL. 20 messages per connection, no connection cap:
      // "provided by Yahoo directly" in KumoMTA's shaping.toml
      // (senders.yahooinc.com/best-practices).
      {"yahoo", {std::nullopt, 20, false}},
      // iCloud. 10 connections per source, 5 messages each: KumoMTA's
      // shaping.toml (provider "apple"; support.apple.com/en-us/102322).
      {"icloud", {10, 5, false}},
      // GMX and WEB.DE (United Internet). 4 connections, 20 messages each,
      // TLS required: the community rules contributed to KumoMTA
      // (community/shaping.toml, provider "gmx.net_web.de", as-is).
      {"gmx", {4, 20, true}},
      {"webde", {4, 20, true}},
      // Comcast / Xfinity. 25 connections, 1000 messages each, TLS required:
      // "provided directly by Comcast" in KumoMTA's shaping.toml
      // (spa.xfinity.com/postmaster).
      {"comcast", {25, 1000, true}},
      // Orange and Wanadoo. 2 connections, 100 messages each: the traffic-
      // policy issue's starting point. KumoMTA's shaping.toml ships 3
      // connections for orange.fr and its community rules drop to 1 on
      // Orange's "Trop de connexions"; Orange's postmaster page:
      // messagerie.orange.fr/postmaster.html.
      {"orange", {2, 100, false}},
  };
  auto it = table.find(provider);
  return it == table.end() ? nullptr : &it->second;
}

}  // namespace ringmail::policy
