// The planner's connections: which ready queue gets a connection, which
// job goes on it, what a failed connection means (next address, clear-text
// retry, site down), idle and stop handling. Routing is in
// delivery_planner_routing.cc, results in delivery_planner_results.cc.
#include "mta/outbound/delivery_planner.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "mta/dkim/dkim_signer.h"
#include "policy/list_unsubscribe.h"
#include "queue/spool_codec.h"

namespace ringmail::mta {

namespace {

constexpr uint64_t kCacheBudgetBytes = 256ull << 20;
// The circuit breaker: a site whose every address failed is left alone
// (its jobs deferred without an attempt) for kSiteDown, doubled for each
// such failure in a row up to kSiteDownMax; then one probe connection
// tries it, and its first ready session closes the circuit again.
constexpr runtime::Millis kSiteDown{1000};
constexpr runtime::Millis kSiteDownMax{300000};

}  // namespace

void LabelCounts::add(const std::string& label) {
  if (!counts.empty() && counts.back().first == label) {
    ++counts.back().second;
    return;
  }
  for (auto& [name, count] : counts) {
    if (name == label) {
      ++count;
      return;
    }
  }
  counts.emplace_back(label, 1);
}

void PlannerOutput::clear() {
  resolve.clear();
  open.clear();
  start.clear();
  quit.clear();
  close.clear();
  updates.clear();
  finished.clear();
  controls.clear();
  records.clear();
  dsns.clear();
  dkim_signatures.clear();
  metrics.delivered_by_site.counts.clear();
  metrics.deferred_by_site.counts.clear();
  metrics.bounced_by_category.counts.clear();
  metrics.backoff_activations.counts.clear();
  metrics.backoff_active.clear();
  metrics.warmup_sent.clear();
  metrics.cancelled = 0;
  metrics.suppressed = 0;
  metrics.queued = 0;
  metrics.deferred = 0;
  metrics.attempt_seconds.clear();
  admin_bounced = 0;
}

void DeliveryPlanner::recycle(PlannerOutput&& used) {
  used.clear();
  spare_ = std::move(used);
}

void DeliveryPlanner::read_clock() {
  now_.steady = clock_.steady();
  now_.wall = clock_.wall();
  now_.unix_ms = std::chrono::duration_cast<runtime::Millis>(now_.wall.time_since_epoch()).count();
}

PlannerOutput DeliveryPlanner::begin_event() {
  read_clock();
  PlannerOutput out = std::move(spare_);
  spare_.clear();  // a moved-from output is valid but unspecified
  // What the last event counted goes with this event's results: a count
  // is on disk by the time its transaction's result is.
  if (warmup_dirty_ || !controls_pending_.empty()) flush_controls(out);
  return out;
}

DeliveryPlanner::DeliveryPlanner(const queue::Spool& spool, const runtime::Clock& clock,
                                 std::shared_ptr<const conf::Config> config, uint64_t random_seed)
    : spool_(spool), clock_(clock), random_(random_seed) {
  set_config(std::move(config));
  restore_warmup();
  restore_backoff();
}

void DeliveryPlanner::set_config(std::shared_ptr<const conf::Config> config) {
  // delivery.paused is the start-up default of the pause of all delivery
  // (and a reload that changes it pauses or resumes); the admin API's
  // pause and resume change it at run time.
  if (!config_ || config_->delivery.paused != config->delivery.paused) {
    if (config->delivery.paused) {
      holds_.pause_all();
    } else if (config_) {
      holds_.resume_all();
    }
  }
  config_ = std::move(config);
  classifier_ = policy::BounceClassifier(config_->policy ? config_->policy->bounce_rules
                                                         : std::vector<conf::BounceRule>{});
  backoff_.reconfigure(config_->policy.get());
  retry_intervals_.assign(config_->delivery.retry.intervals.begin(),
                          config_->delivery.retry.intervals.end());
  // Kept states stay; every site's Warmup pointer is set again below.
  warmup_.set_plans(config_->policy ? config_->policy->warmup : std::vector<conf::WarmupPlan>{});
  warmup_dirty_ = true;  // dropped keys are deleted, new ones written
  // Site limits follow the new config at their next connection.
  for (auto& [name, site] : sites_) apply_limits(site);
  // Routes may have changed: route every domain afresh, but keep the jobs
  // waiting for a lookup in flight.
  for (auto& [name, domain] : domains_) {
    domain.resolution.reset();
    domain.expires = {};
  }
  egress_.set_policy(config_->policy.get());
  apply_tenant_rates();
  return_path_ =
      config_->policy && config_->policy->return_path ? &*config_->policy->return_path : nullptr;
  list_unsubscribe_ = config_->policy && config_->policy->list_unsubscribe
                          ? &*config_->policy->list_unsubscribe
                          : nullptr;
}

const SiteState* DeliveryPlanner::site(const std::string& key) const {
  auto it = sites_.find(key);
  return it == sites_.end() ? nullptr : &it->second;
}

void DeliveryPlanner::load(const queue::SpoolMessage& message, const std::vector<size_t>& active) {
  // Recipients already due (queued ones, and deferred ones whose time has
  // come) go at once; the others together once the last of them is due.
  // One due time for all would hold a queued recipient back until its
  // deferred neighbours' retry.
  read_clock();
  const int64_t now = unix_ms();
  std::vector<size_t> due_now, later;
  int64_t due_later = 0;
  for (size_t i : active) {
    const int64_t next = message.envelope.recipients[i].next_attempt_unix_ms;
    if (next <= now) {
      due_now.push_back(i);
    } else {
      later.push_back(i);
      due_later = std::max(due_later, next);
    }
  }
  if (!due_now.empty()) add_jobs(message, due_now, runtime::WallTime{});
  if (!later.empty()) add_jobs(message, later, runtime::from_unix_ms(due_later));
}

PlannerOutput DeliveryPlanner::start() {
  PlannerOutput out = begin_event();
  for (const auto& [queue, r] : restored_backoff_) {
    out.metrics.backoff_active.push_back(BackoffGauge{r.source, r.site, true});
  }
  run_due(out);
  return out;
}

PlannerOutput DeliveryPlanner::committed(
    const std::vector<std::shared_ptr<queue::SpoolMessage>>& messages) {
  PlannerOutput out = begin_event();
  std::vector<size_t> indexes;
  for (const auto& message : messages) {
    // A rescan may have found it first.
    if (active_recipients_.contains(message->id.value)) continue;
    indexes.clear();
    for (size_t i = 0; i < message->envelope.recipients.size(); ++i) {
      if (queue::is_active(message->envelope.recipients[i].state)) indexes.push_back(i);
    }
    if (indexes.empty()) continue;  // quarantined: an operator releases it
    // A retried dead letter was counted when it first came.
    if (message->origin == queue::MessageOrigin::received) totals_.received += indexes.size();
    if (cache_bytes_ + message->content.size() <= kCacheBudgetBytes) {
      cache_bytes_ += message->content.size();
      cache_.emplace(message->id.value, message);
    }
    add_jobs(*message, indexes, runtime::WallTime{});
  }
  if (!stopping_) run_due(out);
  return out;
}

PlannerOutput DeliveryPlanner::adopt(const std::vector<queue::SpoolMessage>& messages) {
  PlannerOutput out = begin_event();
  size_t adopted = 0;
  for (const queue::SpoolMessage& m : messages) {
    // Already scheduled, or finished with its result not yet committed.
    if (active_recipients_.contains(m.id.value) || recently_finished_.contains(m.id.value)) {
      continue;
    }
    std::vector<size_t> indexes;
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
      const queue::Recipient& r = m.envelope.recipients[i];
      if (!queue::is_active(r.state)) continue;
      indexes.push_back(i);
      (r.state == queue::RecipientState::deferred ? out.metrics.deferred : out.metrics.queued) += 1;
    }
    if (indexes.empty()) continue;
    load(m, indexes);  // each recipient due at its own time, as at start-up
    ++adopted;
  }
  if (adopted > 0) spdlog::info("delivery: {} messages found in the spool on rescan", adopted);
  if (!stopping_) run_due(out);
  return out;
}

