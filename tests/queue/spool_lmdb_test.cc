#include "queue/spool_lmdb.h"

#include <gtest/gtest.h>
#include <lmdb.h>

#include <map>
#include <set>

#include "queue/spool_codec.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

constexpr uint64_t kMapSize = 64ull << 20;

std::unique_ptr<Spool> open_or_die(const std::filesystem::path& dir, uint64_t map_size = kMapSize) {
  std::string error;
  auto spool = open_lmdb_spool(dir, map_size, &error);
  EXPECT_NE(spool, nullptr) << error;
  return spool;
}

StoreOutcome store_one(Spool& spool, SpoolMessage& m) {
  SpoolMessage* batch[] = {&m};
  return spool.store_batch(batch);
}

// Writes raw bytes into one named database, as a bit flip or a buggy older
// build would. The spool must be closed: LMDB allows one env per process.
void raw_put(const std::filesystem::path& dir, const char* db, std::string_view key,
             std::string_view value) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())};
  MDB_val v{value.size(), const_cast<char*>(value.data())};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

// Entries of one named database, read raw (the spool must be closed).
size_t raw_entries(const std::filesystem::path& dir, const char* db) {
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) return SIZE_MAX;
  mdb_env_set_maxdbs(env, 16);
  size_t entries = SIZE_MAX;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi;
  MDB_stat st;
  if (mdb_env_open(env, dir.c_str(), 0, 0600) == 0 &&
      mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
      entries = st.ms_entries;
    mdb_txn_abort(txn);
  }
  mdb_env_close(env);
  return entries;
}

TEST(LmdbSpool, TheUnusedCampaignIndexIsEmptiedAtOpenAndNoLongerWritten) {
  TempDir dir;
  SpoolMessage kept = make_test_message(2, 100, "spring");
  {
    auto spool = open_or_die(dir.path());
    ASSERT_TRUE(store_one(*spool, kept).ok());
  }
  // What an earlier build wrote for its campaign mail.
  raw_put(dir.path(), "idx_campaign", campaign_key("spring", kept.id.value, 0), "");
  raw_put(dir.path(), "idx_campaign", campaign_key("spring", kept.id.value, 1), "");
  ASSERT_EQ(raw_entries(dir.path(), "idx_campaign"), 2u);
  {
    auto spool = open_or_die(dir.path());
    SpoolMessage more = make_test_message(3, 100, "autumn");
    ASSERT_TRUE(store_one(*spool, more).ok());
    auto loaded = spool->load_message(kept.id, true);
    ASSERT_TRUE(loaded) << "the messages themselves are untouched";
    EXPECT_EQ(loaded->envelope.recipients.size(), 2u);
    EXPECT_EQ(loaded->meta.campaign, "spring");
  }
  EXPECT_EQ(raw_entries(dir.path(), "idx_campaign"), 0u);
  EXPECT_EQ(raw_entries(dir.path(), "idx_site"), 5u) << "the other indexes are kept";
}

TEST(LmdbSpool, StoreCloseReopenLoad) {
  TempDir dir;
  SpoolMessage m = make_test_message(2, 4096, "welcome");
  {
    auto spool = open_or_die(dir.path() / "spool");  // created when missing
    ASSERT_TRUE(spool);
    const StoreOutcome outcome = store_one(*spool, m);
    ASSERT_TRUE(outcome.ok()) << outcome.detail;
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "spool" / "data.mdb"));

  auto spool = open_or_die(dir.path() / "spool");
  ASSERT_TRUE(spool);
  const auto loaded = spool->load_message(m.id, true);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->id, m.id);
  EXPECT_EQ(loaded->content, m.content);
  EXPECT_EQ(loaded->envelope.sender, m.envelope.sender);
  EXPECT_EQ(loaded->meta.campaign, "welcome");
  EXPECT_EQ(loaded->meta.size, m.content.size());
  ASSERT_EQ(loaded->envelope.recipients.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(loaded->envelope.recipients[i].address, m.envelope.recipients[i].address);
    EXPECT_EQ(loaded->envelope.recipients[i].domain, m.envelope.recipients[i].domain);
    EXPECT_EQ(loaded->envelope.recipients[i].state, RecipientState::queued);
    EXPECT_EQ(loaded->envelope.recipients[i].next_attempt_unix_ms,
              m.envelope.recipients[i].next_attempt_unix_ms);
  }
  EXPECT_EQ(loaded->envelope.recipients[0].dsn_notify, "SUCCESS,FAILURE");

  const auto without_content = spool->load_message(m.id, false);
  ASSERT_TRUE(without_content);
  EXPECT_TRUE(without_content->content.empty());
  EXPECT_FALSE(spool->load_message(MessageId{"nosuchid"}, true));
}

