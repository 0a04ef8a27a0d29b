// queue/dsn.cc — see dsn.h.
//
// Everything that comes from the network (addresses, ORCPT, ENVID, replies,
// the original message) passes through one of the sanitizers below before
// it is written, and every field goes through wrap(), so the result has
// CRLF line ends only and no line over 998 octets whatever the input.
#include "queue/dsn.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <string_view>

#include "mail/mail_time.h"

namespace ringmail::queue {

namespace {

constexpr size_t kFoldAt = 78;    // RFC 5322 2.1.1 SHOULD
constexpr size_t kMaxLine = 998;  // RFC 5322 2.1.1 MUST, without the CRLF
constexpr size_t kMaxIncludedBody = size_t{1} << 20;
constexpr size_t kMaxBoundaryId = 40;  // keeps the boundary under RFC 2046's 70

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

char to_lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char to_upper_ascii(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

// Length of the well-formed UTF-8 sequence at text[i], 0 if it is not one.
size_t utf8_sequence_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;  // no surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
  }
  return length;
}

// An address for a header field or the envelope: control characters (the
// CR/LF of a header injection among them) are dropped, invalid UTF-8 becomes
// '?', valid UTF-8 stays (it makes the DSN an SMTPUTF8 message).
std::string sanitize_address(std::string_view address) {
  std::string out;
  out.reserve(address.size());
  for (size_t i = 0; i < address.size();) {
    const auto c = static_cast<unsigned char>(address[i]);
    if (c < 0x80) {
      if (!is_control(c)) out += static_cast<char>(c);
      ++i;
    } else if (size_t length = utf8_sequence_length(address, i); length > 0) {
      out.append(address.substr(i, length));
      i += length;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

// Free text for a US-ASCII field (replies, ENVID, host names): controls and
// runs of white space become one space, other octets '?', ends trimmed.
std::string sanitize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_control(c) || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c < 0x80 ? ch : '?';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// A name for "dns;" fields, Message-ID and From: host-name characters only.
std::string sanitize_host(std::string_view host) {
  std::string out;
  for (char c : host) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-' || c == '_' || c == ':' || c == '[' || c == ']') {
      out += c;
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// RFC 3461 section 4: ORCPT and ENVID travel as xtext ("+2B" for '+'); the
// DSN carries them decoded. A '+' without two hex digits is kept as is.
std::string xtext_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
        hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// `head` followed by the space-separated words of `value`, wrapped at 78
// columns: a line break goes before a space and the next line starts with
// `continuation`. For header fields the continuation is " ", so that
// unfolding (dropping the CRLF) gives back `value` exactly. A word that
// alone would pass 998 octets is cut at a UTF-8 character boundary (the
// one case where unfolding adds a space). Ends with CRLF.
std::string wrap(std::string_view head, std::string_view value, std::string_view continuation) {
  std::string out;
  size_t line_length = 0;
  const auto append_word = [&](std::string_view word) {
    while (line_length + word.size() > kMaxLine) {
      size_t cut = kMaxLine - line_length;
      while (cut > 1 && (static_cast<unsigned char>(word[cut]) & 0xc0) == 0x80) --cut;
      out.append(word.substr(0, cut));
      out += "\r\n";
      out += continuation;
      line_length = continuation.size();
      word.remove_prefix(cut);
    }
    out.append(word);
    line_length += word.size();
  };
  append_word(head);
  bool first = true;
  size_t pos = 0;
  while (pos < value.size()) {
    size_t end = value.find(' ', pos);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view word = value.substr(pos, end - pos);
    pos = end + 1;
    if (!first && line_length + 1 + word.size() > kFoldAt) {
      out += "\r\n";
      out += continuation;
      line_length = continuation.size();
    } else {
      out += ' ';
      line_length += 1;
    }
    append_word(word);
    first = false;
  }
  out += "\r\n";
  return out;
}

std::string header_field(std::string_view name, std::string_view value) {
  return wrap(std::string(name) + ":", value, " ");
}

// The original with every line ending (CRLF, lone LF, lone CR) made CRLF,
// so that message/rfc822 never carries a bare CR or LF.
std::string normalize_line_ends(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 64);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      out += "\r\n";
    } else if (text[i] == '\n') {
      out += "\r\n";
    } else {
      out += text[i];
    }
  }
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

// True when every line is at most 998 octets and no NUL occurs, i.e. the
// text may travel as 8bit (RFC 2045 2.8); `text` has CRLF line ends.
bool fits_8bit(std::string_view text) {
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\0') return false;
    if (text[i] == '\n') {
      if (i - line_start - 1 > kMaxLine) return false;
      line_start = i + 1;
    }
  }
  return true;
}

// Header lines cut to 998 octets and NULs dropped: a malformed header block
// still makes a well-formed text/rfc822-headers part.
std::string clamp_header_lines(std::string_view headers) {
  std::string out;
  out.reserve(headers.size());
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t end = headers.find("\r\n", pos);
    if (end == std::string_view::npos) end = headers.size();
    std::string line;
    for (char c : headers.substr(pos, end - pos)) {
      if (c != '\0') line += c;
    }
    if (line.size() > kMaxLine) {
      size_t cut = kMaxLine;
      while (cut > 1 && (static_cast<unsigned char>(line[cut]) & 0xc0) == 0x80) --cut;
      line.resize(cut);
    }
    out += line;
    out += "\r\n";
    pos = end + 2;
  }
  return out;
}

struct IncludedOriginal {
  std::string content_type;  // message/rfc822, text/rfc822-headers or the RFC 6533 forms
  std::string description;
  std::string text;  // CRLF lines, ends with CRLF (or empty)
};

bool ret_is_headers(const std::string& ret) {
  std::string upper;
  for (char c : ret) upper += to_upper_ascii(c);
  return upper == "HDRS";
}

IncludedOriginal include_original(const SpoolMessage& original) {
  const std::string content = normalize_line_ends(original.content);
  std::string_view headers = content;
  std::string_view body;
  if (content.starts_with("\r\n")) {
    headers = {};
    body = std::string_view(content).substr(2);
  } else if (size_t blank = content.find("\r\n\r\n"); blank != std::string::npos) {
    headers = std::string_view(content).substr(0, blank + 2);
    body = std::string_view(content).substr(blank + 4);
  }
  const bool utf8_headers = original.envelope.smtputf8;
  // A body that could not travel inside an 8BITMIME message (binary, NULs,
  // over-long lines) or is too big to send back is cut to its headers.
  const bool full = !ret_is_headers(original.envelope.dsn_ret) && body.size() <= kMaxIncludedBody &&
                    original.envelope.body_type != "BINARYMIME" && fits_8bit(content);
  if (full) {
    return {utf8_headers ? "message/global" : "message/rfc822", "Undelivered Message", content};
  }
  return {utf8_headers ? "message/global-headers" : "text/rfc822-headers",
          "Undelivered Message Headers", clamp_header_lines(headers)};
}

enum class ActionKind { failure, delay, success };

std::string normalized_action(const std::string& action) {
  std::string lower;
  for (char c : action) lower += to_lower_ascii(c);
  if (lower == "failed" || lower == "delayed" || lower == "delivered" || lower == "relayed" ||
      lower == "expanded") {
    return lower;
  }
  return "failed";
}

ActionKind kind_of(const std::string& normalized) {
  if (normalized == "failed") return ActionKind::failure;
  if (normalized == "delayed") return ActionKind::delay;
  return ActionKind::success;
}

// RFC 3463 status-code: class "." 1*3digit "." 1*3digit.
bool valid_status(std::string_view status) {
  if (status.size() < 5 || (status[0] != '2' && status[0] != '4' && status[0] != '5') ||
      status[1] != '.') {
    return false;
  }
  size_t digits = 0, dots = 0;
  for (char c : status.substr(2)) {
    if (c == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

std::string status_for(const DsnRecipient& recipient, ActionKind kind) {
  if (valid_status(recipient.status)) return recipient.status;
  switch (kind) {
    case ActionKind::failure:
      return "5.0.0";
    case ActionKind::delay:
      return "4.0.0";
    case ActionKind::success:
      return "2.0.0";
  }
  return "5.0.0";
}

// "smtp" for an SMTP reply ("550 ..."), otherwise a local explanation.
std::string diagnostic_type(std::string_view diagnostic) {
  if (diagnostic.size() >= 3 && diagnostic[0] >= '2' && diagnostic[0] <= '5' &&
      diagnostic[1] >= '0' && diagnostic[1] <= '9' && diagnostic[2] >= '0' &&
      diagnostic[2] <= '9' &&
      (diagnostic.size() == 3 || diagnostic[3] == ' ' || diagnostic[3] == '-')) {
    return "smtp";
  }
  return "X-Ringmail";
}

// One recipient, sanitized once and used by both the human and the
// machine-readable part.
struct ReportedRecipient {
  std::string final_recipient;
  std::string original_type;  // "" when no ORCPT
  std::string original_address;
  std::string action;
  ActionKind kind;
  std::string status;
  std::string diagnostic;
  std::string remote_mta;
  int64_t last_attempt_unix_ms;
};

ReportedRecipient report_for(const DsnRecipient& recipient) {
  ReportedRecipient r;
  r.final_recipient = sanitize_address(recipient.address);
  if (!recipient.dsn_orcpt.empty()) {
    std::string_view orcpt = recipient.dsn_orcpt;
    size_t semicolon = orcpt.find(';');
    std::string type = semicolon == std::string_view::npos
                           ? std::string("rfc822")
                           : sanitize_host(orcpt.substr(0, semicolon));
    if (type.empty()) type = "rfc822";
    std::string_view encoded =
        semicolon == std::string_view::npos ? orcpt : orcpt.substr(semicolon + 1);
    while (!encoded.empty() && encoded.front() == ' ') encoded.remove_prefix(1);
    r.original_type = type;
    r.original_address = sanitize_address(xtext_decode(encoded));
  }
  r.action = normalized_action(recipient.action);
  r.kind = kind_of(r.action);
  r.status = status_for(recipient, r.kind);
  r.diagnostic = sanitize_text(recipient.diagnostic);
  r.remote_mta = sanitize_host(recipient.remote_mta);
  r.last_attempt_unix_ms = recipient.last_attempt_unix_ms;
  return r;
}

// RFC 6533 3: a non-ASCII address is typed "utf-8" (only in a
// message/global-delivery-status part).
std::string typed_address(std::string_view type, const std::string& address) {
  std::string out(is_ascii(address) ? type : std::string_view("utf-8"));
  out += "; ";
  out += address;
  return out;
}

std::string human_part(const std::vector<ReportedRecipient>& recipients,
                       const std::string& reporting_mta, const IncludedOriginal& included) {
  std::string text = "This is the mail system at host " + reporting_mta + ".\r\n";
  const bool headers_only =
      included.content_type != "message/rfc822" && included.content_type != "message/global";
  struct Section {
    ActionKind kind;
    const char* intro;
  };
  const Section sections[] = {
      {ActionKind::failure, headers_only
                                ? "Your message could not be delivered to the recipients below.\r\n"
                                  "Its headers are attached.\r\n"
                                : "Your message could not be delivered to the recipients below.\r\n"
                                  "It is attached.\r\n"},
      {ActionKind::delay,
       "Your message could not be delivered yet to the recipients below.\r\n"
       "The mail system will keep trying; you need not send it again.\r\n"},
      {ActionKind::success, "Your message was delivered to the recipients below.\r\n"},
  };
  for (const Section& section : sections) {
    bool any = std::any_of(recipients.begin(), recipients.end(),
                           [&](const ReportedRecipient& r) { return r.kind == section.kind; });
    if (!any) continue;
    text += "\r\n";
    text += section.intro;
    text += "\r\n";
    for (const ReportedRecipient& r : recipients) {
      if (r.kind != section.kind) continue;
      std::string reason;
      if (r.diagnostic.empty()) {
        reason = "status " + r.status;
      } else if (r.remote_mta.empty()) {
        reason = r.diagnostic;
      } else {
        reason = "host " + r.remote_mta + " said: " + r.diagnostic;
      }
      text += wrap("<" + r.final_recipient + ">:", reason, "    ");
    }
  }
  return text;
}

std::string status_part(const std::vector<ReportedRecipient>& recipients, const DsnRequest& request,
                        const std::string& reporting_mta) {
  const SpoolMessage& original = *request.original;
  std::string text;
  if (!original.envelope.dsn_envid.empty()) {
    text += header_field("Original-Envelope-Id",
                         sanitize_text(xtext_decode(original.envelope.dsn_envid)));
  }
  text += header_field("Reporting-MTA", "dns; " + reporting_mta);
  if (original.meta.received_unix_ms > 0) {
    text += header_field("Arrival-Date", mail::format_rfc5322_date(original.meta.received_unix_ms));
  }
  for (const ReportedRecipient& r : recipients) {
    text += "\r\n";
    if (!r.original_type.empty()) {
      text +=
          header_field("Original-Recipient", typed_address(r.original_type, r.original_address));
    }
    text += header_field("Final-Recipient", typed_address("rfc822", r.final_recipient));
    text += header_field("Action", r.action);
    text += header_field("Status", r.status);
    if (!r.remote_mta.empty()) text += header_field("Remote-MTA", "dns; " + r.remote_mta);
    if (!r.diagnostic.empty()) {
      text += header_field("Diagnostic-Code", diagnostic_type(r.diagnostic) + "; " + r.diagnostic);
    }
    if (r.last_attempt_unix_ms > 0) {
      text += header_field("Last-Attempt-Date", mail::format_rfc5322_date(r.last_attempt_unix_ms));
    }
  }
  return text;
}

std::string transfer_encoding(std::string_view text) { return is_ascii(text) ? "7bit" : "8bit"; }

// Derived from the message id, so two DSNs never share one; lengthened
// until no part contains it as a delimiter.
std::string choose_boundary(const MessageId& id, std::initializer_list<std::string_view> parts) {
  std::string base = "=_ringmail_dsn_" + sanitize_host(id.value).substr(0, kMaxBoundaryId);
  std::string boundary = base;
  for (int attempt = 1;; ++attempt) {
    const std::string delimiter = "--" + boundary;
    bool clash = std::any_of(parts.begin(), parts.end(), [&](std::string_view part) {
      return part.starts_with(delimiter) || part.find("\n" + delimiter) != std::string_view::npos;
    });
    if (!clash) return boundary;
    boundary = base + "." + std::to_string(attempt);
  }
}

std::string lower_domain(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string domain;
  for (char c : address.substr(at + 1)) domain += to_lower_ascii(c);
  return domain;
}

}  // namespace

bool wants_dsn(const std::string& sender, const Recipient& recipient, const std::string& action) {
  if (sender.empty()) return false;  // RFC 5321 6.1: never answer the null sender
  const ActionKind kind = kind_of(normalized_action(action));
  if (recipient.dsn_notify.empty()) return kind != ActionKind::success;  // RFC 3461 4.1
  bool failure = false, delay = false, success = false;
  std::string keyword;
  for (size_t i = 0; i <= recipient.dsn_notify.size(); ++i) {
    const char c = i < recipient.dsn_notify.size() ? recipient.dsn_notify[i] : ',';
    if (c == ',') {
      if (keyword == "NEVER") return false;
      failure |= keyword == "FAILURE";
      delay |= keyword == "DELAY";
      success |= keyword == "SUCCESS";
      keyword.clear();
    } else if (c != ' ') {
      keyword += to_upper_ascii(c);
    }
  }
  switch (kind) {
    case ActionKind::failure:
      return failure;
    case ActionKind::delay:
      return delay;
    case ActionKind::success:
      return success;
  }
  return false;
}

std::unique_ptr<SpoolMessage> make_dsn(const DsnRequest& request, MessageId id) {
  if (request.original == nullptr || request.recipients.empty() ||
      request.original->envelope.sender.empty()) {
    return nullptr;
  }
  const SpoolMessage& original = *request.original;
  std::string reporting_mta = sanitize_host(request.reporting_mta);
  if (reporting_mta.empty()) reporting_mta = "localhost";
  const std::string sender = sanitize_address(original.envelope.sender);

  std::vector<ReportedRecipient> recipients;
  recipients.reserve(request.recipients.size());
  bool utf8_addresses = !is_ascii(sender);
  bool all_delayed = true, all_success = true;
  for (const DsnRecipient& recipient : request.recipients) {
    recipients.push_back(report_for(recipient));
    const ReportedRecipient& r = recipients.back();
    utf8_addresses |= !is_ascii(r.final_recipient) || !is_ascii(r.original_address);
    all_delayed &= r.kind == ActionKind::delay;
    all_success &= r.kind == ActionKind::success;
  }

  const IncludedOriginal included = include_original(original);
  const std::string human = human_part(recipients, reporting_mta, included);
  const std::string status = status_part(recipients, request, reporting_mta);
  const std::string boundary = choose_boundary(id, {human, status, included.text});
  const std::string delimiter = "--" + boundary + "\r\n";

  std::string body = "This is a MIME-encapsulated message.\r\n\r\n";
  body += delimiter;
  body += "Content-Description: Notification\r\n";
  body += is_ascii(human) ? "Content-Type: text/plain; charset=us-ascii\r\n"
                          : "Content-Type: text/plain; charset=utf-8\r\n";
  body += "Content-Transfer-Encoding: " + transfer_encoding(human) + "\r\n\r\n";
  body += human;
  body += delimiter;
  body += "Content-Description: Delivery report\r\n";
  body += utf8_addresses ? "Content-Type: message/global-delivery-status\r\n"
                         : "Content-Type: message/delivery-status\r\n";
  body += "Content-Transfer-Encoding: " + transfer_encoding(status) + "\r\n\r\n";
  body += status;
  body += delimiter;
  body += "Content-Description: " + included.description + "\r\n";
  body += "Content-Type: " + included.content_type + "\r\n";
  body += "Content-Transfer-Encoding: " + transfer_encoding(included.text) + "\r\n\r\n";
  body += included.text;
  body += "--" + boundary + "--\r\n";

  std::string content;
  content += header_field("From", "Mail Delivery System <MAILER-DAEMON@" + reporting_mta + ">");
  content += header_field("To", "<" + sender + ">");
  content += header_field("Subject", all_delayed   ? "Delayed Mail (still being retried)"
                                     : all_success ? "Successful Mail Delivery Report"
                                                   : "Undelivered Mail Returned to Sender");
  content += header_field("Date", mail::format_rfc5322_date(request.now_unix_ms));
  content += header_field("Message-ID", "<" + sanitize_host(id.value) + "@" + reporting_mta + ">");
  content += header_field("Auto-Submitted", "auto-replied");
  content += header_field("MIME-Version", "1.0");
  content += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" +
             boundary + "\"\r\n";
  content += "Content-Transfer-Encoding: " + transfer_encoding(body) + "\r\n";
  content += "\r\n";
  content += body;

  auto dsn = std::make_unique<SpoolMessage>();
  dsn->id = std::move(id);
  dsn->envelope.sender = "";
  Recipient to;
  to.address = sender;
  to.domain = lower_domain(sender);
  to.state = RecipientState::queued;
  to.next_attempt_unix_ms = request.now_unix_ms;
  dsn->envelope.recipients.push_back(std::move(to));
  dsn->envelope.body_type = is_ascii(content) ? "7BIT" : "8BITMIME";
  dsn->envelope.smtputf8 = utf8_addresses;
  dsn->meta.tenant = original.meta.tenant;
  dsn->meta.campaign = original.meta.campaign;
  dsn->meta.listener = kDsnListener;
  dsn->meta.received_unix_ms = request.now_unix_ms;
  dsn->meta.size = content.size();
  dsn->content = std::move(content);
  return dsn;
}

}  // namespace ringmail::queue
