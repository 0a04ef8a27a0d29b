// tests/support/dnsmasq_process.h — a real dnsmasq (Debian dnsmasq-base)
// as a child process serving test zones on 127.0.0.1 and a free port, for
// the resolver tests and for integration tests that need DNS. No upstream,
// no /etc/hosts, no config file: it knows only the records it is given.
// Killed when the object goes away (or with its parent).
//
// Useful record options (see dnsmasq(8)):
//   authoritative zone, SOA with TTL and MINIMUM = auth-ttl in negative
//   answers, REFUSED outside the zone (all record TTLs are auth-ttl):
//     --auth-server=ns.test,127.0.0.1 --auth-zone=test --auth-ttl=77
//   non-authoritative local domain, NXDOMAIN without SOA, per-record TTLs:
//     --local=/test/ --local-ttl=60
//   --mx-host=example.test,mx.example.test,10
//   --host-record=mx.example.test,127.0.0.2,::1[,ttl]
//   --dns-rr=null.test,15,000000           (null MX: preference 0, root)
//   --txt-record=name,text                 (a name with no MX and no address)
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace ringmail::test_support {

class DnsmasqProcess {
 public:
  static constexpr const char* kBinary = "/usr/sbin/dnsmasq";

  explicit DnsmasqProcess(std::vector<std::string> record_options)
      : record_options_(std::move(record_options)) {
    // A free port can be taken between the probe and dnsmasq's bind; then
    // dnsmasq exits at once and another port is tried.
    for (int attempt = 0; attempt < 5 && !ready_; ++attempt) start(free_port());
  }
  ~DnsmasqProcess() {
    kill_child();
    if (log_fd_ >= 0) ::close(log_fd_);
  }
  DnsmasqProcess(const DnsmasqProcess&) = delete;
  DnsmasqProcess& operator=(const DnsmasqProcess&) = delete;

  bool ready() const { return ready_; }
  uint16_t port() const { return port_; }
  // dnsmasq's own output (startup messages and errors), for failure messages.
  std::string log() const {
    std::string text;
    char buffer[4096];
    ssize_t n;
    off_t offset = 0;
    while (log_fd_ >= 0 && (n = ::pread(log_fd_, buffer, sizeof(buffer), offset)) > 0) {
      text.append(buffer, static_cast<size_t>(n));
      offset += n;
    }
    return text;
  }

  // Sends one query (A of "probe.invalid") to 127.0.0.1:port and says
  // whether any answer with the right id came back within timeout.
  static bool answers(uint16_t port, std::chrono::milliseconds timeout) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    std::mt19937 random(std::random_device{}());
    uint16_t id = static_cast<uint16_t>(random());
    std::string query = {
        static_cast<char>(id >> 8), static_cast<char>(id & 0xff), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    query += std::string("\5probe\7invalid\0", 15);
    query += std::string("\0\1\0\1", 4);
    sockaddr_in to = loopback(port);
    bool ok = false;
    if (::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
        static_cast<ssize_t>(query.size())) {
      auto deadline = std::chrono::steady_clock::now() + timeout;
      while (!ok) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
        unsigned char reply[512];
        ssize_t n = ::recv(fd, reply, sizeof(reply), 0);
        ok = n >= 12 && reply[0] == (id >> 8) && reply[1] == (id & 0xff);
      }
    }
    ::close(fd);
    return ok;
  }

  // A loopback port where nothing listens now (ICMP port unreachable).
  static uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(0);
    socklen_t length = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    ::close(fd);
    return ntohs(addr.sin_port);
  }

 private:
  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }

  void start(uint16_t port) {
    kill_child();
    if (log_fd_ >= 0) ::close(log_fd_);  // the log of the last attempt is enough
    log_fd_ = ::memfd_create("dnsmasq-log", MFD_CLOEXEC);
    // Run as whoever runs the tests: dnsmasq drops root to "nobody" otherwise.
    const passwd* user = ::getpwuid(::geteuid());
    std::vector<std::string> args = {
        kBinary,
        "--keep-in-foreground",
        "--log-facility=-",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--port=" + std::to_string(port),
        "--pid-file",
        "--user=" + std::string(user != nullptr ? user->pw_name : "root"),
    };
    args.insert(args.end(), record_options_.begin(), record_options_.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (log_fd_ >= 0) {
        ::dup2(log_fd_, 1);
        ::dup2(log_fd_, 2);
      }
      ::execv(kBinary, argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) return;
    // Ready when it answers a real query; gone when it exited (bad option,
    // port taken).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      if (answers(port, std::chrono::milliseconds(100))) {
        ready_ = true;
        port_ = port;
        return;
      }
    }
  }

  void kill_child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::vector<std::string> record_options_;
  pid_t pid_ = -1;
  int log_fd_ = -1;
  bool ready_ = false;
  uint16_t port_ = 0;
};

}  // namespace ringmail::test_support
