// tests/admin-api/admin_injection_test.cc — POST /api/v1/messages as an
// application sees it, without a server: the request parser's table of bad
// bodies (each 400 names its field first in "detail"), what a good body
// becomes, tenant API keys (good, wrong, admin-only routes refused), the
// body limit, and the HTTP answer of every injector outcome.
//
// The daemon is a double that records what it was asked to inject; the real
// pipeline behind the route is tests/integration/test_injection.py.
#include "admin-api/admin_injection.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "admin-api/admin_router.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"

namespace ringmail::admin {
namespace {

using nlohmann::json;
using Status = mta::InjectionResult::Status;

constexpr char kToken[] = "admin-token-0123456789";
constexpr char kKey1[] = "app1-key-abcdefghijklmnop";
constexpr char kKey2[] = "app2-key-qrstuvwxyz012345";

InjectionLimits limits() {
  InjectionLimits l;
  l.max_message_size = 4096;
  l.max_recipients = 3;
  return l;
}

ParsedInjection parse(const std::string& body, const std::string& key_tenant = "") {
  return parse_injection_request(body, limits(), key_tenant);
}

std::string detail_of(const HttpResponse& r) {
  const json body = json::parse(r.body, nullptr, false);
  EXPECT_TRUE(body.is_object() && body.size() == 2 && body["error"].is_string() &&
              body["detail"].is_string())
      << r.body;
  return body.value("detail", "");
}

constexpr const char* kRaw =
    R"("envelope_sender": "a@example.test", "recipients": ["r@example.net"], )"
    R"("content": "Subject: x\r\n\r\nbody\r\n")";
constexpr const char* kBuilt =
    R"("from": "A <a@example.test>", "to": ["r@example.net"], "subject": "s", "text": "t")";

std::string raw(const std::string& extra = "") {
  return std::string("{") + kRaw + (extra.empty() ? "" : ", " + extra) + "}";
}
std::string built(const std::string& extra = "") {
  return std::string("{") + kBuilt + (extra.empty() ? "" : ", " + extra) + "}";
}

TEST(InjectionParser, EveryBadBodyNamesItsField) {
  struct Row {
    const char* name;
    std::string body;
    int status;
    std::string detail_prefix;
  };
  const std::string long_line = "Subject: x\\r\\n\\r\\n" + std::string(999, 'x') + "\\r\\n";
  const std::vector<Row> rows = {
      {"empty body", "", 400, "a JSON object body is required"},
      {"not JSON", "{", 400, "the request body is not valid JSON"},
      {"not an object", "[1]", 400, "the request body must be a JSON object"},
      {"unknown field", built(R"("colour": "red")"), 400, "\"colour\": not a field"},
      // raw form
      {"no sender", R"({"recipients": ["r@example.net"], "content": "x"})", 400,
       "envelope_sender: required"},
      {"sender type", R"({"envelope_sender": 5, "recipients": ["r@x.net"], "content": "x"})", 400,
       "envelope_sender: must be a string"},
      {"bad sender",
       R"({"envelope_sender": "a b@c", "recipients": ["r@example.net"], "content": "x"})", 400,
       "envelope_sender: \"a b@c\" is not a valid address"},
      {"sender with a line break",
       R"({"envelope_sender": "a@example.test\r\n", "recipients": ["r@x.net"], "content": "x"})",
       400, "envelope_sender: control characters"},
      {"no recipients", R"({"envelope_sender": "", "content": "x"})", 400, "recipients: required"},
      {"recipients not a list",
       R"({"envelope_sender": "", "recipients": "r@example.net", "content": "x"})", 400,
       "recipients: must be a list"},
      {"no recipient", R"({"envelope_sender": "", "recipients": [], "content": "x"})", 400,
       "recipients: at least one"},
      {"bad recipient",
       R"({"envelope_sender": "", "recipients": ["r@example.net", "r@"], "content": "x"})", 400,
       "recipients[1]: \"r@\" is not a valid address"},
      {"recipient type", R"({"envelope_sender": "", "recipients": [1], "content": "x"})", 400,
       "recipients[0]: must be a string"},
      {"too many recipients",
       R"({"envelope_sender": "", "recipients": ["a@x.net","b@x.net","c@x.net","d@x.net"],)"
       R"( "content": "x"})",
       400, "recipients: 4 different recipients, more than limits.max_recipients (3)"},
      {"content type", R"({"envelope_sender": "", "recipients": ["r@x.net"], "content": 1})", 400,
       "content: must be a string"},
      {"empty content", R"({"envelope_sender": "", "recipients": ["r@x.net"], "content": ""})", 400,
       "content: must not be empty"},
      {"NUL in content",
       R"({"envelope_sender": "", "recipients": ["r@x.net"], "content": "a\n\u0000"})", 400,
       "content: NUL character on line 2"},
      {"long line",
       R"({"envelope_sender": "", "recipients": ["r@x.net"], "content": ")" + long_line + "\"}",
       400, "content: line 3 is longer than 998 octets"},
      {"content too large",
       R"({"envelope_sender": "", "recipients": ["r@x.net"], "content": ")" +
           std::string(4097, 'x') + "\"}",
       413, "content: 4097 bytes, over limits.max_message_size (4096)"},
      {"built field in the raw form", raw(R"("subject": "s")"), 400,
       "subject: not a field of the raw form"},
      // built form
      {"no from", R"({"to": ["r@example.net"], "subject": "s", "text": "t"})", 400,
       "from: required"},
      {"from type", R"({"from": ["a@x.test"], "to": ["r@x.net"], "subject": "s", "text": "t"})",
       400, "from: must be a string"},
      {"bad from", R"({"from": "A <nope>", "to": ["r@x.net"], "subject": "s", "text": "t"})", 400,
       "from: \"A <nope>\" is not a valid address"},
      {"to type", R"({"from": "a@x.test", "to": 5, "subject": "s", "text": "t"})", 400,
       "to: must be a list of addresses"},
      {"bad to", R"({"from": "a@x.test", "to": ["r@x.net", "x"], "subject": "s", "text": "t"})",
       400, "to[1]: \"x\" is not a valid address"},
      {"bad cc", built(R"("cc": [null])"), 400, "cc[0]: must be a string"},
      {"bad bcc", built(R"("bcc": ["a@b@c"])"), 400, "bcc[0]: "},
      {"nobody", R"({"from": "a@x.test", "subject": "s", "text": "t"})", 400,
       "to: at least one recipient in to, cc or bcc is required"},
      {"too many", built(R"("cc": ["b@x.net"], "bcc": ["c@x.net", "d@x.net"])"), 400,
       "recipients: 4 different recipients, more than limits.max_recipients (3)"},
      {"bad reply_to", built(R"("reply_to": "nobody")"), 400, "reply_to: "},
      {"reply_to type", built(R"("reply_to": ["a@x.net"])"), 400, "reply_to: must be a string"},
      {"no subject", R"({"from": "a@x.test", "to": ["r@x.net"], "text": "t"})", 400,
       "subject: required"},
      {"subject with CRLF",
       R"({"from": "a@x.test", "to": ["r@x.net"], "subject": "a\r\nBcc: )"
       R"(x@y.test", "text": "t"})",
       400, "subject: control characters or line breaks"},
      {"no text nor html", R"({"from": "a@x.test", "to": ["r@x.net"], "subject": "s"})", 400,
       "text: text or html is required"},
      {"text type", R"({"from": "a@x.test", "to": ["r@x.net"], "subject": "s", "text": 1})", 400,
       "text: must be a string"},
      {"html type", built(R"("html": {})"), 400, "html: must be a string"},
      {"text with NUL", built(R"("html": "a\u0000")"), 400, "html: control characters"},
      {"headers type", built(R"("headers": [])"), 400, "headers: must be an object"},
      {"reserved header", built(R"("headers": {"Bcc": "x@y.test"})"), 400,
       "headers.Bcc: set by Ringmail"},
      {"content-* header", built(R"("headers": {"content-type": "text/x"})"), 400,
       "headers.content-type: set by Ringmail"},
      {"bad header name", built(R"("headers": {"X Y": "v"})"), 400,
       "headers: \"X Y\" is not a header field name"},
      {"header value type", built(R"("headers": {"X-A": 1})"), 400,
       "headers.X-A: must be a string"},
      {"header value with LF", built(R"("headers": {"X-A": "a\nBcc: b@c.test"})"), 400,
       "headers.X-A: control characters or line breaks"},
      {"long header value", built(R"("headers": {"X-A": ")" + std::string(901, 'v') + "\"}"), 400,
       "headers.X-A: longer than 900 bytes"},
      {"recipients in the built form", built(R"("recipients": ["r@x.net"])"), 400,
       "recipients: not a field of the built form"},
      {"bad envelope_sender", built(R"("envelope_sender": "nope")"), 400, "envelope_sender: "},
      // both forms
      {"campaign type", built(R"("campaign": 1)"), 400, "campaign: must be a string"},
      {"campaign too long", built(R"("campaign": ")" + std::string(201, 'c') + "\""), 400,
       "campaign: longer than 200 bytes"},
      {"tenant with a space", built(R"("tenant": "a b")"), 400, "tenant: "},
      {"tenant type", built(R"("tenant": true)"), 400, "tenant: must be a string"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const ParsedInjection p = parse(row.body);
    ASSERT_FALSE(p.request.has_value()) << row.body;
    EXPECT_EQ(p.error.status, row.status) << p.error.body;
    const std::string detail = detail_of(p.error);
    EXPECT_TRUE(detail.starts_with(row.detail_prefix)) << detail;
  }
}

