// Tests of the outbound ESMTP machine. They play the event loop and a
// scripted server: feed the server's bytes, and compare what would go on
// the wire and the per-recipient results the delivery engine would record.
// No sockets.
#include "mta/smtp/smtp_client_session.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

constexpr const char* kGreeting = "220 mx.test ESMTP ready\r\n";
// Everything but STARTTLS and CHUNKING.
constexpr const char* kEhloPipelining =
    "250-mx.test Hello\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 1000000\r\n"
    "250-8BITMIME\r\n"
    "250-SMTPUTF8\r\n"
    "250 ENHANCEDSTATUSCODES\r\n";
constexpr const char* kEhloPlain = "250-mx.test Hello\r\n250 ENHANCEDSTATUSCODES\r\n";
constexpr const char* kEhloChunking =
    "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n";

ClientSettings settings() {
  ClientSettings s;
  s.helo_name = "client.test";
  return s;
}

std::shared_ptr<const OutboundMessage> message(std::vector<std::string> recipients,
                                               std::string content = "Subject: hi\r\n\r\nbody\r\n",
                                               std::string sender = "alice@example.org") {
  auto m = std::make_shared<OutboundMessage>();
  m->sender = std::move(sender);
  for (std::string& r : recipients)
    m->recipients.push_back(OutboundRecipient{std::move(r), "", ""});
  m->content = std::make_shared<const std::string>(std::move(content));
  return m;
}

std::shared_ptr<OutboundMessage> mutable_message(
    std::vector<std::string> recipients, std::string content = "Subject: hi\r\n\r\nbody\r\n") {
  return std::const_pointer_cast<OutboundMessage>(
      message(std::move(recipients), std::move(content)));
}

// Plays the event loop: keeps what each call returned and everything that
// went on the wire.
class Loop {
 public:
  explicit Loop(ClientSettings s = settings()) : session(std::move(s)) {
    absorb(session.connected());
  }

  ClientOutput server(std::string_view bytes) { return absorb(session.receive(bytes)); }
  ClientOutput server_bytewise(std::string_view bytes) {
    ClientOutput merged;
    for (char c : bytes) {
      ClientOutput out = absorb(session.receive(std::string_view(&c, 1)));
      merged.send += out.send;
      merged.start_tls |= out.start_tls;
      merged.close |= out.close;
      merged.ready |= out.ready;
      if (out.finished) merged.finished = out.finished;
      if (out.failure) merged.failure = out.failure;
    }
    return merged;
  }
  ClientOutput send(std::shared_ptr<const OutboundMessage> m) {
    return absorb(session.send_message(std::move(m)));
  }
  ClientOutput absorb(ClientOutput out) {
    wire += out.send;
    if (out.close) closed = true;
    if (out.finished) finished.push_back(*out.finished);
    if (out.failure) failure = out.failure;
    return out;
  }
  // The wire since the last call.
  std::string take_wire() { return std::exchange(wire, ""); }

  // Greeting and EHLO with `ehlo`; the session is then ready.
  void greet(std::string_view ehlo = kEhloPipelining) {
    server(kGreeting);
    EXPECT_EQ(take_wire(), "EHLO client.test\r\n");
    ClientOutput out = server(ehlo);
    EXPECT_TRUE(out.ready);
    EXPECT_TRUE(session.is_ready());
  }

  SmtpClientSession session;
  std::string wire;
  bool closed = false;
  std::vector<TransactionResult> finished;
  std::optional<SmtpReply> failure;
};

std::string size_of(const OutboundMessage& m) { return std::to_string(m.content->size()); }

// ---- greeting and EHLO ----

TEST(SmtpClientSessionTest, WaitsForTheGreetingThenSaysEhlo) {
  Loop loop;
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::greeting);
  EXPECT_EQ(loop.take_wire(), "");
  loop.server("220-mx.test ESMTP Postfix\r\n220 no UCE\r\n");
  EXPECT_EQ(loop.take_wire(), "EHLO client.test\r\n");
  EXPECT_EQ(loop.session.greeting(), "mx.test ESMTP Postfix");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::ehlo);
  ClientOutput out = loop.server(
      "250-mx.test\r\n250-pipelining\r\n250-size 2048\r\n250-8BITMIME\r\n250-DSN\r\n"
      "250 ENHANCEDSTATUSCODES\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::none);
  const ServerCapabilities& c = loop.session.capabilities();
  EXPECT_TRUE(c.esmtp);
  EXPECT_TRUE(c.pipelining);
  EXPECT_TRUE(c.eight_bit_mime);
  EXPECT_TRUE(c.dsn);
  EXPECT_TRUE(c.enhanced_status_codes);
  EXPECT_FALSE(c.chunking);
  EXPECT_FALSE(c.smtputf8);
  EXPECT_FALSE(c.starttls);
  EXPECT_EQ(c.size, std::optional<uint64_t>(2048));
}

