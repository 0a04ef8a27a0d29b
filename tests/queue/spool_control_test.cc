// tests/queue/spool_control_test.cc — the spool's control table (operator
// holds today) on both spools: put, overwrite, delete, prefix listing in
// key order, binary values; that it stays out of the way of the messages
// (recover, for_each_recipient, commit); and, on LMDB, that it survives a
// reopen and that a spool written before the table existed opens.
#include <gtest/gtest.h>
#include <lmdb.h>

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "queue/spool.h"
#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;
using Controls = std::vector<std::pair<std::string, std::string>>;

constexpr uint64_t kMapSize = 64ull << 20;

std::unique_ptr<Spool> open_lmdb(const std::filesystem::path& dir) {
  std::string error;
  auto spool = open_lmdb_spool(dir, kMapSize, &error);
  EXPECT_NE(spool, nullptr) << error;
  return spool;
}

void put(Spool& spool, const std::string& key, const std::optional<std::string>& value) {
  const StoreOutcome outcome = spool.put_control(key, value);
  ASSERT_TRUE(outcome.ok()) << key << ": " << outcome.detail;
}

// Each test runs against the memory spool and the LMDB spool: the memory
// one stands in for LMDB in the planner and daemon tests, so they must agree.
struct SpoolKind {
  const char* name;
  std::function<std::unique_ptr<Spool>(const TempDir&)> open;
};

void PrintTo(const SpoolKind& kind, std::ostream* os) { *os << kind.name; }

class SpoolControl : public ::testing::TestWithParam<SpoolKind> {
 protected:
  void SetUp() override {
    spool_ = GetParam().open(dir_);
    ASSERT_NE(spool_, nullptr);
  }
  Spool& spool() { return *spool_; }

  TempDir dir_;
  std::unique_ptr<Spool> spool_;
};

TEST_P(SpoolControl, PutGetOverwriteAndDelete) {
  EXPECT_TRUE(spool().controls("").empty());
  put(spool(), "hold/site/mx.a.test", "1767225660000");
  EXPECT_EQ(spool().controls("hold/site/mx.a.test"),
            (Controls{{"hold/site/mx.a.test", "1767225660000"}}));

  put(spool(), "hold/site/mx.a.test", "1767229200000");  // a later suspension replaces it
  EXPECT_EQ(spool().controls(""), (Controls{{"hold/site/mx.a.test", "1767229200000"}}));

  put(spool(), "hold/site/mx.a.test", std::nullopt);
  EXPECT_TRUE(spool().controls("").empty());
  put(spool(), "hold/site/mx.a.test", std::nullopt);  // deleting an absent key is ok
  put(spool(), "never/written", std::nullopt);
  EXPECT_TRUE(spool().controls("").empty());
}

TEST_P(SpoolControl, PrefixListingIsInKeyOrder) {
  // Written out of order, with neighbours that share a prefix only in part.
  for (const char* key : {"hold/site/mx.b.test", "hold/all", "hold/domain/b.test",
                          "hold/site/mx.a.test", "hold/domain/a.test", "hold", "holdings/x",
                          "hold/site", "campaign/spring", "zzz", "hold/sitez"}) {
    put(spool(), key, std::string("v:") + key);
  }
  auto keys = [&](const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& [key, value] : spool().controls(prefix)) {
      EXPECT_EQ(value, "v:" + key);
      out.push_back(key);
    }
    return out;
  };
  using Keys = std::vector<std::string>;
  EXPECT_EQ(keys("hold/site/"), (Keys{"hold/site/mx.a.test", "hold/site/mx.b.test"}));
  EXPECT_EQ(keys("hold/"),
            (Keys{"hold/all", "hold/domain/a.test", "hold/domain/b.test", "hold/site",
                  "hold/site/mx.a.test", "hold/site/mx.b.test", "hold/sitez"}));
  EXPECT_EQ(keys("hold/all"), Keys{"hold/all"}) << "a key equal to the prefix is listed";
  EXPECT_EQ(keys("hold"),
            (Keys{"hold", "hold/all", "hold/domain/a.test", "hold/domain/b.test", "hold/site",
                  "hold/site/mx.a.test", "hold/site/mx.b.test", "hold/sitez", "holdings/x"}));
  EXPECT_EQ(keys(""), (Keys{"campaign/spring", "hold", "hold/all", "hold/domain/a.test",
                            "hold/domain/b.test", "hold/site", "hold/site/mx.a.test",
                            "hold/site/mx.b.test", "hold/sitez", "holdings/x", "zzz"}));
  EXPECT_TRUE(keys("hold/tenant/").empty());
  EXPECT_TRUE(keys("zzzz").empty()) << "a prefix after every key";
  EXPECT_TRUE(keys("a").empty()) << "a prefix before every key";
}

