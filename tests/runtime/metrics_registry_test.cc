// Tests for admin-api/metrics_registry: the exact exposition text, lock-free
// updates from many threads, histogram buckets, and (when promtool is
// installed) that Prometheus' own linter accepts what render() produces.
#include "runtime/metrics_registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ringmail::runtime {
namespace {

TEST(MetricsRegistry, RendersExactTextSortedAndEscaped) {
  MetricsRegistry registry;
  registry.counter("messages_received_total", "Messages accepted.", {{"listener", "submission"}})
      .inc(3);
  registry.counter("messages_received_total", "Messages accepted.", {{"listener", "relay"}}).inc();
  registry.gauge("smtp_sessions_active", "Open SMTP sessions.", {{"direction", "inbound"}}).set(-2);
  registry.gauge("build_info", "Build information.", {{"version", "1.0 \"x\"\\y\nz"}}).set(1);
  registry.declare("messages_bounced_total", "Bounces by category.\nSecond \\ line.",
                   MetricType::counter);
  Histogram& h =
      registry.histogram("spool_commit_seconds", "Spool commit latency.", {}, {0.5, 0.001, 2});
  h.observe(0.0005);  // <= 0.001
  h.observe(0.001);   // exactly on a bound counts in that bucket
  h.observe(1.5);     // <= 2
  h.observe(7);       // only +Inf

  const std::string expected =
      "# HELP ringmail_build_info Build information.\n"
      "# TYPE ringmail_build_info gauge\n"
      "ringmail_build_info{version=\"1.0 \\\"x\\\"\\\\y\\nz\"} 1\n"
      "# HELP ringmail_messages_bounced_total Bounces by category.\\nSecond \\\\ line.\n"
      "# TYPE ringmail_messages_bounced_total counter\n"
      "# HELP ringmail_messages_received_total Messages accepted.\n"
      "# TYPE ringmail_messages_received_total counter\n"
      "ringmail_messages_received_total{listener=\"relay\"} 1\n"
      "ringmail_messages_received_total{listener=\"submission\"} 3\n"
      "# HELP ringmail_smtp_sessions_active Open SMTP sessions.\n"
      "# TYPE ringmail_smtp_sessions_active gauge\n"
      "ringmail_smtp_sessions_active{direction=\"inbound\"} -2\n"
      "# HELP ringmail_spool_commit_seconds Spool commit latency.\n"
      "# TYPE ringmail_spool_commit_seconds histogram\n"
      "ringmail_spool_commit_seconds_bucket{le=\"0.001\"} 2\n"
      "ringmail_spool_commit_seconds_bucket{le=\"0.5\"} 2\n"
      "ringmail_spool_commit_seconds_bucket{le=\"2\"} 3\n"
      "ringmail_spool_commit_seconds_bucket{le=\"+Inf\"} 4\n"
      "ringmail_spool_commit_seconds_sum 8.5015\n"
      "ringmail_spool_commit_seconds_count 4\n";
  EXPECT_EQ(registry.render(), expected);
}

TEST(MetricsRegistry, SameSeriesReturnsSameObjectWhateverTheLabelOrder) {
  MetricsRegistry registry;
  Counter& a =
      registry.counter("dkim_signatures_total", "h", {{"domain", "d"}, {"algorithm", "x"}});
  Counter& b =
      registry.counter("dkim_signatures_total", "h", {{"algorithm", "x"}, {"domain", "d"}});
  EXPECT_EQ(&a, &b);
  a.inc(2);
  b.inc(5);
  EXPECT_EQ(a.value(), 7u);
  EXPECT_NE(
      registry.render().find("ringmail_dkim_signatures_total{algorithm=\"x\",domain=\"d\"} 7\n"),
      std::string::npos);
}

TEST(MetricsRegistry, UnlabeledCounterRendersWithoutBraces) {
  MetricsRegistry registry;
  registry.counter("auth_failures_total", "AUTH failures.").inc(4);
  EXPECT_EQ(registry.render(),
            "# HELP ringmail_auth_failures_total AUTH failures.\n"
            "# TYPE ringmail_auth_failures_total counter\n"
            "ringmail_auth_failures_total 4\n");
}

TEST(MetricsRegistry, SameNameWithAnotherTypeIsAStartupBug) {
  MetricsRegistry registry;
  registry.counter("x_total", "h");
  EXPECT_THROW(registry.gauge("x_total", "h"), std::logic_error);
  EXPECT_THROW(registry.histogram("x_total", "h"), std::logic_error);
  EXPECT_THROW(registry.declare("x_total", "h", MetricType::gauge), std::logic_error);
  EXPECT_THROW(registry.counter("bad-name", "h"), std::logic_error);
  EXPECT_THROW(registry.counter("y_total", "h", {{"bad label", "v"}}), std::logic_error);
  EXPECT_THROW(registry.histogram("z_seconds", "h", {{"le", "1"}}), std::logic_error);
  registry.histogram("w_seconds", "h", {}, {1, 2});
  EXPECT_THROW(registry.histogram("w_seconds", "h", {{"a", "b"}}, {1, 3}), std::logic_error);
  // Empty buckets on a later registration mean "the family's buckets".
  Histogram& other = registry.histogram("w_seconds", "h", {{"a", "b"}});
  EXPECT_EQ(other.snapshot().upper_bounds, (std::vector<double>{1, 2}));
}

TEST(MetricsRegistry, ConcurrentIncrementsFromEightThreadsSumExactly) {
  MetricsRegistry registry;
  Counter& counter = registry.counter("messages_received_total", "h", {{"listener", "l"}});
  Gauge& gauge = registry.gauge("queue_recipients", "h", {{"state", "queued"}});
  Histogram& histogram = registry.histogram("delivery_attempt_seconds", "h");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.inc();
        gauge.add(1);
        if (i % 10 == 0) histogram.observe(0.002);
      }
    });
  }
  // render() concurrently with the updates must be safe.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(registry.render().empty());
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(gauge.value(), int64_t{kThreads} * kPerThread);
  Histogram::Snapshot snap = histogram.snapshot();
  EXPECT_EQ(snap.count, uint64_t{kThreads} * kPerThread / 10);
  EXPECT_NEAR(snap.sum, 0.002 * kThreads * kPerThread / 10, 1e-6);
  EXPECT_NE(registry.render().find("ringmail_messages_received_total{listener=\"l\"} 800000\n"),
            std::string::npos);
}

