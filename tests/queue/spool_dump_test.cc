#include "queue/spool_dump.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "queue/spool_lmdb.h"
#include "queue/spool_memory.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

std::vector<nlohmann::json> dump_lines(const Spool& spool) {
  std::ostringstream out;
  const uint64_t count = dump_spool_json_lines(spool, out);
  std::vector<nlohmann::json> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(count, lines.size());
  return lines;
}

TEST(SpoolDump, OneLinePerRecipientWithTheOperatorFields) {
  TempDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), 64ull << 20, &error);
  ASSERT_TRUE(spool) << error;
  SpoolMessage a = make_test_message(2, 4096, "spring");
  a.envelope.recipients[1].state = RecipientState::deferred;
  a.envelope.recipients[1].attempts = 3;
  SpoolMessage b = make_test_message(1, 1000);
  SpoolMessage* batch[] = {&a, &b};
  ASSERT_TRUE(spool->store_batch(batch).ok());

  const auto lines = dump_lines(*spool);
  ASSERT_EQ(lines.size(), 3u);
  // Message ids sort by reception, so a comes first.
  EXPECT_EQ(lines[0].at("id"), a.id.value);
  EXPECT_EQ(lines[0].at("sender"), "app@sender.test");
  EXPECT_EQ(lines[0].at("recipient"), "user0@example.test");
  EXPECT_EQ(lines[0].at("campaign"), "spring");
  EXPECT_EQ(lines[0].at("tenant"), "app1");
  EXPECT_EQ(lines[0].at("state"), "queued");
  EXPECT_EQ(lines[0].at("attempts"), 0);
  EXPECT_EQ(lines[0].at("next_attempt"), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(lines[0].at("size"), 4096);
  EXPECT_EQ(lines[0].at("received"), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(lines[1].at("recipient"), "user1@example.org");
  EXPECT_EQ(lines[1].at("state"), "deferred");
  EXPECT_EQ(lines[1].at("attempts"), 3);
  EXPECT_EQ(lines[2].at("id"), b.id.value);
  EXPECT_EQ(lines[2].at("campaign"), "");
}

TEST(SpoolDump, EmptySpoolPrintsNothing) {
  MemorySpool spool;
  std::ostringstream out;
  EXPECT_EQ(dump_spool_json_lines(spool, out), 0u);
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace ringmail::queue
