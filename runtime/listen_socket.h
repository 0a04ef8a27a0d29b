// runtime/listen_socket.h — IP literals to socket addresses, and TCP
// listening sockets, written once for the SMTP listeners, the admin server
// and the admin probe's client connection.
//
// Pure system calls, no state; any thread.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace ringmail::runtime {

// An IPv4 or IPv6 literal (no brackets) and a port; false when `ip` is not one.
bool socket_address(const std::string& ip, uint16_t port, sockaddr_storage* address,
                    socklen_t* length);

struct ListenOptions {
  int backlog = 4096;
  bool reuse_port = false;  // SO_REUSEPORT: several sockets (one per shard) on one port
};

// A bound, listening, close-on-exec TCP socket, or -1 with *error ("not an
// IP address", or the failing call's errno text, e.g. "Address already in
// use"). IPv6 sockets are IPv6-only.
int listen_tcp(const std::string& ip, uint16_t port, const ListenOptions& options,
               std::string* error);

// The port a socket is bound to (0 on error).
uint16_t bound_port(int fd);
// "ip:port" (or "[ip]:port" for IPv6) of `ip` and the port `fd` is bound
// to: a listener's address as logs and tests name it.
std::string bound_address(const std::string& ip, int fd);

}  // namespace ringmail::runtime