TEST(MetricsRegistry, HistogramBucketsAreCumulative) {
  Histogram h({1, 0.1, 10});
  for (double v : {0.05, 0.1, 0.2, 1.0, 5.0, 50.0, -1.0}) h.observe(v);
  Histogram::Snapshot snap = h.snapshot();
  EXPECT_EQ(snap.upper_bounds, (std::vector<double>{0.1, 1, 10}));
  EXPECT_EQ(snap.cumulative_counts, (std::vector<uint64_t>{3, 5, 6, 7}));
  EXPECT_EQ(snap.count, 7u);
  EXPECT_NEAR(snap.sum, 55.35, 1e-9);
}

TEST(MetricsRegistry, DefaultLatencyBucketsRender) {
  MetricsRegistry registry;
  registry.histogram("delivery_attempt_seconds", "Attempt latency.", {{"site", "a"}})
      .observe(0.0003);
  std::string text = registry.render();
  EXPECT_NE(text.find("ringmail_delivery_attempt_seconds_bucket{site=\"a\",le=\"0.0001\"} 0\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ringmail_delivery_attempt_seconds_bucket{site=\"a\",le=\"0.0005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("ringmail_delivery_attempt_seconds_bucket{site=\"a\",le=\"60\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("ringmail_delivery_attempt_seconds_bucket{site=\"a\",le=\"+Inf\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("ringmail_delivery_attempt_seconds_sum{site=\"a\"} 0.0003\n"),
            std::string::npos);
}

bool promtool_available() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

TEST(MetricsRegistry, PromtoolAcceptsRenderedText) {
  if (!promtool_available()) GTEST_SKIP() << "promtool not installed (package prometheus)";
  MetricsRegistry registry;
  registry.counter("messages_received_total", "Messages accepted.", {{"listener", "relay"}}).inc(9);
  registry.counter("messages_bounced_total", "Bounces.", {{"category", "InvalidRecipient"}});
  registry.declare("messages_deferred_total", "Deferrals by site.", MetricType::counter);
  registry.gauge("build_info", "Build information.", {{"version", "0.1.0 \"q\"\\\n"}}).set(1);
  registry.gauge("smtp_sessions_active", "Open sessions.", {{"direction", "inbound"}}).set(3);
  Histogram& h = registry.histogram("spool_commit_seconds", "Spool commit latency.");
  h.observe(0.004);
  h.observe(0.2);

  auto dir =
      std::filesystem::temp_directory_path() / ("ringmail-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "metrics.txt";
  {
    std::ofstream out(file, std::ios::binary);
    out << registry.render();
  }
  auto log = dir / "promtool.log";
  std::string cmd =
      "promtool check metrics < '" + file.string() + "' > '" + log.string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(rc, 0) << output << "\n---\n" << registry.render();
}

}  // namespace
}  // namespace ringmail::runtime
