// mta/dns/dns_resolver.cc — DnsResolver on one c-ares channel and its thread.
//
// Everything but the request queue, the stop flag and the counters belongs
// to the resolver thread: the channel, the lookups in flight and the cache.
// c-ares reports its sockets through ARES_OPT_SOCK_STATE_CB, so the loop
// polls exactly those (no FD_SETSIZE limit as with ares_fds, no 16-socket
// cap as with ares_getsock) plus an eventfd that resolve_mx() writes.
// Raw answers are read with glibc's ns_parserr only for TTLs (answer
// records, and the SOA of negative answers, RFC 2308).
#include "mta/dns/dns_resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ringmail::mta {

namespace {

constexpr size_t kMaxMxHosts = 32;
constexpr size_t kMaxAddressesPerHost = 16;
constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTxtRecords = 64;
constexpr uint32_t kNoTtl = std::numeric_limits<uint32_t>::max();

using Status = MxResolution::Status;
using Clock = std::chrono::steady_clock;

// Lower case, without the trailing dot. False for what cannot be a host
// name in DNS: empty or over-long names and labels, or bytes outside
// letters, digits, '-' and '_' (internationalized domains arrive as
// A-labels; a ',' would also break the site string).
bool normalize_name(std::string& name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.empty() || name.size() > kMaxNameLength - 2) return false;
  size_t label_length = 0;
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c == '.') {
      if (label_length == 0) return false;
      label_length = 0;
      continue;
    }
    bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!allowed || ++label_length > 63) return false;
  }
  return label_length > 0;
}

// A name that normalize_name() refused, for the error: cut, lower case.
std::string asked_name(const std::string& name) {
  std::string asked = name.substr(0, kMaxNameLength);
  std::transform(asked.begin(), asked.end(), asked.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return asked;
}

// RFC 2181 §8: a TTL with the top bit set is read as zero.
uint32_t sane_ttl(uint32_t ttl) { return ttl > 0x7fffffffu ? 0 : ttl; }

// The smallest TTL of the answer section; kNoTtl when there is none.
uint32_t answer_ttl(const unsigned char* abuf, int alen) {
  ns_msg msg;
  if (abuf == nullptr || alen <= 0 || ns_initparse(abuf, alen, &msg) != 0) return kNoTtl;
  uint32_t ttl = kNoTtl;
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) break;
    ttl = std::min(ttl, sane_ttl(ns_rr_ttl(rr)));
  }
  return ttl;
}

// RFC 2308 §5: a negative answer may be kept for min(SOA TTL, SOA MINIMUM)
// of the SOA in its authority section; nullopt without one.
std::optional<uint32_t> negative_answer_ttl(const unsigned char* abuf, int alen) {
  ns_msg msg;
  if (abuf == nullptr || alen <= 0 || ns_initparse(abuf, alen, &msg) != 0) return std::nullopt;
  for (int i = 0; i < ns_msg_count(msg, ns_s_ns); ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_ns, i, &rr) != 0) break;
    // Two names of at least one byte each, then five 32-bit fields.
    if (ns_rr_type(rr) != ns_t_soa || ns_rr_rdlen(rr) < 22) continue;
    const unsigned char* minimum = ns_rr_rdata(rr) + ns_rr_rdlen(rr) - 4;
    uint32_t value = (uint32_t{minimum[0]} << 24) | (uint32_t{minimum[1]} << 16) |
                     (uint32_t{minimum[2]} << 8) | uint32_t{minimum[3]};
    return std::min(sane_ttl(ns_rr_ttl(rr)), sane_ttl(value));
  }
  return std::nullopt;
}

bool is_temporary_status(int status) {
  return status != ARES_SUCCESS && status != ARES_ENODATA && status != ARES_ENOTFOUND;
}

// An MX resolution (done), or a TXT lookup (txt_done set).
struct Request {
  std::string domain;
  DnsResolver::Callback done;
  DnsResolver::TxtCallback txt_done = {};
};

struct HostLookup {
  std::string name;
  uint16_t preference = 0;
  std::vector<std::string> ipv4;
  std::vector<std::string> ipv6;
  bool temporary = false;  // an A or AAAA query failed temporarily
};

