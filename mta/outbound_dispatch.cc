// The delivery thread's decisions: what is due, where it goes, which
// connection takes it, and what each result means (spool update,
// delivery-log record, metric, DSN). Ring mechanics live in
// outbound_engine.cc.
#include <arpa/inet.h>
#include <idn2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "admin-api/metrics_registry.h"
#include "mta/outbound_engine.h"
#include "policy/site_shaping.h"
#include "queue/delivery_log.h"
#include "queue/spool_codec.h"
#include "queue/spool_writer.h"

namespace ringmail::mta {

namespace {

constexpr uint64_t kCacheBudgetBytes = 256ull << 20;
constexpr size_t kDueBatch = 4096;  // jobs routed per round, so that the loop stays responsive

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool route_matches(const conf::Route& route, const std::string& domain) {
  if (route.domain == "*") return true;
  if (route.domain.starts_with("*.")) {
    const std::string_view suffix = std::string_view(route.domain).substr(1);  // ".suffix"
    return domain.size() > suffix.size() && domain.ends_with(suffix);
  }
  return route.domain == domain;
}

SmtpReply local_reply(int code, std::string enhanced, std::string text,
                      std::optional<conf::BounceCategory> category) {
  SmtpReply reply;
  reply.code = code;
  reply.enhanced = std::move(enhanced);
  reply.text = std::move(text);
  reply.local = true;
  reply.category = category;
  return reply;
}

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

nlohmann::ordered_json response_json(const SmtpReply& reply) {
  return nlohmann::ordered_json{
      {"code", reply.code}, {"enhanced", reply.enhanced}, {"text", reply.text}};
}

}  // namespace

void OutboundEngine::set_config(std::shared_ptr<const conf::Config> config) {
  config_ = std::move(config);
  classifier_ = policy::BounceClassifier(config_->policy ? config_->policy->bounce_rules
                                                         : std::vector<conf::BounceRule>{});
  retry_intervals_ms_.clear();
  for (const auto& interval : config_->delivery.retry.intervals) {
    retry_intervals_ms_.push_back(interval.count());
  }
  // Site limits follow the new config at their next connection.
  for (auto& [name, site] : sites_) apply_limits(site);
  // Routes may have changed: route every domain afresh, but keep the jobs
  // waiting for a lookup in flight.
  for (auto& [name, domain] : domains_) {
    domain.resolution.reset();
    domain.expires_ms = 0;
  }
  // Egress: the sources of the pool named "default", in turn; none: the
  // machine's default address.
  sources_.clear();
  if (config_->policy) {
    if (const conf::EgressPool* pool = config_->policy->find_pool("default")) {
      for (const std::string& name : pool->sources) {
        if (const conf::EgressSource* source = config_->policy->find_source(name)) {
          sources_.push_back(source);
        }
      }
    }
  }
}

// Start-up: every active recipient of the spool, without bodies, grouped
// into jobs per (message, domain) due at their next attempt time.
void OutboundEngine::load_spool() {
  std::string current;
  queue::SpoolMessage message;
  std::vector<size_t> indexes;
  uint64_t deferred = 0;
  auto flush_message = [&] {
    if (indexes.empty()) return;
    int64_t due = 0;
    for (size_t i : indexes)
      due = std::max(due, message.envelope.recipients[i].next_attempt_unix_ms);
    add_jobs(message, indexes, due);
    indexes.clear();
  };
  deps_.spool->for_each_recipient([&](const queue::SpoolMessage& m, size_t index) {
    const queue::Recipient& r = m.envelope.recipients[index];
    if (!queue::is_active(r.state)) return;
    if (m.id.value != current) {
      flush_message();
      current = m.id.value;
      message = m;
    }
    if (r.state == queue::RecipientState::deferred) ++deferred;
    indexes.push_back(index);
  });
  flush_message();
  deferred_gauge_->set(static_cast<int64_t>(deferred));
  spdlog::info("delivery: {} jobs for {} messages loaded from the spool", scheduler_.size(),
               active_recipients_.size());
}

void OutboundEngine::add_jobs(const queue::SpoolMessage& message,
                              const std::vector<size_t>& indexes, int64_t due_ms) {
  active_recipients_[message.id.value] += static_cast<uint32_t>(indexes.size());
  const std::string& first_domain = message.envelope.recipients[indexes.front()].domain;
  const bool one_domain = std::all_of(indexes.begin(), indexes.end(), [&](size_t i) {
    return message.envelope.recipients[i].domain == first_domain;
  });
  if (one_domain) {  // the common case: one job, no grouping
    queue::Job job;
    job.id = message.id;
    job.domain = first_domain;
    job.received_unix_ms = message.meta.received_unix_ms;
    job.due_unix_ms = due_ms;
    job.recipients.reserve(indexes.size());
    for (size_t i : indexes) {
      const queue::Recipient& r = message.envelope.recipients[i];
      job.recipients.push_back(queue::JobRecipient{static_cast<uint32_t>(i), r.attempts,
                                                   r.state == queue::RecipientState::deferred});
    }
    scheduler_.add(std::move(job));
    return;
  }
  std::map<std::string, queue::Job> by_domain;
  for (size_t i : indexes) {
    const queue::Recipient& r = message.envelope.recipients[i];
    queue::Job& job = by_domain[r.domain];
    job.domain = r.domain;
    job.recipients.push_back(queue::JobRecipient{static_cast<uint32_t>(i), r.attempts,
                                                 r.state == queue::RecipientState::deferred});
  }
  for (auto& [domain, job] : by_domain) {
    job.id = message.id;
    job.received_unix_ms = message.meta.received_unix_ms;
    job.due_unix_ms = due_ms;
    scheduler_.add(std::move(job));
  }
}

void OutboundEngine::forget_job(queue::JobId id) {
  const queue::Job* job = scheduler_.find(id);
  if (!job) return;
  for (const queue::JobRecipient& r : job->recipients) {
    (r.was_deferred ? deferred_gauge_ : queued_gauge_)->add(-1);
  }
  auto it = active_recipients_.find(job->id.value);
  if (it != active_recipients_.end()) {
    it->second -= std::min<uint32_t>(it->second, static_cast<uint32_t>(job->recipients.size()));
    if (it->second == 0) active_recipients_.erase(it);
  }
  scheduler_.remove(id);
}

void OutboundEngine::adopt_unknown(std::vector<queue::SpoolMessage> messages) {
  size_t adopted = 0;
  for (const queue::SpoolMessage& m : messages) {
    // Already scheduled, or finished with its result not yet committed.
    if (active_recipients_.contains(m.id.value) || recently_finished_.contains(m.id.value)) {
      continue;
    }
    std::vector<size_t> indexes;
    int64_t due = 0;
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) {
      const queue::Recipient& r = m.envelope.recipients[i];
      if (!queue::is_active(r.state)) continue;
      indexes.push_back(i);
      due = std::max(due, r.next_attempt_unix_ms);
      (r.state == queue::RecipientState::deferred ? deferred_gauge_ : queued_gauge_)->add(1);
    }
    if (indexes.empty()) continue;
    add_jobs(m, indexes, due);
    ++adopted;
  }
  if (adopted > 0) spdlog::info("delivery: {} messages found in the spool on rescan", adopted);
  if (!stopping_) run_due();
}

