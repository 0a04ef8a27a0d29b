// The planner's IP warm-up: which (source, site) counts under which cap
// (policy/warmup.h decides), jobs over a cap spilled to other sources of
// their pool or kept until the next window, and the counts handed to the
// spool writer with the results they belong to (queue/warmup_records.h).
// Rates are in delivery_planner_rates.cc, connections in
// delivery_planner.cc.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "mta/outbound/delivery_planner.h"
#include "queue/warmup_records.h"

namespace ringmail::mta {

void DeliveryPlanner::restore_warmup() {
  size_t restored = 0;
  for (const auto& [record_key, value] : spool_.controls(queue::kWarmupPrefix)) {
    const std::optional<policy::WarmupKey> key = queue::parse_warmup_state_key(record_key);
    std::string error;
    const std::optional<policy::WarmupState> state =
        key ? queue::decode_warmup_state(value, &error) : std::nullopt;
    if (!state) {
      spdlog::warn("delivery: warm-up record {} is unreadable ({}); that source starts afresh",
                   record_key, key ? error : "bad key");
    }
    if (key && state && warmup_.restore(*key, *state)) {
      ++restored;
      continue;
    }
    // Not configured any more, or made under another `started`, or
    // unreadable: a configured key writes its fresh state at the next
    // flush, any other record goes.
    if (!key || !warmup_.find(*key)) controls_pending_.push_back({record_key, std::nullopt});
  }
  // Called from the constructor, before any site exists: no site points
  // at a warm-up object yet.
  if (restored > 0) spdlog::info("delivery: warm-up state of {} sources restored", restored);
}

policy::Warmup* DeliveryPlanner::warmup_for(const std::string& source,
                                            const std::vector<MxHost>* hosts) {
  if (warmup_.size() == 0) return nullptr;
  // A plan without providers needs no host names (the common case, per job).
  std::optional<policy::WarmupKey> key = warmup_.key_for(source, {});
  if (!key && hosts && !hosts->empty()) {
    std::vector<std::string_view> names;
    names.reserve(hosts->size());
    for (const MxHost& host : *hosts) names.push_back(host.name);
    key = warmup_.key_for(source, names);
  }
  return key ? warmup_.find(*key) : nullptr;
}

bool DeliveryPlanner::warmup_allows(SiteState& site, PlannerOutput& out) {
  if (!site.warmup) return true;
  const runtime::WallTime now = wall();
  if (site.warmup->may_send(now)) return true;
  // Over the cap: nothing starts before the next window opens.
  const runtime::WallTime next = site.warmup->next_window(now);
  wake_at("s:" + site.name, steady() + (next - now));
  if (site.warmup_sorted_until < next) {
    // Once per window: the jobs ready now are spilled or kept; jobs
    // routed later were sorted by choose_source as they came.
    site.warmup_sorted_until = next;
    spill_over_cap(site, out);
  }
  return false;
}

void DeliveryPlanner::spill_over_cap(SiteState& site, PlannerOutput& out) {
  std::vector<queue::JobId> ready;
  scheduler_.take_ready(site.name, &ready);
  const runtime::WallTime now = wall();
  const runtime::Millis max_age = config_->delivery.retry.max_age;
  std::vector<std::string> fed;  // sites that got spilled jobs
  size_t spilled = 0;
  for (const queue::JobId id : ready) {
    queue::Job* job = scheduler_.find(id);
    if (!job) continue;
    if (site.warmup->decide(now, job->received, max_age).kind ==
        policy::WarmupDecision::Kind::spill) {
      const EgressChoice other = choose_source(*job, site.key.site, &site.hosts);
      if (other.name != site.source.name) {
        SiteState& to = sibling_site(site, other);
        ++spilled;
        if (make_ready(id, to, out) && std::ranges::find(fed, to.name) == fed.end()) {
          fed.push_back(to.name);
        }
        continue;
      }
    }
    // Kept (hold, or no other source to take it): it waits, in its order,
    // for the next window.
    scheduler_.make_ready(id, site.name);
  }
  if (spilled > 0) {
    spdlog::info("delivery: {} from {} is over its warm-up cap: {} jobs spilled, {} wait",
                 site.key.site, site.source.name, spilled, ready.size() - spilled);
  }
  for (const std::string& name : fed) {
    auto it = sites_.find(name);
    if (it != sites_.end()) service_site(it->second, out);
  }
}

SiteState& DeliveryPlanner::sibling_site(const SiteState& site, const EgressChoice& source) {
  bool created = false;
  SiteState& to = site_state(site.key.site, source, &created);
  if (created) {
    to.domain = site.domain;
    to.hosts = site.hosts;
    to.port = site.port;
    apply_limits(to);
  }
  return to;
}

void DeliveryPlanner::record_warmup(SiteState& site, uint32_t recipients) {
  if (!site.warmup) return;
  site.warmup->record_sent(wall(), recipients);
  warmup_dirty_ = true;
}

void DeliveryPlanner::flush_controls(PlannerOutput& out) {
  std::vector<policy::WarmupChange> changes;
  warmup_.take_changes(&changes);
  for (queue::ControlWrite& w : controls_pending_) out.controls.push_back(std::move(w));
  controls_pending_.clear();
  for (const policy::WarmupChange& change : changes) {
    out.controls.push_back(queue::ControlWrite{
        queue::warmup_state_key(change.key),
        change.state ? std::optional(queue::encode_warmup_state(*change.state)) : std::nullopt});
  }
  warmup_dirty_ = false;
}

void DeliveryPlanner::publish_warmup_gauges(PlannerOutput& out) {
  warmup_gauges_at_ = steady();
  std::map<std::string, uint64_t> sent;
  for (const policy::WarmupStatus& s : warmup_.status(wall())) sent[s.source] += s.sent;
  for (const auto& [source, n] : sent) {
    auto [it, inserted] = warmup_published_.try_emplace(source, n);
    if (!inserted && it->second == n) continue;
    it->second = n;
    out.metrics.warmup_sent.emplace_back(source, n);
  }
}

}  // namespace ringmail::mta
