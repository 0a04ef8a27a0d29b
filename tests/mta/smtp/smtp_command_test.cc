// Tests of SMTP command-line, path and ESMTP parameter parsing, with real
// address forms from RFC 5321 / RFC 6531 and the malformed ones clients send.
#include "mta/smtp/smtp_command.h"

#include <gtest/gtest.h>

namespace ringmail::mta {
namespace {

TEST(SmtpCommandLine, VerbsAreCaseInsensitive) {
  struct Case {
    const char* line;
    SmtpVerb verb;
    const char* argument;
  } cases[] = {
      {"EHLO client.test", SmtpVerb::ehlo, "client.test"},
      {"helo x", SmtpVerb::helo, "x"},
      {"Mail FROM:<a@b.test>  ", SmtpVerb::mail, "FROM:<a@b.test>"},
      {"RCPT TO:<a@b.test>", SmtpVerb::rcpt, "TO:<a@b.test>"},
      {"DATA", SmtpVerb::data, ""},
      {"BDAT 10 LAST", SmtpVerb::bdat, "10 LAST"},
      {"RSET", SmtpVerb::rset, ""},
      {"noop", SmtpVerb::noop, ""},
      {"QUIT", SmtpVerb::quit, ""},
      {"VRFY x", SmtpVerb::vrfy, "x"},
      {"EXPN x", SmtpVerb::expn, "x"},
      {"HELP", SmtpVerb::help, ""},
      {"StartTLS", SmtpVerb::starttls, ""},
      {"AUTH PLAIN", SmtpVerb::auth, "PLAIN"},
      {"MAILFROM:<a@b>", SmtpVerb::unknown, ""},
      {"", SmtpVerb::unknown, ""},
      {"DATA\r", SmtpVerb::unknown, ""},
  };
  for (const Case& c : cases) {
    SmtpCommandLine cmd = parse_command_line(c.line);
    EXPECT_EQ(cmd.verb, c.verb) << c.line;
    EXPECT_EQ(cmd.argument, c.argument) << c.line;
  }
}

TEST(SmtpCommandMail, AcceptsRfc5321Paths) {
  struct Case {
    const char* arg;
    const char* sender;
  } cases[] = {
      {"FROM:<a@example.org>", "a@example.org"},
      {"from:<a@example.org>", "a@example.org"},
      {"FROM: <a@example.org>", "a@example.org"},
      {"FROM:<>", ""},
      {"FROM:<\"john doe\"@example.org>", "\"john doe\"@example.org"},
      {"FROM:<\"a\\\"b>c\"@example.org>", "\"a\\\"b>c\"@example.org"},
      {"FROM:<@relay1.test,@relay2.test:a@example.org>", "a@example.org"},
      {"FROM:<a+tag@[192.0.2.1]>", "a+tag@[192.0.2.1]"},
      {"FROM:<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]"},
      {"FROM:<a@[x-tag:anything]>", "a@[x-tag:anything]"},
      {"FROM:<a..b.@docomo.example>", "a..b.@docomo.example"},
      {"FROM:<!#$%&'*+-/=?^_`{|}~@example.org>", "!#$%&'*+-/=?^_`{|}~@example.org"},
  };
  for (const Case& c : cases) {
    auto r = parse_mail_from(c.arg);
    EXPECT_TRUE(r.ok()) << c.arg;
    EXPECT_EQ(r.value.sender, c.sender) << c.arg;
  }
}

TEST(SmtpCommandMail, RefusesBadPaths) {
  struct Case {
    const char* arg;
    CommandError error;
  } cases[] = {
      {"FROM:a@example.org", CommandError::syntax},
      {"TO:<a@example.org>", CommandError::syntax},
      {"FROM:", CommandError::syntax},
      {"FROM:<a@example.org", CommandError::bad_address},
      {"FROM:<a@example.org>x", CommandError::syntax},
      {"FROM:<a@@example.org>", CommandError::bad_address},
      {"FROM:<a>", CommandError::bad_address},
      {"FROM:<@example.org>", CommandError::bad_address},
      {"FROM:<a@>", CommandError::bad_address},
      {"FROM:<a b@example.org>", CommandError::bad_address},
      {"FROM:<a@exa_mple.org>", CommandError::bad_address},
      {"FROM:<a@-example.org>", CommandError::bad_address},
      {"FROM:<a@example.org.>", CommandError::bad_address},
      {"FROM:<a@[300.1.1.1]>", CommandError::bad_address},
      {"FROM:<a@[IPv6:zz]>", CommandError::bad_address},
      {"FROM:<\"unterminated@example.org>", CommandError::bad_address},
      {"FROM:<a\x01@example.org>", CommandError::bad_address},
      {"FROM:<\xff@example.org> SMTPUTF8", CommandError::bad_address},      // not UTF-8
      {"FROM:<\xc0\xaf@example.org> SMTPUTF8", CommandError::bad_address},  // overlong
      {"FROM:<\xc3\xa9@example.org>", CommandError::utf8_needs_smtputf8},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse_mail_from(c.arg).error, c.error) << c.arg;
  }
  std::string long_local = "FROM:<" + std::string(65, 'a') + "@example.org>";
  EXPECT_EQ(parse_mail_from(long_local).error, CommandError::bad_address);
  std::string ok_local = "FROM:<" + std::string(64, 'a') + "@example.org>";
  EXPECT_TRUE(parse_mail_from(ok_local).ok());
  std::string long_label = "FROM:<a@" + std::string(64, 'd') + ".org>";
  EXPECT_EQ(parse_mail_from(long_label).error, CommandError::bad_address);
}

TEST(SmtpCommandMail, Parameters) {
  auto r = parse_mail_from(
      "FROM:<a@example.org> SIZE=12345 body=8bitmime SMTPUTF8 RET=hdrs ENVID=QQ+2B1 AUTH=<>");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.size, 12345u);
  EXPECT_EQ(r.value.body_type, "8BITMIME");
  EXPECT_TRUE(r.value.smtputf8);
  EXPECT_EQ(r.value.dsn_ret, "HDRS");
  EXPECT_EQ(r.value.dsn_envid, "QQ+2B1");
  EXPECT_EQ(parse_mail_from("FROM:<a@example.org> SIZE=99999999999999999999").value.size,
            UINT64_MAX);
  auto utf8 = parse_mail_from(
      "FROM:<\xc3\xa9l\xc3\xa8ve@\xc3\xa9"
      "cole.example> SMTPUTF8");
  EXPECT_TRUE(utf8.ok());
  EXPECT_TRUE(utf8.value.sender_is_utf8);

