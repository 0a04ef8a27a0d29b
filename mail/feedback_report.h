// mail/feedback_report.h — what one inbound message to the feedback
// listener says: an RFC 3464 delivery-status report (DSN), an RFC 5965
// abuse report (ARF), an auto-reply (RFC 3834 and the common out-of-office
// forms), or something else; and the fields of each that the feedback loop
// needs (CONTRACT.md "Feedback, suppression and compliance in detail").
//
// Owns: classification and extraction only. MIME structure, header
// unfolding and RFC 2047 decoding are GMime 3's (no MIME parsing here); this
// module splits the RFC 3464 field groups, reads the fields, normalises
// addresses and bounds everything. Attribution (VERP token, Ringmail's
// reference header), classification of the diagnostic into a bounce
// category (policy/bounce_classifier.h) and what follows (suppression,
// Feedback records) are the caller's.
//
// Pure: bytes in, a value out; no I/O, no clock, no logging, no globals
// besides GMime's. Threads: any thread may call parse_feedback_report() at
// once with others; each call uses GMime objects of its own, and GMime's
// global tables are set up once (mail/gmime_init.h) before the first parse.
//
// SECURITY: the input is untrusted network data from anyone (the listener
// takes mail from the whole Internet). Nothing here throws (errors become
// entries of `problems`), nothing is trusted to be well-formed, and the work
// is bounded by FeedbackLimits before GMime sees the input (bytes, lines,
// lines that could be MIME boundaries) and while walking it (parts, depth,
// header fields, value lengths, recipients). Every string handed back is
// valid UTF-8 without control characters, and at most max_value_bytes long.
// GMime itself caps MIME nesting at 1024 levels. A value read here proves
// nothing about who sent it: a report can be forged by anyone, which is why
// the caller attributes it through an authenticated token only.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::mail {

enum class FeedbackKind { Dsn, Arf, AutoReply, Other };

// "dsn", "arf", "auto_reply", "other".
std::string_view feedback_kind_name(FeedbackKind kind);

struct FeedbackLimits {
  // The input is cut to its first max_input_bytes, its first max_lines
  // lines, and before its (max_boundary_lines + 1)th line beginning with
  // "--" (every MIME boundary line does; this bounds the parts GMime
  // builds). Reports put their machine-readable parts first, so a cut
  // usually loses only the returned original's body. Each cut is a problem.
  std::size_t max_input_bytes = 1 << 20;
  std::size_t max_lines = 20000;
  std::size_t max_boundary_lines = 256;
  // MIME parts looked at, and how deep into nested multiparts.
  std::size_t max_parts = 64;
  std::size_t max_depth = 4;
  // Fields kept per header block (further ones are counted as a problem).
  std::size_t max_headers = 200;
  // Longest value kept (bytes, cut at a character boundary).
  std::size_t max_value_bytes = 1024;
  // Per-recipient groups kept from a DSN.
  std::size_t max_recipients = 100;
  // Bytes of a message/delivery-status or message/feedback-report part read.
  std::size_t max_report_part_bytes = 64 << 10;
  // Entries in FeedbackReport::problems (one more says how many were left out).
  std::size_t max_problems = 32;
};

struct HeaderField {
  std::string name;   // as written ("Message-ID")
  std::string value;  // unfolded, RFC 2047-decoded, cleaned, bounded
};

// An RFC 3464 typed value: "rfc822; User@Example.COM" -> {"rfc822",
// "User@example.com"}; "dns; mx.example.net" -> {"dns", "mx.example.net"}.
// type is lower case; an rfc822 address loses angle brackets and has its
// domain lower-cased (the local part keeps its case). A value without
// "type;" keeps type "" and the whole value as address.
struct TypedAddress {
  std::string type;
  std::string address;
  bool operator==(const TypedAddress&) const = default;
};

// Diagnostic-Code: "smtp; 550-5.1.1 The email account ... 550-5.1.1 ..."
struct DiagnosticCode {
  std::string type;  // "smtp", lower case ("" when the value had no "type;")
  std::string text;  // the rest, unfolded, as written
  // For type smtp (or a text that starts with a reply code): the reply
  // code, its enhanced code, and the text without them, the repeated
  // "550-5.1.1 " of a multi-line reply removed, words joined with single
  // spaces: what policy/bounce_classifier.h classify() takes. 0 / "" /
  // text when the text does not start with a reply code.
  int smtp_code = 0;
  std::string enhanced;
  std::string reply_text;
};

enum class DsnAction { Failed, Delayed, Delivered, Relayed, Expanded, Unknown };

// "failed", "delayed", "delivered", "relayed", "expanded", "unknown".
std::string_view dsn_action_name(DsnAction action);

