#include "admin-api/admin_router.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "admin-api/admin_destination.h"
#include "admin-api/admin_injection.h"
#include "admin-api/admin_json.h"
#include "admin-api/admin_probe.h"
#include "conf/config.h"
#include "mail/bounce_category.h"
#include "mail/mail_time.h"
#include "policy/site_limits.h"

namespace ringmail::admin {

namespace {

using nlohmann::ordered_json;
using Kind = mta::AdminCommand::Kind;

constexpr size_t kMaxReason = 1000;                    // a bounce's reason
constexpr std::chrono::hours kMaxSuspension{24 * 30};  // 30 days

// Lower case for domains (the scheduler's routing key is lower case).
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

ordered_json site_json(const mta::SiteSnapshot& s) {
  return ordered_json{
      {"site", s.site},
      {"source", s.source},
      {"domains", s.domains},
      {"queued", s.queued},
      {"deferred", s.deferred},
      {"in_flight", s.in_flight},
      {"delivered", s.delivered},
      {"bounced", s.bounced},
      {"suspended_until",
       s.suspended_until ? ordered_json(time_text(*s.suspended_until)) : ordered_json(nullptr)},
      {"backoff", s.backoff ? ordered_json{{"action", s.backoff->action},
                                           {"until", time_text(s.backoff->until)},
                                           {"rule", s.backoff->rule},
                                           {"reply", s.backoff->reply}}
                            : ordered_json(nullptr)},
      {"circuit", s.circuit ? ordered_json{{"failures", s.circuit->failures},
                                           {"open_until", time_text(s.circuit->open_until)}}
                            : ordered_json(nullptr)},
  };
}

// The domain of a probe or an explain (a "domain" field): lower case, and
// none of the characters that no domain or address literal has.
std::optional<std::string> domain_target(const nlohmann::json& fields, HttpResponse* error) {
  std::optional<Target> target = one_target(fields, {"domain"}, error);
  if (!target) return std::nullopt;
  std::string domain = lower(target->value);
  if (domain.find_first_of(" \t/\\@") != std::string::npos) {
    *error = json_error(400, "bad field", "domain: not a domain name");
    return std::nullopt;
  }
  return domain;
}

ordered_json limit_json(const std::string& name, ordered_json value,
                        const policy::LimitOrigin& set_by) {
  return ordered_json{{"name", name}, {"value", std::move(value)}, {"set_by", set_by.text()}};
}

ordered_json rate_json(const policy::RateLimit& limit) {
  return limit.rate ? ordered_json(conf::format_rate(*limit.rate)) : ordered_json("unlimited");
}

// The configured limits, in CONTRACT's explain form.
ordered_json limits_json(const policy::SiteLimits& l) {
  ordered_json limits = ordered_json::array();
  limits.push_back(
      limit_json("max_connections", l.max_connections.value, l.max_connections.set_by));
  limits.push_back(
      limit_json("max_connections_scope",
                 l.connection_scope == policy::ConnectionScope::provider ? "provider" : "site",
                 l.max_connections.set_by));
  limits.push_back(limit_json("max_messages_per_connection", l.max_messages_per_connection.value,
                              l.max_messages_per_connection.set_by));
  for (const auto& [name, rate] :
       {std::pair<std::string, const policy::SetLimit<policy::RateLimit>*>{"message_rate",
                                                                           &l.message_rate},
        {"connection_rate", &l.connection_rate}}) {
    limits.push_back(limit_json(name, rate_json(rate->value), rate->set_by));
    if (rate->value.rate)
      limits.push_back(limit_json(name + "_burst", rate->value.burst, rate->set_by));
  }
  limits.push_back(limit_json("tls_required", l.tls_required.value, l.tls_required.set_by));
  return limits;
}

ordered_json live_limit_json(const mta::ExplainedLimit& limit) {
  ordered_json value = std::visit(
      [](const auto& v) -> ordered_json {
        if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::monostate>) {
          return nullptr;
        } else {
          return v;
        }
      },
      limit.value);
  return ordered_json{{"name", limit.name}, {"value", std::move(value)}, {"set_by", limit.set_by}};
}

HttpResponse no_answer() {
  return json_error(500, "delivery not answering",
                    "the delivery thread did not answer in time (stopping, or overloaded)");
}

}  // namespace

