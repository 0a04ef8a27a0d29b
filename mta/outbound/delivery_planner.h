// mta/outbound/delivery_planner.h — every delivery decision, without a socket.
//
// Owns: the scheduler (queue/scheduler.h), routing per domain (static
// routes, MX answers cached by TTL, address literals), the table of sites
// keyed by ReadyQueueKey{source, site} with their limits and connection
// counts, the decision state of every outbound connection (its targets,
// which one it tries, whether it has been ready, the job it carries),
// retries and expiry, DSNs, holds and the policy hooks (policy/: shaper,
// egress selector, hold set, suppression list, backoff evaluator).
//
// Events in (committed, loaded, resolved, connection ready / transaction
// done / connection failed or closed, tick, stop, admin commands), commands
// out as a PlannerOutput value: resolve a name, open a connection from a
// source to one address, start a transaction on a connection, quit or
// close one, spool updates and finished messages, delivery-log records,
// DSNs to submit, metric deltas. The outbound engine carries them out on
// its ring (as InboundShard does for SmtpServerSession) and turns
// completions into events; nothing here blocks or reads a clock: time
// comes from the injected runtime::Clock, randomness from a seed. It reads
// message bodies through the Spool interface (an LMDB read, or the memory
// spool in tests); it never writes the spool: updates go out as commands.
//
// Threads: one (the delivery thread); not thread-safe.
// Durability: none here; results reach the spool through the commands.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "mta/dns/dns_resolver.h"
#include "mta/outbound/delivery_admin.h"
#include "mta/smtp/smtp_client_session.h"
#include "policy/backoff_evaluator.h"
#include "policy/bounce_classifier.h"
#include "policy/egress_selector.h"
#include "policy/hold_set.h"
#include "policy/return_path.h"
#include "policy/shaper.h"
#include "policy/site_limits.h"
#include "policy/warmup.h"
#include "queue/backoff_records.h"
#include "queue/dsn.h"
#include "queue/scheduler.h"
#include "queue/spool.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"

