// Tests for queue/dsn: which failures are reported (RFC 3461 NOTIFY) and the
// DSN itself, read back the way a mail reader would: a small MIME parser
// here, and Python's stdlib email parser as an independent reader.
#include "queue/dsn.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

constexpr int64_t kNow = 1796056199000;  // Mon, 30 Nov 2026 16:29:59 +0000

// ---- a minimal MIME reader for the assertions ----

struct Field {
  std::string name;
  std::string value;  // unfolded, leading space removed
};

struct Entity {
  std::vector<Field> fields;
  std::string body;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    if (end == std::string_view::npos) end = text.size();
    lines.emplace_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return lines;
}

std::vector<Field> parse_fields(std::string_view block) {
  std::vector<Field> fields;
  for (const std::string& line : split_lines(block)) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!fields.empty()) fields.back().value += line;  // unfolding drops only the CRLF
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) {
      fields.push_back({line, ""});
      continue;
    }
    std::string value = line.substr(colon + 1);
    fields.push_back({line.substr(0, colon), value});
  }
  for (Field& f : fields) {
    if (!f.value.empty() && f.value[0] == ' ') f.value.erase(0, 1);
  }
  return fields;
}

Entity parse_entity(std::string_view text) {
  Entity e;
  size_t blank = text.find("\r\n\r\n");
  if (blank == std::string_view::npos) {
    e.fields = parse_fields(text);
    return e;
  }
  e.fields = parse_fields(text.substr(0, blank + 2));
  e.body = std::string(text.substr(blank + 4));
  return e;
}

std::vector<std::string> values_of(const std::vector<Field>& fields, std::string_view name) {
  std::vector<std::string> out;
  for (const Field& f : fields) {
    if (iequals(f.name, name)) out.push_back(f.value);
  }
  return out;
}

std::string value_of(const std::vector<Field>& fields, std::string_view name) {
  auto all = values_of(fields, name);
  return all.empty() ? "<absent>" : all.front();
}

std::string boundary_of(const std::string& content_type) {
  size_t at = content_type.find("boundary=\"");
  if (at == std::string::npos) return {};
  at += 10;
  return content_type.substr(at, content_type.find('"', at) - at);
}

// Body parts of a multipart body, each without the CRLF that belongs to the
// next delimiter; empty when the closing delimiter is missing.
std::vector<std::string> split_multipart(std::string_view body, const std::string& boundary) {
  std::vector<std::string> parts;
  std::string* current = nullptr;
  for (const std::string& line : split_lines(body)) {
    if (line == "--" + boundary + "--") return parts;
    if (line == "--" + boundary) {
      parts.emplace_back();
      current = &parts.back();
      continue;
    }
    if (current) {
      *current += line;
      *current += "\r\n";
    }
  }
  return {};
}

struct Report {
  Entity top;
  std::vector<Entity> parts;
  std::vector<std::vector<Field>> status_blocks;  // per-message first, then per recipient
};

Report read_report(const std::string& content) {
  Report r;
  r.top = parse_entity(content);
  std::string boundary = boundary_of(value_of(r.top.fields, "Content-Type"));
  for (const std::string& part : split_multipart(r.top.body, boundary)) {
    r.parts.push_back(parse_entity(part));
  }
  if (r.parts.size() >= 2) {
    std::string_view status = r.parts[1].body;
    size_t pos = 0;
    while (pos < status.size()) {
      size_t end = status.find("\r\n\r\n", pos);
      if (end == std::string_view::npos) end = status.size();
      r.status_blocks.push_back(parse_fields(status.substr(pos, end - pos + 2)));
      pos = end + 4;
    }
  }
  return r;
}

// Well-formed on the wire: CRLF only, no line over 998 octets.
void expect_well_formed(const std::string& content) {
  for (size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\r') {
      ASSERT_TRUE(i + 1 < content.size() && content[i + 1] == '\n') << "bare CR at " << i;
    } else if (content[i] == '\n') {
      ASSERT_TRUE(i > 0 && content[i - 1] == '\r') << "bare LF at " << i;
    }
  }
  ASSERT_TRUE(content.ends_with("\r\n"));
  for (const std::string& line : split_lines(content)) {
    EXPECT_LE(line.size(), 998u) << line.substr(0, 80);
  }
}

