// mta/inbound/mime_builder.h — the MIME message of the injection API's built
// form (CONTRACT.md "Injection"), made with GMime 3 rather than by hand:
// text/plain, text/html or multipart/alternative of both; UTF-8 bodies,
// quoted-printable or base64 as their content needs (7bit when plain
// ASCII with short lines); RFC 2047 encoded display names, subject and
// extra header values; Date and Message-ID. Bcc recipients are envelope
// only: no Bcc field is ever written.
//
// Owns: pure functions; any thread may call them (GMime is initialised once,
// and each call uses objects of its own).
// Trust: every value comes from an API request, already checked by the
// request parser (admin-api/admin_injection.h); GMime encodes and folds it,
// so that the output is CRLF-only, 7-bit in its headers (8-bit only in an
// address that needs SMTPUTF8) and free of NUL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ringmail::mta {

struct Mailbox {
  std::string display_name;  // UTF-8, "" when none
  std::string address;       // the addr-spec, "local@domain"
};

// One mailbox as written in a From or To field: `Name <local@domain>`,
// `"Quoted, Name" <local@domain>` or `local@domain` (RFC 5322 name-addr or
// addr-spec; the display name may be UTF-8). nullopt for anything else: an
// empty text, a group, several addresses, or an addr-spec that is not a
// valid SMTP mailbox (mta/smtp/smtp_command.h is_valid_mailbox).
std::optional<Mailbox> parse_mailbox(std::string_view text);

struct MimeMessageSpec {
  Mailbox from;
  std::vector<Mailbox> to;
  std::vector<Mailbox> cc;
  std::optional<Mailbox> reply_to;
  std::string subject;              // UTF-8
  std::optional<std::string> text;  // UTF-8, any line endings
  std::optional<std::string> html;  // UTF-8, any line endings
  // Further fields, in order (their names were checked by the parser).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string message_id;    // "id@host", without angle brackets
  int64_t date_unix_ms = 0;  // Date:
};

// The RFC 5322 message with CRLF line endings, ending with CRLF. At least
// one of text and html must be set.
std::string build_mime_message(const MimeMessageSpec& spec);

// Any of CRLF, LF and a lone CR becomes CRLF: the canonical form of text
// (RFC 2045 §6.7) and the spool's form of a message (no dot-stuffing: the
// SMTP client stuffs on the way out).
std::string to_crlf_lines(std::string_view text);

// Header names the built form sets itself, compared case-insensitively;
// "headers" may not name them (nor any Content-* field).
bool is_reserved_header(std::string_view name);

}  // namespace ringmail::mta
