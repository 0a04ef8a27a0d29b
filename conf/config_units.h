// conf/config_units.h — parsers for the small value syntaxes of the config:
// IP literals, socket addresses ("1.2.3.4:25", "[::1]:587", "unix:/path")
// and CIDR networks. parse_duration() and parse_size() are declared in
// conf/config.h; they and Network::contains() are defined beside these.
//
// Threads: pure functions, any thread. Network: they see operator input only
// (never peer data), but are safe on any string: bad text gives nullopt and
// a problem sentence, never an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace ringmail::conf {

// An IPv4 or IPv6 literal, bytes in network order.
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  std::string text;  // as written
};

// "192.0.2.1" or "2001:db8::1" (no brackets, no port, no zone). nullopt when
// the text is not an IP literal.
std::optional<IpAddress> parse_ip_address(std::string_view text);

struct AddressOptions {
  bool allow_unix = false;               // accept "unix:/absolute/path" (milters)
  bool allow_port_zero = false;          // listeners: port 0 = kernel-chosen port
  std::optional<uint16_t> default_port;  // used when the text has no port
};

// Parses "IPv4:port" or "[IPv6]:port" (or "unix:/path" when allowed). On
// failure returns nullopt and sets *problem to a sentence for the operator.
std::optional<SocketAddress> parse_socket_address(std::string_view text,
                                                  const AddressOptions& options,
                                                  std::string* problem);

// Parses "10.0.0.0/8", "::1/128"; a bare address means a host network (/32
// or /128). Host bits below the prefix are cleared; *host_bits_set tells the
// caller so that it can warn.
// Parses a size per second, "1KiB/s", "512/s", or "0" (no rate).
std::optional<uint64_t> parse_size_rate(std::string_view text);

std::optional<Network> parse_network(std::string_view text, std::string* problem,
                                     bool* host_bits_set = nullptr);

}  // namespace ringmail::conf