HttpResponse json_error(int status, std::string error, std::string detail) {
  return json_response(status,
                       ordered_json{{"error", std::move(error)}, {"detail", std::move(detail)}});
}

namespace {

// The credential of "Bearer CREDENTIAL", or nullopt for another scheme.
std::optional<std::string_view> bearer_credential(const std::string& authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return std::nullopt;
  // The scheme is case-insensitive (RFC 7235 §2.1).
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i])))
      return std::nullopt;
  }
  std::string_view given = std::string_view(authorization).substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  return given;
}

}  // namespace

size_t request_body_limit(const std::string& path, const conf::Config& config) {
  if (path == kInjectionPath) return config.limits.max_message_size;
  return kMaxRequestBody;
}

std::string api_key_tenant(const std::string& authorization,
                           const std::vector<conf::ApiKey>& keys) {
  std::optional<std::string_view> given = bearer_credential(authorization);
  if (!given || given->empty() || keys.empty()) return "";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given->data()), given->size(), digest);
  // Every hash is compared, whichever matches: the time taken says nothing
  // about which key (or how much of one) was right.
  const conf::ApiKey* found = nullptr;
  for (const conf::ApiKey& key : keys) {
    const bool same = CRYPTO_memcmp(digest, key.sha256.data(), sizeof digest) == 0;
    found = same && !found ? &key : found;
  }
  OPENSSL_cleanse(digest, sizeof digest);
  return found ? found->tenant : "";
}

bool bearer_matches(const std::string& authorization, const std::string& token) {
  if (token.empty()) return false;
  std::optional<std::string_view> credential = bearer_credential(authorization);
  if (!credential) return false;
  const std::string_view given = *credential;
  // Constant time over the token's length; a length mismatch still runs
  // the full comparison (against the token itself) before it fails.
  const bool same_length = given.size() == token.size();
  const char* compared = same_length ? given.data() : token.data();
  const bool same = CRYPTO_memcmp(compared, token.data(), token.size()) == 0;
  return same_length && same;
}

AdminRouter::Caller AdminRouter::authenticate(const std::string& authorization,
                                              const std::string& token) const {
  Caller caller;
  caller.admin = bearer_matches(authorization, token);
  if (!caller.admin)
    caller.key_tenant = api_key_tenant(authorization, daemon_.config()->admin.api_keys);
  return caller;
}

HttpResponse AdminRouter::handle(const HttpRequest& request, const std::string& token,
                                 bool metrics_auth, const std::string& peer_ip) const {
  const bool api = request.path.starts_with("/api/");
  const bool needs_token = api || (request.path == "/metrics" && metrics_auth);
  const bool injection = request.path == kInjectionPath;
  Caller caller;
  if (needs_token) caller = authenticate(request.authorization, token);
  // An API key opens the injection and nothing else.
  const bool allowed =
      caller.admin || (injection && request.method == "POST" && !caller.key_tenant.empty());
  if (needs_token && !allowed) {
    HttpResponse r =
        json_error(401, "unauthorized",
                   request.authorization.empty() ? "Authorization: Bearer TOKEN is required"
                   : !caller.key_tenant.empty()
                       ? "an API key may only inject (POST " + std::string(kInjectionPath) + ")"
                       : "the bearer token is not the admin token");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"ringmail\"");
    return r;
  }
  if (request.body_too_large) {
    const size_t limit = request_body_limit(request.path, *daemon_.config());
    return json_error(413, "request body too large",
                      "the body is over " + std::to_string(limit) + " bytes" +
                          (injection ? " (limits.max_message_size)" : ""));
  }
  if (injection) {
    if (request.method != "POST") return method_not_allowed("POST", request.path);
    return inject(request, caller, peer_ip);
  }
  return route(request);
}

