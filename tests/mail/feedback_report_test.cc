// tests/mail/feedback_report_test.cc — the feedback-report parser over a
// corpus of bounces, complaints and auto-replies written after the RFCs and
// the formats the big MTAs and providers publish
// (tests/mail/feedback_corpus/*.eml), malformed and hostile messages, and
// the values the feedback loop acts on.
#include "mail/feedback_report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ringmail::mail {
namespace {

std::string corpus(const std::string& name) {
  const std::string path = std::string(RINGMAIL_SOURCE_DIR) + "/tests/mail/feedback_corpus/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string joined(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += "\n  " + p;
  return out;
}

bool has_problem(const FeedbackReport& r, std::string_view part) {
  for (const auto& p : r.problems)
    if (p.find(part) != std::string::npos) return true;
  return false;
}

// Valid UTF-8 without control characters: what every value promises.
bool clean_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7f) return false;
    std::size_t len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += len;
  }
  return true;
}

void expect_clean(const FeedbackReport& r, std::size_t max_value) {
  auto check = [&](std::string_view v) {
    EXPECT_TRUE(clean_utf8(v)) << v;
    EXPECT_LE(v.size(), max_value);
  };
  for (const auto& h : r.headers) check(h.value), check(h.name);
  check(r.subject);
  for (const auto& rc : r.dsn.recipients) {
    if (rc.final_recipient) check(rc.final_recipient->address);
    if (rc.diagnostic_code) check(rc.diagnostic_code->text), check(rc.diagnostic_code->reply_text);
  }
  if (r.original)
    for (const auto& h : r.original->headers) check(h.value);
}

// --- classification over the whole corpus --------------------------------

struct KindCase {
  const char* file;
  FeedbackKind kind;
  bool clean;  // no problems expected
};