TEST(LmdbSpool, StoreBatchOfManyMessages) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  std::vector<SpoolMessage> messages;
  for (int i = 0; i < 500; ++i) messages.push_back(make_test_message(1 + i % 3, 512 + i));
  std::vector<SpoolMessage*> batch;
  for (auto& m : messages) batch.push_back(&m);
  ASSERT_TRUE(spool->store_batch(batch).ok());

  for (const auto& m : messages) {
    const auto loaded = spool->load_message(m.id, true);
    ASSERT_TRUE(loaded) << m.id.value;
    EXPECT_EQ(loaded->content, m.content);
    EXPECT_EQ(loaded->envelope.recipients.size(), m.envelope.recipients.size());
  }
  const SpoolStats stats = spool->stats();
  EXPECT_EQ(stats.messages, 500u);
  EXPECT_EQ(stats.recipients, 500u / 3 * 6 + 3);  // 1,2,3 repeating: 166 cycles + 1,2
  EXPECT_EQ(stats.map_size_bytes, kMapSize);
  EXPECT_GT(stats.used_bytes, 500u * 512);
  EXPECT_LT(stats.used_bytes, stats.map_size_bytes);
}

TEST(LmdbSpool, BatchIsAllOrNothing) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  SpoolMessage first = make_test_message();
  ASSERT_TRUE(store_one(*spool, first).ok());

  SpoolMessage fresh = make_test_message();
  SpoolMessage duplicate = first;
  SpoolMessage* batch[] = {&fresh, &duplicate};
  const StoreOutcome outcome = spool->store_batch(batch);
  EXPECT_EQ(outcome.status, StoreStatus::failed);
  EXPECT_NE(outcome.detail.find("duplicate"), std::string::npos) << outcome.detail;
  EXPECT_FALSE(spool->load_message(fresh.id, false)) << "half of a failed batch was written";

  SpoolMessage no_recipients = make_test_message();
  no_recipients.envelope.recipients.clear();
  EXPECT_EQ(store_one(*spool, no_recipients).status, StoreStatus::failed);
}

TEST(LmdbSpool, MapFullIsSpoolFullAndKeepsWhatWasStored) {
  TempDir dir;
  auto spool = open_or_die(dir.path(), 1ull << 20);
  std::vector<SpoolMessage> stored;
  for (int i = 0; i < 10; ++i) {
    stored.push_back(make_test_message(1, 4096));
    ASSERT_TRUE(store_one(*spool, stored.back()).ok());
  }

  SpoolMessage huge = make_test_message(1, 2 << 20);
  const StoreOutcome outcome = store_one(*spool, huge);
  EXPECT_EQ(outcome.status, StoreStatus::spool_full);
  EXPECT_NE(outcome.detail.find("MDB_MAP_FULL"), std::string::npos) << outcome.detail;
  EXPECT_FALSE(spool->load_message(huge.id, false));

  for (const auto& m : stored) {
    const auto loaded = spool->load_message(m.id, true);
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->content, m.content);
  }
  SpoolMessage small = make_test_message(1, 1024);
  EXPECT_TRUE(store_one(*spool, small).ok());
  EXPECT_TRUE(spool->load_message(small.id, true));
  EXPECT_EQ(spool->recover().corrupt_records, 0u);
}