TEST(SmtpClientSessionTest, RefusedGreetingIsAFailureWithTheServersReply) {
  Loop loop;
  ClientOutput out = loop.server("421 4.3.2 mx.test Service not available\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 421);
  EXPECT_EQ(out.failure->enhanced, "4.3.2");
  EXPECT_FALSE(out.failure->local);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "");  // the server is going away
  EXPECT_TRUE(loop.session.is_closed());
  EXPECT_FALSE(out.finished);
  EXPECT_EQ(loop.server("250 late\r\n").send, "");

  Loop refused;
  out = refused.server("554 5.7.1 no mail from you\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->to_string(), "554 5.7.1 no mail from you");
  EXPECT_TRUE(out.failure->permanent());
  EXPECT_EQ(out.send, "QUIT\r\n");
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, FallsBackToHeloWhenEhloIsRefused) {
  Loop loop;
  loop.server(kGreeting);
  loop.take_wire();
  ClientOutput out = loop.server("502 5.5.2 Error: command not recognized\r\n");
  EXPECT_EQ(out.send, "HELO client.test\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::ehlo);
  out = loop.server("250 mx.test\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_FALSE(loop.session.capabilities().esmtp);
  loop.take_wire();

  // No extension: lock-step, no parameters, and an "8BITMIME" message
  // that is only 7-bit goes without BODY=.
  auto m = mutable_message({"bob@example.net"});
  m->body_type = "8BITMIME";
  m->dsn_ret = "HDRS";
  out = loop.send(m);
  EXPECT_EQ(out.send, "MAIL FROM:<alice@example.org>\r\n");
  EXPECT_EQ(loop.server("250 ok\r\n").send, "RCPT TO:<bob@example.net>\r\n");
  EXPECT_EQ(loop.server("250 ok\r\n").send, "DATA\r\n");
  EXPECT_EQ(loop.server("354 go\r\n").send, *m->content + ".\r\n");
  out = loop.server("250 queued\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients.at(0).to_string(), "250 queued");
}

TEST(SmtpClientSessionTest, EhloAndHeloRefusedIsAFailure) {
  Loop loop;
  loop.server(kGreeting);
  loop.server("500 5.5.1 what\r\n");
  loop.take_wire();
  ClientOutput out = loop.server("550 5.7.1 go away\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 550);
  EXPECT_FALSE(out.failure->local);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "QUIT\r\n");
}

TEST(SmtpClientSessionTest, TransientEhloRefusalIsAFailureWithoutHelo) {
  Loop loop;
  loop.server(kGreeting);
  loop.take_wire();
  ClientOutput out = loop.server("450 4.7.1 try later\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 450);
  EXPECT_TRUE(out.close);
}

// ---- STARTTLS ----

constexpr const char* kEhloStarttls =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 STARTTLS\r\n";

TEST(SmtpClientSessionTest, StartTlsThenEhloAgainWithFreshCapabilities) {
  Loop loop;
  loop.server(kGreeting);
  loop.take_wire();
  ClientOutput out = loop.server(kEhloStarttls);
  EXPECT_EQ(out.send, "STARTTLS\r\n");
  EXPECT_FALSE(out.ready);
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::starttls);
  out = loop.server("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(out.start_tls);
  EXPECT_EQ(out.send, "");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::starttls);
  EXPECT_EQ(loop.session.tls_description(), "");

  out = loop.absorb(loop.session.tls_established("TLSv1.3 TLS_AES_256_GCM_SHA384"));
  EXPECT_EQ(out.send, "EHLO client.test\r\n");
  EXPECT_EQ(loop.session.tls_description(), "TLSv1.3 TLS_AES_256_GCM_SHA384");
  EXPECT_FALSE(loop.session.capabilities().starttls);  // forgotten (RFC 3207 §4.2)
  EXPECT_FALSE(loop.session.capabilities().pipelining);
  EXPECT_FALSE(loop.session.capabilities().size);
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::ehlo);

  out = loop.server("250-mx.test\r\n250-8BITMIME\r\n250 STARTTLS\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");  // no second STARTTLS
  EXPECT_TRUE(loop.session.capabilities().eight_bit_mime);
  EXPECT_FALSE(loop.session.capabilities().pipelining);
}

TEST(SmtpClientSessionTest, BytesAfterTheStartTlsReplyAreAnInjection) {
  Loop loop;
  loop.server(kGreeting);
  loop.server(kEhloStarttls);
  ClientOutput out = loop.server("220 go ahead\r\n250 injected\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->category, mail::BounceCategory::ProtocolErrors);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, StartTlsRefusedContinuesInClearText) {
  Loop loop;
  loop.server(kGreeting);
  loop.server(kEhloStarttls);
  ClientOutput out = loop.server("454 4.7.0 TLS not available\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_FALSE(out.failure);
  EXPECT_TRUE(loop.session.capabilities().pipelining);
}

TEST(SmtpClientSessionTest, StartTlsRefusedWhenRequiredIsALocalFailure) {
  ClientSettings s = settings();
  s.require_tls = true;
  Loop loop(s);
  loop.server(kGreeting);
  loop.server(kEhloStarttls);
  loop.take_wire();
  ClientOutput out = loop.server("454 4.7.0 TLS not available\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.failure->local);
  EXPECT_TRUE(out.failure->transient());
  EXPECT_NE(out.failure->text.find("STARTTLS was refused"), std::string::npos);
  EXPECT_NE(out.failure->text.find("454 4.7.0 TLS not available"), std::string::npos);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "QUIT\r\n");
}

TEST(SmtpClientSessionTest, RequireTlsWithoutStartTlsIsALocalTransientFailure) {
  ClientSettings s = settings();
  s.require_tls = true;
  Loop loop(s);
  loop.server(kGreeting);
  loop.take_wire();
  ClientOutput out = loop.server(kEhloPipelining);
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.failure->local);
  EXPECT_EQ(out.failure->code, 0);
  EXPECT_TRUE(out.failure->transient());
  EXPECT_FALSE(out.failure->category);
  EXPECT_NE(out.failure->text.find("TLS is required"), std::string::npos);
  EXPECT_NE(out.failure->text.find("does not offer STARTTLS"), std::string::npos);
  EXPECT_FALSE(out.ready);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "QUIT\r\n");
}

TEST(SmtpClientSessionTest, RequireTlsAfterHeloFallbackFails) {
  ClientSettings s = settings();
  s.require_tls = true;
  Loop loop(s);
  loop.server(kGreeting);
  loop.server("502 no\r\n");
  ClientOutput out = loop.server("250 mx.test\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, StartTlsDisabledHereIsNotAttempted) {
  ClientSettings s = settings();
  s.starttls = false;
  Loop loop(s);
  loop.server(kGreeting);
  loop.take_wire();
  ClientOutput out = loop.server(kEhloStarttls);
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");
}

TEST(SmtpClientSessionTest, TlsHandshakeFailureEndsTheSession) {
  Loop loop;
  loop.server(kGreeting);
  loop.server(kEhloStarttls);
  loop.server("220 go\r\n");
  loop.take_wire();
  ClientOutput out = loop.absorb(loop.session.tls_failed("certificate verify failed"));
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.failure->local);
  EXPECT_NE(out.failure->text.find("certificate verify failed"), std::string::npos);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "");  // no clear text after the 220
}

// ---- transactions ----

TEST(SmtpClientSessionTest, PipelinedTransactionGoesInOneFlight) {
  Loop loop;
  loop.greet();
  auto m = message({"bob@example.net", "carol@example.net"});
  ClientOutput out = loop.send(m);
  EXPECT_EQ(out.send, "MAIL FROM:<alice@example.org> SIZE=" + size_of(*m) +
                          "\r\n"
                          "RCPT TO:<bob@example.net>\r\n"
                          "RCPT TO:<carol@example.net>\r\n"
                          "DATA\r\n");
  EXPECT_FALSE(out.ready);
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::mail);

  out = loop.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(out.send, "");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::rcpt);
  out = loop.server("250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(out.send, "Subject: hi\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::data_term);

  out = loop.server("250 2.0.0 Ok: queued as 4ABC\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.ready);
  EXPECT_TRUE(out.finished->data_sent);
  ASSERT_EQ(out.finished->recipients.size(), 2u);
  for (const SmtpReply& r : out.finished->recipients) {
    EXPECT_EQ(r.code, 250);
    EXPECT_EQ(r.enhanced, "2.0.0");
    EXPECT_EQ(r.text, "Ok: queued as 4ABC");
    EXPECT_FALSE(r.local);
  }
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::none);
  EXPECT_FALSE(loop.failure);
}