void OutboundEngine::enqueue_messages(
    const std::vector<std::shared_ptr<queue::SpoolMessage>>& messages) {
  std::vector<size_t> indexes;
  for (const auto& message : messages) {
    // A rescan may have found it first.
    if (active_recipients_.contains(message->id.value)) continue;
    indexes.clear();
    for (size_t i = 0; i < message->envelope.recipients.size(); ++i) {
      if (queue::is_active(message->envelope.recipients[i].state)) indexes.push_back(i);
    }
    if (indexes.empty()) continue;  // quarantined: an operator releases it
    if (cache_bytes_ + message->content.size() <= kCacheBudgetBytes) {
      cache_bytes_ += message->content.size();
      cache_.emplace(message->id.value, message);
    }
    add_jobs(*message, indexes, 0);
  }
  if (!stopping_) run_due();
}

void OutboundEngine::run_due() {
  if (config_->delivery.paused) return;  // everything waits, due or not
  std::vector<queue::JobId> due;
  scheduler_.take_due(unix_now_ms(), &due, kDueBatch);
  for (queue::JobId id : due) route(id);
}

void OutboundEngine::route(queue::JobId id) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  if (unix_now_ms() - job->received_unix_ms > config_->delivery.retry.max_age.count()) {
    expire_job(id, nullptr);
    return;
  }
  const EgressChoice source = pick_source();
  for (const conf::Route& r : config_->delivery.routes) {
    if (!route_matches(r, job->domain)) continue;
    SiteState& site = site_for_route(r, source);
    if (make_ready(id, site)) service_site(site);
    return;
  }
  if (job->domain.starts_with('[')) {
    // An address literal (RFC 5321 §4.1.3): deliver to that address.
    std::optional<std::string> ip = address_literal(job->domain);
    if (!ip) {
      fail_job(id,
               local_reply(553, "5.1.2", "\"" + job->domain + "\" is not a usable address literal",
                           conf::BounceCategory::BadDomain),
               "");
      return;
    }
    SiteState& site = site_for_literal(job->domain, *ip, source);
    if (make_ready(id, site)) service_site(site);
    return;
  }
  const std::optional<std::string> name = dns_name(job->domain);
  if (!name) {
    fail_job(id,
             local_reply(553, "5.1.2", "\"" + job->domain + "\" is not a valid domain name",
                         conf::BounceCategory::BadDomain),
             "");
    return;
  }
  const int64_t now = now_steady_ms();
  DomainRoute& domain = domains_[*name];
  if (domain.resolution && now < domain.expires_ms) {
    SiteState& site = site_for_resolution(*domain.resolution, source);
    if (make_ready(id, site)) service_site(site);
    return;
  }
  domain.waiting.push_back(id);
  if (domain.resolving) return;
  domain.resolving = true;
  resolver_->resolve_mx(*name, [this, key = *name](const MxResolution& resolution) {
    auto copy = std::make_shared<MxResolution>(resolution);
    post([this, key, copy] { on_resolved(key, *copy); });
  });
}

