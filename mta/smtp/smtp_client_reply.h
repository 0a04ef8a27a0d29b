// mta/smtp/smtp_client_reply.h — the outbound client's codec: reading SMTP
// replies off the wire (RFC 5321 §4.2, multi-line, RFC 3463 enhanced
// codes), EHLO capability parsing, and the payload encodings of DATA
// (dot-stuffing) and BDAT (RFC 3030).
//
// Owns: SmtpReply (one reply, as every layer above sees it: the client
// session, the planner, the classifier's callers), ServerCapabilities, pure
// functions and one bounded reply reader per session. Called from
// the thread of the session that owns the reader; the free functions from
// any thread.
//
// SECURITY: faces the network. Replies are untrusted: a line is at most
// kMaxReplyLine octets and a reply at most kMaxReplyLines lines; anything
// that is not "NNN-text" / "NNN text" ends the reading with an error, and
// control characters in reply texts are replaced before anyone logs them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/bounce_category.h"

namespace ringmail::mta {

// One SMTP reply as a server sent it, or as the client made it up for a
// failure that had no reply (local == true).
struct SmtpReply {
  int code = 0;          // 0 only for local failures without a code (timeouts, lost connections)
  std::string enhanced;  // "5.1.1", "" when the server sent none
  std::string text;      // the text of all lines joined by " ", without code and enhanced code
  bool local = false;    // made up by this client, not sent by the server
  // For local failures that are not a reply at all, the category the
  // delivery engine must use (e.g. ProtocolErrors for "server lacks
  // SMTPUTF8"); nullopt: classify the reply with the BounceClassifier.
  std::optional<mail::BounceCategory> category;

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return !positive() && (code < 500); }  // 4xx, and 0 (local)
  bool permanent() const { return code >= 500; }
  // "550 5.1.1 text" (or "local: text" when code is 0), for logs and DSNs.
  std::string to_string() const;

  // A reply Ringmail makes up itself (local == true): code 0 for failures
  // that had no reply at all (timeouts, lost or refused connections).
  static SmtpReply made_here(int code, std::string enhanced, std::string text,
                             std::optional<mail::BounceCategory> category = std::nullopt) {
    SmtpReply reply;
    reply.code = code;
    reply.enhanced = std::move(enhanced);
    reply.text = std::move(text);
    reply.local = true;
    reply.category = category;
    return reply;
  }
};

// What the server said it supports after the last EHLO.
struct ServerCapabilities {
  bool esmtp = false;  // EHLO accepted (false: HELO fallback)
  bool pipelining = false;
  bool starttls = false;
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool chunking = false;
  bool dsn = false;
  bool enhanced_status_codes = false;
  std::optional<uint64_t> size;  // SIZE n (0 = no fixed limit announced)
};

inline constexpr size_t kMaxReplyLine = 4096;  // octets, with the line ending
inline constexpr size_t kMaxReplyLines = 200;

// A complete reply as it came: its code and each line's text after
// "NNN-" / "NNN " (control characters replaced by '?').
struct ReplyLines {
  int code = 0;
  std::vector<std::string> lines;
};

// Splits the stream into replies. Accepts CRLF and bare LF line endings.
// After an error every later call returns the error again.
class SmtpReplyReader {
 public:
  enum class Status { incomplete, reply, error };

  void feed(std::string_view bytes);
  // Takes the next complete reply into *reply.
  Status next(ReplyLines* reply);
  // Why next() returned error, for the protocol error's text.
  const std::string& error() const { return error_; }
  // Octets fed and not yet part of a returned reply.
  size_t buffered() const { return buffer_.size() - consumed_; }
  void clear();

 private:
  Status fail(std::string why);

  std::string buffer_;
  size_t consumed_ = 0;  // start of the first line not yet parsed
  size_t scanned_ = 0;   // no '\n' in [consumed_, scanned_)
  ReplyLines partial_;   // lines of the reply in progress
  std::string error_;
};

// The SmtpReply of a reply: its enhanced code (when the first line starts
// with "c.s.d" whose class is the code's first digit) and the texts of all
// lines joined by " " without the enhanced code.
SmtpReply make_reply(const ReplyLines& reply);

// "2.1.5" at the start of `text` when it is an RFC 3463 code of class
// `reply_class` followed by a space or the end; "" otherwise.
std::string_view enhanced_code_prefix(std::string_view text, int reply_class);

// The keywords of an EHLO reply (lines after the first), case-insensitive.
struct EhloCapabilities {
  ServerCapabilities capabilities;  // esmtp is set
  bool binarymime = false;          // RFC 3030 BINARYMIME (not in ServerCapabilities)
};
EhloCapabilities parse_ehlo_capabilities(const ReplyLines& reply);

// Any octet >= 0x80 (content that a server without 8BITMIME cannot take).
bool has_eight_bit(std::string_view content);

// What follows "DATA" / 354: the content dot-stuffed (a '.' at the start of
// a line, after any LF, is doubled), a final CRLF added when missing, and
// the terminating ".\r\n". `prefix` (complete lines, or "") goes first,
// stuffed the same way: the message sent is prefix + content.
std::string data_payload(std::string_view content, std::string_view prefix = {});
// The octets the message occupies on the wire, without dot-stuffing: the
// prefix and content plus the CRLF data_payload() adds when it lacks one
// (RFC 1870 SIZE=).
size_t message_wire_size(std::string_view content, std::string_view prefix = {});
// "BDAT <n> LAST\r\n", the prefix and the content as is (with the missing
// final CRLF unless `binary`).
std::string bdat_payload(std::string_view content, bool binary, std::string_view prefix = {});

}  // namespace ringmail::mta
