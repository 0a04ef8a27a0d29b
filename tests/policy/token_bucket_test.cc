// tests/policy/token_bucket_test.cc — bursts, exact refill times, debt, the
// rate factor, and the count over a long window held within one token.
#include "policy/token_bucket.h"

#include <gtest/gtest.h>

namespace ringmail::policy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
const runtime::SteadyTime t0 = runtime::SteadyTime(seconds(1000));

TEST(TokenBucket, UnlimitedAlwaysTakes) {
  TokenBucket b;
  EXPECT_FALSE(b.limited());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.try_take(t0));
  EXPECT_EQ(b.next_token(t0), t0);
  EXPECT_FALSE(TokenBucket(0, seconds(60), 5).limited());
}

TEST(TokenBucket, BurstThenOnePerInterval) {
  // 60/m with a burst of 3: three at once, then one a second.
  TokenBucket b(60, seconds(60), 3);
  EXPECT_EQ(b.available(t0), 3u);
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_FALSE(b.try_take(t0));
  EXPECT_EQ(b.available(t0), 0u);
  EXPECT_EQ(b.next_token(t0), t0 + seconds(1));
  EXPECT_FALSE(b.try_take(t0 + milliseconds(999)));
  EXPECT_TRUE(b.try_take(t0 + seconds(1)));
  EXPECT_EQ(b.next_token(t0 + seconds(1)), t0 + seconds(2));
  // Idle for long: full again, never more than the burst.
  EXPECT_EQ(b.available(t0 + seconds(100)), 3u);
}

TEST(TokenBucket, CountOverAWindowWithinOneToken) {
  struct Row {
    uint64_t count;
    milliseconds per;
    uint64_t burst;
    seconds window;
  };
  const Row rows[] = {{300, milliseconds(60000), 300, seconds(600)},
                      {5, milliseconds(60000), 5, seconds(3600)},
                      {7, milliseconds(1000), 1, seconds(100)},
                      {1000, milliseconds(3600000), 50, seconds(7200)}};
  for (const Row& row : rows) {
    TokenBucket b(row.count, row.per, row.burst);
    uint64_t taken = 0;
    // Greedy: take whenever the bucket says a token is due.
    runtime::SteadyTime now = t0;
    const runtime::SteadyTime end = t0 + row.window;
    while (now < end) {
      if (b.try_take(now)) {
        ++taken;
      } else {
        now = b.next_token(now);
      }
    }
    const double expected =
        static_cast<double>(row.count) *
            (std::chrono::duration<double>(row.window) / std::chrono::duration<double>(row.per)) +
        static_cast<double>(row.burst);
    EXPECT_LE(static_cast<double>(taken), expected + 1) << row.count;
    EXPECT_GE(static_cast<double>(taken), expected - 1) << row.count;
  }
}

TEST(TokenBucket, TakeGoesIntoDebt) {
  TokenBucket b(1, seconds(10), 1);
  b.take(t0);
  b.take(t0);  // happened anyway
  EXPECT_EQ(b.next_token(t0), t0 + seconds(20));
  EXPECT_FALSE(b.try_take(t0 + seconds(19)));
  EXPECT_TRUE(b.try_take(t0 + seconds(20)));
}

TEST(TokenBucket, FactorSlowsRefillAndRestores) {
  TokenBucket b(10, seconds(1), 1);  // one per 100 ms
  EXPECT_TRUE(b.try_take(t0));
  b.set_factor(0.1, t0 + milliseconds(100));  // one per second
  EXPECT_EQ(b.interval(), milliseconds(1000));
  EXPECT_TRUE(b.try_take(t0 + milliseconds(100)));  // earned at the old rate
  EXPECT_EQ(b.next_token(t0 + milliseconds(100)), t0 + milliseconds(1100));
  b.set_factor(1.0, t0 + milliseconds(100));
  EXPECT_EQ(b.interval(), milliseconds(100));
  EXPECT_EQ(b.next_token(t0 + milliseconds(100)), t0 + milliseconds(200));
  b.set_factor(5.0, t0);  // clamped
  EXPECT_DOUBLE_EQ(b.factor(), 1.0);
  b.set_factor(-1, t0);
  EXPECT_GT(b.factor(), 0.0);
}

TEST(TokenBucket, FactorOnABigBurstNeitherFreesNorTakesTokens) {
  // 300/m with its burst of 300, all spent: a cut to a tenth must not make
  // the spent burst available again (nor push it ten times further away).
  TokenBucket b(300, seconds(60), 300);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(b.try_take(t0));
  EXPECT_EQ(b.available(t0), 0u);
  b.set_factor(0.1, t0);
  EXPECT_EQ(b.available(t0), 0u);
  EXPECT_EQ(b.next_token(t0), t0 + seconds(2));  // one per 2 s now
  b.set_factor(1.0, t0);
  EXPECT_EQ(b.next_token(t0), t0 + milliseconds(200));
}

}  // namespace
}  // namespace ringmail::policy