struct DsnRecipient {
  std::optional<TypedAddress> final_recipient;
  std::optional<TypedAddress> original_recipient;
  DsnAction action = DsnAction::Unknown;
  std::string status;  // "5.1.1"; "" when absent or not a status code
  std::optional<DiagnosticCode> diagnostic_code;
  std::optional<TypedAddress> remote_mta;
  std::string last_attempt_date;  // as written (RFC 5322 date)
  std::string will_retry_until;   // as written; delay notices
};

struct DsnReport {
  std::optional<TypedAddress> reporting_mta;
  std::string original_envelope_id;  // ENVID, as written
  std::string arrival_date;          // as written
  std::vector<DsnRecipient> recipients;
};

enum class ArfFeedbackType { Abuse, Fraud, Virus, Other, NotSpam, AuthFailure, Unknown };

// "abuse", "fraud", "virus", "other", "not-spam", "auth-failure", "unknown".
std::string_view arf_feedback_type_name(ArfFeedbackType type);

struct ArfReport {
  ArfFeedbackType feedback_type = ArfFeedbackType::Unknown;
  std::string feedback_type_text;  // lower case, as written ("" when absent)
  std::string user_agent;
  std::string version;
  std::string original_mail_from;  // address without angle brackets
  // Often absent or redacted by the provider ("redacted@example.com",
  // "xxxxxxxx@..."): never rely on it for attribution.
  std::vector<std::string> original_rcpt_to;
  std::string arrival_date;  // Arrival-Date (or the older Received-Date)
  std::vector<std::string> reported_domains;
  std::string source_ip;
  std::optional<TypedAddress> reporting_mta;
};

// The message a report returns: a message/rfc822 (or message/global) part,
// or only its header (text/rfc822-headers, message/global-headers).
struct ReturnedOriginal {
  bool headers_only = false;         // text/rfc822-headers
  std::vector<HeaderField> headers;  // in order, at most max_headers
  // The last Message-ID field of the header block, without angle brackets
  // ("" when none): "the last Message-ID in a report is the reported
  // message's" (providers prepend their own when they forward).
  std::string message_id;

  // The first field named `name` (case-insensitive), e.g. "X-Ringmail-Ref".
  std::optional<std::string> header(std::string_view name) const;
};

struct FeedbackReport {
  FeedbackKind kind = FeedbackKind::Other;
  // The report's own header block and a few of its fields.
  std::vector<HeaderField> headers;
  std::string subject;
  std::string message_id;                    // without angle brackets
  DsnReport dsn;                             // filled when kind == Dsn
  ArfReport arf;                             // filled when kind == Arf
  std::optional<ReturnedOriginal> original;  // Dsn and Arf, when returned
  // The reported (or bounced) message's Message-ID: the returned
  // original's message_id; "" when no original came back.
  std::string reported_message_id;
  // For AutoReply: the rule that matched and the value it saw, e.g.
  // "Auto-Submitted: auto-replied" or "Subject: automatic reply".
  std::string auto_reply_rule;
  // What could not be read, in order: "DSN per-recipient group 2: Action
  // 'bogus' is not an RFC 3464 action", "MIME: truncated message", ...
  std::vector<std::string> problems;
};

// Classify and read one message, exactly as received (headers and body,
// CRLF or LF line ends). Never throws; a malformed report yields its kind,
// what could be read, and its problems.
FeedbackReport parse_feedback_report(std::string_view raw, const FeedbackLimits& limits = {});

// The auto-reply rules, tried in order on the top-level header, and only
// when the message is neither a DSN nor an ARF report. Values and prefixes
// are compared after ASCII lower-casing. Kept small on purpose: each rule
// is a form that mail systems document for their automatic answers, and a
// false match only costs a bounce that is not acted on.
struct AutoReplyRule {
  enum class Match {
    AnyBut,   // present with a value other than `value` (Auto-Submitted: no)
    Present,  // present, any value
    Equals,   // value equals `value`
    Prefix,   // value starts with `value`
  };
  std::string_view header;
  Match match;
  std::string_view value;
};
//   Auto-Submitted   AnyBut  "no"   (RFC 3834 auto-replied / auto-generated,
//                                    RFC 5436 auto-notified)
//   X-Autoreply      Present        (vacation programs, Zimbra)
//   X-Autorespond    Present
//   Precedence       Equals  "auto_reply"
//   Subject          Prefix  "out of office", "automatic reply",
//                    "auto-reply", "autoreply", "abwesenheitsnotiz",
//                    "automatische antwort", "réponse automatique"
const std::vector<AutoReplyRule>& auto_reply_rules();

}  // namespace ringmail::mail
