// MilterClient against the real libmilter test milter (tests/milter) over
// TCP and unix sockets, against misbehaving fake milters, and
// apply_milter_modifications() on its own.
#include "mta/milter/milter_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "tests/support/test_milter_process.h"

namespace ringmail::mta {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// The real libmilter test milter built next to the tests.
class TestMilterProcess : public test_support::TestMilterProcess {
 public:
  explicit TestMilterProcess(const std::string& connection, bool subset = false)
      : test_support::TestMilterProcess(std::string(RINGMAIL_BINARY_DIR) + "/test_milter",
                                        connection, subset) {}
};

// A TCP listener that answers every connection with fixed bytes, then
// waits for the client to hang up.
class FakeMilter {
 public:
  explicit FakeMilter(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 8);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (true) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        if (!response_.empty()) (void)::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
        char buffer[4096];
        while (::recv(c, buffer, sizeof(buffer), 0) > 0) {
        }
        ::close(c);
      }
    });
  }
  ~FakeMilter() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  std::string response_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

conf::Milter tcp_milter(uint16_t port,
                        conf::MilterFailure on_failure = conf::MilterFailure::tempfail,
                        conf::Duration timeout = 5s, std::string name = "test") {
  conf::Milter m;
  m.name = std::move(name);
  m.address.host = "127.0.0.1";
  m.address.port = port;
  m.address.text = "127.0.0.1:" + std::to_string(port);
  m.on_failure = on_failure;
  m.timeout = timeout;
  return m;
}

conf::Milter unix_milter(const std::string& path) {
  conf::Milter m;
  m.name = "unix";
  m.address.unix_path = path;
  m.address.text = "unix:" + path;
  return m;
}

MilterJob make_job(const std::string& extra_headers, std::string body = "Hello.\r\n",
                   std::vector<std::string> recipients = {"bob@example.net", "carol@example.net"},
                   std::string sender = "alice@example.test") {
  MilterJob job;
  queue::SpoolMessage& m = job.message;
  m.id.value = "0123456789abcdef0123";
  m.envelope.sender = std::move(sender);
  for (auto& r : recipients) {
    queue::Recipient rcpt;
    rcpt.address = r;
    rcpt.domain = r.substr(r.find('@') + 1);
    m.envelope.recipients.push_back(rcpt);
  }
  m.envelope.recipients[0].dsn_notify = "SUCCESS,FAILURE";
  m.envelope.body_type = "8BITMIME";
  m.meta.listener = "submission";
  m.meta.client_ip = "192.0.2.7";
  m.meta.helo = "client.example";
  m.content = "From: alice@example.test\r\nTo: bob@example.net\r\nSubject: test\r\n message\r\n" +
              extra_headers + "\r\n" + body;
  m.meta.size = m.content.size();
  job.context.hostname = "mx.example.test";
  job.context.daemon_name = "submission";
  job.context.local_ip = "127.0.0.1";
  job.context.client_ip = "192.0.2.7";
  job.context.client_port = 40000;
  job.context.client_hostname = "client.example";
  job.context.helo = "client.example";
  job.context.auth_user = "alice";
  return job;
}

std::vector<std::string> header_values(const std::string& content, const std::string& name) {
  std::vector<std::string> values;
  std::string head = content.substr(0, content.find("\r\n\r\n") + 2);
  size_t pos = 0;
  while (pos < head.size()) {
    size_t eol = head.find("\r\n", pos);
    std::string line = head.substr(pos, eol - pos);
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 &&
        line[name.size()] == ':') {
      size_t start = name.size() + 1;
      while (start < line.size() && line[start] == ' ') ++start;
      values.push_back(line.substr(start));
    }
    pos = eol + 2;
  }
  return values;
}

std::string body_of(const std::string& content) {
  return content.substr(content.find("\r\n\r\n") + 4);
}

std::vector<std::string> recipients_of(const queue::SpoolMessage& m) {
  std::vector<std::string> out;
  for (const auto& r : m.envelope.recipients) out.push_back(r.address);
  return out;
}

class MilterClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(milter_.ready()) << "test_milter did not start"; }
  MilterOutcome run(const MilterJob& job, conf::Duration timeout = 5s) {
    MilterClient client({tcp_milter(milter_.port(), conf::MilterFailure::tempfail, timeout)}, 1);
    return client.run_now(job);
  }
  TestMilterProcess milter_{"inet:0@127.0.0.1"};
};

