// tests/queue/spool_reserve_test.cc — when new mail is refused to keep room
// for delivery results: the default reserve per map size, the footprint of
// a message, and admission with its resume margin, as tables.
#include "queue/spool_reserve.h"

#include <gtest/gtest.h>

namespace ringmail::queue {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

TEST(SpoolReserve, DefaultScalesWithTheMap) {
  const struct {
    uint64_t map_size;
    uint64_t reserve;
  } cases[] = {
      {2 * kMiB, 512 * kKiB},   // a quarter of a tiny map
      {16 * kMiB, 4 * kMiB},    // the 4 MiB floor, a quarter of 16 MiB
      {64 * kMiB, 4 * kMiB},    // floor
      {1 * kGiB, 16 * kMiB},    // 1/64
      {16 * kGiB, 256 * kMiB},  // 1/64 = the 256 MiB ceiling
      {1024 * kGiB, 256 * kMiB},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(default_spool_reserve(c.map_size), c.reserve) << c.map_size;
  }
}

TEST(SpoolReserve, FootprintCountsWholeBodyPagesAndRecipients) {
  EXPECT_EQ(spool_footprint(0, 1), 4096u + 1024 + 512);
  EXPECT_EQ(spool_footprint(4032, 1), 4096u + 1024 + 512);  // 4032 + 64 fits one page
  EXPECT_EQ(spool_footprint(4033, 1), 8192u + 1024 + 512);
  EXPECT_EQ(spool_footprint(100 * kKiB, 10), 106496u + 1024 + 5120);
}

TEST(SpoolReserve, AdmitsAboveTheLineAndResumesOnlyAboveTheMargin) {
  SpoolReserve reserve(4 * kMiB);  // margin: 1 MiB
  ASSERT_EQ(reserve.resume_margin_bytes(), 1 * kMiB);
  const struct {
    uint64_t available;
    uint64_t bytes;
    bool admit;
    bool refusing_after;
  } steps[] = {
      {100 * kMiB, 8 * kKiB, true, false},
      {4 * kMiB + 8 * kKiB, 8 * kKiB, true, false},      // exactly at the line
      {4 * kMiB + 8 * kKiB - 1, 8 * kKiB, false, true},  // one byte short
      {4 * kMiB + 500 * kKiB, 8 * kKiB, false, true},    // above the line, under the margin
      {5 * kMiB + 8 * kKiB, 8 * kKiB, true, false},      // reserve + margin: taken again
      {5 * kMiB, 8 * kKiB, true, false},                 // back to the plain line
      {20 * kMiB, 30 * kMiB, false, true},               // one message too big for the room
      {40 * kMiB, 30 * kMiB, true, false},
  };
  for (size_t i = 0; i < std::size(steps); ++i) {
    EXPECT_EQ(reserve.admit(steps[i].available, steps[i].bytes), steps[i].admit) << "step " << i;
    EXPECT_EQ(reserve.refusing(), steps[i].refusing_after) << "step " << i;
  }
}

TEST(SpoolReserve, TheSpoolReportingFullAsksForTheMarginToo) {
  SpoolReserve reserve(4 * kMiB);
  reserve.spool_reported_full();
  EXPECT_TRUE(reserve.refusing());
  EXPECT_FALSE(reserve.admit(4 * kMiB + 16 * kKiB, 8 * kKiB));
  EXPECT_TRUE(reserve.admit(5 * kMiB + 8 * kKiB, 8 * kKiB));
}

TEST(SpoolReserve, NoReserveAdmitsEverything) {
  SpoolReserve reserve(0);
  EXPECT_TRUE(reserve.admit(0, 1 * kMiB));
  reserve.spool_reported_full();
  EXPECT_FALSE(reserve.refusing());
  SpoolSpace space;
  EXPECT_TRUE(reserve.clearly_fits(space, 1 * kGiB));
}

TEST(SpoolReserve, ClearlyFitsUsesTheSmallerOfMapAndFilesystem) {
  SpoolReserve reserve(4 * kMiB);
  SpoolSpace space;
  space.map_size_bytes = 64 * kMiB;
  space.map_used_bytes = 10 * kMiB;
  space.filesystem_free_bytes = 6 * kMiB;  // a small tmpfs under a big map
  EXPECT_EQ(space.available_bytes(), 6 * kMiB);
  EXPECT_TRUE(reserve.clearly_fits(space, 2 * kMiB));
  EXPECT_FALSE(reserve.clearly_fits(space, 2 * kMiB + 1));
  space.free_page_bytes = 3 * kMiB;  // pages that deleted messages left behind
  EXPECT_TRUE(reserve.clearly_fits(space, 5 * kMiB));
  space.map_used_bytes = 70 * kMiB;  // larger than the map: no growth at all
  EXPECT_EQ(space.available_bytes(), 3 * kMiB);
}

}  // namespace
}  // namespace ringmail::queue