SpoolMessage original_message() {
  SpoolMessage m = make_test_message(2, 2048, "spring");
  m.envelope.sender = "App@Sender.TEST";
  m.envelope.body_type = "7BIT";
  m.envelope.dsn_ret = "";
  m.content =
      "From: app@sender.test\r\nTo: user0@example.test\r\nSubject: quarterly report\r\n"
      "Message-ID: <orig-1@sender.test>\r\n\r\nThe body line one.\r\nThe body line two.\r\n";
  m.meta.size = m.content.size();
  return m;
}

DsnRecipient failed_recipient(std::string address,
                              std::string diagnostic = "550 5.1.1 no such user") {
  DsnRecipient r;
  r.address = std::move(address);
  r.status = "5.1.1";
  r.diagnostic = std::move(diagnostic);
  r.remote_mta = "mx1.example.test";
  r.last_attempt_unix_ms = kNow - 60'000;
  return r;
}

DsnRequest request_for(const SpoolMessage& original, std::vector<DsnRecipient> recipients) {
  DsnRequest request;
  request.original = &original;
  request.recipients = std::move(recipients);
  request.reporting_mta = "mx.ringmail.test";
  request.now_unix_ms = kNow;
  return request;
}

// ---- wants_dsn ----

TEST(WantsDsn, FollowsNotifyAndNeverAnswersTheNullSender) {
  struct Case {
    const char* sender;
    const char* notify;
    const char* action;
    bool expected;
  };
  const Case cases[] = {
      {"a@b.test", "", "failed", true},
      {"a@b.test", "", "delayed", true},
      {"a@b.test", "", "delivered", false},
      {"a@b.test", "NEVER", "failed", false},
      {"a@b.test", "NEVER", "delayed", false},
      {"a@b.test", "FAILURE", "failed", true},
      {"a@b.test", "FAILURE", "delayed", false},
      {"a@b.test", "DELAY", "failed", false},
      {"a@b.test", "DELAY", "delayed", true},
      {"a@b.test", "SUCCESS,FAILURE", "failed", true},
      {"a@b.test", "SUCCESS,FAILURE", "delayed", false},
      {"a@b.test", "SUCCESS,FAILURE", "delivered", true},
      {"a@b.test", "success,failure,delay", "delayed", true},
      {"a@b.test", "FAILURE,DELAY", "failed", true},
      {"", "", "failed", false},
      {"", "FAILURE", "failed", false},
      {"", "DELAY", "delayed", false},
      {"", "SUCCESS,FAILURE", "failed", false},
  };
  for (const Case& c : cases) {
    Recipient r;
    r.address = "rcpt@example.test";
    r.dsn_notify = c.notify;
    EXPECT_EQ(wants_dsn(c.sender, r, c.action), c.expected)
        << "sender '" << c.sender << "' NOTIFY '" << c.notify << "' action " << c.action;
  }
}

// ---- make_dsn ----