void OutboundEngine::on_resolved(const std::string& key, const MxResolution& resolution) {
  // Keyed by the name asked, whatever normalization the resolver applied.
  DomainRoute& domain = domains_[key];
  domain.resolving = false;
  std::vector<queue::JobId> waiting;
  waiting.swap(domain.waiting);
  switch (resolution.status) {
    case MxResolution::Status::ok: {
      domain.resolution = std::make_shared<const MxResolution>(resolution);
      domain.expires_ms = now_steady_ms() + 1000 * static_cast<int64_t>(std::max<uint32_t>(
                                                       resolution.ttl_seconds, 1));
      std::vector<std::string> touched;
      for (queue::JobId id : waiting) {
        if (scheduler_.place(id) != queue::Scheduler::Place::routing) continue;
        SiteState& site = site_for_resolution(resolution, pick_source());
        if (make_ready(id, site)) touched.push_back(site.name);
      }
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (const std::string& name : touched) service_site(sites_[name]);
      return;
    }
    case MxResolution::Status::null_mx:
    case MxResolution::Status::no_domain:
    case MxResolution::Status::no_hosts: {
      const bool null_mx = resolution.status == MxResolution::Status::null_mx;
      SmtpReply reply =
          local_reply(null_mx ? 556 : 550, null_mx ? "5.1.10" : "5.1.2",
                      (null_mx ? "domain " + resolution.domain + " accepts no mail (null MX)"
                               : "cannot route to " + resolution.domain + ": " + resolution.error),
                      conf::BounceCategory::BadDomain);
      for (queue::JobId id : waiting) fail_job(id, reply, "");
      return;
    }
    case MxResolution::Status::temporary: {
      SmtpReply reply = local_reply(
          451, "4.4.3", "DNS lookup of " + resolution.domain + " failed: " + resolution.error,
          conf::BounceCategory::DNSFailure);
      for (queue::JobId id : waiting) fail_job(id, reply, "");
      return;
    }
  }
}