TEST(InjectionParser, AGoodRawBodyBecomesItsRequest) {
  const ParsedInjection p =
      parse(R"({"envelope_sender": "", "recipients": ["a@example.net", "A@EXAMPLE.NET",)"
            R"( "a@Example.Net", "b@example.net"], "content": "Subject: x\n\nbody\n",)"
            R"( "campaign": "spring\t "})");
  ASSERT_TRUE(p.request) << p.error.body;
  const mta::InjectionRequest& r = *p.request;
  EXPECT_EQ(r.tenant, "api");  // the admin token's default
  EXPECT_EQ(r.envelope_sender, "");
  // The domain compares case-insensitively, the local part as written.
  EXPECT_EQ(r.recipients,
            (std::vector<std::string>{"a@example.net", "A@EXAMPLE.NET", "b@example.net"}));
  EXPECT_EQ(r.content, "Subject: x\n\nbody\n");
  EXPECT_FALSE(r.built);
  EXPECT_EQ(r.campaign, "spring");
}

TEST(InjectionParser, AGoodBuiltBodyBecomesItsRequest) {
  const ParsedInjection p =
      parse(R"({"from": "Élodie <elodie@example.test>", "to": "Bob <bob@example.net>",)"
            R"( "cc": ["c@example.net"], "bcc": ["hidden@example.net", "bob@example.NET"],)"
            R"( "reply_to": "r@example.test", "subject": "Grüße", "html": "<p>x</p>",)"
            R"( "headers": {"X-Order": "42", "List-Unsubscribe": "<mailto:u@example.test>"},)"
            R"( "tenant": "t9", "campaign": "autumn"})");
  ASSERT_TRUE(p.request) << p.error.body;
  const mta::InjectionRequest& r = *p.request;
  EXPECT_EQ(r.tenant, "t9");
  EXPECT_EQ(r.campaign, "autumn");
  EXPECT_EQ(r.envelope_sender, "elodie@example.test");  // From's address by default
  // bob@ twice (in to and bcc) is one recipient.
  EXPECT_EQ(r.recipients,
            (std::vector<std::string>{"bob@example.net", "c@example.net", "hidden@example.net"}));
  ASSERT_TRUE(r.built);
  EXPECT_FALSE(r.content);
  const mta::MimeMessageSpec& spec = *r.built;
  EXPECT_EQ(spec.from.display_name, "Élodie");
  ASSERT_EQ(spec.to.size(), 1u);
  EXPECT_EQ(spec.to[0].display_name, "Bob");
  EXPECT_EQ(spec.cc.size(), 1u);
  ASSERT_TRUE(spec.reply_to);
  EXPECT_EQ(spec.reply_to->address, "r@example.test");
  EXPECT_EQ(spec.subject, "Grüße");
  EXPECT_FALSE(spec.text);
  EXPECT_EQ(spec.html, "<p>x</p>");
  ASSERT_EQ(spec.headers.size(), 2u);

  const ParsedInjection with_sender = parse(built(R"("envelope_sender": "b@example.test")"));
  ASSERT_TRUE(with_sender.request);
  EXPECT_EQ(with_sender.request->envelope_sender, "b@example.test");
}