MessageLiveView DeliveryPlanner::live_view(const std::string& message_id) const {
  MessageLiveView view;
  if (!active_recipients_.contains(message_id)) return view;
  view.scheduled = true;
  const runtime::WallTime now = clock_.wall();
  scheduler_.for_each([&](const queue::Job& job, queue::Scheduler::Place place) {
    if (job.id.value != message_id) return;
    const bool in_flight = place == queue::Scheduler::Place::in_flight;
    const SiteState* where = job.site.empty() ? nullptr : site(job.site);
    const bool held =
        !in_flight && (holds_.all_paused() || holds_.holds_job(job.tenant, job.campaign) ||
                       holds_.domain_suspended(job.domain, now) ||
                       (where && holds_.site_suspended(where->key.site, now)));
    for (const queue::JobRecipient& r : job.recipients) {
      if (in_flight) view.in_flight.push_back(r.index);
      if (held) view.held.push_back(r.index);
    }
  });
  return view;
}

bool DeliveryPlanner::site_blocked(const SiteState& site) const {
  return stopping_ || holds_.all_paused() || site.down_until > steady() ||
         site.backoff_until > wall() || holds_.site_suspended(site.key.site, wall()).has_value();
}

void DeliveryPlanner::service_site(SiteState& site, PlannerOutput& out) {
  if (site_blocked(site)) return;
  const runtime::SteadyTime now = steady();
  if (site.shaping.limited()) {
    // Out of message tokens: every job of the queue waits for the next one.
    const policy::ShapingDecision d = site.shaping.may_send(now);
    if (!d.go) {
      wake_at("s:" + site.name, d.wait_until);
      return;
    }
  }
  if (!warmup_allows(site, out)) return;
  // Idle connections first. Each one either starts a job or goes back
  // idle (nothing ready, or a rate says wait): one try each.
  for (size_t tries = site.idle.size();
       tries > 0 && !site.idle.empty() && scheduler_.ready(site.name) > 0; --tries) {
    const ConnectionId id = site.idle.back();
    site.idle.pop_back();
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.quitting) continue;
    it->second.idle = false;
    use_connection(it->second, out);
  }
  // A new connection only for a backlog deeper than the connections being
  // opened and those in a transaction (each takes the next job when its
  // transaction ends), and within the queue's concurrency.
  const size_t ready = scheduler_.ready(site.name);
  // A site coming back from a circuit break gets one probe connection.
  const uint32_t allowed = site.down_streak > 0 ? 1 : site.concurrency;
  while (ready > site.opening + site.busy && site.connections < allowed &&
         open_connections_ < config_->delivery.max_connections) {
    // A provider's limit counts this source's connections to all its sites.
    if (!site.provider_key.empty() &&
        provider_connections_[site.provider_key] >= site.max_connections) {
      break;
    }
    if (site.shaping.limited()) {
      const policy::ShapingDecision d = site.shaping.may_connect(now);
      if (!d.go) {
        wake_at("s:" + site.name, d.wait_until);
        break;
      }
    }
    const uint32_t before = site.connections;
    open_connection(site, out);
    if (site.connections == before) break;  // no address to connect to
    site.shaping.connected(now);
  }
}

