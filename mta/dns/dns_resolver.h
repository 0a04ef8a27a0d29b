// mta/dns/dns_resolver.h — MX routing for outbound delivery, on c-ares.
//
// Owns: one c-ares channel driven by the resolver's own thread (poll on
// c-ares' sockets plus an eventfd for new requests), and a cache of
// resolutions by domain, kept for the records' TTL (negative answers too).
// resolve_mx() may be called from any thread; its callback runs on the
// resolver thread and must be cheap (post to the caller's loop).
// Concurrent requests for one domain share one lookup.
// resolve_txt() asks for a name's TXT records on the same channel and
// thread, uncached and uncoalesced: it serves one-shot checks
// (ringmaild --check-compliance), not delivery.
//
// What a resolution is (RFC 5321 §5.1, RFC 7505):
//   - MX records, ordered by preference, each host resolved to its A and
//     AAAA addresses;
//   - no MX record but an A/AAAA for the domain: the implicit MX (the
//     domain itself, preference 0);
//   - a null MX ("MX 0 .") : null_mx, the domain accepts no mail;
//   - NXDOMAIN, or neither MX nor address: no_domain / no_hosts;
//   - SERVFAIL, REFUSED, timeouts: temporary (the caller defers).
//
// SECURITY: DNS answers are untrusted input: names and counts are bounded,
// malformed answers are temporary failures, never a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "conf/config.h"

namespace ringmail::mta {

struct MxHost {
  std::string name;  // lower case, no trailing dot
  uint16_t preference = 0;
  std::vector<std::string> addresses;  // IPv4 and IPv6 literals; IPv4 first
  uint16_t port = 0;                   // 0: the site's (a failover smarthost names its own)
};

struct MxResolution {
  enum class Status {
    ok,         // hosts is not empty (every host has at least one address)
    null_mx,    // RFC 7505: bounce, BadDomain
    no_domain,  // NXDOMAIN: bounce, BadDomain
    no_hosts,   // the domain exists but has no MX and no address, or no MX host resolves: bounce
    temporary,  // SERVFAIL, REFUSED, timeout, malformed answer: defer, DNSFailure
  };
  Status status = Status::temporary;
  std::string domain;         // as asked, lower case
  std::vector<MxHost> hosts;  // by preference, then name (see shuffle_equal_preferences)
  // The site: the MX host set, lower-case host names sorted and joined by
  // ",", e.g. "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com";
  // for an implicit MX, the domain. "" unless ok. Domains hosted by one
  // provider share one site, and so one ready queue and one set of limits.
  std::string site;
  std::string error;  // human readable, for logs and DSNs, "" when ok
  // Seconds the answer may be cached (the smallest TTL involved; the
  // negative-caching TTL for negative answers).
  uint32_t ttl_seconds = 0;
};
const char* to_string(MxResolution::Status status);

// The TXT records of one name. Each record is its character-strings
// joined, as SPF (RFC 7208 3.3) and DKIM (RFC 6376 3.6.2.2) read them.
struct TxtResolution {
  enum class Status {
    ok,          // records is not empty
    no_records,  // the name exists but has no TXT record (NODATA)
    no_domain,   // NXDOMAIN, or a name that cannot be in DNS
    temporary,   // SERVFAIL, REFUSED, timeout, malformed answer
  };
  Status status = Status::temporary;
  std::string name;  // as asked, lower case
  std::vector<std::string> records;
  std::string error;  // human readable, "" when ok
};

struct DnsResolverOptions {
  // Empty: /etc/resolv.conf. Otherwise "IP:port" entries (config
  // delivery.dns.nameservers).
  std::vector<conf::SocketAddress> nameservers;
  std::chrono::milliseconds query_timeout{std::chrono::seconds(5)};
  int tries = 2;
  uint32_t max_cache_ttl_seconds = 3600;
  uint32_t negative_ttl_seconds = 300;  // NXDOMAIN / null MX / no hosts, when the SOA gives none
  uint32_t temporary_ttl_seconds = 30;  // SERVFAIL and timeouts are cached this briefly
  size_t max_cache_entries = 100000;
};

class DnsResolver {
 public:
  using Callback = std::function<void(const MxResolution&)>;
  using TxtCallback = std::function<void(const TxtResolution&)>;

  // Starts the resolver thread. Null with *error (one line) when c-ares
  // cannot be initialized or a nameserver is unusable.
  static std::unique_ptr<DnsResolver> create(DnsResolverOptions options, std::string* error);
  ~DnsResolver();  // stop()
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Any thread. `done` runs on the resolver thread (at once, on the
  // resolver thread, for a cached answer). After stop(), done is called
  // with a temporary failure.
  void resolve_mx(std::string domain, Callback done);
  // The same for TXT records; never cached. At most 64 records are kept.
  void resolve_txt(std::string name, TxtCallback done);
  // Forget every cached answer (reload).
  void clear_cache();
  // Cancels outstanding lookups (their callbacks get temporary) and joins
  // the thread. Idempotent.
  void stop();

  // For tests and metrics (any thread).
  uint64_t queries_sent() const;
  uint64_t cache_hits() const;

 private:
  struct Impl;
  explicit DnsResolver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Orders hosts for one connection attempt: by preference, with a random
// order among hosts of equal preference (RFC 5321 §5.1).
void shuffle_equal_preferences(std::vector<MxHost>& hosts, std::mt19937_64& random);

}  // namespace ringmail::mta
