// tests/admin-api/admin_messages_test.cc — the message status and dead-letter
// routes as an operator's HTTP client sees them: GET /api/v1/messages/ID
// (CONTRACT's shape exactly, for a queued and a finished message, 404 once
// gone), GET /api/v1/dead with its filters, POST /api/v1/dead/ID/retry and
// DELETE /api/v1/dead/ID, and their 400/404/405 errors.
//
// Behind the router is a real MessageTracker over a memory spool with a
// fake clock; the real daemon behind the same routes is driven by
// tests/integration/test_message_status.py.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "admin-api/admin_router.h"
#include "mta/message_tracker.h"
#include "queue/spool_memory.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::admin {
namespace {

using nlohmann::json;
using queue::RecipientState;

constexpr char kToken[] = "s3cret-admin-token-0123456789abcdef";
constexpr char kAuth[] = "Bearer s3cret-admin-token-0123456789abcdef";
constexpr int64_t kHour = 3600 * 1000;

class Daemon final : public mta::DaemonControl {
 public:
  explicit Daemon(runtime::FakeClock& clock) {
    queue::SpoolOptions options;
    options.retention = {.keep_status_ms = kHour, .keep_failed_ms = 2 * kHour};
    options.clock = &clock;
    spool = std::make_unique<queue::MemorySpool>(std::numeric_limits<uint64_t>::max(), options);
    tracker = std::make_unique<mta::MessageTracker>(
        *spool, clock, [this](const std::string&) { return live; },
        [this](std::unique_ptr<queue::SpoolMessage> m) {
          queue::SpoolMessage* batch[] = {m.get()};
          return spool->commit(batch, {}, {});
        });
  }
  std::shared_ptr<const conf::Config> config() const override { return config_; }
  std::string unhealthy_reason() const override { return ""; }
  std::string metrics_text() const override { return ""; }
  std::optional<mta::DeliverySnapshot> snapshot(const mta::QueueFilter&, bool) override {
    return std::nullopt;
  }
  std::optional<size_t> command(const mta::AdminCommand&, std::string* error) override {
    *error = "not here";
    return std::nullopt;
  }
  std::vector<std::string> reload() override { return {}; }
  mta::CampaignRegistry* campaigns() override { return nullptr; }
  mta::MessageTracker* messages() override { return with_tracker ? tracker.get() : nullptr; }
  runtime::EventHub* events() override { return nullptr; }
  runtime::MetricsRegistry& metrics() override { return registry; }

  std::unique_ptr<queue::MemorySpool> spool;
  std::unique_ptr<mta::MessageTracker> tracker;
  std::optional<mta::MessageLiveView> live = mta::MessageLiveView{};
  bool with_tracker = true;

 private:
  std::shared_ptr<const conf::Config> config_ = std::make_shared<const conf::Config>();
  runtime::MetricsRegistry registry;
};

class AdminMessagesTest : public ::testing::Test {
 protected:
  HttpResponse call(std::string method, std::string path,
                    std::vector<std::pair<std::string, std::string>> query = {}) {
    HttpRequest request{std::move(method), std::move(path), std::move(query), kAuth, "", false};
    AdminRouter router(daemon, clock);
    return router.handle(request, kToken, false);
  }
  // The error body, after checking the status and the {error, detail} shape.
  json error_of(const HttpResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    const json body = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.size() == 2 && body.contains("error") &&
                body.contains("detail"))
        << r.body;
    return body;
  }
  std::string allow(const HttpResponse& r) {
    for (const auto& [k, v] : r.headers)
      if (k == "Allow") return v;
    return "";
  }

  queue::SpoolMessage stored(size_t recipients, std::string campaign = "") {
    queue::SpoolMessage m = queue::testing::make_test_message(recipients, 600, std::move(campaign));
    m.meta.received_unix_ms = clock.unix_ms();
    queue::SpoolMessage* batch[] = {&m};
    EXPECT_TRUE(daemon.spool->commit(batch, {}, {}).ok());
    return m;
  }
  void update(const queue::SpoolMessage& m, uint32_t index, RecipientState state,
              queue::RecipientResponse response, int64_t next = 0,
              std::optional<mail::BounceCategory> category = {}) {
    queue::RecipientUpdate u{m.id, index, state, 1, next};
    u.response = std::move(response);
    u.category = category;
    const queue::MessageId finished[] = {m.id};
    ASSERT_TRUE(daemon.spool->commit({}, std::span(&u, 1), finished).ok());
  }

