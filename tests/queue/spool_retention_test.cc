// tests/queue/spool_retention_test.cc — what the spool keeps of finished
// messages (queue/spool_retention.h): the status and dead-letter codecs and
// their damaged forms, the expiry keys, and on both spools the commit that
// writes the records as a message leaves (and not before), keeps the body
// of a failed one, takes a dead letter back for a retry (counting it as
// queued again, not received) and removes expired records a bounded number
// at a time.
#include "queue/spool_retention.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "queue/campaign_records.h"
#include "queue/record_bytes.h"
#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "runtime/clock.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using namespace std::chrono_literals;
using testing::make_test_message;
using testing::TempDir;

constexpr int64_t kHour = 3600 * 1000;

StatusRecord sample_status() {
  StatusRecord s;
  s.id = "0190abcdef0123456789";
  s.sender = "app@sender.test";
  s.tenant = "app1";
  s.campaign = "spring";
  s.received_unix_ms = 1767225600123;
  s.size = 4096;
  s.finished_unix_ms = 1767225700000;
  s.expires_unix_ms = 1767830500000;
  s.recipients.push_back(StatusRecipient{"a@x.test", RecipientState::delivered, 1,
                                         RecipientResponse{250, "2.0.0", "Ok: queued as 12"}, ""});
  s.recipients.push_back(StatusRecipient{"b@y.test", RecipientState::bounced, 2,
                                         RecipientResponse{550, "5.1.1", "no such user"},
                                         "InvalidRecipient"});
  s.recipients.push_back(StatusRecipient{"c@z.test", RecipientState::expired, 7,
                                         RecipientResponse{0, "4.4.7", "message expired"},
                                         "MessageExpired"});
  return s;
}

// Bytes with a fresh checksum, so that the damage reaches the parser.
std::string with_crc(std::string covered) {
  const uint32_t crc = crc32(covered);
  for (int i = 0; i < 4; ++i) covered.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return covered;
}

TEST(StatusRecord, RoundTrip) {
  const StatusRecord s = sample_status();
  std::string bytes;
  encode_status(s, &bytes);
  StatusRecord out;
  const DecodeResult decoded = decode_status(bytes, &out);
  ASSERT_TRUE(decoded) << decoded.error;
  EXPECT_EQ(out, s);
}

TEST(StatusRecord, DamagedRecordsAreErrors) {
  std::string good;
  encode_status(sample_status(), &good);
  const std::string payload = good.substr(0, good.size() - 4);  // without the CRC
  // Offset of the recipient count: version, four strings, four u64.
  const size_t count_at = 1 + (4 + 20) + (4 + 15) + (4 + 4) + (4 + 6) + 4 * 8;
  const size_t state_at = count_at + 4 + 4 + 8;  // first recipient: its address, then state
  auto patched = [&](size_t at, std::string bytes) {
    std::string p = payload;
    p.replace(at, bytes.size(), bytes);
    return with_crc(p);
  };
  struct Case {
    std::string name;
    std::string bytes;
    std::string error;  // a substring of the decoder's error
  };
  const std::vector<Case> cases = {
      {"empty", "", "truncated"},
      {"version only", "\x01", "truncated"},
      {"checksum off", good.substr(0, good.size() - 1) + "x", "checksum"},
      {"future version", with_crc("\x02" + payload.substr(1)), "unknown version 2"},
      {"zero recipients", patched(count_at, std::string("\0\0\0\0", 4)), "implausible recipient"},
      {"count beyond the bytes", patched(count_at, "\xff\xff\x00\x00"), "implausible recipient"},
      {"unknown state", patched(state_at, "\x2a"), "unknown recipient state 42"},
      {"trailing byte", with_crc(payload + "x"), "trailing"},
      {"cut in a recipient", with_crc(payload.substr(0, payload.size() - 3)), "truncated"},
  };
  for (const Case& c : cases) {
    StatusRecord out;
    const DecodeResult r = decode_status(c.bytes, &out);
    EXPECT_FALSE(r) << c.name;
    EXPECT_NE(r.error.find(c.error), std::string::npos) << c.name << ": " << r.error;
  }
  // Every prefix and every flipped byte.
  for (size_t len = 0; len < good.size(); ++len) {
    StatusRecord out;
    EXPECT_FALSE(decode_status(good.substr(0, len), &out)) << len;
  }
  for (size_t i = 0; i < good.size(); ++i) {
    std::string corrupt = good;
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x21);
    StatusRecord out;
    EXPECT_FALSE(decode_status(corrupt, &out)) << "byte " << i;
  }
  // Random bytes with a valid frame never decode and never crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    std::string junk(std::uniform_int_distribution<size_t>(0, 120)(rng), '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    StatusRecord out;
    DeadLetter dead;
    decode_status(with_crc("\x01" + junk), &out);
    decode_dead_letter(with_crc("\x01" + junk), &dead);
    parse_expiry_key(junk);
  }
}

