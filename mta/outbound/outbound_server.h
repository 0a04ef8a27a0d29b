// mta/outbound/outbound_server.h — the delivery engine: takes what the spool holds
// and delivers it to the recipients' MX hosts (or a configured smarthost).
//
// Owns: the delivery thread, with its own io_uring, the scheduler's ready
// queues per site (queue/scheduler.h), outbound connections and their
// SmtpClientSessions, the MX resolver (mta/dns_resolver.h), and the
// translation of every result into a spool update (through the spool
// writer's group commit), a delivery-log record, a metric, and, for
// bounces and expirations, a DSN to the sender.
// start(), enqueue(), reload() and stop() may be called from any thread;
// everything else runs on the delivery thread.
//
// Durability: delivery is at-least-once. A recipient's new state reaches
// the spool with the writer's next commit; a crash before that commit
// repeats the attempt (a possible duplicate), never loses the recipient.
// Messages whose recipients are all final are deleted from the spool.
//
// SECURITY: faces the network (remote SMTP servers, DNS answers); protocol
// decisions are the client session's, this layer moves bytes and enforces
// limits and timeouts.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/outbound/delivery_admin.h"

namespace ringmail::runtime {
class MetricsRegistry;
}
namespace ringmail::queue {
class DeliveryLog;
class Spool;
class SpoolWriter;
class SuppressionStore;
struct SpoolMessage;
}  // namespace ringmail::queue

namespace ringmail::mta {

class DkimSignerSet;

class OutboundEngine;

struct OutboundDependencies {
  queue::Spool* spool = nullptr;                    // required: bodies are read from here
  queue::SpoolWriter* spool_writer = nullptr;       // required: state updates, DSNs
  queue::DeliveryLog* delivery_log = nullptr;       // may be null
  runtime::MetricsRegistry* metrics = nullptr;      // required
  queue::SuppressionStore* suppressions = nullptr;  // may be null: nothing is suppressed
};

class OutboundServer {
 public:
  explicit OutboundServer(OutboundDependencies deps);
  ~OutboundServer();  // stop(0)
  OutboundServer(const OutboundServer&) = delete;
  OutboundServer& operator=(const OutboundServer&) = delete;

  // Reads the spool's active recipients (without bodies) into the
  // scheduler, starts the resolver and the delivery thread. False with a
  // one-line reason on failure.
  // dkim: the keys that sign copies marked sign_at_delivery (may be null).
  bool start(std::shared_ptr<const conf::Config> config, std::shared_ptr<const DkimSignerSet> dkim,
             std::string* error);
  // Messages that were just committed (the spool writer's listener): one
  // hand-over per commit, so the delivery thread wakes once per batch.
  void enqueue(std::vector<std::unique_ptr<queue::SpoolMessage>> messages);
  // Routes, retry, limits and timeouts of the new config apply to the next
  // attempts; the resolver's nameservers change only at restart.
  void reload(std::shared_ptr<const conf::Config> config,
              std::shared_ptr<const DkimSignerSet> dkim);
  // Reads the spool's active recipients (on the caller's thread, without
  // bodies) and schedules those of messages the engine does not know: mail
  // released from quarantine while the daemon ran. Called on SIGHUP.
  void rescan();
  // The admin API (any thread; the caller waits, the delivery thread does
  // not): a snapshot of the queue and of the counts since start, or an
  // operator command (its result: how many recipients a bounce took out).
  // nullopt when the delivery thread did not answer within `timeout`
  // (stopping or stopped).
  std::optional<DeliverySnapshot> snapshot(const QueueFilter& filter, bool with_idle_sites,
                                           std::chrono::milliseconds timeout);
  std::optional<size_t> command(const AdminCommand& command, std::chrono::milliseconds timeout);
  // Where one message's recipients are now (in a transaction, held);
  // nullopt as for snapshot().
  std::optional<MessageLiveView> live_view(const std::string& message_id,
                                           std::chrono::milliseconds timeout);
  // Opens no new connection, lets transactions in progress finish until
  // `timeout`, then cuts them (their recipients are retried later) and
  // joins the thread. Their results are handed to the spool writer before
  // this returns. Idempotent. Destroy the server only after the spool
  // writer has stopped (it may still confirm commits to the engine).
  void stop(std::chrono::milliseconds timeout);

 private:
  // The engine while it runs (not stopped), else null.
  OutboundEngine* running_engine();

  OutboundDependencies deps_;
  std::mutex mutex_;  // engine_ against enqueue() from the spool writer during stop()
  std::unique_ptr<OutboundEngine> engine_;
  bool stopped_ = false;
};

}  // namespace ringmail::mta
