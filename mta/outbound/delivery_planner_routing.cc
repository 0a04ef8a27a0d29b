// The planner's routing: jobs from messages, what is due, static routes,
// MX answers and address literals, sites and their limits, holds.
#include <arpa/inet.h>
#include <idn2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "mta/outbound/delivery_planner.h"

namespace ringmail::mta {

namespace {

constexpr size_t kDueBatch = 4096;  // jobs routed per round, so that the loop stays responsive

// The name to look up in DNS: an SMTPUTF8 recipient's domain is resolved
// through its A-label (RFC 6531 §3.7.1); nullopt when it is no valid IDN.
std::optional<std::string> dns_name(const std::string& domain) {
  const bool ascii = std::all_of(domain.begin(), domain.end(),
                                 [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
  if (ascii) return domain;
  char* out = nullptr;
  const int rc = idn2_to_ascii_8z(domain.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK || !out) return std::nullopt;
  std::string name(out);
  idn2_free(out);
  return name;
}

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" -> the IP; nullopt when malformed.
std::optional<std::string> address_literal(const std::string& domain) {
  if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
  std::string inner = domain.substr(1, domain.size() - 2);
  if (inner.size() > 5 &&
      (inner.compare(0, 5, "IPv6:") == 0 || inner.compare(0, 5, "ipv6:") == 0)) {
    inner = inner.substr(5);
    in6_addr a6{};
    return inet_pton(AF_INET6, inner.c_str(), &a6) == 1 ? std::optional(inner) : std::nullopt;
  }
  in_addr a4{};
  return inet_pton(AF_INET, inner.c_str(), &a4) == 1 ? std::optional(inner) : std::nullopt;
}

std::string tenant_scope(const std::string& tenant) { return "t:" + tenant; }
std::string campaign_scope(const std::string& campaign) { return "c:" + campaign; }

}  // namespace

std::string ReadyQueueKey::text() const {
  if (source_address.empty()) return site;
  return source + "@" + source_address + "/" + site;
}

void DeliveryPlanner::add_jobs(const queue::SpoolMessage& message,
                               const std::vector<size_t>& indexes, runtime::WallTime due) {
  active_recipients_[message.id.value] += static_cast<uint32_t>(indexes.size());
  auto new_job = [&](const std::string& domain) {
    queue::Job job;
    job.id = message.id;
    job.domain = domain;
    job.tenant = message.meta.tenant;
    job.campaign = message.meta.campaign;
    job.received = runtime::from_unix_ms(message.meta.received_unix_ms);
    job.due = due;
    return job;
  };
  auto recipient = [&](size_t i) {
    const queue::Recipient& r = message.envelope.recipients[i];
    return queue::JobRecipient{static_cast<uint32_t>(i), r.attempts,
                               r.state == queue::RecipientState::deferred};
  };
  if (policy::return_path_use(return_path(), message) == policy::ReturnPathUse::verp) {
    // Each recipient has an envelope sender of its own (policy/return_path.h).
    for (size_t i : indexes) {
      queue::Job job = new_job(message.envelope.recipients[i].domain);
      job.recipients.push_back(recipient(i));
      scheduler_.add(std::move(job));
    }
    return;
  }
  const std::string& first_domain = message.envelope.recipients[indexes.front()].domain;
  const bool one_domain = std::all_of(indexes.begin(), indexes.end(), [&](size_t i) {
    return message.envelope.recipients[i].domain == first_domain;
  });
  if (one_domain) {  // the common case: one job, no grouping
    queue::Job job = new_job(first_domain);
    job.recipients.reserve(indexes.size());
    for (size_t i : indexes) job.recipients.push_back(recipient(i));
    scheduler_.add(std::move(job));
    return;
  }
  std::map<std::string, queue::Job> by_domain;
  for (size_t i : indexes) {
    const std::string& domain = message.envelope.recipients[i].domain;
    auto it = by_domain.find(domain);
    if (it == by_domain.end()) it = by_domain.emplace(domain, new_job(domain)).first;
    it->second.recipients.push_back(recipient(i));
  }
  for (auto& [domain, job] : by_domain) scheduler_.add(std::move(job));
}

void DeliveryPlanner::run_due(PlannerOutput& out) {
  // Everything waits, due or not, while all delivery is paused.
  if (holds_.all_paused()) return;
  std::vector<queue::JobId> due;
  scheduler_.take_due(wall(), &due, kDueBatch);
  for (queue::JobId id : due) route(id, out);
}

void DeliveryPlanner::route(queue::JobId id, PlannerOutput& out) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  if (holds_.campaign_cancelled(job->campaign)) {
    cancel_job(id, out);
    return;
  }
  // Before anything that could make it an attempt or keep it waiting.
  if (suppress_recipients(id, out)) return;
  if (holds_.all_paused()) {
    // Released from a tenant or campaign hold while all delivery is
    // paused: it waits with every other job, and resume_all runs it (a
    // tenant or campaign list would keep it past resume_all).
    scheduler_.reschedule(id, job->due);
    return;
  }
  if (holds_.holds_job(job->tenant, job->campaign)) {
    // Held: not an attempt, and no expiry while the hold lasts.
    const bool by_tenant = holds_.holds_job(job->tenant, "");
    held_[by_tenant ? tenant_scope(job->tenant) : campaign_scope(job->campaign)].push_back(id);
    return;
  }
  if (holds_.domain_suspended(job->domain, wall())) {
    // Suspended by the operator: not an attempt; the suspension's end or a
    // resume routes it again.
    held_[domain_scope(job->domain)].push_back(id);
    return;
  }
  if (wall() - job->received > config_->delivery.retry.max_age) {
    expire_job(id, out);
    return;
  }
  for (const conf::Route& r : config_->delivery.routes) {
    if (!route_matches(r, job->domain)) continue;
    SiteState& site = site_for_route(r, choose_source(*job, r.site(), nullptr));
    if (make_ready(id, site, out)) service_site(site, out);
    return;
  }
  if (job->domain.starts_with('[')) {
    // An address literal (RFC 5321 §4.1.3): deliver to that address.
    std::optional<std::string> ip = address_literal(job->domain);
    if (!ip) {
      fail_job(id,
               SmtpReply::made_here(553, "5.1.2",
                                    "\"" + job->domain + "\" is not a usable address literal",
                                    conf::BounceCategory::BadDomain),
               "", out);
      return;
    }
    SiteState& site = site_for_literal(job->domain, *ip, choose_source(*job, job->domain, nullptr));
    if (make_ready(id, site, out)) service_site(site, out);
    return;
  }
  const std::optional<std::string> name = dns_name(job->domain);
  if (!name) {
    fail_job(
        id,
        SmtpReply::made_here(553, "5.1.2", "\"" + job->domain + "\" is not a valid domain name",
                             conf::BounceCategory::BadDomain),
        "", out);
    return;
  }
  DomainRoute& domain = domains_[*name];
  if (domain.resolution && steady() < domain.expires) {
    SiteState& site = site_for_resolution(
        *domain.resolution,
        choose_source(*job, domain.resolution->site, &domain.resolution->hosts));
    if (make_ready(id, site, out)) service_site(site, out);
    return;
  }
  domain.waiting.push_back(id);
  if (domain.resolving) return;
  domain.resolving = true;
  out.resolve.push_back(*name);
}

PlannerOutput DeliveryPlanner::resolved(const std::string& key, const MxResolution& resolution) {
  PlannerOutput out = begin_event();
  // Keyed by the name asked, whatever normalization the resolver applied.
  DomainRoute& domain = domains_[key];
  domain.resolving = false;
  std::vector<queue::JobId> waiting;
  waiting.swap(domain.waiting);
  // Jobs whose domain was suspended while the lookup was out are held, as
  // route() holds them: neither made ready nor failed (no attempt).
  std::erase_if(waiting, [&](queue::JobId id) {
    const queue::Job* job = scheduler_.find(id);
    if (!job || scheduler_.place(id) != queue::Scheduler::Place::routing ||
        !holds_.domain_suspended(job->domain, wall())) {
      return false;
    }
    held_[domain_scope(job->domain)].push_back(id);
    return true;
  });
  switch (resolution.status) {
    case MxResolution::Status::ok: {
      domain.resolution = std::make_shared<const MxResolution>(resolution);
      domain.expires =
          steady() + std::chrono::seconds(std::max<uint32_t>(resolution.ttl_seconds, 1));
      std::vector<std::string> touched;
      for (queue::JobId id : waiting) {
        if (scheduler_.place(id) != queue::Scheduler::Place::routing) continue;
        const queue::Job* job = scheduler_.find(id);
        SiteState& site = site_for_resolution(
            resolution, choose_source(*job, resolution.site, &resolution.hosts));
        if (make_ready(id, site, out)) touched.push_back(site.name);
      }
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (const std::string& name : touched) service_site(sites_[name], out);
      return out;
    }
    case MxResolution::Status::null_mx:
    case MxResolution::Status::no_domain:
    case MxResolution::Status::no_hosts: {
      const bool null_mx = resolution.status == MxResolution::Status::null_mx;
      SmtpReply reply = SmtpReply::made_here(
          null_mx ? 556 : 550, null_mx ? "5.1.10" : "5.1.2",
          (null_mx ? "domain " + resolution.domain + " accepts no mail (null MX)"
                   : "cannot route to " + resolution.domain + ": " + resolution.error),
          conf::BounceCategory::BadDomain);
      for (queue::JobId id : waiting) fail_job(id, reply, "", out);
      return out;
    }
    case MxResolution::Status::temporary: {
      SmtpReply reply = SmtpReply::made_here(
          451, "4.4.3", "DNS lookup of " + resolution.domain + " failed: " + resolution.error,
          conf::BounceCategory::DNSFailure);
      for (queue::JobId id : waiting) fail_job(id, reply, "", out);
      return out;
    }
  }
  return out;
}

SiteState& DeliveryPlanner::site_state(const std::string& site_name, const EgressChoice& source,
                                       bool* created) {
  ReadyQueueKey key{source.name, source.address ? source.address->text : "", site_name};
  std::string text = key.text();
  auto [it, inserted] = sites_.try_emplace(text);
  SiteState& site = it->second;
  if (inserted) {
    site.key = std::move(key);
    site.name = std::move(text);
    site.source = source;
  }
  *created = inserted;
  return site;
}

SiteState& DeliveryPlanner::site_for_route(const conf::Route& route, const EgressChoice& source) {
  bool created = false;
  SiteState& site = site_state(route.site(), source, &created);
  if (created) {
    site.domain = route.domain;
    // The smarthost, then each failover one, as MX hosts of rising
    // preference: a failed connection moves on to the next.
    site.hosts = {MxHost{route.smarthost.host, 0, {route.smarthost.host}, route.smarthost.port}};
    uint16_t preference = 0;
    for (const conf::SocketAddress& next : route.failover) {
      site.hosts.push_back(MxHost{next.host, ++preference, {next.host}, next.port});
    }
    site.port = route.smarthost.port;
    apply_limits(site);
  }
  return site;
}

SiteState& DeliveryPlanner::site_for_literal(const std::string& literal, const std::string& ip,
                                             const EgressChoice& source) {
  bool created = false;
  SiteState& site = site_state(literal, source, &created);
  if (created) {
    site.domain = literal;
    site.hosts = {MxHost{ip, 0, {ip}, 0}};
    site.port = config_->delivery.smtp_port;
    apply_limits(site);
  }
  return site;
}

SiteState& DeliveryPlanner::site_for_resolution(const MxResolution& resolution,
                                                const EgressChoice& source) {
  bool created = false;
  SiteState& site = site_state(resolution.site, source, &created);
  site.hosts = resolution.hosts;  // the freshest answer
  site.port = config_->delivery.smtp_port;
  if (created) {
    site.domain = resolution.domain;
    apply_limits(site);
  }
  return site;
}

void DeliveryPlanner::apply_limits(SiteState& site) {
  std::vector<std::string_view> hosts;
  for (const MxHost& host : site.hosts) hosts.push_back(host.name);
  const policy::SiteLimits limits = policy::resolve_site_limits(*config_, site.domain, hosts);
  site.max_connections = limits.max_connections.value;
  site.max_messages_per_connection = limits.max_messages_per_connection.value;
  site.provider = limits.provider;
  site.per_provider_connections = limits.connection_scope == policy::ConnectionScope::provider;
  std::string key =
      site.per_provider_connections ? site.source.name + " " + site.provider : std::string();
  if (key != site.provider_key) {
    // A reload moved the site to another count: its open connections go along.
    if (!site.provider_key.empty()) {
      uint32_t& before = provider_connections_[site.provider_key];
      before -= std::min(before, site.connections);
    }
    if (!key.empty()) provider_connections_[key] += site.connections;
    site.provider_key = std::move(key);
  }
  site.tls_required = limits.tls_required.value;
  policy::RateSpec message_rate, connection_rate;
  if (limits.message_rate.value.rate) {
    message_rate =
        policy::rate_spec(*limits.message_rate.value.rate, limits.message_rate.value.burst);
  }
  if (limits.connection_rate.value.rate) {
    connection_rate = policy::rate_spec(*limits.connection_rate.value.rate);
  }
  // During a backoff rate cut of a queue without a configured rate, its
  // cut rate (made from what it sent) stays until the cut ends.
  if (site.rate_cut && !message_rate.limited()) message_rate = site.shaping.message_rate();
  site.shaping.configure(message_rate, connection_rate);
  // A new site starts at initial_connections; a reload keeps what it
  // reached, within the new maximum.
  const bool fresh = site.concurrency == 0;
  if (fresh) site.concurrency = config_->delivery.initial_connections;
  site.concurrency = std::clamp<uint32_t>(site.concurrency, 1, site.max_connections);
  site.warmup = warmup_for(site.source.name, &site.hosts);
  site.warmup_sorted_until = {};
  if (fresh && !restored_backoff_.empty()) adopt_backoff(site);
}

bool DeliveryPlanner::make_ready(queue::JobId id, SiteState& site, PlannerOutput& out) {
  if (site.down_until > steady()) {
    // Every address of the site failed moments ago: do not knock again for
    // each message; the job waits for its next attempt.
    if (queue::Job* job = scheduler_.find(id)) job->site = site.name;  // for its log record
    fail_job(id, site.last_failure, site.last_mx, out);
    return false;
  }
  scheduler_.make_ready(id, site.name);
  return true;
}

void DeliveryPlanner::release_held(const std::string& scope, PlannerOutput& out) {
  auto it = held_.find(scope);
  if (it == held_.end()) return;
  std::vector<queue::JobId> jobs = std::move(it->second);
  held_.erase(it);
  for (queue::JobId id : jobs) {
    if (scheduler_.place(id) == queue::Scheduler::Place::routing) route(id, out);
  }
}

void DeliveryPlanner::admin_bounce(const AdminCommand& command, PlannerOutput& out) {
  const std::string& target = command.target;
  // The site a job would go to: its ready queue's, else its domain's last answer.
  auto site_of_job = [&](const queue::Job& job) -> std::string {
    const std::string& key = job.site.empty() ? job.last_site : job.site;
    if (!key.empty()) {
      if (const SiteState* s = site(key)) return s->key.site;
    }
    auto it = domains_.find(job.domain);
    return it != domains_.end() && it->second.resolution ? it->second.resolution->site : "";
  };
  const std::vector<queue::JobId> ids = scheduler_.select_queued([&](const queue::Job& job) {
    switch (command.kind) {
      case AdminCommand::Kind::bounce_site:
        return site_of_job(job) == target;
      case AdminCommand::Kind::bounce_domain:
        return job.domain == target;
      case AdminCommand::Kind::bounce_campaign:
        return job.campaign == target;
      case AdminCommand::Kind::bounce_tenant:
        return job.tenant == target;
      default:
        return false;
    }
  });
  const std::string reason = command.reason.empty() ? "bounced by the operator" : command.reason;
  for (queue::JobId id : ids) {
    const queue::Job* job = scheduler_.find(id);
    if (!job) continue;
    out.admin_bounced += job->recipients.size();
    totals_.admin_bounced += job->recipients.size();
    finish_by_operator(id, queue::RecipientState::bounced, "AdminBounce", reason, out);
  }
}

PlannerOutput DeliveryPlanner::command(const AdminCommand& command) {
  PlannerOutput out = begin_event();
  switch (command.kind) {
    case AdminCommand::Kind::suspend_site:
      holds_.suspend_site(command.target, command.until);
      break;
    case AdminCommand::Kind::set_campaign_policy:
      if (command.pool.empty()) {
        campaign_pools_.erase(command.target);
      } else {
        campaign_pools_[command.target] = command.pool;
      }
      shaper_.set_campaign_rate(command.target,
                                policy::RateSpec{command.rate_count, command.rate_per, 0});
      break;
    case AdminCommand::Kind::resume_site:
      holds_.resume_site(command.target);
      // Resume ends a backoff rule's override too, from every source.
      for (auto& [name, site] : sites_) {
        if (site.key.site == command.target && backoff_.cancel(name)) end_backoff(site, out);
      }
      // And those restored at start-up whose site has not been used since.
      for (auto it = restored_backoff_.begin(); it != restored_backoff_.end();) {
        auto next = std::next(it);
        if (it->second.site == command.target) {
          backoff_.cancel(it->first);
          out.metrics.backoff_active.push_back(
              BackoffGauge{it->second.source, it->second.site, false});
          forget_backoff(it->first);  // erases `it`
        }
        it = next;
      }
      service_ready_sites(out);
      break;
    case AdminCommand::Kind::suspend_domain: {
      holds_.suspend_domain(command.target, command.until);
      // Its jobs already in a ready queue go back to be routed, and held.
      const std::vector<queue::JobId> ready = scheduler_.select_queued(
          [&](const queue::Job& job) { return job.domain == command.target; });
      for (queue::JobId id : ready) {
        if (scheduler_.place(id) != queue::Scheduler::Place::ready) continue;
        const queue::Job* job = scheduler_.find(id);
        scheduler_.reschedule(id, job->due);
      }
      if (!stopping_) run_due(out);
      break;
    }
    case AdminCommand::Kind::resume_domain:
      holds_.resume_domain(command.target);
      release_held(domain_scope(command.target), out);
      break;
    case AdminCommand::Kind::pause_tenant:
      holds_.pause_tenant(command.target);
      break;
    case AdminCommand::Kind::resume_tenant:
      holds_.resume_tenant(command.target);
      release_held(tenant_scope(command.target), out);
      break;
    case AdminCommand::Kind::pause_campaign:
      holds_.pause_campaign(command.target);
      break;
    case AdminCommand::Kind::resume_campaign:
      holds_.resume_campaign(command.target);
      release_held(campaign_scope(command.target), out);
      break;
    case AdminCommand::Kind::pause_all:
      holds_.pause_all();
      break;
    case AdminCommand::Kind::cancel_campaign: {
      holds_.cancel_campaign(command.target);
      const std::vector<queue::JobId> ids = scheduler_.select_queued(
          [&](const queue::Job& job) { return job.campaign == command.target; });
      for (queue::JobId id : ids) cancel_job(id, out);
      held_.erase(campaign_scope(command.target));
      break;
    }
    case AdminCommand::Kind::bounce_site:
    case AdminCommand::Kind::bounce_domain:
    case AdminCommand::Kind::bounce_campaign:
    case AdminCommand::Kind::bounce_tenant:
      admin_bounce(command, out);
      break;
    case AdminCommand::Kind::resume_all:
      holds_.resume_all();
      if (!stopping_) {
        run_due(out);
        service_ready_sites(out);
      }
      break;
  }
  return out;
}

bool route_matches(const conf::Route& route, const std::string& domain) {
  if (route.domain == "*") return true;
  if (route.domain.starts_with("*.")) {
    const std::string_view suffix = std::string_view(route.domain).substr(1);  // ".suffix"
    return domain.size() > suffix.size() && domain.ends_with(suffix);
  }
  return route.domain == domain;
}

std::string DeliveryPlanner::domain_scope(const std::string& domain) { return "d:" + domain; }

DeliverySnapshot DeliveryPlanner::snapshot(const QueueFilter& filter, bool with_idle_sites) const {
  DeliverySnapshot snap;
  snap.totals = totals_;
  struct Entry {
    SiteSnapshot site;
    std::set<std::string> domains;
  };
  std::map<std::pair<std::string, std::string>, Entry> entries;  // (site, source)
  std::unordered_map<std::string, const SiteState*> by_key;      // job.site -> its state
  auto entry_for = [&](const std::string& site_name, const std::string& source) -> Entry& {
    Entry& e = entries[{site_name, source}];
    e.site.site = site_name;
    e.site.source = source;
    return e;
  };
  const runtime::WallTime now = clock_.wall();
  scheduler_.for_each([&](const queue::Job& job, queue::Scheduler::Place place) {
    if (!filter.domain.empty() && job.domain != filter.domain) return;
    if (!filter.campaign.empty() && job.campaign != filter.campaign) return;
    if (!filter.tenant.empty() && job.tenant != filter.tenant) return;
    std::string site_name = job.domain;
    std::string source = EgressChoice::kDefault;
    const std::string& key = job.site.empty() ? job.last_site : job.site;
    if (!key.empty()) {
      auto [it, inserted] = by_key.try_emplace(key, nullptr);
      if (inserted) it->second = site(key);
      if (it->second) {
        site_name = it->second->key.site;
        source = it->second->source.name;
      }
    } else if (auto d = domains_.find(job.domain); d != domains_.end() && d->second.resolution) {
      site_name = d->second.resolution->site;
    }
    if (!filter.site.empty() && site_name != filter.site) return;
    Entry& e = entry_for(site_name, source);
    if (e.domains.size() < 50) e.domains.insert(job.domain);
    const uint64_t n = job.recipients.size();
    snap.queued += n;
    if (place == queue::Scheduler::Place::in_flight) {
      e.site.in_flight += n;
      snap.in_flight += n;
      return;
    }
    e.site.queued += n;
    if (place == queue::Scheduler::Place::waiting) {
      for (const queue::JobRecipient& r : job.recipients) e.site.deferred += r.was_deferred;
    }
  });
  // A site's entry, made for a site with nothing queued only when the
  // filter names no domain, campaign or tenant (it has none of those).
  const bool by_site_only =
      filter.domain.empty() && filter.campaign.empty() && filter.tenant.empty();
  auto entry_of = [&](const SiteState& s, bool make) -> Entry* {
    if (!filter.site.empty() && s.key.site != filter.site) return nullptr;
    auto it = entries.find({s.key.site, s.source.name});
    if (it != entries.end()) return &it->second;
    if (!make || !by_site_only) return nullptr;
    Entry& e = entries[{s.key.site, s.source.name}];
    e.site.site = s.key.site;
    e.site.source = s.source.name;
    e.domains.insert(s.domain);
    return &e;
  };
  // Counts since start, per site and source.
  for (const auto& [name, counts] : site_counts_) {
    const SiteState* s = site(name);
    Entry* e = s ? entry_of(*s, with_idle_sites) : nullptr;
    if (!e) continue;
    e->site.delivered += counts.delivered;
    e->site.bounced += counts.bounced;
  }
  // Backoff rules and circuits in force, whether or not jobs wait there.
  backoff_.for_each_active(now, [&](const std::string& key, const policy::BackoffOverride& o) {
    const SiteState* s = site(key);
    Entry* e = s ? entry_of(*s, true) : nullptr;
    if (!e) return;
    e->site.backoff =
        SiteSnapshot::Backoff{o.kind == policy::BackoffKind::suspend ? "suspend" : "rate_factor",
                              o.until, o.rule, o.reply};
  });
  const runtime::SteadyTime steady_now = clock_.steady();
  for (const auto& [name, s] : sites_) {
    Entry* e = s.down_streak > 0 ? entry_of(s, true) : nullptr;
    if (!e) continue;
    e->site.circuit = SiteSnapshot::Circuit{
        s.down_streak, now + std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                 std::max(s.down_until, steady_now) - steady_now)};
  }
  snap.sites.reserve(entries.size());
  for (auto& [key, e] : entries) {
    e.site.domains.assign(e.domains.begin(), e.domains.end());
    e.site.suspended_until = holds_.site_suspended(e.site.site, now);
    snap.sites.push_back(std::move(e.site));
  }
  snap.warmup = warmup_.status(now);
  return snap;
}

}  // namespace ringmail::mta
