// mta/outbound_engine.h — the delivery thread behind OutboundServer.
// Private to mta/outbound_*.cc; callers use mta/outbound_server.h.
//
// Owns: one io_uring and every outbound connection on it, the scheduler,
// routing state per domain and per site. outbound_engine.cc moves bytes
// (connect, send, recv, TLS, timeouts); outbound_dispatch.cc decides (what
// is due, where it goes, which connection takes it) and records results
// (spool updates, delivery log, metrics, DSNs). Everything runs on the
// engine's thread except post(), which any thread may call.
#pragma once

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "conf/config.h"
#include "conf/config_policy.h"
#include "mta/dns_resolver.h"
#include "mta/outbound_server.h"
#include "mta/ring_mailbox.h"
#include "mta/smtp_client_session.h"
#include "mta/tls_context.h"
#include "policy/bounce_classifier.h"
#include "queue/dsn.h"
#include "queue/scheduler.h"
#include "queue/spool.h"

namespace ringmail::admin {
class Counter;
class Gauge;
class Histogram;
class MetricsRegistry;
}  // namespace ringmail::admin

namespace ringmail::mta {

using SteadyClock = std::chrono::steady_clock;

// One address to try for a site, in order.
struct ConnectTarget {
  std::string mx;  // host name (or the smarthost as written)
  std::string ip;
  uint16_t port = 25;
};

// The egress source of a site's connections: a policy.sources entry of
// the "default" pool, or the machine's default address.
struct EgressChoice {
  static inline const std::string kDefault = "default";
  std::string name = kDefault;
  std::optional<conf::IpAddress> address;  // bound before connect; none: the default
};

// Where a (source, site)'s connections go and how many it may have.
struct SiteState {
  std::string name;  // the key: "site", or "source/site" with an egress source
  std::string site;  // the destination's MX host set (or route, or literal)
  EgressChoice source;
  std::string domain;         // the recipient domain that first routed here (shaping by domain)
  std::vector<MxHost> hosts;  // by preference
  uint16_t port = 25;
  uint32_t max_connections = 32;
  uint32_t max_messages_per_connection = 100;
  uint32_t connections = 0;    // open or opening
  uint32_t opening = 0;        // not yet ready for a first message
  uint32_t established = 0;    // got to ready at least once, not closed
  std::vector<uint32_t> idle;  // slots of ready connections with nothing to do
  // After every address failed: jobs are deferred without a new attempt
  // until then, with that failure.
  int64_t down_until_ms = 0;  // steady ms
  SmtpReply last_failure;
  std::string last_mx;
};

// What a domain routes to; cached for the resolution's TTL.
struct DomainRoute {
  bool resolving = false;
  std::shared_ptr<const MxResolution> resolution;  // the last ok answer
  int64_t expires_ms = 0;                          // steady ms
  std::vector<queue::JobId> waiting;               // jobs waiting for the lookup
};

struct OutboundConnection {
  uint32_t generation = 0;
  int fd = -1;
  std::string site;
  std::vector<ConnectTarget> targets;
  size_t target = 0;                      // index into targets
  bool starttls = true;                   // offer STARTTLS to this target
  std::optional<conf::IpAddress> source;  // bound before connect
  sockaddr_storage address{};
  socklen_t address_length = 0;
  bool connected = false;
  bool ready_once = false;  // got to ready at least once (counted out of `opening`)
  bool tls_failed = false;  // the last failure was the TLS handshake
  bool tls_retry_done = false;
  std::unique_ptr<SmtpClientSession> session;
  std::unique_ptr<TlsSession> tls;
  bool tls_handshaking = false;
  std::unique_ptr<char[]> recv_buffer;
  std::string pending_out;
  std::string sending;
  bool connect_in_flight = false;
  bool send_in_flight = false;
  bool recv_in_flight = false;
  bool close_after_flush = false;
  bool closing = false;
  bool released = false;  // slot freed at the end of the current round
  bool idle = false;
  int64_t deadline_ms = 0;  // steady ms; 0 = none
  uint32_t messages = 0;    // transactions started on this connection
  // The transaction in progress.
  std::optional<queue::JobId> job;
  std::shared_ptr<const queue::SpoolMessage> message;
  int64_t attempt_started_ms = 0;
};

class OutboundEngine {
 public:
  OutboundEngine(OutboundDependencies deps, std::shared_ptr<const conf::Config> config,
                 std::unique_ptr<DnsResolver> resolver, std::shared_ptr<const TlsContext> tls);
  ~OutboundEngine();

  // Loads the spool's active recipients, sets up the ring, starts the thread.
  bool start(std::string* error);
  void post(std::function<void()> fn);
  void request_stop(std::chrono::milliseconds timeout);
  void join();

  // Loop thread only.
  void enqueue_messages(const std::vector<std::shared_ptr<queue::SpoolMessage>>& messages);
  // Schedules the active recipients of messages the engine does not know
  // (released from quarantine by --spool-release while it ran).
  void adopt_unknown(std::vector<queue::SpoolMessage> messages);
  void set_config(std::shared_ptr<const conf::Config> config);

