// tests/policy/list_unsubscribe_test.cc — which messages get the one-click
// fields, and the fields themselves: tokens that decode to the right
// recipient, the mailto only when its token fits a local part.
#include "policy/list_unsubscribe.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/feedback_token.h"

namespace ringmail::policy {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::vector<std::string> kKeys = {kKey};
constexpr const char* kId = "0190f3a2b4c5d6e7f809";

conf::ListUnsubscribeConfig settings(std::string mailto_domain) {
  conf::ListUnsubscribeConfig c;
  c.url = "https://unsub.example.test/u";
  c.mailto_domain = std::move(mailto_domain);
  c.key.key = kKey;
  return c;
}

queue::SpoolMessage message(std::string tenant, std::vector<std::string> recipients) {
  queue::SpoolMessage m;
  m.id = queue::MessageId{kId};
  m.meta.tenant = std::move(tenant);
  m.meta.campaign = "spring";
  for (std::string& r : recipients) {
    queue::Recipient recipient;
    recipient.address = std::move(r);
    m.envelope.recipients.push_back(std::move(recipient));
  }
  return m;
}

TEST(AddsListUnsubscribe, Table) {
  const conf::ListUnsubscribeConfig config = settings("");
  queue::SpoolMessage campaign = message("app1", {"a@example.test"});
  queue::SpoolMessage plain = campaign;
  plain.meta.campaign.clear();
  queue::SpoolMessage dsn = campaign;
  dsn.meta.listener = queue::kDsnListener;
  const struct {
    const char* name;
    const conf::ListUnsubscribeConfig* config;
    const queue::SpoolMessage* message;
    bool own_field;
    bool adds;
  } kCases[] = {
      {"campaign message", &config, &campaign, false, true},
      {"not configured", nullptr, &campaign, false, false},
      {"no campaign", &config, &plain, false, false},
      {"one of Ringmail's DSNs", &config, &dsn, false, false},
      {"the application's own field is kept", &config, &campaign, true, false},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(adds_list_unsubscribe(c.config, *c.message, c.own_field), c.adds);
  }
}

// The token between "<URL/" and ">", and the mailto's local part.
struct Parsed {
  std::string url_token;
  std::string mailto_local;
  std::string mailto_domain;
};

Parsed parse(const std::string& fields) {
  Parsed p;
  const std::string url = "<https://unsub.example.test/u/";
  const size_t u = fields.find(url);
  if (u != std::string::npos) {
    const size_t end = fields.find('>', u);
    p.url_token = fields.substr(u + url.size(), end - u - url.size());
  }
  const size_t m = fields.find("<mailto:");
  if (m != std::string::npos) {
    const size_t at = fields.find('@', m);
    const size_t q = fields.find('?', at);
    p.mailto_local = fields.substr(m + 8, at - m - 8);
    p.mailto_domain = fields.substr(at + 1, q - at - 1);
  }
  return p;
}

TEST(ListUnsubscribeFields, Table) {
  const struct {
    const char* name;
    std::string mailto_domain;
    std::string tenant;
    std::string address;
    uint32_t index;
    bool fields;
    bool mailto;
  } kCases[] = {
      {"URL only", "", "app1", "ann@example.test", 0, true, false},
      {"URL and mailto", "unsub.example.test", "app1", "ann@example.test", 0, true, true},
      {"second recipient", "unsub.example.test", "app1", "bob@example.test", 1, true, true},
      {"a tenant too long for a local part: no mailto", "unsub.example.test", "tenant-of-12",
       "ann@example.test", 0, true, false},
      {"an address no token carries: no fields", "", "app1", std::string(250, 'a') + "@e.test", 0,
       false, false},
      {"no such recipient", "", "app1", "ann@example.test", 5, false, false},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const queue::SpoolMessage m = message(c.tenant, {"zed@example.test", c.address});
    const uint32_t index = c.index == 0 ? 1 : c.index == 1 ? 0 : c.index;
    const std::string fields = list_unsubscribe_fields(settings(c.mailto_domain), m, index);
    if (!c.fields) {
      EXPECT_EQ(fields, "");
      continue;
    }
    const std::string& address = m.envelope.recipients[index].address;
    EXPECT_TRUE(fields.starts_with("List-Unsubscribe: <https://unsub.example.test/u/")) << fields;
    EXPECT_TRUE(fields.ends_with("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"))
        << fields;
    const Parsed p = parse(fields);
    const auto from_url = decode_unsubscribe_token(p.url_token, kKeys);
    ASSERT_TRUE(from_url.token) << token_problem_name(from_url.problem);
    EXPECT_EQ(from_url.token->message.value, kId);
    EXPECT_EQ(from_url.token->recipient, index);
    EXPECT_EQ(from_url.token->tenant, c.tenant);
    EXPECT_EQ(from_url.token->address, address);
    EXPECT_EQ(!p.mailto_local.empty(), c.mailto);
    if (c.mailto) {
      EXPECT_EQ(p.mailto_domain, c.mailto_domain);
      EXPECT_LE(p.mailto_local.size(), kMaxLocalPart);
      const auto from_mailto = decode_unsubscribe_local_part(p.mailto_local, kKeys);
      ASSERT_TRUE(from_mailto.token);
      EXPECT_EQ(from_mailto.token->recipient, index);
      EXPECT_EQ(from_mailto.token->address, "");  // the spool knows it
      // Folded after the comma (RFC 2369): no line over 998 octets.
      EXPECT_NE(fields.find(",\r\n <mailto:"), std::string::npos);
    }
    // Each recipient's fields differ: the reason mail is signed per recipient.
    EXPECT_NE(fields, list_unsubscribe_fields(settings(c.mailto_domain), m, index == 0 ? 1 : 0));
  }
}

}  // namespace
}  // namespace ringmail::policy