EgressChoice OutboundEngine::pick_source() {
  if (sources_.empty()) return EgressChoice{};
  const conf::EgressSource* source = sources_[next_source_++ % sources_.size()];
  return EgressChoice{source->name, source->address};
}

SiteState& OutboundEngine::site_state(const std::string& site_name, const EgressChoice& source,
                                      bool* created) {
  // One ready queue, one set of connections and limits per (source, site).
  // The address is part of the key: a reload that moves a source to
  // another address starts new queues and connections from the new one.
  const std::string key =
      source.address ? source.name + "@" + source.address->text + "/" + site_name : site_name;
  auto [it, inserted] = sites_.try_emplace(key);
  SiteState& site = it->second;
  if (inserted) {
    site.name = key;
    site.site = site_name;
    site.source = source;
  }
  *created = inserted;
  return site;
}

SiteState& OutboundEngine::site_for_route(const conf::Route& route, const EgressChoice& source) {
  bool created = false;
  SiteState& site = site_state(route.smarthost.text, source, &created);
  if (created) {
    site.domain = route.domain;
    site.hosts = {MxHost{route.smarthost.host, 0, {route.smarthost.host}}};
    site.port = route.smarthost.port;
    apply_limits(site);
  }
  return site;
}

SiteState& OutboundEngine::site_for_literal(const std::string& literal, const std::string& ip,
                                            const EgressChoice& source) {
  bool created = false;
  SiteState& site = site_state(literal, source, &created);
  if (created) {
    site.domain = literal;
    site.hosts = {MxHost{ip, 0, {ip}}};
    site.port = config_->delivery.smtp_port;
    apply_limits(site);
  }
  return site;
}

void OutboundEngine::apply_limits(SiteState& site) const {
  site.max_connections = config_->delivery.max_connections_per_site;
  site.max_messages_per_connection = config_->delivery.max_messages_per_connection;
  if (!config_->policy) return;
  std::vector<std::string_view> hosts;
  for (const MxHost& host : site.hosts) hosts.push_back(host.name);
  const conf::ShapingRule* rule =
      policy::match_shaping(config_->policy->shaping, site.domain, hosts);
  if (!rule) return;
  if (rule->max_connections) site.max_connections = *rule->max_connections;
  if (rule->max_messages_per_connection) {
    site.max_messages_per_connection = *rule->max_messages_per_connection;
  }
}