TEST(DeadLetter, RoundTripKeepsTheSpooledRecords) {
  SpoolMessage m = make_test_message(2, 700, "spring");
  m.envelope.recipients[1].state = RecipientState::bounced;
  m.envelope.recipients[1].last_response = RecipientResponse{550, "5.1.1", "unknown"};
  m.envelope.recipients[1].category = "InvalidRecipient";
  m.envelope.recipients[0].state = RecipientState::delivered;
  std::string record;
  encode_message_record(m, &record);
  std::string bytes;
  encode_dead_letter(record, m.envelope.recipients, 100, 200, &bytes);
  DeadLetter out;
  const DecodeResult decoded = decode_dead_letter(bytes, &out);
  ASSERT_TRUE(decoded) << decoded.error;
  EXPECT_EQ(out.finished_unix_ms, 100);
  EXPECT_EQ(out.expires_unix_ms, 200);
  EXPECT_EQ(out.body_size, m.content.size());
  EXPECT_EQ(out.message.id, m.id);
  EXPECT_EQ(out.message.meta.campaign, "spring");
  EXPECT_EQ(out.message.envelope.dsn_envid, m.envelope.dsn_envid);
  ASSERT_EQ(out.message.envelope.recipients.size(), 2u);
  EXPECT_EQ(out.message.envelope.recipients[1].category, "InvalidRecipient");
  EXPECT_EQ(out.message.envelope.recipients[0].dsn_notify, "SUCCESS,FAILURE");

  // Fewer recipient records than the message record says: an error.
  std::string short_bytes;
  encode_dead_letter(record, {m.envelope.recipients[0]}, 100, 200, &short_bytes);
  EXPECT_FALSE(decode_dead_letter(short_bytes, &out));
  for (size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_FALSE(decode_dead_letter(bytes.substr(0, len), &out)) << len;
  }
}

TEST(ExpiryKeys, SortByTimeAndParse) {
  EXPECT_LT(expiry_key(999, RetainedKind::status, "zzz"),
            expiry_key(1000, RetainedKind::dead, "aaa"));
  EXPECT_LT(expiry_key(1767225600000, RetainedKind::status, "m"), expiry_key_bound(1767225600000));
  EXPECT_GT(expiry_key(1767225600001, RetainedKind::status, "m"), expiry_key_bound(1767225600000));
  const std::string key = expiry_key(1767225600000, RetainedKind::dead, "0190abc");
  EXPECT_EQ(key, "expiry/0000019b76daa800/d/0190abc");
  const auto parsed = parse_expiry_key(key);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->expires_unix_ms, 1767225600000);
  EXPECT_EQ(parsed->kind, RetainedKind::dead);
  EXPECT_EQ(parsed->id, "0190abc");
  for (const char* bad :
       {"", "expiry/", "expiry/0000019b76daa800/d/", "expiry/0000019B76DAA800/d/x",
        "expiry/0000019b76daa800/x/id", "expiry/0000019b76daa8/d/id",
        "expiry/ffffffffffffffff/s/id", "status/0000019b76daa800/s/id"}) {
    EXPECT_FALSE(parse_expiry_key(bad)) << bad;
  }
}