TEST(InjectionParser, AnApiKeyInjectsForItsOwnTenant) {
  const ParsedInjection own = parse(built(), "app1");
  ASSERT_TRUE(own.request);
  EXPECT_EQ(own.request->tenant, "app1");
  const ParsedInjection same = parse(built(R"("tenant": "app1")"), "app1");
  ASSERT_TRUE(same.request);
  const ParsedInjection other = parse(built(R"("tenant": "app2")"), "app1");
  ASSERT_FALSE(other.request);
  EXPECT_EQ(other.error.status, 400);
  EXPECT_TRUE(detail_of(other.error).starts_with("tenant: an API key injects for its own"));
}

TEST(InjectionParser, EveryOutcomeHasItsAnswer) {
  struct Row {
    Status status;
    int http;
    bool retry_after;
  };
  for (const Row& row : {Row{Status::invalid, 400, false}, Row{Status::too_large, 413, false},
                         Row{Status::refused, 422, false}, Row{Status::tempfail, 503, true},
                         Row{Status::campaign_refused, 409, false},
                         Row{Status::spool_full, 503, true}, Row{Status::failed, 500, false}}) {
    mta::InjectionResult result;
    result.status = row.status;
    result.detail = "why";
    const HttpResponse r = injection_response(result);
    EXPECT_EQ(r.status, row.http);
    EXPECT_EQ(detail_of(r), "why");
    bool has_retry = false;
    for (const auto& [name, value] : r.headers) has_retry |= name == "Retry-After";
    EXPECT_EQ(has_retry, row.retry_after) << row.http;
  }
  mta::InjectionResult over;
  over.status = Status::over_limit;
  over.detail = "tenant \"app1\" is over its submission limit of 3/h; try again later";
  over.retry_after_seconds = 1200;
  const HttpResponse limited = injection_response(over);
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(json::parse(limited.body), json::parse(R"({"error": "over submission limit",
                            "detail": "tenant \"app1\" is over its submission limit of 3/h; try again later"})"));
  EXPECT_EQ(limited.headers,
            (std::vector<std::pair<std::string, std::string>>{{"Retry-After", "1200"}}));
  mta::InjectionResult queued;
  queued.status = Status::queued;
  queued.id = "0123456789abcdef0123";
  queued.recipients = 2;
  const HttpResponse ok = injection_response(queued);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(json::parse(ok.body), json::parse(R"({"id": "0123456789abcdef0123",
                                                   "recipients": 2})"));
}

