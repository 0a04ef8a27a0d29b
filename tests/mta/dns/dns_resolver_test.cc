// Tests for mta/dns_resolver against a real dnsmasq on a loopback port
// (tests/support/dnsmasq_process.h): MX ordering and addresses, sites, the
// implicit MX, null MX, NXDOMAIN, hosts without addresses, temporary
// failures from a refusing, a closed and a silent nameserver, TTLs and the
// cache, coalescing of concurrent requests, and stop() with a query in
// flight; TXT lookups (records joined from their strings, NODATA,
// NXDOMAIN, refused, invalid names).
#include "mta/dns/dns_resolver.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/dnsmasq_process.h"

namespace ringmail::mta {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Status = MxResolution::Status;
using test_support::DnsmasqProcess;
using namespace std::chrono_literals;

conf::SocketAddress loopback_nameserver(uint16_t port) {
  conf::SocketAddress address;
  address.host = "127.0.0.1";
  address.port = port;
  address.text = "127.0.0.1:" + std::to_string(port);
  return address;
}

DnsResolverOptions options_for(uint16_t port) {
  DnsResolverOptions options;
  options.nameservers = {loopback_nameserver(port)};
  options.query_timeout = 1s;
  options.tries = 2;
  return options;
}

std::unique_ptr<DnsResolver> make_resolver(DnsResolverOptions options) {
  std::string error;
  std::unique_ptr<DnsResolver> resolver = DnsResolver::create(std::move(options), &error);
  EXPECT_NE(resolver, nullptr) << error;
  return resolver;
}

// Waits for the answer; the promise outlives a test that gave up on it.
template <class Result, class Ask>
Result wait_for_answer(const std::string& name, Ask ask) {
  auto promise = std::make_shared<std::promise<Result>>();
  std::future<Result> future = promise->get_future();
  ask([promise](const Result& result) { promise->set_value(result); });
  if (future.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "no answer for " << name;
    return {};
  }
  return future.get();
}

MxResolution resolve(DnsResolver& resolver, const std::string& domain) {
  return wait_for_answer<MxResolution>(
      domain, [&](DnsResolver::Callback done) { resolver.resolve_mx(domain, std::move(done)); });
}

TxtResolution resolve_txt(DnsResolver& resolver, const std::string& name) {
  return wait_for_answer<TxtResolution>(
      name, [&](DnsResolver::TxtCallback done) { resolver.resolve_txt(name, std::move(done)); });
}

std::vector<std::string> names_of(const MxResolution& resolution) {
  std::vector<std::string> names;
  for (const MxHost& host : resolution.hosts) names.push_back(host.name);
  return names;
}

// One authoritative zone "test" for the whole suite: SOA (TTL and MINIMUM
// 77) in negative answers, REFUSED for names outside the zone.
class DnsResolverTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> zone = {
        "--auth-server=ns.test,127.0.0.1",
        "--auth-zone=test",
        "--auth-ttl=77",
        "--mx-host=two.test,mx1.hosting.test,10",
        "--mx-host=two.test,mx2.hosting.test,20",
        "--mx-host=other.test,mx2.hosting.test,20",
        "--mx-host=other.test,mx1.hosting.test,10",
        "--host-record=mx1.hosting.test,127.0.0.2",
        "--host-record=mx2.hosting.test,127.0.0.3,::1",
        "--host-record=implicit.test,127.0.0.4,::2",
        "--dns-rr=null.test,15,000000",
        "--mx-host=nulldot.test,.,0",
        "--mx-host=dangling.test,ghost.test,10",
        "--mx-host=partial.test,ghost.test,5",
        "--mx-host=partial.test,mx1.hosting.test,10",
        "--txt-record=textonly.test,no mail here",
        "--txt-record=spf.test,v=spf1 -all",
        "--txt-record=spf.test,google-site-verification=abc",
        // Two character-strings in one record, as long DKIM keys are published.
        "--txt-record=s1._domainkey.long.test,v=DKIM1; k=rsa; p=AAAA,BBBB",
    };
    for (int i = 0; i < 33; ++i) {
      std::string host = "mx" + std::to_string(100 + i) + ".many.test";
      zone.push_back("--mx-host=many.test," + host + ",10");
      zone.push_back("--host-record=" + host + ",127.0.1." + std::to_string(i + 1));
    }
    for (int i = 1; i <= 20; ++i)
      zone.push_back("--host-record=big.test,127.0.2." + std::to_string(i));
    dnsmasq_ = new DnsmasqProcess(zone);
  }
  static void TearDownTestSuite() {
    delete dnsmasq_;
    dnsmasq_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(dnsmasq_->ready()) << dnsmasq_->log();
    resolver_ = make_resolver(options_for(dnsmasq_->port()));
    ASSERT_NE(resolver_, nullptr);
  }

  static DnsmasqProcess* dnsmasq_;
  std::unique_ptr<DnsResolver> resolver_;
};

