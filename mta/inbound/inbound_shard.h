// mta/inbound/inbound_shard.h — one shard of the inbound server: a thread with its
// own io_uring, its SO_REUSEPORT listening sockets, and every connection it
// accepted. Private to mta/inbound_*.cc; callers use mta/inbound_server.h.
//
// Owns: the ring, the provided-buffer ring, the connections and their
// sessions. Everything here runs on the shard's thread except post(),
// which any thread may call to run work on it (spool and auth answers).
// inbound_shard.cc moves bytes and completions; inbound_shard_actions.cc
// carries out what a session asked for (TLS, commits, DKIM, AUTH).
//
// SECURITY: faces the network; protocol decisions are the session's.
#pragma once

#include <liburing.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "mta/dkim/dkim_signer.h"
#include "mta/inbound/auth_service.h"
#include "mta/inbound/inbound_server.h"
#include "mta/smtp/smtp_server_session.h"
#include "mta/smtp/tls_context.h"
#include "runtime/metrics_registry.h"
#include "runtime/reactor.h"

namespace ringmail::runtime {
class Counter;
class Gauge;
}  // namespace ringmail::runtime

namespace ringmail::mta {

struct MilterOutcome;

using Clock = std::chrono::steady_clock;

// What a completion was (runtime::UserData's op; its slot is the
// connection's, or the listener's index for accept).
enum class Op : uint8_t { accept = 1, recv, send, wake, tick, auth_delay, ignore };
using runtime::pack;

struct PeerAddress {
  std::string ip;
  uint16_t port = 0;
  int family = 0;
  uint8_t bytes[16] = {};
};

// What a shard needs from the config; swapped whole on reload.
struct ShardSettings {
  std::shared_ptr<const conf::Config> config;
  std::shared_ptr<const TlsContext> tls;
  std::shared_ptr<const DkimSignerSet> dkim;  // null or empty: no signing
  std::vector<SessionSettings> sessions;      // one per listener, same order
};

struct Connection {
  uint32_t generation = 0;
  int fd = -1;
  size_t listener = 0;
  PeerAddress peer;
  PeerAddress local;
  std::string relay_network;
  std::shared_ptr<const ShardSettings> settings;  // as at accept time
  std::unique_ptr<SmtpServerSession> session;     // null until implicit TLS is up
  std::unique_ptr<TlsSession> tls;
  bool tls_up = false;
  std::string pending_out;  // bytes for the wire, waiting for the send in flight
  std::string sending;      // the bytes of the send in flight
  bool send_in_flight = false;
  bool recv_armed = false;
  bool close_after_flush = false;
  bool closing = false;  // shutdown(2) done; waiting for operations to end
  bool shutdown_said = false;
  // One AUTH timer: either an attempt waiting for its admission time
  // (auth_waiting_admission holds it) or the delayed answer of a failure.
  bool auth_delay_armed = false;
  std::optional<AuthRequest> auth_waiting_admission;
  AuthOutcome delayed_auth{};
  __kernel_timespec auth_delay_ts{};
  Clock::time_point last_activity{};
  Clock::time_point close_requested{};
  Clock::time_point accepted{};  // the implicit-TLS handshake deadline runs from here
  // Counted in limits.max_connections_per_ip (not exempt); released on close.
  bool counted_per_client = false;
  ClientKey client_key;
};

class InboundShard {
 public:
  InboundShard(InboundServer& server, int index) : server_(server), index_(index) {}
  void adopt_listener(int fd) { listen_fds_.push_back(fd); }
  ~InboundShard();
  void set_settings(std::shared_ptr<const ShardSettings> settings);
  bool run(std::string* error);

  // Runs fn on this shard's thread. Callable from any thread.
  void post(std::function<void()> fn);
  void request_stop(std::chrono::milliseconds timeout);
  void join();

