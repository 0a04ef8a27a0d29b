// Tests of the tenant submission limit at MAIL FROM: the session asks its
// SubmissionGate once per transaction for the tenant of the session (the
// relay_networks entry, or the AUTH user), only after every other MAIL
// check passed, and answers a refusal with 452 4.7.1 naming the limit;
// the session goes on. The gate here is a table of allowances.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mta/smtp/smtp_server_session.h"

namespace ringmail::mta {
namespace {

// Admits `allowance[tenant]` messages (unlisted tenants: any), then refuses
// with a limit of "3/h"; records every tenant asked.
class TableGate final : public SubmissionGate {
 public:
  policy::SubmissionVerdict admit_message(std::string_view tenant) override {
    asked.emplace_back(tenant);
    auto it = allowance.find(std::string(tenant));
    if (it == allowance.end() || it->second > 0) {
      if (it != allowance.end()) --it->second;
      return {};
    }
    return policy::SubmissionVerdict{false, "3/h", std::chrono::minutes(20)};
  }
  std::map<std::string, int> allowance;
  std::vector<std::string> asked;
};

SessionSettings settings(SessionMode mode, SubmissionGate* gate) {
  SessionSettings s;
  s.hostname = "mx.test";
  s.listener_name = mode == SessionMode::relay ? "relay" : "submission";
  s.mode = mode;
  s.auth_available = true;
  s.require_tls_for_auth = false;
  s.max_message_size = 64 * 1024;
  s.submission_gate = gate;
  return s;
}

ConnectionInfo client(std::string relay_network = "127.0.0.0/8") {
  ConnectionInfo c;
  c.peer_ip = "127.0.0.1";
  c.relay_network = std::move(relay_network);
  c.now_unix_ms = 1767225600000;
  return c;
}

// Plays the event loop: commits and AUTH checks succeed at once.
std::string play(SmtpServerSession& session, std::string_view bytes) {
  SessionOutput out = session.receive(bytes);
  std::string replies = out.replies;
  if (out.commit) {
    CommitResult committed;
    committed.status = CommitResult::Status::committed;
    replies += session.commit_finished(committed).replies;
  }
  if (out.auth) replies += session.auth_finished(AuthResult{AuthResult::Status::ok}).replies;
  return replies;
}

std::string last_line(const std::string& replies) {
  const size_t end = replies.size() >= 2 ? replies.size() - 2 : 0;
  const size_t start = replies.rfind("\r\n", end == 0 ? 0 : end - 1);
  return start == std::string::npos ? replies : replies.substr(start + 2);
}

const char* const kRefusedRelay =
    "452 4.7.1 Tenant 127.0.0.0/8 is over its submission limit of 3/h; try again later\r\n";

TEST(SmtpSessionTenantLimit, RelayTenantIsTheRelayNetworkAndCountsOncePerTransaction) {
  TableGate gate;
  gate.allowance["127.0.0.0/8"] = 1;
  SmtpServerSession session(settings(SessionMode::relay, &gate), client());
  session.start();
  play(session, "EHLO a\r\n");
  EXPECT_EQ(play(session,
                 "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
                 "RCPT TO:<c@example.net>\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(last_line(play(session, "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")).substr(0, 24),
            "250 2.0.0 Ok: queued as ");
  // The second transaction is over the limit; what follows is out of
  // sequence, and the session goes on.
  EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"),
            std::string(kRefusedRelay) +
                "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\n"), kRefusedRelay);
  EXPECT_EQ(play(session, "NOOP\r\n"), "250 2.0.0 Ok\r\n");
  gate.allowance["127.0.0.0/8"] = 1;  // a token came
  EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(gate.asked, (std::vector<std::string>(4, "127.0.0.0/8")));
}

TEST(SmtpSessionTenantLimit, SubmissionTenantIsTheAuthUser) {
  TableGate gate;
  gate.allowance["app1"] = 0;
  SmtpServerSession session(settings(SessionMode::submission, &gate), client());
  session.start();
  play(session, "EHLO a\r\n");
  EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\n"),
            "530 5.7.0 Authentication required\r\n");
  EXPECT_TRUE(gate.asked.empty());
  play(session, "AUTH PLAIN AGFwcDEAc2VjcmV0\r\n");  // app1
  EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\n"),
            "452 4.7.1 Tenant app1 is over its submission limit of 3/h; try again later\r\n");
  EXPECT_EQ(gate.asked, std::vector<std::string>{"app1"});
}

TEST(SmtpSessionTenantLimit, OtherRefusalsTakeNoTokenAndNoTenantIsNeverAsked) {
  struct Case {
    const char* name;
    std::string relay_network;
    const char* commands;
    size_t asked;
  };
  const std::vector<Case> cases = {
      {"syntax error", "127.0.0.0/8", "MAIL FROM:a@example.org\r\n", 0},
      {"declared size over the limit", "127.0.0.0/8", "MAIL FROM:<a@example.org> SIZE=65537\r\n",
       0},
      {"nested MAIL", "127.0.0.0/8", "MAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\n",
       1},
      {"outside relay_networks (no tenant)", "", "MAIL FROM:<a@example.org>\r\n", 0},
      {"RSET then MAIL again", "127.0.0.0/8",
       "MAIL FROM:<a@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\n", 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TableGate gate;
    SmtpServerSession session(settings(SessionMode::relay, &gate), client(c.relay_network));
    session.start();
    play(session, "EHLO a\r\n");
    play(session, c.commands);
    EXPECT_EQ(gate.asked.size(), c.asked);
  }
}

TEST(SmtpSessionTenantLimit, WithoutAGateMailIsNotLimited) {
  SmtpServerSession session(settings(SessionMode::relay, nullptr), client());
  session.start();
  play(session, "EHLO a\r\n");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(play(session, "MAIL FROM:<a@example.org>\r\nRSET\r\n"),
              "250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n");
  }
}

}  // namespace
}  // namespace ringmail::mta
