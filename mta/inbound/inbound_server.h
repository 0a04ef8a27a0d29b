// mta/inbound/inbound_server.h — the inbound SMTP server: shard threads, each with
// one io_uring, that accept, read and write connections and drive one
// SmtpServerSession per connection.
//
// Owns: listening sockets (one SO_REUSEPORT socket per listener per shard),
// accepted connections, their TLS state and idle timers. Each connection
// lives on the shard that accepted it; nothing about it is shared. Messages
// go to the SpoolWriter and credentials to the AuthService; their answers
// come back to the shard through its post() queue and eventfd.
// start(), reload(), stop() and active_connections() are called from the
// daemon's main thread.
//
// SECURITY: faces the network. Protocol decisions are the session's; this
// layer only moves bytes, enforces max_connections, max_connections_per_ip,
// idle_timeout and the implicit-TLS handshake deadline, asks each session
// to check its own deadlines, and closes connections whose TLS fails.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/inbound/inbound_client_counter.h"
#include "mta/smtp/smtp_server_session.h"
#include "policy/campaign_gate.h"
#include "policy/submission_limiter.h"
#include "runtime/clock.h"

namespace ringmail::runtime {
class MetricsRegistry;
}
namespace ringmail::queue {
class SpoolWriter;
}

namespace ringmail::mta {

class AuthService;
class MilterClient;
class DkimSignerSet;
class TlsContext;
class InboundShard;
class SubmissionGate;

// Takes what a feedback listener receives (mta/feedback_processor.h):
// bounces and reports are processed, never spooled for delivery. done
// runs on any thread, once, when what the report requires is durable
// (committed: the client hears 250) or could not be made so.
class FeedbackSink {
 public:
  virtual ~FeedbackSink() = default;
  using Done = std::function<void(const CommitResult& result)>;
  virtual void submit(std::unique_ptr<queue::SpoolMessage> message, Done done) = 0;
};

struct InboundDependencies {
  queue::SpoolWriter* spool_writer = nullptr;   // required
  AuthService* auth = nullptr;                  // null when no users_file
  MilterClient* milters = nullptr;              // null or empty: no milters
  runtime::MetricsRegistry* metrics = nullptr;  // required
  // Wall time for sessions (Received:, Date:, deadlines) and signatures.
  const runtime::Clock* clock = &runtime::system_clock();
  // Campaigns whose new mail is refused (cancelled); null: none.
  const policy::CampaignGate* campaigns = nullptr;
  // policy.tenants[].max_messages, asked at MAIL FROM with clock's steady
  // time; null: no limits. Its policy is the caller's to keep current.
  policy::SubmissionLimiter* submission_limiter = nullptr;
  // Mode feedback listeners' messages; null: they answer 451 at end of data.
  FeedbackSink* feedback = nullptr;
};

class InboundServer {
 public:
  InboundServer(InboundDependencies deps, int shard_count);
  ~InboundServer();
  InboundServer(const InboundServer&) = delete;
  InboundServer& operator=(const InboundServer&) = delete;

  // Binds every listener on every shard and starts the shard threads.
  // On failure returns false with a one-line reason and leaves nothing running.
  // `dkim` signs each accepted message once, before its spool commit
  // (may be null: no signing).
  bool start(std::shared_ptr<const conf::Config> config, std::shared_ptr<const TlsContext> tls,
             std::shared_ptr<const DkimSignerSet> dkim, std::string* error);
  // New sessions use the new config and TLS context; sessions in progress
  // keep theirs. Listener addresses cannot change without a restart.
  void reload(std::shared_ptr<const conf::Config> config, std::shared_ptr<const TlsContext> tls,
              std::shared_ptr<const DkimSignerSet> dkim);
  // Stops accepting, lets transactions in progress finish until `timeout`,
  // then says 421 to whoever is left and joins the shards.
  void stop(std::chrono::milliseconds timeout);

  int active_connections() const { return connections_.load(std::memory_order_relaxed); }

 private:
  friend class InboundShard;
  InboundDependencies deps_;
  int shard_count_;
  std::vector<std::unique_ptr<InboundShard>> shards_;
  std::atomic<int> connections_{0};
  ClientConnectionCounter connections_per_client_;  // limits.max_connections_per_ip
  // What sessions ask at MAIL FROM, when a tenant has max_messages.
  std::unique_ptr<SubmissionGate> submission_gate_;
  bool stopped_ = false;
};

}  // namespace ringmail::mta