TEST(FeedbackReport, CorpusKinds) {
  const KindCase cases[] = {
      {"postfix_bounce.eml", FeedbackKind::Dsn, true},
      {"postfix_delay.eml", FeedbackKind::Dsn, true},
      {"exim_dsn.eml", FeedbackKind::Dsn, true},
      {"gmail_dsn.eml", FeedbackKind::Dsn, true},
      {"microsoft_ndr.eml", FeedbackKind::Dsn, true},
      {"multi_recipient_dsn.eml", FeedbackKind::Dsn, true},
      {"yahoo_arf.eml", FeedbackKind::Arf, true},
      {"jmrp_arf.eml", FeedbackKind::Arf, true},
      {"arf_fraud.eml", FeedbackKind::Arf, true},
      {"rfc3834_autoreply.eml", FeedbackKind::AutoReply, true},
      {"german_ooo.eml", FeedbackKind::AutoReply, true},
      {"plain.eml", FeedbackKind::Other, true},
      {"truncated_multipart.eml", FeedbackKind::Dsn, false},
      {"missing_boundary.eml", FeedbackKind::Dsn, false},
      {"garbage_status.eml", FeedbackKind::Dsn, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const FeedbackReport r = parse_feedback_report(corpus(c.file));
    EXPECT_EQ(feedback_kind_name(r.kind), feedback_kind_name(c.kind));
    if (c.clean)
      EXPECT_TRUE(r.problems.empty()) << joined(r.problems);
    else
      EXPECT_FALSE(r.problems.empty());
    expect_clean(r, FeedbackLimits{}.max_value_bytes);
  }
}

// --- DSNs ------------------------------------------------------------------

struct RecipientWant {
  const char* final_recipient;
  DsnAction action;
  const char* status;
  const char* diag_type;
  int smtp_code;
  const char* enhanced;
  const char* reply_text;
  const char* remote_mta;  // "" none
};

struct DsnCase {
  const char* file;
  const char* reporting_mta;
  const char* arrival_date;
  std::vector<RecipientWant> recipients;
  const char* original_message_id;
  const char* ringmail_ref;
  bool headers_only;
};

TEST(FeedbackReport, DeliveryStatusReports) {
  const std::vector<DsnCase> cases = {
      {"postfix_bounce.eml",
       "mail.example.org",
       "Tue, 14 May 2024 10:21:05 +0000 (UTC)",
       {{"nosuchuser@example.net", DsnAction::Failed, "5.1.1", "smtp", 550, "5.1.1",
         "<nosuchuser@example.net>: Recipient address rejected: User unknown in virtual mailbox "
         "table",
         "mx.example.net"}},
       "20240514102104.7f3a9c@sender.example",
       "1.msg-7f3a9c.r0.9b2f4e1d0a6c",
       true},
      {"postfix_delay.eml",
       "mail.example.org",
       "Tue, 14 May 2024 10:20:59 +0000 (UTC)",
       {{"slow@example.com", DsnAction::Delayed, "4.4.1", "x-postfix", 0, "",
         "connect to mx.example.com[192.0.2.40]:25: Connection timed out", ""}},
       "20240514102058.7f3a9d@sender.example",
       "1.msg-7f3a9d.r0.0c1d2e3f4a5b",
       true},
      {"exim_dsn.eml",
       "mx.example.com",
       "",
       {{"gone@example.com", DsnAction::Failed, "5.0.0", "smtp", 550, "", "Unrouteable address",
         "mail.example.com"}},
       "20240514100212.7f3aa0@sender.example",
       "1.msg-7f3aa0.r0.5e6f7a8b9c0d",
       false},
      {"gmail_dsn.eml",
       "googlemail.com",
       "Tue, 14 May 2024 03:21:07 -0700 (PDT)",
       {{"nobody.here@gmail.com", DsnAction::Failed, "5.1.1", "smtp", 550, "5.1.1",
         "The email account that you tried to reach does not exist. Please try double-checking the "
         "recipient's email address for typos or unnecessary spaces. For more information, go to "
         "https://support.google.com/mail/?p=NoSuchUser a1si1234567wmb.200 - gsmtp",
         "gmail-smtp-in.l.google.com. (2001:db8::1b, the server for the domain gmail.com.)"}},
       "20240514102107.7f3aa1@sender.example",
       "1.msg-7f3aa1.r0.1f2e3d4c5b6a",
       false},
      {"microsoft_ndr.eml",
       "AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
       "Tue, 14 May 2024 10:21:08 +0000",
       {{"nobody@contoso.example", DsnAction::Failed, "5.1.10", "smtp", 550, "5.1.10",
         "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", ""}},
       "20240514102108.7f3aa2@sender.example",
       "1.msg-7f3aa2.r0.6a5b4c3d2e1f",
       false},
      {"multi_recipient_dsn.eml",
       "mail.example.com",
       "Tue, 14 May 2024 10:01:02 GMT",
       {{"full@example.com", DsnAction::Failed, "5.2.2", "smtp", 552, "5.2.2", "Mailbox full",
         "mx.example.com"},
        {"slow@example.org", DsnAction::Delayed, "4.4.7", "smtp", 451, "4.4.0",
         "Timeout waiting for input", "mx.example.org"}},
       "20240514100101.7f3aa3@sender.example",
       "1.msg-7f3aa3.r0.aabbccddeeff",
       true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const FeedbackReport r = parse_feedback_report(corpus(c.file));
    ASSERT_EQ(r.kind, FeedbackKind::Dsn) << joined(r.problems);
    ASSERT_TRUE(r.dsn.reporting_mta);
    EXPECT_EQ(r.dsn.reporting_mta->type, "dns");
    EXPECT_EQ(r.dsn.reporting_mta->address, c.reporting_mta);
    EXPECT_EQ(r.dsn.arrival_date, c.arrival_date);
    ASSERT_EQ(r.dsn.recipients.size(), c.recipients.size());
    for (std::size_t i = 0; i < c.recipients.size(); ++i) {
      SCOPED_TRACE(i);
      const RecipientWant& want = c.recipients[i];
      const DsnRecipient& got = r.dsn.recipients[i];
      ASSERT_TRUE(got.final_recipient);
      EXPECT_EQ(got.final_recipient->type, "rfc822");
      EXPECT_EQ(got.final_recipient->address, want.final_recipient);
      EXPECT_EQ(dsn_action_name(got.action), dsn_action_name(want.action));
      EXPECT_EQ(got.status, want.status);
      ASSERT_TRUE(got.diagnostic_code);
      EXPECT_EQ(got.diagnostic_code->type, want.diag_type);
      EXPECT_EQ(got.diagnostic_code->smtp_code, want.smtp_code);
      EXPECT_EQ(got.diagnostic_code->enhanced, want.enhanced);
      EXPECT_EQ(got.diagnostic_code->reply_text, want.reply_text);
      if (*want.remote_mta) {
        ASSERT_TRUE(got.remote_mta);
        EXPECT_EQ(got.remote_mta->type, "dns");
        EXPECT_EQ(got.remote_mta->address, want.remote_mta);
      } else {
        EXPECT_FALSE(got.remote_mta);
      }
    }
    ASSERT_TRUE(r.original);
    EXPECT_EQ(r.original->headers_only, c.headers_only);
    EXPECT_EQ(r.original->message_id, c.original_message_id);
    EXPECT_EQ(r.reported_message_id, c.original_message_id);
    EXPECT_EQ(r.original->header("x-ringmail-ref").value_or("(none)"), c.ringmail_ref);
  }
}

TEST(FeedbackReport, DsnDetailsTheLoopUses) {
  const FeedbackReport postfix = parse_feedback_report(corpus("postfix_bounce.eml"));
  EXPECT_EQ(postfix.subject, "Undelivered Mail Returned to Sender");
  EXPECT_EQ(postfix.message_id, "20240514102107.4Vf2Qk1Fz9z9vBk@mail.example.org");
  ASSERT_EQ(postfix.dsn.recipients.size(), 1u);
  ASSERT_TRUE(postfix.dsn.recipients[0].original_recipient);
  EXPECT_EQ(*postfix.dsn.recipients[0].original_recipient,
            (TypedAddress{"rfc822", "nosuchuser@example.net"}));
  EXPECT_EQ(postfix.dsn.recipients[0].diagnostic_code->text,
            "550 5.1.1 <nosuchuser@example.net>: Recipient address rejected: User unknown in "
            "virtual mailbox table");
  EXPECT_EQ(postfix.original->header("Feedback-ID").value_or(""), "may2024:news:acme:ringmail");
  EXPECT_EQ(postfix.original->header("Return-Path").value_or(""),
            "<b-AQAAAAAAAAABAAAAAgHk2k3yZ0Nv1w@bounces.sender.example>");

  const FeedbackReport delay = parse_feedback_report(corpus("postfix_delay.eml"));
  EXPECT_EQ(delay.dsn.recipients.at(0).will_retry_until, "Sun, 19 May 2024 10:20:59 +0000 (UTC)");

  const FeedbackReport multi = parse_feedback_report(corpus("multi_recipient_dsn.eml"));
  EXPECT_EQ(multi.dsn.original_envelope_id, "msg-7f3aa3");
  // Upper-case type, mixed-case domain: type lower case, domain lower case,
  // local part as written.
  ASSERT_TRUE(multi.dsn.recipients.at(0).original_recipient);
  EXPECT_EQ(*multi.dsn.recipients[0].original_recipient,
            (TypedAddress{"rfc822", "Full@example.com"}));
  EXPECT_EQ(multi.dsn.recipients[0].last_attempt_date, "Tue, 14 May 2024 10:21:07 GMT");
  EXPECT_EQ(multi.dsn.recipients[1].will_retry_until, "Sat, 18 May 2024 10:01:02 GMT");

  // The returned original's header values are RFC 2047-decoded.
  const FeedbackReport gmail = parse_feedback_report(corpus("gmail_dsn.eml"));
  EXPECT_EQ(gmail.original->header("Subject").value_or(""), "Mai-Newsletter f\xc3\xbcr Sie");
}

// Inline DSNs for the field rules: one recipient group, fields as given.
std::string dsn_with(const std::string& per_message, const std::string& recipient) {
  return "From: MAILER-DAEMON@mx.example\r\nSubject: bounce\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
         "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
         "--b\r\nContent-Type: message/delivery-status\r\n\r\n" +
         per_message + "\r\n\r\n" + recipient + "\r\n\r\n--b--\r\n";
}

TEST(FeedbackReport, RecipientFields) {
  struct Case {
    const char* fields;
    TypedAddress final_recipient;
    DsnAction action;
    const char* status;
    const char* diag_type;
    int code;
    const char* enhanced;
    const char* reply_text;
    const char* problem;  // "" none
  };
  const Case cases[] = {
      {"Final-Recipient: rfc822;<User@Example.NET>\r\nAction: FAILED\r\nStatus: 5.1.1 (bad "
       "mailbox)\r\n"
       "Diagnostic-Code: smtp; 550 5.1.1 user unknown",
       {"rfc822", "User@example.net"},
       DsnAction::Failed,
       "5.1.1",
       "smtp",
       550,
       "5.1.1",
       "user unknown",
       ""},
      {"Final-Recipient: user@example.net\r\nAction: relayed\r\nStatus: 2.0.0",
       {"", "user@example.net"},
       DsnAction::Relayed,
       "2.0.0",
       nullptr,
       0,
       "",
       "",
       ""},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: expanded\r\nStatus: 2.1.5\r\n"
       "Diagnostic-Code: smtp; 250-2.1.5 first\r\n 250 2.1.5 second",
       {"rfc822", "a@example.net"},
       DsnAction::Expanded,
       "2.1.5",
       "smtp",
       250,
       "2.1.5",
       "first second",
       ""},
      // A reply code without an enhanced code, and one whose enhanced code
      // has the wrong class (kept in the text).
      {"Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
       "Diagnostic-Code: smtp; 554 4.0.0 odd",
       {"rfc822", "a@example.net"},
       DsnAction::Failed,
       "5.0.0",
       "smtp",
       554,
       "",
       "4.0.0 odd",
       ""},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
       "Diagnostic-Code: X-Unix; mailbox delivery ok",
       {"rfc822", "a@example.net"},
       DsnAction::Delivered,
       "2.0.0",
       "x-unix",
       0,
       "",
       "mailbox delivery ok",
       ""},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: bounced\r\nStatus: 5.1.1",
       {"rfc822", "a@example.net"},
       DsnAction::Unknown,
       "5.1.1",
       nullptr,
       0,
       "",
       "",
       "Action 'bounced'"},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.1",
       {"rfc822", "a@example.net"},
       DsnAction::Failed,
       "",
       nullptr,
       0,
       "",
       "",
       "Status '5.1'"},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 6.1.1",
       {"rfc822", "a@example.net"},
       DsnAction::Failed,
       "",
       nullptr,
       0,
       "",
       "",
       "is not a status code"},
      {"Final-Recipient: rfc822; a@example.net\r\nAction: failed",
       {"rfc822", "a@example.net"},
       DsnAction::Failed,
       "",
       nullptr,
       0,
       "",
       "",
       "no Status"},
      // RFC 2047 in a field value is decoded like any header.
      {"Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.7.1\r\n"
       "Diagnostic-Code: smtp; 550 5.7.1 =?utf-8?q?Zur=C3=BCckgewiesen?=",
       {"rfc822", "a@example.net"},
       DsnAction::Failed,
       "5.7.1",
       "smtp",
       550,
       "5.7.1",
       "Zur\xc3\xbc"
       "ckgewiesen",
       ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.fields);
    const FeedbackReport r =
        parse_feedback_report(dsn_with("Reporting-MTA: dns; mx.example", c.fields));
    ASSERT_EQ(r.kind, FeedbackKind::Dsn);
    ASSERT_EQ(r.dsn.recipients.size(), 1u) << joined(r.problems);
    const DsnRecipient& got = r.dsn.recipients[0];
    ASSERT_TRUE(got.final_recipient);
    EXPECT_EQ(*got.final_recipient, c.final_recipient);
    EXPECT_EQ(got.action, c.action);
    EXPECT_EQ(got.status, c.status);
    if (c.diag_type) {
      ASSERT_TRUE(got.diagnostic_code);
      EXPECT_EQ(got.diagnostic_code->type, c.diag_type);
      EXPECT_EQ(got.diagnostic_code->smtp_code, c.code);
      EXPECT_EQ(got.diagnostic_code->enhanced, c.enhanced);
      EXPECT_EQ(got.diagnostic_code->reply_text, c.reply_text);
    } else {
      EXPECT_FALSE(got.diagnostic_code);
    }
    if (*c.problem)
      EXPECT_TRUE(has_problem(r, c.problem)) << joined(r.problems);
    else
      EXPECT_TRUE(r.problems.size() == 1 && has_problem(r, "no returned original"))
          << joined(r.problems);
  }
}