TEST(MakeDsn, EnvelopeGoesFromTheNullSenderToTheOriginalSender) {
  SpoolMessage original = original_message();
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                      MessageId{"0123456789abcdef0001"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(dsn->id.value, "0123456789abcdef0001");
  EXPECT_EQ(dsn->envelope.sender, "");
  ASSERT_EQ(dsn->envelope.recipients.size(), 1u);
  const Recipient& to = dsn->envelope.recipients[0];
  EXPECT_EQ(to.address, "App@Sender.TEST");
  EXPECT_EQ(to.domain, "sender.test");
  EXPECT_EQ(to.state, RecipientState::queued);
  EXPECT_EQ(dsn->envelope.body_type, "7BIT");
  EXPECT_FALSE(dsn->envelope.smtputf8);
  EXPECT_EQ(dsn->meta.tenant, "app1");
  EXPECT_EQ(dsn->meta.campaign, "spring");
  EXPECT_EQ(dsn->meta.listener, "dsn");
  EXPECT_EQ(dsn->meta.received_unix_ms, kNow);
  EXPECT_EQ(dsn->meta.size, dsn->content.size());
  expect_well_formed(dsn->content);
}

TEST(MakeDsn, NothingToReportGivesNull) {
  SpoolMessage original = original_message();
  EXPECT_EQ(make_dsn(request_for(original, {}), MessageId{"a"}), nullptr);
  DsnRequest no_original = request_for(original, {failed_recipient("u@example.test")});
  no_original.original = nullptr;
  EXPECT_EQ(make_dsn(no_original, MessageId{"a"}), nullptr);
  original.envelope.sender = "";
  EXPECT_EQ(make_dsn(request_for(original, {failed_recipient("u@example.test")}), MessageId{"a"}),
            nullptr);
}

TEST(MakeDsn, MultipartReportWithThePerRecipientFields) {
  SpoolMessage original = original_message();
  original.envelope.dsn_envid = "QQ314159+2Bx";
  DsnRecipient first = failed_recipient("user0@example.test");
  first.dsn_orcpt = "rfc822;User0+2Btag@Example.TEST";
  DsnRecipient second;
  second.address = "user1@example.org";
  second.action = "failed";
  second.status = "4.4.7";
  second.diagnostic = "message expired after 5 days";
  auto dsn = make_dsn(request_for(original, {first, second}), MessageId{"0123456789abcdef0002"});
  ASSERT_NE(dsn, nullptr);
  expect_well_formed(dsn->content);
  const Report report = read_report(dsn->content);

  const auto& top = report.top.fields;
  EXPECT_EQ(value_of(top, "From"), "Mail Delivery System <MAILER-DAEMON@mx.ringmail.test>");
  EXPECT_EQ(value_of(top, "To"), "<App@Sender.TEST>");
  EXPECT_EQ(value_of(top, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(value_of(top, "Date"), "Mon, 30 Nov 2026 16:29:59 +0000");
  EXPECT_EQ(value_of(top, "Message-ID"), "<0123456789abcdef0002@mx.ringmail.test>");
  EXPECT_EQ(value_of(top, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(value_of(top, "MIME-Version"), "1.0");
  const std::string content_type = value_of(top, "Content-Type");
  EXPECT_TRUE(content_type.starts_with("multipart/report; report-type=delivery-status;"))
      << content_type;
  const std::string boundary = boundary_of(content_type);
  EXPECT_NE(boundary.find("0123456789abcdef0002"), std::string::npos) << boundary;
  EXPECT_NE(dsn->content.find("\r\n--" + boundary + "\r\n"), std::string::npos);
  EXPECT_TRUE(dsn->content.ends_with("\r\n--" + boundary + "--\r\n"));

  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[0].fields, "Content-Type"), "text/plain; charset=us-ascii");
  EXPECT_NE(report.parts[0].body.find("<user0@example.test>: host mx1.example.test said: 550 "
                                      "5.1.1 no such user"),
            std::string::npos)
      << report.parts[0].body;
  EXPECT_NE(report.parts[0].body.find("<user1@example.org>: message expired after 5 days"),
            std::string::npos)
      << report.parts[0].body;
  EXPECT_EQ(value_of(report.parts[1].fields, "Content-Type"), "message/delivery-status");

  ASSERT_EQ(report.status_blocks.size(), 3u);
  const auto& per_message = report.status_blocks[0];
  EXPECT_EQ(value_of(per_message, "Original-Envelope-Id"), "QQ314159+x");  // xtext decoded
  EXPECT_EQ(value_of(per_message, "Reporting-MTA"), "dns; mx.ringmail.test");
  EXPECT_EQ(value_of(per_message, "Arrival-Date"), "Thu, 01 Jan 2026 00:00:00 +0000");

  const auto& r0 = report.status_blocks[1];
  EXPECT_EQ(value_of(r0, "Original-Recipient"), "rfc822; User0+tag@Example.TEST");
  EXPECT_EQ(value_of(r0, "Final-Recipient"), "rfc822; user0@example.test");
  EXPECT_EQ(value_of(r0, "Action"), "failed");
  EXPECT_EQ(value_of(r0, "Status"), "5.1.1");
  EXPECT_EQ(value_of(r0, "Remote-MTA"), "dns; mx1.example.test");
  EXPECT_EQ(value_of(r0, "Diagnostic-Code"), "smtp; 550 5.1.1 no such user");
  EXPECT_EQ(value_of(r0, "Last-Attempt-Date"), "Mon, 30 Nov 2026 16:28:59 +0000");

  const auto& r1 = report.status_blocks[2];
  EXPECT_EQ(value_of(r1, "Original-Recipient"), "<absent>");
  EXPECT_EQ(value_of(r1, "Final-Recipient"), "rfc822; user1@example.org");
  EXPECT_EQ(value_of(r1, "Action"), "failed");
  EXPECT_EQ(value_of(r1, "Status"), "4.4.7");
  EXPECT_EQ(value_of(r1, "Remote-MTA"), "<absent>");
  EXPECT_EQ(value_of(r1, "Diagnostic-Code"), "X-Ringmail; message expired after 5 days");
  EXPECT_EQ(value_of(r1, "Last-Attempt-Date"), "<absent>");

  // No RET: the whole original comes back.
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Type"), "message/rfc822");
  EXPECT_EQ(report.parts[2].body, original.content);
}

TEST(MakeDsn, RetHdrsReturnsOnlyTheHeaders) {
  SpoolMessage original = original_message();
  original.envelope.dsn_ret = "HDRS";
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                      MessageId{"0123456789abcdef0003"});
  ASSERT_NE(dsn, nullptr);
  const Report report = read_report(dsn->content);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(report.parts[2].body,
            "From: app@sender.test\r\nTo: user0@example.test\r\nSubject: quarterly report\r\n"
            "Message-ID: <orig-1@sender.test>\r\n");
  EXPECT_EQ(dsn->content.find("The body line"), std::string::npos);
}

TEST(MakeDsn, RetFullReturnsTheBodyUnlessItIsHuge) {
  SpoolMessage original = original_message();
  original.envelope.dsn_ret = "FULL";
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                      MessageId{"0123456789abcdef0004"});
  ASSERT_NE(dsn, nullptr);
  Report report = read_report(dsn->content);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Type"), "message/rfc822");
  EXPECT_NE(report.parts[2].body.find("The body line one.\r\nThe body line two.\r\n"),
            std::string::npos);

  std::string big_body;
  while (big_body.size() <= (1u << 20)) big_body += std::string(76, 'x') + "\r\n";
  original.content += big_body;
  dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                 MessageId{"0123456789abcdef0005"});
  ASSERT_NE(dsn, nullptr);
  report = read_report(dsn->content);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Type"), "text/rfc822-headers");
  EXPECT_LT(dsn->content.size(), 8192u);
}

