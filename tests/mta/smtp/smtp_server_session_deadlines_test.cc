// Tests of the session deadlines that a trickling client cannot extend:
// the command line deadline, the minimum body data rate (DATA and BDAT) and
// the STARTTLS handshake deadline. The clock is injected with set_now(); the
// test plays the shard's tick by calling check_deadlines().
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "mta/smtp/smtp_server_session.h"

namespace ringmail::mta {
namespace {

using std::chrono::seconds;

constexpr int64_t kStart = 1767225600000;  // 2026-01-01 00:00:00 UTC
const char* const kTimeout = "421 4.4.2 mx.test Error: timeout exceeded\r\n";
const char* const kSlow = "421 4.4.2 mx.test Error: data rate too low\r\n";

SessionSettings settings() {
  SessionSettings s;
  s.hostname = "mx.test";
  s.listener_name = "relay";
  s.mode = SessionMode::relay;
  s.starttls_available = true;
  s.command_timeout = seconds(60);
  s.tls_handshake_timeout = seconds(10);
  s.min_data_rate = 1024;
  s.data_rate_grace = seconds(30);
  return s;
}

ConnectionInfo client() {
  ConnectionInfo c;
  c.peer_ip = "192.0.2.1";
  c.relay_network = "192.0.2.0/24";
  c.now_unix_ms = kStart;
  return c;
}

// The shard, with a clock the test moves: feeds bytes at the current time,
// ticks, and records replies, close and commits (held unless answered).
class Clock {
 public:
  explicit Clock(SessionSettings s = settings()) : session(std::move(s), client()) {
    session.set_now(now);
    session.start();
  }
  void advance(int64_t ms) {
    now += ms;
    session.set_now(now);
  }
  std::string send(std::string_view bytes) { return absorb(session.receive(bytes)); }
  std::string tick() { return absorb(session.check_deadlines()); }
  // Sends `bytes` one octet every `gap_ms`, ticking after each; stops when
  // the session closes. Returns everything the client read.
  std::string trickle(std::string_view bytes, int64_t gap_ms) {
    std::string replies;
    for (char c : bytes) {
      if (closed) break;
      advance(gap_ms);
      replies += tick();
      if (!closed) replies += send(std::string_view(&c, 1));
    }
    return replies;
  }
  std::string absorb(SessionOutput out) {
    if (out.close) closed = true;
    if (out.commit) ++commits;
    return std::move(out.replies);
  }
  std::string commit() {
    CommitResult r;
    r.status = CommitResult::Status::committed;
    return absorb(session.commit_finished(r));
  }

