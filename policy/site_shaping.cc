#include "policy/site_shaping.h"

#include <map>
#include <string>

namespace ringmail::policy {

namespace {

// "google.com" matches "google.com" and "x.google.com"; ".google.com" only
// the latter.
bool host_has_suffix(std::string_view host, std::string_view suffix) {
  if (suffix.empty()) return false;
  if (suffix.front() == '.') return host.size() > suffix.size() && host.ends_with(suffix);
  if (host == suffix) return true;
  return host.size() > suffix.size() && host.ends_with(suffix) &&
         host[host.size() - suffix.size() - 1] == '.';
}

}  // namespace

const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider) {
  static const std::map<std::string, std::vector<std::string_view>, std::less<>> table = {
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
  static const std::vector<std::string_view> none;
  auto it = table.find(provider);
  return it == table.end() ? none : it->second;
}

const conf::ShapingRule* match_shaping(const std::vector<conf::ShapingRule>& rules,
                                       std::string_view domain,
                                       const std::vector<std::string_view>& mx_hosts) {
  for (const conf::ShapingRule& rule : rules) {
    switch (rule.match.kind) {
      case conf::ShapingMatch::Kind::domain:
        if (rule.match.value == domain) return &rule;
        break;
      case conf::ShapingMatch::Kind::mx_suffix:
        for (std::string_view host : mx_hosts) {
          if (host_has_suffix(host, rule.match.value)) return &rule;
        }
        break;
      case conf::ShapingMatch::Kind::provider:
        for (std::string_view suffix : provider_mx_suffixes(rule.match.value)) {
          for (std::string_view host : mx_hosts) {
            if (host_has_suffix(host, suffix)) return &rule;
          }
        }
        break;
    }
  }
  return nullptr;
}

}  // namespace ringmail::policy
