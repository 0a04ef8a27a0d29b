#include "policy/site_shaping.h"

namespace ringmail::policy {

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
          if (mail::host_has_suffix(host, rule.match.value)) return &rule;
        }
        break;
      case conf::ShapingMatch::Kind::provider:
        if (mail::hosts_of_provider(rule.match.value, mx_hosts)) return &rule;
        break;
    }
  }
  return nullptr;
}

}  // namespace ringmail::policy
