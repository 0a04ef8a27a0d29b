// tests/policy/webhook_delivery_test.cc — webhook signatures against
// known answers computed with Python's hmac module, the outcome of a POST
// by transport and status, and the retry schedule.
#include "policy/webhook_delivery.h"

#include <gtest/gtest.h>

#include <string>

namespace ringmail::policy {
namespace {

using runtime::Millis;

std::string bytes_0_to_39() {
  std::string out;
  for (int i = 0; i < 40; ++i) out.push_back(static_cast<char>(i));
  return out;
}

// python3 -c 'import hmac,hashlib; print(hmac.new(KEY, BODY, hashlib.sha256).hexdigest())'
TEST(WebhookSignature, MatchesPythonHmac) {
  struct Case {
    std::string secret;
    std::string body;
    const char* expected;
  };
  const Case cases[] = {
      {std::string(32, 'k'), "[]",
       "sha256=3041b4cef0b1a3a8ef490a1a392481bb653c91a281e649d592dc0d50d2e9963b"},
      {"0123456789abcdef0123456789abcdef", R"([{"type":"Delivery","event_id":"1"}])",
       "sha256=a6d1f87240e7874e53e419b0d0a06a7c296b1147afa9bcc7fe0829f7e89f2af4"},
      {bytes_0_to_39(), "",
       "sha256=7c314532232d3f8c0cab89b78cbc58b0fa1d3c700a5e15359c7bd8301ac600cb"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(webhook_signature(c.secret, c.body), c.expected) << c.body;
  }
}

TEST(WebhookSignature, ChangesWithBodyAndSecret) {
  const std::string secret(32, 's');
  EXPECT_NE(webhook_signature(secret, "[1]"), webhook_signature(secret, "[2]"));
  EXPECT_NE(webhook_signature(secret, "[1]"), webhook_signature(std::string(32, 't'), "[1]"));
}

TEST(WebhookPost, ClassifiedByTransportAndStatus) {
  struct Case {
    WebhookTransport transport;
    long status;
    const char* expected;
  };
  const Case cases[] = {
      {WebhookTransport::answered, 200, "ok"},
      {WebhookTransport::answered, 201, "ok"},
      {WebhookTransport::answered, 204, "ok"},
      {WebhookTransport::answered, 299, "ok"},
      {WebhookTransport::answered, 100, "http_other"},
      {WebhookTransport::answered, 301, "http_other"},
      {WebhookTransport::answered, 304, "http_other"},
      {WebhookTransport::answered, 400, "http_4xx"},
      {WebhookTransport::answered, 404, "http_4xx"},
      {WebhookTransport::answered, 429, "http_4xx"},
      {WebhookTransport::answered, 500, "http_5xx"},
      {WebhookTransport::answered, 503, "http_5xx"},
      {WebhookTransport::answered, 0, "http_other"},
      {WebhookTransport::answered, 600, "http_other"},
      {WebhookTransport::timed_out, 0, "timeout"},
      {WebhookTransport::timed_out, 200, "timeout"},  // a 200 whose body never ended
      {WebhookTransport::connect_failed, 0, "connect_error"},
      {WebhookTransport::failed, 0, "error"},
      {WebhookTransport::failed, 200, "error"},
  };
  for (const Case& c : cases) {
    EXPECT_STREQ(to_string(classify_webhook_post(c.transport, c.status)), c.expected)
        << int(c.transport) << " " << c.status;
  }
}

TEST(WebhookRetry, DoublesFromOneSecondToFiveMinutes) {
  struct Case {
    uint32_t failures;
    int64_t expected_ms;
  };
  const Case cases[] = {
      {0, 0},       {1, 1000},    {2, 2000},    {3, 4000},      {4, 8000},
      {5, 16000},   {6, 32000},   {7, 64000},   {8, 128000},    {9, 256000},
      {10, 300000}, {11, 300000}, {64, 300000}, {1000, 300000}, {UINT32_MAX, 300000},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(webhook_retry_delay(c.failures, 0.0), Millis(c.expected_ms)) << c.failures;
  }
}

TEST(WebhookRetry, JitterTakesAtMostAQuarterOff) {
  EXPECT_EQ(webhook_retry_delay(1, 0.5), Millis(875));
  EXPECT_EQ(webhook_retry_delay(3, 0.999), Millis(3001));
  EXPECT_EQ(webhook_retry_delay(20, 0.5), Millis(262500));
  // Out of range draws are clamped, never above the schedule.
  EXPECT_EQ(webhook_retry_delay(1, -3.0), Millis(1000));
  EXPECT_EQ(webhook_retry_delay(1, 7.0), Millis(750));
  for (uint32_t n = 1; n < 30; ++n) {
    for (double j : {0.0, 0.25, 0.5, 0.75, 0.99}) {
      const Millis d = webhook_retry_delay(n, j);
      EXPECT_LE(d, webhook_retry_delay(n, 0.0));
      EXPECT_GE(d * 4, webhook_retry_delay(n, 0.0) * 3);
    }
  }
}

TEST(WebhookRetry, OtherSchedules) {
  const WebhookRetrySchedule fast{Millis(100), Millis(250)};
  EXPECT_EQ(webhook_retry_delay(1, 0, fast), Millis(100));
  EXPECT_EQ(webhook_retry_delay(2, 0, fast), Millis(200));
  EXPECT_EQ(webhook_retry_delay(3, 0, fast), Millis(250));
  // A max below first is taken as first; a zero first as 1 ms.
  EXPECT_EQ(webhook_retry_delay(4, 0, {Millis(500), Millis(10)}), Millis(500));
  EXPECT_EQ(webhook_retry_delay(1, 0, {Millis(0), Millis(10)}), Millis(1));
}

}  // namespace
}  // namespace ringmail::policy
