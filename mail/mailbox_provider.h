// mail/mailbox_provider.h — the shipped table of large mailbox providers:
// each name ("gmail", "outlook", …) and the MX host suffixes that define it.
//
// Owns: the table and suffix matching. It sits below conf/ (like the bounce
// categories) so that the config can refuse an unknown provider name with
// its line, and policy/ can match sites against it. Pure; any thread.
#pragma once

#include <string_view>
#include <vector>

namespace ringmail::mail {

// The MX host suffixes of a named provider ("gmail", "google", "outlook",
// "microsoft", "yahoo", "aol", "apple", "icloud", "gmx", "webde", "orange",
// "mailru", "yandex", "zoho", "fastmail", "proton"); empty when unknown.
const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider);

// Every name of the table, sorted (for error messages and docs).
const std::vector<std::string_view>& provider_names();

// "google.com" matches "google.com" and "x.google.com"; ".google.com" only
// the latter. host is lower case without the trailing dot.
bool host_has_suffix(std::string_view host, std::string_view suffix);

// One of mx_hosts ends in one of the provider's suffixes.
bool hosts_of_provider(std::string_view provider, const std::vector<std::string_view>& mx_hosts);

}  // namespace ringmail::mail