  struct Case {
    const char* arg;
    CommandError error;
  } bad[] = {
      {"FROM:<a@example.org> SIZE=", CommandError::bad_parameter},
      {"FROM:<a@example.org> SIZE=12a", CommandError::bad_parameter},
      {"FROM:<a@example.org> SIZE=1 SIZE=2", CommandError::bad_parameter},
      {"FROM:<a@example.org> BODY=9BIT", CommandError::bad_parameter},
      {"FROM:<a@example.org> BODY=BINARYMIME", CommandError::unknown_parameter},
      {"FROM:<a@example.org> SMTPUTF8=yes", CommandError::bad_parameter},
      {"FROM:<a@example.org> RET=ALL", CommandError::bad_parameter},
      {"FROM:<a@example.org> ENVID=a+zz", CommandError::bad_parameter},
      {"FROM:<a@example.org> ENVID=a+2", CommandError::bad_parameter},
      {"FROM:<a@example.org> XFOO=1", CommandError::unknown_parameter},
      {"FROM:<a@example.org> =1", CommandError::syntax},
      {"FROM:<a@example.org> SIZE=1\x01", CommandError::bad_parameter},
  };
  for (const Case& c : bad) {
    EXPECT_EQ(parse_mail_from(c.arg).error, c.error) << c.arg;
  }
}

TEST(SmtpCommandRcpt, PathsAndDsnParameters) {
  auto r = parse_rcpt_to(
      "TO:<Bob@Mail.Example.NET> NOTIFY=SUCCESS,FAILURE,DELAY "
      "ORCPT=rfc822;Bob+40x@example.net");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value.recipient, "Bob@Mail.Example.NET");
  EXPECT_EQ(r.value.domain, "mail.example.net");
  EXPECT_EQ(r.value.dsn_notify, "SUCCESS,FAILURE,DELAY");
  EXPECT_EQ(r.value.dsn_orcpt, "rfc822;Bob+40x@example.net");
  EXPECT_TRUE(parse_rcpt_to("to: <a@b.example> notify=never").ok());
  auto utf8 = parse_rcpt_to("TO:<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.example>");
  ASSERT_TRUE(utf8.ok());  // the session checks SMTPUTF8 on the transaction
  EXPECT_TRUE(utf8.value.is_utf8);
  auto literal = parse_rcpt_to("TO:<a@[192.0.2.1]>");
  EXPECT_EQ(literal.value.domain, "[192.0.2.1]");

  struct Case {
    const char* arg;
    CommandError error;
  } bad[] = {
      {"TO:<>", CommandError::bad_address},
      {"TO:<a@b.example> NOTIFY=NEVER,SUCCESS", CommandError::bad_parameter},
      {"TO:<a@b.example> NOTIFY=", CommandError::bad_parameter},
      {"TO:<a@b.example> ORCPT=a@b", CommandError::bad_parameter},
      {"TO:<a@b.example> ORCPT=;a@b", CommandError::bad_parameter},
      {"TO:<a@b.example> ORCPT=rfc822;", CommandError::bad_parameter},
      {"TO:<a@b.example> SIZE=1", CommandError::unknown_parameter},
      {"FROM:<a@b.example>", CommandError::syntax},
      {"TO:<postmaster>", CommandError::bad_address},
  };
  for (const Case& c : bad) {
    EXPECT_EQ(parse_rcpt_to(c.arg).error, c.error) << c.arg;
  }
}

TEST(SmtpCommandUtf8, Validation) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x93\xa7"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\x80"));
}

TEST(SmtpCommandBase64, StrictDecoding) {
  std::string out;
  EXPECT_TRUE(decode_base64("AGFwcDEAc2VjcmV0", &out));
  EXPECT_EQ(out, std::string("\0app1\0secret", 12));
  EXPECT_TRUE(decode_base64("YQ==", &out));
  EXPECT_EQ(out, "a");
  EXPECT_TRUE(decode_base64("YWI=", &out));
  EXPECT_EQ(out, "ab");
  EXPECT_TRUE(decode_base64("", &out));
  EXPECT_EQ(out, "");
  EXPECT_FALSE(decode_base64("YQ", &out));
  EXPECT_FALSE(decode_base64("Y===", &out));
  EXPECT_FALSE(decode_base64("YQ==YQ==", &out));
  EXPECT_FALSE(decode_base64("Y Q=", &out));
  EXPECT_FALSE(decode_base64("YQ=a", &out));
}

}  // namespace
}  // namespace ringmail::mta