DnsmasqProcess* DnsResolverTest::dnsmasq_ = nullptr;

TEST_F(DnsResolverTest, MxHostsByPreferenceWithTheirAddresses) {
  MxResolution result = resolve(*resolver_, "two.test");
  ASSERT_EQ(result.status, Status::ok) << result.error;
  EXPECT_EQ(result.domain, "two.test");
  EXPECT_EQ(result.error, "");
  ASSERT_EQ(result.hosts.size(), 2u);
  EXPECT_EQ(result.hosts[0].name, "mx1.hosting.test");
  EXPECT_EQ(result.hosts[0].preference, 10);
  EXPECT_THAT(result.hosts[0].addresses, ElementsAre("127.0.0.2"));
  EXPECT_EQ(result.hosts[1].name, "mx2.hosting.test");
  EXPECT_EQ(result.hosts[1].preference, 20);
  EXPECT_THAT(result.hosts[1].addresses, ElementsAre("127.0.0.3", "::1"));
  EXPECT_EQ(result.site, "mx1.hosting.test,mx2.hosting.test");
  EXPECT_EQ(result.ttl_seconds, 77u);
  EXPECT_EQ(resolver_->queries_sent(), 5u);  // MX, then A and AAAA of both hosts
}

TEST_F(DnsResolverTest, DomainsWithTheSameMxHostsShareOneSite) {
  MxResolution two = resolve(*resolver_, "two.test");
  MxResolution other = resolve(*resolver_, "other.test");
  ASSERT_EQ(other.status, Status::ok) << other.error;
  EXPECT_EQ(other.site, two.site);
  EXPECT_EQ(names_of(other), names_of(two));
}

TEST_F(DnsResolverTest, DomainIsAskedCaseInsensitivelyAndAbsolute) {
  MxResolution result = resolve(*resolver_, "TWO.Test.");
  ASSERT_EQ(result.status, Status::ok) << result.error;
  EXPECT_EQ(result.domain, "two.test");
  EXPECT_EQ(result.site, "mx1.hosting.test,mx2.hosting.test");
}

TEST_F(DnsResolverTest, AddressWithoutMxIsTheImplicitMx) {
  MxResolution result = resolve(*resolver_, "implicit.test");
  ASSERT_EQ(result.status, Status::ok) << result.error;
  ASSERT_EQ(result.hosts.size(), 1u);
  EXPECT_EQ(result.hosts[0].name, "implicit.test");
  EXPECT_EQ(result.hosts[0].preference, 0);
  EXPECT_THAT(result.hosts[0].addresses, ElementsAre("127.0.0.4", "::2"));
  EXPECT_EQ(result.site, "implicit.test");
}

TEST_F(DnsResolverTest, NullMxAcceptsNoMail) {
  for (const char* domain : {"null.test", "nulldot.test"}) {
    MxResolution result = resolve(*resolver_, domain);
    EXPECT_EQ(result.status, Status::null_mx) << domain << ": " << result.error;
    EXPECT_THAT(result.error, HasSubstr("null MX"));
    EXPECT_TRUE(result.hosts.empty());
    EXPECT_EQ(result.site, "");
  }
  EXPECT_EQ(resolver_->queries_sent(), 2u);  // no address lookups for "."
}

