// Tests of policy.return_path in the DeliveryPlanner: under VERP each
// recipient goes in a transaction of its own from b-TOKEN@domain with its
// X-Ringmail-Ref in front of the shared content; Ringmail's DSNs and the
// null sender keep the null sender; verp: false keeps the batching and the
// sender; without return_path nothing changes; a reload that turns VERP on
// splits a job that was made before.
#include <gtest/gtest.h>

#include "conf/config_policy.h"
#include "mta/outbound/delivery_planner.h"
#include "policy/feedback_token.h"
#include "policy/return_path.h"
#include "tests/mta/outbound/delivery_planner_test_support.h"

namespace ringmail::mta::testing {
namespace {

using Strings = std::vector<std::string>;

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::vector<std::string> kKeys = {kKey};

std::shared_ptr<const conf::PolicyConfig> return_path_policy(bool verp) {
  auto policy = std::make_shared<conf::PolicyConfig>();
  conf::ReturnPathConfig rp;
  rp.domain = "returnpath.test";
  rp.verp = verp;
  rp.key.key = kKey;
  policy->return_path = rp;
  return policy;
}

// What one transaction carried, as the receiver would see it.
struct Sent {
  std::string sender;
  Strings recipients;
  std::string header_prefix;
  bool copied_content = false;  // the content is not the committed message's own
};

class ReturnPathPlannerTest : public DeliveryPlannerTest {
 protected:
  ReturnPathPlannerTest() {
    config.delivery.routes = {{"*", smarthost("192.0.2.50", 25)}};
    config.delivery.max_connections_per_site = 1;
  }

  // Commits `m` and runs every transaction on the one connection, each
  // answered 250 for every recipient; returns what went out, in order.
  std::vector<Sent> deliver(DeliveryPlanner& planner,
                            const std::shared_ptr<queue::SpoolMessage>& m) {
    PlannerOutput out = planner.committed({m});
    EXPECT_EQ(out.open.size(), 1u);
    if (out.open.empty()) return {};
    const ConnectionId c = out.open[0].id;
    std::vector<Sent> sent;
    out = planner.connection_ready(c);
    while (!out.start.empty()) {
      const OutboundMessage& o = *out.start[0].message;
      Sent s{o.sender, {}, o.header_prefix, o.content && o.content->data() != m->content.data()};
      for (const auto& r : o.recipients) s.recipients.push_back(r.address);
      sent.push_back(s);
      std::vector<SmtpReply> ok(o.recipients.size(), reply(250, "2.0.0", "ok"));
      planner.transaction_done(c, result(ok), "");
      out = planner.connection_ready(c);
    }
    return sent;
  }

