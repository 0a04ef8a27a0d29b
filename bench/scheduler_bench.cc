// Scheduler operations at the scale of a large queue: 1,000,000 queued
// recipients (jobs) over 10,000 sites. Pick-next takes the oldest ready job
// of a site; reschedule moves an in-flight job back to the time index.
// Both must cost the same at 10,000 and 1,000,000 jobs (O(log n) or better).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "queue/scheduler.h"

namespace ringmail::queue {
namespace {

struct Loaded {
  Scheduler scheduler;
  std::vector<std::string> sites;
};

// Every job ready at one of `sites` sites, round robin.
std::unique_ptr<Loaded> load(int64_t jobs, int64_t sites) {
  auto loaded = std::make_unique<Loaded>();
  for (int64_t s = 0; s < sites; ++s) {
    loaded->sites.push_back("mx" + std::to_string(s) + ".provider.test");
  }
  std::vector<JobId> ids;
  ids.reserve(static_cast<size_t>(jobs));
  for (int64_t i = 0; i < jobs; ++i) {
    Job job;
    job.id = MessageId{std::to_string(100000000000 + i)};
    job.domain = "d" + std::to_string(i % sites) + ".test";
    job.recipients.push_back(JobRecipient{0, 0, false});
    ids.push_back(loaded->scheduler.add(std::move(job)));
  }
  std::vector<JobId> due;
  loaded->scheduler.take_due(0, &due);
  for (size_t i = 0; i < due.size(); ++i) {
    loaded->scheduler.make_ready(due[i], loaded->sites[i % loaded->sites.size()]);
  }
  return loaded;
}

// One pick-next and one reschedule (of the job just picked, 1 minute ahead)
// per iteration: the steady state of a queue whose attempts all defer.
void BM_PickNextAndReschedule(benchmark::State& state) {
  auto loaded = load(state.range(0), state.range(1));
  Scheduler& s = loaded->scheduler;
  std::mt19937_64 random(42);
  std::uniform_int_distribution<size_t> site(0, loaded->sites.size() - 1);
  int64_t now = 1;
  for (auto _ : state) {
    auto id = s.pick_next(loaded->sites[site(random)]);
    if (id) s.reschedule(*id, now + 60000);
    ++now;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["jobs"] = static_cast<double>(s.size());
}
BENCHMARK(BM_PickNextAndReschedule)
    ->Args({10000, 10000})
    ->Args({1000000, 10000})
    ->Unit(benchmark::kNanosecond);

// Due processing: a waiting job comes due, is routed (made ready) and picked.
void BM_DueToReadyToPicked(benchmark::State& state) {
  auto loaded = load(state.range(0), state.range(1));
  Scheduler& s = loaded->scheduler;
  // Park every job in the time index, one millisecond apart.
  for (const std::string& site : loaded->sites) {
    while (auto id = s.pick_next(site)) s.reschedule(*id, static_cast<int64_t>(*id));
  }
  std::vector<JobId> due;
  int64_t now = 0;
  size_t site = 0;
  for (auto _ : state) {
    due.clear();
    s.take_due(++now, &due, 1);
    for (JobId id : due) {
      const std::string& name = loaded->sites[site++ % loaded->sites.size()];
      s.make_ready(id, name);
      auto picked = s.pick_next(name);
      if (picked) s.reschedule(*picked, now + state.range(0));
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DueToReadyToPicked)
    ->Args({10000, 10000})
    ->Args({1000000, 10000})
    ->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace ringmail::queue

BENCHMARK_MAIN();