TEST(SmtpClientSessionTest, LockStepWithoutPipelining) {
  Loop loop;
  loop.greet(kEhloPlain);
  auto m = message({"bob@example.net", "carol@example.net"});
  EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org>\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::mail);
  EXPECT_EQ(loop.server("250 2.1.0 Ok\r\n").send, "RCPT TO:<bob@example.net>\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::rcpt);
  EXPECT_EQ(loop.server("250 2.1.5 Ok\r\n").send, "RCPT TO:<carol@example.net>\r\n");
  EXPECT_EQ(loop.server("250 2.1.5 Ok\r\n").send, "DATA\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::data_init);
  EXPECT_EQ(loop.server("354 go\r\n").send, *m->content + ".\r\n");
  ClientOutput out = loop.server("250 2.0.0 Ok\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.finished->recipients.size(), 2u);
}

TEST(SmtpClientSessionTest, MixedRecipientReplies) {
  Loop loop;
  loop.greet();
  loop.send(message({"ok@example.net", "nouser@example.net", "full@example.net"}));
  loop.take_wire();
  ClientOutput out = loop.server(
      "250 2.1.0 Ok\r\n"
      "250 2.1.5 Ok\r\n"
      "550 5.1.1 <nouser@example.net>: Recipient address rejected\r\n"
      "450 4.2.2 <full@example.net>: Mailbox full\r\n"
      "354 go ahead\r\n");
  EXPECT_EQ(out.send, "Subject: hi\r\n\r\nbody\r\n.\r\n");
  EXPECT_FALSE(out.finished);
  out = loop.server("250 2.0.0 Ok: queued\r\n");
  ASSERT_TRUE(out.finished);
  const std::vector<SmtpReply>& r = out.finished->recipients;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].to_string(), "250 2.0.0 Ok: queued");
  EXPECT_EQ(r[1].to_string(), "550 5.1.1 <nouser@example.net>: Recipient address rejected");
  EXPECT_TRUE(r[1].permanent());
  EXPECT_EQ(r[2].to_string(), "450 4.2.2 <full@example.net>: Mailbox full");
  EXPECT_TRUE(r[2].transient());
  EXPECT_TRUE(out.finished->data_sent);
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");  // "." ended the transaction: no RSET
}

TEST(SmtpClientSessionTest, FinalReplyRefusalAppliesToEveryAcceptedRecipient) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net", "b@example.net", "c@example.net"}));
  loop.server("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n");
  loop.take_wire();
  ClientOutput out = loop.server("554 5.7.1 Message rejected as spam\r\n");
  ASSERT_TRUE(out.finished);
  const std::vector<SmtpReply>& r = out.finished->recipients;
  EXPECT_EQ(r[0].to_string(), "554 5.7.1 Message rejected as spam");
  EXPECT_EQ(r[1].to_string(), "550 5.1.1 no");
  EXPECT_EQ(r[2].to_string(), "554 5.7.1 Message rejected as spam");
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");
}