SiteState& OutboundEngine::site_for_resolution(const MxResolution& resolution,
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

bool OutboundEngine::make_ready(queue::JobId id, SiteState& site) {
  if (site.down_until_ms > now_steady_ms()) {
    // Every address of the site failed moments ago: do not knock again for
    // each message; the job waits for its next attempt.
    if (queue::Job* job = scheduler_.find(id)) job->site = site.name;  // for its log record
    fail_job(id, site.last_failure, site.last_mx);
    return false;
  }
  scheduler_.make_ready(id, site.name);
  return true;
}

void OutboundEngine::service_site(SiteState& site) {
  if (stopping_ || config_->delivery.paused || site.down_until_ms > now_steady_ms()) return;
  while (scheduler_.ready(site.name) > 0 && !site.idle.empty()) {
    const uint32_t slot = site.idle.back();
    site.idle.pop_back();
    OutboundConnection* c = connections_[slot].get();
    if (!c || c->closing) continue;
    c->idle = false;
    connection_ready(slot, *c);
  }
  const size_t ready = scheduler_.ready(site.name);
  while (ready > site.opening && site.connections < site.max_connections &&
         open_connections_ < config_->delivery.max_connections) {
    const uint32_t before = site.connections;
    open_connection(site);
    if (site.connections == before) break;  // no address to connect to
  }
}

void OutboundEngine::connection_ready(uint32_t slot, OutboundConnection& c) {
  SiteState& site = sites_[c.site];
  if (stopping_ || config_->delivery.paused || c.messages >= site.max_messages_per_connection) {
    apply(slot, c, c.session->quit());
    return;
  }
  while (auto id = scheduler_.pick_next(c.site)) {
    if (start_transaction(slot, c, *id)) return;
  }
  c.idle = true;
  site.idle.push_back(slot);
  c.deadline_ms = now_steady_ms() + config_->delivery.idle_timeout.count();
}

std::shared_ptr<const queue::SpoolMessage> OutboundEngine::message_for(const queue::Job& job) {
  auto it = cache_.find(job.id.value);
  if (it != cache_.end()) return it->second;
  auto loaded = deps_.spool->load_message(job.id, /*with_content=*/true);
  if (!loaded) return nullptr;
  return std::make_shared<const queue::SpoolMessage>(std::move(*loaded));
}

bool OutboundEngine::start_transaction(uint32_t slot, OutboundConnection& c, queue::JobId id) {
  queue::Job* job = scheduler_.find(id);
  auto message = message_for(*job);
  if (!message) {
    // Gone (deleted by an operator, or delivered since a rescan found it) or
    // corrupt (recovery reports it): nothing to send, nothing to retry.
    spdlog::error("delivery: message {} cannot be read from the spool; dropping its job",
                  job->id.value);
    forget_job(id);
    return false;
  }
  // Recipients the spool already has in a final state (a rescan raced with
  // their result) are not sent again.
  std::erase_if(job->recipients, [&](const queue::JobRecipient& r) {
    return r.index >= message->envelope.recipients.size() ||
           !queue::is_active(message->envelope.recipients[r.index].state);
  });
  if (job->recipients.empty()) {
    forget_job(id);
    return false;
  }
  auto outbound = std::make_shared<OutboundMessage>();
  outbound->sender = message->envelope.sender;
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
  c.attempt_started_ms = now_steady_ms();
  apply(slot, c, c.session->send_message(std::move(outbound)));
  return true;
}

void OutboundEngine::fail_job(queue::JobId id, const SmtpReply& reply, const std::string& mx) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  // The envelope is enough for the records; a DSN reads the body itself.
  std::shared_ptr<const queue::SpoolMessage> message;
  if (auto it = cache_.find(job->id.value); it != cache_.end()) {
    message = it->second;
  } else if (auto loaded = deps_.spool->load_message(job->id, /*with_content=*/false)) {
    message = std::make_shared<const queue::SpoolMessage>(std::move(*loaded));
  }
  std::vector<SmtpReply> replies(job->recipients.size(), reply);
  finish_job(id, message.get(), replies, site_of(job->site), mx, "");
}

admin::Counter& OutboundEngine::LabelledCounters::get(admin::MetricsRegistry& metrics,
                                                      const std::string& value) {
  auto it = by_value.find(value);
  if (it != by_value.end()) return *it->second;
  admin::Counter* counter = &metrics.counter(name, help, {{label, value}});
  by_value.emplace(value, counter);
  return *counter;
}

// Every recipient of the job has its reply: record each, update the spool,
// reschedule what is deferred, report what failed for good.
const SiteState* OutboundEngine::site_of(const std::string& key) const {
  auto it = sites_.find(key);
  return it == sites_.end() ? nullptr : &it->second;
}