namespace ringmail::mta {

class DkimSigner;
class DkimSignerSet;

using ConnectionId = uint64_t;
using policy::EgressChoice;

// One ready queue: a destination site as seen from one egress source. Its
// text form is the scheduler's key: "site" from the default address, and
// "name@address/site" from a configured source (the address is part of the
// key, so that a reload that moves a source starts new queues).
struct ReadyQueueKey {
  std::string source = EgressChoice::kDefault;
  std::string source_address;  // "" for the machine's default address
  std::string site;            // the MX host set, a route's smarthost, or a literal
  std::string text() const;
};

// One address to try for a site.
struct ConnectTarget {
  std::string mx;  // host name (or the smarthost as written)
  std::string ip;
  uint16_t port = 25;
};

// Where a ready queue's connections go and how many it may have.
struct SiteState {
  ReadyQueueKey key;
  std::string name;  // key.text()
  EgressChoice source;
  std::string domain;         // the recipient domain that first routed here (shaping by domain)
  std::vector<MxHost> hosts;  // by preference
  uint16_t port = 25;
  uint32_t max_connections = 32;
  uint32_t max_messages_per_connection = 100;
  // From policy::resolve_site_limits (apply_limits): the shipped provider
  // of the site ("" none), whether max_connections counts per source
  // across all its sites (then provider_key names that count: "SOURCE
  // PROVIDER"), whether TLS is required (shown by explain, not enforced yet).
  std::string provider;
  bool per_provider_connections = false;
  std::string provider_key;
  bool tls_required = false;
  // Adaptive concurrency (README, "Connections per site"): the connections
  // it may have now, from delivery.initial_connections up to
  // max_connections; 0 until its limits are applied.
  uint32_t concurrency = 0;
  uint32_t successes = 0;        // successful transactions with a backlog since it last grew
  policy::QueueShaping shaping;  // its message_rate and connection_rate
  // A backoff rule in force (policy/backoff_evaluator.h has the details):
  // no new transaction before backoff_until; rate_cut: its rates scaled.
  runtime::WallTime backoff_until{};
  bool rate_cut = false;
  bool rate_cut_base = false;  // the cut rate was made from what it sent (no configured rate)
  // Recipients started in the current and the previous minute: the send
  // rate that a rate cut scales when the queue has no message_rate.
  runtime::SteadyTime minute_start{};
  uint64_t minute_sent = 0, last_minute_sent = 0;
  // IP warm-up (policy/warmup.h): the cap this (source, site) counts
  // under, null when its source is not warming here (set by apply_limits;
  // WarmupTracker keeps the object). Over the cap its ready jobs were
  // sorted (spilled or kept) once for the window ending warmup_sorted_until.
  policy::Warmup* warmup = nullptr;
  runtime::WallTime warmup_sorted_until{};
  uint32_t connections = 0;        // open or opening
  uint32_t opening = 0;            // not yet ready for a first message
  uint32_t established = 0;        // got to ready at least once, not closed
  uint32_t busy = 0;               // in a transaction now
  std::vector<ConnectionId> idle;  // ready connections with nothing to do
  // After every address failed: jobs are deferred without a new attempt
  // until then, with that failure.
  runtime::SteadyTime down_until{};
  uint32_t down_streak = 0;  // every address failed this many times in a row (circuit breaker)
  SmtpReply last_failure;
  std::string last_mx;
};

struct OpenCommand {
  ConnectionId id = 0;
  ConnectTarget target;
  std::optional<conf::IpAddress> source;  // bound before connect
  bool starttls = true;                   // offer STARTTLS (opportunistic or required)
  // No transaction without TLS: delivery.tls: required, or the site's
  // shipped provider default or shaping rule (tls_required).
  bool require_tls = false;
};

struct StartCommand {
  ConnectionId id = 0;
  std::shared_ptr<OutboundMessage> message;
};

// Counter increments by label, merged while the label repeats.
struct LabelCounts {
  std::vector<std::pair<std::string, uint64_t>> counts;
  void add(const std::string& label);
};

struct BackoffGauge {
  std::string source, site;
  bool active = false;  // ringmail_backoff_active{source,site}
};

struct MetricDeltas {
  LabelCounts delivered_by_site;
  LabelCounts deferred_by_site;
  LabelCounts bounced_by_category;
  LabelCounts backoff_activations;  // backoff_activations_total{action}
  std::vector<BackoffGauge> backoff_active;
  // warmup_sent{source}: recipients in the current warm-up window, per
  // source (summed over its providers), set when it changed.
  std::vector<std::pair<std::string, uint64_t>> warmup_sent;
  uint64_t cancelled = 0;   // messages_cancelled_total
  uint64_t suppressed = 0;  // messages_suppressed_total
  int64_t queued = 0;       // queue_recipients{state} gauge deltas
  int64_t deferred = 0;
  std::vector<double> attempt_seconds;  // delivery_attempt_seconds observations
};

struct PlannerOutput {
  std::vector<std::string> resolve;  // DNS names to resolve (MX), each answered by resolved()
  std::vector<OpenCommand> open;
  std::vector<StartCommand> start;
  std::vector<ConnectionId> quit;   // say QUIT on a ready connection, then close
  std::vector<ConnectionId> close;  // cut now (stop deadline); in-flight results are local failures
  std::vector<queue::RecipientUpdate> updates;  // for the spool writer, in order
  std::vector<queue::MessageId> finished;       // messages whose recipients are all final
  // Control-plane state for the same commit as `updates` (the warm-up
  // counts, queue/warmup_records.h).
  std::vector<queue::ControlWrite> controls;
  std::vector<nlohmann::ordered_json> records;             // delivery-log records, in order
  std::vector<std::unique_ptr<queue::SpoolMessage>> dsns;  // to submit like new mail
  MetricDeltas metrics;
  // DKIM signatures made at delivery (sign_at_delivery), one entry each,
  // for dkim_signatures_total; the signers belong to the planner's set.
  std::vector<const DkimSigner*> dkim_signatures;
  size_t admin_bounced = 0;  // recipients an AdminCommand bounce took out

  // Empty again, keeping the vectors' capacity (DeliveryPlanner::recycle).
  void clear();
};

// Whether a delivery.routes entry covers the (lower-case) domain: exact,
// "*.suffix" (not the suffix itself), or "*".
bool route_matches(const conf::Route& route, const std::string& domain);

class DeliveryPlanner {
 public:
  // spool and clock must outlive the planner.
  DeliveryPlanner(const queue::Spool& spool, const runtime::Clock& clock,
                  std::shared_ptr<const conf::Config> config, uint64_t random_seed);

  // Hands a carried-out output back, so that the next event fills its
  // vectors without allocating them again.
  void recycle(PlannerOutput&& used);