  int64_t now = kStart;
  SmtpServerSession session;
  bool closed = false;
  int commits = 0;
};

const char* const kEnvelope =
    "EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n";

TEST(SmtpSessionDeadlines, CommandLineTrickledOneByteEvery5sIsCutAfterTheTimeout) {
  struct Case {
    const char* name;
    const char* prefix;  // complete lines, sent at once
    std::string burst;   // the start of the incomplete line, sent at once 5 s later
  };
  const Case cases[] = {
      {"EHLO", "", "EHLO "},
      {"line being discarded as too long", "", std::string(1100, 'x')},
      {"BDAT command line", kEnvelope, "BDAT 10 LAST"},
  };
  for (const Case& c : cases) {
    Clock clock;
    if (*c.prefix) clock.send(c.prefix);  // send("") would mean bytes without plaintext
    clock.advance(5000);
    std::string replies = clock.send(c.burst);
    const int64_t first_byte = clock.now;
    replies += clock.trickle(std::string(100, 'x'), 5000);
    EXPECT_TRUE(clock.closed) << c.name;
    EXPECT_NE(replies.find(kTimeout), std::string::npos) << c.name << ": " << replies;
    // Cut at the first tick at or after 60 s from the first byte.
    EXPECT_EQ(clock.now - first_byte, 60000) << c.name;
  }
}

TEST(SmtpSessionDeadlines, AuthContinuationLineHasTheDeadlineToo) {
  SessionSettings s = settings();
  s.mode = SessionMode::submission;
  s.auth_available = true;
  s.require_tls_for_auth = false;
  Clock clock(s);
  EXPECT_NE(clock.send("EHLO c.test\r\nAUTH PLAIN\r\n").find("334 "), std::string::npos);
  std::string replies = clock.trickle(std::string(40, 'A'), 5000);
  EXPECT_TRUE(clock.closed);
  EXPECT_NE(replies.find(kTimeout), std::string::npos) << replies;
}

TEST(SmtpSessionDeadlines, EachCompleteLineStartsAFreshDeadline) {
  Clock clock;
  // A whole pipelined burst with a partial line at its end: the partial
  // line's clock starts when its first byte arrives.
  clock.send("EHLO c.test\r\nNOOP\r\nNO");
  clock.advance(59000);
  EXPECT_EQ(clock.tick(), "");
  clock.send("OP\r\nNOOP\r");  // completes one line, starts the next
  clock.advance(59000);
  EXPECT_EQ(clock.tick(), "");
  EXPECT_EQ(clock.send("\n"), "250 2.0.0 Ok\r\n");
  clock.advance(10 * 60000);
  EXPECT_EQ(clock.tick(), "");  // nothing pending: idle, not the command deadline
  EXPECT_FALSE(clock.closed);
}

TEST(SmtpSessionDeadlines, IdleClientIsLeftToTheIdleTimeout) {
  Clock clock;
  clock.send("EHLO c.test\r\n");
  for (int i = 0; i < 20; ++i) {
    clock.advance(30000);
    EXPECT_EQ(clock.tick(), "");
  }
  EXPECT_FALSE(clock.closed);
}

TEST(SmtpSessionDeadlines, CiphertextWithoutPlaintextStartsTheDeadline) {
  Clock clock;
  clock.send("EHLO c.test\r\n");
  clock.advance(1000);
  clock.send("");  // a partial TLS record
  clock.advance(30000);
  clock.send("");
  clock.advance(29999);
  EXPECT_EQ(clock.tick(), "");
  clock.advance(1);
  EXPECT_EQ(clock.tick(), kTimeout);
  EXPECT_TRUE(clock.closed);
}

TEST(SmtpSessionDeadlines, WaitingForTheCommitIsNotCut) {
  Clock clock;
  clock.send(std::string(kEnvelope) + "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nNO");
  ASSERT_EQ(clock.commits, 1);
  for (int i = 0; i < 10; ++i) {
    clock.advance(30000);
    EXPECT_EQ(clock.tick(), "");  // neither the pipelined partial line nor the body rate
  }
  EXPECT_NE(clock.commit().find("250 2.0.0 Ok: queued as"), std::string::npos);
  // The partial line's clock starts once the session reads again.
  clock.advance(59000);
  EXPECT_EQ(clock.tick(), "");
  clock.advance(1000);
  EXPECT_EQ(clock.tick(), kTimeout);
}

TEST(SmtpSessionDeadlines, BodyDataRate) {
  struct Case {
    const char* name;
    int64_t gap_ms;  // between chunks of 1 KiB
    int chunks;
    bool cut;
  };
  const Case cases[] = {
      {"fast body", 100, 400, false},
      {"just above the minimum", 900, 60, false},
      {"slow body, cut after the grace", 2000, 40, true},
  };
  for (const Case& c : cases) {
    Clock clock;
    clock.send(std::string(kEnvelope) + "DATA\r\nSubject: x\r\n\r\n");
    const int64_t began = clock.now;
    const std::string line = std::string(510, 'a') + "\r\n" + std::string(510, 'b') + "\r\n";
    std::string replies;
    for (int i = 0; i < c.chunks && !clock.closed; ++i) {
      clock.advance(c.gap_ms);
      replies += clock.tick();
      if (!clock.closed) replies += clock.send(line);
    }
    if (!clock.closed) replies += clock.send(".\r\n");
    EXPECT_EQ(clock.closed, c.cut) << c.name << ": " << replies;
    if (c.cut) {
      EXPECT_NE(replies.find(kSlow), std::string::npos) << c.name;
      EXPECT_EQ(clock.commits, 0) << c.name;
      EXPECT_GT(clock.now - began, 30000) << c.name;  // never within the grace
      EXPECT_LE(clock.now - began, 32000) << c.name;
    } else {
      EXPECT_EQ(clock.commits, 1) << c.name << ": " << replies;
    }
  }
}

TEST(SmtpSessionDeadlines, ByteTrickleInsideDataIsCut) {
  Clock clock;
  clock.send(std::string(kEnvelope) + "DATA\r\n");
  std::string replies = clock.trickle(std::string(100, 'x'), 5000);
  EXPECT_TRUE(clock.closed);
  EXPECT_EQ(replies, kSlow);
  EXPECT_EQ(clock.now - kStart, 35000);  // the first tick past the 30 s grace
}

TEST(SmtpSessionDeadlines, BdatRateRunsAcrossChunks) {
  Clock clock;
  clock.send(kEnvelope);
  const int64_t began = clock.now;
  std::string replies;
  // Each chunk is quick, but the pauses between them are long: 100 octets
  // every 10 s is far below 1 KiB/s over the message.
  for (int i = 0; i < 10 && !clock.closed; ++i) {
    replies += clock.send("BDAT 100\r\n" + std::string(100, 'b'));
    clock.advance(10000);
    replies += clock.tick();
  }
  EXPECT_TRUE(clock.closed) << replies;
  EXPECT_NE(replies.find(kSlow), std::string::npos) << replies;
  EXPECT_EQ(clock.now - began, 40000);
}

TEST(SmtpSessionDeadlines, RateClockStopsAtTheEndOfTheMessage) {
  Clock clock;
  clock.send(std::string(kEnvelope) + "BDAT 5 LAST\r\nhello");
  ASSERT_EQ(clock.commits, 1);
  clock.commit();
  for (int i = 0; i < 4; ++i) {
    clock.advance(30000);
    EXPECT_EQ(clock.tick(), "");
  }
  EXPECT_FALSE(clock.closed);
}

TEST(SmtpSessionDeadlines, ZeroMinimumRateNeverCuts) {
  SessionSettings s = settings();
  s.min_data_rate = 0;
  Clock clock(s);
  clock.send(std::string(kEnvelope) + "DATA\r\n");
  clock.trickle(std::string(40, 'x'), 5000);
  EXPECT_FALSE(clock.closed);
}

TEST(SmtpSessionDeadlines, StarttlsHandshakeDeadlineClosesWithoutAReply) {
  Clock clock;
  const std::string replies = clock.send("EHLO c.test\r\nSTARTTLS\r\n");
  EXPECT_NE(replies.find("220 2.0.0 Ready to start TLS"), std::string::npos) << replies;
  clock.advance(9999);
  EXPECT_EQ(clock.tick(), "");
  EXPECT_FALSE(clock.closed);
  clock.advance(1);
  EXPECT_EQ(clock.tick(), "");
  EXPECT_TRUE(clock.closed);
}

TEST(SmtpSessionDeadlines, FinishedHandshakeStopsItsDeadline) {
  Clock clock;
  clock.send("EHLO c.test\r\nSTARTTLS\r\n");
  clock.advance(5000);
  clock.session.tls_established("TLSv1.3 TLS_AES_128_GCM_SHA256");
  clock.advance(60000);
  EXPECT_EQ(clock.tick(), "");
  EXPECT_FALSE(clock.closed);
}

}  // namespace
}  // namespace ringmail::mta