TEST(DeadLetter, RetryQueuesTheFailedRecipientsOnly) {
  DeadLetter dead;
  dead.message = make_test_message(3, 200);
  auto& r = dead.message.envelope.recipients;
  r[0].state = RecipientState::delivered;
  r[1].state = RecipientState::bounced;
  r[1].attempts = 1;
  r[1].category = "InvalidRecipient";
  r[1].last_response = RecipientResponse{550, "5.1.1", "no"};
  r[2].state = RecipientState::expired;
  r[2].attempts = 9;
  size_t requeued = 0;
  const SpoolMessage m = retry_message(dead, "content", 5000, &requeued);
  EXPECT_EQ(requeued, 2u);
  EXPECT_EQ(m.origin, MessageOrigin::dead_letter_retry);
  EXPECT_EQ(m.id, dead.message.id);
  EXPECT_EQ(m.content, "content");
  EXPECT_EQ(m.meta.received_unix_ms, 5000);
  EXPECT_EQ(m.envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(m.envelope.recipients[1].state, RecipientState::queued);
  EXPECT_EQ(m.envelope.recipients[1].attempts, 1u);  // the history stays
  EXPECT_EQ(m.envelope.recipients[1].next_attempt_unix_ms, 5000);
  EXPECT_EQ(m.envelope.recipients[1].category, "");
  EXPECT_EQ(m.envelope.recipients[1].last_response.code, 550);
  EXPECT_EQ(m.envelope.recipients[2].state, RecipientState::queued);
  EXPECT_EQ(m.envelope.recipients[2].attempts, 9u);
}

// ---- on both spools

struct SpoolKind {
  const char* name;
  std::function<std::unique_ptr<Spool>(const TempDir&, const SpoolOptions&)> open;
};
void PrintTo(const SpoolKind& kind, std::ostream* os) { *os << kind.name; }

class Retention : public ::testing::TestWithParam<SpoolKind> {
 protected:
  void open(RetentionPolicy policy, size_t per_commit = 100) {
    spool_.reset();
    SpoolOptions options;
    options.retention = policy;
    options.expire_per_commit = per_commit;
    options.clock = &clock_;
    spool_ = GetParam().open(dir_, options);
    ASSERT_NE(spool_, nullptr);
  }
  Spool& spool() { return *spool_; }

  void store(SpoolMessage& m) {
    SpoolMessage* batch[] = {&m};
    const StoreOutcome outcome = spool().commit(batch, {}, {});
    ASSERT_TRUE(outcome.ok()) << outcome.detail;
  }
  // One delivery result, and the message offered for deletion.
  void finish(const SpoolMessage& m, uint32_t index, RecipientState state,
              RecipientResponse response, std::optional<mail::BounceCategory> category = {}) {
    RecipientUpdate u{m.id, index, state, 1, 0};
    u.response = std::move(response);
    u.category = category;
    const MessageId finished[] = {m.id};
    const StoreOutcome outcome = spool().commit({}, std::span(&u, 1), finished);
    ASSERT_TRUE(outcome.ok()) << outcome.detail;
  }
  void bounce(const SpoolMessage& m, uint32_t index) {
    finish(m, index, RecipientState::bounced, {550, "5.1.1", "no such user"},
           mail::BounceCategory::InvalidRecipient);
  }
  std::optional<StatusRecord> status_of(const SpoolMessage& m) {
    const auto bytes = spool().control(status_key(m.id.value));
    if (!bytes) return std::nullopt;
    StatusRecord record;
    EXPECT_TRUE(decode_status(*bytes, &record));
    return record;
  }
  size_t count(const std::string& prefix) { return spool().controls(prefix).size(); }

  TempDir dir_;
  runtime::FakeClock clock_;
  std::unique_ptr<Spool> spool_;
};

TEST_P(Retention, StatusRecordIsWrittenWhenTheMessageFinishesAndNotBefore) {
  open({.keep_status_ms = 7 * 24 * kHour, .keep_failed_ms = 0});
  SpoolMessage m = make_test_message(2, 500, "spring");
  store(m);
  finish(m, 0, RecipientState::delivered, {250, "2.0.0", "Ok: queued as X1"});
  EXPECT_TRUE(spool().load_message(m.id, false));  // recipient 1 still queued
  EXPECT_FALSE(status_of(m));
  EXPECT_EQ(count(kExpiryPrefix), 0u);

  clock_.advance(90s);
  bounce(m, 1);
  EXPECT_FALSE(spool().load_message(m.id, false));
  const std::optional<StatusRecord> status = status_of(m);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->id, m.id.value);
  EXPECT_EQ(status->sender, "app@sender.test");
  EXPECT_EQ(status->tenant, "app1");
  EXPECT_EQ(status->campaign, "spring");
  EXPECT_EQ(status->received_unix_ms, m.meta.received_unix_ms);
  EXPECT_EQ(status->size, m.meta.size);
  EXPECT_EQ(status->finished_unix_ms, clock_.unix_ms());
  EXPECT_EQ(status->expires_unix_ms, clock_.unix_ms() + 7 * 24 * kHour);
  ASSERT_EQ(status->recipients.size(), 2u);
  EXPECT_EQ(status->recipients[0],
            (StatusRecipient{"user0@example.test", RecipientState::delivered, 1,
                             RecipientResponse{250, "2.0.0", "Ok: queued as X1"}, ""}));
  EXPECT_EQ(status->recipients[1],
            (StatusRecipient{"user1@example.org", RecipientState::bounced, 1,
                             RecipientResponse{550, "5.1.1", "no such user"}, "InvalidRecipient"}));
  EXPECT_EQ(spool().controls(kExpiryPrefix).size(), 1u);
  EXPECT_EQ(count(kDeadPrefix), 0u);  // keep_failed is off
}

