// tests/conf/config_units_test.cc — durations, sizes, addresses and CIDR
// networks as operators write them.
#include "conf/config_units.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "conf/config.h"

namespace ringmail::conf {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, Table) {
  struct Case {
    const char* text;
    std::optional<int64_t> ms;
  };
  const Case cases[] = {
      {"500ms", 500},
      {"30s", 30'000},
      {"5m", 300'000},
      {"4h", 14'400'000},
      {"5d", 432'000'000},
      {"0s", 0},
      {"1ms", 1},
      {"90m", 5'400'000},
      {"5x", std::nullopt},
      {"", std::nullopt},
      {"s", std::nullopt},
      {"30", std::nullopt},
      {"-5s", std::nullopt},
      {"5 s", std::nullopt},
      {"1.5h", std::nullopt},
      {"5S", std::nullopt},
      {"1h30m", std::nullopt},
      {"5sec", std::nullopt},
      {"99999999999999999999d", std::nullopt},
      {"9999999999999999d", std::nullopt},
  };
  for (const Case& c : cases) {
    auto got = parse_duration(c.text);
    if (c.ms) {
      ASSERT_TRUE(got.has_value()) << c.text;
      EXPECT_EQ(*got, milliseconds(*c.ms)) << c.text;
    } else {
      EXPECT_FALSE(got.has_value()) << c.text;
    }
  }
}

TEST(ParseSize, Table) {
  struct Case {
    const char* text;
    std::optional<uint64_t> bytes;
  };
  const Case cases[] = {
      {"512KiB", 512ull << 10},
      {"50MiB", 50ull << 20},
      {"16GiB", 16ull << 30},
      {"2TiB", 2ull << 40},
      {"4096", 4096},
      {"4096B", 4096},
      {"0", 0},
      {"50MB", std::nullopt},
      {"50mib", std::nullopt},
      {"MiB", std::nullopt},
      {"", std::nullopt},
      {"1.5GiB", std::nullopt},
      {"-1", std::nullopt},
      {"50 MiB", std::nullopt},
      {"99999999999TiB", std::nullopt},
      {"18446744073709551615", 18446744073709551615ull},
      {"18446744073709551616", std::nullopt},
  };
  for (const Case& c : cases) {
    auto got = parse_size(c.text);
    if (c.bytes) {
      ASSERT_TRUE(got.has_value()) << c.text;
      EXPECT_EQ(*got, *c.bytes) << c.text;
    } else {
      EXPECT_FALSE(got.has_value()) << c.text;
    }
  }
}

TEST(ParseSizeRate, Table) {
  struct Case {
    const char* text;
    std::optional<uint64_t> bytes_per_second;
  };
  const Case cases[] = {
      {"1KiB/s", 1024},
      {"512/s", 512},
      {"2MiB/s", 2ull << 20},
      {"0", 0},
      {"0/s", 0},
      {"1KiB", std::nullopt},
      {"/s", std::nullopt},
      {"1KiB/m", std::nullopt},
      {"1 KiB/s", std::nullopt},
      {"", std::nullopt},
  };
  for (const Case& c : cases) {
    auto got = parse_size_rate(c.text);
    EXPECT_EQ(got, c.bytes_per_second) << c.text;
  }
}

TEST(ParseSocketAddress, Table) {
  struct Case {
    const char* text;
    const char* host;  // nullptr: must fail
    uint16_t port;
  };
  const Case cases[] = {
      {"0.0.0.0:587", "0.0.0.0", 587},
      {"127.0.0.1:25", "127.0.0.1", 25},
      {"[::1]:587", "::1", 587},
      {"[2001:db8::5]:2525", "2001:db8::5", 2525},
      {"127.0.0.1:65535", "127.0.0.1", 65535},
      {"1.2.3.4", nullptr, 0},
      {"[::1]:99999", nullptr, 0},
      {"[::1]", nullptr, 0},
      {"::1:25", nullptr, 0},
      {"mail.example.test:25", nullptr, 0},
      {"localhost:25", nullptr, 0},
      {"1.2.3.4:", nullptr, 0},
      {"1.2.3.4:x", nullptr, 0},
      {"1.2.3.4:0", nullptr, 0},
      {"256.1.1.1:25", nullptr, 0},
      {"[1.2.3.4]:25", nullptr, 0},
      {"[::1:25", nullptr, 0},
      {"unix:/run/milter.sock", nullptr, 0},
      {"", nullptr, 0},
  };
  for (const Case& c : cases) {
    std::string problem;
    auto got = parse_socket_address(c.text, AddressOptions{}, &problem);
    if (c.host) {
      ASSERT_TRUE(got.has_value()) << c.text << ": " << problem;
      EXPECT_EQ(got->host, c.host) << c.text;
      EXPECT_EQ(got->port, c.port) << c.text;
      EXPECT_EQ(got->text, c.text);
    } else {
      EXPECT_FALSE(got.has_value()) << c.text;
      EXPECT_FALSE(problem.empty()) << c.text;
    }
  }
}

TEST(ParseSocketAddress, Options) {
  std::string problem;
  AddressOptions unix_ok;
  unix_ok.allow_unix = true;
  auto milter = parse_socket_address("unix:/run/milter.sock", unix_ok, &problem);
  ASSERT_TRUE(milter.has_value()) << problem;
  EXPECT_EQ(milter->unix_path, "/run/milter.sock");
  EXPECT_FALSE(parse_socket_address("unix:relative.sock", unix_ok, &problem));

  AddressOptions any_port;
  any_port.allow_port_zero = true;
  auto listener = parse_socket_address("127.0.0.1:0", any_port, &problem);
  ASSERT_TRUE(listener.has_value()) << problem;
  EXPECT_EQ(listener->port, 0);

  AddressOptions dns;
  dns.default_port = 53;
  auto nameserver = parse_socket_address("[::1]", dns, &problem);
  ASSERT_TRUE(nameserver.has_value()) << problem;
  EXPECT_EQ(nameserver->port, 53);
}

struct Ip {
  int family;
  uint8_t bytes[16];
};

Ip ip(const char* text) {
  Ip out{};
  if (inet_pton(AF_INET, text, out.bytes) == 1) {
    out.family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text, out.bytes), 1) << text;
    out.family = AF_INET6;
  }
  return out;
}

