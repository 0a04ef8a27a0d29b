// bench/spool_fill_tool.cc — fills a spool directory with queued mail for
// the restart benchmark (bench/run_restart.py): N messages of SIZE octets,
// each to R recipients spread over D domains, committed in batches through
// the production LMDB spool. Prints one JSON line with what it wrote.
//
//   spool_fill_tool --spool DIR [--messages 100000] [--recipients 10]
//                   [--domains 10] [--size 4096] [--map-size-gib 8] [--literals]
// --literals: the domains are address literals [127.1.X.Y], one site each
// (bench/run_metrics_scrape.py queues mail for 10,000 sites that way).
#include <getopt.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "queue/spool_lmdb.h"

namespace {

using namespace ringmail::queue;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  long messages = 100000, recipients = 10, domains = 10, size = 4096, map_gib = 8;
  bool literals = false;
  static const option options[] = {{"spool", required_argument, nullptr, 's'},
                                   {"messages", required_argument, nullptr, 'm'},
                                   {"recipients", required_argument, nullptr, 'r'},
                                   {"domains", required_argument, nullptr, 'd'},
                                   {"size", required_argument, nullptr, 'l'},
                                   {"map-size-gib", required_argument, nullptr, 'g'},
                                   {"literals", no_argument, nullptr, 'L'},
                                   {nullptr, 0, nullptr, 0}};
  for (int opt; (opt = getopt_long(argc, argv, "", options, nullptr)) != -1;) {
    switch (opt) {
      case 's':
        dir = optarg;
        break;
      case 'm':
        messages = std::atol(optarg);
        break;
      case 'r':
        recipients = std::atol(optarg);
        break;
      case 'd':
        domains = std::atol(optarg);
        break;
      case 'l':
        size = std::atol(optarg);
        break;
      case 'L':
        literals = true;
        break;
      case 'g':
        map_gib = std::atol(optarg);
        break;
      default:
        std::fprintf(stderr,
                     "usage: spool_fill_tool --spool DIR [--messages N] [--recipients R]"
                     " [--domains D] [--size BYTES] [--map-size-gib G] [--literals]\n");
        return 2;
    }
  }
  if (dir.empty() || messages <= 0 || recipients <= 0 || domains <= 0 || size < 64) {
    std::fprintf(stderr, "spool_fill_tool: --spool is required; counts must be positive\n");
    return 2;
  }
  std::string error;
  auto spool = open_lmdb_spool(dir, static_cast<uint64_t>(map_gib) << 30, &error);
  if (!spool) {
    std::fprintf(stderr, "spool_fill_tool: %s\n", error.c_str());
    return 1;
  }
  const auto started = std::chrono::steady_clock::now();
  const int64_t received = now_ms();
  constexpr long kBatch = 2000;
  std::vector<SpoolMessage> batch;
  std::vector<SpoolMessage*> pointers;
  for (long done = 0; done < messages;) {
    batch.clear();
    pointers.clear();
    const long n = std::min(kBatch, messages - done);
    batch.resize(static_cast<size_t>(n));
    for (long i = 0; i < n; ++i) {
      SpoolMessage& m = batch[static_cast<size_t>(i)];
      m.id = make_message_id();
      m.envelope.sender = "restart@bench.test";
      for (long r = 0; r < recipients; ++r) {
        Recipient rcpt;
        const long d = ((done + i) * recipients + r) % domains;
        rcpt.domain =
            literals ? "[127.1." + std::to_string(d / 250) + "." + std::to_string(d % 250 + 1) + "]"
                     : "d" + std::to_string(r % domains) + ".restart.test";
        rcpt.address = "u" + std::to_string(done + i) + "-" + std::to_string(r) + "@" + rcpt.domain;
        m.envelope.recipients.push_back(std::move(rcpt));
      }
      m.meta.tenant = "bench";
      m.meta.listener = "relay";
      m.meta.received_unix_ms = received;
      std::string content =
          "From: restart@bench.test\r\nSubject: restart " + m.id.value + "\r\n\r\n";
      while (content.size() + 2 < static_cast<size_t>(size)) content += 'x';
      content += "\r\n";
      m.meta.size = content.size();
      m.content = std::move(content);
      pointers.push_back(&m);
    }
    const StoreOutcome outcome = spool->store_batch(pointers);
    if (!outcome.ok()) {
      std::fprintf(stderr, "spool_fill_tool: store failed after %ld messages: %s\n", done,
                   outcome.detail.c_str());
      return 1;
    }
    done += n;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf(
      "{\"messages\":%ld,\"recipients\":%ld,\"domains\":%ld,\"size\":%ld,\"seconds\":%.3f}\n",
      messages, messages * recipients, domains, size, seconds);
  return 0;
}