TEST(SmtpClientSessionTest, AllRecipientsRefusedConsumesThePipelinedDataReply) {
  Loop loop;
  loop.greet();
  loop.send(message({"x@example.net", "y@example.net"}));
  loop.take_wire();
  ClientOutput out = loop.server("250 2.1.0 Ok\r\n550 5.1.1 no x\r\n451 4.3.0 try y later\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.finished->data_sent);
  EXPECT_EQ(out.finished->recipients[0].to_string(), "550 5.1.1 no x");
  EXPECT_EQ(out.finished->recipients[1].to_string(), "451 4.3.0 try y later");
  EXPECT_FALSE(out.ready);
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::data_init);

  out = loop.server("554 5.5.1 Error: no valid recipients\r\n");
  EXPECT_EQ(out.send, "RSET\r\n");
  EXPECT_FALSE(out.finished);  // once only
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::rset);
  out = loop.server("250 2.0.0 Ok\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_FALSE(loop.failure);
  EXPECT_EQ(loop.finished.size(), 1u);
}

TEST(SmtpClientSessionTest, DataAcceptedWithNoRecipientSendsOnlyTheDot) {
  Loop loop;
  loop.greet();
  loop.send(message({"x@example.net"}));
  loop.take_wire();
  loop.server("250 2.1.0 Ok\r\n550 5.1.1 no x\r\n");
  ClientOutput out = loop.server("354 go ahead\r\n");
  EXPECT_EQ(out.send, ".\r\n");                            // RFC 2920 §3.1
  out = loop.server("554 5.5.1 no valid recipients\r\n");  // ignored
  EXPECT_EQ(out.send, "RSET\r\n");
  EXPECT_FALSE(out.finished);
  out = loop.server("250 Ok\r\n");
  EXPECT_TRUE(out.ready);
  ASSERT_EQ(loop.finished.size(), 1u);
  EXPECT_FALSE(loop.finished[0].data_sent);
  EXPECT_EQ(loop.finished[0].recipients[0].to_string(), "550 5.1.1 no x");
}