TEST_P(SpoolControl, KeysAndValuesAreBytes) {
  const std::string with_nul("a\0b\0", 4);
  const std::string binary("\xff\x00\x01\r\n", 5);
  put(spool(), "bin/nul", with_nul);
  put(spool(), "bin/binary", binary);
  put(spool(), "bin/empty", "");
  put(spool(), std::string("bin/key\0with nul", 16), "k");
  const Controls got = spool().controls("bin/");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"bin/binary", binary}));
  EXPECT_EQ(got[1], (std::pair<std::string, std::string>{"bin/empty", ""}));
  EXPECT_EQ(got[2],
            (std::pair<std::string, std::string>{std::string("bin/key\0with nul", 16), "k"}));
  EXPECT_EQ(got[3], (std::pair<std::string, std::string>{"bin/nul", with_nul}));
  EXPECT_EQ(got[3].second.size(), 4u);
}

TEST_P(SpoolControl, KeysMustBeOneTo400Bytes) {
  EXPECT_EQ(spool().put_control("", "x").status, StoreStatus::failed);
  EXPECT_EQ(spool().put_control(std::string(401, 'k'), "x").status, StoreStatus::failed);
  EXPECT_TRUE(spool().controls("").empty()) << "a refused key writes nothing";
  // The longest an admin target makes: "hold/domain/" and 255 bytes.
  put(spool(), "hold/domain/" + std::string(255, 'd'), "1");
  put(spool(), std::string(400, 'k'), "x");
  EXPECT_EQ(spool().controls("").size(), 2u);
}

TEST_P(SpoolControl, ALargeValue) {
  const std::string big(256 * 1024, 'v');
  put(spool(), "big", big);
  const Controls got = spool().controls("big");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, big);
}

TEST_P(SpoolControl, ControlsStayOutOfTheMessages) {
  SpoolMessage a = make_test_message(2);
  SpoolMessage b = make_test_message(1);
  SpoolMessage* first[] = {&a};
  ASSERT_TRUE(spool().store_batch(first).ok());
  put(spool(), "hold/all", "1");
  put(spool(), "hold/site/mx.a.test", "1767225660000");
  SpoolMessage* second[] = {&b};
  ASSERT_TRUE(spool().store_batch(second).ok());
  put(spool(), "hold/site/mx.b.test", "1767225660000");

  const RecoverySummary summary = spool().recover();
  EXPECT_EQ(summary.messages, 2u);
  EXPECT_EQ(summary.recipients, 3u);
  EXPECT_EQ(summary.count(RecipientState::queued), 3u);
  EXPECT_EQ(summary.corrupt_records, 0u);
  EXPECT_TRUE(summary.problems.empty()) << summary.problems.front();
  EXPECT_EQ(spool().stats().messages, 2u);
  EXPECT_EQ(spool().stats().recipients, 3u);

  std::set<std::pair<std::string, size_t>> visited;
  spool().for_each_recipient(
      [&](const SpoolMessage& m, size_t index) { visited.emplace(m.id.value, index); });
  EXPECT_EQ(visited, (std::set<std::pair<std::string, size_t>>{
                         {a.id.value, 0}, {a.id.value, 1}, {b.id.value, 0}}));

  // A message finishing deletes its records, not the controls.
  const RecipientUpdate delivered{b.id, 0, RecipientState::delivered, 1, 0};
  const MessageId finished[] = {b.id};
  ASSERT_TRUE(spool().commit({}, {&delivered, 1}, finished).ok());
  EXPECT_FALSE(spool().load_message(b.id, false));
  EXPECT_EQ(spool().controls("hold/").size(), 3u);
  ASSERT_TRUE(spool().load_message(a.id, true));
  EXPECT_EQ(spool().load_message(a.id, true)->content, a.content);
}