HttpResponse AdminRouter::inject(const HttpRequest& request, const Caller& caller,
                                 const std::string& peer_ip) const {
  std::shared_ptr<const conf::Config> config = daemon_.config();
  InjectionLimits limits;
  limits.max_message_size = config->limits.max_message_size;
  limits.max_recipients = config->limits.max_recipients;
  ParsedInjection parsed = parse_injection_request(request.body, limits, caller.key_tenant);
  if (!parsed.request) return parsed.error;
  parsed.request->client_ip = peer_ip;
  return injection_response(daemon_.inject(*parsed.request));
}

HttpResponse AdminRouter::route(const HttpRequest& request) const {
  const std::string& path = request.path;
  const std::string& method = request.method;
  const bool get = method == "GET" || method == "HEAD";
  const bool post = method == "POST";
  if (path == "/healthz") {
    if (!get) return method_not_allowed("GET", path);
    const std::string reason = daemon_.unhealthy_reason();
    if (reason.empty()) return json_response(200, ordered_json{{"status", "ok"}});
    return json_response(503, ordered_json{{"status", "unavailable"}, {"reason", reason}});
  }
  if (path == "/metrics") {
    if (!get) return method_not_allowed("GET", path);
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = daemon_.metrics_text();
    return r;
  }
  struct Route {
    const char* path;
    bool is_post;
    HttpResponse (AdminRouter::*handler)(const HttpRequest&) const;
  };
  static const Route kRoutes[] = {
      {"/api/v1/queue", false, &AdminRouter::queue},
      {"/api/v1/queue/suspend", true, &AdminRouter::suspend},
      {"/api/v1/queue/resume", true, &AdminRouter::resume},
      {"/api/v1/queue/bounce", true, &AdminRouter::bounce},
      {"/api/v1/events", false, &AdminRouter::events},
      {"/api/v1/probe", true, &AdminRouter::probe},
      {"/api/v1/explain", false, &AdminRouter::explain},
      {"/api/v1/warmup", false, &AdminRouter::warmup},
  };
  for (const Route& r : kRoutes) {
    if (path != r.path) continue;
    if (r.is_post ? !post : !get) return method_not_allowed(r.is_post ? "POST" : "GET", path);
    return (this->*r.handler)(request);
  }
  if (path == "/api/v1/campaigns" || path.starts_with("/api/v1/campaigns/"))
    return campaigns(request);
  if (path == "/api/v1/tenants" || path.starts_with("/api/v1/tenants/")) return tenants(request);
  // Only the message status: POST to the exact /api/v1/messages is injection.
  if (path.starts_with("/api/v1/messages/")) return messages(request);
  if (path == "/api/v1/dead" || path.starts_with("/api/v1/dead/")) return dead(request);
  if (path == "/api/v1/suppressions") return suppressions(request);
  if (path == "/api/v1/stats") return get ? stats() : method_not_allowed("GET", path);
  if (path == "/api/v1/reload") return post ? reload() : method_not_allowed("POST", path);
  if (path == "/api/v1/delivery/pause" || path == "/api/v1/delivery/resume") {
    if (!post) return method_not_allowed("POST", path);
    return delivery_pause(path.ends_with("/pause"));
  }
  return json_error(404, "not found", "no route " + path);
}

