// runtime/metrics_registry.cc — see metrics_registry.h.
//
// Updates touch only the calling thread's cell (relaxed atomics); render()
// sums the cells under the registry lock, which only registration and
// render() take. Values read during concurrent updates are each a value the
// metric really had or is about to have; a histogram's buckets, sum and count
// are not read as one atomic snapshot (Prometheus tolerates that).
#include "runtime/metrics_registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <variant>

namespace ringmail::runtime {

namespace {

constexpr std::string_view kPrefix = "ringmail_";

std::atomic<int> next_cell{0};

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text escapes backslash and newline; label values also the quote.
void append_escaped(std::string& out, std::string_view text, bool escape_quote) {
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '"':
        if (escape_quote) {
          out += "\\\"";
        } else {
          out += c;
        }
        break;
      default:
        out += c;
    }
  }
}

// Numbers as Prometheus clients print them: integers without a fraction,
// "+Inf"/"-Inf"/"NaN", otherwise the shortest text that reads back exactly.
std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::to_chars_result r;
  double magnitude = std::fabs(v);
  if (v == std::trunc(v) && magnitude < 1e15) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  } else if (magnitude >= 1e-6 && magnitude < 1e15) {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v);
  }
  return std::string(buf, r.ptr);
}

std::vector<double> normalize_bounds(std::vector<double> bounds) {
  std::erase_if(bounds, [](double b) { return std::isnan(b) || std::isinf(b); });
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

Labels normalize_labels(const Labels& labels, const std::string& family, MetricType type) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string& name = sorted[i].first;
    if (!valid_label_name(name)) {
      throw std::logic_error("metric " + family + ": invalid label name '" + name + "'");
    }
    if (type == MetricType::histogram && name == "le") {
      throw std::logic_error("metric " + family + ": label 'le' is reserved for histograms");
    }
    if (i > 0 && sorted[i - 1].first == name) {
      throw std::logic_error("metric " + family + ": label '" + name + "' given twice");
    }
  }
  return sorted;
}

void append_labels(std::string& out, const Labels& labels, std::string_view le = {}) {
  if (labels.empty() && le.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  if (!le.empty()) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

}  // namespace

int metric_cell_index() noexcept {
  thread_local int index = next_cell.fetch_add(1, std::memory_order_relaxed) % kMetricCells;
  return index;
}

uint64_t Counter::value() const noexcept {
  uint64_t total = 0;
  for (const MetricCell& cell : cells_) total += cell.value.load(std::memory_order_relaxed);
  return total;
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(normalize_bounds(std::move(upper_bounds))),
      buckets_(new MetricCell[(bounds_.size() + 1) * kMetricCells]),
      sum_micro_(new MetricCell[kMetricCells]) {}

void Histogram::observe(double value) noexcept {
  // First bound >= value; NaN and values past the last bound land in +Inf.
  size_t bucket = bounds_.size();
  if (!std::isnan(value)) {
    bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                 bounds_.begin());
  }
  int cell = metric_cell_index();
  buckets_[bucket * kMetricCells + cell].value.fetch_add(1, std::memory_order_relaxed);
  if (std::isfinite(value)) {
    // The sum is kept in millionths as a two's-complement int64 in a uint64
    // cell, so negative observations subtract; clamp to stay in range.
    constexpr double kLimit = 9.2e18;
    double micro = std::clamp(value * 1e6, -kLimit, kLimit);
    auto delta = static_cast<uint64_t>(static_cast<int64_t>(std::llround(micro)));
    sum_micro_[cell].value.fetch_add(delta, std::memory_order_relaxed);
  }
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot snap;
  snap.upper_bounds = bounds_;
  snap.cumulative_counts.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t b = 0; b <= bounds_.size(); ++b) {
    for (int c = 0; c < kMetricCells; ++c) {
      running += buckets_[b * kMetricCells + c].value.load(std::memory_order_relaxed);
    }
    snap.cumulative_counts[b] = running;
  }
  snap.count = running;
  uint64_t sum_micro = 0;
  for (int c = 0; c < kMetricCells; ++c) {
    sum_micro += sum_micro_[c].value.load(std::memory_order_relaxed);
  }
  snap.sum = static_cast<double>(static_cast<int64_t>(sum_micro)) / 1e6;
  return snap;
}

std::vector<double> latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

