// Scheduler operations at the scale of a large queue: 1,000,000 queued
// recipients (jobs) over 10,000 sites. Pick-next takes the oldest ready job
// of a site; reschedule moves an in-flight job back to the time index.
// Both must cost the same at 10,000 and 1,000,000 jobs (O(log n) or better).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "policy/shaper.h"
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
  loaded->scheduler.take_due(runtime::WallTime{}, &due);
  for (size_t i = 0; i < due.size(); ++i) {
    loaded->scheduler.make_ready(due[i], loaded->sites[i % loaded->sites.size()]);
  }
  return loaded;
}

// Parks every other ready job of each site in the time index, due 1 ms
// apart; returns how many.
int64_t park_half(Loaded& loaded) {
  int64_t parked = 0;
  for (const std::string& site : loaded.sites) {
    const size_t half = loaded.scheduler.ready(site) / 2;
    for (size_t i = 0; i < half; ++i) {
      loaded.scheduler.reschedule(*loaded.scheduler.pick_next(site),
                                  runtime::from_unix_ms(++parked));
    }
  }
  return parked;
}

// The steady state of a busy queue, per iteration: a connection picks the
// oldest ready job of a site, the attempt defers it (reschedule one minute
// ahead, into the time index), and the earliest waiting job comes due and
// is made ready at its site. Half the jobs wait, half are ready.
void BM_PickNextAndReschedule(benchmark::State& state) {
  const int64_t jobs = state.range(0);
  auto loaded = load(jobs, state.range(1));
  Scheduler& s = loaded->scheduler;
  const int64_t parked = park_half(*loaded);
  std::mt19937_64 random(42);
  std::uniform_int_distribution<size_t> pick_site(0, loaded->sites.size() - 1);
  std::vector<JobId> due;
  int64_t now = 0;
  for (auto _ : state) {
    const std::string& site = loaded->sites[pick_site(random)];
    if (auto id = s.pick_next(site)) s.reschedule(*id, runtime::from_unix_ms(parked + now + 60000));
    due.clear();
    s.take_due(runtime::from_unix_ms(++now), &due, 1);
    for (JobId id : due) s.make_ready(id, loaded->sites[id % loaded->sites.size()]);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["jobs"] = static_cast<double>(s.size());
  state.counters["ready"] = static_cast<double>(s.ready_total());
}
BENCHMARK(BM_PickNextAndReschedule)
    ->Args({10000, 10000})
    ->Args({100000, 10000})
    ->Args({1000000, 10000})
    ->Unit(benchmark::kNanosecond);

// The same steady state with the traffic policy's per-job decisions, as
// the planner makes them: the (source, site) message bucket asked and
// charged, and the tenant's bucket (100 tenants with a rate) asked and
// charged. Rates are high enough never to bind, so every job goes: the
// difference to BM_PickNextAndReschedule is the policy's cost per job.
void BM_PickNextAndRescheduleWithPolicy(benchmark::State& state) {
  const int64_t jobs = state.range(0);
  auto loaded = load(jobs, state.range(1));
  Scheduler& s = loaded->scheduler;
  std::vector<policy::QueueShaping> queues(loaded->sites.size());
  for (policy::QueueShaping& q : queues) {
    q.configure(policy::RateSpec{1000000000, std::chrono::seconds(1), 0},
                policy::RateSpec{1000000, std::chrono::seconds(1), 0});
  }
  policy::Shaper shaper;
  std::vector<std::string> tenants;
  for (int t = 0; t < 100; ++t) {
    tenants.push_back("tenant" + std::to_string(t));
    shaper.set_tenant_rate(tenants.back(),
                           policy::RateSpec{1000000000, std::chrono::seconds(1), 0});
  }
  for (size_t slot = 0; slot < static_cast<size_t>(jobs); ++slot) {
    if (Job* job = s.find((JobId(1) << 32) | slot)) job->tenant = tenants[slot % tenants.size()];
  }
  const int64_t parked = park_half(*loaded);
  std::mt19937_64 random(42);
  std::uniform_int_distribution<size_t> pick_site(0, loaded->sites.size() - 1);
  std::vector<JobId> due;
  int64_t now = 0;
  uint64_t went = 0;
  for (auto _ : state) {
    const size_t site = pick_site(random);
    const runtime::SteadyTime t = runtime::SteadyTime(std::chrono::milliseconds(now));
    policy::QueueShaping& q = queues[site];
    if (q.may_send(t).go) {
      if (auto id = s.pick_next(loaded->sites[site])) {
        Job* job = s.find(*id);
        if (shaper.may_send(job->tenant, job->campaign, t).go) {
          q.sent(1, t);
          shaper.sent(job->tenant, job->campaign, 1, t);
          ++went;
        }
        s.reschedule(*id, runtime::from_unix_ms(parked + now + 60000));
      }
    }
    due.clear();
    s.take_due(runtime::from_unix_ms(++now), &due, 1);
    for (JobId id : due) s.make_ready(id, loaded->sites[id % loaded->sites.size()]);
  }
  benchmark::DoNotOptimize(went);
  state.SetItemsProcessed(state.iterations());
  state.counters["jobs"] = static_cast<double>(s.size());
}
BENCHMARK(BM_PickNextAndRescheduleWithPolicy)
    ->Args({10000, 10000})
    ->Args({1000000, 10000})
    ->Unit(benchmark::kNanosecond);

}  // namespace
}  // namespace ringmail::queue

BENCHMARK_MAIN();
