// mta/compliance_command.h — `ringmaild -c F --check-compliance DOMAIN`
// (Ringmail extension): gathers the facts policy/compliance_check.h decides
// on, and prints its report.
//
// Owns the I/O of the check and nothing else: it loads the private key of
// every dkim[] entry that signs for DOMAIN (mta/dkim/dkim_signer.h) and
// derives the public-key forms a verifier accepts (OpenSSL), asks the
// daemon's resolver (mta/dns/dns_resolver.h, delivery.dns.nameservers or
// /etc/resolv.conf) for the TXT names the check needs, all at once, and
// waits for the answers. Called once, on the main thread, before any other
// thread of the daemon exists; it starts and stops the resolver's thread.
//
// Output: one line per check on `out`, "CHECK STATUS REASON" with CHECK
// and STATUS padded to columns (STATUS: ok, warn, missing).
//
// SECURITY: DNS answers are untrusted; they reach the output only as the
// printable excerpts the decision quotes.
#pragma once

#include <cstdio>
#include <string_view>

#include "conf/config.h"

namespace ringmail::mta {

// The exit code: 0 when no required check is missing (warnings allowed),
// 1 when one is, 2 when `domain` is not a domain name or the resolver
// cannot start (the reason on `err`).
int run_compliance_check(const conf::Config& config, std::string_view domain, std::FILE* out,
                         std::FILE* err);

}  // namespace ringmail::mta
