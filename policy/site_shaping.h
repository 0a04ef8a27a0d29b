// policy/site_shaping.h — which policy.shaping rule governs a site.
//
// Owns: the matching of shaping rules (first match wins, CONTRACT.md) to a
// destination: `domain` against the recipient domain that routed to the
// site, `mx_suffix` against the site's MX host names, `provider` against a
// shipped table of the large mailbox providers' MX suffixes. Pure
// functions; any thread.
#pragma once

#include <string_view>
#include <vector>

#include "conf/config_policy.h"

namespace ringmail::policy {

// The MX host suffixes of a shipped provider by name or alias ("gmail",
// "google", "outlook", "yahoo", "icloud", "gmx", "comcast", "orange", …);
// empty when unknown.
const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider);

// The first rule of `rules` matching a destination, or null. mx_hosts are
// lower-case host names without the trailing dot; domain is lower case.
const conf::ShapingRule* match_shaping(const std::vector<conf::ShapingRule>& rules,
                                       std::string_view domain,
                                       const std::vector<std::string_view>& mx_hosts);

}  // namespace ringmail::policy