HttpResponse AdminRouter::stats() const {
  std::optional<mta::DeliverySnapshot> snap = daemon_.snapshot({}, /*with_idle_sites=*/true);
  if (!snap) return no_answer();
  const mta::DeliveryTotals& t = snap->totals;
  ordered_json by_category = ordered_json::object();
  for (const auto& [category, n] : t.bounced_by_category) by_category[category] = n;
  ordered_json sites = ordered_json::array();
  for (const auto& s : snap->sites) sites.push_back(site_json(s));
  return json_response(200, ordered_json{
                                {"received", t.received},
                                {"delivered", t.delivered},
                                {"deferred", t.deferred},
                                {"bounced", t.bounced},
                                {"bounced_by_category", by_category},
                                {"expired", t.expired},
                                {"suppressed", t.suppressed},
                                {"cancelled", t.cancelled},
                                {"complaints", 0},
                                {"queued", snap->queued},
                                {"admin_bounced", t.admin_bounced},
                                {"in_flight", snap->in_flight},
                                {"sites", sites},
                            });
}

HttpResponse AdminRouter::queue(const HttpRequest& request) const {
  mta::QueueFilter filter;
  for (const auto& [key, value] : request.query) {
    std::string* field = key == "site"       ? &filter.site
                         : key == "domain"   ? &filter.domain
                         : key == "campaign" ? &filter.campaign
                         : key == "tenant"   ? &filter.tenant
                                             : nullptr;
    if (!field) {
      return json_error(400, "unknown parameter",
                        key.substr(0, 64) + ": filters are site, domain, campaign and tenant");
    }
    if (value.size() > kMaxName) return json_error(400, "bad parameter", key + ": too long");
    *field = key == "domain" ? lower(value) : value;
  }
  std::optional<mta::DeliverySnapshot> snap = daemon_.snapshot(filter, false);
  if (!snap) return no_answer();
  ordered_json sites = ordered_json::array();
  for (const auto& s : snap->sites) sites.push_back(site_json(s));
  return json_response(200, ordered_json{{"total", snap->queued}, {"sites", sites}});
}

HttpResponse AdminRouter::suspend(const HttpRequest& request) const {
  HttpResponse error;
  std::optional<nlohmann::json> body = parse_object(request, &error);
  if (!body || !known_field(*body, {"site", "domain", "duration"}, &error)) return error;
  std::optional<Target> target = one_target(*body, {"site", "domain"}, &error);
  if (!target) return error;
  std::string duration_text;
  if (!string_field(*body, "duration", 32, &duration_text, &error)) return error;
  if (duration_text.empty()) return json_error(400, "bad field", "duration: required, e.g. \"1h\"");
  std::optional<conf::Duration> duration = conf::parse_duration(duration_text);
  if (!duration || duration->count() <= 0) {
    return json_error(
        400, "bad field",
        "duration: \"" + duration_text + "\" is not a duration like 30s, 15m, 4h, 2d");
  }
  if (*duration > kMaxSuspension) return json_error(400, "bad field", "duration: at most 30d");
  const bool domain = target->field == "domain";
  mta::AdminCommand command;
  command.kind = domain ? Kind::suspend_domain : Kind::suspend_site;
  command.target = domain ? lower(target->value) : target->value;
  command.until = clock_.wall() + std::chrono::duration_cast<runtime::Millis>(*duration);
  std::string why;
  if (!daemon_.command(command, &why)) return json_error(500, "suspend failed", why);
  return json_response(
      200, ordered_json{{"suspended", ordered_json{{target->field, command.target},
                                                   {"until", time_text(command.until)}}}});
}

HttpResponse AdminRouter::resume(const HttpRequest& request) const {
  HttpResponse error;
  std::optional<nlohmann::json> body = parse_object(request, &error);
  if (!body || !known_field(*body, {"site", "domain"}, &error)) return error;
  std::optional<Target> target = one_target(*body, {"site", "domain"}, &error);
  if (!target) return error;
  const bool domain = target->field == "domain";
  mta::AdminCommand command;
  command.kind = domain ? Kind::resume_domain : Kind::resume_site;
  command.target = domain ? lower(target->value) : target->value;
  std::string why;
  if (!daemon_.command(command, &why)) return json_error(500, "resume failed", why);
  return json_response(200,
                       ordered_json{{"resumed", ordered_json{{target->field, command.target}}}});
}