TEST_F(DnsResolverTest, NxdomainIsNoDomainCachedForTheSoaMinimum) {
  MxResolution result = resolve(*resolver_, "missing.test");
  EXPECT_EQ(result.status, Status::no_domain) << result.error;
  EXPECT_THAT(result.error, HasSubstr("NXDOMAIN"));
  EXPECT_EQ(result.site, "");
  EXPECT_EQ(result.ttl_seconds, 77u);
}

TEST_F(DnsResolverTest, MxHostWithoutAddressIsNoHosts) {
  MxResolution result = resolve(*resolver_, "dangling.test");
  EXPECT_EQ(result.status, Status::no_hosts) << result.error;
  EXPECT_TRUE(result.hosts.empty());
  EXPECT_EQ(result.site, "");
  EXPECT_EQ(result.ttl_seconds, 77u);
}

TEST_F(DnsResolverTest, NeitherMxNorAddressIsNoHosts) {
  MxResolution result = resolve(*resolver_, "textonly.test");
  EXPECT_EQ(result.status, Status::no_hosts) << result.error;
  EXPECT_THAT(result.error, HasSubstr("no MX record and no address"));
}

TEST_F(DnsResolverTest, HostsWithoutAddressAreDroppedButStayInTheSite) {
  MxResolution result = resolve(*resolver_, "partial.test");
  ASSERT_EQ(result.status, Status::ok) << result.error;
  EXPECT_THAT(names_of(result), ElementsAre("mx1.hosting.test"));
  EXPECT_EQ(result.site, "ghost.test,mx1.hosting.test");
}

TEST_F(DnsResolverTest, AtMost32HostsAnd16AddressesPerHost) {
  MxResolution many = resolve(*resolver_, "many.test");
  ASSERT_EQ(many.status, Status::ok) << many.error;
  ASSERT_EQ(many.hosts.size(), 32u);
  EXPECT_EQ(many.hosts.front().name, "mx100.many.test");
  EXPECT_EQ(many.hosts.back().name, "mx131.many.test");  // by name within one preference

  MxResolution big = resolve(*resolver_, "big.test");
  ASSERT_EQ(big.status, Status::ok) << big.error;
  ASSERT_EQ(big.hosts.size(), 1u);
  EXPECT_EQ(big.hosts[0].addresses.size(), 16u);
}

TEST_F(DnsResolverTest, RefusedIsTemporary) {
  MxResolution result = resolve(*resolver_, "example.com");  // outside the zone
  EXPECT_EQ(result.status, Status::temporary) << result.error;
  EXPECT_THAT(result.error, HasSubstr("example.com"));
  EXPECT_EQ(result.ttl_seconds, 30u);
}

TEST_F(DnsResolverTest, InvalidDomainIsNoDomainWithoutAQuery) {
  for (const char* domain : {"", "a..b", "bad domain.test", "x,y.test", "."}) {
    MxResolution result = resolve(*resolver_, domain);
    EXPECT_EQ(result.status, Status::no_domain) << '"' << domain << '"';
  }
  EXPECT_EQ(resolve(*resolver_, std::string(300, 'a')).status, Status::no_domain);
  EXPECT_EQ(resolver_->queries_sent(), 0u);
}

