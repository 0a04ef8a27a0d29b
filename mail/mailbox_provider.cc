#include "mail/mailbox_provider.h"

#include <algorithm>

namespace ringmail::mail {
namespace {

struct Provider {
  std::string_view name;
  std::vector<std::string_view> aliases;
  std::vector<std::string_view> suffixes;
};

// The MX host names in the comments are those the providers publish for
// their own domains.
const std::vector<Provider>& table() {
  static const std::vector<Provider> providers = {
      // gmail-smtp-in.l.google.com, altN.gmail-smtp-in.l.google.com (Gmail);
      // aspmx.l.google.com, smtp.google.com (Workspace); aspmx2.googlemail.com.
      {"gmail", {"google"}, {".google.com", ".googlemail.com"}},
      // outlook-com.olc.protection.outlook.com (Outlook.com, Hotmail),
      // example-com.mail.protection.outlook.com (Microsoft 365), its DANE MX
      // example-com.o-v1.mx.microsoft, the old mxN.hotmail.com.
      {"outlook", {"microsoft", "office365"}, {".outlook.com", ".hotmail.com", ".mx.microsoft"}},
      // mta5.am0.yahoodns.net (Yahoo), mx-aol.mail.gm0.yahoodns.net (AOL).
      {"yahoo", {"aol"}, {".yahoodns.net", ".yahoo.com", ".aol.com"}},
      // mx01.mail.icloud.com, mx02.mail.icloud.com (icloud.com, me.com, mac.com).
      {"icloud", {"apple"}, {".icloud.com", ".apple.com"}},
      // mx00.emig.gmx.net (gmx.net, gmx.de), mx00.gmx.com.
      {"gmx", {}, {".gmx.net", ".gmx.com"}},
      {"webde", {}, {".web.de"}},  // mx-ha03.web.de
      // mx1h1.comcast.net, mx2h1.comcast.net (formerly mx1.comcast.net).
      {"comcast", {"xfinity"}, {".comcast.net"}},
      {"orange", {"wanadoo"}, {".orange.fr"}},  // smtp-in.orange.fr
      {"mailru", {}, {".mail.ru"}},             // mxs.mail.ru
      {"yandex", {}, {".yandex.net", ".yandex.ru"}},
      {"zoho", {}, {".zoho.com", ".zoho.eu"}},
      {"fastmail", {}, {".messagingengine.com"}},  // in1-smtp.messagingengine.com
      {"proton", {}, {".protonmail.ch"}},          // mail.protonmail.ch
  };
  return providers;
}

const Provider* find(std::string_view name) {
  for (const Provider& p : table()) {
    if (p.name == name || std::find(p.aliases.begin(), p.aliases.end(), name) != p.aliases.end())
      return &p;
  }
  return nullptr;
}

}  // namespace

const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider) {
  static const std::vector<std::string_view> none;
  const Provider* p = find(provider);
  return p ? p->suffixes : none;
}

const std::vector<std::string_view>& provider_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const Provider& p : table()) {
      out.push_back(p.name);
      out.insert(out.end(), p.aliases.begin(), p.aliases.end());
    }
    std::sort(out.begin(), out.end());
    return out;
  }();
  return names;
}

std::string_view canonical_provider(std::string_view name) {
  const Provider* p = find(name);
  return p ? p->name : std::string_view();
}

std::string_view provider_of_hosts(const std::vector<std::string_view>& mx_hosts) {
  for (const Provider& p : table()) {
    if (hosts_of_provider(p.name, mx_hosts)) return p.name;
  }
  return {};
}

bool host_has_suffix(std::string_view host, std::string_view suffix) {
  if (suffix.empty()) return false;
  if (suffix.front() == '.') return host.size() > suffix.size() && host.ends_with(suffix);
  if (host == suffix) return true;
  return host.size() > suffix.size() && host.ends_with(suffix) &&
         host[host.size() - suffix.size() - 1] == '.';
}

bool hosts_of_provider(std::string_view provider, const std::vector<std::string_view>& mx_hosts) {
  for (std::string_view suffix : provider_mx_suffixes(provider)) {
    for (std::string_view host : mx_hosts) {
      if (host_has_suffix(host, suffix)) return true;
    }
  }
  return false;
}

}  // namespace ringmail::mail
