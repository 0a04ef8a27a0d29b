// mta/outbound/outbound_engine.h — the delivery thread behind OutboundServer.
// Private to mta/outbound_*.cc; callers use mta/outbound_server.h.
//
// Owns: one io_uring and every outbound connection on it (socket, TLS over
// memory BIOs, SmtpClientSession, protocol deadlines), and the
// DeliveryPlanner, which makes every decision: the engine carries out the
// planner's commands (open, start, quit, close, resolve, spool updates,
// records, DSNs, metrics) and turns completions into its events, as
// InboundShard does for SmtpServerSession. Everything runs on the engine's
// thread except post(), which any thread may call.
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
#include "mta/dns/dns_resolver.h"
#include "mta/outbound/delivery_planner.h"
#include "mta/outbound/outbound_server.h"
#include "mta/smtp/smtp_client_session.h"
#include "mta/smtp/tls_context.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"
#include "runtime/reactor.h"

namespace ringmail::mta {

using SteadyClock = std::chrono::steady_clock;

// Where an outbound connection is in its life. One enter_phase() moves it
// (and traces from -> to); the booleans that remain say which ring
// operations are in flight, not what the connection is doing.
enum class Phase {
  connecting,     // TCP connect in flight (with the connect timeout)
  dialogue,       // the session waits for a server reply
  tls_handshake,  // STARTTLS accepted; the client handshake runs
  ready,          // the session is ready: the planner may start a transaction
  closing,        // last bytes (QUIT) being flushed, then close
  closed,         // shut down; the slot is freed once no operation is in flight
};
const char* to_string(Phase phase);

struct OutboundConnection {
  ConnectionId id = 0;  // the planner's name for it
  uint32_t generation = 0;
  Phase phase = Phase::connecting;
  int fd = -1;
  ConnectTarget target;
  bool starttls = true;                   // offer STARTTLS to this target
  bool require_tls = false;               // no transaction in clear text
  std::optional<conf::IpAddress> source;  // bound before connect
  sockaddr_storage address{};
  socklen_t address_length = 0;
  bool tls_failed = false;    // the last failure was STARTTLS or its handshake
  bool quit_pending = false;  // the planner asked for QUIT while a reply was awaited
  bool in_transaction = false;
  std::unique_ptr<SmtpClientSession> session;
  std::unique_ptr<TlsSession> tls;
  std::unique_ptr<char[]> recv_buffer;
  std::string pending_out;
  std::string sending;
  bool connect_in_flight = false;
  bool send_in_flight = false;
  bool recv_in_flight = false;
  bool released = false;    // slot freed at the end of the current round
  int64_t deadline_ms = 0;  // steady ms; 0 = none
};

class OutboundEngine {
 public:
  OutboundEngine(OutboundDependencies deps, std::shared_ptr<const conf::Config> config,
                 std::unique_ptr<DnsResolver> resolver, std::shared_ptr<const TlsContext> tls,
                 const runtime::Clock& clock);
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
  // The DKIM keys that sign sign_at_delivery copies (DeliveryPlanner::set_dkim).
  void set_dkim(std::shared_ptr<const DkimSignerSet> dkim) { planner_.set_dkim(std::move(dkim)); }
  DeliverySnapshot snapshot(const QueueFilter& filter, bool with_idle_sites) const {
    return planner_.snapshot(filter, with_idle_sites);
  }
  MessageLiveView live_view(const std::string& message_id) const {
    return planner_.live_view(message_id);
  }
  // Carries out the command; returns the recipients a bounce took out.
  size_t command(const AdminCommand& command);

 private:
  bool setup_ring(std::string* error);
  io_uring_sqe* sqe() { return reactor_.sqe(); }
  void loop();
  void handle(uint64_t data, int res);
  void on_wake();
  void on_tick();
  OutboundConnection* lookup(uint32_t slot, uint32_t generation);
  OutboundConnection* find(ConnectionId id, uint32_t* slot);
  void enter_phase(OutboundConnection& c, Phase to);

  // Carries out what the planner decided.
  void carry_out(PlannerOutput out);
  void apply_metrics(const MetricDeltas& metrics);
  void submit_dsn(std::unique_ptr<queue::SpoolMessage> dsn);
  void open(const OpenCommand& command);
  void start_transaction(const StartCommand& command);
  void quit(ConnectionId id);
  void cut(ConnectionId id);

  void connect_target(uint32_t slot, OutboundConnection& c);
  void on_connect(uint32_t slot, uint32_t generation, int res);
  void arm_recv(uint32_t slot, OutboundConnection& c);
  void on_recv(uint32_t slot, uint32_t generation, int res);
  void on_send(uint32_t slot, uint32_t generation, int res);
  void queue_plaintext(uint32_t slot, OutboundConnection& c, std::string text);
  void flush(uint32_t slot, OutboundConnection& c);
  // Carries out what the session asked for; reports readiness and results
  // to the planner.
  void apply(uint32_t slot, OutboundConnection& c, ClientOutput out);
  void start_tls(uint32_t slot, OutboundConnection& c);
  void arm_deadline(OutboundConnection& c);
  // The end of a connection, reported to the planner once: with the
  // failure that ended it, or none.
  void close_connection(uint32_t slot, OutboundConnection& c, const SmtpReply* failure = nullptr);
  void maybe_release(uint32_t slot, OutboundConnection& c);
  void free_released();
  void check_stopped();
  void load_spool();

  int64_t now_steady_ms() const;

  OutboundDependencies deps_;
  const runtime::Clock& clock_;
  std::shared_ptr<const conf::Config> config_;
  std::unique_ptr<DnsResolver> resolver_;
  std::shared_ptr<const TlsContext> tls_;
  DeliveryPlanner planner_;

  std::thread thread_;
  // Its mailbox is closed with the engine: late posts are harmless.
  runtime::Reactor reactor_;
  bool running_ = true;
  bool stopping_ = false;

  runtime::SlotTable<OutboundConnection> connections_;
  std::unordered_map<ConnectionId, uint32_t> slots_;  // the planner's ids -> slots
  std::vector<uint32_t> to_free_;

  runtime::Gauge* sessions_active_ = nullptr;
  runtime::Gauge* queued_gauge_ = nullptr;
  runtime::Counter* cancelled_ = nullptr;
  runtime::Counter* suppressed_ = nullptr;
  runtime::Gauge* deferred_gauge_ = nullptr;
  runtime::Histogram* attempt_seconds_ = nullptr;
  runtime::LabelledCounters delivered_{"messages_delivered_total", "Recipients delivered, by site",
                                       "site"};
  runtime::LabelledCounters deferred_{
      "messages_deferred_total", "Recipients deferred after a failed attempt, by site", "site"};
  runtime::LabelledCounters bounced_{"messages_bounced_total",
                                     "Recipients bounced or expired, by category", "category"};
  runtime::LabelledCounters backoff_activations_{
      "backoff_activations_total", "Backoff rules that took effect on a remote reply, by action",
      "action"};
  // Signatures of copies signed at delivery (the inbound shards count theirs).
  runtime::LabelledCounters dkim_signatures_{
      "dkim_signatures_total", "DKIM signatures made, by signing domain and algorithm",
      std::vector<std::string>{"domain", "algorithm"}};
};

}  // namespace ringmail::mta
