// Tests of the outbound client's codec: reply reading (multi-line, bare
// LF, bounds, garbage), enhanced codes, EHLO keywords, dot-stuffing and
// BDAT framing.
#include "mta/smtp/smtp_client_reply.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

TEST(SmtpClientReplyTest, ReadsMultiLineRepliesWithCrlfOrBareLf) {
  SmtpReplyReader reader;
  reader.feed("250-first\r\n250-second\n250 last\r\n550 5.1.1 no");
  ReplyLines r;
  ASSERT_EQ(reader.next(&r), SmtpReplyReader::Status::reply);
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.lines, (std::vector<std::string>{"first", "second", "last"}));
  EXPECT_EQ(reader.next(&r), SmtpReplyReader::Status::incomplete);
  reader.feed(" such user\r\n");
  ASSERT_EQ(reader.next(&r), SmtpReplyReader::Status::reply);
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(SmtpClientReplyTest, AcceptsACodeWithoutText) {
  SmtpReplyReader reader;
  reader.feed("250\r\n");
  ReplyLines r;
  ASSERT_EQ(reader.next(&r), SmtpReplyReader::Status::reply);
  EXPECT_EQ(make_reply(r).to_string(), "250");
}

TEST(SmtpClientReplyTest, RefusesGarbage) {
  for (const char* bad : {"hello\r\n", "25\r\n", "250x\r\n", "650 no\r\n", "2a0 x\r\n",
                          "250-a\r\n251 b\r\n", "\r\n"}) {
    SmtpReplyReader reader;
    reader.feed(bad);
    ReplyLines r;
    EXPECT_EQ(reader.next(&r), SmtpReplyReader::Status::error) << bad;
    EXPECT_FALSE(reader.error().empty());
    reader.feed("250 ok\r\n");  // sticky
    EXPECT_EQ(reader.next(&r), SmtpReplyReader::Status::error) << bad;
  }
}

TEST(SmtpClientReplyTest, BoundsLinesAndReplies) {
  SmtpReplyReader reader;
  reader.feed("250 " + std::string(kMaxReplyLine, 'a'));  // no line end yet
  ReplyLines r;
  EXPECT_EQ(reader.next(&r), SmtpReplyReader::Status::error);

  SmtpReplyReader many;
  std::string lines;
  for (size_t i = 0; i < kMaxReplyLines; ++i) lines += "250-line\r\n";
  lines += "250 end\r\n";
  many.feed(lines);
  EXPECT_EQ(many.next(&r), SmtpReplyReader::Status::error);

  SmtpReplyReader enough;
  std::string fits;
  for (size_t i = 0; i + 1 < kMaxReplyLines; ++i) fits += "250-line\r\n";
  fits += "250 end\r\n";
  enough.feed(fits);
  ASSERT_EQ(enough.next(&r), SmtpReplyReader::Status::reply);
  EXPECT_EQ(r.lines.size(), kMaxReplyLines);
}

TEST(SmtpClientReplyTest, ReplacesControlCharacters) {
  SmtpReplyReader reader;
  reader.feed(std::string("550 bad\0\x1b[31m text\r\n", 20));
  ReplyLines r;
  ASSERT_EQ(reader.next(&r), SmtpReplyReader::Status::reply);
  EXPECT_EQ(make_reply(r).text, "bad??[31m text");
}

TEST(SmtpClientReplyTest, TakesTheEnhancedCodeOnlyWhenItMatchesTheClass) {
  struct Case {
    const char* wire;
    const char* enhanced;
    const char* text;
  } cases[] = {
      {"550 5.1.1 No such user\r\n", "5.1.1", "No such user"},
      {"550 5.1.1\r\n", "5.1.1", ""},
      {"451 4.7.650 greylisted\r\n", "4.7.650", "greylisted"},
      {"550 4.1.1 mismatch\r\n", "", "4.1.1 mismatch"},
      {"550 5.1234.1 too long\r\n", "", "5.1234.1 too long"},
      {"550 5.1.1x no space\r\n", "", "5.1.1x no space"},
      {"250 2.0.0 Ok: queued as X\r\n", "2.0.0", "Ok: queued as X"},
      {"354 End data with <CR><LF>.<CR><LF>\r\n", "", "End data with <CR><LF>.<CR><LF>"},
      {"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", "5.7.1", "first second third"},
      {"550-first\r\n550 second\r\n", "", "first second"},
  };
  for (const Case& c : cases) {
    SmtpReplyReader reader;
    reader.feed(c.wire);
    ReplyLines r;
    ASSERT_EQ(reader.next(&r), SmtpReplyReader::Status::reply) << c.wire;
    SmtpReply reply = make_reply(r);
    EXPECT_EQ(reply.enhanced, c.enhanced) << c.wire;
    EXPECT_EQ(reply.text, c.text) << c.wire;
    EXPECT_FALSE(reply.local);
  }
}