void DeliveryPlanner::service_ready_sites(PlannerOutput& out) {
  if (scheduler_.ready_total() == 0) return;
  for (const std::string& name : scheduler_.ready_sites()) {
    if (open_connections_ >= config_->delivery.max_connections) break;
    auto it = sites_.find(name);
    if (it != sites_.end()) service_site(it->second, out);
  }
}

void DeliveryPlanner::open_connection(SiteState& site, PlannerOutput& out) {
  Connection c;
  c.id = next_connection_++;
  c.site = site.name;
  std::vector<MxHost> hosts = site.hosts;
  shuffle_equal_preferences(hosts, random_);
  for (const MxHost& host : hosts) {
    for (const std::string& ip : host.addresses) {
      c.targets.push_back(ConnectTarget{host.name, ip, host.port != 0 ? host.port : site.port});
    }
  }
  if (c.targets.empty()) return;
  c.starttls = offers_tls(site);
  c.source = site.source.address;
  ++site.connections;
  ++site.opening;
  ++open_connections_;
  count_provider_connection(site, +1);
  out.open.push_back(
      OpenCommand{c.id, c.targets.front(), c.source, c.starttls, requires_tls(site)});
  connections_.emplace(c.id, std::move(c));
}

PlannerOutput DeliveryPlanner::connection_ready(ConnectionId id) {
  PlannerOutput out = begin_event();
  auto it = connections_.find(id);
  if (it == connections_.end()) return out;
  Connection& c = it->second;
  if (c.quitting) return out;  // its QUIT is on the way
  if (!c.ready_once) {
    c.ready_once = true;
    SiteState& site = site_state_of(c);
    --site.opening;
    ++site.established;
    site.down_streak = 0;  // the circuit closes
  }
  use_connection(c, out);
  return out;
}

