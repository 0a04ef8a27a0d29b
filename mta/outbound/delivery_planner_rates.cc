// The planner's rates and concurrency: token waits of tenants and
// campaigns (policy/shaper.h decides, this file keeps the jobs that wait
// and the wake-ups), and the adaptive concurrency of each ready queue.
// Connections are in delivery_planner.cc, routing in
// delivery_planner_routing.cc.
#include <algorithm>

#include "mta/outbound/delivery_planner.h"

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
    route(id, out);
  }
  rate_waiting_.erase(it);
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

void DeliveryPlanner::apply_tenant_rates() {
  // policy.tenants[] message_rate: set by the traffic-policy config (none yet).
}

}  // namespace ringmail::mta