TEST_P(Retention, NothingIsKeptWhenRetentionIsOff) {
  open({});
  SpoolMessage m = make_test_message(1, 300);
  store(m);
  bounce(m, 0);
  EXPECT_FALSE(spool().load_message(m.id, false));
  EXPECT_EQ(
      count(kStatusPrefix) + count(kDeadPrefix) + count(kDeadBodyPrefix) + count(kExpiryPrefix),
      0u);
}

TEST_P(Retention, KeepFailedKeepsTheBodyOfABouncedMessageOnly) {
  open({.keep_status_ms = kHour, .keep_failed_ms = 48 * kHour});
  SpoolMessage failed = make_test_message(2, 3000, "spring");
  SpoolMessage fine = make_test_message(1, 300);
  store(failed);
  store(fine);
  finish(fine, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  finish(failed, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  bounce(failed, 1);

  EXPECT_FALSE(spool().control(dead_key(fine.id.value)));
  const auto bytes = spool().control(dead_key(failed.id.value));
  ASSERT_TRUE(bytes);
  DeadLetter dead;
  ASSERT_TRUE(decode_dead_letter(*bytes, &dead));
  EXPECT_EQ(dead.expires_unix_ms, clock_.unix_ms() + 48 * kHour);
  EXPECT_EQ(dead.message.envelope.sender, failed.envelope.sender);
  EXPECT_EQ(dead.message.envelope.dsn_ret, "HDRS");
  EXPECT_EQ(dead.message.meta.helo, failed.meta.helo);
  ASSERT_EQ(dead.message.envelope.recipients.size(), 2u);
  EXPECT_EQ(dead.message.envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(dead.message.envelope.recipients[1].state, RecipientState::bounced);
  EXPECT_EQ(dead.message.envelope.recipients[1].category, "InvalidRecipient");
  const auto body = spool().control(dead_body_key(failed.id.value));
  ASSERT_TRUE(body);
  std::string content;
  ASSERT_TRUE(decode_body(*body, &content));
  EXPECT_EQ(content, failed.content);
  EXPECT_EQ(dead.body_size, failed.content.size());
  EXPECT_EQ(count(kExpiryPrefix), 3u);  // two status records, one dead letter
}

TEST_P(Retention, RetryTakesTheDeadLetterBackAndCountsQueuedAgainNotReceived) {
  open({.keep_status_ms = kHour, .keep_failed_ms = 48 * kHour});
  SpoolMessage m = make_test_message(2, 900, "spring");
  store(m);
  finish(m, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  bounce(m, 1);
  auto stats = [&] {
    const StatsDeltas found = spool().delivery_stats(campaign_stats_key("spring"));
    auto it = found.find(campaign_stats_key("spring"));
    EXPECT_NE(it, found.end());
    return it == found.end() ? DeliveryStats{} : it->second;
  };
  DeliveryStats before = stats();
  EXPECT_EQ(before.received, 2u);
  EXPECT_EQ(before.bounced, 1u);
  EXPECT_EQ(before.queued, 0);

  DeadLetter dead;
  ASSERT_TRUE(decode_dead_letter(*spool().control(dead_key(m.id.value)), &dead));
  std::string content;
  ASSERT_TRUE(decode_body(*spool().control(dead_body_key(m.id.value)), &content));
  clock_.advance(10min);
  size_t requeued = 0;
  SpoolMessage retry = retry_message(dead, content, clock_.unix_ms(), &requeued);
  ASSERT_EQ(requeued, 1u);
  store(retry);

  const auto back = spool().load_message(m.id, true);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->content, m.content);
  EXPECT_EQ(back->origin, MessageOrigin::received);  // not stored
  EXPECT_EQ(back->envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(back->envelope.recipients[1].state, RecipientState::queued);
  EXPECT_EQ(
      count(kDeadPrefix) + count(kDeadBodyPrefix) + count(kStatusPrefix) + count(kExpiryPrefix),
      0u);
  DeliveryStats after = stats();
  EXPECT_EQ(after.received, 2u);  // not received again
  EXPECT_EQ(after.queued, 1);
  EXPECT_EQ(after.bounced, 1u);

  // A second retry of the same dead letter stores nothing.
  retry.id = m.id;
  SpoolMessage* batch[] = {&retry};
  EXPECT_FALSE(spool().commit(batch, {}, {}).ok());
  SpoolMessage other = make_test_message(1, 100);
  other.origin = MessageOrigin::dead_letter_retry;  // never was a dead letter
  SpoolMessage* other_batch[] = {&other};
  const StoreOutcome refused = spool().commit(other_batch, {}, {});
  EXPECT_EQ(refused.status, StoreStatus::failed);
  EXPECT_NE(refused.detail.find("no dead letter"), std::string::npos) << refused.detail;
  EXPECT_FALSE(spool().load_message(other.id, false));

  // Delivered this time: a fresh status record, its failure history gone.
  finish(m, 1, RecipientState::delivered, {250, "2.0.0", "now it works"});
  const auto status = status_of(m);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->recipients[1].state, RecipientState::delivered);
  EXPECT_EQ(status->recipients[1].category, "");
  EXPECT_EQ(count(kDeadPrefix), 0u);
  EXPECT_EQ(stats().queued, 0);
  EXPECT_EQ(stats().delivered, 2u);
}

TEST_P(Retention, CleanupRemovesAtMostNExpiredRecordsPerCommit) {
  open({.keep_status_ms = kHour, .keep_failed_ms = 0}, /*per_commit=*/3);
  std::vector<SpoolMessage> early, late;
  for (int i = 0; i < 5; ++i) {
    early.push_back(make_test_message(1, 200));
    store(early.back());
    finish(early.back(), 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  }
  clock_.advance(30min);
  for (int i = 0; i < 2; ++i) {
    late.push_back(make_test_message(1, 200));
    store(late.back());
    finish(late.back(), 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  }
  EXPECT_EQ(count(kStatusPrefix), 7u);

  clock_.advance(30min);  // the early ones expire now, at exactly their expiry
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());  // a commit with nothing else cleans up
  EXPECT_EQ(count(kStatusPrefix), 4u);
  EXPECT_EQ(count(kExpiryPrefix), 4u);
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());
  EXPECT_EQ(count(kStatusPrefix), 2u);
  for (const SpoolMessage& m : early) EXPECT_FALSE(status_of(m)) << m.id.value;
  for (const SpoolMessage& m : late) EXPECT_TRUE(status_of(m)) << m.id.value;
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());  // nothing due: the late ones stay
  EXPECT_EQ(count(kStatusPrefix), 2u);

  // Cleanup rides along with ordinary commits too.
  clock_.advance(31min);
  SpoolMessage fresh = make_test_message(1, 200);
  store(fresh);
  EXPECT_EQ(count(kStatusPrefix), 0u);
  EXPECT_EQ(count(kExpiryPrefix), 0u);
  EXPECT_TRUE(spool().load_message(fresh.id, false));
}

TEST_P(Retention, ACommitThatFinishesMessagesRemovesTwiceAsManyMore) {
  open({.keep_status_ms = kHour, .keep_failed_ms = 0}, /*per_commit=*/3);
  for (int i = 0; i < 10; ++i) {
    SpoolMessage m = make_test_message(1, 200);
    store(m);
    finish(m, 0, RecipientState::delivered, {250, "2.0.0", "ok"});
  }
  SpoolMessage last = make_test_message(1, 200);
  store(last);
  clock_.advance(1h);
  finish(last, 0, RecipientState::delivered, {250, "2.0.0", "ok"});  // 3 + 2 * 1
  EXPECT_EQ(count(kStatusPrefix), 10u - 5u + 1u);
  EXPECT_TRUE(status_of(last));
}

TEST_P(Retention, ExpiredDeadLettersGoWithTheirBodies) {
  open({.keep_status_ms = 0, .keep_failed_ms = kHour});
  SpoolMessage m = make_test_message(1, 2000);
  store(m);
  bounce(m, 0);
  EXPECT_EQ(count(kDeadBodyPrefix), 1u);
  EXPECT_EQ(count(kStatusPrefix), 0u);
  clock_.advance(1h);
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());
  EXPECT_EQ(count(kDeadPrefix) + count(kDeadBodyPrefix) + count(kExpiryPrefix), 0u);
}

TEST_P(Retention, ARewrittenRecordOutlivesTheExpiryOfTheOneBefore) {
  open({.keep_status_ms = kHour, .keep_failed_ms = 2 * kHour});
  SpoolMessage m = make_test_message(1, 400);
  store(m);
  bounce(m, 0);  // status until t+1h, dead letter until t+2h
  clock_.advance(10min);
  DeadLetter dead;
  ASSERT_TRUE(decode_dead_letter(*spool().control(dead_key(m.id.value)), &dead));
  std::string content;
  ASSERT_TRUE(decode_body(*spool().control(dead_body_key(m.id.value)), &content));
  SpoolMessage retry = retry_message(dead, content, clock_.unix_ms(), nullptr);
  store(retry);
  clock_.advance(10min);
  bounce(m, 0);           // again: status until t+1h20m, dead letter until t+2h20m
  clock_.advance(45min);  // t+1h05m: past the first status record's expiry
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());
  ASSERT_TRUE(status_of(m));
  clock_.advance(15min);  // t+1h20m
  ASSERT_TRUE(spool().commit({}, {}, {}).ok());
  EXPECT_FALSE(status_of(m));
  EXPECT_TRUE(spool().control(dead_key(m.id.value)));
  EXPECT_EQ(count(kExpiryPrefix), 1u);
}