void DeliveryPlanner::use_connection(Connection& c, PlannerOutput& out) {
  SiteState& site = site_state_of(c);
  if (stopping_ || holds_.all_paused() || c.messages >= site.max_messages_per_connection) {
    quit(c, out);
    return;
  }
  if (!site_blocked(site)) {
    for (;;) {
      if (site.shaping.limited()) {
        const policy::ShapingDecision d = site.shaping.may_send(steady());
        if (!d.go) {
          wake_at("s:" + site.name, d.wait_until);
          break;
        }
      }
      if (!warmup_allows(site, out)) break;
      const std::optional<queue::JobId> id = scheduler_.pick_next(c.site);
      if (!id) break;
      if (!pass_job_rates(*id, *scheduler_.find(*id))) continue;
      if (start_transaction(c, *id, out)) return;
    }
  }
  c.idle = true;
  c.idle_since = steady();
  site.idle.push_back(c.id);
}

void DeliveryPlanner::apply_outgoing_headers(queue::JobId id, const queue::SpoolMessage& message,
                                             OutboundMessage& outbound, PlannerOutput& out) {
  const policy::ReturnPathUse use =
      return_path_ ? policy::return_path_use(return_path_, message) : policy::ReturnPathUse::none;
  queue::Job* job = scheduler_.find(id);
  const bool singly = use == policy::ReturnPathUse::verp || message.meta.sign_at_delivery;
  if (singly && job->recipients.size() > 1) {
    split_job(id, 1, /*singly=*/true);
    job = scheduler_.find(id);
  }
  std::vector<uint32_t> indexes;
  indexes.reserve(job->recipients.size());
  for (const queue::JobRecipient& r : job->recipients) indexes.push_back(r.index);
  if (return_path_) {
    policy::OutgoingCopy copy = policy::outgoing_copy(*return_path_, use, message, indexes);
    outbound.sender = std::move(copy.sender);
    outbound.header_prefix = std::move(copy.header_prefix);
  } else {
    outbound.sender = message.envelope.sender;
  }
  if (message.meta.sign_at_delivery) {
    outbound.header_prefix += signed_unsubscribe_fields(message, indexes.front(), out);
  }
}

std::string DeliveryPlanner::signed_unsubscribe_fields(const queue::SpoolMessage& message,
                                                       uint32_t index, PlannerOutput& out) {
  // A reload may have taken list_unsubscribe away since reception: the
  // copy is still signed (it was not at reception), without the fields.
  const std::string fields =
      list_unsubscribe_ ? policy::list_unsubscribe_fields(*list_unsubscribe_, message, index)
                        : std::string();
  if (!dkim_ || dkim_->empty()) return fields;
  std::string copy;
  copy.reserve(fields.size() + message.content.size());
  copy.append(fields).append(message.content);
  std::string prefix;
  for (const DkimSignerSet::Signature& sig :
       dkim_->sign(copy, runtime::to_unix_ms(wall()) / 1000)) {
    prefix += sig.header_field;
    out.dkim_signatures.push_back(sig.signer);
  }
  return prefix + fields;
}

