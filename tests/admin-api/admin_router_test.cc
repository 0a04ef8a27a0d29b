// tests/admin-api/admin_router_test.cc — the admin API's routes as an
// operator's HTTP client sees them: status, error JSON, Allow and
// WWW-Authenticate, and the command the daemon gets for each request.
//
// The daemon is a double that records what it was asked and answers with
// canned snapshots, reload errors and failures; the real daemon behind
// the same routes is driven by tests/integration/test_admin_api.py.
#include "admin-api/admin_router.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "admin-api/admin_destination.h"
#include "admin-api/admin_probe.h"
#include "conf/config_policy.h"
#include "mta/campaigns.h"
#include "policy/campaign_gate.h"
#include "queue/spool_memory.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"
#include "runtime/event_hub.h"
#include "runtime/metrics_registry.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::admin {
namespace {

using namespace std::chrono_literals;
using Kind = mta::AdminCommand::Kind;
using nlohmann::json;
using Query = std::vector<std::pair<std::string, std::string>>;

constexpr char kToken[] = "s3cret-admin-token-0123456789abcdef";
constexpr char kGoodAuth[] = "Bearer s3cret-admin-token-0123456789abcdef";
// FakeClock's default: 2026-01-01T00:00:00Z.
constexpr int64_t kNowMs = 1767225600000;

class FakeDaemon final : public mta::DaemonControl {
 public:
  std::shared_ptr<const conf::Config> config() const override { return config_; }
  std::string unhealthy_reason() const override { return unhealthy; }
  std::string metrics_text() const override { return "ringmail_build_info{version=\"t\"} 1\n"; }
  std::optional<mta::DeliverySnapshot> snapshot(const mta::QueueFilter& filter,
                                                bool with_idle_sites) override {
    filters.push_back(filter);
    idle_sites.push_back(with_idle_sites);
    if (!answers) return std::nullopt;
    return snap;
  }
  std::optional<size_t> command(const mta::AdminCommand& command, std::string* error) override {
    commands.push_back(command);
    if (!command_error.empty()) {
      *error = command_error;
      return std::nullopt;
    }
    return bounced;
  }
  std::vector<std::string> reload() override {
    ++reloads;
    return reload_errors;
  }
  runtime::EventHub* events() override { return has_delivery_log ? &hub : nullptr; }
  runtime::MetricsRegistry& metrics() override { return registry; }
  mta::CampaignRegistry* campaigns() override { return &campaign_registry; }
  queue::SuppressionStore* suppressions() override { return &suppression_store; }
  std::vector<mta::ExplainedLimit> explain_live(const mta::ExplainTarget& target) override {
    explained.push_back(target);
    return live_limits;
  }

  // What it answers.
  std::string unhealthy;
  bool answers = true;
  mta::DeliverySnapshot snap;
  std::string command_error;  // non-empty: command() fails with it
  size_t bounced = 0;
  std::vector<std::string> reload_errors;
  bool has_delivery_log = true;
  std::vector<mta::ExplainedLimit> live_limits;
  // What it was asked.
  std::vector<mta::ExplainTarget> explained;
  std::vector<mta::AdminCommand> commands;
  std::vector<mta::QueueFilter> filters;
  std::vector<bool> idle_sites;
  int reloads = 0;
  // Campaigns are real: the registry over a memory spool.
  queue::MemorySpool spool;
  policy::CampaignGate gate;
  runtime::FakeClock clock;
  mta::CampaignRegistry campaign_registry{spool, gate, clock};
  queue::SuppressionStore suppression_store{spool};
  std::shared_ptr<const conf::Config> config_ = std::make_shared<const conf::Config>();

