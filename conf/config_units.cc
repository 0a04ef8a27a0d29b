// conf/config_units.cc — durations, sizes, IP literals, socket addresses and
// CIDR networks as written in the config; ConfigError formatting.
#include "conf/config_units.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

namespace ringmail::conf {
namespace {

// Splits "123unit" into its decimal count and unit; false when the count is
// missing or does not fit in 64 bits.
bool split_count_and_unit(std::string_view text, uint64_t* count, std::string_view* unit) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, *count);
  if (ec != std::errc() || end != text.data() + digits) return false;
  *unit = text.substr(digits);
  return true;
}

bool multiply_fits(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (b != 0 && a > limit / b) return false;
  *out = a * b;
  return true;
}

const uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool prefix_equal(const uint8_t* a, const uint8_t* b, int prefix_bits) {
  int full = prefix_bits / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  int rest = prefix_bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool parse_port(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  uint64_t count = 0;
  std::string_view unit;
  if (!split_count_and_unit(text, &count, &unit)) return std::nullopt;
  uint64_t factor_ms = 0;
  if (unit == "ms") {
    factor_ms = 1;
  } else if (unit == "s") {
    factor_ms = 1000;
  } else if (unit == "m") {
    factor_ms = 60 * 1000;
  } else if (unit == "h") {
    factor_ms = 3600 * 1000;
  } else if (unit == "d") {
    factor_ms = 24ull * 3600 * 1000;
  } else {
    return std::nullopt;
  }
  uint64_t ms = 0;
  if (!multiply_fits(count, factor_ms, static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                     &ms)) {
    return std::nullopt;
  }
  return Duration(static_cast<int64_t>(ms));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  uint64_t count = 0;
  std::string_view unit;
  if (!split_count_and_unit(text, &count, &unit)) return std::nullopt;
  uint64_t factor = 0;
  if (unit.empty() || unit == "B") {
    factor = 1;
  } else if (unit == "KiB") {
    factor = 1ull << 10;
  } else if (unit == "MiB") {
    factor = 1ull << 20;
  } else if (unit == "GiB") {
    factor = 1ull << 30;
  } else if (unit == "TiB") {
    factor = 1ull << 40;
  } else {
    return std::nullopt;
  }
  uint64_t bytes = 0;
  if (!multiply_fits(count, factor, std::numeric_limits<uint64_t>::max(), &bytes)) {
    return std::nullopt;
  }
  return bytes;
}

std::optional<uint64_t> parse_size_rate(std::string_view text) {
  if (text == "0") return 0;
  constexpr std::string_view kPerSecond = "/s";
  if (text.size() <= kPerSecond.size() || !text.ends_with(kPerSecond)) return std::nullopt;
  return parse_size(text.substr(0, text.size() - kPerSecond.size()));
}

std::optional<IpAddress> parse_ip_address(std::string_view text) {
  // inet_pton needs a NUL-terminated string; IP literals are short.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buffer[INET6_ADDRSTRLEN] = {};
  std::memcpy(buffer, text.data(), text.size());
  IpAddress ip;
  ip.text = std::string(text);
  if (inet_pton(AF_INET, buffer, ip.bytes) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (inet_pton(AF_INET6, buffer, ip.bytes) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

std::optional<SocketAddress> parse_socket_address(std::string_view text,
                                                  const AddressOptions& options,
                                                  std::string* problem) {
  SocketAddress address;
  address.text = std::string(text);
  if (text.starts_with("unix:")) {
    if (!options.allow_unix) {
      *problem = "unix sockets are not allowed here; expected IPv4:port or [IPv6]:port";
      return std::nullopt;
    }
    std::string_view path = text.substr(5);
    if (path.empty() || path.front() != '/') {
      *problem = "expected unix:/absolute/path, got \"" + std::string(text) + "\"";
      return std::nullopt;
    }
    address.unix_path = std::string(path);
    return address;
  }

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      *problem = "missing ']' in \"" + std::string(text) + "\"";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *problem = "expected ':port' after ']' in \"" + std::string(text) + "\"";
        return std::nullopt;
      }
      port_text = rest.substr(1);
      has_port = true;
    }
    auto ip = parse_ip_address(host);
    if (!ip || ip->family != AF_INET6) {
      *problem = "\"" + std::string(host) + "\" is not an IPv6 address";
      return std::nullopt;
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      *problem = "IPv6 addresses need brackets: [" + std::string(text) + "]:port";
      return std::nullopt;
    }
    if (colon == std::string_view::npos) {
      host = text;
    } else {
      host = text.substr(0, colon);
      port_text = text.substr(colon + 1);
      has_port = true;
    }
    auto ip = parse_ip_address(host);
    if (!ip) {
      *problem =
          "\"" + std::string(host) + "\" is not an IP address (host names are not allowed here)";
      return std::nullopt;
    }
  }
  address.host = std::string(host);

  if (!has_port) {
    if (!options.default_port) {
      *problem = "missing port in \"" + std::string(text) + "\"; expected IPv4:port or [IPv6]:port";
      return std::nullopt;
    }
    address.port = *options.default_port;
    return address;
  }
  if (!parse_port(port_text, &address.port)) {
    *problem = "bad port \"" + std::string(port_text) + "\" (expected 1-65535)";
    return std::nullopt;
  }
  if (address.port == 0 && !options.allow_port_zero) {
    *problem = "port 0 is not allowed here";
    return std::nullopt;
  }
  return address;
}

std::optional<Network> parse_network(std::string_view text, std::string* problem,
                                     bool* host_bits_set) {
  if (host_bits_set) *host_bits_set = false;
  std::string_view host = text;
  std::optional<int> prefix;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    std::string_view prefix_text = text.substr(slash + 1);
    int value = -1;
    auto [end, ec] =
        std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), value);
    if (prefix_text.empty() || ec != std::errc() ||
        end != prefix_text.data() + prefix_text.size() || value < 0) {
      *problem = "bad prefix length in \"" + std::string(text) + "\"";
      return std::nullopt;
    }
    prefix = value;
  }
  auto ip = parse_ip_address(host);
  if (!ip) {
    *problem =
        "\"" + std::string(text) + "\" is not a network in CIDR form (like 10.0.0.0/8 or ::1/128)";
    return std::nullopt;
  }
  int max_prefix = ip->family == AF_INET ? 32 : 128;
  int length = prefix.value_or(max_prefix);
  if (length > max_prefix) {
    *problem = "prefix length " + std::to_string(length) + " is longer than " +
               std::to_string(max_prefix) + " in \"" + std::string(text) + "\"";
    return std::nullopt;
  }
  Network network;
  network.family = ip->family;
  network.prefix_length = length;
  network.text = std::string(text);
  std::memcpy(network.bytes, ip->bytes, sizeof network.bytes);
  int total_bytes = ip->family == AF_INET ? 4 : 16;
  for (int i = 0; i < total_bytes; ++i) {
    int bits_kept = std::clamp(length - i * 8, 0, 8);
    uint8_t mask = bits_kept == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits_kept));
    if ((network.bytes[i] & ~mask) != 0 && host_bits_set) *host_bits_set = true;
    network.bytes[i] &= mask;
  }
  return network;
}

bool Network::contains(int addr_family, const uint8_t* addr) const {
  if (addr_family == family) {
    return prefix_equal(bytes, addr, prefix_length);
  }
  if (family == AF_INET && addr_family == AF_INET6) {
    // ::ffff:a.b.c.d is how a dual-stack socket shows an IPv4 client.
    if (std::memcmp(addr, kV4MappedPrefix, sizeof kV4MappedPrefix) != 0) return false;
    return prefix_equal(bytes, addr + 12, prefix_length);
  }
  if (family == AF_INET6 && addr_family == AF_INET) {
    uint8_t mapped[16];
    std::memcpy(mapped, kV4MappedPrefix, sizeof kV4MappedPrefix);
    std::memcpy(mapped + 12, addr, 4);
    return prefix_equal(bytes, mapped, prefix_length);
  }
  return false;
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!key_path.empty()) out += key_path + ": ";
  out += problem;
  return out;
}

}  // namespace ringmail::conf