TEST_P(Retention, DropDeadLetterAndRetentionChangedAtRunTime) {
  open({});
  SpoolMessage a = make_test_message(1, 300);
  store(a);
  bounce(a, 0);
  EXPECT_EQ(count(kDeadPrefix), 0u);

  spool().set_retention({.keep_status_ms = 0, .keep_failed_ms = kHour});  // a reload
  SpoolMessage b = make_test_message(1, 300);
  store(b);
  bounce(b, 0);
  ASSERT_TRUE(spool().control(dead_key(b.id.value)));
  bool found = false;
  ASSERT_TRUE(spool().drop_dead_letter(b.id, &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(count(kDeadPrefix) + count(kDeadBodyPrefix) + count(kExpiryPrefix), 0u);
  ASSERT_TRUE(spool().drop_dead_letter(b.id, &found).ok());
  EXPECT_FALSE(found);
}

INSTANTIATE_TEST_SUITE_P(
    BothSpools, Retention,
    ::testing::Values(SpoolKind{"memory",
                                [](const TempDir&, const SpoolOptions& options) {
                                  return std::unique_ptr<Spool>(new MemorySpool(
                                      std::numeric_limits<uint64_t>::max(), options));
                                }},
                      SpoolKind{"lmdb",
                                [](const TempDir& dir, const SpoolOptions& options) {
                                  std::string error;
                                  auto spool = open_lmdb_spool(dir.path() / "spool", 64ull << 20,
                                                               &error, options);
                                  EXPECT_NE(spool, nullptr) << error;
                                  return spool;
                                }}),
    [](const ::testing::TestParamInfo<SpoolKind>& info) { return std::string(info.param.name); });

// ---- LMDB only: on disk

TEST(LmdbRetention, StatusRecordSurvivesReopen) {
  TempDir dir;
  runtime::FakeClock clock;
  SpoolOptions options;
  options.retention.keep_status_ms = kHour;
  options.clock = &clock;
  SpoolMessage m = make_test_message(1, 300);
  {
    std::string error;
    auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error, options);
    ASSERT_TRUE(spool) << error;
    SpoolMessage* batch[] = {&m};
    ASSERT_TRUE(spool->commit(batch, {}, {}).ok());
    RecipientUpdate u{m.id, 0, RecipientState::delivered, 1, 0};
    u.response = {250, "2.0.0", "ok"};
    const MessageId finished[] = {m.id};
    ASSERT_TRUE(spool->commit({}, std::span(&u, 1), finished).ok());
  }
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error, options);
  ASSERT_TRUE(spool) << error;
  EXPECT_FALSE(spool->load_message(m.id, false));
  const auto bytes = spool->control(status_key(m.id.value));
  ASSERT_TRUE(bytes);
  StatusRecord status;
  ASSERT_TRUE(decode_status(*bytes, &status));
  EXPECT_EQ(status.recipients.at(0).response.text, "ok");
}

