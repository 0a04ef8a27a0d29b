// bench/milter_bench.cc — the milter round trip per message: one
// MilterClient::run_now() of a 4 KiB message (2 recipients) against the
// real libmilter test milter (tests/milter/test_milter.c), over loopback
// TCP with a new connection per message as ringmaild does:
//   1 milter that only continues, 1 milter that adds a header,
//   2 milters in a row (two test_milter processes) that both continue.
// Wall-clock time per message (UseRealTime: the work happens in the milter
// process as much as in ours), in microseconds.
//
// The test milter is looked up next to this binary (`test_milter` is built
// in the same build dir) or at $TEST_MILTER:
//   ninja -C build/release milter_bench test_milter && build/release/milter_bench
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mta/milter/milter_client.h"
#include "tests/support/test_milter_process.h"

namespace {

using namespace std::chrono_literals;
using ringmail::mta::MilterAction;
using ringmail::mta::MilterClient;
using ringmail::mta::MilterJob;
using ringmail::mta::MilterOutcome;

std::string test_milter_path() {
  if (const char* env = std::getenv("TEST_MILTER"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (self.parent_path() / "test_milter").string();
}

// One test_milter process on a free loopback port, killed at exit.
class TestMilterProcess : public ringmail::test_support::TestMilterProcess {
 public:
  TestMilterProcess()
      : ringmail::test_support::TestMilterProcess(test_milter_path(), "inet:0@127.0.0.1") {
    if (port() == 0)
      std::fprintf(stderr, "milter_bench: %s did not start\n", test_milter_path().c_str());
  }
};

// Two milter processes, started on first use and shared by the benchmarks.
std::vector<std::unique_ptr<TestMilterProcess>>& milters() {
  static std::vector<std::unique_ptr<TestMilterProcess>> processes = [] {
    std::vector<std::unique_ptr<TestMilterProcess>> p;
    p.push_back(std::make_unique<TestMilterProcess>());
    p.push_back(std::make_unique<TestMilterProcess>());
    return p;
  }();
  return processes;
}

ringmail::conf::Milter milter_config(uint16_t port, const std::string& name) {
  ringmail::conf::Milter m;
  m.name = name;
  m.address.host = "127.0.0.1";
  m.address.port = port;
  m.address.text = "127.0.0.1:" + std::to_string(port);
  m.on_failure = ringmail::conf::MilterFailure::tempfail;
  m.timeout = 5s;
  return m;
}

// A 4 KiB message; `control` is the X-Test-* header that tells the test
// milter what to do.
MilterJob make_job(const std::string& control) {
  MilterJob job;
  ringmail::queue::SpoolMessage& m = job.message;
  m.id.value = "0123456789abcdef0123";
  m.envelope.sender = "app@example.test";
  for (const char* address : {"one@example.net", "two@example.net"}) {
    ringmail::queue::Recipient r;
    r.address = address;
    r.domain = "example.net";
    m.envelope.recipients.push_back(r);
  }
  m.meta.listener = "relay";
  m.meta.client_ip = "192.0.2.7";
  m.meta.helo = "client.example.net";
  m.content =
      "Received: from client.example.net ([192.0.2.7]) by mx.example.test with ESMTP id "
      "0123456789abcdef0123; Mon, 02 Mar 2026 10:00:00 +0000\r\n"
      "From: App <app@example.test>\r\n"
      "To: One <one@example.net>, Two <two@example.net>\r\n"
      "Subject: milter round trip benchmark\r\n"
      "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
      "Message-ID: <bench-1@example.test>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n" +
      control + "\r\n";
  const std::string line = "The quick brown fox jumps over the lazy dog, 0123456789.\r\n";
  while (m.content.size() + line.size() <= 4096) m.content += line;
  m.content.append(4096 - m.content.size() - 2, 'x');
  m.content += "\r\n";
  m.meta.size = m.content.size();
  job.context.hostname = "mx.example.test";
  job.context.daemon_name = "relay";
  job.context.local_ip = "127.0.0.1";
  job.context.client_ip = "192.0.2.7";
  job.context.client_port = 40000;
  job.context.client_hostname = "client.example.net";
  job.context.helo = "client.example.net";
  return job;
}

void run_round_trips(benchmark::State& state, size_t milter_count, const std::string& control,
                     const char* expect_in_content) {
  std::vector<ringmail::conf::Milter> config;
  for (size_t i = 0; i < milter_count; ++i) {
    uint16_t port = milters()[i]->port();
    if (port == 0) {
      state.SkipWithError("test_milter did not start (build target test_milter)");
      return;
    }
    config.push_back(milter_config(port, "test" + std::to_string(i)));
  }
  MilterClient client(std::move(config), 1);
  MilterJob job = make_job(control);
  for (auto _ : state) {
    MilterOutcome outcome = client.run_now(job);
    if (outcome.verdict.action != MilterAction::proceed || outcome.milters.size() != milter_count) {
      state.SkipWithError(("unexpected verdict " + std::string(to_string(outcome.verdict.action)) +
                           (outcome.milters.empty() ? "" : ": " + outcome.milters[0].failure))
                              .c_str());
      return;
    }
    if (expect_in_content != nullptr &&
        outcome.message.content.find(expect_in_content) == std::string::npos) {
      state.SkipWithError("the milter's header is missing");
      return;
    }
    benchmark::DoNotOptimize(outcome);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(job.message.content.size()));
}

void BM_MilterContinue(benchmark::State& state) {
  run_round_trips(state, 1, "X-Test-Action: continue\r\n", nullptr);
}
BENCHMARK(BM_MilterContinue)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_MilterAddHeader(benchmark::State& state) {
  run_round_trips(state, 1, "X-Test-Mod: addheader\r\n", "X-Milter: added\r\n");
}
BENCHMARK(BM_MilterAddHeader)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_TwoMiltersContinue(benchmark::State& state) {
  run_round_trips(state, 2, "X-Test-Action: continue\r\n", nullptr);
}
BENCHMARK(BM_TwoMiltersContinue)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
