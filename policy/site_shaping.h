// policy/site_shaping.h — which policy.shaping rule governs a site.
//
// Owns: the matching of shaping rules (first match wins, CONTRACT.md) to a
// destination: `domain` against the recipient domain that routed to the
// site, `mx_suffix` against the site's MX host names, `provider` against the
// shipped table of the large mailbox providers' MX suffixes (which lives in
// mail/mailbox_provider.h, so that conf/ can check provider names). Pure
// functions; any thread.
#pragma once

#include <string_view>
#include <vector>

#include "conf/config_policy.h"
#include "mail/mailbox_provider.h"

namespace ringmail::policy {

using mail::provider_mx_suffixes;

// The first rule of `rules` matching a destination, or null. mx_hosts are
// lower-case host names without the trailing dot; domain is lower case.
const conf::ShapingRule* match_shaping(const std::vector<conf::ShapingRule>& rules,
                                       std::string_view domain,
                                       const std::vector<std::string_view>& mx_hosts);

}  // namespace ringmail::policy
