#include "policy/site_shaping.h"

#include "policy/provider_defaults.h"

namespace ringmail::policy {

const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider) {
  static const std::vector<std::string_view> none;
  const ShippedProvider* p = find_provider(provider);
  return p ? p->mx_suffixes : none;
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
