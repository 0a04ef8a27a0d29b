// mta/daemon.h — ringmaild's process lifecycle: command line, config load
// and reload, spool recovery, start-up order, signals, sd_notify, and the
// orderly shutdown that closes the spool cleanly.
//
// Owns: the process. run_ringmaild() is called once from main() on the main
// thread, which then only waits for signals; all work happens on shard,
// spool-writer, delivery and auth threads, and on the control plane's.
//
// The control plane (admin-api/, a layer above) plugs in through two
// interfaces: the daemon offers DaemonControl (what an operator may see and
// ask), and the control plane is a ControlPlane the daemon starts before
// READY=1, tells about reloads, and stops first at shutdown.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/campaigns.h"
#include "mta/inbound/message_injector.h"
#include "mta/message_tracker.h"
#include "mta/outbound/delivery_admin.h"

namespace ringmail::runtime {
class EventHub;
class MetricsRegistry;
}  // namespace ringmail::runtime
namespace ringmail::queue {
class SuppressionStore;
}

namespace ringmail::mta {

// What the control plane may see and ask of the running daemon. Every
// method may be called from any thread; none takes a lock that a shard or
// the delivery thread waits for (answers from the delivery thread are
// asked for through its mailbox, with a timeout).
class DaemonControl {
 public:
  virtual ~DaemonControl() = default;
  // The configuration in force.
  virtual std::shared_ptr<const conf::Config> config() const = 0;
  // "" while the spool is open and the listeners accept; otherwise why not.
  virtual std::string unhealthy_reason() const = 0;
  // The Prometheus text exposition (format 0.0.4).
  virtual std::string metrics_text() const = 0;
  // nullopt: the delivery thread did not answer in time.
  virtual std::optional<DeliverySnapshot> snapshot(const QueueFilter& filter,
                                                   bool with_idle_sites) = 0;
  // Carries out an operator's command. Holds (suspensions, pause of all
  // delivery) are persisted in the spool first, so they survive a restart.
  // The result is the number of recipients a bounce took out; nullopt with
  // *error when it could not be done.
  virtual std::optional<size_t> command(const AdminCommand& command, std::string* error) = 0;
  // As SIGHUP: the errors that refused the new config (each
  // "FILE:LINE: key.path: problem"), or none when it is in force.
  virtual std::vector<std::string> reload() = 0;
  // Campaigns and tenants (mta/campaigns.h): records and statistics read
  // from the spool; a change is persisted first, then carried out by
  // delivery through command(). Null while the spool is not open.
  virtual CampaignRegistry* campaigns() { return nullptr; }
  // Message status and dead letters (mta/message_tracker.h); null while
  // the spool is not open (and in doubles that do not serve those routes).
  virtual MessageTracker* messages() { return nullptr; }
  // The suppression lists; null before the spool is open.
  virtual queue::SuppressionStore* suppressions() { return nullptr; }
  // Delivery-log records as they are written; null without a delivery log.
  virtual runtime::EventHub* events() = 0;
  // The registry /metrics renders (the control plane counts into it too).
  virtual runtime::MetricsRegistry& metrics() = 0;
  // GET /api/v1/explain: the limits delivery adds at run time to the
  // configured ones (policy/site_limits.h) for that ready queue, e.g. an
  // active backoff ("backoff …") or a warm-up cap ("warmup …"), listed
  // after them. The extension point of the traffic policy: none today (the
  // planner keeps no such state yet); the daemon will ask the delivery
  // thread through its mailbox, with a timeout, as snapshot() does.
  virtual std::vector<ExplainedLimit> explain_live(const ExplainTarget& target) {
    (void)target;
    return {};
  }
  // POST /api/v1/messages: the message on the SMTP submission path
  // (milters, DKIM, spool), on the calling thread; returns once the commit
  // is durable or the message was refused (mta/inbound/message_injector.h).
  // Doubles that do not inject need not override it.
  virtual InjectionResult inject(const InjectionRequest& request) {
    (void)request;
    InjectionResult r;
    r.detail = "injection is not available";
    return r;
  }
};

class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  // Before READY=1; false with a one-line reason makes start-up fail (exit 1).
  virtual bool start(std::string* error) = 0;
  // After a reload took effect (e.g. the token file is read again).
  virtual void reload(std::shared_ptr<const conf::Config> config) = 0;
  // First at shutdown: no request is served after this returns.
  virtual void stop() = 0;
};

using ControlPlaneFactory = std::function<std::unique_ptr<ControlPlane>(DaemonControl&)>;

// Exit codes (CONTRACT.md): 0 clean stop, 1 bad config or start-up failure,
// 2 bad command line. make_control_plane may be empty (no admin server).
int run_ringmaild(int argc, char** argv, const ControlPlaneFactory& make_control_plane = {});

}  // namespace ringmail::mta