TEST(SmtpClientSessionTest, AllRecipientsRefusedLockStep) {
  Loop loop;
  loop.greet(kEhloPlain);
  loop.send(message({"x@example.net"}));
  loop.server("250 ok\r\n");
  loop.take_wire();
  ClientOutput out = loop.server("550 5.1.1 no\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.send, "RSET\r\n");  // the envelope is still open: MAIL was accepted
  out = loop.server("250 ok\r\n");
  EXPECT_TRUE(out.ready);
}

TEST(SmtpClientSessionTest, MailRefusedGivesEveryRecipientTheMailReply) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net", "b@example.net"}));
  loop.take_wire();
  ClientOutput out = loop.server("553 5.7.1 <alice@example.org>: Sender address rejected\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.finished->data_sent);
  for (const SmtpReply& r : out.finished->recipients) {
    EXPECT_EQ(r.to_string(), "553 5.7.1 <alice@example.org>: Sender address rejected");
  }
  EXPECT_FALSE(out.ready);  // the pipelined replies are still coming
  out = loop.server("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n");
  EXPECT_FALSE(out.ready);
  out = loop.server("503 5.5.1 need RCPT\r\n");
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");  // no transaction at the server: no RSET
  EXPECT_FALSE(out.finished);
  EXPECT_EQ(loop.finished.size(), 1u);
}

TEST(SmtpClientSessionTest, MailRefusedLockStepSendsNoRecipient) {
  Loop loop;
  loop.greet(kEhloPlain);
  loop.send(message({"a@example.net"}));
  loop.take_wire();
  ClientOutput out = loop.server("451 4.3.0 try later\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 451);
  EXPECT_TRUE(out.ready);
  EXPECT_EQ(out.send, "");
}

TEST(SmtpClientSessionTest, DataRefusedGoesToTheAcceptedRecipientsAndResets) {
  Loop loop;
  loop.greet(kEhloPlain);
  loop.send(message({"a@example.net"}));
  loop.server("250 ok\r\n");
  loop.server("250 ok\r\n");
  loop.take_wire();
  ClientOutput out = loop.server("451 4.3.0 no DATA now\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].to_string(), "451 4.3.0 no DATA now");
  EXPECT_EQ(out.send, "RSET\r\n");
  EXPECT_TRUE(loop.server("250 ok\r\n").ready);
}

// ---- content ----

TEST(SmtpClientSessionTest, DotStuffsLinesAndAddsTheFinalLineEnding) {
  Loop loop;
  loop.greet();
  auto m = message({"bob@example.net"}, "Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\nlast");
  loop.send(m);
  loop.take_wire();
  ClientOutput out = loop.server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(out.send, "Subject: dots\r\n\r\n..leading\r\n...two\r\n..\r\nlast\r\n.\r\n");
}

TEST(SmtpClientSessionTest, ChunkingSendsBdatAfterTheRecipientReplies) {
  Loop loop;
  loop.greet(kEhloChunking);
  auto m = message({"bob@example.net", "carol@example.net"}, ".x\r\nbody");
  ClientOutput out = loop.send(m);
  EXPECT_EQ(out.send,
            "MAIL FROM:<alice@example.org>\r\n"
            "RCPT TO:<bob@example.net>\r\n"
            "RCPT TO:<carol@example.net>\r\n");
  out = loop.server("250 ok\r\n250 ok\r\n");
  EXPECT_EQ(out.send, "");
  out = loop.server("550 5.1.1 no carol\r\n");
  EXPECT_EQ(out.send, "BDAT 10 LAST\r\n.x\r\nbody\r\n");  // not dot-stuffed
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::data_term);
  out = loop.server("250 2.0.0 Message accepted\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.finished->data_sent);
  EXPECT_EQ(out.finished->recipients[0].to_string(), "250 2.0.0 Message accepted");
  EXPECT_EQ(out.finished->recipients[1].to_string(), "550 5.1.1 no carol");
  EXPECT_TRUE(out.ready);
}

// A per-transaction header prefix (X-Ringmail-Ref) goes in front of the
// shared content, counted in SIZE=, dot-stuffed with it for DATA, and in
// the BDAT count.
TEST(SmtpClientSessionTest, HeaderPrefixGoesInFrontOfTheContent) {
  const std::string prefix = "X-Ringmail-Ref: 1abc\r\n";
  {
    Loop loop;
    loop.greet();
    auto m = mutable_message({"bob@example.net"}, ".dot\r\nbody");
    m->header_prefix = prefix;
    EXPECT_EQ(loop.send(m).send,
              "MAIL FROM:<alice@example.org> SIZE=" + std::to_string(prefix.size() + 10 + 2) +
                  "\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
    ClientOutput out = loop.server("250 ok\r\n250 ok\r\n354 go\r\n");
    EXPECT_EQ(out.send, prefix + "..dot\r\nbody\r\n.\r\n");
    EXPECT_EQ(*m->content, ".dot\r\nbody") << "the shared content is not changed";
  }
  {
    Loop loop;
    loop.greet(kEhloChunking);
    auto m = mutable_message({"bob@example.net"}, ".x\r\nbody");
    m->header_prefix = prefix;
    loop.send(m);
    ClientOutput out = loop.server("250 ok\r\n250 ok\r\n");
    EXPECT_EQ(out.send, "BDAT " + std::to_string(prefix.size() + 10) + " LAST\r\n" + prefix +
                            ".x\r\nbody\r\n");
  }
  {
    Loop loop;
    loop.greet("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 30\r\n");
    auto m = mutable_message({"bob@example.net"}, std::string(20, 'x'));
    m->header_prefix = prefix;  // 20 + 2 fits, with the prefix it does not
    ClientOutput out = loop.send(m);
    ASSERT_TRUE(out.finished);
    EXPECT_EQ(out.finished->recipients[0].code, 552);
  }
}

TEST(SmtpClientSessionTest, ChunkingWithEveryRecipientRefusedSendsNoContent) {
  Loop loop;
  loop.greet(kEhloChunking);
  loop.send(message({"bob@example.net"}));
  loop.take_wire();
  ClientOutput out = loop.server("250 ok\r\n550 5.1.1 no bob\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.finished->data_sent);
  EXPECT_EQ(out.send, "RSET\r\n");
  EXPECT_TRUE(loop.server("250 ok\r\n").ready);
}

TEST(SmtpClientSessionTest, RefusedBdatIsFollowedByRset) {
  Loop loop;
  loop.greet(kEhloChunking);
  loop.send(message({"bob@example.net"}));
  loop.server("250 ok\r\n250 ok\r\n");
  loop.take_wire();
  ClientOutput out = loop.server("554 5.7.1 spam\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 554);
  EXPECT_EQ(out.send, "RSET\r\n");  // RFC 3030 §2
  EXPECT_FALSE(out.ready);
  EXPECT_TRUE(loop.server("250 ok\r\n").ready);
}

TEST(SmtpClientSessionTest, ChunkingWithoutPipeliningIsLockStep) {
  Loop loop;
  loop.greet("250-mx.test\r\n250 CHUNKING\r\n");
  auto m = message({"bob@example.net"}, "x\r\n");
  EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org>\r\n");
  EXPECT_EQ(loop.server("250 ok\r\n").send, "RCPT TO:<bob@example.net>\r\n");
  EXPECT_EQ(loop.server("250 ok\r\n").send, "BDAT 3 LAST\r\nx\r\n");
  EXPECT_TRUE(loop.server("250 ok\r\n").finished);
}

TEST(SmtpClientSessionTest, BinaryMimeOnlyWithChunkingAndBinaryMime) {
  std::string binary("\x80\x00\r\nend", 7);
  {
    Loop loop;
    loop.greet("250-mx.test\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n");
    auto m = mutable_message({"bob@example.net"}, binary);
    m->body_type = "BINARYMIME";
    EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org> BODY=BINARYMIME\r\n");
    loop.server("250 ok\r\n");
    EXPECT_EQ(loop.server("250 ok\r\n").send, "BDAT 7 LAST\r\n" + binary);
  }
  {
    Loop loop;  // no BINARYMIME: it goes as 8BITMIME
    loop.greet("250-mx.test\r\n250-CHUNKING\r\n250 8BITMIME\r\n");
    auto m = mutable_message({"bob@example.net"}, binary);
    m->body_type = "binarymime";
    EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n");
  }
  {
    Loop loop;  // nor 8BITMIME: refused
    loop.greet(kEhloPlain);
    auto m = mutable_message({"bob@example.net"}, binary);
    m->body_type = "BINARYMIME";
    ClientOutput out = loop.send(m);
    ASSERT_TRUE(out.finished);
    EXPECT_EQ(out.finished->recipients[0].code, 554);
  }
}

// ---- refusals before anything is sent ----

TEST(SmtpClientSessionTest, MessageOverTheAnnouncedSizeIsRefusedLocally) {
  Loop loop;
  loop.greet("250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
  ClientOutput out = loop.send(message({"a@example.net", "b@example.net"}, std::string(200, 'x')));
  EXPECT_EQ(out.send, "");
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.finished->data_sent);
  ASSERT_EQ(out.finished->recipients.size(), 2u);
  for (const SmtpReply& r : out.finished->recipients) {
    EXPECT_EQ(r.code, 552);
    EXPECT_EQ(r.enhanced, "5.3.4");
    EXPECT_TRUE(r.local);
    EXPECT_TRUE(r.permanent());
  }
  EXPECT_TRUE(out.ready);
  EXPECT_TRUE(loop.session.is_ready());

  // Within the limit, SIZE= is announced.
  auto small = message({"a@example.net"}, "tiny\r\n");
  EXPECT_EQ(loop.send(small).send,
            "MAIL FROM:<alice@example.org> SIZE=6\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
}

TEST(SmtpClientSessionTest, SizeZeroMeansNoLimit) {
  Loop loop;
  loop.greet("250-mx.test\r\n250 SIZE\r\n");
  ClientOutput out = loop.send(message({"a@example.net"}, std::string(5000, 'x')));
  EXPECT_EQ(out.send, "MAIL FROM:<alice@example.org> SIZE=5002\r\n");
}

TEST(SmtpClientSessionTest, SmtpUtf8MessageToAServerWithoutSmtpUtf8IsRefused) {
  Loop loop;
  loop.greet(kEhloPlain);
  auto m = mutable_message({"bob@example.net"});
  m->smtputf8 = true;
  ClientOutput out = loop.send(m);
  EXPECT_EQ(out.send, "");
  ASSERT_TRUE(out.finished);
  const SmtpReply& r = out.finished->recipients.at(0);
  EXPECT_EQ(r.code, 553);
  EXPECT_EQ(r.enhanced, "5.6.7");
  EXPECT_EQ(r.category, mail::BounceCategory::ProtocolErrors);
  EXPECT_TRUE(r.permanent());
  EXPECT_TRUE(r.local);
  EXPECT_TRUE(out.ready);

  // A UTF-8 address needs SMTPUTF8 even when the flag was not set.
  out = loop.send(message({"jörg@example.net"}));
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients.at(0).code, 553);
}

TEST(SmtpClientSessionTest, SmtpUtf8IsAnnouncedWhenNeededAndOffered) {
  Loop loop;
  loop.greet();
  auto m = mutable_message({"jörg@example.net"});
  EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org> SIZE=" + size_of(*m) +
                                   " SMTPUTF8\r\nRCPT TO:<jörg@example.net>\r\nDATA\r\n");
}

TEST(SmtpClientSessionTest, EightBitContentToASevenBitServer) {
  Loop loop;
  loop.greet(kEhloPlain);
  auto m = mutable_message({"bob@example.net"}, "Subject: caf\xc3\xa9\r\n\r\nbody\r\n");
  m->body_type = "8BITMIME";
  ClientOutput out = loop.send(m);
  EXPECT_EQ(out.send, "");
  ASSERT_TRUE(out.finished);
  const SmtpReply& r = out.finished->recipients.at(0);
  EXPECT_EQ(r.code, 554);
  EXPECT_EQ(r.enhanced, "5.6.3");
  EXPECT_EQ(r.category, mail::BounceCategory::ProtocolErrors);
  EXPECT_TRUE(r.local);

  // Declared 8BITMIME but really 7-bit: sent without BODY=.
  auto seven = mutable_message({"bob@example.net"});
  seven->body_type = "8BITMIME";
  EXPECT_EQ(loop.send(seven).send, "MAIL FROM:<alice@example.org>\r\n");
}

TEST(SmtpClientSessionTest, EightBitContentToAnEightBitServer) {
  Loop loop;
  loop.greet();
  auto m = mutable_message({"bob@example.net"}, "Subject: caf\xc3\xa9\r\n\r\nbody\r\n");
  m->body_type = "8BITMIME";
  EXPECT_EQ(loop.send(m).send, "MAIL FROM:<alice@example.org> SIZE=" + size_of(*m) +
                                   " BODY=8BITMIME\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
}

TEST(SmtpClientSessionTest, DsnParametersOnlyWhenTheServerOffersDsn) {
  auto m = mutable_message({"bob@example.net", "carol@example.net"});
  m->dsn_ret = "hdrs";
  m->dsn_envid = "QQ314159";
  m->recipients[0].dsn_notify = "SUCCESS,FAILURE";
  m->recipients[0].dsn_orcpt = "rfc822;bob@example.net";
  m->recipients[1].dsn_notify = "NEVER";
  {
    Loop loop;
    loop.greet("250-mx.test\r\n250-PIPELINING\r\n250 DSN\r\n");
    EXPECT_EQ(loop.send(m).send,
              "MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ314159\r\n"
              "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net\r\n"
              "RCPT TO:<carol@example.net> NOTIFY=NEVER\r\n"
              "DATA\r\n");
  }
  {
    Loop loop;
    loop.greet("250-mx.test\r\n250 PIPELINING\r\n");
    EXPECT_EQ(loop.send(m).send,
              "MAIL FROM:<alice@example.org>\r\n"
              "RCPT TO:<bob@example.net>\r\n"
              "RCPT TO:<carol@example.net>\r\n"
              "DATA\r\n");
  }
}

TEST(SmtpClientSessionTest, NullSender) {
  Loop loop;
  loop.greet("250-mx.test\r\n250 PIPELINING\r\n");
  EXPECT_EQ(loop.send(message({"bob@example.net"}, "x\r\n", "")).send,
            "MAIL FROM:<>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
}

TEST(SmtpClientSessionTest, EnvelopeWithLineBreaksIsNeverSent) {
  Loop loop;
  loop.greet("250-mx.test\r\n250 PIPELINING\r\n");
  ClientOutput out = loop.send(message({"bob@example.net\r\nRSET", "carol@example.net"}));
  EXPECT_EQ(out.send, "MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n");
  out = loop.server("250 ok\r\n250 ok\r\n354 go\r\n");
  out = loop.server("250 ok\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 553);
  EXPECT_TRUE(out.finished->recipients[0].local);
  EXPECT_EQ(out.finished->recipients[1].code, 250);

  out = loop.send(message({"bob@example.net"}, "x\r\n", "alice@example.org>\r\nDATA"));
  EXPECT_EQ(out.send, "");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 553);
}

// ---- failures in the middle ----

TEST(SmtpClientSessionTest, TimeoutMidTransaction) {
  ClientSettings s = settings();
  s.timeouts.rcpt = std::chrono::seconds(42);
  Loop loop(s);
  loop.greet();
  loop.send(message({"a@example.net", "b@example.net"}));
  loop.take_wire();
  loop.server("250 ok\r\n550 5.1.1 no a\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::rcpt);
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(42));
  ClientOutput out = loop.absorb(loop.session.timeout());
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 0);
  EXPECT_EQ(out.failure->enhanced, "4.4.2");
  EXPECT_TRUE(out.failure->local);
  EXPECT_FALSE(out.failure->category);
  EXPECT_EQ(out.failure->text, "timeout waiting for the reply to RCPT");
  EXPECT_TRUE(out.close);
  ASSERT_TRUE(out.finished);
  EXPECT_FALSE(out.finished->data_sent);
  EXPECT_EQ(out.finished->recipients[0].to_string(), "550 5.1.1 no a");  // kept
  EXPECT_EQ(out.finished->recipients[1].to_string(),
            "local: timeout waiting for the reply to RCPT");
  EXPECT_TRUE(out.finished->recipients[1].transient());
  EXPECT_TRUE(loop.session.is_closed());
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::none);
}

TEST(SmtpClientSessionTest, TimeoutBeforeTheGreeting) {
  Loop loop;
  ClientOutput out = loop.absorb(loop.session.timeout());
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->text, "timeout waiting for the greeting");
  EXPECT_FALSE(out.finished);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, ConnectionLostAfterTheDataWasSent) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net", "b@example.net"}));
  loop.server("250 ok\r\n250 ok\r\n550 5.1.1 no b\r\n354 go\r\n");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::data_term);
  ClientOutput out = loop.absorb(loop.session.connection_lost("EOF"));
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.finished->data_sent);
  const SmtpReply& r = out.finished->recipients[0];
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.local);
  EXPECT_TRUE(r.transient());  // retried: at-least-once
  EXPECT_EQ(r.text, "connection lost while waiting for the reply to the end of data (EOF)");
  EXPECT_EQ(out.finished->recipients[1].code, 550);
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(loop.absorb(loop.session.connection_lost("again")).send, "");
  EXPECT_EQ(loop.finished.size(), 1u);
}