 private:
  runtime::EventHub hub;
  runtime::MetricsRegistry registry;
};

std::string header(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

// Every error is {"error": "...", "detail": "..."} and nothing else.
void expect_error_shape(const HttpResponse& r) {
  EXPECT_EQ(r.content_type, "application/json");
  const json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_EQ(body.size(), 2u) << r.body;
  EXPECT_TRUE(body.contains("error") && body["error"].is_string()) << r.body;
  EXPECT_TRUE(body.contains("detail") && body["detail"].is_string()) << r.body;
}

std::string deep_array(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

struct ExpectedCommand {
  Kind kind;
  std::string target;
  std::optional<runtime::Millis> until;  // from the fixed clock's now
  std::string reason;
};

// One request and what the operator's client must see. Built as
// post(name, path, body).fails(400, "bad field", "site: ...") so that each
// row reads as one line.
struct Row {
  std::string name;
  HttpRequest request;
  std::string token = kToken;  // the admin token in force
  bool metrics_auth = false;
  int status = 200;
  std::string error;   // the "error" of an error body ("" = any)
  std::string detail;  // a substring of its "detail"
  std::string allow;   // the Allow header ("" = absent)
  bool www_authenticate = false;
  std::string body_json;  // the whole body, when given
  std::optional<ExpectedCommand> command;

  Row& authorization(std::string value) {
    request.authorization = std::move(value);
    return *this;
  }
  Row& no_authorization() { return authorization(""); }
  Row& configured_token(std::string value) {
    token = std::move(value);
    return *this;
  }
  Row& with_metrics_auth() {
    metrics_auth = true;
    return *this;
  }
  Row& too_large() {
    request.body_too_large = true;
    return *this;
  }
  Row& fails(int s, std::string e = "", std::string d = "") {
    status = s;
    error = std::move(e);
    detail = std::move(d);
    return *this;
  }
  Row& unauthorized(std::string d = "") {
    fails(401, "unauthorized", std::move(d));
    www_authenticate = true;
    return *this;
  }
  Row& not_allowed(std::string method) {
    fails(405, "method not allowed", request.path + " takes " + method);
    allow = std::move(method);
    return *this;
  }
  Row& answers(std::string json_text) {
    body_json = std::move(json_text);
    return *this;
  }
  Row& sends(Kind kind, std::string target, std::optional<runtime::Millis> until = std::nullopt,
             std::string reason = "") {
    command = ExpectedCommand{kind, std::move(target), until, std::move(reason)};
    return *this;
  }
};

Row request(std::string name, std::string method, std::string path, std::string body = "") {
  Row r;
  r.name = std::move(name);
  r.request =
      HttpRequest{std::move(method), std::move(path), {}, kGoodAuth, std::move(body), false};
  return r;
}
Row get(std::string name, std::string path) {
  return request(std::move(name), "GET", std::move(path));
}
Row post(std::string name, std::string path, std::string body = "") {
  return request(std::move(name), "POST", std::move(path), std::move(body));
}

void run(const Row& row, FakeDaemon& daemon) {
  SCOPED_TRACE(row.name);
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const HttpResponse r = router.handle(row.request, row.token, row.metrics_auth);

  EXPECT_EQ(r.status, row.status) << r.body;
  if (r.status != 200 && !(row.request.path == "/healthz" && r.status == 503)) {
    expect_error_shape(r);
    const json body = json::parse(r.body, nullptr, false);
    if (!row.error.empty()) {
      EXPECT_EQ(body.value("error", ""), row.error) << r.body;
    }
    EXPECT_NE(body.value("detail", "").find(row.detail), std::string::npos) << r.body;
  }
  EXPECT_EQ(header(r, "Allow"), row.allow);
  EXPECT_EQ(header(r, "WWW-Authenticate"), row.www_authenticate ? "Bearer realm=\"ringmail\"" : "");
  if (!row.body_json.empty()) {
    EXPECT_EQ(json::parse(r.body, nullptr, false), json::parse(row.body_json)) << r.body;
  }

  if (!row.command) {
    EXPECT_TRUE(daemon.commands.empty()) << "no command for this request";
    return;
  }
  ASSERT_EQ(daemon.commands.size(), 1u);
  const mta::AdminCommand& got = daemon.commands[0];
  EXPECT_EQ(got.kind, row.command->kind);
  EXPECT_EQ(got.target, row.command->target);
  EXPECT_EQ(got.reason, row.command->reason);
  const runtime::WallTime until =
      row.command->until ? clock.wall() + *row.command->until : runtime::WallTime{};
  EXPECT_EQ(got.until, until);
}

void run_all(const std::vector<Row>& rows) {
  for (const Row& row : rows) {
    FakeDaemon daemon;
    run(row, daemon);
  }
}

// --- auth

TEST(AdminRouter, TheAdminTokenGuardsTheApiAndOptionallyMetrics) {
  const std::string token = kToken;
  const std::string stats = "/api/v1/stats";
  run_all({
      get("no Authorization header", stats)
          .no_authorization()
          .unauthorized("Authorization: Bearer TOKEN is required"),
      get("another scheme", stats)
          .authorization("Basic YWRtaW46czNjcmV0")
          .unauthorized("not the admin token"),
      get("the token in another scheme", stats).authorization("Token " + token).unauthorized(),
      get("differs in the last byte", stats)
          .authorization("Bearer " + token.substr(0, token.size() - 1) + "e")
          .unauthorized("not the admin token"),
      get("one byte longer", stats).authorization("Bearer " + token + "f").unauthorized(),
      get("one byte shorter", stats)
          .authorization("Bearer " + token.substr(0, token.size() - 1))
          .unauthorized(),
      get("the scheme alone", stats).authorization("Bearer").unauthorized(),
      get("no token configured refuses an empty bearer", stats)
          .authorization("Bearer ")
          .configured_token("")
          .unauthorized(),
      post("no token configured refuses the old token", "/api/v1/delivery/pause")
          .configured_token("")
          .unauthorized(),
      get("the scheme is case-insensitive", stats).authorization("bEARER " + token),
      get("spaces around the token", stats).authorization("Bearer   " + token + "  "),
      get("an unknown /api/ route is 401 before 404", "/api/v1/nothing-here")
          .no_authorization()
          .unauthorized(),
      post("a refused POST sends no command", "/api/v1/queue/bounce", R"({"tenant":"app1"})")
          .authorization("Bearer wrong")
          .unauthorized(),
      post("a body too large without the token is 401 first", "/api/v1/queue/suspend")
          .no_authorization()
          .too_large()
          .unauthorized(),
      get("healthz needs no token", "/healthz").no_authorization().answers(R"({"status":"ok"})"),
      get("healthz ignores a wrong token", "/healthz").authorization("Bearer wrong"),
      get("healthz with no token configured", "/healthz").no_authorization().configured_token(""),
      get("metrics without metrics_auth", "/metrics").no_authorization(),
      get("metrics with metrics_auth and no token", "/metrics")
          .no_authorization()
          .with_metrics_auth()
          .unauthorized(),
      get("metrics with metrics_auth and a wrong token", "/metrics")
          .authorization("Bearer wrong")
          .with_metrics_auth()
          .unauthorized(),
      get("metrics with metrics_auth and the token", "/metrics").with_metrics_auth(),
  });
}

TEST(AdminRouter, MetricsIsPrometheusText) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const HttpResponse r = router.handle({"GET", "/metrics", {}, "", "", false}, kToken, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, daemon.metrics_text());
}

struct BearerCase {
  const char* authorization;
  const char* token;
  bool matches;
};

TEST(AdminRouter, BearerMatches) {
  const BearerCase cases[] = {
      {"Bearer tok3n", "tok3n", true},
      {"bearer tok3n", "tok3n", true},
      {"BEARER tok3n", "tok3n", true},
      {"Bearer   tok3n  ", "tok3n", true},
      {"Bearer tok3n", "", false},
      {"Bearer ", "", false},
      {"", "", false},
      {"", "tok3n", false},
      {"Bearer", "tok3n", false},
      {"Bearer ", "tok3n", false},
      {"Bearertok3n", "tok3n", false},
      {"Bearer\ttok3n", "tok3n", false},
      {"Bearer tok3n", "tok3N", false},  // the token itself is case-sensitive
      {"Bearer tok3m", "tok3n", false},
      {"Bearer tok3nn", "tok3n", false},
      {"Bearer tok3", "tok3n", false},
      {"Bearer tok 3n", "tok3n", false},
      {"Basic tok3n", "tok3n", false},
      {"Bearer Bearer tok3n", "tok3n", false},
      {"Bearer tok3n", "Bearer tok3n", false},
  };
  for (const BearerCase& c : cases) {
    EXPECT_EQ(bearer_matches(c.authorization, c.token), c.matches)
        << "'" << c.authorization << "' against '" << c.token << "'";
  }
}

// --- routes and methods

TEST(AdminRouter, UnknownRoutesAre404AndWrongMethods405WithAllow) {
  run_all({
      get("unknown api route", "/api/v1/nothing-here")
          .fails(404, "not found", "no route /api/v1/nothing-here"),
      get("unknown route outside the api", "/nope").no_authorization().fails(404, "not found"),
      get("a trailing slash is another route", "/api/v1/stats/").fails(404, "not found"),
      get("the root", "/").no_authorization().fails(404),
      post("POST /healthz", "/healthz").no_authorization().not_allowed("GET"),
      post("POST /metrics", "/metrics").no_authorization().not_allowed("GET"),
      post("POST /api/v1/stats", "/api/v1/stats").not_allowed("GET"),
      request("DELETE /api/v1/queue", "DELETE", "/api/v1/queue").not_allowed("GET"),
      get("GET /api/v1/queue/suspend", "/api/v1/queue/suspend").not_allowed("POST"),
      request("PUT /api/v1/queue/resume", "PUT", "/api/v1/queue/resume", R"({"site":"a"})")
          .not_allowed("POST"),
      get("GET /api/v1/queue/bounce", "/api/v1/queue/bounce").not_allowed("POST"),
      post("POST /api/v1/events", "/api/v1/events").not_allowed("GET"),
      get("GET /api/v1/reload", "/api/v1/reload").not_allowed("POST"),
      get("GET /api/v1/probe", "/api/v1/probe").not_allowed("POST"),
      get("GET /api/v1/delivery/pause", "/api/v1/delivery/pause").not_allowed("POST"),
      request("HEAD /api/v1/delivery/resume", "HEAD", "/api/v1/delivery/resume")
          .not_allowed("POST"),
      request("a lower-case method is no method", "get", "/api/v1/stats").not_allowed("GET"),
      request("HEAD is GET", "HEAD", "/api/v1/stats"),
      request("HEAD /healthz", "HEAD", "/healthz").no_authorization(),
  });
}

TEST(AdminRouter, ABodyOverTheLimitIs413) {
  run_all({
      post("suspend", "/api/v1/queue/suspend", std::string(1000, '{'))
          .too_large()
          .fails(413, "request body too large", std::to_string(kMaxRequestBody)),
      get("even on a GET route", "/api/v1/stats").too_large().fails(413),
  });
}

// --- bodies and fields

TEST(AdminRouter, BadBodiesAndFieldsAre400WithTheReason) {
  const std::string s = "/api/v1/queue/suspend";
  const std::string r = "/api/v1/queue/resume";
  const std::string b = "/api/v1/queue/bounce";
  run_all({
      post("no body", s).fails(400, "bad request", "a JSON object body is required"),
      post("malformed", s, R"({"site": "a",)").fails(400, "malformed JSON"),
      post("trailing garbage", s, R"({"site":"a","duration":"1h"} x)").fails(400, "malformed JSON"),
      post("two objects", s, R"({"site":"a","duration":"1h"}{"site":"b","duration":"1h"})")
          .fails(400, "malformed JSON"),
      post("not UTF-8", s, "{\"site\":\"\xff\xfe\",\"duration\":\"1h\"}")
          .fails(400, "malformed JSON"),
      post("an array", s, R"([{"site":"a"}])").fails(400, "bad request", "must be a JSON object"),
      post("a string", s, R"("site")").fails(400, "bad request", "must be a JSON object"),
      post("null", r, "null").fails(400, "bad request", "must be a JSON object"),
      post("deeply nested", b, deep_array(100000)).fails(400, "bad request", "a JSON object"),
      post("unknown field", s, R"({"site":"a","duration":"1h","force":true})")
          .fails(400, "unknown field", "force: not a field"),
      post("resume takes no duration", r, R"({"site":"a","duration":"1h"})")
          .fails(400, "unknown field", "duration"),
      post("bounce takes no duration", b, R"({"site":"a","duration":"1h"})")
          .fails(400, "unknown field"),
      post("field names are case-sensitive", r, R"({"Site":"a"})").fails(400, "unknown field"),
      post("both site and domain", s, R"({"site":"a","domain":"b.test","duration":"1h"})")
          .fails(400, "bad request", R"(give only one of "site", "domain")"),
      post("neither", s, R"({"duration":"1h"})")
          .fails(400, "bad request", R"(one of "site", "domain" is required)"),
      post("resume, neither", r, "{}").fails(400, "bad request", "is required"),
      post("bounce, two targets", b, R"({"campaign":"c","tenant":"t"})")
          .fails(400, "bad request", R"(give only one of "site", "domain", "campaign", "tenant")"),
      post("bounce, only a reason", b, R"({"reason":"purge"})")
          .fails(400, "bad request",
                 R"(one of "site", "domain", "campaign", "tenant" is required)"),
      post("site a number", s, R"({"site":5,"duration":"1h"})")
          .fails(400, "bad field", "site: must be a string"),
      post("domain an array", r, R"({"domain":["a"]})")
          .fails(400, "bad field", "domain: must be a string"),
      post("tenant an object", b, R"({"tenant":{}})")
          .fails(400, "bad field", "tenant: must be a string"),
      post("campaign a bool", b, R"({"campaign":true})")
          .fails(400, "bad field", "campaign: must be a string"),
      post("duration a number", s, R"({"site":"a","duration":3600})")
          .fails(400, "bad field", "duration: must be a string"),
      post("reason a number", b, R"({"site":"a","reason":1})")
          .fails(400, "bad field", "reason: must be a string"),
      post("empty site", s, R"({"site":"","duration":"1h"})")
          .fails(400, "bad field", "site: must not be empty"),
      // null is absence, as for every optional field.
      post("null site", s, R"({"site":null,"duration":"1h"})")
          .fails(400, "bad request", "is required"),
      post("empty domain beside a site", r, R"({"site":"a","domain":""})")
          .fails(400, "bad field", "domain: must not be empty"),
      post("empty tenant", b, R"({"tenant":""})")
          .fails(400, "bad field", "tenant: must not be empty"),
      post("no duration", s, R"({"site":"a"})").fails(400, "bad field", "duration: required"),
      post("empty duration", s, R"({"site":"a","duration":""})")
          .fails(400, "bad field", "duration: required"),
      post("duration in words", s, R"({"site":"a","duration":"1 hour"})")
          .fails(400, "bad field", R"(duration: "1 hour" is not a duration)"),
      post("duration in years", s, R"({"site":"a","duration":"1y"})")
          .fails(400, "bad field", "is not a duration"),
      post("negative duration", s, R"({"site":"a","duration":"-1h"})")
          .fails(400, "bad field", "is not a duration"),
      post("fractional duration", s, R"({"site":"a","duration":"1.5h"})")
          .fails(400, "bad field", "is not a duration"),
      post("zero seconds", s, R"({"site":"a","duration":"0s"})")
          .fails(400, "bad field", "is not a duration"),
      post("zero minutes", s, R"({"domain":"a.test","duration":"0m"})")
          .fails(400, "bad field", "is not a duration"),
      post("a count too big to multiply", s, R"({"site":"a","duration":"99999999999999999d"})")
          .fails(400, "bad field", "is not a duration"),
      post("31 days", s, R"({"site":"a","duration":"31d"})")
          .fails(400, "bad field", "duration: at most 30d"),
      post("30 days and an hour", s, R"({"site":"a","duration":"721h"})")
          .fails(400, "bad field", "at most 30d"),
      post("30 days and a millisecond", s, R"({"site":"a","duration":"2592000001ms"})")
          .fails(400, "bad field", "at most 30d"),
      post("a duration text over 32 bytes", s,
           R"({"site":"a","duration":")" + std::string(32, '0') + R"(1h"})")
          .fails(400, "bad field", "duration: longer than 32 bytes"),
      post("a site of 256 bytes", s,
           R"({"site":")" + std::string(256, 's') + R"(","duration":"1h"})")
          .fails(400, "bad field", "site: longer than 255 bytes"),
      post("a reason of 1001 bytes", b,
           R"({"site":"a","reason":")" + std::string(1001, 'r') + R"("})")
          .fails(400, "bad field", "reason: longer than 1000 bytes"),
      post("a newline in the site", s, R"({"site":"a\nb","duration":"1h"})")
          .fails(400, "bad field", "site: control characters"),
      post("a carriage return in the domain", r, R"({"domain":"a.test\r"})")
          .fails(400, "bad field", "domain: control characters"),
      post("a NUL in the tenant", b, R"({"tenant":"app\u00001"})")
          .fails(400, "bad field", "tenant: control characters"),
      post("a newline in the reason", b, R"({"site":"a","reason":"one\ntwo"})")
          .fails(400, "bad field", "reason: control characters"),
  });
}

// --- commands

TEST(AdminRouter, CommandsReachTheDaemonAsTheOperatorMeantThem) {
  const std::string s = "/api/v1/queue/suspend";
  const std::string r = "/api/v1/queue/resume";
  const std::string b = "/api/v1/queue/bounce";
  const std::string site255(255, 's');
  const std::string reason1000 = "a\t" + std::string(998, 'r');
  run_all({
      post("suspend a site for an hour", s, R"({"site":"mx.Example.test","duration":"1h"})")
          .answers(R"({"suspended":{"site":"mx.Example.test","until":"2026-01-01T01:00:00.000Z"}})")
          .sends(Kind::suspend_site, "mx.Example.test", 1h),
      post("suspend a domain, lower-cased", s, R"({"domain":"Gmail.COM","duration":"15m"})")
          .answers(R"({"suspended":{"domain":"gmail.com","until":"2026-01-01T00:15:00.000Z"}})")
          .sends(Kind::suspend_domain, "gmail.com", 15min),
      post("suspend for the longest allowed", s, R"({"site":"a","duration":"30d"})")
          .answers(R"({"suspended":{"site":"a","until":"2026-01-31T00:00:00.000Z"}})")
          .sends(Kind::suspend_site, "a", std::chrono::hours(24 * 30)),
      post("suspend for a millisecond", s, R"({"duration":"1ms","site":"a"})")
          .sends(Kind::suspend_site, "a", 1ms),
      post("suspend for two days", s, R"({"site":"a","duration":"2d"})")
          .sends(Kind::suspend_site, "a", std::chrono::hours(48)),
      post("a null reason is no reason", b, R"({"tenant":"app1","reason":null})")
          .sends(Kind::bounce_tenant, "app1"),
      post("a site name of 255 bytes", s, R"({"site":")" + site255 + R"(","duration":"1s"})")
          .sends(Kind::suspend_site, site255, 1s),
      post("resume a site", r, R"({"site":"mx.example.test"})")
          .answers(R"({"resumed":{"site":"mx.example.test"}})")
          .sends(Kind::resume_site, "mx.example.test"),
      post("resume a domain, lower-cased", r, R"({"domain":"B.Test"})")
          .answers(R"({"resumed":{"domain":"b.test"}})")
          .sends(Kind::resume_domain, "b.test"),
      post("bounce a site", b, R"({"site":"mx.example.test","reason":"site retired"})")
          .answers(R"({"bounced":0})")
          .sends(Kind::bounce_site, "mx.example.test", std::nullopt, "site retired"),
      post("bounce a domain, lower-cased", b, R"({"domain":"Old.Example","reason":"gone"})")
          .sends(Kind::bounce_domain, "old.example", std::nullopt, "gone"),
      post("bounce a campaign, as written", b, R"({"campaign":"Spring-2026","reason":"purge"})")
          .sends(Kind::bounce_campaign, "Spring-2026", std::nullopt, "purge"),
      post("bounce a tenant, no reason", b, R"({"tenant":"app1"})")
          .sends(Kind::bounce_tenant, "app1"),
      post("a reason of 1000 bytes with a tab", b,
           R"({"tenant":"app1","reason":"a\t)" + std::string(998, 'r') + R"("})")
          .sends(Kind::bounce_tenant, "app1", std::nullopt, reason1000),
      post("pause delivery", "/api/v1/delivery/pause")
          .answers(R"({"paused":true})")
          .sends(Kind::pause_all, ""),
      post("pause delivery ignores a body", "/api/v1/delivery/pause", "not json")
          .sends(Kind::pause_all, ""),
      post("resume delivery", "/api/v1/delivery/resume")
          .answers(R"({"paused":false})")
          .sends(Kind::resume_all, ""),
  });
}

TEST(AdminRouter, ABounceAnswersHowManyRecipientsLeft) {
  FakeDaemon daemon;
  daemon.bounced = 42;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const HttpResponse r = router.handle(
      {"POST", "/api/v1/queue/bounce", {}, kGoodAuth, R"({"campaign":"x"})", false}, kToken, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"bounced":42})"));
}

struct FailureCase {
  const char* path;
  const char* body;
  const char* error;
};

TEST(AdminRouter, ACommandTheDaemonCannotCarryOutIs500WithItsError) {
  const FailureCase cases[] = {
      {"/api/v1/queue/suspend", R"({"site":"a","duration":"1h"})", "suspend failed"},
      {"/api/v1/queue/resume", R"({"domain":"a.test"})", "resume failed"},
      {"/api/v1/queue/bounce", R"({"site":"a"})", "bounce failed"},
      {"/api/v1/delivery/pause", "", "pause failed"},
      {"/api/v1/delivery/resume", "", "resume failed"},
  };
  for (const FailureCase& c : cases) {
    SCOPED_TRACE(c.path);
    FakeDaemon daemon;
    daemon.command_error = "spool: writing control state: MDB_MAP_FULL";
    runtime::FakeClock clock;
    AdminRouter router(daemon, clock);
    const HttpResponse r =
        router.handle({"POST", c.path, {}, kGoodAuth, c.body, false}, kToken, false);
    EXPECT_EQ(r.status, 500);
    expect_error_shape(r);
    const json body = json::parse(r.body);
    EXPECT_EQ(body["error"], c.error);
    EXPECT_EQ(body["detail"], daemon.command_error);
    EXPECT_EQ(daemon.commands.size(), 1u);
  }
}

TEST(AdminRouter, ASnapshotThatDoesNotComeIs500) {
  for (const char* path : {"/api/v1/stats", "/api/v1/queue"}) {
    SCOPED_TRACE(path);
    FakeDaemon daemon;
    daemon.answers = false;
    runtime::FakeClock clock;
    AdminRouter router(daemon, clock);
    const HttpResponse r = router.handle({"GET", path, {}, kGoodAuth, "", false}, kToken, false);
    EXPECT_EQ(r.status, 500);
    expect_error_shape(r);
    EXPECT_EQ(json::parse(r.body)["error"], "delivery not answering");
  }
}

// --- health and reload

TEST(AdminRouter, HealthzSaysWhyItIsUnavailable) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  HttpResponse r = router.handle({"GET", "/healthz", {}, "", "", false}, "", false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"status":"ok"})"));

  daemon.unhealthy = "spool closed";
  r = router.handle({"GET", "/healthz", {}, "", "", false}, "", false);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"status":"unavailable","reason":"spool closed"})"));
}