struct MetricsRegistry::Family {
  std::string name;  // with the ringmail_ prefix
  std::string help;
  MetricType type = MetricType::counter;
  std::vector<double> bounds;  // histograms: the family's buckets
  // unique_ptr keeps each metric at a stable address for its callers.
  using Metric =
      std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>, std::unique_ptr<Histogram>>;
  std::map<Labels, Metric> series;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

namespace {

template <typename Family>
Family& find_or_create(std::map<std::string, std::unique_ptr<Family>>& families,
                       std::string_view name, std::string_view help, MetricType type) {
  std::string full(kPrefix);
  full += name;
  if (!valid_metric_name(name)) {
    throw std::logic_error("invalid metric name '" + full + "'");
  }
  auto it = families.find(full);
  if (it == families.end()) {
    auto family = std::make_unique<Family>();
    family->name = full;
    family->help = std::string(help);
    family->type = type;
    it = families.emplace(full, std::move(family)).first;
  } else if (it->second->type != type) {
    throw std::logic_error("metric " + full + " registered as " +
                           std::string(type_name(it->second->type)) + " and as " +
                           std::string(type_name(type)));
  }
  return *it->second;
}

}  // namespace

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& family = find_or_create(families_, name, help, MetricType::counter);
  Labels key = normalize_labels(labels, family.name, family.type);
  auto it = family.series.find(key);
  if (it == family.series.end()) {
    it = family.series.emplace(std::move(key), std::make_unique<Counter>()).first;
  }
  return *std::get<std::unique_ptr<Counter>>(it->second);
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard lock(mutex_);
  Family& family = find_or_create(families_, name, help, MetricType::gauge);
  Labels key = normalize_labels(labels, family.name, family.type);
  auto it = family.series.find(key);
  if (it == family.series.end()) {
    it = family.series.emplace(std::move(key), std::make_unique<Gauge>()).first;
  }
  return *std::get<std::unique_ptr<Gauge>>(it->second);
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      const Labels& labels, std::vector<double> upper_bounds) {
  std::lock_guard lock(mutex_);
  bool is_new = families_.find(std::string(kPrefix) + std::string(name)) == families_.end();
  Family& family = find_or_create(families_, name, help, MetricType::histogram);
  std::vector<double> bounds =
      upper_bounds.empty() ? std::vector<double>{} : normalize_bounds(std::move(upper_bounds));
  if (is_new || family.bounds.empty()) {  // new, or only declare()d so far
    family.bounds = bounds.empty() ? latency_buckets() : bounds;
  } else if (!bounds.empty() && bounds != family.bounds) {
    throw std::logic_error("metric " + family.name + ": histogram buckets differ");
  }
  Labels key = normalize_labels(labels, family.name, family.type);
  auto it = family.series.find(key);
  if (it == family.series.end()) {
    it = family.series.emplace(std::move(key), std::make_unique<Histogram>(family.bounds)).first;
  }
  return *std::get<std::unique_ptr<Histogram>>(it->second);
}

void MetricsRegistry::declare(std::string_view name, std::string_view help, MetricType type) {
  std::lock_guard lock(mutex_);
  find_or_create(families_, name, help, type);
}

std::string MetricsRegistry::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    append_escaped(out, family->help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(family->type);
    out += '\n';
    for (const auto& [labels, metric] : family->series) {
      switch (family->type) {
        case MetricType::counter:
          out += name;
          append_labels(out, labels);
          out += ' ';
          out += std::to_string(std::get<std::unique_ptr<Counter>>(metric)->value());
          out += '\n';
          break;
        case MetricType::gauge:
          out += name;
          append_labels(out, labels);
          out += ' ';
          out += std::to_string(std::get<std::unique_ptr<Gauge>>(metric)->value());
          out += '\n';
          break;
        case MetricType::histogram: {
          Histogram::Snapshot snap = std::get<std::unique_ptr<Histogram>>(metric)->snapshot();
          for (size_t b = 0; b <= snap.upper_bounds.size(); ++b) {
            std::string le = b < snap.upper_bounds.size() ? format_double(snap.upper_bounds[b])
                                                          : std::string("+Inf");
            out += name;
            out += "_bucket";
            append_labels(out, labels, le);
            out += ' ';
            out += std::to_string(snap.cumulative_counts[b]);
            out += '\n';
          }
          out += name;
          out += "_sum";
          append_labels(out, labels);
          out += ' ';
          out += format_double(snap.sum);
          out += '\n';
          out += name;
          out += "_count";
          append_labels(out, labels);
          out += ' ';
          out += std::to_string(snap.count);
          out += '\n';
          break;
        }
      }
    }
  }
  return out;
}

void LabelledCounters::declare(MetricsRegistry& metrics) const {
  metrics.declare(name_, help_, MetricType::counter);
}

Counter& LabelledCounters::get(MetricsRegistry& metrics, const std::string& value) {
  auto it = by_values_.find(value);
  if (it != by_values_.end()) return *it->second;
  return add(metrics, value, {value});
}

Counter& LabelledCounters::get(MetricsRegistry& metrics,
                               std::initializer_list<std::string_view> values) {
  std::string key;
  for (std::string_view v : values) {
    if (!key.empty()) key.push_back('\0');
    key.append(v);
  }
  auto it = by_values_.find(key);
  if (it != by_values_.end()) return *it->second;
  return add(metrics, std::move(key), values);
}

Counter& LabelledCounters::add(MetricsRegistry& metrics, std::string key,
                               std::initializer_list<std::string_view> values) {
  Labels labels;
  size_t i = 0;
  for (std::string_view v : values) {
    if (i < labels_.size()) labels.emplace_back(labels_[i], std::string(v));
    ++i;
  }
  Counter* counter = &metrics.counter(name_, help_, labels);
  by_values_.emplace(std::move(key), counter);
  return *counter;
}

}  // namespace ringmail::runtime