TEST_F(MilterClientTest, ContinueLeavesTheMessageAloneAndMilterSeesEveryFact) {
  MilterJob job = make_job("X-Test-Mod: report\r\n");
  MilterOutcome out = run(job);
  ASSERT_EQ(out.milters.size(), 1u);
  EXPECT_EQ(out.milters[0].failure, "");
  EXPECT_EQ(out.verdict.action, MilterAction::proceed);
  auto report = header_values(out.message.content, "X-Milter-Report");
  ASSERT_EQ(report.size(), 1u);
  for (const char* fact : {"host=client.example ",
                           "family=4 ",
                           "port=40000 ",
                           "helo=client.example ",
                           "from=<alice@example.test> ",
                           "from_args=[BODY=8BITMIME]",
                           "rcpts=<bob@example.net>,<carol@example.net> ",
                           "rcpt_args=[NOTIFY=SUCCESS,FAILURE]",
                           "j=mx.example.test ",
                           "_=[client.example [192.0.2.7]]",
                           "daemon_name=submission ",
                           "if_addr=127.0.0.1 ",
                           "client_addr=192.0.2.7 ",
                           "client_name=client.example ",
                           "i=0123456789abcdef0123 ",
                           "auth_authen=alice ",
                           "mail_addr=alice@example.test ",
                           "rcpt_addr=bob@example.net ",
                           "headers=4 ",
                           "subject=[test\\n message]",
                           "chunks=1 ",
                           "body_bytes=8 "}) {
    EXPECT_THAT(report[0], HasSubstr(fact));
  }
  // Only the report header was added; everything else is byte-identical.
  EXPECT_EQ(body_of(out.message.content), "Hello.\r\n");
  EXPECT_THAT(out.message.content,
              HasSubstr("Subject: test\r\n message\r\nX-Test-Mod: report\r\n"));
  EXPECT_EQ(out.message.meta.size, out.message.content.size());
}

TEST_F(MilterClientTest, EveryEndOfMessageAction) {
  struct Case {
    const char* action;
    MilterAction expected;
    const char* reply;
  };
  for (const Case& c :
       {Case{"continue", MilterAction::proceed, ""}, Case{"accept", MilterAction::accept, ""},
        Case{"reject", MilterAction::reject, "550 5.7.1 Command rejected"},
        Case{"tempfail", MilterAction::tempfail, "451 4.7.1 Service unavailable - try again later"},
        Case{"discard", MilterAction::discard, ""},
        Case{"replycode", MilterAction::replycode, "550 5.7.9 custom text"},
        Case{"quarantine", MilterAction::quarantine, ""}}) {
    MilterOutcome out = run(make_job(std::string("X-Test-Action: ") + c.action + "\r\n"));
    EXPECT_EQ(out.verdict.action, c.expected) << c.action;
    EXPECT_EQ(out.verdict.reply, c.reply) << c.action;
    EXPECT_EQ(out.milters[0].failure, "") << c.action;
    if (c.expected == MilterAction::quarantine) {
      EXPECT_EQ(out.verdict.quarantine_reason, "held by test");
    }
  }
}

TEST_F(MilterClientTest, HeaderModifications) {
  MilterOutcome out =
      run(make_job("X-Remove-Me: 1\r\nX-Remove-Me: 2\r\nX-Test-Mod: "
                   "addheader,insheader,chgheader,delheader\r\n"));
  ASSERT_EQ(out.verdict.action, MilterAction::proceed) << out.milters[0].failure;
  const std::string& c = out.message.content;
  EXPECT_EQ(c.rfind("X-Milter-First: inserted\r\nFrom: alice@example.test\r\n", 0), 0u) << c;
  EXPECT_THAT(header_values(c, "X-Milter"), ElementsAre("added"));
  EXPECT_THAT(header_values(c, "Subject"), ElementsAre("changed subject"));
  EXPECT_THAT(header_values(c, "X-Remove-Me"), ElementsAre("2"));
  EXPECT_THAT(c, HasSubstr("X-Milter: added\r\n\r\nHello.\r\n"));
  EXPECT_EQ(out.verdict.modifications.size(), 4u);
}

