// tests/runtime/reactor_test.cc — the pieces both io_uring loops share: the
// user-data encoding of completions, the slot table whose generations keep
// a late completion from reaching the object that reused its slot, and a
// real ring's tick and mailbox wake-up.
#include "runtime/reactor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

namespace ringmail::runtime {
namespace {

TEST(UserData, PacksOperationSlotAndGenerationWithoutOverlap) {
  const struct {
    uint8_t op;
    uint32_t slot;
    uint32_t generation;
  } cases[] = {
      {1, 0, 0},
      {7, 1, 1},
      {255, UserData::kMaxSlot, 0xffffffffu},  // every field at its widest
      {3, 12345, 0x80000001u},
      {2, UserData::kMaxSlot + 1, 9},  // a slot past 24 bits wraps, never touches op
  };
  for (const auto& c : cases) {
    const UserData back = UserData::unpack(pack(c.op, c.slot, c.generation));
    EXPECT_EQ(back.op, c.op);
    EXPECT_EQ(back.slot, c.slot & UserData::kMaxSlot);
    EXPECT_EQ(back.generation, c.generation);
  }
  enum class Op : uint8_t { accept = 1, recv };
  EXPECT_EQ(UserData::unpack(pack(Op::recv, 5, 6)).op, uint8_t(Op::recv));
}

struct Item {
  uint32_t generation = 0;
  int value = 0;
};

std::unique_ptr<Item> item(int value) {
  auto i = std::make_unique<Item>();
  i->value = value;
  return i;
}

TEST(SlotTable, AStaleGenerationFindsNothingAfterTheSlotIsReused) {
  SlotTable<Item> table;
  const uint32_t a = table.add(item(1));
  const uint32_t first_generation = table.at(a)->generation;
  EXPECT_EQ(table.find(a, first_generation)->value, 1);
  table.remove(a);
  EXPECT_EQ(table.find(a, first_generation), nullptr);
  const uint32_t b = table.add(item(2));
  EXPECT_EQ(b, a) << "a freed slot is reused";
  EXPECT_NE(table.at(b)->generation, first_generation);
  EXPECT_EQ(table.find(b, first_generation), nullptr) << "the old owner's completion";
  EXPECT_EQ(table.find(b, table.at(b)->generation)->value, 2);
}

TEST(SlotTable, CountsLiveObjectsAndIgnoresBadSlots) {
  SlotTable<Item> table;
  EXPECT_TRUE(table.empty());
  std::vector<uint32_t> slots;
  for (int i = 0; i < 5; ++i) slots.push_back(table.add(item(i)));
  EXPECT_EQ(table.live(), 5u);
  EXPECT_EQ(table.slots(), 5u);
  table.remove(slots[1]);
  table.remove(slots[1]);  // twice: harmless
  table.remove(999);       // never existed
  EXPECT_EQ(table.live(), 4u);
  EXPECT_EQ(table.at(slots[1]), nullptr);
  EXPECT_EQ(table.find(999, 1), nullptr);
  for (uint32_t s : slots) table.remove(s);
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.slots(), 5u) << "slots stay allocated for reuse";
}

TEST(Reactor, TicksAndWakesOnItsMailbox) {
  Reactor reactor;
  std::string error;
  ASSERT_TRUE(reactor.mailbox().open(&error)) << error;
  ASSERT_TRUE(reactor.open(64, 0, &error)) << error;
  constexpr uint64_t kTick = 1, kWake = 2;
  reactor.arm_tick(kTick, std::chrono::milliseconds(20));
  reactor.arm_wake(kWake);
  bool posted_ran = false;
  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reactor.mailbox().post([&] { posted_ran = true; });
  });
  std::vector<uint64_t> seen;
  const auto started = std::chrono::steady_clock::now();
  while (seen.size() < 2 && std::chrono::steady_clock::now() - started < std::chrono::seconds(5)) {
    ASSERT_TRUE(reactor.run_once([&](uint64_t data, int, unsigned) {
      seen.push_back(data);
      if (data == kWake) reactor.mailbox().drain();
    }));
  }
  other.join();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], kTick) << "the 20 ms tick comes before the post at 50 ms";
  EXPECT_EQ(seen[1], kWake);
  EXPECT_TRUE(posted_ran);
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(40));
  reactor.close();
  EXPECT_FALSE(reactor.is_open());
}

}  // namespace
}  // namespace ringmail::runtime
