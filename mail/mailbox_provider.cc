#include "mail/mailbox_provider.h"

#include <map>
#include <string>

namespace ringmail::mail {
namespace {

using Table = std::map<std::string, std::vector<std::string_view>, std::less<>>;

const Table& table() {
  static const Table providers = {
      {"gmail", {".google.com", ".googlemail.com"}},
      {"google", {".google.com", ".googlemail.com"}},
      {"outlook", {".outlook.com", ".hotmail.com"}},
      {"microsoft", {".outlook.com", ".hotmail.com"}},
      {"yahoo", {".yahoodns.net", ".yahoo.com"}},
      {"aol", {".yahoodns.net", ".aol.com"}},
      {"apple", {".icloud.com", ".apple.com"}},
      {"icloud", {".icloud.com", ".apple.com"}},
      {"gmx", {".gmx.net", ".gmx.com"}},
      {"webde", {".web.de"}},
      {"orange", {".orange.fr"}},
      {"mailru", {".mail.ru"}},
      {"yandex", {".yandex.net", ".yandex.ru"}},
      {"zoho", {".zoho.com", ".zoho.eu"}},
      {"fastmail", {".messagingengine.com"}},
      {"proton", {".protonmail.ch"}},
  };
  return providers;
}

}  // namespace

const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider) {
  static const std::vector<std::string_view> none;
  auto it = table().find(provider);
  return it == table().end() ? none : it->second;
}

const std::vector<std::string_view>& provider_names() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> out;
    for (const auto& entry : table()) out.push_back(entry.first);
    return out;
  }();
  return names;
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