// One resolution in flight, shared by every request for its domain.
struct Lookup {
  std::string domain;
  std::vector<DnsResolver::Callback> waiters;
  uint64_t cache_generation = 0;
  // Queries not answered yet, plus one for every frame that may still start
  // queries; the lookup finishes when this reaches zero.
  int outstanding = 0;
  // Set when the MX answer alone decides (no_domain, null_mx, temporary).
  std::optional<Status> verdict;
  std::string error;
  bool implicit_mx = false;
  std::vector<HostLookup> hosts;
  std::string site;
  std::string host_error;  // the first temporary failure of an address query
  uint32_t ttl = kNoTtl;

  void note_ttl(uint32_t seconds) { ttl = std::min(ttl, seconds); }
};

}  // namespace

const char* to_string(MxResolution::Status status) {
  switch (status) {
    case Status::ok:
      return "ok";
    case Status::null_mx:
      return "null_mx";
    case Status::no_domain:
      return "no_domain";
    case Status::no_hosts:
      return "no_hosts";
    case Status::temporary:
      return "temporary";
  }
  return "unknown";
}

struct DnsResolver::Impl {
  explicit Impl(DnsResolverOptions resolver_options) : options(std::move(resolver_options)) {}
  ~Impl() {
    if (channel != nullptr) ares_destroy(channel);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  bool init(std::string* error);
  void run();
  void wake();

  // Resolver thread only, from here on.
  void handle_request(Request request);
  void start_txt_query(std::string name, DnsResolver::TxtCallback done);
  static void on_txt_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  std::optional<MxResolution> cached(const std::string& domain);
  void store(const MxResolution& resolution);
  void start_query(Lookup& lookup, int host, int type);
  static void on_answer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  void on_mx_answer(Lookup& lookup, int status, const unsigned char* abuf, int alen);
  void start_implicit_mx(Lookup& lookup, const unsigned char* abuf, int alen);
  void on_address_answer(Lookup& lookup, int host, int type, int status, const unsigned char* abuf,
                         int alen);
  void release(Lookup& lookup);
  MxResolution result_of(const Lookup& lookup) const;
  static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable);

  const DnsResolverOptions options;
  ares_channel channel = nullptr;
  int wake_fd = -1;
  std::thread thread;
  std::once_flag stop_once;

  std::mutex mutex;  // guards the four below
  std::vector<Request> requests;
  bool stopping = false;
  bool clear_requested = false;
  bool stopped = false;  // the thread no longer takes requests

  std::atomic<uint64_t> queries_sent{0};
  std::atomic<uint64_t> cache_hits{0};

  // Resolver thread state.
  std::unordered_map<ares_socket_t, short> sockets;  // poll events c-ares wants
  std::unordered_map<std::string, std::unique_ptr<Lookup>> in_flight;
  struct CacheEntry {
    MxResolution resolution;
    Clock::time_point expires;
    std::list<std::string>::iterator recency;
  };
  std::unordered_map<std::string, CacheEntry> cache;
  std::list<std::string> recency;  // most recently used first
  uint64_t cache_generation = 0;   // bumped by clear_cache()
  bool shutting_down = false;      // no new queries once cancelling

  // What an ares_query callback needs to find its place again.
  struct QueryContext {
    Impl* impl;
    Lookup* lookup;
    int host;  // index into lookup->hosts; -1 for the MX query
    int type;  // ns_t_mx, ns_t_a or ns_t_aaaa
  };
  struct TxtQuery {
    std::string name;
    DnsResolver::TxtCallback done;
  };
};

namespace {

MxResolution failed(std::string domain, Status status, std::string error, uint32_t ttl) {
  MxResolution resolution;
  resolution.status = status;
  resolution.domain = std::move(domain);
  resolution.error = std::move(error);
  resolution.ttl_seconds = ttl;
  return resolution;
}

TxtResolution failed_txt(std::string name, TxtResolution::Status status, std::string error) {
  TxtResolution resolution;
  resolution.status = status;
  resolution.name = std::move(name);
  resolution.error = std::move(error);
  return resolution;
}

// Answers a request that will not be looked up (the resolver stopped).
void refuse(Request& request, const char* why) {
  if (request.txt_done) {
    request.txt_done(failed_txt(request.domain, TxtResolution::Status::temporary, why));
  } else {
    request.done(failed(request.domain, Status::temporary, why, 0));
  }
}

std::string nameserver_list(const std::vector<conf::SocketAddress>& nameservers,
                            std::string* error) {
  std::string csv;
  for (const conf::SocketAddress& server : nameservers) {
    unsigned char buffer[sizeof(in6_addr)];
    bool ipv4 = ::inet_pton(AF_INET, server.host.c_str(), buffer) == 1;
    bool ipv6 = !ipv4 && ::inet_pton(AF_INET6, server.host.c_str(), buffer) == 1;
    if (!server.unix_path.empty() || (!ipv4 && !ipv6)) {
      *error = "DNS nameserver \"" + server.text + "\" is not an IP address and port";
      return "";
    }
    if (!csv.empty()) csv += ',';
    csv += ipv6 ? "[" + server.host + "]" : server.host;
    if (server.port != 0) csv += ":" + std::to_string(server.port);
  }
  return csv;
}

}  // namespace