TEST(LmdbSpool, FillingTheMapStopsCleanlyAndReopens) {
  TempDir dir;
  uint64_t accepted = 0;
  {
    auto spool = open_or_die(dir.path(), 1ull << 20);
    for (int i = 0; i < 1000; ++i) {
      SpoolMessage m = make_test_message(2, 8192);
      const StoreOutcome outcome = store_one(*spool, m);
      if (outcome.status == StoreStatus::spool_full) break;
      ASSERT_TRUE(outcome.ok()) << outcome.detail;
      ++accepted;
    }
    EXPECT_GT(accepted, 10u);
    EXPECT_LT(accepted, 1000u);
  }
  auto spool = open_or_die(dir.path(), 1ull << 20);
  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.messages, accepted);
  EXPECT_EQ(summary.recipients, 2 * accepted);
  EXPECT_EQ(summary.corrupt_records, 0u);
}

TEST(LmdbSpool, RecoverCountsByState) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  SpoolMessage a = make_test_message(3, 100, "c1");
  a.envelope.recipients[1].state = RecipientState::deferred;
  a.envelope.recipients[1].attempts = 2;
  a.envelope.recipients[2].state = RecipientState::delivered;
  SpoolMessage b = make_test_message(2, 100);
  SpoolMessage* batch[] = {&a, &b};
  ASSERT_TRUE(spool->store_batch(batch).ok());

  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.format_version, kSpoolFormatVersion);
  EXPECT_EQ(summary.messages, 2u);
  EXPECT_EQ(summary.recipients, 5u);
  EXPECT_EQ(summary.count(RecipientState::queued), 3u);
  EXPECT_EQ(summary.count(RecipientState::deferred), 1u);
  EXPECT_EQ(summary.count(RecipientState::delivered), 1u);
  EXPECT_EQ(summary.scheduled, 4u) << "delivered recipients are not scheduled";
  EXPECT_EQ(summary.corrupt_records, 0u);
  EXPECT_TRUE(summary.problems.empty());
}

TEST(LmdbSpool, ForEachRecipientVisitsEveryRecipientWithoutContent) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  std::vector<SpoolMessage> messages;
  for (int i = 0; i < 20; ++i) messages.push_back(make_test_message(1 + i % 4, 300));
  std::vector<SpoolMessage*> batch;
  std::set<std::pair<std::string, std::string>> expected;
  for (auto& m : messages) {
    batch.push_back(&m);
    for (const auto& r : m.envelope.recipients) expected.emplace(m.id.value, r.address);
  }
  ASSERT_TRUE(spool->store_batch(batch).ok());

  std::set<std::pair<std::string, std::string>> seen;
  spool->for_each_recipient([&](const SpoolMessage& m, size_t index) {
    EXPECT_TRUE(m.content.empty());
    EXPECT_EQ(m.meta.tenant, "app1");
    ASSERT_LT(index, m.envelope.recipients.size());
    seen.emplace(m.id.value, m.envelope.recipients[index].address);
  });
  EXPECT_EQ(seen, expected);
}

TEST(LmdbSpool, CorruptRecordsAreReportedAndSkipped) {
  TempDir dir;
  SpoolMessage good = make_test_message(1, 200);
  SpoolMessage bad_message = make_test_message(1, 200);
  SpoolMessage bad_recipient = make_test_message(2, 200);
  {
    auto spool = open_or_die(dir.path());
    SpoolMessage* batch[] = {&good, &bad_message, &bad_recipient};
    ASSERT_TRUE(spool->store_batch(batch).ok());
  }
  raw_put(dir.path(), "messages", bad_message.id.value, "\x01garbage that is not a record");
  raw_put(dir.path(), "recipients", recipient_key(bad_recipient.id.value, 1), "\xff\xfe");
  raw_put(dir.path(), "recipients", recipient_key("orphan-id", 0), "whatever");

  auto spool = open_or_die(dir.path());
  ASSERT_TRUE(spool);
  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.corrupt_records, 3u);
  EXPECT_EQ(summary.messages, 2u);    // good and bad_recipient's message record
  EXPECT_EQ(summary.recipients, 2u);  // good's and bad_recipient's first
  std::string all;
  for (const auto& p : summary.problems) all += p + "\n";
  EXPECT_NE(all.find(bad_message.id.value), std::string::npos) << all;
  EXPECT_NE(all.find(bad_recipient.id.value + "/1"), std::string::npos) << all;
  EXPECT_NE(all.find("orphan-id/0 has no message record"), std::string::npos) << all;

  EXPECT_FALSE(spool->load_message(bad_message.id, false));
  EXPECT_FALSE(spool->load_message(bad_recipient.id, false));
  EXPECT_TRUE(spool->load_message(good.id, true));

  std::multiset<std::string> visited;
  spool->for_each_recipient([&](const SpoolMessage& m, size_t index) {
    visited.insert(m.id.value + "/" + std::to_string(index));
  });
  EXPECT_EQ(visited,
            (std::multiset<std::string>{good.id.value + "/0", bad_recipient.id.value + "/0"}));

  // Still writable after all that.
  SpoolMessage next = make_test_message();
  EXPECT_TRUE(store_one(*spool, next).ok());
}

