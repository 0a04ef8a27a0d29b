// tests/support/test_milter_process.h — runs tests/milter/test_milter (a
// real libmilter milter) as a child process for the milter tests and the
// milter benchmark; killed when the object goes away (or with its parent).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace ringmail::test_support {

class TestMilterProcess {
 public:
  // connection: "inet:0@127.0.0.1" (a free port) or "unix:/path";
  // subset: start with -n (fewer protocol steps negotiated).
  TestMilterProcess(const std::string& binary, const std::string& connection, bool subset = false) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(fds[1], 1);
      if (subset) {
        ::execl(binary.c_str(), "test_milter", "-p", connection.c_str(), "-n",
                static_cast<char*>(nullptr));
      } else {
        ::execl(binary.c_str(), "test_milter", "-p", connection.c_str(),
                static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    ::close(fds[1]);
    // The milter prints "ready PORT" once it listens.
    std::string line;
    pollfd p{fds[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10000) > 0) {
      char buffer[64];
      ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
      if (n <= 0) break;
      line.append(buffer, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    if (line.rfind("ready ", 0) == 0) {
      ready_ = true;
      port_ = static_cast<uint16_t>(std::stoi(line.substr(6)));
    }
  }
  ~TestMilterProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  TestMilterProcess(const TestMilterProcess&) = delete;
  TestMilterProcess& operator=(const TestMilterProcess&) = delete;

  bool ready() const { return ready_; }
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
  uint16_t port_ = 0;
};

}  // namespace ringmail::test_support
