// mta/smtp/smtp_message_headers.h — the header work done on a message as it is
// accepted: parsing the header section (with folding), the Received: trace
// header, Message-ID and Date for submission (RFC 6409 §8), and moving the
// campaign header into metadata (it is stripped, folded lines included).
//
// Owns: pure functions over a message held in memory; any thread may call
// them. Content is expected with CRLF line endings (SmtpDataReader's output).
//
// SECURITY: faces the network through the message content. Parsing never
// reads outside the given view; values copied into new headers come from
// validated envelope data, and the campaign value is sanitised.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mail/mail_time.h"

namespace ringmail::mta {

struct HeaderField {
  std::string_view name;  // as written, without the colon
  std::string_view raw;   // the whole field: name, value, continuation lines, CRLF
};

struct HeaderSection {
  std::vector<HeaderField> fields;
  // Offset of the first body octet (after the empty line when there is one).
  size_t body_offset = 0;
  // True when an empty line separates the header section from the body.
  bool has_separator = false;
  // The content begins with a continuation line (or another form that
  // cannot be a header section): reject with 550 5.6.0.
  bool malformed = false;
};

// A first line that is not a header field means "no header section" (the
// whole content is body); a later non-header line ends the section, as in
// Postfix's cleanup.
HeaderSection parse_header_section(std::string_view content);

// The field's value after the colon, unfolded (CRLF before WSP removed) and
// trimmed of surrounding blanks.
std::string unfolded_value(const HeaderField& field);

// "Tue, 03 Mar 2026 12:34:56 +0000" (UTC).
using mail::format_rfc5322_date;

struct ReceivedTrace {
  std::string_view helo;
  std::string_view client_ip;      // without brackets; IPv6 gets "IPv6:"
  std::string_view hostname;       // our name
  std::string_view protocol;       // SMTP | ESMTP | ESMTPS | ESMTPA | ESMTPSA (RFC 3848)
  std::string_view id;             // queue id
  std::string_view for_recipient;  // "" unless exactly one recipient
  int64_t unix_ms = 0;
};

// "Received: from H (unknown [IP]) by HOST (Ringmail) with P id ID for <R>; DATE",
// folded at blanks so that lines stay within 78 octets; ends with CRLF.
std::string make_received_header(const ReceivedTrace& trace);

struct HeaderRewrite {
  std::string_view campaign_header;              // matched case-insensitively; "" = none
  bool add_missing_message_id_and_date = false;  // submission mode
  std::string_view message_id;                   // "<id@host>" used when Message-ID is missing
  int64_t unix_ms = 0;                           // for Date:
};

struct RewriteResult {
  bool ok = false;       // false: malformed header section (550 5.6.0)
  std::string campaign;  // value of the first campaign header, "" if none
};

// Writes `prepend` (the Received: header), the processed header section,
// any added headers and the body of `content` to *out.
RewriteResult rewrite_message(std::string_view content, std::string_view prepend,
                              const HeaderRewrite& rewrite, std::string* out);

}  // namespace ringmail::mta