TEST(SmtpClientSessionTest, ServerClosingWith421MidTransaction) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net", "b@example.net"}));
  ClientOutput out = loop.server("250 ok\r\n250 ok\r\n421 4.7.0 mx.test Too many errors\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 421);  // RCPT 250 is not a final reply
  EXPECT_EQ(out.finished->recipients[1].code, 421);
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 421);
  EXPECT_FALSE(out.failure->local);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, IdleServerClosingWith421) {
  Loop loop;
  loop.greet();
  ClientOutput out = loop.server("421 4.4.2 mx.test Idle timeout\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->code, 421);
  EXPECT_FALSE(out.failure->category);
  EXPECT_TRUE(out.close);
}

// ---- protocol errors ----

TEST(SmtpClientSessionTest, GarbageReplyIsAProtocolError) {
  Loop loop;
  ClientOutput out = loop.server("HTTP/1.1 400 Bad Request\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.failure->local);
  EXPECT_EQ(out.failure->code, 0);
  EXPECT_EQ(out.failure->category, mail::BounceCategory::ProtocolErrors);
  EXPECT_NE(out.failure->text.find("protocol error"), std::string::npos);
  EXPECT_TRUE(out.close);
  EXPECT_EQ(out.send, "");
}

TEST(SmtpClientSessionTest, GarbageMidTransactionFinishesIt) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net"}));
  ClientOutput out = loop.server("250 ok\r\nwhat?\r\n");
  ASSERT_TRUE(out.failure);
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].category, mail::BounceCategory::ProtocolErrors);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, OverlongReplyLineIsAProtocolError) {
  Loop loop;
  ClientOutput out = loop.server("220 " + std::string(10000, 'x'));
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->category, mail::BounceCategory::ProtocolErrors);
}