TEST(FeedbackReport, DsnWithoutPerMessageGroup) {
  // Some MTAs start with the recipient: it is read as one, and said.
  const FeedbackReport r = parse_feedback_report(
      dsn_with("Final-Recipient: rfc822; a@example.net\r\nAction: failed\r\nStatus: 5.1.1",
               "Final-Recipient: rfc822; b@example.net\r\nAction: delayed\r\nStatus: 4.2.2"));
  ASSERT_EQ(r.dsn.recipients.size(), 2u);
  EXPECT_EQ(r.dsn.recipients[0].final_recipient->address, "a@example.net");
  EXPECT_EQ(r.dsn.recipients[1].action, DsnAction::Delayed);
  EXPECT_FALSE(r.dsn.reporting_mta);
  EXPECT_TRUE(has_problem(r, "no per-message fields"));
}

// --- ARF ---------------------------------------------------------------------

struct ArfCase {
  const char* file;
  ArfFeedbackType type;
  const char* user_agent;
  const char* version;
  const char* mail_from;
  std::vector<std::string> rcpt_to;
  const char* arrival_date;
  std::vector<std::string> reported_domains;
  const char* source_ip;
  const char* reported_message_id;
  const char* ringmail_ref;
  bool headers_only;
};

TEST(FeedbackReport, AbuseReports) {
  const std::vector<ArfCase> cases = {
      // Yahoo: no Original-Rcpt-To at all, the To of the original redacted.
      {"yahoo_arf.eml",
       ArfFeedbackType::Abuse,
       "Yahoo!-Mail-Feedback/2.0",
       "1",
       "b-AQAAAAAAAAAHAAAAAgZ9y8x7w6v5ug@bounces.sender.example",
       {},
       "Tue, 14 May 2024 10:21:05 +0000",
       {"sender.example"},
       "198.51.100.7",
       "20240514102104.7f3aa4@sender.example",
       "1.msg-7f3aa4.r3.0f1e2d3c4b5a",
       false},
      // CRLF, quoted mixed-case report-type, upper-case media type, a
      // redacted recipient, the original base64-encoded.
      {"jmrp_arf.eml",
       ArfFeedbackType::Abuse,
       "Hotmail FBL",
       "0.1",
       "b-AQAAAAAAAAALAAAAAgM9n8b7v6c5xg@bounces.sender.example",
       {"redacted@outlook.example"},
       "Tue, 14 May 2024 10:21:06 +0000",
       {},
       "198.51.100.7",
       "20240514102105.7f3aa8@sender.example",
       "1.msg-7f3aa8.r1.a1b2c3d4e5f6",
       false},
      // fraud: logged, not a complaint; the older Received-Date; domains
      // lower-cased; header-only original.
      {"arf_fraud.eml",
       ArfFeedbackType::Fraud,
       "IspFeedbackLoop/3.1",
       "1",
       "b-AQAAAAAAAAAIAAAAAgT1u2v3w4x5yg@bounces.sender.example",
       {"victim@isp.example"},
       "Wed, 15 May 2024 07:59:00 +0000",
       {"sender.example", "login-sender.example"},
       "2001:db8::7",
       "20240515075859.7f3aa5@sender.example",
       "1.msg-7f3aa5.r0.112233445566",
       true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const FeedbackReport r = parse_feedback_report(corpus(c.file));
    ASSERT_EQ(r.kind, FeedbackKind::Arf) << joined(r.problems);
    EXPECT_EQ(arf_feedback_type_name(r.arf.feedback_type), arf_feedback_type_name(c.type));
    EXPECT_EQ(r.arf.user_agent, c.user_agent);
    EXPECT_EQ(r.arf.version, c.version);
    EXPECT_EQ(r.arf.original_mail_from, c.mail_from);
    EXPECT_EQ(r.arf.original_rcpt_to, c.rcpt_to);
    EXPECT_EQ(r.arf.arrival_date, c.arrival_date);
    EXPECT_EQ(r.arf.reported_domains, c.reported_domains);
    EXPECT_EQ(r.arf.source_ip, c.source_ip);
    EXPECT_EQ(r.reported_message_id, c.reported_message_id);
    ASSERT_TRUE(r.original);
    EXPECT_EQ(r.original->headers_only, c.headers_only);
    EXPECT_EQ(r.original->header("X-Ringmail-Ref").value_or("(none)"), c.ringmail_ref);
  }
  const FeedbackReport jmrp = parse_feedback_report(corpus("jmrp_arf.eml"));
  EXPECT_EQ(jmrp.arf.feedback_type_text, "abuse");
  EXPECT_EQ(jmrp.original->header("X-HmXmrOriginalRecipient").value_or(""),
            "<redacted@outlook.example>");
  const FeedbackReport fraud = parse_feedback_report(corpus("arf_fraud.eml"));
  ASSERT_TRUE(fraud.arf.reporting_mta);
  EXPECT_EQ(fraud.arf.reporting_mta->address, "fbl.isp.example");
}

std::string arf_with(const std::string& fields, const std::string& original_headers) {
  return "From: fbl@isp.example\r\nSubject: report\r\nMessage-ID: "
         "<report@isp.example>\r\nMIME-Version: 1.0\r\n"
         "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n"
         "--b\r\nContent-Type: text/plain\r\n\r\nabuse report\r\n"
         "--b\r\nContent-Type: message/feedback-report\r\n\r\n" +
         fields +
         "\r\n\r\n"
         "--b\r\nContent-Type: message/rfc822\r\n\r\n" +
         original_headers + "\r\n\r\nbody\r\n--b--\r\n";
}

TEST(FeedbackReport, FeedbackTypes) {
  const struct {
    const char* value;
    ArfFeedbackType type;
    bool problem;
  } cases[] = {
      {"abuse", ArfFeedbackType::Abuse, false},
      {"ABUSE", ArfFeedbackType::Abuse, false},
      {"fraud", ArfFeedbackType::Fraud, false},
      {"virus", ArfFeedbackType::Virus, false},
      {"other", ArfFeedbackType::Other, false},
      {"not-spam", ArfFeedbackType::NotSpam, false},
      {"auth-failure", ArfFeedbackType::AuthFailure, false},
      {"opt-out", ArfFeedbackType::Unknown, true},
      {"", ArfFeedbackType::Unknown, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.value);
    const FeedbackReport r = parse_feedback_report(
        arf_with(std::string("Feedback-Type: ") + c.value + "\r\nUser-Agent: x/1\r\nVersion: 1",
                 "Message-ID: <m@s.example>"));
    ASSERT_EQ(r.kind, FeedbackKind::Arf);
    EXPECT_EQ(r.arf.feedback_type, c.type);
    EXPECT_EQ(has_problem(r, "Feedback-Type"), c.problem) << joined(r.problems);
  }
}

TEST(FeedbackReport, TheLastMessageIdIsTheReportedMessages) {
  // A provider that forwards the original prepends its own Message-ID.
  const FeedbackReport r = parse_feedback_report(
      arf_with("Feedback-Type: abuse\r\nUser-Agent: x/1\r\nVersion: 1",
               "Message-ID: <provider-copy@isp.example>\r\nFrom: a@s.example\r\n"
               "Message-ID: < original@sender.example >"));
  EXPECT_EQ(r.message_id, "report@isp.example");
  EXPECT_EQ(r.reported_message_id, "original@sender.example");
  EXPECT_TRUE(has_problem(r, "MIME: conflicting header fields (Message-ID)")) << joined(r.problems);
}

TEST(FeedbackReport, ArfWithoutItsParts) {
  // report-type says feedback-report, but no machine-readable part and no
  // original: the kind stays, the problems say what is missing.
  const FeedbackReport r = parse_feedback_report(
      "Subject: x\r\nContent-Type: multipart/report; report-type=feedback-report; "
      "boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain\r\n\r\nspam!\r\n--b--\r\n");
  EXPECT_EQ(r.kind, FeedbackKind::Arf);
  EXPECT_EQ(r.arf.feedback_type, ArfFeedbackType::Unknown);
  EXPECT_TRUE(has_problem(r, "no message/feedback-report part")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "no returned original")) << joined(r.problems);
  EXPECT_EQ(r.reported_message_id, "");
}

