// tests/queue/suppression_store_test.cc — the suppression lists: keys and
// records (every way a stored record can be wrong), lookups per tenant and
// for every tenant ignoring case, replacing and removing, staging with a
// commit, and a rebuild from what the spool kept, on both spools.
#include "queue/suppression_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "tests/support/temp_dir.h"

namespace ringmail::queue {
namespace {

SuppressionEntry entry(std::string tenant, std::string address, std::string reason = "r",
                       SuppressionSource source = SuppressionSource::admin) {
  SuppressionEntry e;
  e.tenant = std::move(tenant);
  e.address = std::move(address);
  e.reason = std::move(reason);
  e.source = source;
  e.created_unix_ms = 1767225600000;
  return e;
}

TEST(SuppressionRecords, KeysLowerTheAddressAndRefuseWhatCannotBeAKey) {
  EXPECT_EQ(suppression_key("app", "User@Example.COM"), "suppress/app\nuser@example.com");
  EXPECT_EQ(suppression_key("127.0.0.1/32", "a@b"), "suppress/127.0.0.1/32\na@b");
  EXPECT_EQ(suppression_key("", "a@b"), std::nullopt);
  EXPECT_EQ(suppression_key("app", ""), std::nullopt);
  EXPECT_EQ(suppression_key("a\nb", "a@b"), std::nullopt);
  EXPECT_EQ(suppression_key("app", std::string(500, 'x')), std::nullopt);
}

TEST(SuppressionRecords, AddressesTheListsTake) {
  struct Case {
    const char* address;
    bool ok;
  } cases[] = {
      {"user@example.com", true},
      {"\"quoted\"@example.com", true},
      {"a@b", true},
      {"user", false},
      {"@example.com", false},
      {"user@", false},
      {"us er@example.com", false},
      {"<user@example.com>", false},
      {"user@exa\tmple", false},
      {"", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(valid_suppression_address(c.address), c.ok) << c.address;
  }
  EXPECT_TRUE(valid_suppression_address(std::string(240, 'a') + "@example.com"));
  EXPECT_FALSE(valid_suppression_address(std::string(250, 'a') + "@example.com"));
}

TEST(SuppressionRecords, ARecordRoundTripsAndEveryBrokenOneIsRefused) {
  SuppressionEntry e =
      entry("app", "user@example.com", "550 5.1.1 no such user", SuppressionSource::bounce);
  e.category = "InvalidRecipient";
  e.campaign = "spring";
  const std::string key = *suppression_key(e.tenant, e.address);
  EXPECT_EQ(decode_suppression(key, encode_suppression(e)), e);

  const std::string good = encode_suppression(e);
  struct Case {
    const char* why;
    std::string key, bytes;
  } cases[] = {
      {"not JSON", key, "{"},
      {"not an object", key, "[1]"},
      {"version 2", key,
       R"({"v":2,"reason":"","source":"admin","category":"","campaign":"","created":1})"},
      {"no version", key,
       R"({"reason":"","source":"admin","category":"","campaign":"","created":1})"},
      {"unknown source", key,
       R"({"v":1,"reason":"","source":"spam","category":"","campaign":"","created":1})"},
      {"reason a number", key,
       R"({"v":1,"reason":5,"source":"admin","category":"","campaign":"","created":1})"},
      {"no created", key, R"({"v":1,"reason":"","source":"admin","category":"","campaign":""})"},
      {"created a string", key,
       R"({"v":1,"reason":"","source":"admin","category":"","campaign":"","created":"x"})"},
      {"key of another table", "campaign/x", good},
      {"key without a tenant", "suppress/\na@b", good},
      {"key without an address", "suppress/app\n", good},
      {"key without a separator", "suppress/app", good},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(decode_suppression(c.key, c.bytes), std::nullopt) << c.why;
  }
}

template <class Maker>
void exercise_store(Maker make_spool) {
  auto spool = make_spool();
  SuppressionStore store(*spool);
  EXPECT_EQ(store.find("app", "user@example.com"), std::nullopt) << "empty";

  size_t added = 0;
  std::vector<SuppressionEntry> entries = {entry("app", "User@Example.com", "bounced"),
                                           entry("*", "abuse@example.net", "complained")};
  ASSERT_TRUE(store.add(entries, &added).ok());
  EXPECT_EQ(added, 2u);

  // Per tenant, ignoring case; "*" for every tenant.
  ASSERT_TRUE(store.find("app", "USER@example.COM"));
  EXPECT_EQ(store.find("app", "user@example.com")->reason, "bounced");
  EXPECT_EQ(store.find("app", "user@example.com")->address, "user@example.com");
  EXPECT_EQ(store.find("other", "user@example.com"), std::nullopt) << "another tenant's list";
  EXPECT_EQ(store.find("other", "abuse@example.net")->reason, "complained");
  EXPECT_EQ(store.find("other", "abuse@example.net")->tenant, "*");

  // A tenant's own entry is found before the one for everybody.
  ASSERT_TRUE(store.add(std::vector{entry("other", "abuse@example.net", "own")}, &added).ok());
  EXPECT_EQ(store.find("other", "abuse@example.net")->reason, "own");

  // Adding again replaces the reason and is not counted as added.
  ASSERT_TRUE(store.add(std::vector{entry("app", "user@example.com", "again")}, &added).ok());
  EXPECT_EQ(added, 0u);
  EXPECT_EQ(store.find("app", "user@example.com")->reason, "again");

  // A pair that cannot be a key fails the whole batch; nothing is written.
  std::vector<SuppressionEntry> bad = {entry("app", "new@example.com"), entry("", "x@y")};
  EXPECT_FALSE(store.add(bad, &added).ok());
  EXPECT_EQ(store.find("app", "new@example.com"), std::nullopt);

  // Lists: by tenant, by address, all, bounded.
  EXPECT_EQ(store.list("app", "", 100).size(), 1u);
  EXPECT_EQ(store.list("", "", 100).size(), 3u);
  EXPECT_EQ(store.list("", "", 2).size(), 2u);
  EXPECT_EQ(store.list("", "ABUSE@example.net", 100).size(), 2u);
  EXPECT_EQ(store.list("*", "abuse@example.net", 100).size(), 1u);

  bool found = false;
  ASSERT_TRUE(store.remove("app", "USER@example.com", &found).ok());
  EXPECT_TRUE(found);
  EXPECT_EQ(store.find("app", "user@example.com"), std::nullopt);
  ASSERT_TRUE(store.remove("app", "user@example.com", &found).ok());
  EXPECT_FALSE(found) << "already gone";

  // Staged: in force at once, durable only with the commit that carries it.
  SuppressionEntry hard = entry("app", "gone@example.org", "550 5.1.1", SuppressionSource::bounce);
  std::optional<ControlWrite> write = store.stage(hard);
  ASSERT_TRUE(write);
  EXPECT_EQ(store.find("app", "gone@example.org"), std::nullopt)
      << "a hit is confirmed against the record, and none was written yet";
  ASSERT_TRUE(spool->commit({}, {}, {}, std::span(&*write, 1)).ok());
  EXPECT_EQ(store.find("app", "gone@example.org")->source, SuppressionSource::bounce);

  // A new store (a restart) finds every entry again; an unreadable record
  // is skipped and counted.
  ASSERT_TRUE(spool->put_control("suppress/app\nbroken@example.com", std::string("{")).ok());
  SuppressionStore again(*spool);
  uint64_t corrupt = 0;
  EXPECT_EQ(again.load(&corrupt), 3u);
  EXPECT_EQ(corrupt, 1u);
  EXPECT_EQ(again.find("other", "abuse@example.net")->reason, "own");
  EXPECT_EQ(again.find("x", "abuse@example.net")->reason, "complained");
  EXPECT_TRUE(again.find("app", "gone@example.org"));
  EXPECT_EQ(again.find("app", "broken@example.com"), std::nullopt);
}

TEST(SuppressionStore, OnTheMemorySpool) {
  exercise_store([] { return std::make_unique<MemorySpool>(); });
}

TEST(SuppressionStore, OnTheLmdbSpool) {
  test_support::TempDir dir;
  exercise_store([&] {
    std::string error;
    auto spool = open_lmdb_spool(dir.path() / "spool", 64 << 20, &error);
    EXPECT_TRUE(spool) << error;
    return spool;
  });
}

TEST(SuppressionStore, AnLmdbListSurvivesReopening) {
  test_support::TempDir dir;
  std::string error;
  {
    auto spool = open_lmdb_spool(dir.path() / "spool", 64 << 20, &error);
    ASSERT_TRUE(spool) << error;
    SuppressionStore store(*spool);
    std::vector<SuppressionEntry> many;
    for (int i = 0; i < 1000; ++i)
      many.push_back(entry("app", "u" + std::to_string(i) + "@x.test"));
    size_t added = 0;
    ASSERT_TRUE(store.add(many, &added).ok());
    EXPECT_EQ(added, 1000u);
  }
  auto spool = open_lmdb_spool(dir.path() / "spool", 64 << 20, &error);
  ASSERT_TRUE(spool) << error;
  SuppressionStore store(*spool);
  EXPECT_EQ(store.load(), 1000u);
  EXPECT_TRUE(store.find("app", "U999@X.test"));
  EXPECT_FALSE(store.find("app", "u1000@x.test"));
}

}  // namespace
}  // namespace ringmail::queue
