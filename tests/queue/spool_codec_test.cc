#include "queue/spool_codec.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;

TEST(SpoolCodec, MessageRecordRoundTrip) {
  SpoolMessage m = make_test_message(3, 2000, "spring-sale");
  m.envelope.smtputf8 = true;
  m.envelope.sender = "";  // null sender survives as empty, not absent
  std::string bytes;
  encode_message_record(m, &bytes);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kRecordVersion);

  SpoolMessage out;
  MessageRecordInfo info;
  ASSERT_TRUE(decode_message_record(bytes, &out, &info));
  EXPECT_EQ(out.id, m.id);
  EXPECT_EQ(out.envelope.sender, "");
  EXPECT_EQ(out.envelope.body_type, "8BITMIME");
  EXPECT_TRUE(out.envelope.smtputf8);
  EXPECT_EQ(out.envelope.dsn_ret, "HDRS");
  EXPECT_EQ(out.envelope.dsn_envid, m.envelope.dsn_envid);
  EXPECT_TRUE(out.envelope.recipients.empty());
  EXPECT_EQ(info.recipient_count, 3u);
  EXPECT_EQ(info.body_size, m.content.size());
  EXPECT_EQ(out.meta.tenant, "app1");
  EXPECT_EQ(out.meta.campaign, "spring-sale");
  EXPECT_EQ(out.meta.listener, "submission");
  EXPECT_EQ(out.meta.received_unix_ms, 1767225600123);
  EXPECT_EQ(out.meta.client_ip, "192.0.2.7");
  EXPECT_EQ(out.meta.helo, "client.sender.test");
  EXPECT_EQ(out.meta.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(out.meta.size, m.meta.size);
  EXPECT_FALSE(out.meta.sign_at_delivery);
}

// The flags octet is written only when a flag is set, so a record without
// flags is what older builds wrote; an unknown flag is refused.
TEST(SpoolCodec, MessageFlagsAreATrailingOctetOnlyWhenSet) {
  SpoolMessage m = make_test_message(2, 100, "spring-sale");
  std::string plain;
  encode_message_record(m, &plain);
  m.meta.sign_at_delivery = true;
  std::string flagged;
  encode_message_record(m, &flagged);
  EXPECT_EQ(flagged.size(), plain.size() + 1);
  SpoolMessage out;
  MessageRecordInfo info;
  ASSERT_TRUE(decode_message_record(flagged, &out, &info));
  EXPECT_TRUE(out.meta.sign_at_delivery);
  ASSERT_TRUE(decode_message_record(plain, &out, &info));
  EXPECT_FALSE(out.meta.sign_at_delivery) << "a reused record is reset";

  for (const uint8_t bad : {uint8_t{0}, uint8_t{2}, uint8_t{0x81}}) {
    std::string bytes = flagged.substr(0, flagged.size() - 4);
    bytes.back() = static_cast<char>(bad);
    const uint32_t crc = crc32(bytes);
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
    const DecodeResult result = decode_message_record(bytes, &out, &info);
    EXPECT_FALSE(result) << int{bad};
    EXPECT_NE(result.error.find("unknown message flags"), std::string::npos) << result.error;
  }
}

TEST(SpoolCodec, RecipientRecordRoundTrip) {
  Recipient r;
  r.address =
      "j\xc3\xbcrgen@b\xc3\xbc"
      "cher.example";  // SMTPUTF8 address
  r.domain =
      "b\xc3\xbc"
      "cher.example";
  r.dsn_notify = "NEVER";
  r.dsn_orcpt = "utf-8;j\\x{FC}rgen@example";
  r.state = RecipientState::deferred;
  r.attempts = 7;
  r.next_attempt_unix_ms = -5;  // before the epoch still round-trips
  std::string bytes;
  encode_recipient_record(r, &bytes);
  Recipient out;
  ASSERT_TRUE(decode_recipient_record(bytes, &out));
  EXPECT_EQ(out.address, r.address);
  EXPECT_EQ(out.domain, r.domain);
  EXPECT_EQ(out.dsn_notify, "NEVER");
  EXPECT_EQ(out.dsn_orcpt, r.dsn_orcpt);
  EXPECT_EQ(out.state, RecipientState::deferred);
  EXPECT_EQ(out.attempts, 7u);
  EXPECT_EQ(out.next_attempt_unix_ms, -5);
}