HttpResponse AdminRouter::bounce(const HttpRequest& request) const {
  HttpResponse error;
  std::optional<nlohmann::json> body = parse_object(request, &error);
  if (!body || !known_field(*body, {"site", "domain", "campaign", "tenant", "reason"}, &error))
    return error;
  std::optional<Target> target =
      one_target(*body, {"site", "domain", "campaign", "tenant"}, &error);
  if (!target) return error;
  mta::AdminCommand command;
  if (!string_field(*body, "reason", kMaxReason, &command.reason, &error)) return error;
  command.kind = target->field == "site"       ? Kind::bounce_site
                 : target->field == "domain"   ? Kind::bounce_domain
                 : target->field == "campaign" ? Kind::bounce_campaign
                                               : Kind::bounce_tenant;
  command.target = target->field == "domain" ? lower(target->value) : target->value;
  std::string why;
  std::optional<size_t> bounced = daemon_.command(command, &why);
  if (!bounced) return json_error(500, "bounce failed", why);
  return json_response(200, ordered_json{{"bounced", *bounced}});
}

HttpResponse AdminRouter::delivery_pause(bool pause) const {
  mta::AdminCommand command;
  command.kind = pause ? Kind::pause_all : Kind::resume_all;
  std::string why;
  if (!daemon_.command(command, &why))
    return json_error(500, pause ? "pause failed" : "resume failed", why);
  return json_response(200, ordered_json{{"paused", pause}});
}

HttpResponse AdminRouter::reload() const {
  const std::vector<std::string> errors = daemon_.reload();
  if (errors.empty()) return json_response(200, ordered_json{{"status", "reloaded"}});
  std::string detail;
  for (const std::string& e : errors) detail += (detail.empty() ? "" : "\n") + e;
  return json_error(400, "config invalid", detail);
}

HttpResponse AdminRouter::probe(const HttpRequest& request) const {
  if (!prober_) return json_error(404, "not found", "probing is not available here");
  HttpResponse error;
  std::optional<nlohmann::json> body = parse_object(request, &error);
  if (!body || !known_field(*body, {"domain"}, &error)) return error;
  std::optional<std::string> domain = domain_target(*body, &error);
  if (!domain) return error;
  return json_response(200, prober_->probe(*domain));
}

HttpResponse AdminRouter::explain(const HttpRequest& request) const {
  if (!destinations_) return json_error(404, "not found", "explaining is not available here");
  nlohmann::json fields = nlohmann::json::object();
  for (const auto& [key, value] : request.query) {
    if (key != "domain" && key != "source") {
      return json_error(400, "unknown parameter",
                        key.substr(0, 64) + ": the parameters are domain and source");
    }
    if (fields.contains(key)) return json_error(400, "bad parameter", key + ": given twice");
    fields[key] = value;
  }
  HttpResponse error;
  std::optional<std::string> domain = domain_target(fields, &error);
  if (!domain) return error;
  std::shared_ptr<const conf::Config> config = daemon_.config();
  std::optional<policy::EgressChoice> source = default_source(*config);
  if (fields.contains("source")) {
    std::string name;
    if (!string_field(fields, "source", kMaxName, &name, &error)) return error;
    source = named_source(*config, name);
    if (!source) {
      return json_error(400, "unknown source",
                        "source: \"" + name + "\" is not a policy.sources name (nor \"default\")");
    }
  }
  const Destination destination = destinations_->find(*config, *domain);
  switch (destination.outcome) {
    case Destination::Outcome::found:
      break;
    case Destination::Outcome::no_destination:
      return json_error(404, "no destination", destination.error);
    case Destination::Outcome::lookup_failed:
      return json_error(500, "lookup failed", destination.error);
  }
  std::vector<std::string_view> hosts;
  for (const mta::MxHost& host : destination.hosts) hosts.push_back(host.name);
  const policy::SiteLimits limits =
      policy::resolve_site_limits(*config, destination.shaping_domain, hosts);
  ordered_json list = limits_json(limits);
  mta::ExplainTarget target{*domain, destination.site, source->name,
                            source->address ? source->address->text : "", limits.provider};
  for (const mta::ExplainedLimit& live : daemon_.explain_live(target))
    list.push_back(live_limit_json(live));
  return json_response(
      200, ordered_json{{"domain", *domain},
                        {"site", destination.site},
                        {"provider", limits.provider.empty() ? ordered_json(nullptr)
                                                             : ordered_json(limits.provider)},
                        {"source", source->name},
                        {"limits", std::move(list)}});
}