// --- the route, with API keys

std::array<unsigned char, 32> sha256(const std::string& key) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest.data());
  return digest;
}

class InjectDaemon final : public mta::DaemonControl {
 public:
  InjectDaemon() {
    auto c = std::make_shared<conf::Config>();
    c->limits.max_message_size = 4096;
    c->limits.max_recipients = 3;
    c->admin.api_keys = {conf::ApiKey{"app1", sha256(kKey1), 1},
                         conf::ApiKey{"app2", sha256(kKey2), 2}};
    config_ = c;
  }
  std::shared_ptr<const conf::Config> config() const override { return config_; }
  std::string unhealthy_reason() const override { return ""; }
  std::string metrics_text() const override { return ""; }
  std::optional<mta::DeliverySnapshot> snapshot(const mta::QueueFilter&, bool) override {
    return mta::DeliverySnapshot{};
  }
  std::optional<size_t> command(const mta::AdminCommand&, std::string*) override { return 0; }
  std::vector<std::string> reload() override { return {}; }
  runtime::EventHub* events() override { return nullptr; }
  runtime::MetricsRegistry& metrics() override { return registry_; }
  mta::InjectionResult inject(const mta::InjectionRequest& request) override {
    injected.push_back(request);
    mta::InjectionResult r;
    r.status = Status::queued;
    r.id = "0123456789abcdef0123";
    r.recipients = request.recipients.size();
    return r;
  }

  std::vector<mta::InjectionRequest> injected;

 private:
  std::shared_ptr<const conf::Config> config_;
  runtime::MetricsRegistry registry_;
};

HttpRequest request(std::string method, std::string path, std::string authorization,
                    std::string body = "") {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.authorization = std::move(authorization);
  r.body = std::move(body);
  return r;
}