TEST(SmtpClientSessionTest, UnsolicitedReplyIsAProtocolError) {
  Loop loop;
  loop.greet();
  ClientOutput out = loop.server("250 surprise\r\n");
  ASSERT_TRUE(out.failure);
  EXPECT_EQ(out.failure->category, mail::BounceCategory::ProtocolErrors);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, ExtraReplyInTheSameReadAsTheLastIsAProtocolError) {
  Loop loop;
  loop.greet();
  loop.send(message({"a@example.net"}));
  loop.server("250 ok\r\n250 ok\r\n354 go\r\n");
  ClientOutput out = loop.server("250 queued\r\n250 extra\r\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].code, 250);  // the result stands
  ASSERT_TRUE(out.failure);
  EXPECT_TRUE(out.close);
}

TEST(SmtpClientSessionTest, RepliesSplitByteByByteWithBareLf) {
  Loop loop;
  loop.server_bytewise("220-mx.test ESMTP\n220 hi\n");
  EXPECT_EQ(loop.take_wire(), "EHLO client.test\r\n");
  ClientOutput out = loop.server_bytewise(kEhloPipelining);
  EXPECT_TRUE(out.ready);
  auto m = message({"a@example.net", "b@example.net"});
  loop.send(m);
  loop.take_wire();
  out = loop.server_bytewise(
      "250 2.1.0 Ok\n250-2.1.5 first\n250 2.1.5 Ok\r\n451 4.2.0 later\n354 go\n");
  EXPECT_EQ(out.send, *m->content + ".\r\n");
  out = loop.server_bytewise("250-2.0.0 Ok\r\n250 2.0.0 queued\n");
  ASSERT_TRUE(out.finished);
  EXPECT_EQ(out.finished->recipients[0].to_string(), "250 2.0.0 Ok queued");
  EXPECT_EQ(out.finished->recipients[1].to_string(), "451 4.2.0 later");
  EXPECT_TRUE(out.ready);
  EXPECT_FALSE(loop.failure);
}

// ---- reuse and QUIT ----

TEST(SmtpClientSessionTest, TwoTransactionsOnOneConnection) {
  Loop loop;
  loop.greet();
  for (const char* rcpt : {"first@example.net", "second@example.net"}) {
    auto m = message({rcpt});
    ClientOutput out = loop.send(m);
    EXPECT_EQ(out.send, "MAIL FROM:<alice@example.org> SIZE=" + size_of(*m) + "\r\nRCPT TO:<" +
                            rcpt + ">\r\nDATA\r\n");
    loop.server("250 ok\r\n250 ok\r\n354 go\r\n");
    out = loop.server(std::string("250 2.0.0 queued for ") + rcpt + "\r\n");
    ASSERT_TRUE(out.finished);
    EXPECT_EQ(out.finished->recipients[0].text, std::string("queued for ") + rcpt);
    EXPECT_TRUE(out.ready);
  }
  EXPECT_EQ(loop.finished.size(), 2u);
}

TEST(SmtpClientSessionTest, QuitWaitsFor221ThenCloses) {
  ClientSettings s = settings();
  s.timeouts.quit = std::chrono::seconds(7);
  Loop loop(s);
  loop.greet();
  loop.take_wire();
  ClientOutput out = loop.absorb(loop.session.quit());
  EXPECT_EQ(out.send, "QUIT\r\n");
  EXPECT_FALSE(out.close);
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::quit);
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(7));
  out = loop.server("221 2.0.0 Bye\r\n");
  EXPECT_TRUE(out.close);
  EXPECT_FALSE(out.failure);
  EXPECT_TRUE(loop.session.is_closed());
}

