// Tests of the inbound ESMTP machine: every command, every error path,
// pipelining, BDAT, STARTTLS, AUTH, and the SMTP smuggling probes. They
// drive the session as the event loop would and compare the replies a
// client would read and the message the spool would receive.
#include "mta/smtp/smtp_server_session.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "mta/smtp/smtp_data_reader.h"

namespace ringmail::mta {
namespace {

SessionSettings relay_settings() {
  SessionSettings s;
  s.hostname = "mx.test";
  s.listener_name = "relay";
  s.mode = SessionMode::relay;
  s.max_message_size = 64 * 1024;
  s.max_recipients = 3;
  return s;
}

SessionSettings submission_settings() {
  SessionSettings s = relay_settings();
  s.listener_name = "submission";
  s.mode = SessionMode::submission;
  s.auth_available = true;
  s.require_tls_for_auth = false;
  return s;
}

ConnectionInfo local_client() {
  ConnectionInfo c;
  c.peer_ip = "127.0.0.1";
  c.peer_port = 40000;
  c.relay_network = "127.0.0.0/8";
  c.now_unix_ms = 1767225600000;  // 2026-01-01 00:00:00 UTC
  return c;
}

std::string without_ids(std::string text) {
  static const std::regex id("queued as [0-9a-f]{20}");
  return std::regex_replace(text, id, "queued as ID");
}

// Plays the event loop: feeds bytes, completes commits and AUTH checks at
// once, and records everything a client or the spool would see.
class Client {
 public:
  explicit Client(SessionSettings settings = relay_settings(),
                  ConnectionInfo connection = local_client())
      : session_(std::move(settings), std::move(connection)) {
    session_.set_now(1767225600000);
    greeting_ = session_.start().replies;
  }

  // Returns the replies, with queue ids replaced by "ID".
  std::string send(std::string_view bytes) { return without_ids(absorb(session_.receive(bytes))); }
  std::string send_bytewise(std::string_view bytes) {
    std::string replies;
    for (char c : bytes) replies += absorb(session_.receive(std::string_view(&c, 1)));
    return without_ids(replies);
  }
  std::string absorb(SessionOutput out) {
    std::string replies = std::move(out.replies);
    if (out.close) closed = true;
    if (out.start_tls) start_tls = true;
    if (out.commit) {
      committed_ids.push_back(out.commit->id.value);
      messages.push_back(std::move(out.commit));
      if (!hold_commits) {
        CommitResult r;
        r.status = commit_status;
        r.reply = commit_reply;
        replies += absorb(session_.commit_finished(r));
      }
    }
    if (out.auth) {
      auths.push_back(*out.auth);
      if (!hold_auth) {
        AuthResult r;
        r.status =
            out.auth->password == "secret" ? auth_status : AuthResult::Status::invalid_credentials;
        replies += absorb(session_.auth_finished(r));
      }
    }
    return replies;
  }
  std::string content(size_t i = 0) const { return messages.at(i)->content; }

