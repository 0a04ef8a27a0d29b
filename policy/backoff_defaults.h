// policy/backoff_defaults.h — the shipped policy.backoff rules: the
// documented rate-limit and deferral replies of Gmail, Yahoo and Microsoft,
// and a few generic throttling texts.
//
// Owns: the rules and their order (first match wins, as for operator
// rules). They are used only when the config has no policy.backoff at all;
// a policy.backoff key, even `[]`, replaces them (CONTRACT.md). Each rule in
// backoff_defaults.cc names the page or the reply text it comes from, and
// says which durations are Ringmail's own choice where the provider gives
// none.
//
// Threads: built once on first use (thread-safe static), immutable after;
// any thread may read it. Network: the rules are searched over reply text
// from remote servers (conf::ResponseMatch::matches), never compiled from it.
#pragma once

#include <vector>

#include "conf/config_policy.h"

namespace ringmail::policy {

// The shipped rules, in the order they are tried.
const std::vector<conf::BackoffRule>& shipped_backoff_rules();

}  // namespace ringmail::policy