TEST(AdminRouter, ReloadAnswersReloadedOrEveryErrorOnItsLine) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  HttpResponse r =
      router.handle({"POST", "/api/v1/reload", {}, kGoodAuth, "", false}, kToken, false);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"status":"reloaded"})"));
  EXPECT_EQ(daemon.reloads, 1);

  daemon.reload_errors = {"ringmail.yaml:12: delivery.retry.max_age: not a duration",
                          "ringmail.yaml:30: policy.shaping[2].domain: empty"};
  r = router.handle({"POST", "/api/v1/reload", {}, kGoodAuth, "", false}, kToken, false);
  EXPECT_EQ(r.status, 400);
  expect_error_shape(r);
  const json body = json::parse(r.body);
  EXPECT_EQ(body["error"], "config invalid");
  EXPECT_EQ(body["detail"],
            "ringmail.yaml:12: delivery.retry.max_age: not a duration\n"
            "ringmail.yaml:30: policy.shaping[2].domain: empty");
  EXPECT_EQ(daemon.reloads, 2);
  EXPECT_TRUE(daemon.commands.empty());
}

// --- stats and queue

mta::DeliverySnapshot canned_snapshot() {
  mta::DeliverySnapshot snap;
  snap.totals.received = 10;
  snap.totals.delivered = 5;
  snap.totals.deferred = 3;
  snap.totals.bounced = 2;
  snap.totals.expired = 1;
  snap.totals.admin_bounced = 4;
  snap.totals.bounced_by_category = {{"InvalidRecipient", 2}, {"MessageExpired", 1}};
  snap.queued = 7;
  snap.in_flight = 1;
  mta::SiteSnapshot a;
  a.site = "mx.a.test";
  a.domains = {"a.test", "b.test"};
  a.queued = 6;
  a.deferred = 2;
  a.in_flight = 1;
  a.delivered = 5;
  a.bounced = 3;
  a.suspended_until = runtime::WallTime(runtime::Millis(kNowMs + 3600 * 1000));
  mta::SiteSnapshot c;
  c.site = "192.0.2.50:25";
  c.source = "pool-a";
  c.domains = {"c.test"};
  c.queued = 1;
  snap.sites = {a, c};
  return snap;
}