TEST(SmtpClientReplyTest, ToString) {
  SmtpReply r;
  r.code = 550;
  r.enhanced = "5.1.1";
  r.text = "No such user";
  EXPECT_EQ(r.to_string(), "550 5.1.1 No such user");
  r.enhanced.clear();
  EXPECT_EQ(r.to_string(), "550 No such user");
  SmtpReply local;
  local.code = 0;
  local.enhanced = "4.4.2";
  local.text = "timeout waiting for the greeting";
  local.local = true;
  EXPECT_EQ(local.to_string(), "local: timeout waiting for the greeting");
  EXPECT_TRUE(local.transient());
  EXPECT_FALSE(local.permanent());
}

TEST(SmtpClientReplyTest, ParsesEhloKeywordsCaseInsensitively) {
  ReplyLines r;
  r.code = 250;
  r.lines = {"mx.test greets you",
             "pipelining",
             "Size 35882577",
             "8bitmime",
             "SmtpUtf8",
             "chunking",
             "BINARYMIME",
             "dsn",
             "EnhancedStatusCodes",
             "starttls",
             "AUTH PLAIN LOGIN"};
  EhloCapabilities parsed = parse_ehlo_capabilities(r);
  const ServerCapabilities& c = parsed.capabilities;
  EXPECT_TRUE(c.esmtp);
  EXPECT_TRUE(c.pipelining);
  EXPECT_TRUE(c.starttls);
  EXPECT_TRUE(c.eight_bit_mime);
  EXPECT_TRUE(c.smtputf8);
  EXPECT_TRUE(c.chunking);
  EXPECT_TRUE(c.dsn);
  EXPECT_TRUE(c.enhanced_status_codes);
  EXPECT_TRUE(parsed.binarymime);
  EXPECT_EQ(c.size, std::optional<uint64_t>(35882577));

  r.lines = {"mx.test PIPELINING SIZE", "SIZE"};  // the greeting line is not a keyword
  parsed = parse_ehlo_capabilities(r);
  EXPECT_FALSE(parsed.capabilities.pipelining);
  EXPECT_EQ(parsed.capabilities.size, std::optional<uint64_t>(0));
  r.lines = {"mx.test", "SIZE lots"};
  EXPECT_EQ(parse_ehlo_capabilities(r).capabilities.size, std::optional<uint64_t>(0));
  r.lines = {"mx.test"};
  EXPECT_FALSE(parse_ehlo_capabilities(r).capabilities.size);
}

TEST(SmtpClientReplyTest, DotStuffsAndEndsData) {
  EXPECT_EQ(data_payload(".hidden\r\nline\r\n..two\r\n.\r\n"),
            "..hidden\r\nline\r\n...two\r\n..\r\n.\r\n");
  EXPECT_EQ(data_payload("no final line end"), "no final line end\r\n.\r\n");
  EXPECT_EQ(data_payload("ends in CR\r"), "ends in CR\r\n.\r\n");
  EXPECT_EQ(data_payload(""), ".\r\n");
  // A bare LF starts a line too: "\n.\n" must never reach the server.
  EXPECT_EQ(data_payload("a\n.\nb\r\n"), "a\n..\nb\r\n.\r\n");
  EXPECT_EQ(message_wire_size("abc"), 5u);
  EXPECT_EQ(message_wire_size("abc\r\n"), 5u);
  EXPECT_EQ(bdat_payload(".x\r\ny", false), "BDAT 7 LAST\r\n.x\r\ny\r\n");
  EXPECT_EQ(bdat_payload(".x\r\ny", true), "BDAT 5 LAST\r\n.x\r\ny");
  EXPECT_EQ(bdat_payload("", false), "BDAT 0 LAST\r\n");
}

}  // namespace
}  // namespace ringmail::mta