void OutboundEngine::finish_job(queue::JobId id, const queue::SpoolMessage* message,
                                const std::vector<SmtpReply>& replies, const SiteState* where,
                                const std::string& mx, const std::string& tls) {
  static const std::string kNone;
  const std::string& site = where ? where->site : kNone;
  const std::string& source = where ? where->source.name : EgressChoice::kDefault;
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  const int64_t now = unix_now_ms();
  std::vector<queue::RecipientUpdate> updates;
  std::vector<queue::JobRecipient> deferred;
  std::vector<queue::DsnRecipient> dsn;
  std::vector<nlohmann::ordered_json> records;
  int64_t next_due = 0;
  uint32_t final_count = 0;
  std::uniform_real_distribution<double> jitter(0.9, 1.1);

  for (size_t k = 0; k < job->recipients.size() && k < replies.size(); ++k) {
    const queue::JobRecipient& r = job->recipients[k];
    const SmtpReply& reply = replies[k];
    const uint32_t attempt = r.attempts + 1;
    const char* type = nullptr;
    std::optional<conf::BounceCategory> category;
    queue::RecipientUpdate update{job->id, r.index, queue::RecipientState::delivered, attempt, 0};
    if (reply.positive()) {
      type = "Delivery";
      delivered_.get(*deps_.metrics, site).inc();
    } else {
      category = reply.category ? *reply.category
                                : classifier_.classify(reply.code, reply.enhanced, reply.text);
      if (reply.permanent()) {
        type = "Bounce";
        update.state = queue::RecipientState::bounced;
      } else {
        const int64_t next =
            queue::next_attempt_time(now, attempt, retry_intervals_ms_, jitter(random_));
        if (next - job->received_unix_ms > config_->delivery.retry.max_age.count()) {
          type = "Expiration";
          category = conf::BounceCategory::MessageExpired;
          update.state = queue::RecipientState::expired;
        } else {
          type = "TransientFailure";
          update.state = queue::RecipientState::deferred;
          update.next_attempt_unix_ms = next;
          next_due = next_due == 0 ? next : std::min(next_due, next);
          deferred.push_back(queue::JobRecipient{r.index, attempt, true});
          deferred_.get(*deps_.metrics, site).inc();
        }
      }
      if (update.state != queue::RecipientState::deferred) {
        bounced_.get(*deps_.metrics, std::string(conf::bounce_category_name(*category))).inc();
      }
    }
    // Gauges: leave the state the spool had.
    if (update.state == queue::RecipientState::deferred) {
      if (!r.was_deferred) {
        queued_gauge_->add(-1);
        deferred_gauge_->add(1);
      }
    } else {
      ++final_count;
      (r.was_deferred ? deferred_gauge_ : queued_gauge_)->add(-1);
    }
    updates.push_back(update);

    if (message && deps_.delivery_log) {
      const queue::Recipient& rcpt = message->envelope.recipients[r.index];
      nlohmann::ordered_json record{{"type", type},
                                    {"time", queue::format_rfc3339_ms(now)},
                                    {"id", job->id.value},
                                    {"sender", message->envelope.sender},
                                    {"recipient", rcpt.address},
                                    {"tenant", message->meta.tenant},
                                    {"campaign", message->meta.campaign},
                                    {"site", site},
                                    {"mx", mx},
                                    {"source", source},
                                    {"response", response_json(reply)},
                                    {"attempt", attempt},
                                    {"size", message->meta.size}};
      if (category) record["category"] = std::string(conf::bounce_category_name(*category));
      if (!tls.empty()) record["tls"] = tls;
      if (update.state == queue::RecipientState::deferred) {
        record["next_attempt"] = queue::format_rfc3339_ms(update.next_attempt_unix_ms);
      }
      records.push_back(std::move(record));
    }
    if (message && (update.state == queue::RecipientState::bounced ||
                    update.state == queue::RecipientState::expired)) {
      const queue::Recipient& rcpt = message->envelope.recipients[r.index];
      if (config_->delivery.generate_dsn &&
          queue::wants_dsn(message->envelope.sender, rcpt, "failed")) {
        queue::DsnRecipient d;
        d.address = rcpt.address;
        d.dsn_orcpt = rcpt.dsn_orcpt;
        d.action = "failed";
        d.status = update.state == queue::RecipientState::expired
                       ? "4.4.7"
                       : (reply.enhanced.empty() ? "5.0.0" : reply.enhanced);
        d.diagnostic = reply.local ? reply.text : reply.to_string();
        d.remote_mta = reply.local ? "" : mx;
        d.last_attempt_unix_ms = now;
        dsn.push_back(std::move(d));
      }
    }
  }
  if (deps_.delivery_log && !records.empty()) deps_.delivery_log->write_all(records);

  const std::string message_id = job->id.value;
  if (!dsn.empty() && message) send_dsn(*message, std::move(dsn));
  const bool any_deferred = !deferred.empty();
  if (any_deferred) {
    job->recipients = std::move(deferred);
    job->site.clear();  // routed afresh at its next attempt
    scheduler_.reschedule(id, next_due);
  } else {
    scheduler_.remove(id);
  }
  job = nullptr;
  std::vector<queue::MessageId> finished;
  if (final_count > 0) {
    auto it = active_recipients_.find(message_id);
    if (it != active_recipients_.end()) {
      it->second -= std::min(it->second, final_count);
      if (it->second == 0) {
        active_recipients_.erase(it);
        finished.push_back(queue::MessageId{message_id});
      }
    }
  }
  // A deferred message's body is read back from the spool at its next
  // attempt rather than held in memory meanwhile.
  if (!finished.empty() || any_deferred) message_done(message_id);
  if (!finished.empty()) {
    // Remembered for a while (commits take milliseconds), without a
    // confirmation per message: a rescan must not schedule it again.
    if (recently_finished_.insert(message_id).second) {
      recently_finished_order_.emplace_back(now_steady_ms(), message_id);
    }
  }
  deps_.spool_writer->submit_updates(std::move(updates), std::move(finished));
}