  // Without a delivery log nobody reads the records: they are not built.
  void set_records_wanted(bool wanted) { records_wanted_ = wanted; }

  // Routes, retry, limits and egress of the new config apply to the next
  // attempts (domains are routed afresh; lookups in flight are kept).
  void set_config(std::shared_ptr<const conf::Config> config);

  // Start-up: the active recipients of one stored message (no body), due
  // at their next attempt time. Call for each message, then start().
  void load(const queue::SpoolMessage& message, const std::vector<size_t>& active);
  PlannerOutput start();

  // Messages just committed, with their content (kept for the first attempt).
  PlannerOutput committed(const std::vector<std::shared_ptr<queue::SpoolMessage>>& messages);
  // Messages found in the spool on a rescan (mail released from quarantine):
  // those not known already are scheduled.
  PlannerOutput adopt(const std::vector<queue::SpoolMessage>& messages);
  // The answer to a resolve command.
  PlannerOutput resolved(const std::string& name, const MxResolution& resolution);

  // The connection's session is ready (after EHLO, or after a transaction).
  PlannerOutput connection_ready(ConnectionId id);
  // The transaction started on the connection ended; `tls` describes the
  // session's TLS ("" in clear text).
  PlannerOutput transaction_done(ConnectionId id, const TransactionResult& result,
                                 const std::string& tls);
  // The connection ended with a failure (connect, greeting, EHLO, TLS, a
  // timeout, a lost connection); tls_failed: the failure was STARTTLS or
  // its handshake. The connection is gone for the planner.
  PlannerOutput connection_failed(ConnectionId id, const SmtpReply& why, bool tls_failed);
  // The connection ended without a failure (after quit or close).
  PlannerOutput connection_closed(ConnectionId id);

  // Periodic: due jobs, idle connections past delivery.idle_timeout, ready
  // queues left without a connection, holds that ended, the stop deadline.
  PlannerOutput tick();
  // No new connection or transaction; idle connections quit; at `timeout`
  // from now every connection left is closed.
  PlannerOutput stop(runtime::Millis timeout);
  // Holds and bounces; a bounce's count is in PlannerOutput::admin_bounced.
  PlannerOutput command(const AdminCommand& command);

  // Stopping, and no connection is left.
  bool stopped() const { return stopping_ && open_connections_ == 0 && connections_.empty(); }

  // The admin API's view. with_idle_sites: also sites with nothing queued
  // that delivered or bounced since start (the stats route).
  DeliverySnapshot snapshot(const QueueFilter& filter, bool with_idle_sites) const;
  // Where the recipients of one message are (O(jobs), like snapshot()).
  MessageLiveView live_view(const std::string& message_id) const;

  // For tests, metrics and the admin API.
  const queue::Scheduler& scheduler() const { return scheduler_; }
  const SiteState* site(const std::string& key) const;
  size_t open_connections() const { return open_connections_; }
  size_t active_messages() const { return active_recipients_.size(); }

  // The suppression lists (queue/suppression_store.h): a recipient on its
  // tenant's list or on "*" ends `suppressed` when its job comes up, never
  // attempted; a hard bounce adds its address, durable with the bounce's
  // commit. Null (the default): nothing is suppressed. Must outlive the planner.
  void set_suppressions(queue::SuppressionStore* store) { suppressions_ = store; }

  // The keys that sign, at delivery, each recipient's copy of a message
  // marked meta.sign_at_delivery (with its List-Unsubscribe fields,
  // policy/list_unsubscribe.h); the daemon's set, replaced at each reload.
  // Null or empty: those copies go with their fields, unsigned.
  void set_dkim(std::shared_ptr<const DkimSignerSet> dkim) { dkim_ = std::move(dkim); }

 private:
  struct Connection {
    ConnectionId id = 0;
    std::string site;  // SiteState::name
    std::vector<ConnectTarget> targets;
    size_t target = 0;
    bool starttls = true;
    bool tls_retry_done = false;
    std::optional<conf::IpAddress> source;
    bool ready_once = false;
    bool idle = false;
    bool quitting = false;
    runtime::SteadyTime idle_since{};
    uint32_t messages = 0;  // transactions started on it
    std::optional<queue::JobId> job;
    std::shared_ptr<const queue::SpoolMessage> message;
    runtime::SteadyTime attempt_started{};
  };