TEST(AdminRouter, StatsHasEveryKeyTheContractLists) {
  FakeDaemon daemon;
  daemon.snap = canned_snapshot();
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const HttpResponse r =
      router.handle({"GET", "/api/v1/stats", {}, kGoodAuth, "", false}, kToken, false);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_EQ(daemon.idle_sites, std::vector<bool>{true}) << "stats shows sites idle now";
  const json body = json::parse(r.body);
  // CONTRACT "Control plane in detail": GET /api/v1/stats.
  for (const char* key : {"received", "delivered", "deferred", "bounced", "expired", "suppressed",
                          "cancelled", "complaints", "queued"}) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(body.contains(key));
    EXPECT_TRUE(body[key].is_number_unsigned() || body[key].is_number_integer());
  }
  EXPECT_EQ(body["received"], 10);
  EXPECT_EQ(body["delivered"], 5);
  EXPECT_EQ(body["deferred"], 3);
  EXPECT_EQ(body["bounced"], 2);
  EXPECT_EQ(body["expired"], 1);
  EXPECT_EQ(body["queued"], 7);
  EXPECT_EQ(body["in_flight"], 1);
  EXPECT_EQ(body["admin_bounced"], 4);
  EXPECT_EQ(body["bounced_by_category"],
            json::parse(R"({"InvalidRecipient":2,"MessageExpired":1})"));
  ASSERT_TRUE(body["sites"].is_array());
  ASSERT_EQ(body["sites"].size(), 2u);
  // SITE, every key.
  EXPECT_EQ(body["sites"][0], json::parse(R"({
      "site": "mx.a.test", "source": "default", "domains": ["a.test", "b.test"],
      "queued": 6, "deferred": 2, "in_flight": 1, "delivered": 5, "bounced": 3,
      "suspended_until": "2026-01-01T01:00:00.000Z", "backoff": null, "circuit": null})"));
  EXPECT_EQ(body["sites"][1], json::parse(R"({
      "site": "192.0.2.50:25", "source": "pool-a", "domains": ["c.test"],
      "queued": 1, "deferred": 0, "in_flight": 0, "delivered": 0, "bounced": 0,
      "suspended_until": null, "backoff": null, "circuit": null})"));
}

TEST(AdminRouter, StatsOfAnEmptyDaemon) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  const HttpResponse r =
      router.handle({"GET", "/api/v1/stats", {}, kGoodAuth, "", false}, kToken, false);
  ASSERT_EQ(r.status, 200);
  const json body = json::parse(r.body);
  EXPECT_TRUE(body["bounced_by_category"].is_object()) << "{} rather than null";
  EXPECT_TRUE(body["sites"].is_array()) << "[] rather than null";
}

struct QueueCase {
  const char* name;
  Query query;
  int status;
  mta::QueueFilter filter;  // site, domain, campaign, tenant the daemon was asked (when 200)
  const char* detail;
};

TEST(AdminRouter, QueueFiltersReachTheSnapshot) {
  const std::string long_value(256, 'x');
  const QueueCase cases[] = {
      {"no filter", {}, 200, {}, ""},
      {"site", {{"site", "mx.a.test"}}, 200, {"mx.a.test", "", "", ""}, ""},
      {"domain, lower-cased", {{"domain", "A.Test"}}, 200, {"", "a.test", "", ""}, ""},
      {"campaign, as given", {{"campaign", "Spring"}}, 200, {"", "", "Spring", ""}, ""},
      {"tenant", {{"tenant", "app1"}}, 200, {"", "", "", "app1"}, ""},
      {"all four",
       {{"site", "s"}, {"domain", "D.test"}, {"campaign", "c"}, {"tenant", "t"}},
       200,
       {"s", "d.test", "c", "t"},
       ""},
      {"the last of a repeated one", {{"site", "a"}, {"site", "b"}}, 200, {"b", "", "", ""}, ""},
      {"unknown filter",
       {{"state", "deferred"}},
       400,
       {},
       "state: filters are site, domain, campaign and tenant"},
      {"unknown after a good one", {{"site", "a"}, {"Site", "b"}}, 400, {}, "Site: filters"},
      {"a value of 256 bytes", {{"campaign", long_value}}, 400, {}, "campaign: too long"},
  };
  for (const QueueCase& c : cases) {
    SCOPED_TRACE(c.name);
    FakeDaemon daemon;
    daemon.snap = canned_snapshot();
    runtime::FakeClock clock;
    AdminRouter router(daemon, clock);
    const HttpResponse r =
        router.handle({"GET", "/api/v1/queue", c.query, kGoodAuth, "", false}, kToken, false);
    ASSERT_EQ(r.status, c.status) << r.body;
    if (c.status != 200) {
      expect_error_shape(r);
      EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find(c.detail), std::string::npos)
          << r.body;
      EXPECT_TRUE(daemon.filters.empty());
      continue;
    }
    ASSERT_EQ(daemon.filters.size(), 1u);
    EXPECT_EQ(daemon.idle_sites, std::vector<bool>{false});
    const mta::QueueFilter& got = daemon.filters[0];
    EXPECT_EQ(got.site, c.filter.site);
    EXPECT_EQ(got.domain, c.filter.domain);
    EXPECT_EQ(got.campaign, c.filter.campaign);
    EXPECT_EQ(got.tenant, c.filter.tenant);
    const json body = json::parse(r.body);
    EXPECT_EQ(body.size(), 2u);
    EXPECT_EQ(body["total"], 7);
    ASSERT_EQ(body["sites"].size(), 2u);
    EXPECT_EQ(body["sites"][0]["site"], "mx.a.test");
  }
}

// --- events