TEST(SpoolCodec, RecipientRecordKeepsTheLastResponseAndCategory) {
  Recipient r = make_test_message().envelope.recipients[0];
  r.state = RecipientState::bounced;
  r.attempts = 3;
  r.last_response = RecipientResponse{550, "5.1.1", "<user0@example.test>: no such user"};
  r.category = "InvalidRecipient";
  std::string bytes;
  encode_recipient_record(r, &bytes);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 2);
  Recipient out;
  ASSERT_TRUE(decode_recipient_record(bytes, &out));
  EXPECT_EQ(out.last_response, r.last_response);
  EXPECT_EQ(out.category, "InvalidRecipient");
  EXPECT_EQ(out.state, RecipientState::bounced);
  EXPECT_EQ(out.attempts, 3u);
  EXPECT_EQ(out.address, r.address);
  EXPECT_EQ(out.dsn_orcpt, r.dsn_orcpt);

  // A reply code no SMTP server sends is damage, even with a good checksum.
  r.last_response.code = 1000;
  bytes.clear();
  encode_recipient_record(r, &bytes);
  const DecodeResult bad = decode_recipient_record(bytes, &out);
  EXPECT_FALSE(bad);
  EXPECT_NE(bad.error.find("implausible reply code 1000"), std::string::npos) << bad.error;
}

// A recipient record as format-1 builds wrote it, byte by byte.
std::string version1_recipient_record(const Recipient& r) {
  std::string out(1, '\x01');
  auto str = [&](const std::string& s) {
    const uint32_t n = static_cast<uint32_t>(s.size());
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out += s;
  };
  str(r.address);
  str(r.domain);
  str(r.dsn_notify);
  str(r.dsn_orcpt);
  out.push_back(static_cast<char>(r.state));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((r.attempts >> (8 * i)) & 0xff));
  const auto next = static_cast<uint64_t>(r.next_attempt_unix_ms);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((next >> (8 * i)) & 0xff));
  const uint32_t crc = crc32(out);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out;
}

TEST(SpoolCodec, Version1RecipientRecordsStillDecode) {
  Recipient r = make_test_message().envelope.recipients[0];
  r.state = RecipientState::deferred;
  r.attempts = 2;
  r.next_attempt_unix_ms = 1767225660000;
  const std::string v1 = version1_recipient_record(r);
  Recipient out;
  out.last_response = RecipientResponse{421, "4.7.0", "stale"};  // overwritten, not merged
  out.category = "stale";
  const DecodeResult decoded = decode_recipient_record(v1, &out);
  ASSERT_TRUE(decoded) << decoded.error;
  EXPECT_EQ(out.address, r.address);
  EXPECT_EQ(out.domain, r.domain);
  EXPECT_EQ(out.dsn_notify, r.dsn_notify);
  EXPECT_EQ(out.dsn_orcpt, r.dsn_orcpt);
  EXPECT_EQ(out.state, RecipientState::deferred);
  EXPECT_EQ(out.attempts, 2u);
  EXPECT_EQ(out.next_attempt_unix_ms, 1767225660000);
  EXPECT_EQ(out.last_response, RecipientResponse{});
  EXPECT_EQ(out.category, "");

  // Written back, it is version 2 and round-trips.
  std::string v2;
  encode_recipient_record(out, &v2);
  EXPECT_EQ(static_cast<uint8_t>(v2[0]), 2);
  Recipient again;
  ASSERT_TRUE(decode_recipient_record(v2, &again));
  EXPECT_EQ(again.address, r.address);
  EXPECT_EQ(again.next_attempt_unix_ms, r.next_attempt_unix_ms);

  // A version-1 record is checked as strictly as before.
  for (size_t len = 0; len < v1.size(); ++len) {
    EXPECT_FALSE(decode_recipient_record(v1.substr(0, len), &out)) << len;
  }
  std::string longer = v1;
  longer.insert(longer.size() - 4, "x");
  EXPECT_FALSE(decode_recipient_record(longer, &out));
  // A version-2 payload under a version-1 byte does not pass as version 1.
  std::string relabelled = v2;
  relabelled[0] = 1;
  EXPECT_FALSE(decode_recipient_record(relabelled, &out));
}

TEST(SpoolCodec, EveryTruncationOfAMessageRecordIsAnError) {
  std::string bytes;
  encode_message_record(make_test_message(2, 100, "c1"), &bytes);
  for (size_t len = 0; len < bytes.size(); ++len) {
    SpoolMessage out;
    MessageRecordInfo info;
    const DecodeResult result = decode_message_record(bytes.substr(0, len), &out, &info);
    EXPECT_FALSE(result) << "prefix of " << len << " bytes decoded";
    EXPECT_FALSE(result.error.empty());
  }
}

TEST(SpoolCodec, EveryTruncationOfARecipientRecordIsAnError) {
  std::string bytes;
  encode_recipient_record(make_test_message().envelope.recipients[0], &bytes);
  for (size_t len = 0; len < bytes.size(); ++len) {
    Recipient out;
    EXPECT_FALSE(decode_recipient_record(bytes.substr(0, len), &out)) << len;
  }
}

TEST(SpoolCodec, EveryFlippedByteIsAnError) {
  std::string bytes;
  encode_message_record(make_test_message(1, 100), &bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string corrupt = bytes;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
    SpoolMessage out;
    MessageRecordInfo info;
    EXPECT_FALSE(decode_message_record(corrupt, &out, &info)) << "byte " << i;
  }
}