TEST_P(SpoolControl, ACommitWritesItsControlsWithItsResultsOrNothing) {
  SpoolMessage a = make_test_message(1);
  SpoolMessage* batch[] = {&a};
  ASSERT_TRUE(spool().store_batch(batch).ok());
  put(spool(), "warmup/*/ip9", "old");

  // Results and controls in one commit; a later write of a key wins.
  const RecipientUpdate delivered{a.id, 0, RecipientState::delivered, 1, 0};
  const ControlWrite writes[] = {{"warmup/*/ip1", "one"},
                                 {"warmup/*/ip1", "two"},
                                 {"warmup/*/ip9", std::nullopt},
                                 {"warmup/*/never", std::nullopt}};
  ASSERT_TRUE(spool().commit({}, {&delivered, 1}, {}, writes).ok());
  EXPECT_EQ(spool().controls("warmup/"), (Controls{{"warmup/*/ip1", "two"}}));
  EXPECT_EQ(spool().load_message(a.id, false)->envelope.recipients[0].state,
            RecipientState::delivered);

  // Controls alone make a commit too.
  const ControlWrite alone[] = {{"warmup/*/ip2", "x"}};
  ASSERT_TRUE(spool().commit({}, {}, {}, alone).ok());
  EXPECT_EQ(spool().control("warmup/*/ip2"), "x");

  // A bad key refuses the whole commit: the update with it is not applied.
  const RecipientUpdate queued{a.id, 0, RecipientState::queued, 2, 0};
  const ControlWrite bad[] = {{"warmup/*/ip3", "y"}, {"", "empty key"}};
  EXPECT_FALSE(spool().commit({}, {&queued, 1}, {}, bad).ok());
  EXPECT_FALSE(spool().control("warmup/*/ip3"));
  EXPECT_EQ(spool().load_message(a.id, false)->envelope.recipients[0].attempts, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Spools, SpoolControl,
    ::testing::Values(
        SpoolKind{"memory", [](const TempDir&) { return std::make_unique<MemorySpool>(); }},
        SpoolKind{"lmdb", [](const TempDir& dir) { return open_lmdb(dir.path() / "spool"); }}),
    [](const ::testing::TestParamInfo<SpoolKind>& info) { return std::string(info.param.name); });

// --- LMDB only

TEST(LmdbSpoolControl, ControlsSurviveAReopen) {
  TempDir dir;
  SpoolMessage m = make_test_message(1);
  {
    auto spool = open_lmdb(dir.path());
    ASSERT_TRUE(spool);
    SpoolMessage* batch[] = {&m};
    ASSERT_TRUE(spool->store_batch(batch).ok());
    put(*spool, "hold/all", "1");
    put(*spool, "hold/site/mx.a.test", "1767225660000");
    put(*spool, "hold/site/mx.gone.test", "1767225660000");
    put(*spool, "hold/site/mx.gone.test", std::nullopt);
  }
  auto spool = open_lmdb(dir.path());
  ASSERT_TRUE(spool);
  EXPECT_EQ(spool->controls("hold/"),
            (Controls{{"hold/all", "1"}, {"hold/site/mx.a.test", "1767225660000"}}));
  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.messages, 1u);
  EXPECT_EQ(summary.corrupt_records, 0u);
  EXPECT_TRUE(spool->load_message(m.id, false));
}

// LMDB's named databases live as keys of its main database; deleting one
// (mdb_drop with del=1) leaves the spool as a build before the control
// table wrote it. The spool must be closed first: one env per process.
void drop_control_database(const std::filesystem::path& dir) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 16);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, "control", 0, &dbi), 0);
  ASSERT_EQ(mdb_drop(txn, dbi, 1), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  // Gone: opening it without MDB_CREATE now fails.
  ASSERT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
  EXPECT_EQ(mdb_dbi_open(txn, "control", 0, &dbi), MDB_NOTFOUND);
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

TEST(LmdbSpoolControl, ASpoolFromBeforeTheControlTableOpensAndGetsOne) {
  TempDir dir;
  SpoolMessage m = make_test_message(2);
  {
    auto spool = open_lmdb(dir.path());
    ASSERT_TRUE(spool);
    SpoolMessage* batch[] = {&m};
    ASSERT_TRUE(spool->store_batch(batch).ok());
  }
  drop_control_database(dir.path());

  // open_databases() opens every database with MDB_CREATE, "control"
  // included, so an older spool gains an empty table without a format
  // change (kSpoolFormatVersion stays 1).
  auto spool = open_lmdb(dir.path());
  ASSERT_TRUE(spool);
  EXPECT_TRUE(spool->controls("").empty());
  const RecoverySummary summary = spool->recover();
  EXPECT_EQ(summary.format_version, kSpoolFormatVersion);
  EXPECT_EQ(summary.messages, 1u);
  EXPECT_EQ(summary.recipients, 2u);
  EXPECT_EQ(summary.corrupt_records, 0u);
  const auto loaded = spool->load_message(m.id, true);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->content, m.content);
  put(*spool, "hold/all", "1");
  EXPECT_EQ(spool->controls(""), (Controls{{"hold/all", "1"}}));
}

}  // namespace
}  // namespace ringmail::queue