TEST_F(DnsResolverTest, SecondResolutionIsACacheHit) {
  MxResolution first = resolve(*resolver_, "two.test");
  uint64_t queries = resolver_->queries_sent();
  EXPECT_EQ(resolver_->cache_hits(), 0u);

  MxResolution second = resolve(*resolver_, "two.test");
  EXPECT_EQ(resolver_->queries_sent(), queries);
  EXPECT_EQ(resolver_->cache_hits(), 1u);
  EXPECT_EQ(second.status, Status::ok);
  EXPECT_EQ(second.site, first.site);
  EXPECT_EQ(names_of(second), names_of(first));
  EXPECT_LE(second.ttl_seconds, 77u);
  EXPECT_GT(second.ttl_seconds, 70u);

  // Negative answers are cached too.
  resolve(*resolver_, "missing.test");
  uint64_t after_miss = resolver_->queries_sent();
  EXPECT_EQ(resolve(*resolver_, "missing.test").status, Status::no_domain);
  EXPECT_EQ(resolver_->queries_sent(), after_miss);
  EXPECT_EQ(resolver_->cache_hits(), 2u);

  resolver_->clear_cache();
  EXPECT_EQ(resolve(*resolver_, "two.test").status, Status::ok);
  EXPECT_EQ(resolver_->queries_sent(), after_miss + 5);
  EXPECT_EQ(resolver_->cache_hits(), 2u);
}

TEST_F(DnsResolverTest, CacheKeepsAtMostMaxEntries) {
  DnsResolverOptions options = options_for(dnsmasq_->port());
  options.max_cache_entries = 1;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);
  resolve(*resolver, "two.test");
  resolve(*resolver, "implicit.test");  // evicts two.test
  uint64_t queries = resolver->queries_sent();
  resolve(*resolver, "two.test");
  EXPECT_EQ(resolver->queries_sent(), queries + 5);
  EXPECT_EQ(resolver->cache_hits(), 0u);
  resolve(*resolver, "two.test");
  EXPECT_EQ(resolver->cache_hits(), 1u);
}

TEST_F(DnsResolverTest, CacheTtlIsCappedByMaxCacheTtl) {
  DnsResolverOptions options = options_for(dnsmasq_->port());
  options.max_cache_ttl_seconds = 20;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);
  EXPECT_EQ(resolve(*resolver, "two.test").ttl_seconds, 20u);
  EXPECT_EQ(resolve(*resolver, "missing.test").ttl_seconds, 20u);
}

TEST_F(DnsResolverTest, ConcurrentRequestsForOneDomainShareOneLookup) {
  resolve(*resolver_, "two.test");
  uint64_t queries = resolver_->queries_sent();

  // Hold the resolver thread in a (cached) callback while the requests
  // queue up, so that they all arrive before any answer can.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  resolver_->resolve_mx("two.test", [released](const MxResolution&) { released.wait(); });
  constexpr int kRequests = 8;
  std::vector<std::shared_ptr<std::promise<MxResolution>>> answers;
  for (int i = 0; i < kRequests; ++i) {
    auto promise = std::make_shared<std::promise<MxResolution>>();
    answers.push_back(promise);
    resolver_->resolve_mx("other.test",
                          [promise](const MxResolution& result) { promise->set_value(result); });
  }
  release.set_value();
  for (auto& promise : answers) {
    std::future<MxResolution> future = promise->get_future();
    ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
    MxResolution result = future.get();
    EXPECT_EQ(result.status, Status::ok) << result.error;
    EXPECT_EQ(result.site, "mx1.hosting.test,mx2.hosting.test");
  }
  EXPECT_EQ(resolver_->queries_sent(), queries + 5);  // one lookup of other.test
}

TEST_F(DnsResolverTest, CallbacksRunOnTheResolverThread) {
  std::thread::id first_thread;
  std::thread::id cached_thread;
  auto done = std::make_shared<std::promise<void>>();
  resolver_->resolve_mx("two.test", [&](const MxResolution&) {
    first_thread = std::this_thread::get_id();
    resolver_->resolve_mx("two.test", [&, done](const MxResolution&) {
      cached_thread = std::this_thread::get_id();
      done->set_value();
    });
  });
  ASSERT_EQ(done->get_future().wait_for(10s), std::future_status::ready);
  EXPECT_NE(first_thread, std::this_thread::get_id());
  EXPECT_EQ(cached_thread, first_thread);
}