TEST(SpoolCodec, TrailingBytesUnknownVersionAndBadEnumsAreErrors) {
  std::string bytes;
  encode_recipient_record(Recipient{}, &bytes);
  Recipient out;

  std::string longer = bytes;
  longer.insert(longer.size() - 4, "x");
  EXPECT_FALSE(decode_recipient_record(longer, &out));

  std::string future = bytes;
  future[0] = 9;
  const DecodeResult version = decode_recipient_record(future, &out);
  EXPECT_FALSE(version);
  EXPECT_NE(version.error.find("unknown version 9"), std::string::npos) << version.error;

  // A state this build does not know, with a valid checksum: still refused.
  Recipient r;
  std::string state_bytes;
  encode_recipient_record(r, &state_bytes);
  const size_t state_offset = 1 + 4 * 4;  // version, four empty strings
  state_bytes[state_offset] = 42;
  state_bytes.resize(state_bytes.size() - 4);
  const uint32_t crc = crc32(state_bytes);
  for (int i = 0; i < 4; ++i) state_bytes.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  const DecodeResult state = decode_recipient_record(state_bytes, &out);
  EXPECT_FALSE(state);
  EXPECT_NE(state.error.find("unknown recipient state 42"), std::string::npos) << state.error;
}

TEST(SpoolCodec, HugeLengthPrefixIsAnErrorNotAnAllocation) {
  // version, then a string length of 4 GiB - 1, then a checksum that fits.
  std::string bytes = {static_cast<char>(kRecordVersion), '\xff', '\xff', '\xff', '\xff'};
  const uint32_t crc = crc32(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  SpoolMessage out;
  MessageRecordInfo info;
  const DecodeResult result = decode_message_record(bytes, &out, &info);
  EXPECT_FALSE(result);
  EXPECT_NE(result.error.find("truncated at id"), std::string::npos) << result.error;
}

TEST(SpoolCodec, RandomBytesNeverCrashAndNeverDecode) {
  std::mt19937 rng(12345);
  std::string valid;
  encode_message_record(make_test_message(1, 50), &valid);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(std::uniform_int_distribution<size_t>(0, 200)(rng), '\0');
    for (auto& ch : bytes) ch = static_cast<char>(rng());
    if (i % 2 == 0 && !bytes.empty()) bytes[0] = static_cast<char>(kRecordVersion);
    if (i % 4 == 0) bytes = valid.substr(0, bytes.size()) + bytes;  // valid head, junk tail
    SpoolMessage m;
    MessageRecordInfo info;
    Recipient r;
    std::string content;
    EXPECT_FALSE(decode_message_record(bytes, &m, &info));
    EXPECT_FALSE(decode_recipient_record(bytes, &r));
    decode_body(bytes, &content);
    parse_recipient_key(bytes);
    parse_next_attempt_key(bytes);
  }
}

TEST(SpoolCodec, Crc32MatchesTheStandardCheckValue) { EXPECT_EQ(crc32("123456789"), 0xCBF43926u); }

TEST(SpoolCodec, BodyRoundTripAndVersion) {
  const std::string content = "Subject: x\r\n\r\nbody\r\n";
  std::string value(body_value_size(content), '\0');
  encode_body_into(content, value.data());
  std::string out;
  ASSERT_TRUE(decode_body(value, &out));
  EXPECT_EQ(out, content);
  EXPECT_FALSE(decode_body("", &out));
  EXPECT_FALSE(decode_body("\x07rest", &out));
}

TEST(SpoolCodec, KeysSortAndParse) {
  // The scheduler index sorts by time first, then id.
  EXPECT_LT(next_attempt_key(1000, "zzz", 0), next_attempt_key(2000, "aaa", 0));
  EXPECT_LT(next_attempt_key(-7, "b", 0), next_attempt_key(1, "a", 0));
  const std::string key = next_attempt_key(1767225600000, "0123abcd", 258);
  const auto parsed = parse_next_attempt_key(key);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->next_attempt_ms, 1767225600000);
  EXPECT_EQ(parsed->id, "0123abcd");
  EXPECT_EQ(parsed->index, 258u);

  // An id that is a prefix of another does not capture its recipients.
  const std::string short_id = recipient_key("m1", 0x30303030);
  EXPECT_FALSE(recipient_key("m10", 0).starts_with(recipient_key_prefix("m1")));
  const auto rk = parse_recipient_key(short_id);
  ASSERT_TRUE(rk);
  EXPECT_EQ(rk->id, "m1");
  EXPECT_EQ(rk->index, 0x30303030u);
  EXPECT_FALSE(parse_recipient_key("garbage"));
  EXPECT_FALSE(parse_recipient_key(""));
  EXPECT_FALSE(parse_next_attempt_key("short"));

  EXPECT_EQ(site_key("gmail.com", "id1", 1), std::string("gmail.com\0id1\0\0\0\0\1", 18));
}

}  // namespace
}  // namespace ringmail::queue