  // --- routing (delivery_planner_routing.cc)
  void add_jobs(const queue::SpoolMessage& message, const std::vector<size_t>& indexes,
                runtime::WallTime due);
  void run_due(PlannerOutput& out);
  void route(queue::JobId id, PlannerOutput& out);
  SiteState& site_state(const std::string& site_name, const EgressChoice& source, bool* created);
  SiteState& site_for_route(const conf::Route& route, const EgressChoice& source);
  SiteState& site_for_resolution(const MxResolution& resolution, const EgressChoice& source);
  SiteState& site_for_literal(const std::string& literal, const std::string& ip,
                              const EgressChoice& source);
  void apply_limits(SiteState& site);
  // Into the site's ready queue, or deferred at once while the site is
  // known to be down. True when it is ready.
  bool make_ready(queue::JobId id, SiteState& site, PlannerOutput& out);
  void release_held(const std::string& scope, PlannerOutput& out);
  static std::string domain_scope(const std::string& domain);  // held_'s key
  void admin_bounce(const AdminCommand& command, PlannerOutput& out);

  // --- rates (delivery_planner_rates.cc)
  // Whether the job may start now under its tenant's and campaign's
  // rates; if not it is set aside in their wait list. Call after pick_next.
  bool pass_job_rates(queue::JobId id, queue::Job& job);
  // The tokens of a starting job.
  void take_job_tokens(queue::Job& job, uint32_t recipients);
  // Wakes `key` ("s:SITE", or a wait list "t:NAME"/"c:NAME") at `when`
  // (once: an earlier wake-up already armed stands).
  void wake_at(const std::string& key, runtime::SteadyTime when);
  void run_wakes(PlannerOutput& out);
  void release_rate_waiters(const std::string& bucket, PlannerOutput& out);
  // Adaptive concurrency feedback.
  void concurrency_success(SiteState& site);
  void concurrency_failure(SiteState& site);
  void apply_tenant_rates();
  // A job's egress pool: its campaign's, else its tenant's, else default.
  std::string_view pool_of(const queue::Job& job) const;
  // The source of the job's next connection to `site` (whose MX hosts are
  // `hosts`, null when unknown): its pool's turn, passing over sources whose
  // (source, site) a backoff rule suspended or that are over their warm-up
  // cap and would spill the job (none left: the turn's source, where the
  // job waits).
  EgressChoice choose_source(const queue::Job& job, const std::string& site,
                             const std::vector<MxHost>* hosts);
  // --- backoff (delivery_planner_rates.cc)
  // A remote reply on the site: its rule's suspension or rate cut takes
  // effect; true when the rule bounces that recipient.
  bool backoff_reply(SiteState& site, const SmtpReply& reply, PlannerOutput& out);
  void end_backoff(SiteState& site, PlannerOutput& out);
  void run_backoff(PlannerOutput& out);  // recovery and ends, each tick
  void count_sent(SiteState& site, uint32_t recipients);

  // The override in force on the site as a control write (persisted with
  // the next commit), or its deletion once it ended.
  void persist_backoff(const SiteState& site);
  void forget_backoff(const std::string& queue);
  // Construction: the overrides the spool kept; a site made later takes
  // its own over (adopt_backoff, from apply_limits).
  void restore_backoff();
  void adopt_backoff(SiteState& site);

  // --- warm-up (delivery_planner_warmup.cc)
  void restore_warmup();  // the counts the spool kept (construction)
  // The warm-up cap (source, site) counts under; null: none.
  policy::Warmup* warmup_for(const std::string& source, const std::vector<MxHost>* hosts);
  // Whether the site's source may start a transaction under its warm-up
  // cap; over it, its ready jobs are spilled to other sources or kept
  // (once per window) and the site is woken when the next window opens.
  bool warmup_allows(SiteState& site, PlannerOutput& out);
  void spill_over_cap(SiteState& site, PlannerOutput& out);
  // The queue of the same destination from another source.
  SiteState& sibling_site(const SiteState& site, const EgressChoice& source);
  void record_warmup(SiteState& site, uint32_t recipients);
  // Pending control writes and changed warm-up states into out.controls.
  void flush_controls(PlannerOutput& out);
  void publish_warmup_gauges(PlannerOutput& out);

