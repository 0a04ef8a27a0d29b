// tests/policy/return_path_test.cc — what policy.return_path does to one
// outgoing copy: which messages get VERP or only the headers (DSNs and the
// null sender), the envelope sender and X-Ringmail-Ref of a copy (known
// answers computed apart from this code with Python's hmac and base64,
// as in feedback_token_test.cc, and decoded back), and the Feedback-ID
// value.
#include "policy/return_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/feedback_token.h"

namespace ringmail::policy {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";  // 32 octets
const std::vector<std::string> kKeys = {kKey};
constexpr const char* kId = "0190f3a2b4c5d6e7f809";

conf::ReturnPathConfig config(bool verp = true) {
  conf::ReturnPathConfig c;
  c.domain = "returnpath.test";
  c.verp = verp;
  c.key.key = kKey;
  return c;
}

queue::SpoolMessage message(std::string sender = "app@sender.test", std::string listener = "relay",
                            std::string id = kId) {
  queue::SpoolMessage m;
  m.id = queue::MessageId{std::move(id)};
  m.envelope.sender = std::move(sender);
  for (const char* address : {"a@x.test", "b@x.test", "c@x.test"}) {
    queue::Recipient r;
    r.address = address;
    r.domain = "x.test";
    m.envelope.recipients.push_back(r);
  }
  m.meta.tenant = "app1";
  m.meta.campaign = "spring";
  m.meta.listener = std::move(listener);
  return m;
}

// The token of "X-Ringmail-Ref: TOKEN\r\n".
std::string ref_value(const std::string& prefix) {
  const std::string head = std::string(kRefHeaderName) + ": ";
  EXPECT_TRUE(prefix.starts_with(head)) << prefix;
  EXPECT_TRUE(prefix.ends_with("\r\n")) << prefix;
  if (prefix.size() < head.size() + 2) return "";
  return prefix.substr(head.size(), prefix.size() - head.size() - 2);
}

TEST(ReturnPath, WhichMessagesGetVerpOrTheHeaders) {
  const conf::ReturnPathConfig verp = config(true);
  const conf::ReturnPathConfig headers_only = config(false);
  const struct {
    const char* name;
    const conf::ReturnPathConfig* config;
    std::string sender;
    std::string listener;
    ReturnPathUse use;
  } kCases[] = {
      {"not configured", nullptr, "app@sender.test", "relay", ReturnPathUse::none},
      {"not configured, DSN", nullptr, "", "dsn", ReturnPathUse::none},
      {"verp", &verp, "app@sender.test", "relay", ReturnPathUse::verp},
      {"verp, injected", &verp, "app@sender.test", "api", ReturnPathUse::verp},
      {"verp, null sender stays null", &verp, "", "relay", ReturnPathUse::headers},
      {"verp, Ringmail's DSN", &verp, "", "dsn", ReturnPathUse::none},
      {"verp, a DSN listener name with a sender", &verp, "x@y.test", "dsn", ReturnPathUse::none},
      {"verp: false", &headers_only, "app@sender.test", "relay", ReturnPathUse::headers},
      {"verp: false, null sender", &headers_only, "", "relay", ReturnPathUse::headers},
      {"verp: false, DSN", &headers_only, "", "dsn", ReturnPathUse::none},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(return_path_use(c.config, c.sender, c.listener), c.use) << c.name;
  }
  EXPECT_EQ(return_path_use(&verp, message("", "dsn")), ReturnPathUse::none);
  EXPECT_EQ(return_path_use(&verp, message()), ReturnPathUse::verp);
}

TEST(ReturnPath, VerpCopyKnownAnswer) {
  // python3: see feedback_token_test.cc; id kId, recipient 2, tenant
  // "app1", campaign "spring".
  const uint32_t recipient[] = {2};
  OutgoingCopy copy = outgoing_copy(config(), ReturnPathUse::verp, message(), recipient);
  EXPECT_EQ(copy.sender, "b-1agiphivuyxlop6ajaaaaaat55v2jueukk7jp2qtkl4@returnpath.test");
  EXPECT_EQ(copy.header_prefix,
            "X-Ringmail-Ref: "
            "1agiphivuyxlop6ajaaaaaaqemfyhamigonyhe2lom4koz34s2bk3cah65ilstzc3uy5a\r\n");
}

TEST(ReturnPath, CopiesDecodeToTheirMessageAndRecipient) {
  const struct {
    const char* name;
    bool verp;
    std::string sender;
    std::vector<uint32_t> recipients;
    bool verp_sender;        // b-TOKEN@returnpath.test
    uint32_t ref_recipient;  // in X-Ringmail-Ref
  } kCases[] = {
      {"verp, first", true, "app@sender.test", {0}, true, 0},
      {"verp, third", true, "app@sender.test", {2}, true, 2},
      {"verp, null sender", true, "", {1}, false, 1},
      {"verp: false, one recipient", false, "app@sender.test", {1}, false, 1},
      {"verp: false, several", false, "app@sender.test", {0, 2}, false, kRefSeveralRecipients},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const conf::ReturnPathConfig rp = config(c.verp);
    const queue::SpoolMessage m = message(c.sender);
    const ReturnPathUse use = return_path_use(&rp, m);
    OutgoingCopy copy = outgoing_copy(rp, use, m, c.recipients);
    if (c.verp_sender) {
      ASSERT_TRUE(copy.sender.ends_with("@returnpath.test")) << copy.sender;
      const std::string local = copy.sender.substr(0, copy.sender.find('@'));
      EXPECT_LE(local.size(), kMaxLocalPart);
      auto decoded = decode_verp_local_part(local, kKeys);
      ASSERT_TRUE(decoded.token) << token_problem_name(decoded.problem);
      EXPECT_EQ(decoded.token->message.value, kId);
      EXPECT_EQ(decoded.token->recipient, c.recipients[0]);
    } else {
      EXPECT_EQ(copy.sender, c.sender);
    }
    auto ref = decode_ref_token(ref_value(copy.header_prefix), kKeys);
    ASSERT_TRUE(ref.token) << token_problem_name(ref.problem);
    EXPECT_EQ(ref.token->message.value, kId);
    EXPECT_EQ(ref.token->recipient, c.ref_recipient);
    EXPECT_EQ(ref.token->tenant, "app1");
    EXPECT_EQ(ref.token->campaign, "spring");
  }
}

TEST(ReturnPath, WhatCannotBeSignedGoesAsItIs) {
  const uint32_t first[] = {0};
  // Not configured for this message (a DSN): nothing changes.
  OutgoingCopy none = outgoing_copy(config(), ReturnPathUse::none, message("", "dsn"), first);
  EXPECT_EQ(none.sender, "");
  EXPECT_EQ(none.header_prefix, "");
  // An id that make_message_id did not make: no token of either kind.
  OutgoingCopy bad_id = outgoing_copy(config(), ReturnPathUse::verp,
                                      message("app@sender.test", "relay", "not-hex"), first);
  EXPECT_EQ(bad_id.sender, "app@sender.test");
  EXPECT_EQ(bad_id.header_prefix, "");
  // A tenant longer than a ref token carries: VERP still, no header.
  queue::SpoolMessage long_tenant = message();
  long_tenant.meta.tenant.assign(kMaxTokenTenant + 1, 't');
  OutgoingCopy copy = outgoing_copy(config(), ReturnPathUse::verp, long_tenant, first);
  EXPECT_TRUE(copy.sender.starts_with("b-")) << copy.sender;
  EXPECT_EQ(copy.header_prefix, "");
  // Under VERP a copy for several recipients (the planner never makes one)
  // keeps the sender rather than naming one of them.
  const uint32_t two[] = {0, 1};
  EXPECT_EQ(outgoing_copy(config(), ReturnPathUse::verp, message(), two).sender, "app@sender.test");
}

TEST(ReturnPath, FeedbackIdValue) {
  const struct {
    std::string campaign, tenant, listener, sender_id, value;
  } kCases[] = {
      {"spring", "app1", "relay", "ringmail", "spring:app1:relay:ringmail"},
      {"", "", "api", "ringmail", "::api:ringmail"},
      {"", "127.0.0.0/8", "relay", "mailco", ":127.0.0.0/8:relay:mailco"},
      {"a:b c\tq", "t\xc3\xa9", "relay", "ringmail", "a_b_c_q:t__:relay:ringmail"},
      {std::string(300, 'c'), "t", "relay", "ringmail",
       std::string(kMaxFeedbackIdField, 'c') + ":t:relay:ringmail"},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(feedback_id_value(c.campaign, c.tenant, c.listener, c.sender_id), c.value)
        << c.campaign;
  }
  conf::ReturnPathConfig rp = config();
  rp.sender_id = "mailco";
  EXPECT_EQ(feedback_id_field(rp, message()), "Feedback-ID: spring:app1:relay:mailco\r\n");
}

}  // namespace
}  // namespace ringmail::policy
