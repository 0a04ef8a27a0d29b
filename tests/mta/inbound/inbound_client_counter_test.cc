// Tests of the per-address connection counter behind
// limits.max_connections_per_ip: limits, release, and the /64 unit of IPv6.
#include "mta/inbound/inbound_client_counter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

namespace ringmail::mta {
namespace {

ClientKey key(const std::string& ip) {
  uint8_t bytes[16] = {};
  if (inet_pton(AF_INET, ip.c_str(), bytes) == 1) return client_key_of(AF_INET, bytes);
  EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), bytes), 1) << ip;
  return client_key_of(AF_INET6, bytes);
}

TEST(ClientConnectionCounter, RefusesPastTheLimitUntilReleased) {
  ClientConnectionCounter counter;
  const ClientKey a = key("192.0.2.1");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(counter.try_acquire(a, 3)) << i;
  EXPECT_FALSE(counter.try_acquire(a, 3));
  EXPECT_EQ(counter.count(a), 3u);
  EXPECT_TRUE(counter.try_acquire(key("192.0.2.2"), 3));  // another address is not affected
  counter.release(a);
  EXPECT_TRUE(counter.try_acquire(a, 3));
  EXPECT_FALSE(counter.try_acquire(a, 3));
}

TEST(ClientConnectionCounter, ZeroIsUnlimitedAndReleaseForgets) {
  ClientConnectionCounter counter;
  const ClientKey a = key("198.51.100.7");
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(counter.try_acquire(a, 0));
  for (int i = 0; i < 1000; ++i) counter.release(a);
  EXPECT_EQ(counter.count(a), 0u);
  counter.release(a);  // an extra release is harmless
  EXPECT_TRUE(counter.try_acquire(a, 1));
}

TEST(ClientConnectionCounter, KeysIpv6ByItsSlash64AndMappedIpv4AsIpv4) {
  struct Case {
    const char* a;
    const char* b;
    bool same;
  };
  const Case cases[] = {
      {"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
      {"2001:db8:1:2::1", "2001:db8:1:3::1", false},
      {"::ffff:192.0.2.1", "192.0.2.1", true},
      {"192.0.2.1", "192.0.2.2", false},
  };
  for (const Case& c : cases) EXPECT_EQ(key(c.a) == key(c.b), c.same) << c.a << " " << c.b;
  ClientConnectionCounter counter;
  EXPECT_TRUE(counter.try_acquire(key("2001:db8:1:2::1"), 1));
  EXPECT_FALSE(counter.try_acquire(key("2001:db8:1:2::2"), 1));
}

}  // namespace
}  // namespace ringmail::mta