 private:
  // --- outbound_engine.cc: ring mechanics ---
  bool setup_ring(std::string* error);
  io_uring_sqe* sqe();
  void loop();
  void handle(uint64_t data, int res);
  void arm_wake();
  void arm_tick();
  void on_wake();
  void on_tick();
  uint32_t allocate_slot();
  OutboundConnection* lookup(uint32_t slot, uint32_t generation);
  void open_connection(SiteState& site);
  void connect_target(uint32_t slot, OutboundConnection& c);
  void on_connect(uint32_t slot, uint32_t generation, int res);
  void arm_recv(uint32_t slot, OutboundConnection& c);
  void on_recv(uint32_t slot, uint32_t generation, int res);
  void on_send(uint32_t slot, uint32_t generation, int res);
  void queue_plaintext(uint32_t slot, OutboundConnection& c, std::string text);
  void flush(uint32_t slot, OutboundConnection& c);
  void apply(uint32_t slot, OutboundConnection& c, ClientOutput out);
  void start_tls(uint32_t slot, OutboundConnection& c);
  void arm_deadline(OutboundConnection& c);
  // Failure of the connection before or between transactions: next target,
  // or give up on the site for now.
  void connection_failed(uint32_t slot, OutboundConnection& c, const SmtpReply& why);
  void close_connection(uint32_t slot, OutboundConnection& c);
  void maybe_release(uint32_t slot, OutboundConnection& c);
  void free_released();
  void check_stopped();

  // --- outbound_dispatch.cc: decisions and results ---
  void load_spool();
  void add_jobs(const queue::SpoolMessage& message, const std::vector<size_t>& indexes,
                int64_t due_ms);
  void run_due();
  void route(queue::JobId id);
  void on_resolved(const std::string& key, const MxResolution& resolution);
  EgressChoice pick_source();
  SiteState& site_state(const std::string& site_name, const EgressChoice& source, bool* created);
  SiteState& site_for_route(const conf::Route& route, const EgressChoice& source);
  SiteState& site_for_resolution(const MxResolution& resolution, const EgressChoice& source);
  SiteState& site_for_literal(const std::string& literal, const std::string& ip,
                              const EgressChoice& source);
  const SiteState* site_of(const std::string& key) const;
  // delivery.max_* defaults, or the first policy.shaping rule that matches.
  void apply_limits(SiteState& site) const;
  // Into the site's ready queue, or deferred at once while the site is
  // known to be down. True when it is ready.
  bool make_ready(queue::JobId id, SiteState& site);
  void service_site(SiteState& site);
  void connection_ready(uint32_t slot, OutboundConnection& c);
  // False when the job had nothing left to send (it is gone).
  bool start_transaction(uint32_t slot, OutboundConnection& c, queue::JobId id);
  // The recipients of a job, all with one reply (DNS failures, an
  // unreachable site, a message that cannot be read).
  void fail_job(queue::JobId id, const SmtpReply& reply, const std::string& mx);
  void finish_job(queue::JobId id, const queue::SpoolMessage* message,
                  const std::vector<SmtpReply>& replies, const SiteState* where,
                  const std::string& mx, const std::string& tls);
  void expire_job(queue::JobId id, const queue::SpoolMessage* message);
  std::shared_ptr<const queue::SpoolMessage> message_for(const queue::Job& job);
  void message_done(const std::string& id);
  void forget_old_finished();
  // Drops a job whose message is gone, without a result.
  void forget_job(queue::JobId id);
  void send_dsn(const queue::SpoolMessage& original, std::vector<queue::DsnRecipient> recipients);

  int64_t now_steady_ms() const;

  OutboundDependencies deps_;
  std::shared_ptr<const conf::Config> config_;
  std::unique_ptr<DnsResolver> resolver_;
  std::shared_ptr<const TlsContext> tls_;
  policy::BounceClassifier classifier_;
  std::vector<int64_t> retry_intervals_ms_;
  std::vector<const conf::EgressSource*> sources_;  // of config_'s default pool
  size_t next_source_ = 0;

  std::thread thread_;
  io_uring ring_{};
  bool ring_ok_ = false;
  __kernel_timespec tick_ts_{};
  bool running_ = true;
  bool stopping_ = false;
  int64_t stop_deadline_ms_ = 0;

  RingMailbox mailbox_;  // closed with the engine: late posts are harmless

  queue::Scheduler scheduler_;
  std::unordered_map<std::string, DomainRoute> domains_;
  std::unordered_map<std::string, SiteState> sites_;
  // Messages with content, kept from their commit until they are done, so
  // that the first attempt reads nothing back (bounded by bytes).
  std::unordered_map<std::string, std::shared_ptr<const queue::SpoolMessage>> cache_;
  uint64_t cache_bytes_ = 0;
  // Recipients not yet final, per message id: 0 -> deleted from the spool.
  std::unordered_map<std::string, uint32_t> active_recipients_;
  // Messages whose last recipient finished in the last kRecentlyFinishedMs,
  // whose deletion may not be committed yet: a rescan must not schedule
  // them again meanwhile.
  static constexpr int64_t kRecentlyFinishedMs = 30000;
  std::unordered_set<std::string> recently_finished_;
  std::deque<std::pair<int64_t, std::string>> recently_finished_order_;

  std::vector<std::unique_ptr<OutboundConnection>> connections_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> to_free_;
  uint32_t generation_counter_ = 0;
  uint32_t open_connections_ = 0;
  std::mt19937_64 random_;

  admin::Gauge* sessions_active_ = nullptr;
  admin::Gauge* queued_gauge_ = nullptr;
  admin::Gauge* deferred_gauge_ = nullptr;
  admin::Histogram* attempt_seconds_ = nullptr;
  // A counter family with one label, its series registered on first use.
  struct LabelledCounters {
    const char* name;
    const char* help;
    const char* label;
    std::unordered_map<std::string, admin::Counter*> by_value;
    admin::Counter& get(admin::MetricsRegistry& metrics, const std::string& value);
  };
  LabelledCounters delivered_{
      "messages_delivered_total", "Recipients delivered, by site", "site", {}};
  LabelledCounters deferred_{
      "messages_deferred_total", "Recipients deferred after a failed attempt, by site", "site", {}};
  LabelledCounters bounced_{
      "messages_bounced_total", "Recipients bounced or expired, by category", "category", {}};
};

}  // namespace ringmail::mta