bool DnsResolver::Impl::init(std::string* error) {
  if (options.tries < 1 || options.query_timeout.count() <= 0 ||
      options.query_timeout.count() > std::numeric_limits<int>::max()) {
    *error = "DNS resolver: tries must be at least 1 and the query timeout positive";
    return false;
  }
  std::string servers;
  if (!options.nameservers.empty()) {
    servers = nameserver_list(options.nameservers, error);
    if (servers.empty()) return false;
  }
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    *error = std::string("DNS resolver: eventfd: ") + std::strerror(errno);
    return false;
  }
  ares_options ares{};
  ares.timeout = static_cast<int>(options.query_timeout.count());
  ares.tries = options.tries;
  ares.sock_state_cb = &Impl::on_socket_state;
  ares.sock_state_cb_data = this;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  int status = ares_init_options(&channel, &ares, mask);
  if (status != ARES_SUCCESS) {
    channel = nullptr;
    *error = std::string("DNS resolver: c-ares initialization failed: ") + ares_strerror(status);
    return false;
  }
  if (!servers.empty()) {
    status = ares_set_servers_ports_csv(channel, servers.c_str());
    if (status != ARES_SUCCESS) {
      *error = "DNS resolver: nameservers \"" + servers + "\": " + ares_strerror(status);
      return false;
    }
  }
  return true;
}

void DnsResolver::Impl::on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* impl = static_cast<Impl*>(data);
  if (!readable && !writable) {
    impl->sockets.erase(fd);
    return;
  }
  impl->sockets[fd] = static_cast<short>((readable ? POLLIN : 0) | (writable ? POLLOUT : 0));
}

void DnsResolver::Impl::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd, &one, sizeof(one));
}

void DnsResolver::Impl::run() {
  std::vector<pollfd> fds;
  std::vector<Request> batch;
  while (true) {
    bool clear = false;
    {
      std::lock_guard lock(mutex);
      if (stopping) break;
      batch.swap(requests);
      std::swap(clear, clear_requested);
    }
    if (clear) {
      cache.clear();
      recency.clear();
      ++cache_generation;
    }
    for (Request& request : batch) handle_request(std::move(request));
    batch.clear();

    fds.clear();
    fds.push_back({wake_fd, POLLIN, 0});
    for (const auto& [fd, events] : sockets) fds.push_back({fd, events, 0});
    timeval tv{};
    timeval* next = ares_timeout(channel, nullptr, &tv);
    int timeout_ms =
        next == nullptr ? -1 : static_cast<int>(next->tv_sec * 1000 + (next->tv_usec + 999) / 1000);
    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      // Nothing sensible to do but wait a little and go on (EINVAL/ENOMEM).
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      uint64_t count;
      (void)!::read(wake_fd, &count, sizeof(count));
    }
    for (size_t i = 1; ready > 0 && i < fds.size(); ++i) {
      short revents = fds[i].revents;
      if (revents == 0) continue;
      bool readable = (revents & (POLLIN | POLLERR | POLLHUP)) != 0;
      bool writable = (revents & (POLLOUT | POLLERR)) != 0;
      ares_process_fd(channel, readable ? fds[i].fd : ARES_SOCKET_BAD,
                      writable ? fds[i].fd : ARES_SOCKET_BAD);
    }
    ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts and retries
  }

  // Every lookup in flight finishes as temporary through its callbacks.
  shutting_down = true;
  ares_cancel(channel);
  {
    std::lock_guard lock(mutex);
    stopped = true;
    batch.swap(requests);
  }
  for (Request& request : batch) refuse(request, "DNS resolver stopped");
}