TEST(NetworkContains, Table) {
  struct Case {
    const char* network;
    const char* address;
    bool inside;
  };
  const Case cases[] = {
      // IPv4
      {"127.0.0.0/8", "127.0.0.1", true},
      {"127.0.0.0/8", "127.255.255.255", true},
      {"127.0.0.0/8", "128.0.0.1", false},
      {"10.1.2.0/23", "10.1.3.200", true},
      {"10.1.2.0/23", "10.1.4.1", false},
      {"192.0.2.7/32", "192.0.2.7", true},
      {"192.0.2.7", "192.0.2.8", false},
      {"0.0.0.0/0", "203.0.113.9", true},
      {"172.16.0.0/12", "172.31.255.1", true},
      {"172.16.0.0/12", "172.32.0.1", false},
      // IPv6
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"2001:db8::/32", "2001:db8:ffff::1", true},
      {"2001:db8::/32", "2001:db9::1", false},
      {"2001:db8:0:8000::/49", "2001:db8:0:ffff::1", true},
      {"2001:db8:0:8000::/49", "2001:db8:0:7fff::1", false},
      {"::/0", "fe80::1", true},
      // IPv4-mapped IPv6 clients match IPv4 networks, and the reverse
      {"127.0.0.0/8", "::ffff:127.0.0.1", true},
      {"127.0.0.0/8", "::ffff:10.0.0.1", false},
      {"10.0.0.0/8", "::10.0.0.1", false},
      {"::ffff:0:0/96", "198.51.100.3", true},
      {"::1/128", "127.0.0.1", false},
      {"0.0.0.0/0", "2001:db8::1", false},
  };
  for (const Case& c : cases) {
    std::string problem;
    auto network = parse_network(c.network, &problem);
    ASSERT_TRUE(network.has_value()) << c.network << ": " << problem;
    Ip address = ip(c.address);
    EXPECT_EQ(network->contains(address.family, address.bytes), c.inside)
        << c.network << " contains " << c.address;
  }
}

TEST(ParseNetwork, RejectsAndNormalizes) {
  for (const char* bad : {"10.0.0.0/33", "::1/129", "example.org/24", "10.0.0.0/", "10.0.0.0/x",
                          "10.0.0.0/-1", "10.0.0/8", "", "/8"}) {
    std::string problem;
    EXPECT_FALSE(parse_network(bad, &problem).has_value()) << bad;
    EXPECT_FALSE(problem.empty()) << bad;
  }
  std::string problem;
  bool host_bits = false;
  auto network = parse_network("192.168.1.77/24", &problem, &host_bits);
  ASSERT_TRUE(network.has_value());
  EXPECT_TRUE(host_bits);
  EXPECT_EQ(network->bytes[3], 0);
  EXPECT_EQ(network->prefix_length, 24);
  auto host = parse_network("2001:db8::1", &problem, &host_bits);
  ASSERT_TRUE(host.has_value());
  EXPECT_FALSE(host_bits);
  EXPECT_EQ(host->prefix_length, 128);
}

TEST(ConfigErrorText, Formats) {
  EXPECT_EQ((ConfigError{"ringmail.yaml", 12, "listeners[1].address", "missing port"}).to_string(),
            "ringmail.yaml:12: listeners[1].address: missing port");
  EXPECT_EQ((ConfigError{"ringmail.yaml", 3, "", "YAML syntax error: x"}).to_string(),
            "ringmail.yaml:3: YAML syntax error: x");
  EXPECT_EQ((ConfigError{"ringmail.yaml", 0, "", "cannot read"}).to_string(),
            "ringmail.yaml: cannot read");
}

}  // namespace
}  // namespace ringmail::conf
