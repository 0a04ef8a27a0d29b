// mail/mailbox_provider.h — the shipped table of large mailbox providers:
// each name ("gmail", "outlook", …), the other names it answers to
// ("google"), and the MX host suffixes that define it.
//
// Owns: the table and suffix matching. It sits below conf/ (like the bounce
// categories) so that the config can refuse an unknown provider name with
// its line, and policy/ can match sites against it (the shaping defaults
// shipped per provider are policy's: policy/provider_defaults.h). Pure;
// any thread.
#pragma once

#include <string_view>
#include <vector>

namespace ringmail::mail {

// The MX host suffixes of a provider by name or alias ("gmail", "google",
// "outlook", "microsoft", "office365", "yahoo", "aol", "icloud", "apple",
// "gmx", "webde", "comcast", "orange", "mailru", "yandex", "zoho",
// "fastmail", "proton", …); empty when unknown.
const std::vector<std::string_view>& provider_mx_suffixes(std::string_view provider);

// Every name and alias of the table, sorted (for error messages and docs).
const std::vector<std::string_view>& provider_names();

// The provider's own name for a name or alias ("google" -> "gmail"); ""
// when unknown.
std::string_view canonical_provider(std::string_view name);

// The provider (its own name) one of whose suffixes ends one of mx_hosts;
// "" when none. No two providers share a suffix, so a host has at most one.
std::string_view provider_of_hosts(const std::vector<std::string_view>& mx_hosts);

// "google.com" matches "google.com" and "x.google.com"; ".google.com" only
// the latter. host is lower case without the trailing dot.
bool host_has_suffix(std::string_view host, std::string_view suffix);

// One of mx_hosts ends in one of the provider's suffixes (name or alias).
bool hosts_of_provider(std::string_view provider, const std::vector<std::string_view>& mx_hosts);

}  // namespace ringmail::mail