  // --- connections (delivery_planner.cc)
  void service_site(SiteState& site, PlannerOutput& out);
  void service_ready_sites(PlannerOutput& out);
  void open_connection(SiteState& site, PlannerOutput& out);
  void use_connection(Connection& c, PlannerOutput& out);
  // False when the job had nothing left to send (it is gone).
  bool start_transaction(Connection& c, queue::JobId id, PlannerOutput& out);
  // The job keeps its first `keep` recipients; the others become a new
  // job due now (or, singly, one job each), routed by the next run_due.
  void split_job(queue::JobId id, size_t keep, bool singly);
  void quit(Connection& c, PlannerOutput& out);
  void end_connection(ConnectionId id, const SmtpReply* failure, bool tls_failed,
                      PlannerOutput& out);
  bool site_blocked(const SiteState& site) const;
  // TLS as the site needs it: offered (STARTTLS) unless delivery.tls is
  // none (the operator's choice wins over a provider's), and required by
  // delivery.tls: required or by the site's limits (tls_required).
  bool offers_tls(const SiteState&) const {
    return config_->delivery.tls != conf::OutboundTls::none;
  }
  bool requires_tls(const SiteState& site) const {
    return config_->delivery.tls == conf::OutboundTls::required ||
           (site.tls_required && config_->delivery.tls != conf::OutboundTls::none);
  }
  SiteState& site_state_of(const Connection& c) { return sites_[c.site]; }
  // policy.return_path of config_, null when it is not configured.
  const conf::ReturnPathConfig* return_path() const { return return_path_; }
  // The sender and header prefix of the job's copy (policy/return_path.h,
  // and for a message marked sign_at_delivery its List-Unsubscribe fields
  // and DKIM signatures); under VERP or sign_at_delivery a job of several
  // recipients keeps its first and gives the others jobs of their own.
  void apply_outgoing_headers(queue::JobId id, const queue::SpoolMessage& message,
                              OutboundMessage& outbound, PlannerOutput& out);
  // List-Unsubscribe fields for recipient `index`, signed by every key for
  // the From domain: the DKIM-Signature fields, then the two fields.
  std::string signed_unsubscribe_fields(const queue::SpoolMessage& message, uint32_t index,
                                        PlannerOutput& out);

  // --- results (delivery_planner_results.cc)
  void fail_job(queue::JobId id, const SmtpReply& reply, const std::string& mx, PlannerOutput& out);
  // bounce_now[k]: a backoff rule bounces recipient k at once.
  void finish_job(queue::JobId id, const queue::SpoolMessage* message,
                  const std::vector<SmtpReply>& replies, const SiteState* where,
                  const std::string& mx, const std::string& tls, PlannerOutput& out,
                  const std::vector<bool>* bounce_now = nullptr);
  void expire_job(queue::JobId id, PlannerOutput& out);
  // An operator's bounce (bounced, logged AdminBounce) or a campaign's
  // cancellation (cancelled, logged Cancelled): every recipient of the job
  // ends so with the reason; not an attempt, no DSN.
  void finish_by_operator(queue::JobId id, queue::RecipientState state, const char* type,
                          const std::string& reason, PlannerOutput& out);
  void cancel_job(queue::JobId id, PlannerOutput& out);
  // Recipients of the job on a suppression list end `suppressed` (logged
  // Suppressed with the entry's reason, counted, not attempted). True when
  // none is left: the job is gone.
  bool suppress_recipients(queue::JobId id, PlannerOutput& out);
  // A hard bounce of a recipient of `message` (not a DSN of ours) puts it
  // on its tenant's list with the commit of the bounce.
  void suppress_after_bounce(const queue::SpoolMessage& message, uint32_t index,
                             conf::BounceCategory category, const SmtpReply& reply,
                             PlannerOutput& out);
  // A final recipient's bookkeeping: `count` fewer active recipients of the
  // message; at none it is finished (deleted with the commit).
  void recipients_done(const std::string& message_id, uint32_t count, PlannerOutput& out);
  void forget_job(queue::JobId id, PlannerOutput& out);
  std::shared_ptr<const queue::SpoolMessage> message_for(const queue::Job& job, bool content);
  void message_done(const std::string& id);
  void forget_old_finished();
  void make_dsn(const queue::SpoolMessage& original, std::vector<queue::DsnRecipient> recipients,
                PlannerOutput& out);

  // Every event reads the clock once, at its start: its decisions share
  // one "now", and a busy delivery thread does not read the clock per job.
  PlannerOutput begin_event();
  void read_clock();
  runtime::SteadyTime steady() const { return now_.steady; }
  runtime::WallTime wall() const { return now_.wall; }
  int64_t unix_ms() const { return now_.unix_ms; }

