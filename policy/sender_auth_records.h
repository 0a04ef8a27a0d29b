// policy/sender_auth_records.h — parsers of the DNS TXT records a receiver
// reads to authenticate a sender: the DKIM key record (RFC 6376 §3.6.1),
// the DMARC policy record (RFC 7489 §6.3, §6.4) and, of the SPF record
// (RFC 7208), its version and its "all" term.
//
// Each parser takes one TXT record with its character-strings joined, as
// RFC 6376 §3.6.2.2 and RFC 7208 §3.3 say a record is read. DKIM and DMARC
// share the tag-list syntax of RFC 6376 §3.2 (parse_tag_list()).
//
// Owns nothing: pure functions of their argument, any thread. Used by the
// compliance check (policy/compliance_check.h).
//
// SECURITY: the text comes from DNS, i.e. from anyone. The parsers only
// read their argument, never past it; anything malformed is an error value
// with a short reason that quotes at most a few bytes of the input, and
// those through printable_excerpt().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::policy {

struct Tag {
  std::string_view name;
  // Without the whitespace around it; whitespace inside (between words, or
  // folding inside a base64 p= value) is kept as it was.
  std::string_view value;
};

struct TagList {
  std::vector<Tag> tags;  // in record order, names unique
  std::string error;      // "" when the text is a tag-list
  // The tag called `name` (names compare case-sensitively, RFC 6376 §3.2),
  // or null.
  const Tag* find(std::string_view name) const;
};

// RFC 6376 §3.2: tag-spec *(";" tag-spec) [";"], where tag-spec is
// [WS] name [WS] "=" [WS] value [WS], name is ALPHA *(ALPHA/DIGIT/"_") and
// value is runs of %x21-3A / %x3C-7E separated by whitespace (SP, HTAB, CR,
// LF). A duplicate name makes the whole list invalid.
TagList parse_tag_list(std::string_view text);

// A DKIM key record (RFC 6376 §3.6.1).
struct DkimKeyRecord {
  std::string key_type = "rsa";  // k=, as written (lower case for the known ones)
  // p= with the whitespace removed, i.e. base64 as published; "" means the
  // key was revoked.
  std::string public_key;
  std::vector<std::string> hash_algorithms;  // h=; empty: every algorithm
  std::vector<std::string> service_types;    // s=; empty: "*"
  bool testing = false;                      // t=y
  bool strict_subdomains = false;            // t=s
};

struct DkimKeyRecordResult {
  std::optional<DkimKeyRecord> record;
  std::string error;  // why the text is not a usable key record, "" with a record
};

// v= (optional) must come first and be "DKIM1"; p= is required and must be
// base64 (RFC 4648 §4, with padding) or empty; k=, h=, s= and t= are read,
// other tags ignored. An unknown k= is returned as written: the caller
// compares it with its own key's type.
DkimKeyRecordResult parse_dkim_key_record(std::string_view text);

// True when the record allows rsa-sha256 / ed25519-sha256 signatures on
// email: h= absent or naming sha256, s= absent or naming "email" or "*".
bool dkim_key_record_allows_email_sha256(const DkimKeyRecord& record);

enum class DmarcPolicy { none, quarantine, reject };
std::string_view dmarc_policy_name(DmarcPolicy policy);

struct DmarcRecord {
  DmarcPolicy policy = DmarcPolicy::none;       // p=
  std::optional<DmarcPolicy> subdomain_policy;  // sp=
  int percent = 100;                            // pct=
  std::string aggregate_reports;                // rua=, as written
};

struct DmarcRecordResult {
  std::optional<DmarcRecord> record;
  std::string error;
};

// True when the text starts with the DMARC version tag, "v" [WS] "="
// [WS] "DMARC1", followed by whitespace, ";" or the end (RFC 7489 §6.4).
// Records for which this is false are not DMARC records and are discarded
// (RFC 7489 §6.6.3), the others are candidates even when broken.
bool is_dmarc_record(std::string_view text);

// A record is_dmarc_record() accepted: a valid tag-list whose p= is none,
// quarantine or reject (case-insensitive), sp= likewise when present,
// pct= 0..100.
DmarcRecordResult parse_dmarc_record(std::string_view text);

// True when the text starts with "v=spf1" (case-insensitive) followed by
// a space or the end (RFC 7208 §4.5).
bool is_spf_record(std::string_view text);

// The qualifier of the record's "all" mechanism (RFC 7208 §5.1), the last
// one if there are several; none when there is no "all" term.
enum class SpfAll { none, pass, neutral, softfail, fail };
SpfAll spf_all_term(std::string_view record);

// At most max_length bytes of text, every byte outside printable ASCII as
// "\xHH", with "..." when cut: DNS text fit for a terminal and a log line.
std::string printable_excerpt(std::string_view text, size_t max_length = 120);

}  // namespace ringmail::policy
