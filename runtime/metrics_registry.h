// runtime/metrics_registry.h — in-process metrics (counters, gauges,
// histograms) rendered in the Prometheus text format 0.0.4.
//
// Owns: metric families and their label sets. Registration (counter(),
// gauge(), histogram()) takes a lock and is meant for start-up or the first
// use of a label set; the returned reference is stable for the registry's
// lifetime. Updates are lock-free: each metric keeps per-thread cells
// (cache-line padded) that render() sums, so shard threads never contend.
// Any thread may update; render() may run concurrently with updates.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ringmail::runtime {

using Labels = std::vector<std::pair<std::string, std::string>>;

inline constexpr int kMetricCells = 16;  // threads hash onto cells

// Index of the calling thread's cell (stable per thread).
int metric_cell_index() noexcept;

struct alignas(64) MetricCell {
  std::atomic<uint64_t> value{0};
};

class Counter {
 public:
  void inc(uint64_t n = 1) noexcept {
    cells_[metric_cell_index()].value.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t value() const noexcept;

 private:
  MetricCell cells_[kMetricCells];
};

class Gauge {
 public:
  void add(int64_t delta) noexcept { value_.fetch_add(delta, std::memory_order_relaxed); }
  void set(int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value) noexcept;
  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative_counts;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<MetricCell[]> buckets_;    // (bounds+1) x kMetricCells
  std::unique_ptr<MetricCell[]> sum_micro_;  // kMetricCells, sum in millionths
};

// Default buckets for latencies in seconds: 100 µs .. 60 s.
std::vector<double> latency_buckets();

enum class MetricType { counter, gauge, histogram };

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registration throws std::logic_error (a start-up bug, not a runtime
  // condition) for an invalid metric or label name, for a name registered
  // before with another type, or for a histogram whose buckets differ from
  // the family's. The help text of the first registration is kept.
  // `name` without the ringmail_ prefix, e.g. "messages_received_total".
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                       std::vector<double> upper_bounds = {});
  // Declares a family with no series yet (e.g. messages_bounced_total
  // before the first bounce): render() shows its HELP and TYPE lines.
  void declare(std::string_view name, std::string_view help, MetricType type);
  // Prometheus text exposition format 0.0.4, families sorted by name,
  // series sorted by label set.
  std::string render() const;

 private:
  struct Family;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>> families_;
};

// A counter family whose series (one per label value, or per combination
// of values) are registered on first use and then found without the
// registry's lock (e.g. messages_delivered_total by site,
// dkim_signatures_total by domain and algorithm). Not thread-safe: one per
// counting thread.
class LabelledCounters {
 public:
  LabelledCounters(std::string name, std::string help, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}
  LabelledCounters(std::string name, std::string help, std::string label)
      : LabelledCounters(std::move(name), std::move(help), std::vector<std::string>{label}) {}
  // The family's HELP and TYPE before its first series.
  void declare(MetricsRegistry& metrics) const;
  // The series of a one-label family.
  Counter& get(MetricsRegistry& metrics, const std::string& value);
  // The series for these values, one per label, in the labels' order.
  Counter& get(MetricsRegistry& metrics, std::initializer_list<std::string_view> values);

 private:
  Counter& add(MetricsRegistry& metrics, std::string key,
               std::initializer_list<std::string_view> values);

  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::unordered_map<std::string, Counter*> by_values_;  // values joined by NUL
};

}  // namespace ringmail::runtime