// A local, non-authoritative domain: per-record TTLs, NXDOMAIN without SOA.
TEST(DnsResolverTtl, SmallestTtlAndNegativeTtlWithoutSoa) {
  DnsmasqProcess dnsmasq({"--local=/ttl.test/", "--local-ttl=60",
                          "--mx-host=ttl.test,mx.ttl.test,5",
                          "--host-record=mx.ttl.test,127.0.0.5,::5,30"});
  ASSERT_TRUE(dnsmasq.ready()) << dnsmasq.log();
  DnsResolverOptions options = options_for(dnsmasq.port());
  options.negative_ttl_seconds = 123;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);

  MxResolution result = resolve(*resolver, "ttl.test");
  ASSERT_EQ(result.status, Status::ok) << result.error;
  EXPECT_THAT(result.hosts[0].addresses, ElementsAre("127.0.0.5", "::5"));
  EXPECT_EQ(result.ttl_seconds, 30u);

  MxResolution missing = resolve(*resolver, "missing.ttl.test");
  EXPECT_EQ(missing.status, Status::no_domain) << missing.error;
  EXPECT_EQ(missing.ttl_seconds, 123u);
}

TEST(DnsResolverFailure, ClosedNameserverPortIsTemporaryAndCachedBriefly) {
  DnsResolverOptions options = options_for(DnsmasqProcess::free_port());
  options.query_timeout = 300ms;
  options.tries = 1;
  options.temporary_ttl_seconds = 7;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);
  auto started = std::chrono::steady_clock::now();
  MxResolution result = resolve(*resolver, "example.test");
  EXPECT_EQ(result.status, Status::temporary);
  EXPECT_THAT(result.error, HasSubstr("example.test"));
  EXPECT_EQ(result.ttl_seconds, 7u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);

  uint64_t queries = resolver->queries_sent();
  EXPECT_EQ(resolve(*resolver, "example.test").status, Status::temporary);
  EXPECT_EQ(resolver->queries_sent(), queries);
  EXPECT_EQ(resolver->cache_hits(), 1u);
}

// A UDP socket that receives queries and never answers.
class SilentNameserver {
 public:
  SilentNameserver() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentNameserver() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST(DnsResolverFailure, TimeoutIsTemporary) {
  SilentNameserver silent;
  DnsResolverOptions options = options_for(silent.port());
  options.query_timeout = 300ms;
  options.tries = 1;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);
  auto started = std::chrono::steady_clock::now();
  MxResolution result = resolve(*resolver, "example.test");
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(result.status, Status::temporary);
  EXPECT_THAT(result.error, HasSubstr("Timeout"));
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);
}

TEST(DnsResolverFailure, StopCancelsPendingLookups) {
  SilentNameserver silent;
  DnsResolverOptions options = options_for(silent.port());
  options.query_timeout = 10s;
  std::unique_ptr<DnsResolver> resolver = make_resolver(options);
  ASSERT_NE(resolver, nullptr);
  auto promise = std::make_shared<std::promise<MxResolution>>();
  resolver->resolve_mx("pending.test",
                       [promise](const MxResolution& result) { promise->set_value(result); });
  for (int i = 0; i < 500 && resolver->queries_sent() == 0; ++i) std::this_thread::sleep_for(2ms);
  ASSERT_EQ(resolver->queries_sent(), 1u);

  auto started = std::chrono::steady_clock::now();
  resolver->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
  std::future<MxResolution> future = promise->get_future();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(future.get().status, Status::temporary);

  // After stop(), at once on the caller's thread.
  bool called = false;
  resolver->resolve_mx("late.test", [&](const MxResolution& result) {
    called = true;
    EXPECT_EQ(result.status, Status::temporary);
    EXPECT_EQ(result.error, "DNS resolver stopped");
  });
  EXPECT_TRUE(called);
  resolver->stop();  // idempotent
}

TEST(DnsResolverCreate, RejectsNameserversThatAreNotIpAddresses) {
  DnsResolverOptions options;
  conf::SocketAddress name;
  name.host = "dns.example";
  name.port = 53;
  name.text = "dns.example:53";
  options.nameservers = {name};
  std::string error;
  EXPECT_EQ(DnsResolver::create(options, &error), nullptr);
  EXPECT_THAT(error, HasSubstr("dns.example:53"));
}