 private:
  bool setup(std::string* error);
  io_uring_sqe* sqe() { return reactor_.sqe(); }
  void arm_accept(size_t listener);
  void arm_wake();
  void arm_tick();
  void arm_recv(uint32_t slot, Connection& c);
  void loop();
  void handle(uint64_t data, int res, unsigned flags);
  Connection* lookup(uint32_t slot, uint32_t generation);
  void on_accept(uint32_t listener, int res, unsigned flags);
  void create_session(Connection& c, const std::string& tls_description);
  void on_recv(uint32_t slot, uint32_t generation, int res, unsigned flags);
  void on_bytes(uint32_t slot, Connection& c, std::string_view bytes);

  // Carries out what the session asked for.
  void apply(uint32_t slot, Connection& c, SessionOutput out);
  void queue_plaintext(uint32_t slot, Connection& c, std::string_view text);
  void queue_wire(uint32_t, Connection& c, std::string bytes);
  void flush(uint32_t slot, Connection& c);
  void on_send(uint32_t slot, uint32_t generation, int res);

  // DKIM signs once per message, here on the shard (the cores sign in
  // parallel), before the commit: a retry or a second recipient never re-signs.
  void sign(const DkimSignerSet& signers, queue::SpoolMessage& message,
            const DkimBodyHashes& streamed);
  void submit_commit(uint32_t slot, Connection& c, std::unique_ptr<queue::SpoolMessage> message,
                     DkimBodyHashes streamed);
  void after_milters(uint32_t slot, Connection& c, MilterOutcome outcome, DkimBodyHashes streamed);
  void sign_and_store(uint32_t slot, Connection& c, std::unique_ptr<queue::SpoolMessage> message,
                      const DkimBodyHashes& streamed);
  void finish_commit(uint32_t slot, Connection& c, const CommitResult& result);
  void submit_feedback(uint32_t slot, Connection& c, std::unique_ptr<queue::SpoolMessage> message);
  void start_auth(uint32_t slot, Connection& c, AuthRequest request);
  void verify_admitted(uint32_t slot, Connection& c, AuthRequest request);
  void arm_auth_timer(uint32_t slot, Connection& c, std::chrono::nanoseconds delay);
  static AuthResult to_result(const AuthOutcome& outcome);
  void deliver_auth(uint32_t slot, Connection& c, const AuthOutcome& outcome);
  void on_auth_delay(uint32_t slot, uint32_t generation);

  // Stops reading and writing; the slot is freed once no operation refers
  // to its buffers any more.
  void close_now(uint32_t slot, Connection& c);
  void maybe_finish_close(uint32_t slot, Connection& c);
  // Gives back the connection's place in max_connections and
  // max_connections_per_ip.
  void release_counts(Connection& c);
  void on_wake();
  void on_tick();
  void begin_stop(std::chrono::milliseconds timeout);

  // Between transactions a client can simply be told to come back later.
  void say_shutdown_if_idle(uint32_t slot, Connection& c);
  void check_stopped();
  // The wall clock of the server's dependencies, in Unix milliseconds.
  int64_t unix_now_ms() const;
  InboundServer& server_;
  int index_;
  std::thread thread_;
  // Spool and auth answers reach the shard through its mailbox, which is
  // destroyed (its eventfd closed) only with the shard, as they may post
  // after the loop ended.
  runtime::Reactor reactor_;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> buffers_;
  std::vector<int> listen_fds_;
  std::shared_ptr<const ShardSettings> settings_;
  runtime::SlotTable<Connection> connections_;
  bool running_ = true;
  bool stopping_ = false;
  Clock::time_point stop_deadline_{};
  runtime::Gauge* sessions_active_ = nullptr;
  runtime::Counter* connections_refused_ = nullptr;
  runtime::Counter* connections_refused_per_ip_ = nullptr;
  runtime::Counter* tls_failures_ = nullptr;
  runtime::LabelledCounters dkim_signatures_{
      "dkim_signatures_total", "DKIM signatures made, by signing domain and algorithm",
      std::vector<std::string>{"domain", "algorithm"}};
};

}  // namespace ringmail::mta