TEST(FeedbackReport, ReportPartsOutsideAMultipartReport) {
  // A forwarder that wrapped the report in multipart/mixed.
  const FeedbackReport r = parse_feedback_report(
      "Subject: fwd\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n"
      "--m\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
      "--m\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: "
      "u\r\nVersion: 1\r\n"
      "--m\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <o@s.example>\r\n--m--\r\n");
  EXPECT_EQ(r.kind, FeedbackKind::Arf);
  EXPECT_EQ(r.arf.feedback_type, ArfFeedbackType::Abuse);
  EXPECT_EQ(r.reported_message_id, "o@s.example");
  EXPECT_TRUE(has_problem(r, "outside a multipart/report")) << joined(r.problems);
}

// --- auto-replies -------------------------------------------------------------

TEST(FeedbackReport, AutoReplyRules) {
  const struct {
    const char* header;
    FeedbackKind kind;
    const char* rule;
  } cases[] = {
      {"Auto-Submitted: auto-replied", FeedbackKind::AutoReply, "Auto-Submitted: auto-replied"},
      {"Auto-Submitted: Auto-Generated", FeedbackKind::AutoReply, "Auto-Submitted: auto-generated"},
      {"Auto-Submitted: auto-notified", FeedbackKind::AutoReply, "Auto-Submitted: auto-notified"},
      {"Auto-Submitted: no", FeedbackKind::Other, ""},
      {"X-Autoreply: yes", FeedbackKind::AutoReply, "X-Autoreply: yes"},
      {"X-Autorespond: Thanks for your mail", FeedbackKind::AutoReply,
       "X-Autorespond: thanks for your mail"},
      {"Precedence: auto_reply", FeedbackKind::AutoReply, "Precedence: auto_reply"},
      {"Precedence: bulk", FeedbackKind::Other, ""},
      {"Subject: Out of Office: back Monday", FeedbackKind::AutoReply, "Subject: out of office"},
      {"Subject: Automatic reply: May newsletter", FeedbackKind::AutoReply,
       "Subject: automatic reply"},
      {"Subject: Auto-Reply: away", FeedbackKind::AutoReply, "Subject: auto-reply"},
      {"Subject: AutoReply", FeedbackKind::AutoReply, "Subject: autoreply"},
      {"Subject: Automatische Antwort: Mai", FeedbackKind::AutoReply,
       "Subject: automatische antwort"},
      {"Subject: =?utf-8?q?R=C3=A9ponse_automatique?=", FeedbackKind::AutoReply,
       "Subject: r\xc3\xa9ponse automatique"},
      {"Subject: Re: Out of Office policy", FeedbackKind::Other, ""},
      {"Subject: Hello", FeedbackKind::Other, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.header);
    const FeedbackReport r = parse_feedback_report(std::string("From: a@example.net\r\n") +
                                                   c.header + "\r\n\r\nbody\r\n");
    EXPECT_EQ(feedback_kind_name(r.kind), feedback_kind_name(c.kind));
    EXPECT_EQ(r.auto_reply_rule, c.rule);
  }
  // Every rule of the documented table is exercised above.
  EXPECT_EQ(auto_reply_rules().size(), 11u);
}