void DnsResolver::Impl::handle_request(Request request) {
  std::string domain = request.domain;
  if (request.txt_done) {
    start_txt_query(std::move(domain), std::move(request.txt_done));
    return;
  }
  if (!normalize_name(domain)) {
    std::string asked = asked_name(request.domain);
    request.done(failed(asked, Status::no_domain, "invalid domain name \"" + asked + "\"", 0));
    return;
  }
  if (std::optional<MxResolution> hit = cached(domain)) {
    cache_hits.fetch_add(1, std::memory_order_relaxed);
    request.done(*hit);
    return;
  }
  auto it = in_flight.find(domain);
  if (it != in_flight.end()) {
    it->second->waiters.push_back(std::move(request.done));
    return;
  }
  auto owned = std::make_unique<Lookup>();
  Lookup& lookup = *owned;
  lookup.domain = domain;
  lookup.cache_generation = cache_generation;
  lookup.waiters.push_back(std::move(request.done));
  in_flight.emplace(domain, std::move(owned));
  lookup.outstanding = 1;  // held until the query is started
  start_query(lookup, -1, ns_t_mx);
  release(lookup);
}

std::optional<MxResolution> DnsResolver::Impl::cached(const std::string& domain) {
  auto it = cache.find(domain);
  if (it == cache.end()) return std::nullopt;
  Clock::time_point now = Clock::now();
  if (it->second.expires <= now) {
    recency.erase(it->second.recency);
    cache.erase(it);
    return std::nullopt;
  }
  recency.splice(recency.begin(), recency, it->second.recency);
  MxResolution resolution = it->second.resolution;
  auto left = std::chrono::ceil<std::chrono::seconds>(it->second.expires - now);
  resolution.ttl_seconds = static_cast<uint32_t>(left.count());
  return resolution;
}

void DnsResolver::Impl::store(const MxResolution& resolution) {
  if (resolution.ttl_seconds == 0 || options.max_cache_entries == 0) return;
  auto it = cache.find(resolution.domain);
  if (it != cache.end()) {
    recency.erase(it->second.recency);
    cache.erase(it);
  }
  while (cache.size() >= options.max_cache_entries && !recency.empty()) {
    cache.erase(recency.back());
    recency.pop_back();
  }
  recency.push_front(resolution.domain);
  Clock::time_point expires = Clock::now() + std::chrono::seconds(resolution.ttl_seconds);
  cache.emplace(resolution.domain, CacheEntry{resolution, expires, recency.begin()});
}

void DnsResolver::Impl::start_query(Lookup& lookup, int host, int type) {
  if (shutting_down) {
    if (host < 0) {
      lookup.verdict = Status::temporary;
      lookup.error = "DNS resolver stopped";
    } else {
      lookup.hosts[static_cast<size_t>(host)].temporary = true;
      if (lookup.host_error.empty()) lookup.host_error = "DNS resolver stopped";
    }
    return;
  }
  const std::string& name = host < 0 ? lookup.domain : lookup.hosts[static_cast<size_t>(host)].name;
  ++lookup.outstanding;
  queries_sent.fetch_add(1, std::memory_order_relaxed);
  // May call on_answer before it returns (for instance when no server is
  // usable); the hold on lookup.outstanding keeps the lookup alive.
  ares_query(channel, name.c_str(), ns_c_in, type, &Impl::on_answer,
             new QueryContext{this, &lookup, host, type});
}

void DnsResolver::Impl::start_txt_query(std::string name, DnsResolver::TxtCallback done) {
  std::string asked = asked_name(name);
  if (!normalize_name(name)) {
    done(failed_txt(asked, TxtResolution::Status::no_domain, "invalid name \"" + asked + "\""));
    return;
  }
  if (shutting_down) {
    done(failed_txt(name, TxtResolution::Status::temporary, "DNS resolver stopped"));
    return;
  }
  queries_sent.fetch_add(1, std::memory_order_relaxed);
  ares_query(channel, name.c_str(), ns_c_in, ns_t_txt, &Impl::on_txt_answer,
             new TxtQuery{name, std::move(done)});
}