void DeliveryPlanner::split_job(queue::JobId id, size_t keep, bool singly) {
  queue::Job* job = scheduler_.find(id);
  if (!job || keep == 0 || job->recipients.size() <= keep) return;
  std::vector<queue::JobRecipient> others(job->recipients.begin() + static_cast<ptrdiff_t>(keep),
                                          job->recipients.end());
  job->recipients.resize(keep);
  queue::Job model = *job;
  model.due = wall();
  model.rate_paid = false;
  if (!singly) {
    model.recipients = std::move(others);
    scheduler_.add(std::move(model));  // due now: routed by the next run_due
    return;
  }
  for (const queue::JobRecipient& r : others) {
    queue::Job split = model;
    split.recipients = {r};
    scheduler_.add(std::move(split));
  }
}

void DeliveryPlanner::quit(Connection& c, PlannerOutput& out) {
  if (c.quitting) return;
  c.quitting = true;
  if (c.idle) {
    c.idle = false;
    std::erase(site_state_of(c).idle, c.id);
  }
  out.quit.push_back(c.id);
}

std::shared_ptr<const queue::SpoolMessage> DeliveryPlanner::message_for(const queue::Job& job,
                                                                        bool content) {
  auto it = cache_.find(job.id.value);
  if (it != cache_.end()) return it->second;
  auto loaded = spool_.load_message(job.id, content);
  if (!loaded) return nullptr;
  return std::make_shared<const queue::SpoolMessage>(std::move(*loaded));
}

bool DeliveryPlanner::start_transaction(Connection& c, queue::JobId id, PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  auto message = message_for(*job, /*content=*/true);
  if (!message) {
    // Gone (deleted by an operator, or delivered since a rescan found it) or
    // corrupt (recovery reports it): nothing to send, nothing to retry.
    spdlog::error("delivery: message {} cannot be read from the spool; dropping its job",
                  job->id.value);
    forget_job(id, out);
    return false;
  }
  // Recipients the spool already has in a final state (a rescan raced with
  // their result) are not sent again.
  std::erase_if(job->recipients, [&](const queue::JobRecipient& r) {
    return r.index >= message->envelope.recipients.size() ||
           !queue::is_active(message->envelope.recipients[r.index].state);
  });
  if (job->recipients.empty()) {
    forget_job(id, out);
    return false;
  }
  // A warm-up window with room for fewer recipients than the job has: the
  // rest go on as a job of their own, spilled or held like any job that
  // finds the cap reached.
  if (SiteState& at = site_state_of(c); at.warmup) {
    const std::optional<uint64_t> room = at.warmup->room(wall());
    if (room && *room > 0 && *room < job->recipients.size()) {
      split_job(id, static_cast<size_t>(*room), /*singly=*/false);
      job = scheduler_.find(id);
    }
  }
  auto outbound = std::make_shared<OutboundMessage>();
  if (return_path_ || message->meta.sign_at_delivery) {
    apply_outgoing_headers(id, *message, *outbound, out);
    job = scheduler_.find(id);  // the split may have moved the scheduler's slab
  } else {
    outbound->sender = message->envelope.sender;
  }
  outbound->body_type = message->envelope.body_type;
  outbound->smtputf8 = message->envelope.smtputf8;
  outbound->dsn_ret = message->envelope.dsn_ret;
  outbound->dsn_envid = message->envelope.dsn_envid;
  for (const queue::JobRecipient& r : job->recipients) {
    const queue::Recipient& rcpt = message->envelope.recipients[r.index];
    outbound->recipients.push_back(
        OutboundRecipient{rcpt.address, rcpt.dsn_notify, rcpt.dsn_orcpt});
  }
  // The content is shared with the cache entry, not copied.
  outbound->content = std::shared_ptr<const std::string>(message, &message->content);
  c.job = id;
  c.message = message;
  ++c.messages;
  c.attempt_started = steady();
  const auto recipients = static_cast<uint32_t>(job->recipients.size());
  SiteState& site = site_state_of(c);
  ++site.busy;
  site.shaping.sent(recipients, c.attempt_started);
  count_sent(site, recipients);
  record_warmup(site, recipients);
  take_job_tokens(*job, recipients);
  out.start.push_back(StartCommand{c.id, std::move(outbound)});
  return true;
}

