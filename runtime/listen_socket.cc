#include "runtime/listen_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ringmail::runtime {

bool socket_address(const std::string& ip, uint16_t port, sockaddr_storage* address,
                    socklen_t* length) {
  *address = {};
  auto& sin = reinterpret_cast<sockaddr_in&>(*address);
  if (inet_pton(AF_INET, ip.c_str(), &sin.sin_addr) == 1) {
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    *length = sizeof sin;
    return true;
  }
  auto& sin6 = reinterpret_cast<sockaddr_in6&>(*address);
  if (inet_pton(AF_INET6, ip.c_str(), &sin6.sin6_addr) == 1) {
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    *length = sizeof sin6;
    return true;
  }
  return false;
}

int listen_tcp(const std::string& ip, uint16_t port, const ListenOptions& options,
               std::string* error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!socket_address(ip, port, &ss, &len)) {
    *error = "not an IP address";
    return -1;
  }
  const int family = ss.ss_family;
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (options.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(fd, options.backlog) != 0) {
    *error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                        : reinterpret_cast<sockaddr_in&>(ss).sin_port);
}

std::string bound_address(const std::string& ip, int fd) {
  const bool v6 = ip.find(':') != std::string::npos;
  return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(bound_port(fd));
}

}  // namespace ringmail::runtime
