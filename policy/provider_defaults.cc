#include "policy/provider_defaults.h"

#include <algorithm>

namespace ringmail::policy {

bool host_has_suffix(std::string_view host, std::string_view suffix) {
  if (suffix.empty()) return false;
  if (suffix.front() == '.') return host.size() > suffix.size() && host.ends_with(suffix);
  if (host == suffix) return true;
  return host.size() > suffix.size() && host.ends_with(suffix) &&
         host[host.size() - suffix.size() - 1] == '.';
}

const std::vector<ShippedProvider>& shipped_providers() {
  // The MX host names in the comments are those the providers publish for
  // their own domains; the numbers are starting points that large senders
  // use, which an operator's policy.shaping rule overrides field by field.
  static const std::vector<ShippedProvider> table = {
      // Gmail and Google Workspace: gmail-smtp-in.l.google.com and
      // altN.gmail-smtp-in.l.google.com, aspmx.l.google.com, smtp.google.com,
      // the old aspmx2.googlemail.com. Both share one edge (KumoMTA combines
      // them too). 5 connections per source, 50 messages each: KumoMTA's
      // shipped shaping.toml (provider "google", provider_connection_limit).
      // TLS: Google's sender guidelines (support.google.com/mail/answer/81126)
      // require a TLS connection of every sender since February 2024.
      {"gmail", {"google"}, {".google.com", ".googlemail.com"}, 5, 50, true},
      // Outlook.com / Hotmail (outlook-com.olc.protection.outlook.com),
      // Microsoft 365 tenants (example-com.mail.protection.outlook.com), their
      // DANE MX (example-com.o-v1.mx.microsoft) and the old mxN.hotmail.com.
      // 5 connections per source, 50 messages each: KumoMTA's shaping.toml
      // (providers "outlook", "office365", "office365-dane"; Microsoft's
      // sender policies at sendersupport.olc.protection.outlook.com). KumoMTA
      // counts the three edges apart; here they share one limit.
      {"outlook",
       {"microsoft", "hotmail", "office365"},
       {".outlook.com", ".hotmail.com", ".mx.microsoft"},
       5,
       50,
       false},
      // Yahoo and AOL (mta5.am0.yahoodns.net, mx-aol.mail.gm0.yahoodns.net).
      // 20 messages per connection: "provided by Yahoo directly" in KumoMTA's
      // shaping.toml (senders.yahooinc.com/best-practices); no connection cap.
      {"yahoo", {"aol"}, {".yahoodns.net", ".yahoo.com", ".aol.com"}, std::nullopt, 20, false},
      // iCloud, me.com, mac.com (mx01.mail.icloud.com, mx02.mail.icloud.com).
      // 10 connections per source, 5 messages each: KumoMTA's shaping.toml
      // (provider "apple"; Apple's sender guidance, support.apple.com/en-us/102322).
      {"icloud", {"apple"}, {".icloud.com", ".apple.com"}, 10, 5, false},
      // GMX (gmx.net, gmx.de: mx00.emig.gmx.net; gmx.com) and WEB.DE
      // (mx-ha03.web.de), both United Internet. 4 connections, 20 messages
      // each, TLS required: the community rules contributed to KumoMTA
      // (community/shaping.toml, provider "gmx.net_web.de", as-is).
      {"gmx", {}, {".gmx.net", ".gmx.com"}, 4, 20, true},
      {"webde", {"web.de"}, {".web.de"}, 4, 20, true},
      // Comcast / Xfinity (mx1h1.comcast.net, mx2h1.comcast.net, formerly
      // mx1.comcast.net). 25 connections, 1000 messages each, TLS required:
      // "provided directly by Comcast" in KumoMTA's shaping.toml
      // (spa.xfinity.com/postmaster).
      {"comcast", {"xfinity"}, {".comcast.net"}, 25, 1000, true},
      // Orange and Wanadoo (smtp-in.orange.fr). 2 connections, 100 messages
      // each: the traffic-policy issue's starting point. KumoMTA's
      // shaping.toml ships 3 connections for orange.fr and its community
      // rules drop to 1 on Orange's "Trop de connexions"; Orange's postmaster
      // page: messagerie.orange.fr/postmaster.html.
      {"orange", {"wanadoo"}, {".orange.fr"}, 2, 100, false},
      // Known by name for rules; no shipped limits.
      {"mailru", {}, {".mail.ru"}, std::nullopt, std::nullopt, false},  // mxs.mail.ru
      {"yandex",
       {},
       {".yandex.net", ".yandex.ru"},
       std::nullopt,
       std::nullopt,
       false},                                                                     // mx.yandex.net
      {"zoho", {}, {".zoho.com", ".zoho.eu"}, std::nullopt, std::nullopt, false},  // mx.zoho.com
      {"fastmail", {}, {".messagingengine.com"}, std::nullopt, std::nullopt, false},
      {"proton", {}, {".protonmail.ch"}, std::nullopt, std::nullopt, false},  // mail.protonmail.ch
  };
  return table;
}

const ShippedProvider* find_provider(std::string_view name) {
  for (const ShippedProvider& p : shipped_providers()) {
    if (p.name == name || std::find(p.aliases.begin(), p.aliases.end(), name) != p.aliases.end())
      return &p;
  }
  return nullptr;
}

const ShippedProvider* provider_of_mx(const std::vector<std::string_view>& mx_hosts) {
  for (const ShippedProvider& p : shipped_providers()) {
    for (std::string_view suffix : p.mx_suffixes) {
      for (std::string_view host : mx_hosts) {
        if (host_has_suffix(host, suffix)) return &p;
      }
    }
  }
  return nullptr;
}

}  // namespace ringmail::policy