PlannerOutput DeliveryPlanner::transaction_done(ConnectionId id, const TransactionResult& result,
                                                const std::string& tls) {
  PlannerOutput out = begin_event();
  auto it = connections_.find(id);
  if (it == connections_.end() || !it->second.job) return out;
  Connection& c = it->second;
  const queue::JobId job = *c.job;
  c.job.reset();
  std::shared_ptr<const queue::SpoolMessage> message = std::move(c.message);
  out.metrics.attempt_seconds.push_back(
      std::chrono::duration<double>(steady() - c.attempt_started).count());
  SiteState& where_state = site_state_of(c);
  if (where_state.busy > 0) --where_state.busy;
  const SiteState* where = &where_state;
  bool any_delivered = false, slow_down = false;
  std::vector<bool> bounce_now;
  for (size_t k = 0; k < result.recipients.size(); ++k) {
    const SmtpReply& reply = result.recipients[k];
    any_delivered = any_delivered || reply.positive();
    slow_down = slow_down || reply.code == 421;
    if (reply.positive()) {
      if (where_state.rate_cut && backoff_.delivered(where_state.name, wall())) {
        end_backoff(where_state, out);
      }
    } else if (!reply.local && backoff_reply(where_state, reply, out)) {
      bounce_now.resize(result.recipients.size());
      bounce_now[k] = true;
    }
  }
  if (slow_down) {
    concurrency_failure(where_state);
  } else if (any_delivered) {
    concurrency_success(where_state);
  }
  finish_job(job, message.get(), result.recipients, where, c.targets[c.target].mx, tls, out,
             bounce_now.empty() ? nullptr : &bounce_now);
  return out;
}

PlannerOutput DeliveryPlanner::connection_failed(ConnectionId id, const SmtpReply& why,
                                                 bool tls_failed) {
  PlannerOutput out = begin_event();
  end_connection(id, &why, tls_failed, out);
  return out;
}

PlannerOutput DeliveryPlanner::connection_closed(ConnectionId id) {
  PlannerOutput out = begin_event();
  end_connection(id, nullptr, false, out);
  return out;
}