void OutboundEngine::forget_old_finished() {
  const int64_t horizon = now_steady_ms() - kRecentlyFinishedMs;
  while (!recently_finished_order_.empty() && recently_finished_order_.front().first < horizon) {
    recently_finished_.erase(recently_finished_order_.front().second);
    recently_finished_order_.pop_front();
  }
}

void OutboundEngine::expire_job(queue::JobId id, const queue::SpoolMessage* message) {
  queue::Job* job = scheduler_.find(id);
  if (!job) return;
  std::shared_ptr<const queue::SpoolMessage> loaded;
  if (!message) {
    loaded = message_for(*job);
    message = loaded.get();
  }
  SmtpReply reply =
      local_reply(0, "4.4.7",
                  "message expired: not delivered within " +
                      std::to_string(config_->delivery.retry.max_age.count() / 1000) + " s",
                  conf::BounceCategory::MessageExpired);
  // A zero code is transient: finish_job turns it into an expiration since
  // the next attempt would be past max_age.
  std::vector<SmtpReply> replies(job->recipients.size(), reply);
  finish_job(id, message, replies, site_of(job->site), "", "");
}

void OutboundEngine::message_done(const std::string& id) {
  auto it = cache_.find(id);
  if (it == cache_.end()) return;
  cache_bytes_ -= std::min<uint64_t>(cache_bytes_, it->second->content.size());
  cache_.erase(it);
}

void OutboundEngine::send_dsn(const queue::SpoolMessage& original,
                              std::vector<queue::DsnRecipient> recipients) {
  std::shared_ptr<const queue::SpoolMessage> with_content;
  const queue::SpoolMessage* source = &original;
  if (original.content.empty() && original.meta.size > 0) {
    with_content = [&]() -> std::shared_ptr<const queue::SpoolMessage> {
      auto loaded = deps_.spool->load_message(original.id, true);
      if (!loaded) return nullptr;
      return std::make_shared<const queue::SpoolMessage>(std::move(*loaded));
    }();
    if (with_content) source = with_content.get();
  }
  queue::DsnRequest request;
  request.original = source;
  request.recipients = std::move(recipients);
  request.reporting_mta = config_->hostname;
  request.now_unix_ms = unix_now_ms();
  auto dsn = queue::make_dsn(request, queue::make_message_id());
  if (!dsn) return;
  const std::string original_id = original.id.value;
  deps_.spool_writer->submit(
      std::move(dsn), [original_id](const queue::SpoolMessage& m, queue::StoreStatus status,
                                    const std::string& detail) {
        if (status == queue::StoreStatus::ok) {
          spdlog::info("delivery: DSN {} for {} queued to <{}>", m.id.value, original_id,
                       m.envelope.recipients.empty() ? "" : m.envelope.recipients[0].address);
        } else {
          spdlog::error("delivery: DSN for {} not queued: {}", original_id, detail);
        }
      });
}

}  // namespace ringmail::mta