struct EventsCase {
  const char* name;
  Query query;
  bool has_delivery_log;
  int status;
  std::vector<std::string> types;  // when 200
  const char* detail;
};

TEST(AdminRouter, EventsValidatesTypesAndAsksForAStream) {
  const EventsCase cases[] = {
      {"every type", {}, true, 200, {}, ""},
      {"two types", {{"types", "Delivery,Bounce"}}, true, 200, {"Delivery", "Bounce"}, ""},
      {"every CONTRACT type",
       {{"types",
         "Reception,Delivery,TransientFailure,Bounce,Expiration,AdminBounce,Cancelled,"
         "Suppressed,Feedback"}},
       true,
       200,
       {"Reception", "Delivery", "TransientFailure", "Bounce", "Expiration", "AdminBounce",
        "Cancelled", "Suppressed", "Feedback"},
       ""},
      {"repeated parameter",
       {{"types", "Delivery"}, {"types", "Expiration"}},
       true,
       200,
       {"Delivery", "Expiration"},
       ""},
      {"an unknown type",
       {{"types", "Delivery,Nope"}},
       true,
       400,
       {},
       R"(types: "Nope" is not a delivery-log record type)"},
      {"types are case-sensitive", {{"types", "delivery"}}, true, 400, {}, R"("delivery")"},
      {"empty", {{"types", ""}}, true, 400, {}, R"(types: "")"},
      {"a trailing comma", {{"types", "Delivery,"}}, true, 400, {}, R"(types: "")"},
      {"a space", {{"types", "Delivery, Bounce"}}, true, 400, {}, R"(" Bounce")"},
      {"unknown parameter", {{"type", "Delivery"}}, true, 400, {}, "type: the filter is types"},
      {"no delivery log", {}, false, 404, {}, "set log.delivery_log"},
      {"a bad type before the missing log", {{"types", "x"}}, false, 400, {}, R"("x")"},
  };
  for (const EventsCase& c : cases) {
    SCOPED_TRACE(c.name);
    FakeDaemon daemon;
    daemon.has_delivery_log = c.has_delivery_log;
    runtime::FakeClock clock;
    AdminRouter router(daemon, clock);
    const HttpResponse r =
        router.handle({"GET", "/api/v1/events", c.query, kGoodAuth, "", false}, kToken, false);
    ASSERT_EQ(r.status, c.status) << r.body;
    if (c.status != 200) {
      expect_error_shape(r);
      EXPECT_FALSE(r.event_stream);
      EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find(c.detail), std::string::npos)
          << r.body;
      continue;
    }
    EXPECT_TRUE(r.event_stream);
    EXPECT_EQ(r.content_type, "text/event-stream");
    EXPECT_EQ(r.event_types, c.types);
  }
}

TEST(AdminRouter, OtherRoutesAreNoEventStream) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  for (const char* path : {"/api/v1/stats", "/api/v1/queue", "/healthz", "/metrics"}) {
    SCOPED_TRACE(path);
    EXPECT_FALSE(
        router.handle({"GET", path, {}, kGoodAuth, "", false}, kToken, false).event_stream);
  }
}

// --- probe

class FakeProber final : public Prober {
 public:
  nlohmann::ordered_json probe(const std::string& domain) override {
    domains.push_back(domain);
    return {{"domain", domain}, {"site", "mx." + domain}, {"error", nullptr}};
  }
  std::vector<std::string> domains;
};

struct ProbeCase {
  const char* name;
  std::string body;
  int status;
  std::string probed;  // the domain the prober got ("" = not asked)
  const char* detail;
};

TEST(AdminRouter, ProbeChecksItsDomainBeforeTheProberConnects) {
  const ProbeCase cases[] = {
      {"a domain, lower-cased", R"({"domain":"Gmail.COM"})", 200, "gmail.com", ""},
      {"an address literal", R"({"domain":"[192.0.2.1]"})", 200, "[192.0.2.1]", ""},
      {"no body", "", 400, "", "a JSON object body is required"},
      {"no domain", "{}", 400, "", R"(one of "domain" is required)"},
      {"a site is no probe field", R"({"site":"mx.a.test"})", 400, "", "site: not a field"},
      {"an empty domain", R"({"domain":""})", 400, "", "domain: must not be empty"},
      {"a number", R"({"domain":1})", 400, "", "domain: must be a string"},
      {"a space", R"({"domain":"a .test"})", 400, "", "domain: not a domain name"},
      {"a tab", R"({"domain":"a\t.test"})", 400, "", "domain: not a domain name"},
      {"a slash", R"({"domain":"a.test/x"})", 400, "", "domain: not a domain name"},
      {"a backslash", R"({"domain":"a\\b"})", 400, "", "domain: not a domain name"},
      {"an address", R"({"domain":"u@a.test"})", 400, "", "domain: not a domain name"},
      {"a newline", R"({"domain":"a.test\nHELO x"})", 400, "", "domain: control characters"},
      {"too long", R"({"domain":")" + std::string(256, 'd') + R"("})", 400, "",
       "longer than 255 bytes"},
  };
  for (const ProbeCase& c : cases) {
    SCOPED_TRACE(c.name);
    FakeDaemon daemon;
    FakeProber prober;
    runtime::FakeClock clock;
    AdminRouter router(daemon, clock);
    router.set_prober(&prober);
    const HttpResponse r =
        router.handle({"POST", "/api/v1/probe", {}, kGoodAuth, c.body, false}, kToken, false);
    ASSERT_EQ(r.status, c.status) << r.body;
    EXPECT_TRUE(daemon.commands.empty());
    if (c.status != 200) {
      expect_error_shape(r);
      EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find(c.detail), std::string::npos)
          << r.body;
      EXPECT_TRUE(prober.domains.empty()) << "refused before any connection";
      continue;
    }
    EXPECT_EQ(prober.domains, std::vector<std::string>{c.probed});
    EXPECT_EQ(json::parse(r.body)["site"], "mx." + c.probed);
  }
}

TEST(AdminRouter, ProbeWithoutAProberIs404AndStillNeedsTheToken) {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  HttpResponse r = router.handle(
      {"POST", "/api/v1/probe", {}, kGoodAuth, R"({"domain":"a.test"})", false}, kToken, false);
  EXPECT_EQ(r.status, 404);
  expect_error_shape(r);
  EXPECT_EQ(json::parse(r.body)["detail"], "probing is not available here");
  FakeProber prober;
  router.set_prober(&prober);
  r = router.handle({"POST", "/api/v1/probe", {}, "", R"({"domain":"a.test"})", false}, kToken,
                    false);
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(prober.domains.empty());
}

// --- explain

// Google's MX for gmail.com, a route for *.routed.test, no MX for gone.test,
// a failing look-up for broken.test; records what it was asked.
class FakeDestinations final : public DestinationFinder {
 public:
  Destination find(const conf::Config&, const std::string& domain) override {
    domains.push_back(domain);
    Destination d;
    d.shaping_domain = domain;
    if (domain == "gmail.com") {
      d.outcome = Destination::Outcome::found;
      d.site = "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com";
      d.hosts = {mta::MxHost{"gmail-smtp-in.l.google.com", 5, {"192.0.2.1"}},
                 mta::MxHost{"alt1.gmail-smtp-in.l.google.com", 10, {"192.0.2.2"}}};
    } else if (domain.ends_with(".routed.test")) {
      d.outcome = Destination::Outcome::found;
      d.site = "192.0.2.9:2525";
      d.shaping_domain = "*.routed.test";
      d.hosts = {mta::MxHost{"192.0.2.9", 0, {"192.0.2.9"}}};
    } else if (domain == "gone.test") {
      d.outcome = Destination::Outcome::no_destination;
      d.error = "DNS: gone.test: no such domain";
    } else {
      d.error = "DNS: " + domain + ": SERVFAIL";
    }
    return d;
  }
  std::vector<std::string> domains;
};

// Two sources, ip1 first in the default pool; rule 0 for one domain, rule
// 1 for Google's MX hosts (per-connection and rate only).
std::shared_ptr<conf::Config> explain_config() {
  auto config = std::make_shared<conf::Config>();
  config->delivery.max_connections_per_site = 32;
  config->delivery.max_messages_per_connection = 100;
  auto policy = std::make_shared<conf::PolicyConfig>();
  policy->sources = {conf::EgressSource{"ip1", *conf::parse_ip_address("192.0.2.10")},
                     conf::EgressSource{"ip2", *conf::parse_ip_address("192.0.2.11")}};
  policy->pools = {conf::EgressPool{"default", {conf::PoolMember{"ip1", 1}}}};
  conf::ShapingRule vip;
  vip.match = {conf::ShapingMatch::Kind::domain, "vip.routed.test"};
  vip.max_connections = 2;
  vip.connection_rate = conf::parse_rate("10/s");
  conf::ShapingRule google;
  google.match = {conf::ShapingMatch::Kind::mx_suffix, ".google.com"};
  google.max_messages_per_connection = 60;
  google.message_rate = conf::parse_rate("300/m");
  policy->shaping = {vip, google};
  config->policy = policy;
  return config;
}