TEST(FeedbackReport, AutoRepliesOfTheCorpus) {
  const FeedbackReport vacation = parse_feedback_report(corpus("rfc3834_autoreply.eml"));
  EXPECT_EQ(vacation.auto_reply_rule, "Auto-Submitted: auto-replied (vacation)");
  EXPECT_FALSE(vacation.original);
  const FeedbackReport german = parse_feedback_report(corpus("german_ooo.eml"));
  EXPECT_EQ(german.subject, "Abwesenheitsnotiz: Ich bin bis M\xc3\xa4rz nicht im B\xc3\xbcro");
  EXPECT_EQ(german.auto_reply_rule, "Subject: abwesenheitsnotiz");
  // A bounce carries Auto-Submitted too; its structure decides first.
  EXPECT_EQ(parse_feedback_report(corpus("postfix_bounce.eml")).auto_reply_rule, "");
}

// --- malformed and hostile input ----------------------------------------------

TEST(FeedbackReport, TruncatedMultipart) {
  const FeedbackReport r = parse_feedback_report(corpus("truncated_multipart.eml"));
  ASSERT_EQ(r.kind, FeedbackKind::Dsn);
  ASSERT_EQ(r.dsn.recipients.size(), 1u);
  EXPECT_EQ(r.dsn.recipients[0].final_recipient->address, "nosuchuser@example.net");
  EXPECT_EQ(r.dsn.recipients[0].action, DsnAction::Failed);
  EXPECT_EQ(r.dsn.recipients[0].status, "5.1.1");
  EXPECT_EQ(r.dsn.recipients[0].diagnostic_code->text, "550 5.1.1 <nosuch");
  EXPECT_FALSE(r.original);
  EXPECT_TRUE(has_problem(r, "no returned original")) << joined(r.problems);
}

