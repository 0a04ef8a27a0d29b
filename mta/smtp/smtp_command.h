// mta/smtp/smtp_command.h — parsing of inbound SMTP command lines (RFC 5321
// §4.1), of MAIL/RCPT paths (quoted local parts, address literals, RFC 6531
// UTF-8 addresses) and of their ESMTP parameters (SIZE, BODY, SMTPUTF8,
// RET, ENVID, AUTH, NOTIFY, ORCPT).
//
// Owns: nothing but pure functions from a line to a value or an error that
// the session maps to one reply. Any thread may call them.
//
// SECURITY: faces the network. Every function takes untrusted bytes,
// validates them completely (no control characters, well-formed UTF-8,
// RFC 5321 length limits) and never reads past the view it was given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ringmail::mta {

enum class SmtpVerb {
  helo,
  ehlo,
  mail,
  rcpt,
  data,
  bdat,
  rset,
  noop,
  quit,
  vrfy,
  expn,
  help,
  starttls,
  auth,
  unknown,
};

// One command line without its line ending. The views point into the line.
struct SmtpCommandLine {
  SmtpVerb verb = SmtpVerb::unknown;
  std::string_view verb_text;
  std::string_view argument;  // after the first space, trailing blanks removed
};

SmtpCommandLine parse_command_line(std::string_view line);

// Why a MAIL or RCPT argument was refused; the session maps each to a reply.
enum class CommandError {
  none,
  syntax,               // 501 5.5.4: no "FROM:<", junk after the path
  bad_address,          // 501 5.1.7 (sender) / 5.1.3 (recipient)
  unknown_parameter,    // 555 5.5.4
  bad_parameter,        // 501 5.5.4: bad value or duplicate
  utf8_needs_smtputf8,  // 553 5.6.7: UTF-8 sender without SMTPUTF8
};

struct MailFromCommand {
  std::string sender;  // without brackets and source route; "" = null sender
  bool sender_is_utf8 = false;
  std::optional<uint64_t> size;    // SIZE=, saturated at UINT64_MAX
  std::string body_type = "7BIT";  // 7BIT | 8BITMIME
  bool smtputf8 = false;
  std::string dsn_ret;    // FULL | HDRS (upper-cased) or ""
  std::string dsn_envid;  // xtext as given or ""
};

struct RcptToCommand {
  std::string recipient;  // without brackets and source route
  std::string domain;     // lower-cased (ASCII letters only)
  bool is_utf8 = false;
  std::string dsn_notify;  // as given or ""
  std::string dsn_orcpt;   // as given or ""
};

template <class T>
struct CommandParse {
  T value;
  CommandError error = CommandError::none;
  bool ok() const { return error == CommandError::none; }
};

// `argument` is what follows "MAIL " / "RCPT ".
CommandParse<MailFromCommand> parse_mail_from(std::string_view argument);
CommandParse<RcptToCommand> parse_rcpt_to(std::string_view argument);

// A path between angle brackets, e.g. "user@example.test" or
// "\"a b\"@[192.0.2.1]". Returns the domain part in *domain.
bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8, std::string_view* domain);
// RFC 5321 Domain (A-labels or, with allow_utf8, U-labels) or address literal.
bool is_valid_domain_or_literal(std::string_view domain, bool allow_utf8);
// Well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);
bool has_non_ascii(std::string_view text);

// Standard base64 (RFC 4648 §4) with padding; false on any invalid input.
bool decode_base64(std::string_view in, std::string* out);

}  // namespace ringmail::mta