  runtime::FakeClock clock;  // 2026-01-01T00:00:00Z
  Daemon daemon{clock};
};

TEST_F(AdminMessagesTest, AQueuedMessageInContractShape) {
  const queue::SpoolMessage m = stored(4, "spring");
  update(m, 0, RecipientState::deferred, {451, "4.3.0", "try later"}, clock.unix_ms() + 60000);
  update(m, 1, RecipientState::delivered, {250, "2.0.0", "Ok: queued as 9"});
  daemon.live = mta::MessageLiveView{true, {2}, {}};
  const HttpResponse r = call("GET", "/api/v1/messages/" + m.id.value);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  const json want = json::parse(R"({
    "id": ")" + m.id.value + R"(", "sender": "app@sender.test", "tenant": "app1",
    "campaign": "spring", "received": "2026-01-01T00:00:00.000Z", "size": )" +
                                std::to_string(m.meta.size) + R"(,
    "recipients": [
      {"recipient": "user0@example.test", "state": "deferred", "attempts": 1,
       "next_attempt": "2026-01-01T00:01:00.000Z",
       "response": {"code": 451, "enhanced": "4.3.0", "text": "try later"}, "category": null},
      {"recipient": "user1@example.org", "state": "delivered", "attempts": 1,
       "next_attempt": null,
       "response": {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued as 9"},
       "category": null},
      {"recipient": "user2@example.test", "state": "in_flight", "attempts": 0,
       "next_attempt": null, "response": null, "category": null},
      {"recipient": "user3@example.org", "state": "queued", "attempts": 0,
       "next_attempt": null, "response": null, "category": null}],
    "finished": null, "kept_until": null})");
  EXPECT_EQ(json::parse(r.body), want) << r.body;
  // CONTRACT's keys come first, in its order.
  const auto ordered = nlohmann::ordered_json::parse(r.body);
  std::vector<std::string> keys;
  for (auto it = ordered.begin(); it != ordered.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"id", "sender", "tenant", "campaign", "received",
                                            "size", "recipients", "finished", "kept_until"}));
}

TEST_F(AdminMessagesTest, AFinishedMessageFromItsStatusRecordThen404) {
  const queue::SpoolMessage m = stored(1);
  clock.advance(std::chrono::seconds(30));
  update(m, 0, RecipientState::bounced, {550, "5.1.1", "no such user"}, 0,
         mail::BounceCategory::InvalidRecipient);
  HttpResponse r = call("GET", "/api/v1/messages/" + m.id.value);
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["finished"], "2026-01-01T00:00:30.000Z");
  EXPECT_EQ(body["kept_until"], "2026-01-01T01:00:30.000Z");
  EXPECT_EQ(body["recipients"][0]["state"], "bounced");
  EXPECT_EQ(body["recipients"][0]["category"], "InvalidRecipient");
  EXPECT_EQ(body["recipients"][0]["response"]["code"], 550);

  clock.advance(std::chrono::hours(3));  // past the status record and the dead letter
  r = call("GET", "/api/v1/messages/" + m.id.value);
  EXPECT_EQ(error_of(r, 404)["error"], "not found");
  error_of(call("GET", "/api/v1/messages/0123456789abcdef0123"), 404);
}

TEST_F(AdminMessagesTest, MessageRouteErrors) {
  HttpResponse r = call("POST", "/api/v1/messages/abc");
  error_of(r, 405);
  EXPECT_EQ(allow(r), "GET");
  error_of(call("DELETE", "/api/v1/messages/abc"), 405);
  error_of(call("GET", "/api/v1/messages/"), 404);
  error_of(call("GET", "/api/v1/messages/a/b"), 404);
  error_of(call("GET", "/api/v1/messages/" + std::string(201, 'a')), 404);
  EXPECT_NE(error_of(call("GET", "/api/v1/messages/abc", {{"x", "1"}}), 400)["detail"]
                .get<std::string>()
                .find("x: this route takes no parameters"),
            std::string::npos);
  daemon.with_tracker = false;
  error_of(call("GET", "/api/v1/messages/abc"), 500);
  HttpRequest no_token{"GET", "/api/v1/messages/abc", {}, "", "", false};
  AdminRouter router(daemon, clock);
  EXPECT_EQ(router.handle(no_token, kToken, false).status, 401);
}