TEST(LmdbSpool, TruncatedBodyIsCorrupt) {
  TempDir dir;
  SpoolMessage m = make_test_message(1, 500);
  {
    auto spool = open_or_die(dir.path());
    ASSERT_TRUE(store_one(*spool, m).ok());
  }
  std::string body(1, static_cast<char>(kRecordVersion));
  body += m.content.substr(0, 100);
  raw_put(dir.path(), "bodies", m.id.value, body);
  auto spool = open_or_die(dir.path());
  EXPECT_FALSE(spool->load_message(m.id, true));
  EXPECT_TRUE(spool->load_message(m.id, false)) << "the envelope is still readable";
  EXPECT_EQ(spool->recover().corrupt_records, 1u);
}

TEST(LmdbSpool, RefusesANewerFormat) {
  TempDir dir;
  { ASSERT_TRUE(open_or_die(dir.path())); }
  raw_put(dir.path(), "meta", "format_version", std::string("\0\0\0\x63", 4));
  std::string error;
  EXPECT_EQ(open_lmdb_spool(dir.path(), kMapSize, &error), nullptr);
  EXPECT_NE(error.find("spool format 99 is not supported"), std::string::npos) << error;
  EXPECT_NE(error.find(dir.path().string()), std::string::npos) << error;
}

TEST(LmdbSpool, UnwritableDirectoryIsAnError) {
  std::string error;
  EXPECT_EQ(open_lmdb_spool("/proc/ringmail-spool", kMapSize, &error), nullptr);
  EXPECT_NE(error.find("/proc/ringmail-spool"), std::string::npos) << error;
}

}  // namespace
}  // namespace ringmail::queue

namespace ringmail::queue {
namespace {

// The delivery engine's group commit: new messages, recipient results and
// finished messages in one transaction.
TEST(LmdbSpoolCommit, UpdatesAndFinishedMessagesGoInOneCommitWithNewOnes) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  SpoolMessage done = make_test_message(2);
  SpoolMessage half = make_test_message(2);
  SpoolMessage* first[] = {&done, &half};
  ASSERT_TRUE(spool->store_batch(first).ok());

  SpoolMessage fresh = make_test_message(1);
  SpoolMessage* batch[] = {&fresh};
  const RecipientUpdate updates[] = {
      {done.id, 0, RecipientState::delivered, 1, 0},
      {done.id, 1, RecipientState::bounced, 1, 0},
      {half.id, 0, RecipientState::delivered, 1, 0},
      {half.id, 1, RecipientState::deferred, 1, 1767225999000},
      {MessageId{"00000000000000000000"}, 0, RecipientState::delivered, 1, 0},  // stale: skipped
  };
  const MessageId finished[] = {done.id, half.id};  // half still has an active recipient
  ASSERT_TRUE(spool->commit(batch, updates, finished).ok());

  EXPECT_FALSE(spool->load_message(done.id, true).has_value()) << "finished message kept";
  auto kept = spool->load_message(half.id, true);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->envelope.recipients[0].state, RecipientState::delivered);
  EXPECT_EQ(kept->envelope.recipients[1].state, RecipientState::deferred);
  EXPECT_EQ(kept->envelope.recipients[1].attempts, 1u);
  EXPECT_EQ(kept->envelope.recipients[1].next_attempt_unix_ms, 1767225999000);
  EXPECT_EQ(kept->content, half.content);
  EXPECT_TRUE(spool->load_message(fresh.id, true).has_value());