  const queue::Spool& spool_;
  const runtime::Clock& clock_;
  struct EventTime {
    runtime::SteadyTime steady{};
    runtime::WallTime wall{};
    int64_t unix_ms = 0;
  };
  EventTime now_;
  PlannerOutput spare_;
  std::shared_ptr<const conf::Config> config_;
  const conf::ReturnPathConfig* return_path_ = nullptr;            // in *config_
  const conf::ListUnsubscribeConfig* list_unsubscribe_ = nullptr;  // in *config_
  std::shared_ptr<const DkimSignerSet> dkim_;
  policy::BounceClassifier classifier_;
  std::vector<runtime::Millis> retry_intervals_;
  policy::EgressSelector egress_;
  policy::Shaper shaper_;
  policy::HoldSet holds_;
  queue::SuppressionStore* suppressions_ = nullptr;
  policy::BackoffEvaluator backoff_;
  std::mt19937_64 random_;

  queue::Scheduler scheduler_;
  struct DomainRoute {
    bool resolving = false;
    std::shared_ptr<const MxResolution> resolution;  // the last ok answer
    runtime::SteadyTime expires{};
    std::vector<queue::JobId> waiting;  // jobs waiting for the lookup
  };
  std::unordered_map<std::string, DomainRoute> domains_;
  std::unordered_map<std::string, SiteState> sites_;
  std::unordered_map<ConnectionId, Connection> connections_;
  ConnectionId next_connection_ = 1;
  uint32_t open_connections_ = 0;
  // Jobs held by a tenant or campaign pause ("t:NAME", "c:NAME"): not
  // attempts, they wait here (routing) until the hold ends.
  std::unordered_map<std::string, std::vector<queue::JobId>> held_;
  // Jobs waiting for a token of their tenant's or campaign's rate, by
  // bucket ("t:NAME", "c:NAME"), oldest first; set aside in the scheduler.
  std::unordered_map<std::string, std::deque<queue::JobId>> rate_waiting_;
  // Armed wake-ups: when a site's token or a wait list's token is due.
  std::multimap<runtime::SteadyTime, std::string> wakes_;
  std::unordered_map<std::string, std::string> campaign_pools_;  // set_campaign_policy
  uint32_t backoff_suspended_ = 0;  // sites with a backoff suspension in force
  policy::WarmupTracker warmup_;
  bool warmup_dirty_ = false;  // a count or day changed since the last flush
  // Control writes for the next event's output (records to delete at
  // start-up, backoff overrides).
  std::vector<queue::ControlWrite> controls_pending_;
  // Backoff overrides restored from the spool whose site was not made
  // again yet, by ready-queue text.
  std::unordered_map<std::string, queue::BackoffRecord> restored_backoff_;
  std::unordered_map<std::string, uint64_t> warmup_published_;  // warmup_sent by source
  runtime::SteadyTime warmup_gauges_at_{};
  // Connections per (source, provider) of sites whose limit is the
  // provider's (SiteState::provider_key); mutable for apply_limits, which
  // moves a site's connections when a reload changes its key.
  mutable std::unordered_map<std::string, uint32_t> provider_connections_;
  void count_provider_connection(const SiteState& site, int delta);
  std::unordered_map<std::string, runtime::SteadyTime> wake_armed_;

  // Messages with content, kept from their commit until they are done, so
  // that the first attempt reads nothing back (bounded by bytes).
  std::unordered_map<std::string, std::shared_ptr<const queue::SpoolMessage>> cache_;
  uint64_t cache_bytes_ = 0;
  // Recipients not yet final, per message id: 0 -> deleted from the spool.
  std::unordered_map<std::string, uint32_t> active_recipients_;
  // Messages whose last recipient finished in the last kRecentlyFinished,
  // whose deletion may not be committed yet: a rescan must not schedule
  // them again meanwhile.
  static constexpr runtime::Millis kRecentlyFinished{30000};
  std::unordered_set<std::string> recently_finished_;
  std::deque<std::pair<runtime::SteadyTime, std::string>> recently_finished_order_;

  DeliveryTotals totals_;
  struct SiteCounts {
    uint64_t delivered = 0, bounced = 0;
  };
  std::unordered_map<std::string, SiteCounts> site_counts_;  // by SiteState::name

  bool records_wanted_ = true;
  bool stopping_ = false;
  runtime::SteadyTime stop_deadline_{};
  bool stop_deadline_passed_ = false;
};

}  // namespace ringmail::mta