TEST(DnsResolverCreate, DefaultsToResolvConfAndIpv6Nameservers) {
  std::string error;
  EXPECT_NE(DnsResolver::create(DnsResolverOptions{}, &error), nullptr) << error;
  DnsResolverOptions options;
  conf::SocketAddress ipv6;
  ipv6.host = "::1";
  ipv6.port = 5353;
  ipv6.text = "[::1]:5353";
  options.nameservers = {ipv6, loopback_nameserver(53)};
  EXPECT_NE(DnsResolver::create(options, &error), nullptr) << error;
}

TEST(DnsResolverShuffle, OrdersByPreferenceAndShufflesWithinOne) {
  std::mt19937_64 random(42);
  std::set<std::string> firsts;
  for (int round = 0; round < 200; ++round) {
    std::vector<MxHost> hosts = {
        {"c", 20, {}}, {"a", 10, {}}, {"b", 10, {}}, {"d", 30, {}}, {"e", 10, {}}};
    shuffle_equal_preferences(hosts, random);
    ASSERT_EQ(hosts.size(), 5u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(hosts[i].preference, 10);
    EXPECT_EQ(hosts[3].name, "c");
    EXPECT_EQ(hosts[4].name, "d");
    firsts.insert(hosts[0].name);
  }
  EXPECT_EQ(firsts, (std::set<std::string>{"a", "b", "e"}));
}

TEST(DnsResolverStatus, ToString) {
  EXPECT_STREQ(to_string(Status::ok), "ok");
  EXPECT_STREQ(to_string(Status::null_mx), "null_mx");
  EXPECT_STREQ(to_string(Status::no_domain), "no_domain");
  EXPECT_STREQ(to_string(Status::no_hosts), "no_hosts");
  EXPECT_STREQ(to_string(Status::temporary), "temporary");
}

using TxtStatus = TxtResolution::Status;

TEST_F(DnsResolverTest, TxtRecordsOfAName) {
  TxtResolution result = resolve_txt(*resolver_, "SPF.test.");
  ASSERT_EQ(result.status, TxtStatus::ok) << result.error;
  EXPECT_EQ(result.name, "spf.test");
  std::multiset<std::string> records(result.records.begin(), result.records.end());
  EXPECT_THAT(records, ElementsAre("google-site-verification=abc", "v=spf1 -all"));
}

TEST_F(DnsResolverTest, TxtStringsOfOneRecordAreJoined) {
  TxtResolution result = resolve_txt(*resolver_, "s1._domainkey.long.test");
  ASSERT_EQ(result.status, TxtStatus::ok) << result.error;
  EXPECT_THAT(result.records, ElementsAre("v=DKIM1; k=rsa; p=AAAABBBB"));
}

TEST_F(DnsResolverTest, TxtNegativeAnswersAndFailures) {
  TxtResolution nodata = resolve_txt(*resolver_, "two.test");  // MX only
  EXPECT_EQ(nodata.status, TxtStatus::no_records) << nodata.error;
  EXPECT_TRUE(nodata.records.empty());
  EXPECT_EQ(resolve_txt(*resolver_, "_dmarc.nowhere.test").status, TxtStatus::no_domain);
  TxtResolution refused = resolve_txt(*resolver_, "example.com");  // outside the zone
  EXPECT_EQ(refused.status, TxtStatus::temporary);
  EXPECT_FALSE(refused.error.empty());
  uint64_t queries = resolver_->queries_sent();
  EXPECT_EQ(resolve_txt(*resolver_, "bad name.test").status, TxtStatus::no_domain);
  EXPECT_EQ(resolver_->queries_sent(), queries);
}

TEST_F(DnsResolverTest, TxtAfterStopIsTemporary) {
  resolver_->stop();
  TxtResolution result = resolve_txt(*resolver_, "spf.test");
  EXPECT_EQ(result.status, TxtStatus::temporary);
  EXPECT_EQ(result.error, "DNS resolver stopped");
}

}  // namespace
}  // namespace ringmail::mta
