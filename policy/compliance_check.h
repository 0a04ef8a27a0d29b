// policy/compliance_check.h — what a bulk sender needs for one From domain,
// decided from facts: `ringmaild -c F --check-compliance DOMAIN` (Ringmail
// extension; CONTRACT.md "Feedback, suppression and compliance in detail").
//
// The checks, in the order they are reported (Gmail's and Yahoo's 2024
// bulk-sender rules):
//   dkim         every dkim[] entry that signs mail from DOMAIN (same domain,
//                or a parent with subdomains: true) has a private key that
//                loads and a key record at SELECTOR._domainkey.D whose k= and
//                p= are that key's (missing otherwise; no entry: missing);
//   spf          exactly one v=spf1 TXT record at DOMAIN, and at the
//                policy.return_path domain when that differs (the envelope
//                sender's domain is the one SPF checks); "+all" is a warning;
//   dmarc        a v=DMARC1 record with a valid p= at _dmarc.DOMAIN or, as
//                receivers fall back to the organisational domain, at the
//                nearest parent that has one (no public-suffix list: every
//                parent down to two labels is asked);
//   unsubscribe  policy.list_unsubscribe is configured;
//   tls          delivery.tls is opportunistic or required (none: missing);
//   return_path  policy.return_path is configured (a warning only).
//
// Owns: the decisions. The caller (mta/compliance_command.h) loads the DKIM
// keys, asks DNS for every name compliance_txt_names() lists, and hands the
// facts to check_compliance(), which reads nothing else: pure, any thread.
//
// SECURITY: TXT answers are anyone's text. They are parsed by
// policy/sender_auth_records.h and quoted in reasons only through
// printable_excerpt().
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace ringmail::policy {

enum class ComplianceStatus { ok, warn, missing };
std::string_view compliance_status_name(ComplianceStatus status);

struct ComplianceLine {
  std::string check;  // "dkim", "spf", "dmarc", "unsubscribe", "tls", "return_path"
  ComplianceStatus status = ComplianceStatus::missing;
  std::string reason;  // one line, printable ASCII
};

struct ComplianceReport {
  std::vector<ComplianceLine> lines;
  // No line is missing (warnings do not count).
  bool passed() const;
};

// What DNS answered for one TXT name.
struct TxtAnswer {
  enum class Kind {
    records,     // records holds every TXT record of the name
    no_records,  // the name exists without a TXT record
    no_domain,   // NXDOMAIN
    failed,      // SERVFAIL, REFUSED, timeout, malformed: error says which
  };
  Kind kind = Kind::failed;
  std::vector<std::string> records;  // each with its character-strings joined
  std::string error;
};
using TxtAnswers = std::map<std::string, TxtAnswer, std::less<>>;  // by name asked, lower case

// One dkim[] entry that signs mail from the domain, and what loading its
// private key showed.
struct DkimKeyFacts {
  size_t index = 0;          // in Config::dkim
  std::string load_error;    // "" when the private key loaded
  std::string load_warning;  // e.g. a weak RSA key; "" for none
  std::string key_type;      // "rsa" or "ed25519" (k=), when it loaded
  // Every p= value (base64) a verifier accepts for the key: for rsa its
  // SubjectPublicKeyInfo and its PKCS#1 RSAPublicKey, for ed25519 the raw
  // 32 octets. The first is the one to publish.
  std::vector<std::string> public_keys;
};

// The DOMAIN argument as the checks take it: lower case, without a
// trailing dot; nullopt when it is not a domain name.
std::optional<std::string> compliance_domain(std::string_view argument);

// True when dkim[] entry `key` signs mail from `domain` (lower case, no
// trailing dot): the same domain, or a subdomain with match_subdomains.
bool dkim_key_signs_for(const conf::DkimKey& key, std::string_view domain);

// The TXT names check_compliance() reads, lower case, each once: the DKIM
// key records of the entries that sign for `domain`, SPF at `domain` (and
// at the return-path domain), and the DMARC names from _dmarc.DOMAIN up.
std::vector<std::string> compliance_txt_names(const conf::Config& config, std::string_view domain);

// `domain`: lower case, no trailing dot. `keys`: one per dkim[] entry that
// signs for the domain (an entry without facts counts as not loaded).
// `txt`: answers by name; a name compliance_txt_names() lists that is not
// there counts as a failed lookup.
ComplianceReport check_compliance(const conf::Config& config, std::string_view domain,
                                  const std::vector<DkimKeyFacts>& keys, const TxtAnswers& txt);

}  // namespace ringmail::policy
