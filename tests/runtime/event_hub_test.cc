// tests/runtime/event_hub_test.cc — the broadcast of delivery-log records to
// live subscribers: every subscriber sees what it asked for in publish
// order, a slow one is dropped instead of slowing the writer, and a
// waiting reader wakes on a record, a timeout or the hub's close.
#include "runtime/event_hub.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace ringmail::runtime {
namespace {

using namespace std::chrono_literals;
using Next = Subscription::Next;
using Strings = std::vector<std::string>;

std::string record(std::string_view type, int n) {
  return "{\"type\":\"" + std::string(type) + "\",\"n\":" + std::to_string(n) + "}";
}

// Everything buffered now, without waiting.
Strings drain(Subscription& s) {
  Strings out;
  std::string r;
  while (s.next(&r, 0ms) == Next::record) out.push_back(r);
  return out;
}

TEST(EventHub, EverySubscriberGetsEveryRecordInPublishOrder) {
  EventHub hub;
  auto a = hub.subscribe({}, 1 << 20);
  auto b = hub.subscribe({}, 1 << 20);
  auto c = hub.subscribe({}, 1 << 20);
  EXPECT_EQ(hub.subscribers(), 3u);
  Strings published;
  for (int i = 0; i < 20; ++i) {
    published.push_back(record(i % 2 ? "Delivery" : "Bounce", i));
    hub.publish(published.back() + "\n");
  }
  EXPECT_EQ(drain(*a), published);
  EXPECT_EQ(drain(*b), published);
  EXPECT_EQ(drain(*c), published);
  EXPECT_FALSE(a->dropped());
}

TEST(EventHub, OnePublishOfSeveralLinesIsSeveralRecords) {
  EventHub hub;
  auto s = hub.subscribe({}, 1 << 20);
  // As the delivery log writes a batch: newline-terminated, the last one
  // maybe not, empty lines skipped.
  hub.publish(record("Delivery", 1) + "\n" + record("Bounce", 2) + "\n\n" +
              record("Expiration", 3));
  EXPECT_EQ(drain(*s),
            (Strings{record("Delivery", 1), record("Bounce", 2), record("Expiration", 3)}));
  hub.publish("");
  hub.publish("\n\n");
  EXPECT_TRUE(drain(*s).empty());
}

TEST(EventHub, TypeFiltersPickRecordsByTheirLeadingType) {
  EventHub hub;
  auto bounces = hub.subscribe({"Bounce", "Expiration"}, 1 << 20);
  auto deliveries = hub.subscribe({"Delivery"}, 1 << 20);
  auto all = hub.subscribe({}, 1 << 20);
  const std::string untyped = R"({"time":"2026-01-01T00:00:00Z","type":"Delivery"})";
  hub.publish(record("Delivery", 1) + "\n" + record("Bounce", 2) + "\n" + record("Expiration", 3) +
              "\n" + record("TransientFailure", 4) + "\n" + untyped + "\n" + record("BounceX", 5) +
              "\n");
  EXPECT_EQ(drain(*bounces), (Strings{record("Bounce", 2), record("Expiration", 3)}));
  EXPECT_EQ(drain(*deliveries), Strings{record("Delivery", 1)})
      << "a record whose type is not its first field matches no filter";
  EXPECT_EQ(drain(*all).size(), 6u);
}

TEST(EventHub, ASlowSubscriberOverItsBudgetIsDroppedWhileAFastOneKeepsReceiving) {
  EventHub hub;
  const std::string line = record("Delivery", 0);  // every record is as long
  auto slow = hub.subscribe({}, 3 * line.size());
  auto fast = hub.subscribe({}, 3 * line.size());
  std::string r;
  for (int i = 0; i < 3; ++i) hub.publish(line + "\n");  // exactly the budget
  EXPECT_FALSE(slow->dropped());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(fast->next(&r, 0ms), Next::record);

  hub.publish(line + "\n");  // one byte over for slow, room for fast
  EXPECT_TRUE(slow->dropped());
  EXPECT_FALSE(fast->dropped());
  EXPECT_EQ(slow->next(&r, 0ms), Next::closed) << "what it had buffered is gone too";
  ASSERT_EQ(fast->next(&r, 0ms), Next::record);

  for (int i = 0; i < 10; ++i) {
    hub.publish(line + "\n");
    ASSERT_EQ(fast->next(&r, 0ms), Next::record);
    EXPECT_EQ(r, line);
  }
  EXPECT_EQ(fast->next(&r, 0ms), Next::timeout);
  EXPECT_TRUE(slow->dropped()) << "dropped stays dropped";
  EXPECT_EQ(slow->next(&r, 0ms), Next::closed);
}

TEST(EventHub, ARecordLargerThanTheWholeBudgetDropsTheSubscriber) {
  EventHub hub;
  auto s = hub.subscribe({}, 16);
  hub.publish(record("Delivery", 123456789) + "\n");
  EXPECT_TRUE(s->dropped());
  std::string r;
  EXPECT_EQ(s->next(&r, 0ms), Next::closed);
}

TEST(EventHub, AFilteredOutRecordCostsNoBudget) {
  EventHub hub;
  const std::string bounce = record("Bounce", 1);
  auto s = hub.subscribe({"Bounce"}, bounce.size());
  for (int i = 0; i < 100; ++i) hub.publish(record("Delivery", i) + "\n");
  EXPECT_FALSE(s->dropped());
  hub.publish(bounce + "\n");
  EXPECT_FALSE(s->dropped());
  EXPECT_EQ(drain(*s), Strings{bounce});
}

TEST(EventHub, UnsubscribeStopsDeliveryToThatSubscriberOnly) {
  EventHub hub;
  auto gone = hub.subscribe({}, 1 << 20);
  auto stays = hub.subscribe({}, 1 << 20);
  hub.unsubscribe(gone);
  EXPECT_EQ(hub.subscribers(), 1u);
  hub.publish(record("Delivery", 1) + "\n");
  std::string r;
  EXPECT_EQ(gone->next(&r, 0ms), Next::timeout);
  EXPECT_EQ(drain(*stays), Strings{record("Delivery", 1)});
  hub.unsubscribe(gone);  // twice is harmless
  hub.unsubscribe(stays);
  EXPECT_EQ(hub.subscribers(), 0u);
}

TEST(EventHub, PublishWithNoSubscribersIsANoOp) {
  EventHub hub;
  EXPECT_EQ(hub.subscribers(), 0u);
  hub.publish(record("Delivery", 1) + "\n");
  auto late = hub.subscribe({}, 1 << 20);
  std::string r;
  EXPECT_EQ(late->next(&r, 0ms), Next::timeout) << "nothing from before it subscribed";
  hub.publish(record("Delivery", 2) + "\n");
  EXPECT_EQ(drain(*late), Strings{record("Delivery", 2)});
}

TEST(EventHub, NextTimesOutWithoutARecord) {
  EventHub hub;
  auto s = hub.subscribe({}, 1 << 20);
  std::string r = "untouched";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s->next(&r, 50ms), Next::timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_EQ(r, "untouched");
}

TEST(EventHub, AWaitingNextWakesForARecord) {
  EventHub hub;
  auto s = hub.subscribe({}, 1 << 20);
  auto waiting = std::async(std::launch::async, [&] {
    std::string r;
    const Next n = s->next(&r, 30s);
    return std::make_pair(n, r);
  });
  std::this_thread::sleep_for(20ms);
  hub.publish(record("Delivery", 7) + "\n");
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  const auto [n, r] = waiting.get();
  EXPECT_EQ(n, Next::record);
  EXPECT_EQ(r, record("Delivery", 7));
}

TEST(EventHub, CloseWakesAWaitingNextAndEndsEverySubscription) {
  EventHub hub;
  auto s = hub.subscribe({}, 1 << 20);
  auto other = hub.subscribe({}, 1 << 20);
  hub.publish(record("Delivery", 1) + "\n");
  std::string r;
  ASSERT_EQ(s->next(&r, 0ms), Next::record);
  const auto start = std::chrono::steady_clock::now();
  auto waiting = std::async(std::launch::async, [&] {
    std::string got;
    return s->next(&got, 30s);
  });
  std::this_thread::sleep_for(20ms);
  hub.close();
  ASSERT_EQ(waiting.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(waiting.get(), Next::closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(hub.subscribers(), 0u);
  // A record buffered before the close is still read, then closed.
  ASSERT_EQ(other->next(&r, 0ms), Next::record);
  EXPECT_EQ(other->next(&r, 0ms), Next::closed);
  EXPECT_FALSE(other->dropped()) << "closed, not dropped for being slow";
  hub.publish(record("Delivery", 2) + "\n");  // after close: nobody, no crash
  EXPECT_EQ(other->next(&r, 0ms), Next::closed);
}

TEST(EventHub, DestroyingTheHubClosesItsSubscriptions) {
  std::shared_ptr<Subscription> s;
  {
    EventHub hub;
    s = hub.subscribe({}, 1 << 20);
  }
  std::string r;
  EXPECT_EQ(s->next(&r, 0ms), Next::closed);
}

TEST(EventHub, ManyPublishersAndOneReaderLoseNothingWithinTheBudget) {
  EventHub hub;
  auto s = hub.subscribe({}, 1 << 24);
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::future<void>> publishers;
  for (int t = 0; t < kThreads; ++t) {
    publishers.push_back(std::async(std::launch::async, [&hub, t] {
      for (int i = 0; i < kEach; ++i) hub.publish(record("T" + std::to_string(t), i) + "\n");
    }));
  }
  for (auto& p : publishers) p.get();
  // Each publisher's records arrive in its own order.
  std::vector<int> next(kThreads, 0);
  std::string r;
  int total = 0;
  while (s->next(&r, 0ms) == Next::record) {
    const int t = r[10] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(r, record("T" + std::to_string(t), next[t]));
    ++next[t];
    ++total;
  }
  EXPECT_EQ(total, kThreads * kEach);
}

struct TypeCase {
  const char* line;
  const char* type;
};

TEST(EventHub, RecordType) {
  const TypeCase cases[] = {
      {R"({"type":"Delivery","time":"2026-01-01T00:00:00Z"})", "Delivery"},
      {R"({"type":"AdminBounce"})", "AdminBounce"},
      {R"({"type":""})", ""},
      {R"({"type":"Bounce)", ""},  // no closing quote
      {R"({"type":"Bou\"nce"})", "Bou\\"},
      {R"({"time":"x","type":"Delivery"})", ""},
      {R"({ "type":"Delivery"})", ""},
      {R"({"type": "Delivery"})", ""},
      {R"( {"type":"Delivery"})", ""},
      {R"({"type":Delivery})", ""},
      {"", ""},
      {"{", ""},
      {"not json at all", ""},
  };
  for (const TypeCase& c : cases) {
    EXPECT_EQ(record_type(c.line), c.type) << c.line;
  }
}

}  // namespace
}  // namespace ringmail::runtime