  // Restart: what recovery sees matches, with no orphan of the deleted one.
  spool.reset();
  spool = open_or_die(dir.path());
  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.messages, 2u);
  EXPECT_EQ(summary.corrupt_records, 0u);
  EXPECT_EQ(summary.count(RecipientState::deferred), 1u);
  EXPECT_EQ(summary.count(RecipientState::delivered), 1u);
  EXPECT_EQ(summary.scheduled, 2u);  // half's deferred one and fresh's queued one
  size_t visited = 0;
  spool->for_each_recipient([&](const SpoolMessage& m, size_t) {
    EXPECT_NE(m.id, done.id);
    ++visited;
  });
  EXPECT_EQ(visited, 3u);
}

TEST(LmdbSpoolCommit, QuarantinedMessagesAreNeverDeleted) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  SpoolMessage m = make_test_message(2);
  m.envelope.recipients[1].state = RecipientState::quarantined;
  ASSERT_TRUE(store_one(*spool, m).ok());
  const RecipientUpdate updates[] = {{m.id, 0, RecipientState::delivered, 1, 0}};
  const MessageId finished[] = {m.id};
  ASSERT_TRUE(spool->commit({}, updates, finished).ok());
  auto kept = spool->load_message(m.id, false);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->envelope.recipients[1].state, RecipientState::quarantined);
}

TEST(LmdbSpoolCommit, ABadNewMessageSinksTheWholeCommit) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  SpoolMessage m = make_test_message(1);
  ASSERT_TRUE(store_one(*spool, m).ok());
  SpoolMessage duplicate = m;  // same id: refused
  SpoolMessage* batch[] = {&duplicate};
  const RecipientUpdate updates[] = {{m.id, 0, RecipientState::delivered, 1, 0}};
  EXPECT_FALSE(spool->commit(batch, updates, {}).ok());
  auto kept = spool->load_message(m.id, false);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->envelope.recipients[0].state, RecipientState::queued) << "half a commit applied";
}

}  // namespace
}  // namespace ringmail::queue

namespace ringmail::queue {
namespace {

// LMDB's data file never shrinks: what deleted messages free is found on its
// free list, and space() must count it or a full spool never takes mail again.
TEST(LmdbSpoolSpace, DeletedMessagesLeaveFreePagesThatCountAsRoom) {
  TempDir dir;
  auto spool = open_or_die(dir.path());
  std::vector<SpoolMessage> stored;
  for (int i = 0; i < 200; ++i) stored.push_back(make_test_message(1, 16 << 10));
  std::vector<SpoolMessage*> batch;
  for (SpoolMessage& m : stored) batch.push_back(&m);
  ASSERT_TRUE(spool->store_batch(batch).ok());
  const SpoolSpace before = spool->space(CountFreePages::yes);
  EXPECT_TRUE(before.free_pages_counted);
  EXPECT_GE(before.map_used_bytes, 200u * (16 << 10));
  EXPECT_GT(before.filesystem_free_bytes, 0u);
  EXPECT_LT(before.filesystem_free_bytes, UINT64_MAX);

  std::vector<RecipientUpdate> updates;
  std::vector<MessageId> finished;
  for (const SpoolMessage& m : stored) {
    updates.push_back({m.id, 0, RecipientState::delivered, 1, 0});
    finished.push_back(m.id);
  }
  ASSERT_TRUE(spool->commit({}, updates, finished).ok());
  // The pages freed by that commit are reusable once the next one is made.
  SpoolMessage one = make_test_message(1);
  SpoolMessage* next[] = {&one};
  ASSERT_TRUE(spool->store_batch(next).ok());

  const SpoolSpace after = spool->space(CountFreePages::yes);
  EXPECT_GE(after.map_used_bytes, before.map_used_bytes) << "the data file does not shrink";
  EXPECT_GE(after.free_page_bytes, 200u * (16 << 10)) << "the bodies' pages are free again";
  EXPECT_GT(after.available_bytes(), before.available_bytes());
  const SpoolSpace cheap = spool->space(CountFreePages::no);
  EXPECT_FALSE(cheap.free_pages_counted);
  EXPECT_EQ(cheap.free_page_bytes, 0u);
  EXPECT_EQ(cheap.map_used_bytes, after.map_used_bytes);
}

}  // namespace
}  // namespace ringmail::queue
