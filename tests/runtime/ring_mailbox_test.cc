// RingMailbox: closures posted from other threads wake the ring's thread
// through the eventfd read it keeps armed, and run there in order.
#include "runtime/ring_mailbox.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace ringmail::runtime {
namespace {

constexpr uint64_t kWake = 42;

class RingMailboxTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(io_uring_queue_init(8, &ring_, 0), 0); }
  void TearDown() override { io_uring_queue_exit(&ring_); }

  // Waits for the mailbox's read to complete; true when it did.
  bool wait_wake() {
    io_uring_submit(&ring_);
    __kernel_timespec ts{5, 0};
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(&ring_, &cqe, &ts) != 0) return false;
    const bool ours = cqe->user_data == kWake && cqe->res == 8;
    io_uring_cqe_seen(&ring_, cqe);
    return ours;
  }

  io_uring ring_{};
};

TEST_F(RingMailboxTest, PostsFromAnotherThreadWakeTheRingAndRunInOrder) {
  RingMailbox mailbox;
  std::string error;
  ASSERT_TRUE(mailbox.open(&error)) << error;
  mailbox.arm_read(&ring_, kWake);
  std::vector<int> ran;
  std::thread poster([&] {
    for (int i = 0; i < 100; ++i) mailbox.post([&ran, i] { ran.push_back(i); });
  });
  poster.join();
  ASSERT_TRUE(wait_wake());
  mailbox.drain();
  ASSERT_EQ(ran.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ran[i], i);

  // Armed again, the next post wakes it again.
  mailbox.arm_read(&ring_, kWake);
  bool again = false;
  mailbox.post([&] { again = true; });
  ASSERT_TRUE(wait_wake());
  mailbox.drain();
  EXPECT_TRUE(again);
}

TEST_F(RingMailboxTest, PostsNobodyDrainsAreDestroyedNotRun) {
  auto token = std::make_shared<int>(7);
  bool ran = false;
  {
    RingMailbox mailbox;
    std::string error;
    ASSERT_TRUE(mailbox.open(&error)) << error;
    mailbox.post([token, &ran] { ran = true; });
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);  // the closure was freed with the mailbox
}

TEST_F(RingMailboxTest, PostingBeforeOpenIsHarmless) {
  RingMailbox mailbox;  // a loop that has not set up yet
  bool ran = false;
  mailbox.post([&] { ran = true; });
  std::string error;
  ASSERT_TRUE(mailbox.open(&error)) << error;
  mailbox.drain();  // what was queued runs at the first drain
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace ringmail::runtime