TEST(MakeDsn, EightBitOriginalMakesAn8BitMimeDsn) {
  SpoolMessage original = original_message();
  original.envelope.body_type = "8BITMIME";
  original.content =
      "Subject: caf\xc3\xa9\r\n\r\nGr\xc3\xbc\xc3\x9f"
      "e\r\n";
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                      MessageId{"0123456789abcdef0006"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(dsn->envelope.body_type, "8BITMIME");
  EXPECT_FALSE(dsn->envelope.smtputf8);
  const Report report = read_report(dsn->content);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(value_of(report.top.fields, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(value_of(report.parts[1].fields, "Content-Type"), "message/delivery-status");

  // RET=HDRS leaves an 8-bit body out, and with it the need for 8BITMIME.
  original.envelope.dsn_ret = "HDRS";
  original.content =
      "Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9f"
      "e\r\n";
  dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                 MessageId{"0123456789abcdef0007"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(dsn->envelope.body_type, "7BIT");  // the 8-bit body was left out
}

TEST(MakeDsn, Utf8AddressesMakeAnSmtpUtf8DsnWithGlobalTypes) {
  SpoolMessage original = original_message();
  original.envelope.sender =
      "j\xc3\xb6rg@b\xc3\xbc"
      "cher.test";
  original.envelope.smtputf8 = true;
  auto dsn = make_dsn(request_for(original, {failed_recipient("\xc3\xa9lodie@example.test")}),
                      MessageId{"0123456789abcdef0008"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_TRUE(dsn->envelope.smtputf8);
  EXPECT_EQ(dsn->envelope.body_type, "8BITMIME");
  EXPECT_EQ(dsn->envelope.recipients[0].domain,
            "b\xc3\xbc"
            "cher.test");
  const Report report = read_report(dsn->content);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(value_of(report.parts[0].fields, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(value_of(report.parts[1].fields, "Content-Type"), "message/global-delivery-status");
  EXPECT_EQ(value_of(report.parts[2].fields, "Content-Type"), "message/global");
  ASSERT_EQ(report.status_blocks.size(), 2u);
  EXPECT_EQ(value_of(report.status_blocks[1], "Final-Recipient"),
            "utf-8; \xc3\xa9lodie@example.test");
}

TEST(MakeDsn, LongDiagnosticIsFoldedAndUnfoldsToTheSameText) {
  std::string diagnostic = "550-5.7.1";
  for (int i = 0; diagnostic.size() < 3000; ++i) diagnostic += " word" + std::to_string(i);
  std::string unbroken = "550 " + std::string(2500, 'z');
  SpoolMessage original = original_message();
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test", diagnostic),
                                             failed_recipient("user1@example.org", unbroken)}),
                      MessageId{"0123456789abcdef0009"});
  ASSERT_NE(dsn, nullptr);
  expect_well_formed(dsn->content);
  const Report report = read_report(dsn->content);
  ASSERT_EQ(report.status_blocks.size(), 3u);
  EXPECT_EQ(value_of(report.status_blocks[1], "Diagnostic-Code"), "smtp; " + diagnostic);
  // Folded at white space, so the status part's lines stay short.
  for (const std::string& line : split_lines(report.parts[1].body)) {
    if (line.find("zzzz") == std::string::npos) {
      EXPECT_LE(line.size(), 78u) << line;
    }
  }
  // A word too long for any line is cut; only white space is added.
  std::string cut = value_of(report.status_blocks[2], "Diagnostic-Code");
  std::erase(cut, ' ');
  EXPECT_EQ(cut, "smtp;550" + std::string(2500, 'z'));
}

TEST(MakeDsn, HeaderInjectionThroughAddressesAndRepliesIsNeutralized) {
  SpoolMessage original = original_message();
  original.envelope.sender = "evil@sender.test\r\nBcc: victim@elsewhere.test";
  original.envelope.dsn_envid = "id\r\nX-Injected: 1";
  DsnRecipient r = failed_recipient("user0@example.test\r\nAction: delivered",
                                    "550 no\r\nStatus: 2.0.0\r\n\r\n--x\x01\x7f");
  r.remote_mta = "mx.test\r\nX-Evil: 1";
  r.dsn_orcpt = "rfc822;a@b.test+0D+0AAction: relayed";  // xtext-encoded CRLF
  auto dsn = make_dsn(request_for(original, {r}), MessageId{"0123456789abcdef0010"});
  ASSERT_NE(dsn, nullptr);
  expect_well_formed(dsn->content);
  const Report report = read_report(dsn->content);
  EXPECT_TRUE(values_of(report.top.fields, "Bcc").empty());
  EXPECT_EQ(value_of(report.top.fields, "To"), "<evil@sender.testBcc: victim@elsewhere.test>");
  EXPECT_EQ(dsn->envelope.recipients[0].address, "evil@sender.testBcc: victim@elsewhere.test");
  ASSERT_EQ(report.parts.size(), 3u);
  ASSERT_EQ(report.status_blocks.size(), 2u);
  EXPECT_TRUE(values_of(report.status_blocks[0], "X-Injected").empty());
  const auto& block = report.status_blocks[1];
  EXPECT_EQ(values_of(block, "Action"), std::vector<std::string>{"failed"});
  EXPECT_EQ(values_of(block, "Status"), std::vector<std::string>{"5.1.1"});
  EXPECT_TRUE(values_of(block, "X-Evil").empty());
  EXPECT_EQ(value_of(block, "Final-Recipient"), "rfc822; user0@example.testAction: delivered");
  EXPECT_EQ(value_of(block, "Original-Recipient"), "rfc822; a@b.testAction: relayed");
  EXPECT_EQ(value_of(block, "Diagnostic-Code"), "smtp; 550 no Status: 2.0.0 --x");
}

TEST(MakeDsn, BoundaryIsPerDsnAndNeverInsideTheOriginal) {
  SpoolMessage original = original_message();
  auto first = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                        MessageId{"0123456789abcdef0011"});
  auto second = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                         MessageId{"0123456789abcdef0012"});
  ASSERT_TRUE(first && second);
  const std::string b1 =
      boundary_of(value_of(read_report(first->content).top.fields, "Content-Type"));
  const std::string b2 =
      boundary_of(value_of(read_report(second->content).top.fields, "Content-Type"));
  EXPECT_FALSE(b1.empty());
  EXPECT_NE(b1, b2);

  // An original that quotes the boundary this DSN would use.
  original.content += "--" + b1 + "\r\nmore\r\n--" + b1 + "--\r\n";
  auto third = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                        MessageId{"0123456789abcdef0011"});
  ASSERT_NE(third, nullptr);
  const Report report = read_report(third->content);
  const std::string b3 = boundary_of(value_of(report.top.fields, "Content-Type"));
  EXPECT_NE(b3, b1);
  ASSERT_EQ(report.parts.size(), 3u);
  EXPECT_EQ(report.parts[2].body, original.content);
}

TEST(MakeDsn, DelayedOnlyReportSaysSo) {
  SpoolMessage original = original_message();
  DsnRecipient r = failed_recipient("user0@example.test", "451 4.7.1 try later");
  r.action = "delayed";
  r.status = "4.7.1";
  auto dsn = make_dsn(request_for(original, {r}), MessageId{"0123456789abcdef0013"});
  ASSERT_NE(dsn, nullptr);
  const Report report = read_report(dsn->content);
  EXPECT_EQ(value_of(report.top.fields, "Subject"), "Delayed Mail (still being retried)");
  ASSERT_EQ(report.status_blocks.size(), 2u);
  EXPECT_EQ(value_of(report.status_blocks[1], "Action"), "delayed");
  EXPECT_EQ(value_of(report.status_blocks[1], "Status"), "4.7.1");
}

// Python's email package, a reader this code did not write, must see the
// same structure.
constexpr const char* kPythonReader = R"PY(
import email, sys
msg = email.message_from_bytes(open(sys.argv[1], 'rb').read())
print('multipart', msg.is_multipart())
print('type', msg.get_content_type())
print('report-type', msg.get_param('report-type'))
print('defects', sum(len(part.defects) for part in msg.walk()))
parts = msg.get_payload()
print('parts', len(parts))
print('part0', parts[0].get_content_type())
print('part1', parts[1].get_content_type())
blocks = parts[1].get_payload()
print('reporting-mta', blocks[0]['Reporting-MTA'])
for block in blocks[1:]:
    print('recipient', block['Final-Recipient'], '|', block['Action'], '|', block['Status'])
print('part2', parts[2].get_content_type())
if parts[2].get_content_type() == 'message/rfc822':
    print('original-subject', parts[2].get_payload(0)['Subject'])
else:
    print('original-headers', parts[2].get_payload().splitlines()[2])
)PY";

std::string run_python_reader(const TempDir& dir, const std::string& content) {
  const auto script = dir.write("reader.py", kPythonReader);
  const auto message = dir.write("dsn.eml", content);
  const std::string command =
      "/usr/bin/python3 " + script.string() + " " + message.string() + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return "popen failed";
  std::string output;
  char buf[4096];
  while (size_t got = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, got);
  int status = ::pclose(pipe);
  if (status != 0) output += "exit status " + std::to_string(status) + "\n";
  return output;
}

TEST(MakeDsn, PythonEmailParserReadsTheReport) {
  TempDir dir;
  SpoolMessage original = original_message();
  DsnRecipient second = failed_recipient("user1@example.org", "452 4.2.2 mailbox full");
  second.status = "4.2.2";
  second.action = "delayed";
  auto dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test"), second}),
                      MessageId{"0123456789abcdef0014"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(run_python_reader(dir, dsn->content),
            "multipart True\n"
            "type multipart/report\n"
            "report-type delivery-status\n"
            "defects 0\n"
            "parts 3\n"
            "part0 text/plain\n"
            "part1 message/delivery-status\n"
            "reporting-mta dns; mx.ringmail.test\n"
            "recipient rfc822; user0@example.test | failed | 5.1.1\n"
            "recipient rfc822; user1@example.org | delayed | 4.2.2\n"
            "part2 message/rfc822\n"
            "original-subject quarterly report\n");

  original.envelope.dsn_ret = "HDRS";
  dsn = make_dsn(request_for(original, {failed_recipient("user0@example.test")}),
                 MessageId{"0123456789abcdef0015"});
  ASSERT_NE(dsn, nullptr);
  EXPECT_EQ(run_python_reader(dir, dsn->content),
            "multipart True\n"
            "type multipart/report\n"
            "report-type delivery-status\n"
            "defects 0\n"
            "parts 3\n"
            "part0 text/plain\n"
            "part1 message/delivery-status\n"
            "reporting-mta dns; mx.ringmail.test\n"
            "recipient rfc822; user0@example.test | failed | 5.1.1\n"
            "part2 text/rfc822-headers\n"
            "original-headers Subject: quarterly report\n");
}

}  // namespace
}  // namespace ringmail::queue