// A spool whose recipients were written by a build before record version 2
// opens, is delivered from, and its records become version 2 as they change.
TEST(LmdbRetention, Version1RecipientRecordsAreReadAndUpgradedInPlace) {
  TempDir dir;
  SpoolMessage m = make_test_message(2, 300);
  {
    std::string error;
    auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
    ASSERT_TRUE(spool) << error;
    SpoolMessage* batch[] = {&m};
    ASSERT_TRUE(spool->commit(batch, {}, {}).ok());
  }
  // Rewrite both recipient records in the version-1 layout.
  {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0600), 0);
    MDB_txn* txn = nullptr;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, "recipients", 0, &dbi), 0);
    for (uint32_t i = 0; i < 2; ++i) {
      const Recipient& r = m.envelope.recipients[i];
      std::string v1(1, '\x01');
      put_str(&v1, r.address);
      put_str(&v1, r.domain);
      put_str(&v1, r.dsn_notify);
      put_str(&v1, r.dsn_orcpt);
      put_u8(&v1, static_cast<uint8_t>(r.state));
      put_u32le(&v1, r.attempts);
      put_u64le(&v1, static_cast<uint64_t>(r.next_attempt_unix_ms));
      append_crc(&v1, 0);
      const std::string key = recipient_key(m.id.value, i);
      MDB_val k{key.size(), const_cast<char*>(key.data())};
      MDB_val v{v1.size(), v1.data()};
      ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
  ASSERT_TRUE(spool) << error;
  EXPECT_EQ(spool->recover().corrupt_records, 0u);
  auto loaded = spool->load_message(m.id, false);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->envelope.recipients[0].address, m.envelope.recipients[0].address);
  EXPECT_EQ(loaded->envelope.recipients[0].last_response, RecipientResponse{});
  RecipientUpdate u{m.id, 0, RecipientState::deferred, 1, 1767225660000};
  u.response = {451, "4.3.0", "try later"};
  ASSERT_TRUE(spool->commit({}, std::span(&u, 1), {}).ok());
  loaded = spool->load_message(m.id, false);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->envelope.recipients[0].last_response,
            (RecipientResponse{451, "4.3.0", "try later"}));
  EXPECT_EQ(loaded->envelope.recipients[1].state, RecipientState::queued);
  size_t visited = 0;
  spool->for_each_recipient([&](const SpoolMessage&, size_t) { ++visited; });
  EXPECT_EQ(visited, 2u);
}

}  // namespace
}  // namespace ringmail::queue