HttpResponse AdminRouter::warmup(const HttpRequest& request) const {
  if (!request.query.empty()) {
    return json_error(400, "unknown parameter",
                      request.query.begin()->first.substr(0, 64) + ": this route takes none");
  }
  // A filter no job matches: the warm-up state without a walk of the queue's sites.
  mta::QueueFilter none;
  none.site = std::string(1, '\0');
  std::optional<mta::DeliverySnapshot> snap = daemon_.snapshot(none, false);
  if (!snap) return no_answer();
  const std::shared_ptr<const conf::Config> config = daemon_.config();
  const conf::PolicyConfig* policy = config->policy.get();
  ordered_json sources = ordered_json::array();
  if (!policy) return json_response(200, ordered_json{{"sources", std::move(sources)}});
  auto or_null = [](const auto& v) { return v ? ordered_json(*v) : ordered_json(nullptr); };
  for (const policy::WarmupStatus& w : snap->warmup) {
    const conf::EgressSource* source = policy->find_source(w.source);
    ordered_json pool = nullptr;  // the first pool that has it
    for (const conf::EgressPool& p : policy->pools) {
      if (std::ranges::any_of(p.sources, [&](const auto& m) { return m.source == w.source; })) {
        pool = p.name;
        break;
      }
    }
    sources.push_back(ordered_json{
        {"source", w.source},
        {"address", source ? ordered_json(source->address.text) : ordered_json(nullptr)},
        {"pool", pool},
        {"provider", or_null(w.provider)},
        {"started", or_null(w.started)},
        {"day", w.day},
        {"cap", or_null(w.cap)},
        {"window", or_null(w.window)},
        {"sent", w.sent},
        {"state", w.state_name()},
    });
  }
  return json_response(200, ordered_json{{"sources", std::move(sources)}});
}

HttpResponse AdminRouter::events(const HttpRequest& request) const {
  HttpResponse r;
  for (const auto& [key, value] : request.query) {
    if (key != "types") {
      return json_error(400, "unknown parameter", key.substr(0, 64) + ": the filter is types");
    }
    size_t start = 0;
    while (start <= value.size()) {
      size_t end = value.find(',', start);
      if (end == std::string::npos) end = value.size();
      std::string type = value.substr(start, end - start);
      static const char* const kTypes[] = {"Reception", "Delivery",   "TransientFailure",
                                           "Bounce",    "Expiration", "AdminBounce",
                                           "Cancelled", "Suppressed", "Feedback"};
      if (std::none_of(std::begin(kTypes), std::end(kTypes),
                       [&](const char* t) { return type == t; })) {
        return json_error(
            400, "bad parameter",
            "types: \"" + type.substr(0, 64) + "\" is not a delivery-log record type");
      }
      r.event_types.push_back(std::move(type));
      start = end + 1;
    }
  }
  if (!daemon_.events()) {
    return json_error(404, "no delivery log",
                      "events are the delivery log's records: set log.delivery_log");
  }
  r.event_stream = true;
  r.content_type = "text/event-stream";
  return r;
}

}  // namespace ringmail::admin