void DnsResolver::Impl::on_txt_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                                      int alen) {
  std::unique_ptr<TxtQuery> query(static_cast<TxtQuery*>(arg));
  using TxtStatus = TxtResolution::Status;
  if (status == ARES_ENOTFOUND) {
    query->done(
        failed_txt(query->name, TxtStatus::no_domain, query->name + " does not exist (NXDOMAIN)"));
    return;
  }
  if (status == ARES_ENODATA) {
    query->done(failed_txt(query->name, TxtStatus::no_records, query->name + " has no TXT record"));
    return;
  }
  if (status != ARES_SUCCESS) {
    query->done(failed_txt(query->name, TxtStatus::temporary, ares_strerror(status)));
    return;
  }
  ares_txt_ext* chunks = nullptr;
  int parsed = ares_parse_txt_reply_ext(abuf, alen, &chunks);
  if (parsed == ARES_ENODATA) {
    query->done(failed_txt(query->name, TxtStatus::no_records, query->name + " has no TXT record"));
    return;
  }
  if (parsed != ARES_SUCCESS) {
    query->done(failed_txt(query->name, TxtStatus::temporary,
                           std::string("malformed TXT answer: ") + ares_strerror(parsed)));
    return;
  }
  TxtResolution resolution;
  resolution.status = TxtStatus::ok;
  resolution.name = query->name;
  bool keep = true;
  for (const ares_txt_ext* chunk = chunks; chunk != nullptr; chunk = chunk->next) {
    if (chunk->record_start || resolution.records.empty()) {
      keep = resolution.records.size() < kMaxTxtRecords;
      if (keep) resolution.records.emplace_back();
    }
    if (keep && chunk->txt != nullptr)
      resolution.records.back().append(reinterpret_cast<const char*>(chunk->txt), chunk->length);
  }
  ares_free_data(chunks);
  if (resolution.records.empty()) {
    resolution.status = TxtStatus::no_records;
    resolution.error = query->name + " has no TXT record";
  }
  query->done(resolution);
}

void DnsResolver::Impl::on_answer(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                                  int alen) {
  std::unique_ptr<QueryContext> query(static_cast<QueryContext*>(arg));
  Lookup& lookup = *query->lookup;
  if (query->host < 0) {
    query->impl->on_mx_answer(lookup, status, abuf, alen);
  } else {
    query->impl->on_address_answer(lookup, query->host, query->type, status, abuf, alen);
  }
  query->impl->release(lookup);
}

void DnsResolver::Impl::on_mx_answer(Lookup& lookup, int status, const unsigned char* abuf,
                                     int alen) {
  const std::string& domain = lookup.domain;
  if (status == ARES_ENOTFOUND) {
    lookup.verdict = Status::no_domain;
    lookup.error = "domain " + domain + " does not exist (NXDOMAIN)";
    lookup.note_ttl(negative_answer_ttl(abuf, alen).value_or(options.negative_ttl_seconds));
    return;
  }
  if (status == ARES_ENODATA) return start_implicit_mx(lookup, abuf, alen);
  if (status != ARES_SUCCESS) {
    lookup.verdict = Status::temporary;
    lookup.error = "MX lookup for " + domain + " failed: " + ares_strerror(status);
    return;
  }

  ares_mx_reply* replies = nullptr;
  int parsed = ares_parse_mx_reply(abuf, alen, &replies);
  if (parsed == ARES_ENODATA) return start_implicit_mx(lookup, abuf, alen);  // only a CNAME
  if (parsed != ARES_SUCCESS) {
    lookup.verdict = Status::temporary;
    lookup.error = "malformed MX answer for " + domain + ": " + ares_strerror(parsed);
    return;
  }
  std::vector<std::pair<uint16_t, std::string>> records;
  size_t null_records = 0;
  size_t bad_records = 0;
  for (ares_mx_reply* reply = replies; reply != nullptr; reply = reply->next) {
    std::string host = reply->host == nullptr ? "" : reply->host;
    if (host.empty() || host == ".") {
      ++null_records;
    } else if (normalize_name(host)) {
      records.emplace_back(reply->priority, std::move(host));
    } else {
      ++bad_records;
    }
  }
  ares_free_data(replies);
  lookup.note_ttl(answer_ttl(abuf, alen));

  if (records.empty()) {
    if (null_records > 0 && bad_records == 0) {
      lookup.verdict = Status::null_mx;
      lookup.error = "domain " + domain + " accepts no mail (null MX)";
    } else {
      lookup.verdict = Status::temporary;
      lookup.error = "malformed MX answer for " + domain + ": no usable host name";
    }
    return;
  }
  // By preference, then name; a host listed twice keeps its best preference.
  std::sort(records.begin(), records.end());
  std::unordered_set<std::string> seen;
  std::vector<std::string> names;
  for (auto& [preference, name] : records) {
    if (lookup.hosts.size() == kMaxMxHosts) break;
    if (!seen.insert(name).second) continue;
    names.push_back(name);
    lookup.hosts.push_back(HostLookup{std::move(name), preference, {}, {}, false});
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (!lookup.site.empty()) lookup.site += ',';
    lookup.site += name;
  }
  for (size_t i = 0; i < lookup.hosts.size(); ++i) {
    start_query(lookup, static_cast<int>(i), ns_t_a);
    start_query(lookup, static_cast<int>(i), ns_t_aaaa);
  }
}

