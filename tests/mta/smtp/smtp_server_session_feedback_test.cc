// Tests of the inbound session in mode feedback (CONTRACT "Feedback"): mail
// for the return-path domain from anyone, the null sender included, no
// AUTH, every other domain refused with 550 5.1.1, and the report handed
// over whole (never as a campaign's mail).
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "mta/smtp/smtp_server_session.h"

namespace ringmail::mta {
namespace {

SessionSettings feedback_settings() {
  SessionSettings s;
  s.hostname = "fbl.test";
  s.listener_name = "feedback";
  s.mode = SessionMode::feedback;
  s.feedback_domain = "bounces.example.test";
  s.auth_available = true;  // a users_file exists, but not for this listener
  s.require_tls_for_auth = false;
  s.max_message_size = 4096;
  s.max_recipients = 2;
  return s;
}

ConnectionInfo internet_client() {
  ConnectionInfo c;
  c.peer_ip = "203.0.113.9";  // in no relay_networks entry
  c.peer_port = 40000;
  c.now_unix_ms = 1767225600000;
  return c;
}

// Feeds a whole dialogue; commits are answered at once with `status`.
struct FeedbackDialogue {
  explicit FeedbackDialogue(SessionSettings settings = feedback_settings())
      : session(std::move(settings), internet_client()) {
    session.set_now(1767225600000);
    session.start();
  }
  std::string send(std::string_view bytes) {
    SessionOutput out = session.receive(bytes);
    std::string replies = std::move(out.replies);
    if (out.commit) {
      messages.push_back(std::move(out.commit));
      CommitResult r;
      r.status = status;
      replies += session.commit_finished(r).replies;
    }
    static const std::regex id("report [0-9a-f]{20}");
    return std::regex_replace(replies, id, "report ID");
  }
  SmtpServerSession session;
  CommitResult::Status status = CommitResult::Status::committed;
  std::vector<std::unique_ptr<queue::SpoolMessage>> messages;
};

TEST(FeedbackSession, EhloOffersNoAuth) {
  FeedbackDialogue d;
  const std::string ehlo = d.send("EHLO mx.example.net\r\n");
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos) << ehlo;
  EXPECT_NE(ehlo.find("250 DSN"), std::string::npos) << ehlo;
  EXPECT_EQ(d.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            "502 5.5.1 Error: command not implemented\r\n");
}

TEST(FeedbackSession, Table) {
  const struct {
    const char* name;
    const char* rcpt;
    const char* reply;
  } kCases[] = {
      {"VERP address", "RCPT TO:<b-1abc@bounces.example.test>", "250 2.1.5 Ok"},
      {"abuse address", "RCPT TO:<abuse@bounces.example.test>", "250 2.1.5 Ok"},
      {"domain in upper case", "RCPT TO:<b-1abc@BOUNCES.Example.TEST>", "250 2.1.5 Ok"},
      {"another domain", "RCPT TO:<victim@example.net>",
       "550 5.1.1 <victim@example.net>: Recipient address rejected: this server takes feedback "
       "for bounces.example.test only"},
      {"a subdomain is another domain", "RCPT TO:<x@sub.bounces.example.test>",
       "550 5.1.1 <x@sub.bounces.example.test>: Recipient address rejected: this server takes "
       "feedback for bounces.example.test only"},
      {"a suffix is another domain", "RCPT TO:<x@evilbounces.example.test>",
       "550 5.1.1 <x@evilbounces.example.test>: Recipient address rejected: this server takes "
       "feedback for bounces.example.test only"},
  };
  for (const auto& c : kCases) {
    FeedbackDialogue d;
    d.send("EHLO mx.example.net\r\n");
    EXPECT_EQ(d.send("MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n") << c.name;
    EXPECT_EQ(d.send(std::string(c.rcpt) + "\r\n"), std::string(c.reply) + "\r\n") << c.name;
  }
}

TEST(FeedbackSession, ANullSenderReportIsHandedOverWholeAndNobodysMail) {
  FeedbackDialogue d;
  d.send("EHLO mx.example.net\r\n");
  const std::string replies = d.send(
      "MAIL FROM:<>\r\nRCPT TO:<b-1abc@bounces.example.test>\r\n"
      "RCPT TO:<other@example.net>\r\nDATA\r\n"
      "Subject: Undelivered Mail\r\nX-Campaign-ID: not-ours\r\n\r\nreport\r\n.\r\n");
  EXPECT_EQ(replies,
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
            "550 5.1.1 <other@example.net>: Recipient address rejected: this server takes "
            "feedback for bounces.example.test only\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: report ID processed\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  const queue::SpoolMessage& m = *d.messages[0];
  EXPECT_EQ(m.envelope.sender, "");
  ASSERT_EQ(m.envelope.recipients.size(), 1u);
  EXPECT_EQ(m.envelope.recipients[0].address, "b-1abc@bounces.example.test");
  EXPECT_EQ(m.meta.tenant, "");
  EXPECT_EQ(m.meta.campaign, "");
  EXPECT_EQ(m.meta.listener, "feedback");
  EXPECT_NE(m.content.find("X-Campaign-ID: not-ours"), std::string::npos)
      << "the reporter's header stays in the report";
}

TEST(FeedbackSession, FailuresAndLimitsAreThoseOfEveryListener) {
  FeedbackDialogue d;
  d.send("EHLO mx.example.net\r\n");
  d.status = CommitResult::Status::failed;
  EXPECT_EQ(d.send("MAIL FROM:<mailer-daemon@example.net>\r\nRCPT TO:<b-1@bounces.example.test>"
                   "\r\nDATA\r\nSubject: x\r\n\r\ny\r\n.\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "451 4.3.0 Local error, try again later\r\n");
  EXPECT_EQ(d.send("MAIL FROM:<> SIZE=5000\r\n"), "552 5.3.4 Message size exceeds fixed limit\r\n");
  d.send("MAIL FROM:<>\r\nRCPT TO:<b-1@bounces.example.test>\r\nDATA\r\n");
  EXPECT_EQ(d.send(std::string(5000, 'x') + "\r\n.\r\n"), "552 5.3.4 Message too big\r\n");
  d.send(
      "MAIL FROM:<>\r\nRCPT TO:<a@bounces.example.test>\r\nRCPT TO:<b@bounces.example.test>\r\n");
  EXPECT_EQ(d.send("RCPT TO:<c@bounces.example.test>\r\n"),
            "452 4.5.3 Error: too many recipients\r\n");
}

}  // namespace
}  // namespace ringmail::mta