TEST(FeedbackReport, MissingBoundary) {
  const FeedbackReport r = parse_feedback_report(corpus("missing_boundary.eml"));
  EXPECT_EQ(r.kind, FeedbackKind::Dsn);
  EXPECT_TRUE(r.dsn.recipients.empty());
  EXPECT_TRUE(has_problem(r, "MIME: multipart without boundary")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "no message/delivery-status part")) << joined(r.problems);
}

TEST(FeedbackReport, GarbageDeliveryStatus) {
  const FeedbackReport r = parse_feedback_report(corpus("garbage_status.eml"));
  ASSERT_EQ(r.kind, FeedbackKind::Dsn);
  EXPECT_FALSE(r.dsn.reporting_mta);
  EXPECT_TRUE(has_problem(r, "no Reporting-MTA")) << joined(r.problems);
  // GMime skips the lines that are no fields; the groups of nothing else
  // are empty.
  EXPECT_TRUE(has_problem(r, "MIME: invalid header field name")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "DSN group 1: no fields")) << joined(r.problems);
  // The last group has fields, all of them wrong.
  bool saw_broken = false;
  for (const auto& rc : r.dsn.recipients) {
    if (rc.final_recipient && rc.final_recipient->address == "broken@example.net") {
      saw_broken = true;
      EXPECT_EQ(rc.action, DsnAction::Unknown);
      EXPECT_EQ(rc.status, "");
      ASSERT_TRUE(rc.diagnostic_code);
      EXPECT_EQ(rc.diagnostic_code->smtp_code, 0);
    }
  }
  EXPECT_TRUE(saw_broken) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "Action 'exploded'")) << joined(r.problems);
  expect_clean(r, FeedbackLimits{}.max_value_bytes);
}