// RFC 5321 §5.1: without MX records the domain itself is the mail host.
void DnsResolver::Impl::start_implicit_mx(Lookup& lookup, const unsigned char* abuf, int alen) {
  lookup.implicit_mx = true;
  lookup.note_ttl(negative_answer_ttl(abuf, alen).value_or(options.negative_ttl_seconds));
  lookup.hosts.push_back(HostLookup{lookup.domain, 0, {}, {}, false});
  lookup.site = lookup.domain;
  start_query(lookup, 0, ns_t_a);
  start_query(lookup, 0, ns_t_aaaa);
}

void DnsResolver::Impl::on_address_answer(Lookup& lookup, int host, int type, int status,
                                          const unsigned char* abuf, int alen) {
  HostLookup& entry = lookup.hosts[static_cast<size_t>(host)];
  const char* record = type == ns_t_a ? "A" : "AAAA";
  int parsed = status;
  char text[INET6_ADDRSTRLEN];
  if (status == ARES_SUCCESS && type == ns_t_a) {
    ares_addrttl found[kMaxAddressesPerHost];
    int count = static_cast<int>(kMaxAddressesPerHost);
    parsed = ares_parse_a_reply(abuf, alen, nullptr, found, &count);
    for (int i = 0; parsed == ARES_SUCCESS && i < count; ++i) {
      if (::inet_ntop(AF_INET, &found[i].ipaddr, text, sizeof(text)) == nullptr) continue;
      entry.ipv4.emplace_back(text);
      lookup.note_ttl(sane_ttl(static_cast<uint32_t>(found[i].ttl)));
    }
  } else if (status == ARES_SUCCESS) {
    ares_addr6ttl found[kMaxAddressesPerHost];
    int count = static_cast<int>(kMaxAddressesPerHost);
    parsed = ares_parse_aaaa_reply(abuf, alen, nullptr, found, &count);
    for (int i = 0; parsed == ARES_SUCCESS && i < count; ++i) {
      if (::inet_ntop(AF_INET6, &found[i].ip6addr, text, sizeof(text)) == nullptr) continue;
      entry.ipv6.emplace_back(text);
      lookup.note_ttl(sane_ttl(static_cast<uint32_t>(found[i].ttl)));
    }
  }
  if (parsed == ARES_SUCCESS) return;
  if (!is_temporary_status(parsed)) {
    // No such name or no such record: remembered as long as the zone says.
    lookup.note_ttl(negative_answer_ttl(abuf, alen).value_or(options.negative_ttl_seconds));
    return;
  }
  entry.temporary = true;
  lookup.note_ttl(options.temporary_ttl_seconds);
  if (lookup.host_error.empty()) {
    lookup.host_error =
        std::string(record) + " lookup for " + entry.name + " failed: " + ares_strerror(parsed);
  }
}

void DnsResolver::Impl::release(Lookup& lookup) {
  if (--lookup.outstanding > 0) return;
  MxResolution resolution = result_of(lookup);
  if (!shutting_down && lookup.cache_generation == cache_generation) store(resolution);
  std::vector<Callback> waiters = std::move(lookup.waiters);
  in_flight.erase(lookup.domain);  // destroys lookup
  for (Callback& done : waiters) done(resolution);
}

