// tests/policy/unsubscribe_request_test.cc — the one-click endpoint's
// answers: only a POST with the one-click body and a verified token
// unsubscribes; GET shows a confirm page and changes nothing.
#include "policy/unsubscribe_request.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::string kOldKey = "fedcba9876543210fedcba9876543210";
const std::vector<std::string> kKeys = {kKey, kOldKey};
constexpr const char* kId = "0190f3a2b4c5d6e7f809";

std::string token(const std::string& key = kKey) {
  return *encode_unsubscribe_token({queue::MessageId{kId}, 3, "app1", "ann@example.test"}, key);
}

TEST(UnsubscribeRequest, Table) {
  const std::string good = "/u/" + token();
  std::string forged = good;
  forged.back() = forged.back() == 'a' ? 'b' : 'a';
  std::string upper = "/u/" + token();
  for (size_t i = 3; i < upper.size(); ++i)
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  const struct {
    const char* name;
    std::string method, path, body;
    int status;
    bool unsubscribes;
  } kCases[] = {
      {"one-click POST", "POST", good, "List-Unsubscribe=One-Click", 200, true},
      {"one-click POST with a CRLF", "POST", good, "List-Unsubscribe=One-Click\r\n", 200, true},
      {"among other form fields", "POST", good, "a=b&List-Unsubscribe=One-Click", 200, true},
      {"token in upper case", "POST", upper, "List-Unsubscribe=One-Click", 200, true},
      {"an old key still verifies", "POST", "/u/" + token(kOldKey), "List-Unsubscribe=One-Click",
       200, true},
      {"proxy stripped the path", "POST", "/" + token(), "List-Unsubscribe=One-Click", 200, true},
      {"GET changes nothing", "GET", good, "", 200, false},
      {"HEAD changes nothing", "HEAD", good, "", 200, false},
      {"POST without the body", "POST", good, "", 400, false},
      {"POST with another value", "POST", good, "List-Unsubscribe=Yes", 400, false},
      {"POST with a prefix of the field", "POST", good, "xList-Unsubscribe=One-Click", 400, false},
      {"forged token", "POST", forged, "List-Unsubscribe=One-Click", 404, false},
      {"forged token, GET", "GET", forged, "", 404, false},
      {"unknown key", "POST", "/u/" + token("another key of 32 octets......."),
       "List-Unsubscribe=One-Click", 404, false},
      {"no token", "POST", "/u/", "List-Unsubscribe=One-Click", 404, false},
      {"the bare path", "GET", "/u", "", 404, false},
      {"another path", "POST", "/other/" + token(), "List-Unsubscribe=One-Click", 404, false},
      {"garbage", "GET", "/u/%00<script>", "", 404, false},
      {"PUT", "PUT", good, "List-Unsubscribe=One-Click", 405, false},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const UnsubscribeHttpAnswer a =
        decide_unsubscribe_request({c.method, c.path, c.body}, "/u", kKeys);
    EXPECT_EQ(a.status, c.status);
    EXPECT_EQ(a.unsubscribe.has_value(), c.unsubscribes);
    if (a.unsubscribe) {
      EXPECT_EQ(a.unsubscribe->message.value, kId);
      EXPECT_EQ(a.unsubscribe->recipient, 3u);
      EXPECT_EQ(a.unsubscribe->tenant, "app1");
      EXPECT_EQ(a.unsubscribe->address, "ann@example.test");
    }
    if (c.status == 405) {
      ASSERT_EQ(a.headers.size(), 1u);
      EXPECT_EQ(a.headers[0].first, "Allow");
    }
    if (c.status == 404) {
      EXPECT_FALSE(a.problem.empty());
    }
    // Nothing from the request is echoed into a page.
    EXPECT_EQ(a.body.find("script"), std::string::npos);
  }
}

TEST(UnsubscribeRequest, TheConfirmPagePostsTheOneClickBody) {
  const UnsubscribeHttpAnswer a =
      decide_unsubscribe_request({"GET", "/u/" + token(), ""}, "/u", kKeys);
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.content_type, "text/html; charset=utf-8");
  EXPECT_NE(a.body.find("<form method=\"post\">"), std::string::npos);
  EXPECT_NE(a.body.find("name=\"List-Unsubscribe\" value=\"One-Click\""), std::string::npos);
  // The address is not shown (the URL may be forwarded).
  EXPECT_EQ(a.body.find("ann@example.test"), std::string::npos);
}

TEST(UnsubscribeRequest, DoneSaysWhetherItWasStored) {
  const UnsubscribeHttpAnswer stored = unsubscribe_done(true);
  EXPECT_EQ(stored.status, 200);
  EXPECT_NE(stored.body.find("Unsubscribed"), std::string::npos);
  const UnsubscribeHttpAnswer failed = unsubscribe_done(false);
  EXPECT_EQ(failed.status, 503);
  ASSERT_EQ(failed.headers.size(), 1u);
  EXPECT_EQ(failed.headers[0].first, "Retry-After");
}

TEST(UrlPathOf, Table) {
  EXPECT_EQ(url_path_of("https://unsub.example.test/u"), "/u");
  EXPECT_EQ(url_path_of("https://unsub.example.test:8443/a/b/"), "/a/b");
  EXPECT_EQ(url_path_of("https://unsub.example.test"), "");
  EXPECT_EQ(url_path_of("http://127.0.0.1:8080/"), "");
  EXPECT_EQ(url_path_of("no url"), "");
}

}  // namespace
}  // namespace ringmail::policy