TEST_F(AdminMessagesTest, DeadLettersListFilterRetryAndDelete) {
  const queue::SpoolMessage a = stored(2, "spring");
  const queue::SpoolMessage b = stored(1, "autumn");
  update(a, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  update(a, 1, RecipientState::bounced, {550, "5.1.1", "no such user"}, 0,
         mail::BounceCategory::InvalidRecipient);
  update(b, 0, RecipientState::expired, {0, "4.4.7", "expired"}, 0,
         mail::BounceCategory::MessageExpired);

  HttpResponse r = call("GET", "/api/v1/dead");
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  ASSERT_EQ(body["dead"].size(), 2u) << r.body;
  EXPECT_EQ(body["dead"][0]["id"], a.id.value);
  EXPECT_EQ(body["dead"][0]["campaign"], "spring");
  EXPECT_EQ(body["dead"][0]["recipients"][1]["category"], "InvalidRecipient");
  EXPECT_EQ(body["dead"][0]["kept_until"], "2026-01-01T02:00:00.000Z");
  EXPECT_FALSE(body["dead"][0].contains("content")) << "no bodies in the list";

  auto ids = [&](std::vector<std::pair<std::string, std::string>> query) {
    const HttpResponse listed = call("GET", "/api/v1/dead", std::move(query));
    EXPECT_EQ(listed.status, 200) << listed.body;
    std::vector<std::string> out;
    const json parsed = json::parse(listed.body);
    for (const json& m : parsed["dead"]) out.push_back(m["id"]);
    return out;
  };
  EXPECT_EQ(ids({{"campaign", "autumn"}}), std::vector<std::string>{b.id.value});
  EXPECT_EQ(ids({{"category", "InvalidRecipient"}}), std::vector<std::string>{a.id.value});
  EXPECT_EQ(ids({{"tenant", "app1"}, {"category", "MessageExpired"}}),
            std::vector<std::string>{b.id.value});
  EXPECT_TRUE(ids({{"tenant", "nobody"}}).empty());
  EXPECT_NE(error_of(call("GET", "/api/v1/dead", {{"category", "Nope"}}), 400)["detail"]
                .get<std::string>()
                .find("not a bounce category"),
            std::string::npos);
  error_of(call("GET", "/api/v1/dead", {{"colour", "red"}}), 400);
  r = call("POST", "/api/v1/dead");
  error_of(r, 405);
  EXPECT_EQ(allow(r), "GET");

  // One dead letter (a Ringmail extension).
  r = call("GET", "/api/v1/dead/" + b.id.value);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["recipients"][0]["state"], "expired");

  r = call("POST", "/api/v1/dead/" + a.id.value + "/retry");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"id": ")" + a.id.value + R"(", "requeued": 1})"));
  r = call("GET", "/api/v1/messages/" + a.id.value);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["recipients"][1]["state"], "queued");
  EXPECT_EQ(json::parse(r.body)["finished"], nullptr);
  error_of(call("POST", "/api/v1/dead/" + a.id.value + "/retry"), 404);

  r = call("DELETE", "/api/v1/dead/" + b.id.value);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"id": ")" + b.id.value + R"(", "deleted": true})"));
  error_of(call("DELETE", "/api/v1/dead/" + b.id.value), 404);
  error_of(call("GET", "/api/v1/dead/" + b.id.value), 404);
  EXPECT_EQ(json::parse(call("GET", "/api/v1/dead").body)["dead"].size(), 0u);
}

TEST_F(AdminMessagesTest, DeadLetterRouteErrors) {
  HttpResponse r = call("GET", "/api/v1/dead/abc/retry");
  error_of(r, 405);
  EXPECT_EQ(allow(r), "POST");
  r = call("POST", "/api/v1/dead/abc");
  error_of(r, 405);
  EXPECT_EQ(allow(r), "GET, DELETE");
  error_of(call("POST", "/api/v1/dead//retry"), 404);
  error_of(call("DELETE", "/api/v1/dead/"), 404);
  error_of(call("POST", "/api/v1/dead/a/b/retry"), 404);
  error_of(call("POST", "/api/v1/dead/unknown/retry"), 404);
  error_of(call("DELETE", "/api/v1/dead/unknown"), 404);
  daemon.with_tracker = false;
  error_of(call("GET", "/api/v1/dead"), 500);
}

}  // namespace
}  // namespace ringmail::admin