MxResolution DnsResolver::Impl::result_of(const Lookup& lookup) const {
  MxResolution resolution;
  resolution.domain = lookup.domain;
  bool any_temporary = false;
  if (lookup.verdict) {
    resolution.status = *lookup.verdict;
    resolution.error = lookup.error;
  } else {
    for (const HostLookup& host : lookup.hosts) {
      any_temporary = any_temporary || host.temporary;
      if (host.ipv4.empty() && host.ipv6.empty()) continue;
      MxHost& out = resolution.hosts.emplace_back();
      out.name = host.name;
      out.preference = host.preference;
      out.addresses = host.ipv4;
      out.addresses.insert(out.addresses.end(), host.ipv6.begin(), host.ipv6.end());
      if (out.addresses.size() > kMaxAddressesPerHost) out.addresses.resize(kMaxAddressesPerHost);
    }
    if (!resolution.hosts.empty()) {
      resolution.status = Status::ok;
      resolution.site = lookup.site;
    } else if (any_temporary) {
      // Some host might have an address after all: defer rather than bounce.
      resolution.status = Status::temporary;
      resolution.error = lookup.host_error;
    } else {
      resolution.status = Status::no_hosts;
      resolution.error = lookup.implicit_mx
                             ? "domain " + lookup.domain + " has no MX record and no address"
                             : "no MX host of " + lookup.domain + " has an address";
    }
  }
  switch (resolution.status) {
    case Status::temporary:
      resolution.ttl_seconds = options.temporary_ttl_seconds;
      break;
    case Status::null_mx:
      resolution.ttl_seconds = options.negative_ttl_seconds;
      break;
    case Status::ok:
    case Status::no_domain:
    case Status::no_hosts:
      resolution.ttl_seconds =
          std::min(lookup.ttl == kNoTtl ? options.negative_ttl_seconds : lookup.ttl,
                   options.max_cache_ttl_seconds);
      break;
  }
  return resolution;
}

std::unique_ptr<DnsResolver> DnsResolver::create(DnsResolverOptions options, std::string* error) {
  static std::once_flag library_once;
  static int library_status = ARES_SUCCESS;
  std::call_once(library_once, [] { library_status = ares_library_init(ARES_LIB_INIT_ALL); });
  std::string ignored;
  if (error == nullptr) error = &ignored;
  if (library_status != ARES_SUCCESS) {
    *error = std::string("DNS resolver: c-ares library: ") + ares_strerror(library_status);
    return nullptr;
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  if (!impl->init(error)) return nullptr;
  impl->thread = std::thread([raw = impl.get()] { raw->run(); });
  return std::unique_ptr<DnsResolver>(new DnsResolver(std::move(impl)));
}

DnsResolver::DnsResolver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DnsResolver::~DnsResolver() { stop(); }

void DnsResolver::resolve_mx(std::string domain, Callback done) {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->stopped) {
      impl_->requests.push_back(Request{std::move(domain), std::move(done)});
      impl_->wake();
      return;
    }
  }
  // The thread is gone: answer on the caller's thread.
  done(failed(std::move(domain), Status::temporary, "DNS resolver stopped", 0));
}

void DnsResolver::resolve_txt(std::string name, TxtCallback done) {
  Request request{std::move(name), {}, std::move(done)};
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->stopped) {
      impl_->requests.push_back(std::move(request));
      impl_->wake();
      return;
    }
  }
  refuse(request, "DNS resolver stopped");
}

void DnsResolver::clear_cache() {
  std::lock_guard lock(impl_->mutex);
  impl_->clear_requested = true;
  impl_->wake();
}

void DnsResolver::stop() {
  std::call_once(impl_->stop_once, [this] {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->wake();
    if (impl_->thread.joinable()) impl_->thread.join();
  });
}

uint64_t DnsResolver::queries_sent() const {
  return impl_->queries_sent.load(std::memory_order_relaxed);
}

uint64_t DnsResolver::cache_hits() const {
  return impl_->cache_hits.load(std::memory_order_relaxed);
}

void shuffle_equal_preferences(std::vector<MxHost>& hosts, std::mt19937_64& random) {
  std::stable_sort(hosts.begin(), hosts.end(),
                   [](const MxHost& a, const MxHost& b) { return a.preference < b.preference; });
  for (auto begin = hosts.begin(); begin != hosts.end();) {
    auto end = std::find_if(begin, hosts.end(), [&](const MxHost& host) {
      return host.preference != begin->preference;
    });
    std::shuffle(begin, end, random);
    begin = end;
  }
}

}  // namespace ringmail::mta