TEST(SmtpClientSessionTest, QuitTimeoutOrEofIsNoFailure) {
  {
    Loop loop;
    loop.greet();
    loop.absorb(loop.session.quit());
    ClientOutput out = loop.absorb(loop.session.timeout());
    EXPECT_TRUE(out.close);
    EXPECT_FALSE(out.failure);
  }
  {
    Loop loop;
    loop.greet();
    loop.absorb(loop.session.quit());
    ClientOutput out = loop.absorb(loop.session.connection_lost("EOF"));
    EXPECT_TRUE(out.close);
    EXPECT_FALSE(out.failure);
  }
  {
    Loop loop;
    loop.greet();
    loop.absorb(loop.session.quit());
    ClientOutput out = loop.server("garbage\r\n");
    EXPECT_TRUE(out.close);
    EXPECT_FALSE(out.failure);
  }
}

TEST(SmtpClientSessionTest, SendMessageWhenNotReadyLosesNoRecipient) {
  Loop loop;  // still waiting for the greeting
  ClientOutput out = loop.send(message({"a@example.net"}));
  ASSERT_TRUE(out.finished);
  EXPECT_TRUE(out.finished->recipients[0].transient());
  EXPECT_EQ(out.send, "");
  EXPECT_EQ(loop.session.waiting_for(), ClientWait::greeting);
}

TEST(SmtpClientSessionTest, WaitsAreNamedWithTheirTimeouts) {
  ClientSettings s = settings();
  s.timeouts.greeting = std::chrono::seconds(1);
  s.timeouts.ehlo = std::chrono::seconds(2);
  s.timeouts.mail = std::chrono::seconds(3);
  s.timeouts.data_init = std::chrono::seconds(4);
  s.timeouts.data_term = std::chrono::seconds(5);
  s.timeouts.rset = std::chrono::seconds(6);
  Loop loop(s);
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(1));
  loop.server(kGreeting);
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(2));
  loop.server(kEhloPlain);
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::milliseconds(0));
  loop.send(message({"a@example.net"}));
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(3));
  loop.server("250 ok\r\n");
  loop.server("250 ok\r\n");
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(4));
  loop.server("354 go\r\n");
  EXPECT_EQ(loop.session.timeout_for_wait(), std::chrono::seconds(5));
  EXPECT_STREQ(to_string(loop.session.waiting_for()), "data_term");
  EXPECT_STREQ(to_string(ClientWait::none), "none");
  EXPECT_STREQ(to_string(ClientWait::greeting), "greeting");
  EXPECT_STREQ(to_string(ClientWait::rcpt), "rcpt");
  EXPECT_STREQ(to_string(ClientWait::data_block), "data_block");
  EXPECT_STREQ(to_string(ClientWait::quit), "quit");
}

}  // namespace
}  // namespace ringmail::mta
