// tests/queue/backoff_records_test.cc — the backoff override record: keys,
// a round trip of each kind, and every way a stored value can be wrong
// (it is refused, never half-read).
#include "queue/backoff_records.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::queue {
namespace {

using namespace std::chrono_literals;

BackoffRecord suspension() {
  BackoffRecord r;
  r.source = "ip1";
  r.site = "mta5.am0.yahoodns.net,mta6.am0.yahoodns.net";
  policy::BackoffOverride& o = r.override_in_force;
  o.kind = policy::BackoffKind::suspend;
  o.since = runtime::WallTime(1767225600000ms);
  o.until = o.since + 2h;
  o.rule_index = 3;
  o.shipped = true;
  o.rule = "421 /\\[TSS04\\]/ -> suspend 2h";
  o.reply = "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred";
  return r;
}

TEST(BackoffRecords, KeysNameTheReadyQueue) {
  EXPECT_EQ(backoff_record_key("ip1@192.0.2.10/mx.test"), "backoff/ip1@192.0.2.10/mx.test");
  EXPECT_EQ(parse_backoff_record_key("backoff/ip1@192.0.2.10/mx.test"), "ip1@192.0.2.10/mx.test");
  EXPECT_FALSE(parse_backoff_record_key("backoff/"));
  EXPECT_FALSE(parse_backoff_record_key("warmup/*/ip1"));
}

TEST(BackoffRecords, ASuspensionAndARateCutRoundTrip) {
  const BackoffRecord held = suspension();
  std::optional<BackoffRecord> back = decode_backoff_record(encode_backoff_record(held));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->source, held.source);
  EXPECT_EQ(back->site, held.site);
  EXPECT_EQ(back->override_in_force.kind, policy::BackoffKind::suspend);
  EXPECT_EQ(back->override_in_force.since, held.override_in_force.since);
  EXPECT_EQ(back->override_in_force.until, held.override_in_force.until);
  EXPECT_EQ(back->override_in_force.rule_index, 3u);
  EXPECT_TRUE(back->override_in_force.shipped);
  EXPECT_EQ(back->override_in_force.rule, held.override_in_force.rule);
  EXPECT_EQ(back->override_in_force.reply, held.override_in_force.reply);
  EXPECT_EQ(back->base_count, 0u);

  BackoffRecord cut = suspension();
  cut.override_in_force.kind = policy::BackoffKind::rate_factor;
  cut.override_in_force.factor = 0.05;
  cut.base_count = 120;
  cut.base_per_ms = 60000;
  back = decode_backoff_record(encode_backoff_record(cut));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->override_in_force.kind, policy::BackoffKind::rate_factor);
  EXPECT_DOUBLE_EQ(back->override_in_force.factor, 0.05);
  EXPECT_EQ(back->base_count, 120u);
  EXPECT_EQ(back->base_per_ms, 60000);
}

TEST(BackoffRecords, AReplyThatIsNotUtf8IsKeptReadable) {
  BackoffRecord r = suspension();
  r.override_in_force.reply = "421 4.7.0 \xff\xfe bad bytes";
  const std::optional<BackoffRecord> back = decode_backoff_record(encode_backoff_record(r));
  ASSERT_TRUE(back);
  EXPECT_NE(back->override_in_force.reply.find("bad bytes"), std::string::npos);
}

TEST(BackoffRecords, WhatAnEncoderCouldNotHaveWrittenIsRefused) {
  const std::string good = encode_backoff_record(suspension());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"[1, 2]", "not an object"},
      {good.substr(0, good.size() / 2), "truncated"},
      {with("\"v\":1", "\"v\":2"), "unknown version"},
      {with("\"kind\":\"suspend\"", "\"kind\":\"bounce\""), "a bounce is never stored"},
      {with("\"kind\":\"suspend\"", "\"kind\":7"), "kind of the wrong type"},
      {with("\"until\":", "\"until_\":"), "until missing"},
      {with("\"since\":1767225600000", "\"since\":1767233000000"), "until not after since"},
      {with("\"factor\":1.0", "\"factor\":0.0"), "factor 0"},
      {with("\"factor\":1.0", "\"factor\":1.5"), "factor above 1"},
      {with("\"rule_index\":3", "\"rule_index\":-1"), "negative rule index"},
      {with("\"shipped\":true", "\"shipped\":1"), "shipped not a boolean"},
      {with("\"site\":\"mta5", "\"site\":\"\",\"x\":\"mta5"), "empty site"},
      {with("\"reply\":\"421", "\"reply\":\"" + std::string(600, 'x')), "reply over 512 bytes"},
      {with("\"rule_index\":3", "\"rule_index\":3,\"base_count\":0,\"base_per_ms\":1"),
       "a zero base rate"},
  };
  for (const auto& [bytes, why] : cases) {
    std::string error;
    EXPECT_FALSE(decode_backoff_record(bytes, &error)) << why << ": " << bytes;
    EXPECT_FALSE(error.empty()) << why;
  }
}

}  // namespace
}  // namespace ringmail::queue