TEST(FeedbackReport, HugeHeader) {
  // A 300 KB Subject, 5,000 further fields and a 2 MB input: values cut at
  // a character boundary, fields and input bounded, each cut said.
  std::string subject = "Subject: Out of Office ";
  while (subject.size() < 300000) subject += "\xc3\xa4 long ";
  std::string msg = "From: a@example.net\r\n" + subject + "\r\n";
  for (int i = 0; i < 5000; ++i) msg += "X-Filler-" + std::to_string(i) + ": value\r\n";
  msg += "\r\n";
  msg += std::string(2 << 20, 'x');
  const FeedbackReport r = parse_feedback_report(msg);
  EXPECT_EQ(r.kind, FeedbackKind::AutoReply);
  EXPECT_LE(r.subject.size(), FeedbackLimits{}.max_value_bytes);
  EXPECT_GT(r.subject.size(), FeedbackLimits{}.max_value_bytes - 8);
  EXPECT_EQ(r.headers.size(), FeedbackLimits{}.max_headers);
  EXPECT_TRUE(has_problem(r, "value cut to 1024 bytes")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "header fields past the first 200 ignored")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "input cut to its first 1048576 bytes")) << joined(r.problems);
  expect_clean(r, FeedbackLimits{}.max_value_bytes);
}

