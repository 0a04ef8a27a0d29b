// Tests of header-section parsing, the Received: trace header, the headers
// submission adds (RFC 6409 §8) and campaign header stripping.
#include "mta/smtp/smtp_message_headers.h"

#include <gtest/gtest.h>

namespace ringmail::mta {
namespace {

constexpr int64_t kJan1 = 1767225600000;  // Thu, 01 Jan 2026 00:00:00 +0000

TEST(SmtpHeadersParse, FieldsFoldingAndBody) {
  std::string msg = "Subject: a\r\n long subject\r\nFrom : x@y\r\nTo:z@w\r\n\r\nbody\r\n";
  HeaderSection hs = parse_header_section(msg);
  ASSERT_EQ(hs.fields.size(), 3u);
  EXPECT_EQ(hs.fields[0].name, "Subject");
  EXPECT_EQ(hs.fields[0].raw, "Subject: a\r\n long subject\r\n");
  EXPECT_EQ(unfolded_value(hs.fields[0]), "a long subject");
  EXPECT_EQ(hs.fields[1].name, "From");
  EXPECT_EQ(unfolded_value(hs.fields[2]), "z@w");
  EXPECT_TRUE(hs.has_separator);
  EXPECT_EQ(msg.substr(hs.body_offset), "body\r\n");
  EXPECT_FALSE(hs.malformed);
}

TEST(SmtpHeadersParse, NoHeadersNonHeaderLinesAndMalformed) {
  HeaderSection empty = parse_header_section("");
  EXPECT_TRUE(empty.fields.empty());
  EXPECT_EQ(empty.body_offset, 0u);

  HeaderSection body_only = parse_header_section("hello world\r\n");
  EXPECT_TRUE(body_only.fields.empty());
  EXPECT_EQ(body_only.body_offset, 0u);
  EXPECT_FALSE(body_only.malformed);

  std::string blank_first = "\r\nbody\r\n";
  HeaderSection b = parse_header_section(blank_first);
  EXPECT_TRUE(b.has_separator);
  EXPECT_EQ(blank_first.substr(b.body_offset), "body\r\n");

  std::string ends_early = "Subject: x\r\nnot a header\r\n";
  HeaderSection e = parse_header_section(ends_early);
  EXPECT_EQ(e.fields.size(), 1u);
  EXPECT_FALSE(e.has_separator);
  EXPECT_EQ(ends_early.substr(e.body_offset), "not a header\r\n");

  EXPECT_TRUE(parse_header_section(" starts folded\r\nSubject: x\r\n\r\n").malformed);
  EXPECT_TRUE(parse_header_section("\tx\r\n").malformed);
}

TEST(SmtpHeadersDate, Rfc5322Format) {
  EXPECT_EQ(format_rfc5322_date(kJan1), "Thu, 01 Jan 2026 00:00:00 +0000");
  EXPECT_EQ(format_rfc5322_date(1709294096789), "Fri, 01 Mar 2024 11:54:56 +0000");
}

TEST(SmtpHeadersReceived, FormatAndFolding) {
  ReceivedTrace t;
  t.helo = "app.example";
  t.client_ip = "192.0.2.10";
  t.hostname = "mx1.example.test";
  t.protocol = "ESMTPSA";
  t.id = "0194a1b2c3d4e5f60001";
  t.for_recipient = "user@example.net";
  t.unix_ms = kJan1;
  std::string h = make_received_header(t);
  EXPECT_EQ(h,
            "Received: from app.example (unknown [192.0.2.10]) by mx1.example.test\r\n"
            "\t(Ringmail) with ESMTPSA id 0194a1b2c3d4e5f60001 for <user@example.net>;\r\n"
            "\tThu, 01 Jan 2026 00:00:00 +0000\r\n");
  t.client_ip = "2001:db8::5";
  t.for_recipient = "";
  t.helo = std::string_view("h");
  EXPECT_EQ(make_received_header(t),
            "Received: from h (unknown [IPv6:2001:db8::5]) by mx1.example.test (Ringmail)\r\n"
            "\twith ESMTPSA id 0194a1b2c3d4e5f60001; Thu, 01 Jan 2026 00:00:00 +0000\r\n");
  // Every line stays within 78 octets when the words allow it.
  std::string longer_helo(60, 'h');
  t.helo = longer_helo;
  std::string folded = make_received_header(t);
  size_t start = 0;
  while (start < folded.size()) {
    size_t eol = folded.find("\r\n", start);
    EXPECT_LE(eol - start, 78u) << folded;
    start = eol + 2;
  }
}

TEST(SmtpHeadersRewrite, ReceivedFirstAndCampaignStripped) {
  std::string msg =
      "From: a@example.org\r\n"
      "X-Campaign-ID: spring\r\n"
      "\t2026\r\n"
      "Subject: hi\r\n"
      "x-campaign-id: second\r\n"
      "X-CAMPAIGN-ID-Other: keep\r\n"
      "\r\n"
      "X-Campaign-ID: in the body stays\r\n";
  HeaderRewrite rw;
  rw.campaign_header = "X-Campaign-ID";
  std::string out;
  RewriteResult r = rewrite_message(msg, "Received: by x\r\n", rw, &out);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.campaign, "spring 2026");
  EXPECT_EQ(out,
            "Received: by x\r\n"
            "From: a@example.org\r\n"
            "Subject: hi\r\n"
            "X-CAMPAIGN-ID-Other: keep\r\n"
            "\r\n"
            "X-Campaign-ID: in the body stays\r\n");
}

TEST(SmtpHeadersRewrite, CampaignNameFromSettingsAndSanitised) {
  HeaderRewrite rw;
  rw.campaign_header = "List-Campaign";
  std::string out;
  RewriteResult r =
      rewrite_message("LIST-CAMPAIGN:   q1\x01-promo  \r\nX-Campaign-ID: z\r\n\r\n", "", rw, &out);
  EXPECT_EQ(r.campaign, "q1-promo");
  EXPECT_EQ(out, "X-Campaign-ID: z\r\n\r\n");
}

TEST(SmtpHeadersRewrite, SubmissionAddsMissingMessageIdAndDate) {
  HeaderRewrite rw;
  rw.add_missing_message_id_and_date = true;
  rw.message_id = "<id1@mx.test>";
  rw.unix_ms = kJan1;
  std::string out;
  ASSERT_TRUE(rewrite_message("Subject: x\r\n\r\nb\r\n", "R: 1\r\n", rw, &out).ok);
  EXPECT_EQ(out,
            "R: 1\r\nSubject: x\r\nMessage-ID: <id1@mx.test>\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nb\r\n");
  ASSERT_TRUE(
      rewrite_message("Date: Mon, 1 Dec 2025 00:00:00 +0000\r\n\r\nb\r\n", "", rw, &out).ok);
  EXPECT_EQ(out, "Date: Mon, 1 Dec 2025 00:00:00 +0000\r\nMessage-ID: <id1@mx.test>\r\n\r\nb\r\n");
  ASSERT_TRUE(rewrite_message("MESSAGE-ID: <a@b>\r\n\r\n", "", rw, &out).ok);
  EXPECT_EQ(out, "MESSAGE-ID: <a@b>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n");
  // No header section at all: the added headers, then an empty line.
  ASSERT_TRUE(rewrite_message("just text\r\n", "", rw, &out).ok);
  EXPECT_EQ(out,
            "Message-ID: <id1@mx.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
            "just text\r\n");
  // Relay mode adds nothing.
  rw.add_missing_message_id_and_date = false;
  ASSERT_TRUE(rewrite_message("Subject: x\r\n\r\nb\r\n", "", rw, &out).ok);
  EXPECT_EQ(out, "Subject: x\r\n\r\nb\r\n");
}

TEST(SmtpHeadersRewrite, HeaderSectionEndedByNonHeaderLineGetsSeparator) {
  HeaderRewrite rw;
  std::string out;
  ASSERT_TRUE(rewrite_message("Subject: x\r\nbody line\r\n", "", rw, &out).ok);
  EXPECT_EQ(out, "Subject: x\r\n\r\nbody line\r\n");
  EXPECT_FALSE(rewrite_message(" x\r\n", "", rw, &out).ok);
}

}  // namespace
}  // namespace ringmail::mta