// --- warm-up

TEST(AdminRouter, WarmupListsEveryKeyWithItsAddressAndPool) {
  FakeDaemon daemon;
  daemon.config_ = explain_config();
  policy::WarmupStatus ip1;
  ip1.source = "ip1";
  ip1.started = "2026-12-01";
  ip1.day = 3;
  ip1.cap = 500;
  ip1.window = "1h";
  ip1.sent = 42;
  policy::WarmupStatus ip2;
  ip2.source = "ip2";
  ip2.provider = "gmail";
  ip2.warm = true;
  daemon.snap.warmup = {ip1, ip2};
  runtime::FakeClock clock;
  AdminRouter router(daemon, clock);
  HttpResponse r =
      router.handle({"GET", "/api/v1/warmup", {}, kGoodAuth, "", false}, kToken, false);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"sources": [
    {"source": "ip1", "address": "192.0.2.10", "pool": "default", "provider": null,
     "started": "2026-12-01", "day": 3, "cap": 500, "window": "1h", "sent": 42,
     "state": "warming"},
    {"source": "ip2", "address": "192.0.2.11", "pool": null, "provider": "gmail",
     "started": null, "day": 1, "cap": null, "window": null, "sent": 0, "state": "warm"}]})"));

  r = router.handle({"GET", "/api/v1/warmup", {{"source", "ip1"}}, kGoodAuth, "", false}, kToken,
                    false);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"], "unknown parameter");
  r = router.handle({"POST", "/api/v1/warmup", {}, kGoodAuth, "", false}, kToken, false);
  EXPECT_EQ(r.status, 405);
  r = router.handle({"GET", "/api/v1/warmup", {}, "Bearer wrong", "", false}, kToken, false);
  EXPECT_EQ(r.status, 401);
  daemon.answers = false;
  r = router.handle({"GET", "/api/v1/warmup", {}, kGoodAuth, "", false}, kToken, false);
  EXPECT_EQ(r.status, 500) << "the delivery thread did not answer";
}

struct ExplainSession {
  FakeDaemon daemon;
  FakeDestinations destinations;
  runtime::FakeClock clock;
  AdminRouter router{daemon, clock};
  ExplainSession() {
    daemon.config_ = explain_config();
    router.set_destinations(&destinations);
  }
  HttpResponse get(Query query, std::string auth = kGoodAuth) {
    return router.handle({"GET", "/api/v1/explain", std::move(query), std::move(auth), "", false},
                         kToken, false);
  }
};

