// libFuzzer target for the feedback-report parser (mail/feedback_report.h):
// the input is one message as the feedback listener receives it, from
// anyone.
//
// Each input is parsed twice: with the default FeedbackLimits and with tight
// ones (a few parts, headers, recipients, short values, a small input), so
// that the cuts themselves are exercised. Every input replays identically.
//
// Besides ASan/UBSan findings (and libFuzzer's own time and memory limits),
// the target aborts when the parser breaks a promise: a value that is not
// valid UTF-8, holds a control character or is longer than max_value_bytes;
// more header fields than max_headers in a block, more DSN recipients than
// max_recipients, more problems than max_problems + 1; DSN or ARF fields
// filled for a message of another kind; an auto-reply rule without the kind
// (or the reverse); a reported Message-ID that is not the returned
// original's.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON; links the mail library and
// GMime alone. Seeded with tests/mail/feedback_corpus/*.eml (make
// test-fuzz); FEEDBACK_FUZZ_VERBOSE=1 prints each input's kind and problems.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "mail/feedback_report.h"

namespace {

namespace mail = ringmail::mail;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "feedback_report_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

void check_value(std::string_view value, const mail::FeedbackLimits& limits, const char* what) {
  if (value.size() > limits.max_value_bytes) broken("value over max_value_bytes", what);
  for (std::size_t i = 0; i < value.size();) {
    const auto b = static_cast<unsigned char>(value[i]);
    if (b < 0x20 || b == 0x7f) broken("control character in a value", what);
    const std::size_t len = b < 0x80    ? 1
                            : b >= 0xf5 ? 0
                            : b >= 0xf0 ? 4
                            : b >= 0xe0 ? 3
                            : b >= 0xc2 ? 2
                                        : 0;
    if (len == 0 || i + len > value.size()) broken("invalid UTF-8 in a value", what);
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(value[i + k]) & 0xc0) != 0x80)
        broken("invalid UTF-8 in a value", what);
    i += len;
  }
}

void check_typed(const std::optional<mail::TypedAddress>& typed, const mail::FeedbackLimits& limits,
                 const char* what) {
  if (!typed) return;
  check_value(typed->type, limits, what);
  check_value(typed->address, limits, what);
}

void check(const mail::FeedbackReport& r, const mail::FeedbackLimits& limits) {
  if (r.problems.size() > limits.max_problems + 1)
    broken("too many problems", std::to_string(r.problems.size()));
  if (r.headers.size() > limits.max_headers) broken("too many header fields", "top");
  for (const auto& h : r.headers)
    check_value(h.name, limits, "header name"), check_value(h.value, limits, "header");
  check_value(r.subject, limits, "subject");
  check_value(r.message_id, limits, "message_id");

  if (r.kind != mail::FeedbackKind::Dsn &&
      (!r.dsn.recipients.empty() || r.dsn.reporting_mta || !r.dsn.arrival_date.empty()))
    broken("DSN fields for another kind", mail::feedback_kind_name(r.kind));
  if (r.kind != mail::FeedbackKind::Arf &&
      (r.arf.feedback_type != mail::ArfFeedbackType::Unknown || !r.arf.user_agent.empty()))
    broken("ARF fields for another kind", mail::feedback_kind_name(r.kind));
  if ((r.kind == mail::FeedbackKind::AutoReply) != !r.auto_reply_rule.empty())
    broken("auto-reply rule and kind disagree", r.auto_reply_rule);
  if ((r.kind == mail::FeedbackKind::AutoReply || r.kind == mail::FeedbackKind::Other) &&
      r.original)
    broken("returned original for a message that is no report", mail::feedback_kind_name(r.kind));

  if (r.dsn.recipients.size() > limits.max_recipients) broken("too many recipients", "dsn");
  check_typed(r.dsn.reporting_mta, limits, "reporting_mta");
  check_value(r.dsn.original_envelope_id, limits, "envid");
  check_value(r.dsn.arrival_date, limits, "arrival_date");
  for (const auto& rc : r.dsn.recipients) {
    check_typed(rc.final_recipient, limits, "final_recipient");
    check_typed(rc.original_recipient, limits, "original_recipient");
    check_typed(rc.remote_mta, limits, "remote_mta");
    check_value(rc.status, limits, "status");
    if (!rc.status.empty() && rc.status[0] != '2' && rc.status[0] != '4' && rc.status[0] != '5')
      broken("status of no class", rc.status);
    if (rc.diagnostic_code) {
      check_value(rc.diagnostic_code->type, limits, "diag type");
      check_value(rc.diagnostic_code->text, limits, "diag text");
      check_value(rc.diagnostic_code->reply_text, limits, "diag reply_text");
      const int code = rc.diagnostic_code->smtp_code;
      if (code != 0 && (code < 200 || code > 599))
        broken("reply code out of range", std::to_string(code));
      if (!rc.diagnostic_code->enhanced.empty() &&
          (code == 0 || rc.diagnostic_code->enhanced[0] != '0' + code / 100))
        broken("enhanced code without its reply code", rc.diagnostic_code->enhanced);
    }
  }

  check_value(r.arf.feedback_type_text, limits, "feedback_type");
  check_value(r.arf.user_agent, limits, "user_agent");
  check_value(r.arf.original_mail_from, limits, "original_mail_from");
  for (const auto& a : r.arf.original_rcpt_to) check_value(a, limits, "original_rcpt_to");
  for (const auto& d : r.arf.reported_domains) check_value(d, limits, "reported_domain");
  check_value(r.arf.source_ip, limits, "source_ip");

  if (r.original) {
    if (r.original->headers.size() > limits.max_headers)
      broken("too many header fields", "original");
    for (const auto& h : r.original->headers) check_value(h.value, limits, "original header");
    if (r.reported_message_id != r.original->message_id)
      broken("reported Message-ID is not the original's", r.reported_message_id);
  } else if (!r.reported_message_id.empty()) {
    broken("reported Message-ID without an original", r.reported_message_id);
  }
}

mail::FeedbackLimits tight_limits() {
  mail::FeedbackLimits limits;
  limits.max_input_bytes = 4096;
  limits.max_lines = 120;
  limits.max_boundary_lines = 6;
  limits.max_parts = 4;
  limits.max_depth = 2;
  limits.max_headers = 5;
  limits.max_value_bytes = 24;
  limits.max_recipients = 2;
  limits.max_report_part_bytes = 300;
  limits.max_problems = 3;
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static const bool verbose = std::getenv("FEEDBACK_FUZZ_VERBOSE") != nullptr;
  static const mail::FeedbackLimits defaults;
  static const mail::FeedbackLimits tight = tight_limits();
  for (const mail::FeedbackLimits* limits : {&defaults, &tight}) {
    const mail::FeedbackReport r = mail::parse_feedback_report(input, *limits);
    check(r, *limits);
    if (verbose) {
      std::fprintf(stderr, "%s%s:", limits == &tight ? "tight " : "",
                   std::string(mail::feedback_kind_name(r.kind)).c_str());
      for (const auto& p : r.problems) std::fprintf(stderr, " [%s]", p.c_str());
      std::fprintf(stderr, "\n");
    }
  }
  return 0;
}
