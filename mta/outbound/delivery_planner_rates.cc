// The planner's rates and concurrency: token waits of tenants and
// campaigns (policy/shaper.h decides, this file keeps the jobs that wait
// and the wake-ups), and the adaptive concurrency of each ready queue.
// Connections are in delivery_planner.cc, routing in
// delivery_planner_routing.cc.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "mta/outbound/delivery_planner.h"
#include "queue/delivery_log.h"

namespace ringmail::mta {

bool DeliveryPlanner::pass_job_rates(queue::JobId id, queue::Job& job) {
  if (job.rate_paid || shaper_.no_job_rates()) return true;
  const policy::Shaper::JobDecision d = shaper_.may_send(job.tenant, job.campaign, steady());
  if (d.go) return true;
  // Not an attempt and not a deferral: it waits, in order, for its token.
  scheduler_.set_aside(id);
  std::deque<queue::JobId>& waiting = rate_waiting_[d.bucket];
  waiting.push_back(id);
  if (waiting.size() == 1) wake_at(d.bucket, d.wait_until);
  return false;
}

void DeliveryPlanner::take_job_tokens(queue::Job& job, uint32_t recipients) {
  if (job.rate_paid) {
    job.rate_paid = false;
    return;
  }
  shaper_.sent(job.tenant, job.campaign, recipients, steady());
}

void DeliveryPlanner::wake_at(const std::string& key, runtime::SteadyTime when) {
  auto [it, inserted] = wake_armed_.try_emplace(key, when);
  if (!inserted) {
    if (it->second <= when) return;
    it->second = when;  // the later entry of wakes_ is skipped when reached
  }
  wakes_.emplace(when, key);
}

void DeliveryPlanner::run_wakes(PlannerOutput& out) {
  const runtime::SteadyTime now = steady();
  while (!wakes_.empty() && wakes_.begin()->first <= now) {
    auto [when, key] = *wakes_.begin();
    wakes_.erase(wakes_.begin());
    auto armed = wake_armed_.find(key);
    if (armed == wake_armed_.end() || armed->second != when) continue;  // superseded
    wake_armed_.erase(armed);
    if (key.starts_with("s:")) {
      auto site = sites_.find(key.substr(2));
      if (site != sites_.end()) service_site(site->second, out);
    } else {
      release_rate_waiters(key, out);
    }
  }
}

void DeliveryPlanner::release_rate_waiters(const std::string& bucket, PlannerOutput& out) {
  auto it = rate_waiting_.find(bucket);
  if (it == rate_waiting_.end()) return;
  // A reference to the list stays valid when route() below inserts other
  // lists (a rehash moves no element); the iterator does not.
  std::deque<queue::JobId>& waiting = it->second;
  const runtime::SteadyTime now = steady();
  while (!waiting.empty()) {
    const policy::ShapingDecision d = shaper_.bucket_ready(bucket, now);
    if (!d.go) {
      wake_at(bucket, d.wait_until);
      return;
    }
    const queue::JobId id = waiting.front();
    waiting.pop_front();
    queue::Job* job = scheduler_.find(id);
    if (!job || scheduler_.place(id) != queue::Scheduler::Place::routing) continue;
    // Its tokens now, so that the next waiter sees them spent; it is
    // routed again (to the end of its ready queue).
    shaper_.sent(job->tenant, job->campaign, static_cast<uint32_t>(job->recipients.size()), now);
    job->rate_paid = true;
    route(id, out);  // may add wait lists: `it` is not used after this
  }
  rate_waiting_.erase(bucket);
}

void DeliveryPlanner::concurrency_success(SiteState& site) {
  // Grow by one per `concurrency` successful transactions while jobs wait
  // and every allowed connection is in use (TCP-like additive increase).
  if (site.concurrency >= site.max_connections) return;
  if (scheduler_.ready(site.name) == 0 || site.connections < site.concurrency) return;
  if (++site.successes < site.concurrency) return;
  ++site.concurrency;
  site.successes = 0;
}

void DeliveryPlanner::concurrency_failure(SiteState& site) {
  site.successes = 0;
  if (site.concurrency > 1) --site.concurrency;
}

void DeliveryPlanner::count_sent(SiteState& site, uint32_t recipients) {
  const runtime::SteadyTime now = steady();
  if (now - site.minute_start >= std::chrono::minutes(1)) {
    site.last_minute_sent =
        now - site.minute_start < std::chrono::minutes(2) ? site.minute_sent : 0;
    site.minute_start = now;
    site.minute_sent = 0;
  }
  site.minute_sent += recipients;
}

namespace {

const char* action_name(policy::BackoffKind kind) {
  switch (kind) {
    case policy::BackoffKind::suspend:
      return "suspend";
    case policy::BackoffKind::rate_factor:
      return "rate_factor";
    case policy::BackoffKind::bounce:
      return "bounce";
  }
  return "suspend";
}

}  // namespace

bool DeliveryPlanner::backoff_reply(SiteState& site, const SmtpReply& reply, PlannerOutput& out) {
  const std::optional<policy::BackoffActivation> act =
      backoff_.evaluate(site.name, reply.code, reply.enhanced, reply.text, wall());
  if (!act) return false;
  out.metrics.backoff_activations.add(action_name(act->kind));
  if (site.warmup) {
    // A day on which a provider pushed back does not advance the warm-up.
    site.warmup->backoff_fired(wall());
    warmup_dirty_ = true;
  }
  spdlog::warn("backoff: {} from {}: rule {}{} on \"{}\"", site.key.site, site.source.name,
               act->rule, act->shipped ? " (shipped)" : "", reply.to_string());
  switch (act->kind) {
    case policy::BackoffKind::bounce:
      return true;
    case policy::BackoffKind::suspend:
      if (site.backoff_until == runtime::WallTime{}) ++backoff_suspended_;
      site.backoff_until = act->until;
      wake_at("s:" + site.name, steady() + (act->until - wall()));
      break;
    case policy::BackoffKind::rate_factor:
      if (!site.rate_cut && !site.shaping.message_rate().limited()) {
        // No rate configured: the cut applies to what it sent in the last
        // minute (at least one per minute).
        const uint64_t rate =
            std::max<uint64_t>(1, std::max(site.last_minute_sent, site.minute_sent));
        site.shaping.configure(policy::RateSpec{rate, std::chrono::minutes(1), 1},
                               site.shaping.connection_rate());
        site.rate_cut_base = true;
      }
      site.rate_cut = true;
      site.shaping.set_factor(act->factor, steady());
      break;
  }
  persist_backoff(site);
  out.metrics.backoff_active.push_back(BackoffGauge{site.source.name, site.key.site, true});
  return false;
}

void DeliveryPlanner::persist_backoff(const SiteState& site) {
  const std::optional<policy::BackoffOverride> o = backoff_.active(site.name, wall());
  if (!o) return;
  queue::BackoffRecord r{site.source.name, site.key.site, *o};
  if (site.rate_cut_base) {
    r.base_count = site.shaping.message_rate().count;
    r.base_per_ms = site.shaping.message_rate().per.count();
  }
  controls_pending_.push_back(
      {queue::backoff_record_key(site.name), queue::encode_backoff_record(r)});
}

void DeliveryPlanner::forget_backoff(const std::string& queue) {
  controls_pending_.push_back({queue::backoff_record_key(queue), std::nullopt});
  restored_backoff_.erase(queue);
}

void DeliveryPlanner::restore_backoff() {
  const runtime::WallTime now = clock_.wall();
  for (const auto& [key, value] : spool_.controls(queue::kBackoffPrefix)) {
    const std::optional<std::string> queue = queue::parse_backoff_record_key(key);
    std::string error;
    std::optional<queue::BackoffRecord> r =
        queue ? queue::decode_backoff_record(value, &error) : std::nullopt;
    if (!r) {
      spdlog::warn("delivery: backoff record {} is unreadable ({}); dropped", key, error);
    } else if (backoff_.restore(*queue, r->override_in_force, now)) {
      spdlog::info("backoff: {} from {}: {} restored, until {}", r->site, r->source,
                   r->override_in_force.rule,
                   queue::format_rfc3339_ms(runtime::to_unix_ms(r->override_in_force.until)));
      restored_backoff_.emplace(*queue, std::move(*r));
      continue;
    }
    controls_pending_.push_back({key, std::nullopt});  // ended while down, or unreadable
  }
}

void DeliveryPlanner::adopt_backoff(SiteState& site) {
  auto it = restored_backoff_.find(site.name);
  if (it == restored_backoff_.end()) return;
  const queue::BackoffRecord r = std::move(it->second);
  restored_backoff_.erase(it);
  const runtime::WallTime now = wall();
  const std::optional<policy::BackoffOverride> o = backoff_.active(site.name, now);
  if (!o) return;  // ended meanwhile: run_backoff deletes it
  if (o->kind == policy::BackoffKind::suspend) {
    if (site.backoff_until == runtime::WallTime{}) ++backoff_suspended_;
    site.backoff_until = o->until;
    wake_at("s:" + site.name, steady() + (o->until - now));
    return;
  }
  if (!site.shaping.message_rate().limited() && r.base_count > 0) {
    site.shaping.configure(policy::RateSpec{r.base_count, runtime::Millis(r.base_per_ms), 1},
                           site.shaping.connection_rate());
    site.rate_cut_base = true;
  }
  site.rate_cut = true;
  site.shaping.set_factor(backoff_.rate_factor(site.name, now), steady());
}

void DeliveryPlanner::end_backoff(SiteState& site, PlannerOutput& out) {
  const bool was_cut = site.rate_cut;
  if (site.backoff_until != runtime::WallTime{} && backoff_suspended_ > 0) --backoff_suspended_;
  site.backoff_until = {};
  site.rate_cut = false;
  site.rate_cut_base = false;
  forget_backoff(site.name);
  if (was_cut) {
    site.shaping.set_factor(1.0, steady());
    apply_limits(site);  // the configured rates again (none: unlimited)
  }
  out.metrics.backoff_active.push_back(BackoffGauge{site.source.name, site.key.site, false});
  spdlog::info("backoff: {} from {}: ended", site.key.site, site.source.name);
  if (!stopping_) service_site(site, out);
}

void DeliveryPlanner::run_backoff(PlannerOutput& out) {
  const std::optional<runtime::WallTime> next = backoff_.next_expiry();
  if (!next) return;
  const runtime::WallTime now = wall();
  // Linear recovery of the rate cuts in force.
  backoff_.for_each_active(now, [&](const std::string& key, const policy::BackoffOverride& o) {
    if (o.kind != policy::BackoffKind::rate_factor) return;
    auto it = sites_.find(key);
    if (it != sites_.end() && it->second.rate_cut) {
      it->second.shaping.set_factor(backoff_.rate_factor(key, now), steady());
    }
  });
  if (*next > now) return;
  std::vector<std::string> ended;
  backoff_.expire(now, &ended);
  for (const std::string& key : ended) {
    auto it = sites_.find(key);
    if (it != sites_.end()) {
      end_backoff(it->second, out);
    } else if (auto restored = restored_backoff_.find(key); restored != restored_backoff_.end()) {
      out.metrics.backoff_active.push_back(
          BackoffGauge{restored->second.source, restored->second.site, false});
      forget_backoff(key);
    }
  }
}

std::string_view DeliveryPlanner::pool_of(const queue::Job& job) const {
  std::string_view campaign_pool = job.pool;
  if (!job.campaign.empty() && !campaign_pools_.empty()) {
    auto it = campaign_pools_.find(job.campaign);
    if (it != campaign_pools_.end()) campaign_pool = it->second;
  }
  return policy::job_pool(campaign_pool, job.tenant, config_->policy.get());
}

EgressChoice DeliveryPlanner::choose_source(const queue::Job& job, const std::string& site,
                                            const std::vector<MxHost>* hosts) {
  const std::string_view pool = pool_of(job);
  if (backoff_suspended_ == 0 && warmup_.size() == 0 && restored_backoff_.empty())
    return egress_.select(pool);
  const runtime::WallTime now = wall();
  const runtime::Millis max_age = config_->delivery.retry.max_age;
  auto available = [&](const EgressChoice& c) {
    const policy::Warmup* warmup = nullptr;
    if (backoff_suspended_ > 0 || !restored_backoff_.empty()) {
      const ReadyQueueKey key{c.name, c.address ? c.address->text : "", site};
      const std::string text = key.text();
      auto it = sites_.find(text);
      const SiteState* state = it == sites_.end() ? nullptr : &it->second;
      if (state && state->backoff_until > now) return false;
      if (!state && restored_backoff_.contains(text) && backoff_.suspended_until(text, now)) {
        return false;  // suspended before the restart
      }
      warmup = state ? state->warmup : warmup_for(c.name, hosts);
    } else {
      warmup = warmup_for(c.name, hosts);
    }
    return !warmup ||
           warmup->decide(now, job.received, max_age).kind != policy::WarmupDecision::Kind::spill;
  };
  if (std::optional<EgressChoice> c = egress_.select(pool, available)) return *c;
  return egress_.select(pool);
}

void DeliveryPlanner::count_provider_connection(const SiteState& site, int delta) {
  if (site.provider_key.empty()) return;
  uint32_t& count = provider_connections_[site.provider_key];
  if (delta > 0) {
    ++count;
  } else if (count > 0) {
    --count;
  }
}

void DeliveryPlanner::apply_tenant_rates() {
  // policy.tenants[].message_rate, across all sites; a reload keeps the
  // tokens of a rate that did not change.
  const conf::PolicyConfig* policy = config_->policy.get();
  shaper_.retain_tenants([&](const std::string& name) {
    const conf::TenantPolicy* t = policy ? policy->find_tenant(name) : nullptr;
    return t && t->message_rate;
  });
  if (!policy) return;
  for (const conf::TenantPolicy& t : policy->tenants) {
    if (t.message_rate)
      shaper_.set_tenant_rate(t.name, policy::rate_spec(*t.message_rate, t.burst));
  }
}

}  // namespace ringmail::mta