  std::shared_ptr<queue::SpoolMessage> three(std::string sender = "app@sender.test",
                                             std::string listener = "relay") {
    auto m =
        std::make_shared<queue::SpoolMessage>(queue::testing::make_test_message(3, 512, "spring"));
    m->envelope.sender = std::move(sender);
    for (size_t i = 0; i < 3; ++i) {
      m->envelope.recipients[i].address = "u" + std::to_string(i) + "@a.test";
      m->envelope.recipients[i].domain = "a.test";
      m->envelope.recipients[i].dsn_notify.clear();
    }
    m->meta.listener = std::move(listener);
    m->meta.received_unix_ms = clock.unix_ms();
    store(*m);
    return m;
  }
};

// The recipient index a VERP sender names ("" when it is no VERP address).
std::optional<uint32_t> verp_index(const std::string& sender, const std::string& message_id) {
  const size_t at = sender.find('@');
  if (at == std::string::npos || sender.substr(at + 1) != "returnpath.test") return std::nullopt;
  auto decoded = policy::decode_verp_local_part(sender.substr(0, at), kKeys);
  if (!decoded.token || decoded.token->message.value != message_id) return std::nullopt;
  return decoded.token->recipient;
}

std::optional<uint32_t> ref_index(const std::string& prefix, const std::string& message_id) {
  const std::string head = std::string(policy::kRefHeaderName) + ": ";
  if (!prefix.starts_with(head) || !prefix.ends_with("\r\n")) return std::nullopt;
  auto decoded = policy::decode_ref_token(
      std::string_view(prefix).substr(head.size(), prefix.size() - head.size() - 2), kKeys);
  if (!decoded.token || decoded.token->message.value != message_id) return std::nullopt;
  return decoded.token->recipient;
}

TEST_F(ReturnPathPlannerTest, TransactionsSendersAndHeadersByCase) {
  const uint32_t kSeveral = policy::kRefSeveralRecipients;
  const std::vector<Strings> kBatch = {{"u0@a.test", "u1@a.test", "u2@a.test"}};
  const std::vector<Strings> kEach = {{"u0@a.test"}, {"u1@a.test"}, {"u2@a.test"}};
  const std::string kApp = "app@sender.test";
  const struct {
    const char* name;
    std::shared_ptr<const conf::PolicyConfig> policy;  // null: no policy section at all
    std::string sender;
    std::string listener;
    std::vector<Strings> transactions;
    bool verp_senders;                          // else every transaction has the message's sender
    std::vector<std::optional<uint32_t>> refs;  // per transaction; nullopt: no header
  } kCases[] = {
      {"no policy", nullptr, kApp, "relay", kBatch, false, {std::nullopt}},
      {"no return_path",
       std::make_shared<conf::PolicyConfig>(),
       kApp,
       "relay",
       kBatch,
       false,
       {std::nullopt}},
      {"verp: one transaction per recipient",
       return_path_policy(true),
       kApp,
       "relay",
       kEach,
       true,
       {0, 1, 2}},
      {"verp, null sender stays null and batched",
       return_path_policy(true),
       "",
       "relay",
       kBatch,
       false,
       {kSeveral}},
      {"verp, Ringmail's DSN is never VERPed",
       return_path_policy(true),
       "",
       "dsn",
       kBatch,
       false,
       {std::nullopt}},
      {"verp: false keeps sender and batch",
       return_path_policy(false),
       kApp,
       "relay",
       kBatch,
       false,
       {kSeveral}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    conf::Config cfg = config;
    cfg.policy = c.policy;
    DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(cfg), 1);
    auto m = three(c.sender, c.listener);
    std::vector<Sent> sent = deliver(planner, m);
    ASSERT_EQ(sent.size(), c.transactions.size());
    for (size_t i = 0; i < sent.size(); ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(sent[i].recipients, c.transactions[i]);
      EXPECT_FALSE(sent[i].copied_content) << "the body is shared, not copied";
      if (c.verp_senders) {
        const auto index = static_cast<uint32_t>(sent[i].recipients[0][1] - '0');
        EXPECT_EQ(verp_index(sent[i].sender, m->id.value), index) << sent[i].sender;
      } else {
        EXPECT_EQ(sent[i].sender, c.sender);
      }
      if (c.refs[i]) {
        EXPECT_EQ(ref_index(sent[i].header_prefix, m->id.value), c.refs[i])
            << sent[i].header_prefix;
      } else {
        EXPECT_EQ(sent[i].header_prefix, "");
      }
    }
  }
}

TEST_F(ReturnPathPlannerTest, AVerpBounceStillGoesToTheOriginalSenderFromTheNullSender) {
  config.policy = return_path_policy(true);
  DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
  auto m = three();
  PlannerOutput out = planner.committed({m});
  const ConnectionId c = only_open(out);
  out = planner.connection_ready(c);
  ASSERT_EQ(out.start.size(), 1u);
  EXPECT_TRUE(verp_index(out.start[0].message->sender, m->id.value));
  out = planner.transaction_done(c, result({reply(550, "5.1.1", "no such user")}), "");
  ASSERT_EQ(out.dsns.size(), 1u);
  const queue::SpoolMessage& dsn = *out.dsns[0];
  EXPECT_EQ(dsn.envelope.sender, "");
  EXPECT_EQ(dsn.meta.listener, queue::kDsnListener);
  ASSERT_EQ(dsn.envelope.recipients.size(), 1u);
  EXPECT_EQ(dsn.envelope.recipients[0].address, "app@sender.test");

  // Delivered in turn, the DSN keeps the null sender and gets no header.
  auto stored = std::make_shared<queue::SpoolMessage>(dsn);
  store(*stored);
  DeliveryPlanner next(spool, clock, std::make_shared<const conf::Config>(config), 2);
  std::vector<Sent> sent = deliver(next, stored);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].sender, "");
  EXPECT_EQ(sent[0].recipients, Strings{"app@sender.test"});
  EXPECT_EQ(sent[0].header_prefix, "");
}

TEST_F(ReturnPathPlannerTest, AReloadThatTurnsVerpOnSplitsAJobMadeBefore) {
  DeliveryPlanner planner(spool, clock, std::make_shared<const conf::Config>(config), 1);
  auto m = three();
  const ConnectionId c = only_open(planner.committed({m}));  // one job of three
  conf::Config verp = config;
  verp.policy = return_path_policy(true);
  planner.set_config(std::make_shared<const conf::Config>(verp));

  PlannerOutput out = planner.connection_ready(c);
  ASSERT_EQ(started(out), (std::vector<Strings>{{"u0@a.test"}}));
  EXPECT_EQ(verp_index(out.start[0].message->sender, m->id.value), 0u);
  planner.transaction_done(c, result({reply(250, "2.0.0", "ok")}), "");
  std::vector<Strings> later;
  for (int round = 0; round < 10 && later.size() < 2; ++round) {
    clock.advance(200ms);
    out = planner.tick();
    if (out.start.empty()) out = planner.connection_ready(c);
    for (const auto& start : out.start) {
      const OutboundMessage& o = *start.message;
      ASSERT_EQ(o.recipients.size(), 1u);
      const uint32_t index = static_cast<uint32_t>(o.recipients[0].address[1] - '0');
      EXPECT_EQ(verp_index(o.sender, m->id.value), index);
      EXPECT_EQ(ref_index(o.header_prefix, m->id.value), index);
      later.push_back({o.recipients[0].address});
      planner.transaction_done(start.id, result({reply(250, "2.0.0", "ok")}), "");
    }
  }
  EXPECT_EQ(later, (std::vector<Strings>{{"u1@a.test"}, {"u2@a.test"}}));
  EXPECT_EQ(planner.active_messages(), 0u) << "every recipient was delivered once";
}

}  // namespace
}  // namespace ringmail::mta::testing
