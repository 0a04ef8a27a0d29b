// tests/queue/warmup_records_test.cc — the warm-up state in the control
// table: keys, the codec's round trip, a golden value (the layout may not
// change by accident), and every kind of damage refused with a reason.
#include "queue/warmup_records.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "queue/spool_codec.h"

namespace ringmail::queue {
namespace {

using policy::WarmupKey;
using policy::WarmupState;

// A state with every field set and distinct values.
WarmupState busy_state() {
  WarmupState s;
  s.first_day = 20513;  // 2026-03-01
  s.open_day = 20519;
  s.advanced = 5;
  s.backoff_on_open_day = true;
  s.last_sent_day = 20518;
  s.plan_started = 20513;
  s.window_start_ms = 1772877600000;  // 2026-03-07T10:00:00Z
  s.window_ms = 3600000;
  s.sent_in_window = 42;
  return s;
}

std::string hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out.push_back(digits[static_cast<uint8_t>(c) >> 4]);
    out.push_back(digits[static_cast<uint8_t>(c) & 15]);
  }
  return out;
}

TEST(WarmupRecords, KeysNameSourceAndProvider) {
  EXPECT_EQ(warmup_state_key(WarmupKey{"ip1", ""}), "warmup/*/ip1");
  EXPECT_EQ(warmup_state_key(WarmupKey{"ip1", "gmail"}), "warmup/gmail/ip1");
  for (const WarmupKey& key : {WarmupKey{"ip1", ""}, WarmupKey{"ip1", "gmail"},
                               WarmupKey{"a/b", "yahoo"}, WarmupKey{"a/b", ""}}) {
    EXPECT_EQ(parse_warmup_state_key(warmup_state_key(key)), key) << warmup_state_key(key);
  }
  for (const char* bad : {"", "warmup/", "warmup/ip1", "warmup//ip1", "warmup/gmail/",
                          "hold/warmup/*/ip1", "campaign/x"}) {
    EXPECT_EQ(parse_warmup_state_key(bad), std::nullopt) << bad;
  }
}

TEST(WarmupRecords, RoundTrip) {
  WarmupState fresh;
  WarmupState started;
  started.first_day = 20513;
  started.open_day = 20513;
  started.plan_started = 20513;
  WarmupState before_1970 = busy_state();  // days are signed
  before_1970.first_day = -400;
  before_1970.open_day = -3;
  before_1970.last_sent_day = -4;
  before_1970.plan_started.reset();
  before_1970.backoff_on_open_day = false;
  for (const WarmupState& s : {fresh, started, busy_state(), before_1970}) {
    const std::string bytes = encode_warmup_state(s);
    EXPECT_EQ(bytes.size(), 50u);
    std::string error;
    const auto back = decode_warmup_state(bytes, &error);
    ASSERT_TRUE(back.has_value()) << error;
    EXPECT_EQ(*back, s);
  }
}

TEST(WarmupRecords, GoldenBytes) {
  // Version 1; if this changes, the version byte must change too and the
  // decoder must still read version 1. The CRC is zlib's crc32 of the 46
  // bytes before it (checked with Python's zlib.crc32).
  const std::string golden =
      "01"                // version
      "0f"                // flags: first_day, last_sent_day, plan_started, backoff
      "21500000"          // first_day 20513 (2026-03-01)
      "27500000"          // open_day 20519
      "05000000"          // advanced 5
      "26500000"          // last_sent_day 20518
      "21500000"          // plan_started 20513
      "0055bdc79c010000"  // window_start_ms 1772877600000
      "80ee360000000000"  // window_ms 3600000
      "2a00000000000000"  // sent_in_window 42
      "564954d8";         // crc
  EXPECT_EQ(hex(encode_warmup_state(busy_state())), golden);
  std::string bytes;
  for (size_t i = 0; i < golden.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(golden.substr(i, 2), nullptr, 16)));
  EXPECT_EQ(decode_warmup_state(bytes), busy_state());
}

struct Damage {
  const char* name;
  std::function<void(std::string&)> damage;
  const char* error;  // a piece of the reason
};

TEST(WarmupRecords, DamageIsRefusedWithAReason) {
  const std::string good = encode_warmup_state(busy_state());
  // Re-seals a changed payload with a correct CRC, so that the checks
  // behind the CRC are reached.
  auto reseal = [](std::string& b, const std::function<void(std::string&)>& change) {
    b.resize(b.size() - 4);
    change(b);
    const uint32_t crc = crc32(b);
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  };
  const std::vector<Damage> cases = {
      {"empty", [](std::string& b) { b.clear(); }, "truncated"},
      {"one byte short", [](std::string& b) { b.pop_back(); }, "checksum"},
      {"a flipped bit", [](std::string& b) { b[20] ^= 0x04; }, "checksum"},
      {"unknown version", [](std::string& b) { b[0] = 2; }, "unknown version 2"},
      {"truncated payload",
       [&](std::string& b) { reseal(b, [](std::string& p) { p.resize(30); }); }, "truncated at"},
      {"trailing byte", [&](std::string& b) { reseal(b, [](std::string& p) { p.push_back(0); }); },
       "1 trailing bytes"},
      {"unknown flag", [&](std::string& b) { reseal(b, [](std::string& p) { p[1] |= 0x10; }); },
       "unknown flags"},
      {"a day for an absent field",
       [&](std::string& b) { reseal(b, [](std::string& p) { p[1] &= ~0x04; }); },
       "a day given for an absent field"},
      {"open day before day 1",
       [&](std::string& b) { reseal(b, [](std::string& p) { p[6] = 0x10; }); },
       "open day before day 1"},
      {"window start not aligned",
       [&](std::string& b) { reseal(b, [](std::string& p) { p[22] ^= 1; }); }, "not aligned"},
      {"window longer than a day",
       [&](std::string& b) { reseal(b, [](std::string& p) { p[33] = 0x7f; }); }, "window of"},
  };
  for (const Damage& d : cases) {
    SCOPED_TRACE(d.name);
    std::string bytes = good;
    d.damage(bytes);
    std::string error;
    EXPECT_EQ(decode_warmup_state(bytes, &error), std::nullopt);
    EXPECT_NE(error.find(d.error), std::string::npos) << error;
  }
  // Every proper prefix is refused.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_EQ(decode_warmup_state(good.substr(0, n)), std::nullopt) << n;
  }
}

TEST(WarmupRecords, AStateWithoutDayOneHasNoDays) {
  WarmupState s;
  s.advanced = 3;  // days counted before any day 1: not something the policy makes
  std::string error;
  EXPECT_EQ(decode_warmup_state(encode_warmup_state(s), &error), std::nullopt);
  EXPECT_NE(error.find("days recorded before day 1"), std::string::npos) << error;
}

}  // namespace
}  // namespace ringmail::queue
