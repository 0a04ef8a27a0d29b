// tests/queue/webhook_records_test.cc — the webhooks' backlog in the
// control table: keys that sort in sequence order, record and sequence
// values that round-trip, and every way a stored key or value can be wrong
// (refused, never half-read).
#include "queue/webhook_records.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace ringmail::queue {
namespace {

TEST(WebhookRecords, KeysSortInSequenceOrder) {
  EXPECT_EQ(webhook_backlog_prefix("crm"), "webhook/crm/");
  EXPECT_EQ(webhook_backlog_key("crm", 1), "webhook/crm/0000000000000001");
  EXPECT_EQ(webhook_backlog_key("a.b_c-9", 0xfedcba9876543210ull),
            "webhook/a.b_c-9/fedcba9876543210");
  std::vector<uint64_t> sequences = {1, 2, 15, 16, 255, 256, 4096, 1ull << 40, UINT64_MAX};
  std::vector<std::string> keys;
  for (uint64_t s : sequences) keys.push_back(webhook_backlog_key("crm", s));
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  for (uint64_t s : sequences) {
    EXPECT_EQ(parse_webhook_backlog_key(webhook_backlog_key("crm", s)),
              (WebhookBacklogKey{"crm", s}));
  }
}

TEST(WebhookRecords, BadKeysAreRefused) {
  const char* bad[] = {
      "",
      "webhook/",
      "webhook/crm",
      "webhook/crm/",
      "webhook//0000000000000001",
      "webhook/crm/000000000000001",    // 15 digits
      "webhook/crm/00000000000000001",  // 17 digits
      "webhook/crm/000000000000000G",
      "webhook/crm/000000000000000A",  // upper case: not what the encoder writes
      "webhook/crm/00000000000000-1",
      "webhook/c/m/0000000000000001",
      "webhook/c m/0000000000000001",
      "webhook-sequence",
      "warmup/*/ip1",
      "Webhook/crm/0000000000000001",
  };
  for (const char* key : bad) EXPECT_FALSE(parse_webhook_backlog_key(key)) << key;
  const std::string long_name(65, 'x');
  EXPECT_FALSE(parse_webhook_backlog_key("webhook/" + long_name + "/0000000000000001"));
  EXPECT_TRUE(parse_webhook_backlog_key("webhook/" + std::string(64, 'x') + "/0000000000000001"));
  const std::string nul = std::string("webhook/c") + '\0' + "m/0000000000000001";
  EXPECT_FALSE(parse_webhook_backlog_key(nul));
}

TEST(WebhookRecords, RecordRoundTrip) {
  const std::string json = R"({"type":"Delivery","id":"x","event_id":"00000000000000ab-7"})";
  EXPECT_EQ(decode_webhook_record(encode_webhook_record(json)), json);
  const std::string utf8 =
      "{\"type\":\"Bounce\",\"recipient\":\"j\xc3\xbcrgen@x.test\","
      "\"event_id\":\"1-1\"}";
  EXPECT_EQ(decode_webhook_record(encode_webhook_record(utf8)), utf8);
}

TEST(WebhookRecords, BadRecordValuesAreRefused) {
  const std::string good = encode_webhook_record(R"({"type":"Delivery","event_id":"1-1"})");
  struct Case {
    std::string bytes;
    const char* why;  // a word of the error
  };
  std::string flipped = good;
  flipped[5] ^= 0x20;
  std::string version = good;
  version[0] = 2;
  const Case cases[] = {
      {"", "truncated"},
      {"\x01", "truncated"},
      {good.substr(0, good.size() - 1), "checksum"},
      {good.substr(1), "version"},
      {flipped, "checksum"},
      {version, "version"},
      {good + "x", "checksum"},
      {encode_webhook_record(""), "not JSON"},
      {encode_webhook_record("{"), "not JSON"},
      {encode_webhook_record(R"({"type":"Delivery","event_id":"1-1"} x)"), "not JSON"},
      {encode_webhook_record("[1,2]"), "not a JSON object"},
      {encode_webhook_record("\"text\""), "not a JSON object"},
      {encode_webhook_record(R"({"event_id":"1-1"})"), "type"},
      {encode_webhook_record(R"({"type":7,"event_id":"1-1"})"), "type"},
      {encode_webhook_record(R"({"type":"","event_id":"1-1"})"), "type"},
      {encode_webhook_record(R"({"type":"Delivery"})"), "event_id"},
      {encode_webhook_record(R"({"type":"Delivery","event_id":12})"), "event_id"},
      {encode_webhook_record("{\"type\":\"D\xff\",\"event_id\":\"1\"}"), "not JSON"},
      {encode_webhook_record(std::string("{\"type\":\"D") + '\0' + "\",\"event_id\":\"1\"}"),
       "not JSON"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(decode_webhook_record(c.bytes, &error)) << c.why;
    EXPECT_NE(error.find(c.why), std::string::npos) << error;
  }
  EXPECT_FALSE(decode_webhook_record(good.substr(0, 3)));  // no error pointer: no crash
}

TEST(WebhookRecords, SequenceRoundTripAndBadValues) {
  for (WebhookSequence s : {WebhookSequence{0, 1}, WebhookSequence{0x5f0c3a9e1b2d4c68ull, 42},
                            WebhookSequence{UINT64_MAX, UINT64_MAX}}) {
    const std::string bytes = encode_webhook_sequence(s);
    EXPECT_EQ(bytes.size(), 21u);
    EXPECT_EQ(decode_webhook_sequence(bytes), s);
  }
  const std::string good = encode_webhook_sequence({7, 9});
  std::string flipped = good;
  flipped[9] ^= 1;
  const std::string bad[] = {"",
                             good.substr(0, 20),
                             good + std::string(1, '\0'),
                             flipped,
                             encode_webhook_record(R"({"type":"x","event_id":"1"})"),
                             encode_webhook_sequence({7, 0})};
  for (const std::string& b : bad) {
    std::string error;
    EXPECT_FALSE(decode_webhook_sequence(b, &error));
    EXPECT_FALSE(error.empty());
  }
}

TEST(WebhookRecords, EventIdsAndBodies) {
  EXPECT_EQ(webhook_event_id(0x5f0c3a9e1b2d4c68ull, 42), "5f0c3a9e1b2d4c68-42");
  EXPECT_EQ(webhook_event_id(0, 1), "0000000000000000-1");
  EXPECT_NE(webhook_event_id(1, 2), webhook_event_id(2, 1));

  EXPECT_EQ(with_event_id(R"({"type":"Delivery"})", "e-1"),
            R"({"type":"Delivery","event_id":"e-1"})");
  EXPECT_EQ(with_event_id("{}", "e-1"), R"({"event_id":"e-1"})");
  EXPECT_FALSE(with_event_id("", "e-1"));
  EXPECT_FALSE(with_event_id("{", "e-1"));
  EXPECT_FALSE(with_event_id("[1]", "e-1"));
  EXPECT_FALSE(with_event_id("{\"a\":1}\n", "e-1"));

  EXPECT_EQ(webhook_batch_body({}), "[]");
  const std::string_view one[] = {R"({"a":1})"};
  EXPECT_EQ(webhook_batch_body(one), R"([{"a":1}])");
  const std::string_view two[] = {R"({"a":1})", R"({"b":2})"};
  EXPECT_EQ(webhook_batch_body(two), R"([{"a":1},{"b":2}])");
}

}  // namespace
}  // namespace ringmail::queue