void DeliveryPlanner::end_connection(ConnectionId id, const SmtpReply* failure, bool tls_failed,
                                     PlannerOutput& out) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection c = std::move(it->second);
  connections_.erase(it);
  SiteState& site = site_state_of(c);
  if (c.idle) std::erase(site.idle, c.id);
  if (!c.ready_once && site.opening > 0) --site.opening;
  if (c.ready_once && site.established > 0) --site.established;
  if (site.connections > 0) --site.connections;
  count_provider_connection(site, -1);
  if (open_connections_ > 0) --open_connections_;
  const ConnectTarget target = c.targets[c.target];
  if (c.job && site.busy > 0) --site.busy;
  if (c.job) {
    // A transaction cut short without a result: its recipients are retried.
    const queue::JobId job = *c.job;
    c.job.reset();
    fail_job(job, SmtpReply::made_here(0, "4.4.1", "connection closed during the transaction"),
             target.mx, out);
  }
  if (failure && (!c.ready_once || failure->code == 421)) concurrency_failure(site);
  // A remote server's refusal of the connection (a 421 greeting, "too
  // many connections") is a reply like any other for the backoff rules.
  if (failure && !failure->local && failure->code >= 400) (void)backoff_reply(site, *failure, out);
  if (failure && !c.ready_once) {
    SmtpReply why = *failure;
    if (why.local && why.text.find(target.ip) == std::string::npos) {
      // Say which host it was: the log's text must stand on its own.
      why.text = target.mx + " [" + target.ip + "]: " + why.text;
    }
    spdlog::debug("delivery: {} [{}]:{}: {}", target.mx, target.ip, target.port, why.to_string());
    // Opportunistic TLS (RFC 7435): a broken handshake is retried in clear text.
    const bool retry_same = tls_failed && !c.tls_retry_done &&
                            config_->delivery.tls == conf::OutboundTls::opportunistic &&
                            !site.tls_required && c.messages == 0;
    // A backoff rule that this refusal triggered holds the site: no next
    // address now, and its jobs wait (they are not deferred as if it were down).
    if (site.backoff_until > wall()) {
      if (!stopping_) service_site(site, out);
      return;
    }
    const bool more = retry_same || c.target + 1 < c.targets.size();
    if (more && !stopping_ && c.messages == 0) {
      // The next MX (or address) on a fresh connection.
      Connection next;
      next.id = next_connection_++;
      next.site = c.site;
      next.targets = std::move(c.targets);
      next.target = retry_same ? c.target : c.target + 1;
      // The clear-text retry is for this address only; the next one is
      // offered STARTTLS again.
      next.starttls = retry_same ? false : offers_tls(site);
      next.tls_retry_done = c.tls_retry_done || retry_same;
      next.source = c.source;
      ++site.connections;
      ++site.opening;
      ++open_connections_;
      count_provider_connection(site, +1);
      site.shaping.connected(steady());  // a new connection, if not a new decision
      out.open.push_back(OpenCommand{next.id, next.targets[next.target], next.source, next.starttls,
                                     requires_tls(site)});
      connections_.emplace(next.id, std::move(next));
      service_site(site, out);
      return;
    }
    // Every address failed before a first transaction: the site is down for
    // a moment. Its ready jobs wait for their next attempt with this reason,
    // and no connection is opened for it meanwhile (other connections
    // failing at the same time must not reopen for each other's jobs).
    if (!stopping_ && c.messages == 0 && site.established == 0) {
      // Connections failing together are one failure of the site.
      if (site.down_until <= steady()) ++site.down_streak;
      // (A session that got ready meanwhile closed the circuit: this is a
      // first failure again.)
      site.down_streak = std::max<uint32_t>(site.down_streak, 1);
      const runtime::Millis down = std::min(
          kSiteDownMax, kSiteDown * (int64_t{1} << std::min<uint32_t>(site.down_streak - 1, 20)));
      site.down_until = steady() + down;
      site.last_failure = why;
      site.last_mx = target.mx;
      std::vector<queue::JobId> jobs;
      scheduler_.take_ready(site.name, &jobs);
      for (queue::JobId job : jobs) fail_job(job, why, target.mx, out);
    }
  }
  if (stopping_) return;
  service_site(site, out);
  // A connection of a provider-wide limit is free: the provider's other
  // sites of this source may open one now, not at the next tick.
  if (!site.provider_key.empty()) service_ready_sites(out);
}

PlannerOutput DeliveryPlanner::tick() {
  PlannerOutput out = begin_event();
  const runtime::SteadyTime now = steady();
  if (stopping_) {
    if (!stop_deadline_passed_ && now >= stop_deadline_) {
      stop_deadline_passed_ = true;
      for (const auto& [id, c] : connections_) out.close.push_back(id);
    }
    return out;
  }
  const auto idle_limit = config_->delivery.idle_timeout;
  for (auto& [id, c] : connections_) {
    if (c.idle && now - c.idle_since >= idle_limit) quit(c, out);
  }
  forget_old_finished();
  std::vector<std::string> ended_domains;
  holds_.expire(wall(), &ended_domains);
  for (const std::string& domain : ended_domains) release_held(domain_scope(domain), out);
  run_due(out);
  run_backoff(out);
  run_wakes(out);
  if (warmup_.size() > 0 && now - warmup_gauges_at_ >= std::chrono::seconds(1)) {
    publish_warmup_gauges(out);  // a window that rolled over shows 0
  }
  // Ready jobs of sites that found no free connection when they became
  // ready (the global limit was reached then, or the site was held) get one now.
  service_ready_sites(out);
  return out;
}

PlannerOutput DeliveryPlanner::stop(runtime::Millis timeout) {
  PlannerOutput out = begin_event();
  if (stopping_) return out;
  stopping_ = true;
  stop_deadline_ = steady() + timeout;
  for (auto& [id, c] : connections_) {
    if (c.job) continue;  // finishes, or is cut at the deadline
    if (c.ready_once)
      quit(c, out);
    else
      out.close.push_back(id);  // still connecting: nothing to wait for
  }
  return out;
}

}  // namespace ringmail::mta
