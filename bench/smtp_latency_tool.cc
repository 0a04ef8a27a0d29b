// bench/smtp_latency_tool.cc — paced SMTP client that measures end-of-DATA
// latency: the time from sending "\r\n.\r\n" to reading the final 250 reply.
//
// Owns: its own sockets and threads only; no Ringmail library code is used,
// so it measures any SMTP server (ringmaild, Postfix) the same way.
// Threads: one blocking thread per connection (a bench tool, not a server).
// Messages follow one global schedule: message k is due at t0 + k/rate and
// goes to connection k % connections, so the offered load is open-loop at
// `rate` as long as the server keeps up; when it does not, messages go out
// late and the "late" figures below show it.
// Faces the network as a client only. No durability promises.
//
// Usage: smtp_latency_tool --port P [--host 127.0.0.1] [--connections 50]
//          [--rate 1000] [--messages 10000] [--size 4096] [--campaigns N]
// --campaigns N: message k carries "X-Campaign-ID: bench-(k mod N)" (the
// relay benchmark's campaign load); 0, the default, names none.
// --domains N --domain-suffix S: message k goes to <rK@d(K mod N).S> (the
// many-sites benchmark); without them every message goes to
// <rcpt@example.test>.
// Prints a human summary on stderr and one JSON line on stdout:
//   {"count":N,"errors":E,"seconds":S,"rate":R,"p50_ms":..,"p90_ms":..,
//    "p99_ms":..,"max_ms":..,"late_p99_ms":..}
// Exit status: 0 when every message got a 250, 1 otherwise, 2 on bad usage.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  int connections = 50;
  double rate = 1000;
  long messages = 10000;
  long size = 4096;
  long campaigns = 0;
  long domains = 0;
  std::string domain_suffix;
};

// One blocking SMTP connection with a small line reader.
class Connection {
 public:
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }

  bool open(const Options& opt, std::string* error) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return fail(error, "socket");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(opt.port));
    if (inet_pton(AF_INET, opt.host.c_str(), &addr.sin_addr) != 1) {
      *error = "bad --host (IPv4 literal expected)";
      return false;
    }
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return fail(error, "connect");
    }
    std::string reply;
    if (!read_reply(&reply) || reply.compare(0, 3, "220") != 0) {
      *error = "greeting: " + reply;
      return false;
    }
    if (!send_all("EHLO latency.bench.test\r\n") || !read_reply(&reply) ||
        reply.compare(0, 3, "250") != 0) {
      *error = "EHLO: " + reply;
      return false;
    }
    pipelining_ = reply.find("PIPELINING") != std::string::npos;
    return true;
  }

  // Sends one message; on success stores the end-of-DATA latency.
  bool transaction(const std::string& body, const std::string& rcpt, double* latency_ms,
                   std::string* error) {
    static const std::string kMail = "MAIL FROM:<bench@bench.test>\r\n";
    static const std::string kData = "DATA\r\n";
    std::string reply;
    if (pipelining_) {
      if (!send_all(kMail + rcpt + kData)) return fail(error, "send");
      for (const char* want : {"250", "250", "354"}) {
        if (!read_reply(&reply) || reply.compare(0, 3, want) != 0) {
          *error = "envelope: " + reply;
          return false;
        }
      }
    } else {
      const std::string* cmds[] = {&kMail, &rcpt, &kData};
      const char* wants[] = {"250", "250", "354"};
      for (int i = 0; i < 3; ++i) {
        if (!send_all(*cmds[i]) || !read_reply(&reply) || reply.compare(0, 3, wants[i]) != 0) {
          *error = "envelope: " + reply;
          return false;
        }
      }
    }
    const auto sent = Clock::now();
    if (!send_all(body)) return fail(error, "send body");
    if (!read_reply(&reply)) return fail(error, "read end-of-data reply");
    const auto got = Clock::now();
    if (reply.compare(0, 3, "250") != 0) {
      *error = "end of data: " + reply;
      return false;
    }
    *latency_ms = std::chrono::duration<double, std::milli>(got - sent).count();
    return true;
  }

  void quit() {
    std::string reply;
    if (send_all("QUIT\r\n")) read_reply(&reply);
  }

 private:
  bool fail(std::string* error, const char* what) {
    *error = std::string(what) + ": " + std::strerror(errno);
    return false;
  }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  bool read_line(std::string* line) {
    for (;;) {
      size_t eol = buf_.find("\r\n", start_);
      if (eol != std::string::npos) {
        line->assign(buf_, start_, eol - start_);
        start_ = eol + 2;
        if (start_ == buf_.size()) {
          buf_.clear();
          start_ = 0;
        }
        return true;
      }
      char tmp[4096];
      ssize_t n = recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // Reads a whole (possibly multi-line) reply; *reply holds all its lines.
  bool read_reply(std::string* reply) {
    reply->clear();
    std::string line;
    for (;;) {
      if (!read_line(&line)) return false;
      reply->append(line).append("\n");
      if (line.size() < 4 || line[3] != '-') return true;
    }
  }

  int fd_ = -1;
  bool pipelining_ = false;
  std::string buf_;
  size_t start_ = 0;
};

// Headers plus 76-column body lines up to `size` bytes, then the terminator.
std::string make_body(long size, const std::string& campaign = "") {
  std::string msg =
      "From: <bench@bench.test>\r\nTo: <rcpt@example.test>\r\n"
      "Subject: latency bench\r\n";
  if (!campaign.empty()) msg += "X-Campaign-ID: " + campaign + "\r\n";
  msg += "\r\n";
  const std::string line(76, 'x');
  while (static_cast<long>(msg.size()) < size) msg += line + "\r\n";
  msg += ".\r\n";  // the body ends with CRLF, so this makes "\r\n.\r\n"
  return msg;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t idx = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(idx, sorted.size() - 1)];
}