TEST_F(MilterClientTest, EnvelopeAndBodyModifications) {
  MilterOutcome out = run(make_job("X-Test-Mod: addrcpt,addrcptpar,delrcpt,replbody,chgfrom\r\n"));
  ASSERT_EQ(out.verdict.action, MilterAction::proceed) << out.milters[0].failure;
  EXPECT_THAT(recipients_of(out.message),
              ElementsAre("carol@example.net", "added@example.net", "added-par@example.net"));
  EXPECT_EQ(out.message.envelope.recipients[1].domain, "example.net");
  EXPECT_EQ(out.message.envelope.recipients[2].dsn_notify, "NEVER");
  EXPECT_EQ(out.message.envelope.sender, "changed@example.test");
  EXPECT_EQ(body_of(out.message.content), "replaced body\r\n");
  EXPECT_THAT(header_values(out.message.content, "From"), ElementsAre("alice@example.test"));
}

TEST_F(MilterClientTest, ProgressKeepsASlowMilterAlive) {
  // Three progress reports 700 ms apart: 2.1 s in eom, each gap under 1.5 s.
  MilterOutcome out = run(make_job("X-Test-Mod: progress,addheader\r\n"), 1500ms);
  EXPECT_EQ(out.milters[0].failure, "");
  EXPECT_EQ(out.verdict.action, MilterAction::proceed);
  EXPECT_EQ(out.verdict.progress_reports, 3u);
  EXPECT_THAT(header_values(out.message.content, "X-Milter"), ElementsAre("added"));
}

TEST_F(MilterClientTest, EnvelopeStageReplies) {
  MilterOutcome one = run(
      make_job("X-Test-Mod: addheader\r\n", "Hi\r\n", {"reject-me@example.net", "ok@example.net"}));
  EXPECT_EQ(one.verdict.action, MilterAction::proceed);
  EXPECT_THAT(recipients_of(one.message), ElementsAre("ok@example.net"));
  ASSERT_EQ(one.verdict.rejected_recipients.size(), 1u);
  EXPECT_EQ(one.verdict.rejected_recipients[0].reply, "550 5.1.1 no such user here");

  MilterOutcome all = run(make_job("", "Hi\r\n", {"reject-me@example.net"}));
  EXPECT_EQ(all.verdict.action, MilterAction::reject);
  EXPECT_EQ(all.verdict.reply, "550 5.1.1 no such user here");

  MilterOutcome sender = run(make_job("", "Hi\r\n", {"ok@example.net"}, "reject-me@example.test"));
  EXPECT_EQ(sender.verdict.action, MilterAction::reject);
  EXPECT_EQ(sender.verdict.reply, "550 5.7.1 Command rejected");

  MilterOutcome deferred =
      run(make_job("", "Hi\r\n", {"ok@example.net"}, "tempfail-me@example.test"));
  EXPECT_EQ(deferred.verdict.action, MilterAction::replycode);
  EXPECT_EQ(deferred.verdict.reply, "451 4.7.2 sender deferred");
}

TEST_F(MilterClientTest, LargeBodyArrivesInChunksOfAtMost64KiB) {
  std::string body;
  while (body.size() < 150000) body += std::string(78, 'x') + "\r\n";
  MilterOutcome out = run(make_job("X-Test-Mod: report\r\n", body));
  ASSERT_EQ(out.verdict.action, MilterAction::proceed) << out.milters[0].failure;
  auto report = header_values(out.message.content, "X-Milter-Report");
  ASSERT_EQ(report.size(), 1u);
  EXPECT_THAT(report[0], HasSubstr("chunks=3 "));
  EXPECT_THAT(report[0], HasSubstr("body_bytes=" + std::to_string(body.size())));
  EXPECT_THAT(report[0], HasSubstr("max_chunk=65535"));
  EXPECT_EQ(body_of(out.message.content), body);
}