TEST(FeedbackReport, ManyRecipientsAndProblemsAreBounded) {
  FeedbackLimits limits;
  limits.max_recipients = 5;
  limits.max_problems = 4;
  std::string groups;
  for (int i = 0; i < 50; ++i)
    groups +=
        "Final-Recipient: rfc822; r" + std::to_string(i) + "@example.net\r\nAction: nope\r\n\r\n";
  const FeedbackReport r =
      parse_feedback_report(dsn_with("Reporting-MTA: dns; mx.example", groups), limits);
  EXPECT_EQ(r.dsn.recipients.size(), 5u);
  ASSERT_EQ(r.problems.size(), 5u);
  EXPECT_NE(r.problems.back().find("more problems"), std::string::npos) << joined(r.problems);
}

TEST(FeedbackReport, ManyPartsAndDeepNestingAreBounded) {
  // 10,000 empty parts: GMime sees at most max_boundary_lines of them.
  std::string many = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  for (int i = 0; i < 10000; ++i) many += "--b\r\n\r\n";
  many += "--b--\r\n";
  FeedbackReport r = parse_feedback_report(many);
  EXPECT_EQ(r.kind, FeedbackKind::Other);
  EXPECT_TRUE(has_problem(r, "lines beginning with \"--\"")) << joined(r.problems);
  EXPECT_TRUE(has_problem(r, "more than 64 parts")) << joined(r.problems);

  // Multiparts nested 200 deep, the report at the bottom: not looked for.
  std::string deep = "Subject: x\r\n";
  for (int i = 0; i < 200; ++i)
    deep += "Content-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\r\n\r\n--b" +
            std::to_string(i) + "\r\n";
  deep += "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n";
  r = parse_feedback_report(deep);
  EXPECT_EQ(r.kind, FeedbackKind::Other);
  EXPECT_TRUE(has_problem(r, "nested deeper than 4")) << joined(r.problems);

  // message/rfc822 nested 5,000 deep: GMime's own cap, no crash.
  std::string messages = "Subject: x\r\n";
  for (int i = 0; i < 5000; ++i) messages += "Content-Type: message/rfc822\r\n\r\n";
  r = parse_feedback_report(messages);
  EXPECT_EQ(r.kind, FeedbackKind::Other);
}

TEST(FeedbackReport, NothingCrashesOnPrefixesAndOddBytes) {
  for (const char* file :
       {"postfix_bounce.eml", "gmail_dsn.eml", "jmrp_arf.eml", "yahoo_arf.eml", "german_ooo.eml"}) {
    const std::string whole = corpus(file);
    for (std::size_t n = 0; n < whole.size(); n += 61) {
      const FeedbackReport r = parse_feedback_report(std::string_view(whole).substr(0, n));
      expect_clean(r, FeedbackLimits{}.max_value_bytes);
    }
  }
  EXPECT_EQ(parse_feedback_report("").kind, FeedbackKind::Other);
  const std::string nul("Subject: a\0b\r\nAuto-Submitted: auto-replied\r\n\r\n\0\0", 47);
  expect_clean(parse_feedback_report(nul), 1024);
  const FeedbackReport bad_utf8 =
      parse_feedback_report("Subject: \xff\xfe\xc3 \xed\xa0\x80 ok\r\n\r\nx");
  EXPECT_EQ(bad_utf8.subject.find('\xff'), std::string::npos);
  EXPECT_TRUE(clean_utf8(bad_utf8.subject)) << bad_utf8.subject;
}

TEST(FeedbackReport, Names) {
  EXPECT_EQ(feedback_kind_name(FeedbackKind::AutoReply), "auto_reply");
  EXPECT_EQ(dsn_action_name(DsnAction::Delayed), "delayed");
  EXPECT_EQ(arf_feedback_type_name(ArfFeedbackType::NotSpam), "not-spam");
}

}  // namespace
}  // namespace ringmail::mail