bool parse(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--host")
      opt->host = v;
    else if (a == "--port")
      opt->port = std::atoi(v);
    else if (a == "--connections")
      opt->connections = std::atoi(v);
    else if (a == "--rate")
      opt->rate = std::atof(v);
    else if (a == "--messages")
      opt->messages = std::atol(v);
    else if (a == "--size")
      opt->size = std::atol(v);
    else if (a == "--campaigns")
      opt->campaigns = std::atol(v);
    else if (a == "--domains")
      opt->domains = std::atol(v);
    else if (a == "--domain-suffix")
      opt->domain_suffix = v;
    else
      return false;
  }
  return opt->port > 0 && opt->connections > 0 && opt->rate > 0 && opt->messages > 0 &&
         opt->size > 0 && opt->campaigns >= 0 && opt->domains >= 0 &&
         (opt->domains == 0) == opt->domain_suffix.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, &opt)) {
    std::fprintf(stderr,
                 "usage: %s --port P [--host 127.0.0.1] [--connections 50] [--rate 1000] "
                 "[--messages 10000] [--size 4096] [--campaigns N] "
                 "[--domains N --domain-suffix S]\n",
                 argv[0]);
    return 2;
  }
  std::vector<std::string> bodies;
  if (opt.campaigns == 0) bodies.push_back(make_body(opt.size));
  for (long i = 0; i < opt.campaigns; ++i)
    bodies.push_back(make_body(opt.size, "bench-" + std::to_string(i)));
  std::vector<std::vector<double>> latencies(static_cast<size_t>(opt.connections));
  std::vector<std::vector<double>> lateness(static_cast<size_t>(opt.connections));
  std::atomic<long> errors{0};
  std::mutex error_mu;
  std::string first_error;

  // Connect everyone first so that connection set-up is not in the figures.
  std::vector<Connection> conns(static_cast<size_t>(opt.connections));
  for (auto& c : conns) {
    std::string err;
    if (!c.open(opt, &err)) {
      std::fprintf(stderr, "smtp_latency_tool: %s\n", err.c_str());
      return 1;
    }
  }

  const auto t0 = Clock::now() + std::chrono::milliseconds(50);
  std::vector<std::thread> threads;
  for (int c = 0; c < opt.connections; ++c) {
    threads.emplace_back([&, c] {
      auto& mine = latencies[static_cast<size_t>(c)];
      auto& late = lateness[static_cast<size_t>(c)];
      for (long k = c; k < opt.messages; k += opt.connections) {
        const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(k) / opt.rate));
        std::this_thread::sleep_until(due);
        late.push_back(std::chrono::duration<double, std::milli>(Clock::now() - due).count());
        double ms = 0;
        std::string err;
        const std::string& body = bodies[static_cast<size_t>(k) % bodies.size()];
        const std::string rcpt = opt.domains == 0 ? std::string("RCPT TO:<rcpt@example.test>\r\n")
                                                  : "RCPT TO:<r" + std::to_string(k) + "@d" +
                                                        std::to_string(k % opt.domains) + "." +
                                                        opt.domain_suffix + ">\r\n";
        if (conns[static_cast<size_t>(c)].transaction(body, rcpt, &ms, &err)) {
          mine.push_back(ms);
        } else {
          errors.fetch_add(1);
          std::lock_guard lock(error_mu);
          if (first_error.empty()) first_error = err;
          return;  // the connection is in an unknown state
        }
      }
      conns[static_cast<size_t>(c)].quit();
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  std::vector<double> all, all_late;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  for (auto& v : lateness) all_late.insert(all_late.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  std::sort(all_late.begin(), all_late.end());
  const double achieved = static_cast<double>(all.size()) / seconds;

  std::fprintf(
      stderr,
      "sent %zu messages (%ld errors) in %.2f s: %.0f msgs/s (target %.0f); "
      "end-of-DATA->250 p50 %.3f ms, p99 %.3f ms, max %.3f ms; send lateness p99 %.3f ms\n",
      all.size(), errors.load(), seconds, achieved, opt.rate, percentile(all, 0.5),
      percentile(all, 0.99), all.empty() ? 0.0 : all.back(), percentile(all_late, 0.99));
  if (!first_error.empty()) std::fprintf(stderr, "first error: %s", first_error.c_str());
  std::printf(
      "{\"count\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"target_rate\":%.1f,"
      "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"late_p99_ms\":%.3f}\n",
      all.size(), errors.load(), seconds, achieved, opt.rate, percentile(all, 0.5),
      percentile(all, 0.9), percentile(all, 0.99), all.empty() ? 0.0 : all.back(),
      percentile(all_late, 0.99));
  return errors.load() == 0 ? 0 : 1;
}