  SmtpServerSession session_;
  std::string greeting_;
  std::vector<std::unique_ptr<queue::SpoolMessage>> messages;
  std::vector<std::string> committed_ids;
  std::vector<AuthRequest> auths;
  CommitResult::Status commit_status = CommitResult::Status::committed;
  std::string commit_reply;  // with Status::rejected
  AuthResult::Status auth_status = AuthResult::Status::ok;
  bool hold_commits = false;
  bool hold_auth = false;
  bool closed = false;
  bool start_tls = false;
};

const char* const kEhloRelay =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 65536\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250 DSN\r\n";

const char* const kSimpleTransaction =
    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    "Subject: hi\r\n\r\nbody\r\n.\r\n";

const char* const kTransactionReplies =
    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    "250 2.0.0 Ok: queued as ID\r\n";

// The last reply line of a batch.
std::string last_reply(const std::string& replies) {
  if (replies.size() < 2) return replies;
  size_t start = replies.rfind("\r\n", replies.size() - 3);
  return start == std::string::npos ? replies : replies.substr(start + 2);
}

// The message content without the Received: header the session adds.
std::string after_received(const std::string& content) {
  size_t pos = 0;
  while (true) {
    size_t eol = content.find("\r\n", pos);
    if (eol == std::string::npos) return {};
    pos = eol + 2;
    if (pos >= content.size() || (content[pos] != ' ' && content[pos] != '\t'))
      return content.substr(pos);
  }
}

TEST(SmtpSessionGreeting, GreetsWithHostname) {
  Client c;
  EXPECT_EQ(c.greeting_, "220 mx.test ESMTP Ringmail\r\n");
}

TEST(SmtpSessionEhlo, ListsExtensionsOnRelay) {
  Client c;
  EXPECT_EQ(c.send("EHLO client.test\r\n"), kEhloRelay);
}

TEST(SmtpSessionEhlo, OffersStarttlsOnlyBeforeTls) {
  SessionSettings s = relay_settings();
  s.starttls_available = true;
  Client c(s);
  EXPECT_EQ(c.send("EHLO a\r\n"),
            std::string(kEhloRelay).replace(std::string(kEhloRelay).find("250 DSN"), 7, "250-DSN") +
                "250 STARTTLS\r\n");
  EXPECT_EQ(c.send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(c.start_tls);
  EXPECT_EQ(c.absorb(c.session_.tls_established("TLSv1.3 TLS_AES_256_GCM_SHA384")), "");
  std::string ehlo = c.send("EHLO a\r\n");
  EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos);
  EXPECT_EQ(c.send("STARTTLS\r\n"), "503 5.5.1 Error: TLS already active\r\n");
}

TEST(SmtpSessionEhlo, OffersAuthOnlyInSubmissionAndOverTlsWhenRequired) {
  SessionSettings s = submission_settings();
  s.require_tls_for_auth = true;
  s.starttls_available = true;
  Client c(s);
  std::string before = c.send("EHLO a\r\n");
  EXPECT_EQ(before.find("AUTH"), std::string::npos);
  EXPECT_NE(before.find("250 STARTTLS\r\n"), std::string::npos);
  EXPECT_EQ(c.send("AUTH PLAIN AGFwcDEAc2VjcmV0\r\n"),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
}

TEST(SmtpSessionEhlo, AuthAfterTlsAndInClearWhenAllowed) {
  SessionSettings s = submission_settings();
  s.require_tls_for_auth = true;
  s.starttls_available = true;
  Client c(s);
  c.send("EHLO a\r\nSTARTTLS\r\n");
  c.absorb(c.session_.tls_established("TLSv1.3 X"));
  std::string after = c.send("EHLO a\r\n");
  EXPECT_EQ(after.find("STARTTLS"), std::string::npos);
  EXPECT_NE(after.find("250 AUTH PLAIN LOGIN\r\n"), std::string::npos);

  Client clear(submission_settings());
  EXPECT_NE(clear.send("EHLO a\r\n").find("250 AUTH PLAIN LOGIN\r\n"), std::string::npos);
  SessionSettings no_users = submission_settings();
  no_users.auth_available = false;
  Client none(no_users);
  EXPECT_EQ(none.send("EHLO a\r\n").find("AUTH"), std::string::npos);
}

TEST(SmtpSessionEhlo, HeloWorksWithoutExtensions) {
  Client c;
  EXPECT_EQ(c.send("HELO client.test\r\n"), "250 mx.test\r\n");
  EXPECT_EQ(c.send(kSimpleTransaction), kTransactionReplies);
  EXPECT_NE(c.content().find("SMTP id "), std::string::npos);
  EXPECT_EQ(c.content().find("ESMTP"), std::string::npos);
}

TEST(SmtpSessionEhlo, NeedsAHostname) {
  Client c;
  EXPECT_EQ(c.send("EHLO\r\nHELO\r\nEHLO a\x01\r\n"),
            "501 5.5.4 Syntax: EHLO hostname\r\n501 5.5.4 Syntax: HELO hostname\r\n"
            "501 5.5.4 Syntax: EHLO hostname\r\n");
}

TEST(SmtpSessionEhlo, SecondEhloResetsTheTransaction) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\n");
  EXPECT_TRUE(c.session_.in_transaction());
  c.send("EHLO a\r\n");
  EXPECT_FALSE(c.session_.in_transaction());
  EXPECT_EQ(c.send("RCPT TO:<b@example.net>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
}

TEST(SmtpSessionSequence, MailBeforeHelo) {
  Client c;
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
}

TEST(SmtpSessionSequence, RcptBeforeMailAndDataBeforeRcpt) {
  Client c;
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("RCPT TO:<b@example.net>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(c.send("DATA\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
  c.send("MAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(c.send("DATA\r\n"), "503 5.5.1 Error: need RCPT command\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org>\r\n"), "503 5.5.1 Error: nested MAIL command\r\n");
  EXPECT_EQ(c.send("RCPT TO:<bad>\r\nDATA\r\n"),
            "501 5.1.3 Bad recipient address syntax\r\n554 5.5.1 Error: no valid recipients\r\n");
  EXPECT_EQ(c.send("DATA extra\r\n"), "501 5.5.4 Syntax: DATA\r\n");
}

TEST(SmtpSessionSubmission, MailNeedsAuth) {
  Client c(submission_settings());
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org>\r\n"), "530 5.7.0 Authentication required\r\n");
}

TEST(SmtpSessionRelay, DeniedOutsideRelayNetworksPerRecipient) {
  ConnectionInfo stranger = local_client();
  stranger.peer_ip = "192.0.2.7";
  stranger.relay_network = "";
  Client c(relay_settings(), stranger);
  EXPECT_EQ(c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
                   "RCPT TO:<c@example.net>\r\nNOOP\r\n"),
            std::string(kEhloRelay) +
                "250 2.1.0 Ok\r\n554 5.7.1 <b@example.net>: Relay access denied\r\n"
                "554 5.7.1 <c@example.net>: Relay access denied\r\n250 2.0.0 Ok\r\n");
}

TEST(SmtpSessionLimits, TooManyRecipients) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(
      c.send("RCPT TO:<1@x.test>\r\nRCPT TO:<2@x.test>\r\nRCPT TO:<3@x.test>\r\n"
             "RCPT TO:<4@x.test>\r\nRCPT TO:<2@x.test>\r\n"),
      "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Error: too many recipients\r\n"
      "250 2.1.5 Ok\r\n");
  EXPECT_EQ(c.send("DATA\r\nSubject: x\r\n\r\n.\r\n"),
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as ID\r\n");
  ASSERT_EQ(c.messages.size(), 1u);
  EXPECT_EQ(c.messages[0]->envelope.recipients.size(), 3u);  // the duplicate is kept once
}

TEST(SmtpSessionLimits, DeclaredSizeOverLimit) {
  Client c;
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org> SIZE=65537\r\n"),
            "552 5.3.4 Message size exceeds fixed limit\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org> SIZE=65536\r\n"), "250 2.1.0 Ok\r\n");
}

TEST(SmtpSessionSyntax, ErrorReplies) {
  Client c;
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("FOO bar\r\n"), "500 5.5.2 Error: command not recognized\r\n");
  EXPECT_EQ(c.send("MAIL TO:<a@example.org>\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@@example.org>\r\n"), "501 5.1.7 Bad sender address syntax\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org> FOO=1\r\n"),
            "555 5.5.4 Unsupported MAIL parameter\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org> SIZE=x\r\n"), "501 5.5.4 Invalid MAIL parameter\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<\xc3\xa9@example.org>\r\n"),
            "553 5.6.7 UTF-8 address requires the SMTPUTF8 parameter\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(c.send("RCPT TO:b@example.net\r\n"), "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  EXPECT_EQ(c.send("RCPT TO:<b@exa mple.net>\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
  EXPECT_EQ(c.send("RCPT TO:<b@example.net> FOO\r\n"), "555 5.5.4 Unsupported RCPT parameter\r\n");
  EXPECT_EQ(c.send("RCPT TO:<b@example.net> NOTIFY=SOMETIMES\r\n"),
            "501 5.5.4 Invalid RCPT parameter\r\n");
  EXPECT_EQ(c.send("RCPT TO:<\xc3\xa9@example.net>\r\n"),
            "553 5.6.7 UTF-8 address requires the SMTPUTF8 parameter\r\n");
}

TEST(SmtpSessionSyntax, Smtputf8Addresses) {
  Client c;
  EXPECT_EQ(c.send("EHLO a\r\nMAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
                   "cher.example> SMTPUTF8 BODY=8BITMIME\r\n"
                   "RCPT TO:<\xe7\x94\xb0\xe4\xb8\xad@\xe4\xbe\x8b.example>\r\n"),
            std::string(kEhloRelay) + "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  c.send("DATA\r\nSubject: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n.\r\n");
  ASSERT_EQ(c.messages.size(), 1u);
  EXPECT_TRUE(c.messages[0]->envelope.smtputf8);
  EXPECT_EQ(c.messages[0]->envelope.body_type, "8BITMIME");
  EXPECT_EQ(c.messages[0]->envelope.sender,
            "j\xc3\xb6rg@b\xc3\xbc"
            "cher.example");
}

TEST(SmtpSessionCommands, RsetNoopVrfyHelpExpnQuit) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(c.send("RSET\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_FALSE(c.session_.in_transaction());
  EXPECT_EQ(c.send("RSET x\r\n"), "501 5.5.4 Syntax: RSET\r\n");
  EXPECT_EQ(c.send("NOOP\r\nnoop hello\r\n"), "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
  EXPECT_EQ(c.send("VRFY postmaster\r\n"),
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  EXPECT_EQ(c.send("VRFY\r\n"), "501 5.5.4 Syntax: VRFY address\r\n");
  EXPECT_EQ(c.send("HELP\r\n").substr(0, 10), "214 2.0.0 ");
  EXPECT_EQ(c.send("EXPN list\r\n"), "502 5.5.1 Error: command not implemented\r\n");
  EXPECT_EQ(c.send("QUIT\r\nNOOP\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.send("NOOP\r\n"), "");
}

TEST(SmtpSessionLines, TooLongLineIsRefusedAndDiscarded) {
  Client c;
  std::string longline = "NOOP " + std::string(1500, 'x') + "\r\n";
  EXPECT_EQ(c.send(longline + "NOOP\r\n"), "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
  // 998 octets plus CRLF is the longest line accepted.
  EXPECT_EQ(c.send("NOOP " + std::string(993, 'x') + "\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(c.send("NOOP " + std::string(994, 'x') + "\r\n"), "500 5.5.2 Error: line too long\r\n");
}

TEST(SmtpSessionLines, UnterminatedInputIsBounded) {
  Client c;
  std::string chunk(64 * 1024, 'y');
  std::string replies;
  for (int i = 0; i < 160; ++i) replies += c.send(chunk);  // 10 MiB without a line end
  EXPECT_EQ(replies, "500 5.5.2 Error: line too long\r\n");
  EXPECT_EQ(c.send("\r\nNOOP\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(SmtpSessionLines, NulInCommand) {
  Client c;
  EXPECT_EQ(c.send(std::string("NOOP\0x\r\n", 8)), "500 5.5.2 Error: NUL character in command\r\n");
}

TEST(SmtpSessionLines, GarbageBeforeEhloThenNormalSession) {
  Client c;
  EXPECT_EQ(c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nRCPT TO:<b@example.net>\r\n"),
            "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: command not recognized\r\n"
            "500 5.5.2 Error: command not recognized\r\n503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(c.send("EHLO a\r\n"), kEhloRelay);
  EXPECT_EQ(c.send(kSimpleTransaction), kTransactionReplies);
}

TEST(SmtpSessionLines, TooManyErrorsCloses) {
  Client c;
  std::string input;
  for (int i = 0; i < 25; ++i) input += "BOGUS\r\n";
  std::string replies = c.send(input);
  std::string expected;
  for (int i = 0; i < 20; ++i) expected += "500 5.5.2 Error: command not recognized\r\n";
  expected += "421 4.7.0 mx.test Too many errors\r\n";
  EXPECT_EQ(replies, expected);
  EXPECT_TRUE(c.closed);
}

TEST(SmtpSessionPipelining, WholeTransactionInOneReceive) {
  Client c;
  c.hold_commits = true;
  SessionOutput out = c.session_.receive(std::string("EHLO a\r\n") + kSimpleTransaction +
                                         "MAIL FROM:<c@example.org>\r\nQUIT\r\n");
  EXPECT_EQ(out.replies,
            std::string(kEhloRelay) +
                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  ASSERT_TRUE(out.commit);
  std::string id = out.commit->id.value;
  EXPECT_TRUE(c.session_.waiting());
  // More input while waiting is kept for later.
  EXPECT_EQ(c.session_.receive("NOOP\r\n").replies, "");
  SessionOutput done = c.session_.commit_finished({CommitResult::Status::committed, "", ""});
  EXPECT_EQ(done.replies,
            "250 2.0.0 Ok: queued as " + id + "\r\n250 2.1.0 Ok\r\n221 2.0.0 Bye\r\n");
  EXPECT_TRUE(done.close);
}

// A script that touches most of the machine; every split must give the same replies.
std::string full_script() {
  return std::string(
             "HELO x\r\nEHLO client.test\r\nBOGUS\r\nMAIL FROM:<a@example.org> SIZE=100\r\n") +
         "RCPT TO:<b@Example.NET> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net\r\n"
         "RCPT TO:<bad\r\nDATA\r\nSubject: one\r\nX-Campaign-ID: spring\r\n\r\n..dots\r\n"
         "probe\n.\nMAIL FROM:<evil@x.test>\r\nstill body\r.\r\nend\r\n.\r\n"
         "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
         "Subject: two\r\n\r\nbare\nlf\r\n.\r\n"
         "MAIL FROM:<a@example.org>\r\nRCPT TO:<c@example.net>\r\nBDAT 12\r\nSubject: 3\r\nBDAT 8 "
         "LAST\r\n\r\nbody\r\n"
         "NOOP " +
         std::string(1200, 'z') + "\r\nQUIT\r\n";
}

TEST(SmtpSessionPipelining, ByteAtATimeGivesTheSameReplies) {
  Client whole;
  Client bytewise;
  std::string a = whole.send(full_script());
  std::string b = bytewise.send_bytewise(full_script());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a,
            "250 mx.test\r\n" + std::string(kEhloRelay) +
                "500 5.5.2 Error: command not recognized\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
                "501 5.1.3 Bad recipient address syntax\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                "550 5.6.2 Bare CR not allowed\r\n"
                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                "250 2.0.0 Ok: queued as ID\r\n"
                "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 12 octets received\r\n"
                "250 2.0.0 Ok: queued as ID\r\n"
                "500 5.5.2 Error: line too long\r\n221 2.0.0 Bye\r\n");
  ASSERT_EQ(whole.messages.size(), 2u);
  ASSERT_EQ(bytewise.messages.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(after_received(whole.content(i)), after_received(bytewise.content(i)));
  }
  EXPECT_EQ(after_received(whole.content(0)), "Subject: two\r\n\r\nbare\r\nlf\r\n");
  EXPECT_EQ(after_received(whole.content(1)), "Subject: 3\r\n\r\nbody\r\n");
}

TEST(SmtpSessionPipelining, RandomSplitsGiveTheSameReplies) {
  Client reference;
  std::string expected = reference.send(full_script());
  std::string script = full_script();
  for (size_t step : {2u, 3u, 7u, 13u, 64u, 999u, 1000u, 1001u}) {
    Client c;
    std::string got;
    for (size_t i = 0; i < script.size(); i += step) got += c.send(script.substr(i, step));
    EXPECT_EQ(got, expected) << "split every " << step;
  }
}

TEST(SmtpSessionData, DotUnstuffingAndBareLfNormalisation) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
  EXPECT_EQ(c.send("DATA\r\nSubject: x\nFrom: y\r\n\r\n..leading\r\n...two\r\nlf only\n.\r\n"),
            "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(c.send("tail\r\n.\r\n"), "250 2.0.0 Ok: queued as ID\r\n");
  EXPECT_EQ(after_received(c.content()),
            "Subject: x\r\nFrom: y\r\n\r\n.leading\r\n..two\r\nlf only\r\n.\r\ntail\r\n");
}

TEST(SmtpSessionData, EmptyMessageAndNoHeaders) {
  Client c;
  c.send("EHLO a\r\n");
  c.send("MAIL FROM:<> \r\nRCPT TO:<b@example.net>\r\nDATA\r\n.\r\n");
  c.send("MAIL FROM:<>\r\nRCPT TO:<b@example.net>\r\nDATA\r\njust a body line\r\n.\r\n");
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(after_received(c.content(0)), "");
  EXPECT_EQ(after_received(c.content(1)), "\r\njust a body line\r\n");
  EXPECT_EQ(c.messages[1]->envelope.sender, "");
}

TEST(SmtpSessionData, ContentRejections) {
  Client c;
  std::string start = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n";
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send(start + "Subject: x\r\n\r\na\rb\r\n.\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "550 5.6.2 Bare CR not allowed\r\n");
  EXPECT_EQ(last_reply(c.send(start + std::string("Subject: x\r\n\r\na\0b\r\n.\r\n", 22))),
            "550 5.6.0 NUL character in message\r\n");
  EXPECT_EQ(last_reply(c.send(start + "Subject: x\r\n\r\n" + std::string(999, 'l') + "\r\n.\r\n")),
            "550 5.6.0 Line too long (over 998 octets)\r\n");
  EXPECT_EQ(last_reply(c.send(start + " folded first\r\nSubject: x\r\n\r\n.\r\n")),
            "550 5.6.0 Malformed header section\r\n");
  EXPECT_EQ(last_reply(c.send(start + "Subject: x\r\n\r\n" + std::string(998, 'l') + "\r\n.\r\n")),
            "250 2.0.0 Ok: queued as ID\r\n");
  EXPECT_EQ(c.messages.size(), 1u);
  EXPECT_FALSE(c.session_.in_transaction());
}

TEST(SmtpSessionData, SizeEnforcedWhileStreaming) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
  std::string line = std::string(100, 'x') + "\r\n";
  std::string replies;
  for (int i = 0; i < 2000; ++i) replies += c.send(line);  // ~200 KiB > 64 KiB
  EXPECT_EQ(replies, "");
  EXPECT_EQ(c.send(".\r\nNOOP\r\n"), "552 5.3.4 Message too big\r\n250 2.0.0 Ok\r\n");
  EXPECT_TRUE(c.messages.empty());
}

// Each probe is a line ending that a lenient receiver might take for the end
// of DATA. None of them may end the message, and the SMTP commands after it
// must stay message content.
TEST(SmtpSessionSmuggling, ProbesNeverEndData) {
  const std::vector<std::string> probes = {"\n.\n",   "\r\n.\n", "\n.\r\n", "\r.\r",
                                           "\r\n.\r", "\r.\r\n", "\n..\n",  "\r\n.\r\r\n"};
  for (const std::string& probe : probes) {
    for (bool bytewise : {false, true}) {
      Client c;
      std::string smuggled =
          "MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.net>\r\n"
          "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n";
      std::string input =
          "EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
          "DATA\r\nSubject: probe\r\n\r\nbody" +
          probe + smuggled + ".\r\nQUIT\r\n";
      std::string replies = bytewise ? c.send_bytewise(input) : c.send(input);
      std::string name =
          "probe " + std::to_string(&probe - probes.data()) + (bytewise ? " bytewise" : " whole");
      // Exactly the replies of one transaction: nothing smuggled was read as a command.
      const std::string go = "354 End data with <CR><LF>.<CR><LF>\r\n";
      size_t end = replies.find(go);
      ASSERT_NE(end, std::string::npos) << name;
      std::string tail = replies.substr(end + go.size());
      bool has_bare_cr = false;
      for (size_t i = 0; i < probe.size(); ++i) {
        if (probe[i] == '\r' && (i + 1 == probe.size() || probe[i + 1] != '\n')) has_bare_cr = true;
      }
      if (has_bare_cr) {
        EXPECT_EQ(tail, "550 5.6.2 Bare CR not allowed\r\n221 2.0.0 Bye\r\n") << name;
        EXPECT_TRUE(c.messages.empty()) << name;
      } else {
        EXPECT_EQ(tail, "250 2.0.0 Ok: queued as ID\r\n221 2.0.0 Bye\r\n") << name;
        ASSERT_EQ(c.messages.size(), 1u) << name;
        EXPECT_NE(c.content().find("MAIL FROM:<evil@attacker.test>\r\n"), std::string::npos)
            << name;
        EXPECT_NE(c.content().find("evil\r\n"), std::string::npos) << name;
        EXPECT_EQ(c.messages[0]->envelope.recipients.size(), 1u);
        EXPECT_EQ(c.messages[0]->envelope.recipients[0].address, "b@example.net");
      }
    }
  }
}

TEST(SmtpSessionBdat, ChunksAndLast) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
  EXPECT_EQ(c.send("BDAT 14\r\nSubject: x\r\n\r\n"), "250 2.0.0 14 octets received\r\n");
  EXPECT_EQ(c.send("BDAT 15\r\n.\r\nDATA\r\nQUIT\r\n"), "250 2.0.0 15 octets received\r\n");
  EXPECT_EQ(c.send("DATA\r\n"), "503 5.5.1 Error: DATA after BDAT\r\n");
  EXPECT_EQ(c.send("BDAT 4 last\r\nend."), "250 2.0.0 Ok: queued as ID\r\n");
  // Binary-transparent: no dot-unstuffing, the last line gets its CRLF.
  EXPECT_EQ(after_received(c.content()), "Subject: x\r\n\r\n.\r\nDATA\r\nQUIT\r\nend.\r\n");
  c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
  EXPECT_EQ(c.send("BDAT 0 LAST\r\n"), "250 2.0.0 Ok: queued as ID\r\n");
  EXPECT_EQ(c.messages.size(), 2u);
}

TEST(SmtpSessionBdat, WithoutTransactionConsumesTheChunk) {
  Client c;
  c.send("EHLO a\r\n");
  std::string payload = "MAIL FROM:<evil@attacker.test>\r\n";
  EXPECT_EQ(c.send("BDAT " + std::to_string(payload.size()) + "\r\n" + payload + "NOOP\r\n"),
            "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
  c.send("MAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(c.send("BDAT 4 LAST\r\nRSET"), "503 5.5.1 Error: need RCPT command\r\n");
  EXPECT_EQ(c.send("BDAT x\r\n"),
            "501 5.5.4 Syntax: BDAT count [LAST]\r\n421 4.7.0 mx.test Closing connection\r\n");
  EXPECT_TRUE(c.closed);
}

TEST(SmtpSessionBdat, SizeLimitAcrossChunksAndFailedTransaction) {
  Client c;
  c.send("EHLO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
  std::string chunk(40000, 'a');
  for (size_t i = 100; i < chunk.size(); i += 100) chunk[i - 2] = '\r', chunk[i - 1] = '\n';
  EXPECT_EQ(c.send("BDAT 40000\r\n" + chunk), "250 2.0.0 40000 octets received\r\n");
  EXPECT_EQ(c.send("BDAT 40000\r\n" + chunk), "552 5.3.4 Message too big\r\n");
  EXPECT_EQ(c.send("BDAT 10\r\n0123456789"), "552 5.3.4 Message too big\r\n");
  EXPECT_EQ(c.send("BDAT 5 LAST\r\nabcde"), "552 5.3.4 Message too big\r\n");
  EXPECT_FALSE(c.session_.in_transaction());
  EXPECT_TRUE(c.messages.empty());
  EXPECT_EQ(c.send(kSimpleTransaction), kTransactionReplies);
}

TEST(SmtpSessionStarttls, DiscardsPipelinedInput) {
  SessionSettings s = relay_settings();
  s.starttls_available = true;
  Client c(s);
  c.send("EHLO a\r\n");
  SessionOutput out = c.session_.receive("STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\n");
  EXPECT_EQ(out.replies, "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(out.start_tls);
  EXPECT_EQ(c.session_.receive("RCPT TO:<x@y.test>\r\n").replies, "");  // during handshake
  c.absorb(c.session_.tls_established("TLSv1.3 TLS_AES_128_GCM_SHA256"));
  EXPECT_EQ(c.send("RCPT TO:<b@example.net>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(c.send("MAIL FROM:<a@example.org>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send(kSimpleTransaction), kTransactionReplies);
  EXPECT_EQ(c.messages[0]->meta.tls, "TLSv1.3 TLS_AES_128_GCM_SHA256");
  EXPECT_NE(c.content().find("with ESMTPS id"), std::string::npos);
}

TEST(SmtpSessionStarttls, NotAvailableAndSyntax) {
  Client c;
  EXPECT_EQ(c.send("STARTTLS\r\n"), "502 5.5.1 Error: command not implemented\r\n");
  SessionSettings s = relay_settings();
  s.starttls_available = true;
  Client d(s);
  EXPECT_EQ(d.send("STARTTLS now\r\n"), "501 5.5.4 Syntax: STARTTLS\r\n");
  ConnectionInfo implicit = local_client();
  implicit.implicit_tls = true;
  implicit.tls_description = "TLSv1.3 X";
  Client e(s, implicit);
  EXPECT_EQ(e.send("EHLO a\r\n"), kEhloRelay);
  EXPECT_EQ(e.send("STARTTLS\r\n"), "503 5.5.1 Error: TLS already active\r\n");
  e.send(kSimpleTransaction);
  EXPECT_EQ(e.messages[0]->meta.tls, "TLSv1.3 X");
}

TEST(SmtpSessionAuth, PlainWithInitialResponse) {
  Client c(submission_settings());
  c.send("EHLO a\r\n");
  // "\0app1\0secret"
  EXPECT_EQ(c.send("AUTH PLAIN AGFwcDEAc2VjcmV0\r\n"), "235 2.7.0 Authentication successful\r\n");
  ASSERT_EQ(c.auths.size(), 1u);
  EXPECT_EQ(c.auths[0].username, "app1");
  EXPECT_EQ(c.auths[0].password, "secret");
  EXPECT_EQ(c.auths[0].mechanism, "PLAIN");
  EXPECT_EQ(c.auths[0].peer_ip, "127.0.0.1");
  EXPECT_EQ(c.session_.authenticated_user(), "app1");
  EXPECT_EQ(c.send("AUTH PLAIN AGFwcDEAc2VjcmV0\r\n"),
            "503 5.5.1 Error: already authenticated\r\n");
  EXPECT_EQ(c.send(kSimpleTransaction), kTransactionReplies);
  const auto& m = *c.messages[0];
  EXPECT_EQ(m.meta.tenant, "app1");
  EXPECT_EQ(m.meta.listener, "submission");
  EXPECT_NE(m.content.find("with ESMTPA id"), std::string::npos);
}

TEST(SmtpSessionAuth, PlainWithoutInitialResponseAndAuthzid) {
  Client c(submission_settings());
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("AUTH PLAIN\r\n"), "334 \r\n");
  // "admin\0app1\0secret"
  EXPECT_EQ(c.send("YWRtaW4AYXBwMQBzZWNyZXQ=\r\n"), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(c.auths.at(0).authzid, "admin");
  EXPECT_EQ(c.auths.at(0).username, "app1");
}

TEST(SmtpSessionAuth, LoginFlows) {
  Client c(submission_settings());
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(c.send("YXBwMQ==\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(c.send("d3Jvbmc=\r\n"), "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(c.session_.authenticated_user(), "");
  EXPECT_EQ(c.send("AUTH LOGIN YXBwMQ==\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(c.send("c2VjcmV0\r\n"), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(c.auths.at(1).mechanism, "LOGIN");
  EXPECT_EQ(c.session_.authenticated_user(), "app1");
}

TEST(SmtpSessionAuth, CancelBadBase64AndErrors) {
  Client c(submission_settings());
  EXPECT_EQ(c.send("AUTH PLAIN\r\n"), "503 5.5.1 Error: send EHLO first\r\n");
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("AUTH LOGIN\r\n*\r\n"),
            "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication cancelled\r\n");
  EXPECT_EQ(c.send("AUTH PLAIN\r\n*\r\n"), "334 \r\n501 5.7.0 Authentication cancelled\r\n");
  EXPECT_EQ(c.send("AUTH PLAIN not*base64\r\n"), "501 5.5.2 Invalid base64 data\r\n");
  EXPECT_EQ(c.send("AUTH LOGIN\r\n!!!!\r\n"),
            "334 VXNlcm5hbWU6\r\n501 5.5.2 Invalid base64 data\r\n");
  EXPECT_EQ(c.send("AUTH PLAIN YXBwMQ==\r\n"), "501 5.5.2 Invalid PLAIN response\r\n");
  EXPECT_EQ(c.send("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
  EXPECT_EQ(c.send("AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism\r\n");
  EXPECT_TRUE(c.auths.empty());
  EXPECT_EQ(c.send("NOOP\r\n"), "250 2.0.0 Ok\r\n");
  Client relay;
  relay.send("EHLO a\r\n");
  EXPECT_EQ(relay.send("AUTH PLAIN AGFwcDEAc2VjcmV0\r\n"),
            "502 5.5.1 Error: command not implemented\r\n");
}

TEST(SmtpSessionAuth, TemporaryFailureAndLongResponse) {
  Client c(submission_settings());
  c.auth_status = AuthResult::Status::temporary_failure;
  c.send("EHLO a\r\n");
  EXPECT_EQ(c.send("AUTH PLAIN AGFwcDEAc2VjcmV0\r\n"),
            "454 4.7.0 Temporary authentication failure\r\n");
  // AUTH lines may be longer than command lines (12288 octets).
  std::string huge(4000, 'A');
  EXPECT_EQ(c.send("AUTH PLAIN " + huge + "\r\n"), "501 5.5.2 Invalid PLAIN response\r\n");
  EXPECT_EQ(c.send("AUTH LOGIN\r\n" + std::string(13000, 'A') + "\r\nNOOP\r\n"),
            "334 VXNlcm5hbWU6\r\n500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
}

TEST(SmtpSessionAuth, WaitsForTheVerdictAndKeepsPipelinedInput) {
  Client c(submission_settings());
  c.hold_auth = true;
  c.send("EHLO a\r\n");
  SessionOutput out =
      c.session_.receive("AUTH PLAIN AGFwcDEAc2VjcmV0\r\nMAIL FROM:<a@example.org>\r\n");
  EXPECT_EQ(out.replies, "");
  ASSERT_TRUE(out.auth);
  EXPECT_TRUE(c.session_.waiting());
  SessionOutput done = c.session_.auth_finished({AuthResult::Status::ok});
  EXPECT_EQ(done.replies, "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n");
}

TEST(SmtpSessionCommit, SpoolFullAndFailureReset) {
  Client c;
  c.send("EHLO a\r\n");
  c.commit_status = CommitResult::Status::spool_full;
  EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "452 4.3.1 Insufficient system storage\r\n");
  EXPECT_EQ(c.send("RCPT TO:<b@example.net>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
  c.commit_status = CommitResult::Status::failed;
  EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "451 4.3.0 Local error, try again later\r\n");
  EXPECT_FALSE(c.session_.in_transaction());
}

TEST(SmtpSessionCommit, FilterRejectionRepliesAsTheFilterSaid) {
  Client c;
  c.send("EHLO a\r\n");
  c.commit_status = CommitResult::Status::rejected;
  c.commit_reply = "550 5.7.9 custom text";
  EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "550 5.7.9 custom text\r\n");
  EXPECT_FALSE(c.session_.in_transaction());
  // A reply that would mislead the client (2xx, multi-line, no code) is not
  // passed through.
  c.commit_reply = "550-5.7.1 first line\r\n550 5.7.1 second line";
  EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "550 5.7.1 second line\r\n");
  for (const char* bad : {"250 2.0.0 fine", "oops", "", "4", "451-4.7.1 a\r\n550 5.7.1 b"}) {
    c.commit_reply = bad;
    EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "451 4.7.1 Message refused by a filter\r\n")
        << bad;
  }
  // A malformed permanent refusal stays permanent.
  for (const char* bad : {"550", "550 5.7.1 spam\r\n250 2.0.0 ok", "550-5.7.1 a\n550 5.7.1 b",
                          "550-5.7.1 a\r\n550-5.7.1 b", "550-5.7.1 a\r\n451 4.7.1 b"}) {
    c.commit_reply = bad;
    EXPECT_EQ(last_reply(c.send(kSimpleTransaction)), "550 5.7.1 Message refused by a filter\r\n")
        << bad;
  }
  c.commit_status = CommitResult::Status::committed;
  EXPECT_EQ(last_reply(c.send(kSimpleTransaction)).rfind("250 2.0.0 Ok: queued as ", 0), 0u);
}

TEST(SmtpSessionEnd, IdleTimeoutAndShutdown) {
  Client c;
  SessionOutput idle = c.session_.idle_timeout();
  EXPECT_EQ(idle.replies, "421 4.4.2 mx.test Idle timeout\r\n");
  EXPECT_TRUE(idle.close);
  Client d;
  SessionOutput stop = d.session_.shutdown();
  EXPECT_EQ(stop.replies, "421 4.3.2 mx.test Service shutting down\r\n");
  EXPECT_TRUE(stop.close);
}

TEST(SmtpSessionEnd, ShutdownWaitsForTheCommitReply) {
  Client c;
  c.hold_commits = true;
  c.send(std::string("EHLO a\r\n") + kSimpleTransaction + "NOOP\r\n");
  ASSERT_TRUE(c.session_.waiting());
  SessionOutput stop = c.session_.shutdown();
  EXPECT_EQ(stop.replies, "");
  EXPECT_FALSE(stop.close);
  SessionOutput done = c.session_.commit_finished({CommitResult::Status::committed, "", ""});
  EXPECT_EQ(without_ids(done.replies),
            "250 2.0.0 Ok: queued as ID\r\n421 4.3.2 mx.test Service shutting down\r\n");
  EXPECT_TRUE(done.close);
}

TEST(SmtpSessionMessage, EnvelopeMetadataAndReceived) {
  Client c;
  c.send("EHLO client.test\r\n");
  c.send(
      "MAIL FROM:<a@example.org> BODY=8BITMIME RET=HDRS ENVID=abc+2B1\r\n"
      "RCPT TO:<Bob@Example.NET> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Bob@Example.NET\r\n"
      "DATA\r\nSubject: x\r\nx-campaign-id: spring\r\n sale\r\n\r\nbody\r\n.\r\n");
  ASSERT_EQ(c.messages.size(), 1u);
  const queue::SpoolMessage& m = *c.messages[0];
  EXPECT_EQ(m.envelope.sender, "a@example.org");
  ASSERT_EQ(m.envelope.recipients.size(), 1u);
  EXPECT_EQ(m.envelope.recipients[0].address, "Bob@Example.NET");
  EXPECT_EQ(m.envelope.recipients[0].domain, "example.net");
  EXPECT_EQ(m.envelope.recipients[0].dsn_notify, "SUCCESS,DELAY");
  EXPECT_EQ(m.envelope.recipients[0].dsn_orcpt, "rfc822;Bob@Example.NET");
  EXPECT_EQ(m.envelope.body_type, "8BITMIME");
  EXPECT_EQ(m.envelope.dsn_ret, "HDRS");
  EXPECT_EQ(m.envelope.dsn_envid, "abc+2B1");
  EXPECT_FALSE(m.envelope.smtputf8);
  EXPECT_EQ(m.meta.tenant, "127.0.0.0/8");
  EXPECT_EQ(m.meta.campaign, "spring sale");
  EXPECT_EQ(m.meta.listener, "relay");
  EXPECT_EQ(m.meta.received_unix_ms, 1767225600000);
  EXPECT_EQ(m.meta.client_ip, "127.0.0.1");
  EXPECT_EQ(m.meta.helo, "client.test");
  EXPECT_EQ(m.meta.tls, "");
  EXPECT_EQ(m.meta.size, m.content.size());
  std::string expected_received =
      "Received: from client.test (unknown [127.0.0.1]) by mx.test (Ringmail) with\r\n"
      "\tESMTP id " +
      m.id.value +
      " for <Bob@Example.NET>;\r\n"
      "\tThu, 01 Jan 2026 00:00:00 +0000\r\n";
  EXPECT_EQ(m.content, expected_received + "Subject: x\r\n\r\nbody\r\n");  // relay: nothing added
  EXPECT_EQ(c.committed_ids.size(), 1u);
}

TEST(SmtpSessionMessage, SubmissionAddsMessageIdAndDateWhenMissing) {
  Client c(submission_settings());
  c.send("EHLO a\r\nAUTH PLAIN AGFwcDEAc2VjcmV0\r\n");
  c.send(kSimpleTransaction);
  c.send(
      "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
      "message-id: <own@app>\r\nDATE: Wed, 31 Dec 2025 10:00:00 +0000\r\n\r\nx\r\n.\r\n");
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(after_received(c.content(0)),
            "Subject: hi\r\nMessage-ID: <" + c.messages[0]->id.value +
                "@mx.test>\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nbody\r\n");
  EXPECT_EQ(after_received(c.content(1)),
            "message-id: <own@app>\r\nDATE: Wed, 31 Dec 2025 10:00:00 +0000\r\n\r\nx\r\n");
}

TEST(SmtpSessionMessage, PipelinedInputOverflowWhileWaitingCloses) {
  Client c;
  c.hold_commits = true;
  c.send(std::string("EHLO a\r\n") + kSimpleTransaction);
  ASSERT_TRUE(c.session_.waiting());
  std::string junk(256 * 1024, 'j');
  for (int i = 0; i < 5; ++i) c.session_.receive(junk);
  SessionOutput done = c.session_.commit_finished({CommitResult::Status::committed, "", ""});
  EXPECT_EQ(without_ids(done.replies),
            "250 2.0.0 Ok: queued as ID\r\n421 4.7.0 mx.test Too much pipelined input\r\n");
  EXPECT_TRUE(done.close);
}

// The DATA decoder on its own: every split of the stream gives the same
// decision and the same content.
struct ReaderOutcome {
  bool finished = false;
  size_t consumed = 0;
  std::string content;
  bool bare_cr = false;
};

ReaderOutcome read_with_split(const std::string& wire, size_t step) {
  SmtpDataReader reader;
  reader.begin(SmtpDataReader::Framing::dot_terminated, 1 << 20);
  ReaderOutcome o;
  for (size_t pos = 0; pos < wire.size() && !reader.finished(); pos += step) {
    o.consumed += reader.feed(std::string_view(wire).substr(pos, step));
  }
  o.finished = reader.finished();
  o.content = reader.content();
  o.bare_cr = reader.bare_cr();
  return o;
}

TEST(SmtpDataReader, EndsOnlyOnCrLfDotCrLf) {
  struct Case {
    std::string wire;
    bool finished;
    std::string content;
  } cases[] = {
      {".\r\n", true, ""},
      {"a\r\n.\r\nafter", true, "a\r\n"},
      {"a\n.\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n"},
      {"a\r\n.\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n"},
      {"a\n.\r\nb\r\n.\r\n", true, "a\r\n.\r\nb\r\n"},
      {"a\n.\r\n", false, "a\r\n.\r\n"},
      {"a\r\n.\n", false, "a\r\n.\r\n"},
      {"a\r\n..\r\n.\r\n", true, "a\r\n.\r\n"},
      {"..x\r\n.\r\n", true, ".x\r\n"},
      {"a\n\r\n.\r\n", true, "a\r\n\r\n"},
  };
  for (const Case& c : cases) {
    for (size_t step : {1u, 2u, 3u, 100u}) {
      ReaderOutcome o = read_with_split(c.wire, step);
      EXPECT_EQ(o.finished, c.finished) << c.wire << " step " << step;
      EXPECT_EQ(o.content, c.content) << c.wire << " step " << step;
      EXPECT_FALSE(o.bare_cr);
    }
  }
  ReaderOutcome stop = read_with_split("a\r\n.\r\nMAIL FROM:<x@y>\r\n", 100);
  EXPECT_EQ(stop.consumed, 6u);  // what follows the end is left for the command reader
}

TEST(SmtpDataReader, BareCrIsFlaggedWhateverTheSplit) {
  for (const std::string wire :
       {"a\r.\r\n.\r\n", "a\rb\r\n.\r\n", "x\r\n.\rb\r\n.\r\n", "x\r\r\n.\r\n"}) {
    for (size_t step : {1u, 2u, 100u}) {
      ReaderOutcome o = read_with_split(wire, step);
      EXPECT_TRUE(o.finished) << wire;
      EXPECT_TRUE(o.bare_cr) << wire;
    }
  }
}

TEST(SmtpDataReader, ChunkedFramingKeepsDotsAndEndsLastLine) {
  SmtpDataReader reader;
  reader.begin(SmtpDataReader::Framing::chunked, 100);
  EXPECT_EQ(reader.feed(".\r\n.x\r"), 6u);
  EXPECT_EQ(reader.feed("\nend"), 4u);
  reader.finish_chunked();
  EXPECT_EQ(reader.content(), ".\r\n.x\r\nend\r\n");
  EXPECT_FALSE(reader.bare_cr());
  reader.begin(SmtpDataReader::Framing::chunked, 100);
  reader.feed("a\r");
  reader.finish_chunked();
  EXPECT_TRUE(reader.bare_cr());
  reader.begin(SmtpDataReader::Framing::chunked, 4);
  reader.feed("abcde");
  EXPECT_TRUE(reader.too_big());
  EXPECT_EQ(reader.size(), 5u);
  EXPECT_EQ(reader.content(), "");
}

}  // namespace
}  // namespace ringmail::mta