TEST(InjectionRoute, TheAdminTokenOrAKeyInjectsAndAKeyDoesNothingElse) {
  InjectDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const std::string bearer1 = std::string("Bearer ") + kKey1;

  HttpResponse r = router.handle(request("POST", "/api/v1/messages", bearer1, built()), kToken,
                                 false, "192.0.2.9");
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(daemon.injected.size(), 1u);
  EXPECT_EQ(daemon.injected[0].tenant, "app1");
  EXPECT_EQ(daemon.injected[0].client_ip, "192.0.2.9");

  r = router.handle(request("POST", "/api/v1/messages", std::string("Bearer ") + kKey2, built()),
                    kToken, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(daemon.injected.back().tenant, "app2");

  r = router.handle(request("POST", "/api/v1/messages", std::string("Bearer ") + kToken,
                            built(R"("tenant": "t9")")),
                    kToken, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(daemon.injected.back().tenant, "t9");
  r = router.handle(request("POST", "/api/v1/messages", std::string("Bearer ") + kToken, built()),
                    kToken, false);
  EXPECT_EQ(daemon.injected.back().tenant, "api");
  const size_t injected = daemon.injected.size();

  const std::string key(kKey1);
  for (const std::string& wrong :
       {key.substr(0, key.size() - 1), key + "x", key.substr(0, key.size() - 1) + "Q",
        std::string("nothing"), std::string("")}) {
    r = router.handle(request("POST", "/api/v1/messages", "Bearer " + wrong, built()), kToken,
                      false);
    EXPECT_EQ(r.status, 401) << wrong;
    detail_of(r);
  }
  r = router.handle(request("POST", "/api/v1/messages", "Basic " + key, built()), kToken, false);
  EXPECT_EQ(r.status, 401);

  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/api/v1/stats"},
           {"GET", "/api/v1/queue"},
           {"POST", "/api/v1/reload"},
           {"POST", "/api/v1/delivery/pause"},
           {"GET", "/api/v1/messages"},
           {"GET", "/api/v1/messages/0123456789abcdef0123"},
           {"GET", "/api/v1/nothing"}}) {
    r = router.handle(request(method, path, bearer1), kToken, false);
    EXPECT_EQ(r.status, 401) << method << " " << path;
    EXPECT_NE(detail_of(r).find("may only inject"), std::string::npos) << r.body;
  }
  // /metrics with metrics_auth takes the admin token only.
  r = router.handle(request("GET", "/metrics", bearer1), kToken, true);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(daemon.injected.size(), injected) << "a refused request was injected";

  r = router.handle(request("GET", "/api/v1/messages", std::string("Bearer ") + kToken), kToken,
                    false);
  EXPECT_EQ(r.status, 405);
  HttpRequest big = request("POST", "/api/v1/messages", bearer1);
  big.body_too_large = true;
  r = router.handle(big, kToken, false);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(detail_of(r), "the body is over 4096 bytes (limits.max_message_size)");
  EXPECT_EQ(daemon.injected.size(), injected);
}

TEST(InjectionRoute, KeysAreFoundByTheirHashOnly) {
  const std::vector<conf::ApiKey> keys = {conf::ApiKey{"app1", sha256(kKey1), 1},
                                          conf::ApiKey{"app2", sha256(kKey2), 2}};
  EXPECT_EQ(api_key_tenant(std::string("Bearer ") + kKey1, keys), "app1");
  EXPECT_EQ(api_key_tenant(std::string("bearer   ") + kKey2 + " ", keys), "app2");
  EXPECT_EQ(api_key_tenant("Bearer " + std::string(kKey1).substr(1), keys), "");
  EXPECT_EQ(api_key_tenant("Bearer ", keys), "");
  EXPECT_EQ(api_key_tenant("", keys), "");
  EXPECT_EQ(api_key_tenant(std::string("Bearer ") + kKey1, {}), "");
  EXPECT_EQ(request_body_limit("/api/v1/messages", *InjectDaemon().config()), 4096u);
  EXPECT_EQ(request_body_limit("/api/v1/queue/bounce", *InjectDaemon().config()), kMaxRequestBody);
}

}  // namespace
}  // namespace ringmail::admin
