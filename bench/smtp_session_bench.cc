// Micro benchmarks of the inbound SMTP machine: parsing of typical MAIL and
// RCPT lines, and DATA streaming throughput (bytes/s) through a whole
// session transaction for a 4 KiB and a 1 MiB message, including the
// Received:/header rewrite and the SpoolMessage hand-off.
#include <benchmark/benchmark.h>

#include <string>

#include "mta/smtp/smtp_command.h"
#include "mta/smtp/smtp_data_reader.h"
#include "mta/smtp/smtp_server_session.h"

namespace {

using namespace ringmail::mta;

void BM_ParseCommandLine(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        parse_command_line("MAIL FROM:<newsletter@mail.example.org> SIZE=4096"));
  }
}
BENCHMARK(BM_ParseCommandLine);

void BM_ParseMailFrom(benchmark::State& state) {
  for (auto _ : state) {
    auto r = parse_mail_from("FROM:<bounces+1234@mail.example.org> SIZE=4096 BODY=8BITMIME");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseMailFrom);

void BM_ParseRcptTo(benchmark::State& state) {
  for (auto _ : state) {
    auto r = parse_rcpt_to("TO:<John.Smith@Customer-Mail.Example.NET> NOTIFY=FAILURE,DELAY");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ParseRcptTo);

std::string make_message(size_t size) {
  std::string m =
      "From: Sender <sender@example.org>\r\nTo: <rcpt@example.net>\r\n"
      "Subject: benchmark message\r\nMessage-ID: <bench@example.org>\r\n"
      "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nX-Campaign-ID: bench\r\n\r\n";
  std::string line = std::string(76, 'a') + "\r\n";
  line[0] = '.';  // every line needs dot-unstuffing: the worst ordinary case
  while (m.size() + line.size() <= size) m += line;
  m.append(size - m.size(), 'b');
  return m;
}

std::string dot_stuffed(const std::string& m) {
  std::string out;
  out.reserve(m.size() + m.size() / 70 + 8);
  bool line_start = true;
  for (char c : m) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  if (!line_start) out += "\r\n";
  out += ".\r\n";
  return out;
}

void BM_DataStreaming(benchmark::State& state) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string wire = dot_stuffed(make_message(size));
  SessionSettings settings;
  settings.hostname = "mx.bench.test";
  settings.listener_name = "relay";
  settings.max_message_size = 64ull << 20;
  ConnectionInfo connection;
  connection.peer_ip = "127.0.0.1";
  connection.relay_network = "127.0.0.0/8";
  SmtpServerSession session(settings, connection);
  session.start();
  session.receive("EHLO bench.client\r\n");
  constexpr size_t kRead = 64 * 1024;  // one provided buffer per read
  for (auto _ : state) {
    session.receive("MAIL FROM:<sender@example.org>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n");
    SessionOutput out;
    for (size_t pos = 0; pos < wire.size(); pos += kRead) {
      out = session.receive(std::string_view(wire).substr(pos, kRead));
    }
    if (!out.commit) {
      state.SkipWithError("no message");
      break;
    }
    benchmark::DoNotOptimize(out.commit->content.data());
    session.commit_finished({CommitResult::Status::committed, "", ""});
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(wire.size()));
}
BENCHMARK(BM_DataStreaming)->Arg(4096)->Arg(1 << 20);

void BM_DataReaderOnly(benchmark::State& state) {
  const std::string wire = dot_stuffed(make_message(static_cast<size_t>(state.range(0))));
  SmtpDataReader reader;
  for (auto _ : state) {
    reader.begin(SmtpDataReader::Framing::dot_terminated, 64ull << 20);
    benchmark::DoNotOptimize(reader.feed(wire));
    benchmark::DoNotOptimize(reader.content().data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(wire.size()));
}
BENCHMARK(BM_DataReaderOnly)->Arg(4096)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
