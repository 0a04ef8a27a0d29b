#include "queue/delivery_log.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(DeliveryLog, ReceptionRecordHasTheContractFieldsInOrder) {
  TempDir dir;
  std::string error;
  auto log = DeliveryLog::open(dir.path() / "delivery.jsonl", &error);
  ASSERT_TRUE(log) << error;
  SpoolMessage m = make_test_message(2, 4096, "spring");
  ASSERT_TRUE(log->write_ordered(reception_record(m, 1, 1767225600123)));

  const auto lines = read_lines(dir.path() / "delivery.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(lines[0].starts_with(R"({"type":"Reception","time":"2026-01-01T00:00:00.123Z",)"))
      << lines[0];
  const auto record = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(record.at("id"), m.id.value);
  EXPECT_EQ(record.at("sender"), "app@sender.test");
  EXPECT_EQ(record.at("recipient"), "user1@example.org");
  EXPECT_EQ(record.at("tenant"), "app1");
  EXPECT_EQ(record.at("campaign"), "spring");
  EXPECT_EQ(record.at("listener"), "submission");
  EXPECT_EQ(record.at("client_ip"), "192.0.2.7");
  EXPECT_EQ(record.at("size"), 4096);
}

TEST(DeliveryLog, FeedbackRecordHasTheContractFieldsInOrder) {
  const std::vector<std::pair<std::string, std::string>> report = {
      {"kind", "dsn"}, {"status", "5.1.1"}, {"action", "failed"}};
  FeedbackRecord f;
  f.now_unix_ms = 1767225600123;
  f.feedback_type = "bounce";
  f.id = "0190f3a2b4c5d6e7f809";
  f.recipient = "user@example.net";
  f.campaign = "spring";
  f.tenant = "app1";
  f.category = "InvalidRecipient";
  f.report = report;
  EXPECT_EQ(feedback_record(f).dump(),
            R"({"type":"Feedback","time":"2026-01-01T00:00:00.123Z","feedback_type":"bounce",)"
            R"("id":"0190f3a2b4c5d6e7f809","recipient":"user@example.net","campaign":"spring",)"
            R"("tenant":"app1","category":"InvalidRecipient",)"
            R"("report":{"kind":"dsn","status":"5.1.1","action":"failed"}})");
  f.report = {};
  EXPECT_EQ(feedback_record(f).at("report").dump(), "{}");
}

TEST(DeliveryLog, InvalidUtf8FromTheNetworkStillMakesValidJson) {
  TempDir dir;
  std::string error;
  auto log = DeliveryLog::open(dir.path() / "d.jsonl", &error);
  ASSERT_TRUE(log) << error;
  SpoolMessage m = make_test_message();
  m.envelope.sender = "bad\xff\xfe@sender.test";
  EXPECT_TRUE(log->write_ordered(reception_record(m, 0, 0)));
  EXPECT_TRUE(log->write(nlohmann::json{{"type", "Delivery"}, {"text", "\xc3"}}));
  const auto lines = read_lines(dir.path() / "d.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[0]).at("time"), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(nlohmann::json::parse(lines[1]).at("type"), "Delivery");
}

TEST(DeliveryLog, ReopenFollowsRotation) {
  TempDir dir;
  const auto path = dir.path() / "delivery.jsonl";
  std::string error;
  auto log = DeliveryLog::open(path, &error);
  ASSERT_TRUE(log) << error;
  ASSERT_TRUE(log->write(nlohmann::json{{"n", 1}}));
  std::filesystem::rename(path, dir.path() / "delivery.jsonl.1");
  ASSERT_TRUE(log->write(nlohmann::json{{"n", 2}}));  // still the rotated file
  ASSERT_TRUE(log->reopen(&error)) << error;
  ASSERT_TRUE(log->write(nlohmann::json{{"n", 3}}));
  EXPECT_EQ(read_lines(dir.path() / "delivery.jsonl.1"),
            (std::vector<std::string>{R"({"n":1})", R"({"n":2})"}));
  EXPECT_EQ(read_lines(path), (std::vector<std::string>{R"({"n":3})"}));
}

TEST(DeliveryLog, ConcurrentWritersNeverInterleaveLines) {
  TempDir dir;
  std::string error;
  auto log = DeliveryLog::open(dir.path() / "d.jsonl", &error);
  ASSERT_TRUE(log) << error;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        log->write(nlohmann::json{{"thread", t}, {"i", i}, {"pad", std::string(300, 'x')}});
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto lines = read_lines(dir.path() / "d.jsonl");
  ASSERT_EQ(lines.size(), 1000u);
  std::vector<int> next(4, 0);
  for (const auto& line : lines) {
    const auto record = nlohmann::json::parse(line);  // throws on a torn line
    const int t = record.at("thread");
    EXPECT_EQ(record.at("i"), next[t]++) << "lines of one writer out of order";
  }
}

TEST(DeliveryLog, OpenFailureIsAnError) {
  std::string error;
  EXPECT_EQ(DeliveryLog::open("/nonexistent-dir/ringmail/d.jsonl", &error), nullptr);
  EXPECT_NE(error.find("/nonexistent-dir/ringmail/d.jsonl"), std::string::npos) << error;
}

TEST(DeliveryLog, Rfc3339Formatting) {
  EXPECT_EQ(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339_ms(1767225600123), "2026-01-01T00:00:00.123Z");
  EXPECT_EQ(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace ringmail::queue
