// The suppression lookup the delivery planner makes for every recipient,
// on an LMDB spool holding 0, 1,000,000 and 10,000,000 entries
// (queue/suppression_store.h): a miss (the common case: the recipient is
// on no list) must cost the same at every size, and far below a relayed
// message's budget (tens of microseconds); a hit reads one record. Also
// how long a start-up takes to index the lists (load), per entry.
//
// Run: build/release/suppression_bench (it builds a spool of about 2 GB in
// $TMPDIR the first time a size is asked for, which takes minutes at 10M).
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "queue/spool_lmdb.h"
#include "queue/suppression_store.h"

namespace ringmail::queue {
namespace {

struct Filled {
  std::filesystem::path dir;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<SuppressionStore> store;
  double load_seconds = 0;
};

std::string address(int64_t i) {
  return "user" + std::to_string(i) + "@example" + std::to_string(i % 1000) + ".test";
}

Filled& filled(int64_t entries) {
  static std::map<int64_t, std::unique_ptr<Filled>> cache;
  auto& slot = cache[entries];
  if (slot) return *slot;
  slot = std::make_unique<Filled>();
  slot->dir = std::filesystem::temp_directory_path() /
              ("ringmail-suppression-bench-" + std::to_string(entries));
  std::filesystem::remove_all(slot->dir);
  std::string error;
  slot->spool = open_lmdb_spool(slot->dir, uint64_t{8} << 30, &error);
  if (!slot->spool) throw std::runtime_error(error);
  {
    SuppressionStore writer(*slot->spool);
    std::vector<SuppressionEntry> batch;
    for (int64_t i = 0; i < entries; ++i) {
      SuppressionEntry e;
      e.tenant = i % 10 == 0 ? "*" : "tenant" + std::to_string(i % 7);
      e.address = address(i);
      e.reason = "550 5.1.1 The email account that you tried to reach does not exist";
      e.source = SuppressionSource::bounce;
      e.category = "InvalidRecipient";
      e.created_unix_ms = 1767225600000 + i;
      batch.push_back(std::move(e));
      if (batch.size() == 100000 || i + 1 == entries) {
        size_t added = 0;
        if (!writer.add(batch, &added).ok()) throw std::runtime_error("add failed");
        batch.clear();
      }
    }
  }
  slot->store = std::make_unique<SuppressionStore>(*slot->spool);
  const auto start = std::chrono::steady_clock::now();
  slot->store->load();
  slot->load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return *slot;
}

void BM_LookupMiss(benchmark::State& state) {
  Filled& f = filled(state.range(0));
  int64_t i = 0;
  for (auto _ : state) {
    // Recipients on no list, spread like real traffic over many domains.
    auto hit = f.store->find("tenant3", "nobody" + std::to_string(i++) + "@example42.test");
    benchmark::DoNotOptimize(hit);
  }
  state.counters["entries"] = static_cast<double>(f.store->size());
  state.counters["load_s"] = f.load_seconds;
}
BENCHMARK(BM_LookupMiss)->Arg(0)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kNanosecond);

void BM_LookupHit(benchmark::State& state) {
  Filled& f = filled(state.range(0));
  int64_t i = 0;
  for (auto _ : state) {
    // Entries of every tenant, found through the tenant's list or "*".
    const int64_t n = (i++ * 7919) % state.range(0);
    auto hit = f.store->find("tenant" + std::to_string(n % 7), address(n));
    if (!hit) state.SkipWithError("an entry was not found");
    benchmark::DoNotOptimize(hit);
  }
}
BENCHMARK(BM_LookupHit)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace ringmail::queue

BENCHMARK_MAIN();