TEST_F(MilterClientTest, DestructionCompletesQueuedJobsWithTempfail) {
  std::atomic<int> tempfails{0};
  std::atomic<int> calls{0};
  auto started = std::chrono::steady_clock::now();
  {
    MilterClient client({tcp_milter(milter_.port(), conf::MilterFailure::accept, 10s)}, 1);
    for (int i = 0; i < 3; ++i) {
      client.run(std::make_shared<MilterJob>(make_job("X-Test-Stall: 5\r\n")),
                 [&](MilterOutcome out) {
                   ++calls;
                   if (out.verdict.action == MilterAction::tempfail) ++tempfails;
                 });
    }
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(tempfails.load(), 3);  // interrupted: tempfail even with on_failure accept
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
}

TEST_F(MilterClientTest, RunCallsDoneOnAWorkerThread) {
  MilterClient client({tcp_milter(milter_.port())});
  std::promise<std::pair<MilterOutcome, std::thread::id>> first, second;
  client.run(std::make_shared<MilterJob>(make_job("X-Test-Mod: addheader\r\n")),
             [&](MilterOutcome out) {
               first.set_value({std::move(out), std::this_thread::get_id()});
             });
  client.run(std::make_shared<MilterJob>(make_job("X-Test-Action: reject\r\n")),
             [&](MilterOutcome out) {
               second.set_value({std::move(out), std::this_thread::get_id()});
             });
  auto a = first.get_future().get();
  auto b = second.get_future().get();
  EXPECT_NE(a.second, std::this_thread::get_id());
  EXPECT_THAT(header_values(a.first.message.content, "X-Milter"), ElementsAre("added"));
  EXPECT_EQ(b.first.verdict.action, MilterAction::reject);
}

TEST(MilterClientSocket, UnixSocketMilter) {
  std::string path = "/tmp/ringmail-milter-test-" + std::to_string(::getpid()) + ".sock";
  TestMilterProcess milter("unix:" + path);
  ASSERT_TRUE(milter.ready());
  MilterClient client({unix_milter(path)}, 1);
  MilterOutcome out =
      client.run_now(make_job("X-Test-Mod: addheader,report\r\nX-Test-Action: quarantine\r\n"));
  std::filesystem::remove(path);
  EXPECT_EQ(out.milters[0].failure, "");
  EXPECT_EQ(out.verdict.action, MilterAction::quarantine);
  EXPECT_THAT(header_values(out.message.content, "X-Milter"), ElementsAre("added"));
}

TEST(MilterClientSocket, NegotiatedSubsetSkipsHeloBodyAndMacros) {
  TestMilterProcess milter("inet:0@127.0.0.1", /*subset=*/true);
  ASSERT_TRUE(milter.ready());
  MilterClient client({tcp_milter(milter.port())}, 1);
  MilterOutcome out = client.run_now(make_job("X-Test-Mod: report,addheader\r\n"));
  ASSERT_EQ(out.milters[0].failure, "");
  auto report = header_values(out.message.content, "X-Milter-Report");
  ASSERT_EQ(report.size(), 1u);
  EXPECT_THAT(report[0], HasSubstr("helo=- "));             // SMFIP_NOHELO
  EXPECT_THAT(report[0], HasSubstr("chunks=0 "));           // SMFIP_NOBODY
  EXPECT_THAT(report[0], HasSubstr("headers=4 "));          // SMFIP_NR_HDR: sent, not answered
  EXPECT_THAT(report[0], HasSubstr("j=mx.example.test "));  // in the connect macro list
  EXPECT_THAT(report[0], HasSubstr("daemon_name=submission "));
  EXPECT_THAT(report[0], HasSubstr("client_addr=- "));  // not in the list
  EXPECT_THAT(report[0], HasSubstr("i=0123456789abcdef0123 "));
}

TEST(MilterClientSocket, TwoMiltersRunInOrderAndSeeEachOthersChanges) {
  TestMilterProcess first("inet:0@127.0.0.1");
  TestMilterProcess second("inet:0@127.0.0.1");
  ASSERT_TRUE(first.ready() && second.ready());
  MilterClient client({tcp_milter(first.port(), conf::MilterFailure::tempfail, 5s, "first"),
                       tcp_milter(second.port(), conf::MilterFailure::tempfail, 5s, "second")},
                      1);
  MilterOutcome out = client.run_now(make_job("X-Test-Mod: addheader,report,addrcpt\r\n"));
  ASSERT_EQ(out.milters.size(), 2u);
  EXPECT_EQ(out.milters[0].milter, "first");
  EXPECT_EQ(out.milters[1].milter, "second");
  auto reports = header_values(out.message.content, "X-Milter-Report");
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_THAT(reports[0], HasSubstr("headers=4 "));
  EXPECT_THAT(reports[1], HasSubstr("headers=6 "));  // plus X-Milter and the first report
  EXPECT_THAT(reports[1],
              HasSubstr("rcpts=<bob@example.net>,<carol@example.net>,<added@example.net> "));
  EXPECT_THAT(header_values(out.message.content, "X-Milter"), ElementsAre("added", "added"));
  EXPECT_THAT(recipients_of(out.message),
              ElementsAre("bob@example.net", "carol@example.net", "added@example.net"));

  // A refusal by the first milter ends the run: the second is never asked.
  MilterOutcome refused = client.run_now(make_job("X-Test-Action: reject\r\n"));
  EXPECT_EQ(refused.verdict.action, MilterAction::reject);
  EXPECT_EQ(refused.milters.size(), 1u);
}

TEST(MilterClientFailure, UnreachableMilterFollowsOnFailure) {
  uint16_t port = closed_port();
  MilterJob job = make_job("");
  MilterOutcome tempfail =
      MilterClient({tcp_milter(port, conf::MilterFailure::tempfail)}, 1).run_now(job);
  EXPECT_EQ(tempfail.verdict.action, MilterAction::tempfail);
  EXPECT_EQ(tempfail.verdict.reply, "451 4.7.1 Service unavailable - try again later");
  EXPECT_THAT(tempfail.milters[0].failure, HasSubstr("connect"));

  MilterOutcome reject =
      MilterClient({tcp_milter(port, conf::MilterFailure::reject)}, 1).run_now(job);
  EXPECT_EQ(reject.verdict.action, MilterAction::reject);
  EXPECT_EQ(reject.verdict.reply, "550 5.7.1 Command rejected");

  TestMilterProcess working("inet:0@127.0.0.1");
  ASSERT_TRUE(working.ready());
  MilterOutcome accept =
      MilterClient({tcp_milter(port, conf::MilterFailure::accept, 5s, "down"),
                    tcp_milter(working.port(), conf::MilterFailure::tempfail, 5s, "up")},
                   1)
          .run_now(make_job("X-Test-Mod: addheader\r\n"));
  EXPECT_EQ(accept.verdict.action, MilterAction::proceed);
  EXPECT_NE(accept.milters[0].failure, "");
  EXPECT_THAT(header_values(accept.message.content, "X-Milter"), ElementsAre("added"));
}

TEST(MilterClientFailure, StallTimesOut) {
  TestMilterProcess milter("inet:0@127.0.0.1");
  ASSERT_TRUE(milter.ready());
  auto started = std::chrono::steady_clock::now();
  MilterOutcome out =
      MilterClient({tcp_milter(milter.port(), conf::MilterFailure::reject, 500ms)}, 1)
          .run_now(make_job("X-Test-Stall: 5\r\n"));
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(out.verdict.action, MilterAction::reject);
  EXPECT_EQ(out.verdict.reply, "550 5.7.1 Command rejected");
  EXPECT_THAT(out.milters[0].failure, HasSubstr("timed out at eom"));
  EXPECT_LT(elapsed, 2s);
}

TEST(MilterClientFailure, CrashMidConversation) {
  TestMilterProcess milter("inet:0@127.0.0.1");
  ASSERT_TRUE(milter.ready());
  MilterOutcome out = MilterClient({tcp_milter(milter.port(), conf::MilterFailure::tempfail)}, 1)
                          .run_now(make_job("X-Test-Crash: 1\r\n"));
  EXPECT_EQ(out.verdict.action, MilterAction::tempfail);
  EXPECT_THAT(out.milters[0].failure, HasSubstr("closed"));
}

TEST(MilterClientFailure, GarbageSilenceAndHugePacketsNeverHang) {
  struct Case {
    std::string bytes;
    conf::MilterFailure on_failure;
    MilterAction expected;
    const char* failure;
  };
  std::string optneg_then_junk =
      std::string("\0\0\0\x0dO\0\0\0\x06\0\0\0\0\0\0\0\0", 17) + std::string("\0\0\0\x01Z", 5);
  for (const Case& c :
       {Case{"220 smtp.example ESMTP\r\n", conf::MilterFailure::tempfail, MilterAction::tempfail,
             "protocol error"},
        Case{"", conf::MilterFailure::reject, MilterAction::reject, "timed out at negotiate"},
        Case{std::string("\x04\x00\x00\x01O", 5), conf::MilterFailure::tempfail,
             MilterAction::tempfail, "64 MiB"},
        Case{optneg_then_junk, conf::MilterFailure::reject, MilterAction::reject, "unknown reply"},
        Case{std::string("\0\0\0\x0dO\0\0\0\x06\0\0\0\0\0\0\0\0", 17), conf::MilterFailure::accept,
             MilterAction::proceed, "timed out at connect"}}) {
    FakeMilter fake(c.bytes);
    auto started = std::chrono::steady_clock::now();
    MilterOutcome out =
        MilterClient({tcp_milter(fake.port(), c.on_failure, 400ms)}, 1).run_now(make_job(""));
    EXPECT_EQ(out.verdict.action, c.expected) << c.failure;
    EXPECT_THAT(out.milters[0].failure, HasSubstr(c.failure));
    EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  }
}

// apply_milter_modifications() without a milter.
TEST(MilterModifications, HeaderIndexesFollowSendmail) {
  queue::SpoolMessage m;
  m.content = "Received: a\r\nReceived: b\r\n\tfolded\r\nSubject: s\r\nreceived: c\r\n\r\nbody\n";
  MilterVerdict v;
  using Kind = MilterModification::Kind;
  v.modifications = {{Kind::change_header, 2, "Received", " B", ""},
                     {Kind::change_header, 3, "RECEIVED", "", ""},
                     {Kind::change_header, 5, "Received", " appended", ""},
                     {Kind::change_header, 1, "X-Absent", "", ""},
                     {Kind::insert_header, 1, "X-Ins", " one\ntwo", ""},
                     {Kind::insert_header, 99, "X-Last", " last", ""},
                     {Kind::add_header, 0, "X-Add", " multi\r\nline", ""}};
  apply_milter_modifications(m, v);
  EXPECT_EQ(
      m.content,
      "Received: a\r\nX-Ins: one\r\n\ttwo\r\nReceived: B\r\nSubject: s\r\nReceived: appended\r\n"
      "X-Last: last\r\nX-Add: multi\r\n\tline\r\n\r\nbody\n");
  EXPECT_EQ(m.meta.size, m.content.size());
}

TEST(MilterModifications, BodyAndEnvelope) {
  queue::SpoolMessage m;
  m.content = "Subject: s\r\n\r\nold\r\n";
  m.envelope.sender = "a@example.test";
  for (const char* r : {"Bob@Example.NET", "carol@example.net", "dave@example.net"}) {
    queue::Recipient rcpt;
    rcpt.address = r;
    m.envelope.recipients.push_back(rcpt);
  }
  MilterVerdict v;
  using Kind = MilterModification::Kind;
  v.modifications = {
      {Kind::replace_body, 0, "", "new\nlines\r\nmixed\n", ""},
      {Kind::delete_recipient, 0, "", "Bob@example.net", ""},
      {Kind::delete_recipient, 0, "", "CAROL@example.net", ""},
      {Kind::add_recipient, 0, "", "eve@Example.ORG", "NOTIFY=NEVER ORCPT=rfc822;x@y"},
      {Kind::add_recipient, 0, "", "dave@EXAMPLE.net", ""},
      {Kind::change_sender, 0, "", "", ""}};
  v.rejected_recipients = {{"dave@example.net", "550 5.1.1 no"}};
  apply_milter_modifications(m, v);
  EXPECT_EQ(m.content, "Subject: s\r\n\r\nnew\r\nlines\r\nmixed\r\n");
  // Local parts compare exactly: CAROL@ does not delete carol@.
  EXPECT_THAT(recipients_of(m),
              ElementsAre("carol@example.net", "eve@Example.ORG", "dave@EXAMPLE.net"));
  EXPECT_EQ(m.envelope.recipients[1].domain, "example.org");
  EXPECT_EQ(m.envelope.recipients[1].dsn_notify, "NEVER");
  EXPECT_EQ(m.envelope.recipients[1].dsn_orcpt, "rfc822;x@y");
  EXPECT_EQ(m.envelope.sender, "");
}

}  // namespace
}  // namespace ringmail::mta
