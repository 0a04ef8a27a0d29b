// Spool commit throughput on a real disk: one synced LMDB transaction per
// batch of 4 KiB messages, at batch sizes 1, 16 and 256 (what group commit
// buys), plus the SpoolWriter end to end with many messages in flight.
// The spool lives in a fresh directory under /tmp (or $RINGMAIL_BENCH_DIR).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "queue/spool_lmdb.h"
#include "queue/spool_writer.h"

namespace {

using namespace ringmail::queue;

constexpr size_t kMessageSize = 4096;
constexpr uint64_t kMapSize = 8ull << 30;

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("RINGMAIL_BENCH_DIR");
    std::string pattern = std::string(base ? base : "/tmp") + "/ringmail-spool-bench-XXXXXX";
    if (!::mkdtemp(pattern.data())) std::abort();
    path_ = pattern;
  }
  ~BenchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

SpoolMessage message_of(size_t size) {
  SpoolMessage m;
  m.id = make_message_id();
  m.envelope.sender = "bench@sender.test";
  Recipient r;
  r.address = "rcpt@example.test";
  r.domain = "example.test";
  m.envelope.recipients.push_back(r);
  m.meta.tenant = "bench";
  m.meta.listener = "relay";
  m.meta.client_ip = "127.0.0.1";
  m.content.assign(size - 2, 'x');
  m.content += "\r\n";
  m.meta.size = m.content.size();
  return m;
}

void BM_SpoolCommit(benchmark::State& state) {
  const size_t batch_size = static_cast<size_t>(state.range(0));
  BenchDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), kMapSize, &error);
  if (!spool) {
    state.SkipWithError(error.c_str());
    return;
  }
  std::vector<SpoolMessage> messages(batch_size, message_of(kMessageSize));
  std::vector<SpoolMessage*> batch;
  for (auto& m : messages) batch.push_back(&m);

  for (auto _ : state) {
    for (auto& m : messages) m.id = make_message_id();
    const StoreOutcome outcome = spool->store_batch(batch);
    if (!outcome.ok()) {
      state.SkipWithError(outcome.detail.c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch_size));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch_size * kMessageSize));
  state.counters["commits_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SpoolCommit)->Arg(1)->Arg(16)->Arg(256)->UseRealTime()->Unit(benchmark::kMicrosecond);

// `in_flight` messages submitted at once, as many sessions waiting for 250
// would; the writer batches whatever arrives during each commit.
void BM_SpoolWriterGroupCommit(benchmark::State& state) {
  const size_t in_flight = static_cast<size_t>(state.range(0));
  BenchDir dir;
  std::string error;
  auto spool = open_lmdb_spool(dir.path(), kMapSize, &error);
  if (!spool) {
    state.SkipWithError(error.c_str());
    return;
  }
  SpoolWriter writer(*spool, nullptr, nullptr);
  const SpoolMessage prototype = message_of(kMessageSize);
  std::mutex mutex;
  std::condition_variable cv;
  size_t done = 0;
  for (auto _ : state) {
    done = 0;
    for (size_t i = 0; i < in_flight; ++i) {
      auto m = std::make_unique<SpoolMessage>(prototype);
      m->id = make_message_id();
      writer.submit(std::move(m), [&](const SpoolMessage&, StoreStatus, const std::string&) {
        std::lock_guard lock(mutex);
        if (++done == in_flight) cv.notify_one();
      });
    }
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done == in_flight; });
  }
  writer.stop();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * in_flight));
  state.counters["messages_per_batch"] =
      static_cast<double>(writer.committed_messages()) / static_cast<double>(writer.batches());
}
BENCHMARK(BM_SpoolWriterGroupCommit)
    ->Arg(64)
    ->Arg(512)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