TEST(AdminRouter, ExplainListsEveryLimitWithWhatSetIt) {
  ExplainSession s;
  HttpResponse r = s.get({{"domain", "GMail.com"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.destinations.domains, std::vector<std::string>{"gmail.com"});
  // In CONTRACT's order and form; the shipped gmail defaults under rule 1.
  EXPECT_EQ(json::parse(r.body), json::parse(R"({
    "domain": "gmail.com",
    "site": "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com",
    "provider": "gmail", "source": "ip1",
    "limits": [
      {"name": "max_connections", "value": 5, "set_by": "shipped provider gmail"},
      {"name": "max_connections_scope", "value": "provider", "set_by": "shipped provider gmail"},
      {"name": "max_messages_per_connection", "value": 60, "set_by": "policy.shaping[1]"},
      {"name": "message_rate", "value": "300/m", "set_by": "policy.shaping[1]"},
      {"name": "message_rate_burst", "value": 300, "set_by": "policy.shaping[1]"},
      {"name": "connection_rate", "value": "unlimited", "set_by": "delivery defaults"},
      {"name": "tls_required", "value": true, "set_by": "shipped provider gmail"}]})"));
  const std::string body = r.body;
  EXPECT_LT(body.find("\"domain\""), body.find("\"site\""));
  EXPECT_LT(body.find("\"provider\""), body.find("\"limits\""));
  ASSERT_EQ(s.daemon.explained.size(), 1u);
  EXPECT_EQ(s.daemon.explained[0].site,
            "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com");
  EXPECT_EQ(s.daemon.explained[0].source, "ip1");
  EXPECT_EQ(s.daemon.explained[0].source_address, "192.0.2.10");
  EXPECT_EQ(s.daemon.explained[0].provider, "gmail");
  EXPECT_TRUE(s.daemon.commands.empty());
}

TEST(AdminRouter, ExplainOfARoutedDomainSeesTheRoutesDomainAsThePlannerDoes) {
  ExplainSession s;
  // The route's domain is what a domain rule sees (as the planner's site
  // does): "vip.routed.test" is not "*.routed.test", so rule 0 does not
  // match and the test smarthost is no provider's.
  HttpResponse r = s.get({{"domain", "vip.routed.test"}, {"source", "ip2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["site"], "192.0.2.9:2525");
  EXPECT_EQ(body["provider"], nullptr);
  EXPECT_EQ(body["source"], "ip2");
  for (const json& limit : body["limits"]) {
    EXPECT_EQ(limit["set_by"], "delivery defaults") << limit;
  }
  EXPECT_EQ(body["limits"][0], json::parse(R"({"name": "max_connections", "value": 32,
                                               "set_by": "delivery defaults"})"));
  EXPECT_EQ(body["limits"][1]["value"], "site");
  EXPECT_EQ(body["limits"][2]["value"], 100);
  EXPECT_EQ(body["limits"][3]["value"], "unlimited");
  EXPECT_EQ(body["limits"].back(), json::parse(R"({"name": "tls_required", "value": false,
                                                 "set_by": "delivery defaults"})"));
  EXPECT_EQ(s.daemon.explained.at(0).source_address, "192.0.2.11");
  // The machine's default address by its name.
  r = s.get({{"domain", "a.routed.test"}, {"source", "default"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["source"], "default");
  EXPECT_EQ(s.daemon.explained.at(1).source_address, "");
}

TEST(AdminRouter, ExplainAppendsWhatDeliveryAddsAtRunTime) {
  ExplainSession s;
  s.daemon.live_limits = {
      {"message_rate", std::string("10/m"), "backoff 421 4.7.28 until 2026-01-01T00:30:00.000Z"},
      {"warmup_cap", int64_t{50}, "warmup ip1 day 1"},
      {"suspended", true, "backoff [TSS04]"},
      {"until", std::monostate{}, "backoff x"}};
  HttpResponse r = s.get({{"domain", "gmail.com"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json limits = json::parse(r.body)["limits"];
  ASSERT_EQ(limits.size(), 11u) << r.body;
  EXPECT_EQ(limits[7], json::parse(R"({"name": "message_rate", "value": "10/m",
    "set_by": "backoff 421 4.7.28 until 2026-01-01T00:30:00.000Z"})"));
  EXPECT_EQ(limits[8]["value"], 50);
  EXPECT_EQ(limits[9]["value"], true);
  EXPECT_EQ(limits[10]["value"], nullptr);
}

TEST(AdminRouter, ExplainRefusesBadRequestsBeforeAnyLookUp) {
  const struct {
    const char* name;
    Query query;
    int status;
    const char* detail;
    bool looked_up;
  } cases[] = {
      {"no domain", {}, 400, R"(one of "domain" is required)", false},
      {"an empty domain", {{"domain", ""}}, 400, "domain: must not be empty", false},
      {"an address", {{"domain", "u@a.test"}}, 400, "domain: not a domain name", false},
      {"a space", {{"domain", "a .test"}}, 400, "domain: not a domain name", false},
      {"a newline", {{"domain", "a.test\nx"}}, 400, "domain: control characters", false},
      {"too long", {{"domain", std::string(256, 'd')}}, 400, "longer than 255 bytes", false},
      {"twice", {{"domain", "a.test"}, {"domain", "b.test"}}, 400, "domain: given twice", false},
      {"an unknown parameter",
       {{"domain", "a.test"}, {"site", "x"}},
       400,
       "site: the parameters are domain and source",
       false},
      {"an unknown source",
       {{"domain", "gmail.com"}, {"source", "ip9"}},
       400,
       "source: \"ip9\" is not a policy.sources name",
       false},
      {"a source with a control character",
       {{"domain", "gmail.com"}, {"source", "ip\r1"}},
       400,
       "source: control characters",
       false},
      {"no MX", {{"domain", "gone.test"}}, 404, "DNS: gone.test: no such domain", true},
      {"a failed look-up", {{"domain", "broken.test"}}, 500, "DNS: broken.test: SERVFAIL", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ExplainSession s;
    const HttpResponse r = s.get(c.query);
    ASSERT_EQ(r.status, c.status) << r.body;
    expect_error_shape(r);
    EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find(c.detail), std::string::npos)
        << r.body;
    EXPECT_EQ(s.destinations.domains.size(), c.looked_up ? 1u : 0u);
    EXPECT_TRUE(s.daemon.explained.empty());
  }
}

TEST(AdminRouter, ExplainIsAGetThatNeedsTheTokenAndAFinder) {
  ExplainSession s;
  HttpResponse r = s.get({{"domain", "gmail.com"}}, "");
  EXPECT_EQ(r.status, 401);
  r = s.router.handle({"POST", "/api/v1/explain", {{"domain", "gmail.com"}}, kGoodAuth, "", false},
                      kToken, false);
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(header(r, "Allow"), "GET");
  EXPECT_TRUE(s.destinations.domains.empty());
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter bare(daemon, clock);
  r = bare.handle({"GET", "/api/v1/explain", {{"domain", "gmail.com"}}, kGoodAuth, "", false},
                  kToken, false);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["detail"], "explaining is not available here");
}

TEST(AdminDestination, SourcesAsDeliveryChoosesThem) {
  const std::shared_ptr<conf::Config> config = explain_config();
  EXPECT_EQ(default_source(*config).name, "ip1");
  EXPECT_EQ(default_source(*config).address->text, "192.0.2.10");
  EXPECT_EQ(named_source(*config, "ip2")->address->text, "192.0.2.11");
  EXPECT_EQ(named_source(*config, "default")->name, "default");
  EXPECT_FALSE(named_source(*config, "default")->address.has_value());
  EXPECT_FALSE(named_source(*config, "ip9").has_value());
  const conf::Config bare;
  EXPECT_EQ(default_source(bare).name, "default");
  EXPECT_FALSE(named_source(bare, "ip1").has_value());
}

// --- error bodies

TEST(AdminRouter, JsonErrorEscapesWhatItQuotes) {
  const HttpResponse r = json_error(404, "not found", "no route /a\"b\n\xff");
  EXPECT_EQ(r.status, 404);
  const json body = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.body;
  EXPECT_EQ(body["error"], "not found");
  // Invalid UTF-8 is replaced rather than making the body unparseable.
  EXPECT_EQ(body["detail"], "no route /a\"b\n\xEF\xBF\xBD");
  EXPECT_EQ(r.body.back(), '\n');
}

TEST(AdminRouter, A404ForAPathThatIsNotUtf8IsStillJson) {
  run_all({get("binary path", std::string("/\xff\xfe\0x", 5)).no_authorization().fails(404)});
}

// --- campaigns and tenants (a real registry over a memory spool)

struct Session {
  FakeDaemon daemon;
  runtime::FakeClock clock;
  AdminRouter router{daemon, clock};
  HttpResponse call(std::string method, std::string path, std::string body = "") {
    return router.handle(
        {std::move(method), std::move(path), {}, kGoodAuth, std::move(body), false}, kToken, false);
  }
};

TEST(AdminCampaigns, CreateUpdateListAndShowACampaign) {
  Session s;
  auto pools = std::make_shared<conf::PolicyConfig>();
  pools->pools.push_back(conf::EgressPool{"bulk", {}});
  auto config = std::make_shared<conf::Config>();
  config->policy = pools;
  s.daemon.config_ = config;

  HttpResponse r = s.call("POST", "/api/v1/campaigns",
                          R"({"id":"spring","name":"Spring sale","tenant":"app1","pool":"bulk"})");
  ASSERT_EQ(r.status, 201) << r.body;
  json c = json::parse(r.body);
  EXPECT_EQ(c["id"], "spring");
  EXPECT_EQ(c["name"], "Spring sale");
  EXPECT_EQ(c["tenant"], "app1");
  EXPECT_EQ(c["pool"], "bulk");
  EXPECT_EQ(c["message_rate"], nullptr);
  EXPECT_EQ(c["state"], "active");
  EXPECT_EQ(c["created"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(c["stats"]["received"], 0);
  EXPECT_EQ(c["stats"]["queued"], 0);
  EXPECT_TRUE(c["stats"]["bounced_by_category"].is_object());

  // An update keeps what it does not name.
  s.clock.advance(std::chrono::minutes(5));
  r = s.call("POST", "/api/v1/campaigns", R"({"id":"spring","message_rate":"300/m"})");
  ASSERT_EQ(r.status, 200) << r.body;
  c = json::parse(r.body);
  EXPECT_EQ(c["message_rate"], "300/m");
  EXPECT_EQ(c["pool"], "bulk");
  EXPECT_EQ(c["created"], "2026-01-01T00:00:00.000Z") << "created stays";

  ASSERT_EQ(s.call("POST", "/api/v1/campaigns", R"({"id":"autumn","tenant":"app2"})").status, 201);
  r = s.call("GET", "/api/v1/campaigns");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["campaigns"].size(), 2u);
  HttpRequest filtered{"GET", "/api/v1/campaigns", {{"tenant", "app2"}}, kGoodAuth, "", false};
  r = s.router.handle(filtered, kToken, false);
  ASSERT_EQ(json::parse(r.body)["campaigns"].size(), 1u);
  EXPECT_EQ(json::parse(r.body)["campaigns"][0]["id"], "autumn");

  r = s.call("GET", "/api/v1/campaigns/spring");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["name"], "Spring sale");
  r = s.call("GET", "/api/v1/campaigns/nope");
  EXPECT_EQ(r.status, 404);
  expect_error_shape(r);
}

TEST(AdminCampaigns, StatsComeFromTheSpoolsCommits) {
  Session s;
  queue::SpoolMessage m = queue::testing::make_test_message(2, 100, "spring");
  queue::SpoolMessage* batch[] = {&m};
  ASSERT_TRUE(s.daemon.spool.commit(batch, {}, {}).ok());
  queue::RecipientUpdate bounced{m.id, 1, queue::RecipientState::bounced, 1, 0};
  bounced.category = conf::BounceCategory::InvalidRecipient;
  const queue::RecipientUpdate updates[] = {{m.id, 0, queue::RecipientState::delivered, 1, 0},
                                            bounced};
  ASSERT_TRUE(s.daemon.spool.commit({}, updates, {}).ok());
  HttpResponse r = s.call("GET", "/api/v1/campaigns/spring");
  ASSERT_EQ(r.status, 200) << "the message made the campaign";
  const json c = json::parse(r.body);
  EXPECT_EQ(c["tenant"], "app1");
  EXPECT_EQ(c["stats"]["received"], 2);
  EXPECT_EQ(c["stats"]["delivered"], 1);
  EXPECT_EQ(c["stats"]["bounced"], 1);
  EXPECT_EQ(c["stats"]["bounced_by_category"], json({{"InvalidRecipient", 1}}));
  EXPECT_EQ(c["stats"]["queued"], 0);

  r = s.call("GET", "/api/v1/tenants/app1");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["stats"]["received"], 2);
  EXPECT_EQ(json::parse(r.body)["state"], "active");
  r = s.call("GET", "/api/v1/tenants");
  EXPECT_EQ(json::parse(r.body)["tenants"].size(), 1u);
}

TEST(AdminCampaigns, PauseResumeAndCancelPersistThenTellDelivery) {
  Session s;
  ASSERT_EQ(s.call("POST", "/api/v1/campaigns", R"({"id":"spring"})").status, 201);
  HttpResponse r = s.call("POST", "/api/v1/campaigns/spring/pause");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["state"], "paused");
  ASSERT_EQ(s.daemon.commands.size(), 1u);
  EXPECT_EQ(s.daemon.commands[0].kind, Kind::pause_campaign);
  EXPECT_EQ(s.daemon.commands[0].target, "spring");
  EXPECT_EQ(json::parse(s.call("GET", "/api/v1/campaigns/spring").body)["state"], "paused")
      << "persisted";

  r = s.call("POST", "/api/v1/campaigns/spring/resume");
  EXPECT_EQ(json::parse(r.body)["state"], "active");
  EXPECT_EQ(s.daemon.commands.back().kind, Kind::resume_campaign);

  EXPECT_FALSE(s.daemon.gate.refuses("spring"));
  r = s.call("POST", "/api/v1/campaigns/spring/cancel");
  EXPECT_EQ(json::parse(r.body)["state"], "cancelled");
  EXPECT_EQ(s.daemon.commands.back().kind, Kind::cancel_campaign);
  EXPECT_TRUE(s.daemon.gate.refuses("spring")) << "later mail naming it is refused";
  // Cancelled is for good.
  r = s.call("POST", "/api/v1/campaigns/spring/resume");
  EXPECT_EQ(r.status, 409);
  expect_error_shape(r);
  EXPECT_EQ(s.call("POST", "/api/v1/campaigns/spring/cancel").status, 200);

  // A delivery thread that does not answer: saved, but the client hears 500.
  ASSERT_EQ(s.call("POST", "/api/v1/campaigns", R"({"id":"autumn"})").status, 201);
  s.daemon.command_error = "the delivery thread did not answer in time";
  r = s.call("POST", "/api/v1/campaigns/autumn/pause");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find("did not answer"),
            std::string::npos);
}

TEST(AdminCampaigns, TenantKillSwitchSendsPersistedHolds) {
  Session s;
  HttpResponse r = s.call("POST", "/api/v1/tenants/app1/pause");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["name"], "app1");
  EXPECT_EQ(json::parse(r.body)["state"], "paused");
  ASSERT_EQ(s.daemon.commands.size(), 1u);
  EXPECT_EQ(s.daemon.commands[0].kind, Kind::pause_tenant);
  // A relay tenant's name has a slash, sent as %2F (decoded by the server).
  r = s.call("POST", "/api/v1/tenants/127.0.0.0/8/resume");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.daemon.commands.back().kind, Kind::resume_tenant);
  EXPECT_EQ(s.daemon.commands.back().target, "127.0.0.0/8");
  EXPECT_EQ(json::parse(r.body)["state"], "active");
}

TEST(AdminCampaigns, BadRequestsAreNamedErrors) {
  run_all({
      post("no body", "/api/v1/campaigns").fails(400, "bad request"),
      post("no id", "/api/v1/campaigns", R"({"name":"x"})").fails(400, "bad field", "id: required"),
      post("bad id", "/api/v1/campaigns", R"({"id":"has space"})").fails(400, "bad field", "id:"),
      post("id too long", "/api/v1/campaigns", json({{"id", std::string(65, 'a')}}).dump())
          .fails(400, "bad field", "id:"),
      post("id not a string", "/api/v1/campaigns", R"({"id":7})")
          .fails(400, "bad field", "id: must be a string"),
      post("unknown field", "/api/v1/campaigns", R"({"id":"a","colour":"red"})")
          .fails(400, "unknown field", "colour"),
      post("unknown pool", "/api/v1/campaigns", R"({"id":"a","pool":"nope"})")
          .fails(400, "bad field", "pool: unknown pool \"nope\""),
      post("bad rate", "/api/v1/campaigns", R"({"id":"a","message_rate":"fast"})")
          .fails(400, "bad field", "message_rate:"),
      post("name with a newline", "/api/v1/campaigns", R"({"id":"a","name":"x\ny"})")
          .fails(400, "bad field", "name: control characters"),
      request("DELETE the list", "DELETE", "/api/v1/campaigns").not_allowed("GET, POST"),
      post("POST one campaign", "/api/v1/campaigns/a").not_allowed("GET"),
      get("GET an action", "/api/v1/campaigns/a/pause").not_allowed("POST"),
      post("pause an unknown campaign", "/api/v1/campaigns/nope/pause").fails(404, "not found"),
      post("unknown action", "/api/v1/campaigns/a/explode").fails(404, "not found"),
      get("empty id", "/api/v1/campaigns/").fails(404),
      get("unknown tenant", "/api/v1/tenants/nobody").fails(404, "not found"),
      post("POST the tenant list", "/api/v1/tenants").not_allowed("GET"),
      get("GET a tenant action", "/api/v1/tenants/app1/pause").not_allowed("POST"),
      post("a tenant name with a control character", "/api/v1/tenants/a\x01/pause")
          .fails(400, "bad tenant"),
      get("campaigns without a token", "/api/v1/campaigns").no_authorization().unauthorized(),
  });
}

// --- suppressions (a real store over the memory spool)

namespace suppressions {

HttpResponse call(Session& s, std::string method, Query query, std::string body = "") {
  return s.router.handle({std::move(method), "/api/v1/suppressions", std::move(query), kGoodAuth,
                          std::move(body), false},
                         kToken, false);
}

TEST(AdminSuppressions, AddListAndRemoveAsTheContractShapesThem) {
  Session s;
  HttpResponse r = call(s, "POST", {},
                        R"({"tenant":"app","addresses":["User@Example.com","b@example.com"],
                            "reason":"asked to stop"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"added":2})"));
  r = call(s, "POST", {}, R"({"tenant":"*","address":"all@example.net"})");
  ASSERT_EQ(r.status, 201) << r.body;
  r = call(s, "POST", {}, R"({"tenant":"app","address":"USER@example.com"})");
  EXPECT_EQ(json::parse(r.body)["added"], 0) << "already there: replaced, not added";

  r = call(s, "GET", {{"tenant", "app"}, {"address", "user@EXAMPLE.com"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"suppressions":[{"tenant":"app",
      "address":"user@example.com","reason":"added by the operator","source":"admin",
      "category":null,"campaign":null,"created":"2026-01-01T00:00:00.000Z"}]})"));
  r = call(s, "GET", {{"tenant", "app"}});
  EXPECT_EQ(json::parse(r.body)["suppressions"].size(), 2u);
  r = call(s, "GET", {});
  EXPECT_EQ(json::parse(r.body)["suppressions"].size(), 3u) << "every list";
  r = call(s, "GET", {{"limit", "1"}});
  EXPECT_EQ(json::parse(r.body)["suppressions"].size(), 1u);
  EXPECT_EQ(json::parse(r.body)["more"], true);

  r = call(s, "DELETE", {{"tenant", "app"}, {"address", "B@example.com"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"removed":1})"));
  r = call(s, "DELETE", {{"tenant", "app"}, {"address", "b@example.com"}});
  EXPECT_EQ(r.status, 404);
  expect_error_shape(r);
  EXPECT_FALSE(s.daemon.suppression_store.find("app", "b@example.com"));
  EXPECT_TRUE(s.daemon.suppression_store.find("app", "user@example.com"));
  EXPECT_TRUE(s.daemon.suppression_store.find("other", "all@example.net"));
}

TEST(AdminSuppressions, CsvImportAndExport) {
  Session s;
  HttpResponse r = call(s, "POST", {{"format", "csv"}, {"tenant", "app"}, {"reason", "old list"}},
                        "address,note\r\none@x.test,first\r\n\"\"\"q,uoted\"\"@x.test\",x\r\n\r\n"
                        "# a comment\r\nTHREE@x.test\r\n");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body)["added"], 3);
  r = call(s, "GET", {{"format", "csv"}, {"tenant", "app"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/csv; charset=utf-8");
  EXPECT_EQ(r.body,
            "address,tenant,reason,source,category,campaign,created\r\n"
            "\"\"\"q,uoted\"\"@x.test\",app,old list,admin,,,2026-01-01T00:00:00.000Z\r\n"
            "one@x.test,app,old list,admin,,,2026-01-01T00:00:00.000Z\r\n"
            "three@x.test,app,old list,admin,,,2026-01-01T00:00:00.000Z\r\n");
}

TEST(AdminSuppressions, BadRequestsAreNamedErrorsAndChangeNothing) {
  struct Case {
    const char* name;
    std::string method;
    Query query;
    std::string body;
    int status;
    std::string detail;
  } cases[] = {
      {"no tenant", "POST", {}, R"({"address":"a@b.test"})", 400, "tenant: required"},
      {"no address", "POST", {}, R"({"tenant":"app"})", 400, "give address or addresses"},
      {"both",
       "POST",
       {},
       R"({"tenant":"app","address":"a@b.test","addresses":[]})",
       400,
       "one of them"},
      {"not an address",
       "POST",
       {},
       R"({"tenant":"app","address":"nobody"})",
       400,
       "\"nobody\" is not an address"},
      {"one bad of many",
       "POST",
       {},
       R"({"tenant":"app","addresses":["a@b.test","x y@z"]})",
       400,
       "addresses[1]"},
      {"a number",
       "POST",
       {},
       R"({"tenant":"app","addresses":[5]})",
       400,
       "addresses[0]: not a string"},
      {"unknown field", "POST", {}, R"({"tenant":"app","address":"a@b.test","x":1})", 400, "x"},
      {"not JSON", "POST", {}, "{", 400, ""},
      {"CSV without tenant", "POST", {{"format", "csv"}}, "a@b.test\n", 400, "tenant"},
      {"reason outside an import", "GET", {{"reason", "x"}}, "", 400, "only with a CSV import"},
      {"unknown parameter", "GET", {{"site", "x"}}, "", 400, "parameters are"},
      {"bad limit", "GET", {{"limit", "0"}}, "", 400, "limit"},
      {"bad format", "GET", {{"format", "xml"}}, "", 400, "json or csv"},
      {"delete without address", "DELETE", {{"tenant", "app"}}, "", 400, "required"},
      {"put", "PUT", {}, "", 405, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Session s;
    HttpResponse r = call(s, c.method, c.query, c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    expect_error_shape(r);
    EXPECT_NE(json::parse(r.body).value("detail", "").find(c.detail), std::string::npos) << r.body;
    EXPECT_EQ(s.daemon.suppression_store.size(), 0u);
  }
}

}  // namespace suppressions

}  // namespace
}  // namespace ringmail::admin
