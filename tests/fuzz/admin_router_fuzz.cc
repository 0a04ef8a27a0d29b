// libFuzzer target for the admin API's routes (admin-api/admin_router.h):
// the input is one HTTP request as the admin server hands it over.
//
// Input, split on '\n' (only the body, the last field, may hold more):
//   1. daemon and server flags, one letter each: m metrics_auth, L body
//      over the limit, u unhealthy, e no delivery log, s no snapshot answer,
//      f commands fail, r reload refused, n no admin token configured,
//      P no prober (POST /api/v1/probe answers 404), D no destination
//      finder (GET /api/v1/explain answers 404), X explained domains have
//      no MX (404), T their look-up fails (500)
//   2. the method   3. the path
//   4. the query: pairs split on '&', key and value on the first '='
//   5. the Authorization header ("=" stands for the right bearer token)
//   6. the body: the rest of the input
// Every input replays identically (no clock, no randomness).
//
// Besides ASan/UBSan findings, the target aborts when the router breaks a
// promise: a status outside {200,201,400,401,404,405,409,413,500,503}
// (201 only for a campaign's creation or added suppressions, 409 only for a
// campaign); an error
// body that is not exactly {"error": string, "detail": string}; a 401
// without WWW-Authenticate or a 405 without Allow; a 200 JSON body that does
// not parse; a command sent to the daemon for a request that was refused
// (4xx) or whose target holds a control character; a suspension outside
// (now, now + 30 days]; an /api/ request without the right token that was
// not refused with 401; a probe of a domain that is empty, too long, not
// lower case or holds a space, a slash, an '@' or a control character.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON; links the router alone
// (not the admin server or the daemon). Run with the seed corpus in
// tests/fuzz/corpus/admin_router/; ADMIN_FUZZ_VERBOSE=1 prints each answer.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin-api/admin_destination.h"
#include "admin-api/admin_probe.h"
#include "admin-api/admin_router.h"
#include "mta/campaigns.h"
#include "policy/campaign_gate.h"
#include "queue/spool_memory.h"
#include "queue/suppression_store.h"
#include "runtime/clock.h"
#include "runtime/event_hub.h"

namespace {

namespace admin = ringmail::admin;
namespace mta = ringmail::mta;
namespace runtime = ringmail::runtime;
using nlohmann::json;

constexpr char kToken[] = "fuzz-admin-token";

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "admin_router_fuzz: %s: %.*s\n", what,
               static_cast<int>(std::min<size_t>(detail.size(), 400)), detail.data());
  std::abort();
}

// Answers like the daemon would, from the flags; records the commands.
class FuzzDaemon final : public mta::DaemonControl {
 public:
  explicit FuzzDaemon(std::string_view flags) {
    auto has = [&](char c) { return flags.find(c) != std::string_view::npos; };
    unhealthy_ = has('u');
    no_log_ = has('e');
    no_snapshot_ = has('s');
    commands_fail_ = has('f');
    reload_refused_ = has('r');
    snapshot_.totals.received = 3;
    snapshot_.totals.bounced_by_category["InvalidRecipient"] = 1;
    snapshot_.queued = 2;
    mta::SiteSnapshot site;
    site.site = "mx.example.test";
    site.domains = {"example.test"};
    site.queued = 2;
    site.suspended_until = runtime::WallTime(runtime::Millis(1767229200000));
    snapshot_.sites.push_back(site);
  }

  std::shared_ptr<const ringmail::conf::Config> config() const override {
    static const auto config = std::make_shared<const ringmail::conf::Config>();
    return config;
  }
  std::string unhealthy_reason() const override { return unhealthy_ ? "spool closed" : ""; }
  std::string metrics_text() const override { return "ringmail_build_info{version=\"f\"} 1\n"; }
  std::optional<mta::DeliverySnapshot> snapshot(const mta::QueueFilter&, bool) override {
    if (no_snapshot_) return std::nullopt;
    return snapshot_;
  }
  std::optional<size_t> command(const mta::AdminCommand& command, std::string* error) override {
    commands.push_back(command);
    if (commands_fail_) {
      *error = "spool: writing control state: MDB_MAP_FULL";
      return std::nullopt;
    }
    return 7;
  }
  std::vector<std::string> reload() override {
    if (!reload_refused_) return {};
    return {"ringmail.yaml:3: delivery.retry: bad", "ringmail.yaml:9: log.level: \xff"};
  }
  runtime::EventHub* events() override {
    // Never destroyed, so the target needs none of event_hub.cc: the
    // router only asks whether there is a delivery log.
    static runtime::EventHub* const hub = new runtime::EventHub;
    return no_log_ ? nullptr : hub;
  }
  runtime::MetricsRegistry& metrics() override { broken("metrics()", "the router never asks"); }
  // Real campaigns over a memory spool: the campaign routes' parsing and
  // the registry's checks are fuzzed together.
  mta::CampaignRegistry* campaigns() override { return &campaign_registry_; }
  // Real suppression lists over the same spool: the routes' JSON and CSV
  // parsing and the store's checks together.
  ringmail::queue::SuppressionStore* suppressions() override { return &suppressions_; }

  std::vector<mta::AdminCommand> commands;

 private:
  bool unhealthy_ = false, no_log_ = false, no_snapshot_ = false, commands_fail_ = false,
       reload_refused_ = false;
  mta::DeliverySnapshot snapshot_;
  ringmail::queue::MemorySpool spool_;
  ringmail::policy::CampaignGate gate_;
  runtime::FakeClock clock_;
  mta::CampaignRegistry campaign_registry_{spool_, gate_, clock_};
  ringmail::queue::SuppressionStore suppressions_{spool_};
};

// Answers without connecting; records what it was asked to probe.
class FuzzProber final : public admin::Prober {
 public:
  nlohmann::ordered_json probe(const std::string& domain) override {
    domains.push_back(domain);
    return {{"domain", domain}, {"site", nullptr}, {"error", "fuzz: no connection"}};
  }
  std::vector<std::string> domains;
};

// Finds a Google-hosted destination without DNS, or fails as the flags
// say; records what it was asked to find.
class FuzzDestinations final : public admin::DestinationFinder {
 public:
  explicit FuzzDestinations(std::string_view flags)
      : no_mx_(flags.find('X') != std::string_view::npos),
        fails_(flags.find('T') != std::string_view::npos) {}
  admin::Destination find(const ringmail::conf::Config&, const std::string& domain) override {
    domains.push_back(domain);
    admin::Destination d;
    if (no_mx_ || fails_) {
      d.outcome = no_mx_ ? admin::Destination::Outcome::no_destination
                         : admin::Destination::Outcome::lookup_failed;
      d.error = "DNS: fuzz";
      return d;
    }
    d.outcome = admin::Destination::Outcome::found;
    d.site = "aspmx.l.google.com";
    d.shaping_domain = domain;
    d.hosts = {mta::MxHost{"aspmx.l.google.com", 10, {"192.0.2.25"}}};
    return d;
  }
  std::vector<std::string> domains;

 private:
  bool no_mx_ = false, fails_ = false;
};

void check_explain(const admin::HttpResponse& r) {
  const json body = json::parse(r.body, nullptr, false);
  if (!body.is_object() || body.size() != 5) broken("explain body", r.body);
  for (const char* key : {"domain", "site", "source"}) {
    if (!body.contains(key) || !body[key].is_string()) broken("explain field", key);
  }
  if (!body.contains("provider") || !(body["provider"].is_string() || body["provider"].is_null()))
    broken("explain provider", r.body);
  if (!body.contains("limits") || !body["limits"].is_array() || body["limits"].empty())
    broken("explain limits", r.body);
  for (const json& limit : body["limits"]) {
    if (!limit.is_object() || limit.size() != 3 || !limit.contains("value") ||
        !limit.contains("name") || !limit["name"].is_string() || !limit.contains("set_by") ||
        !limit["set_by"].is_string()) {
      broken("explain limit", limit.dump());
    }
  }
}

// The next '\n'-terminated field of `in` (the rest when there is no '\n').
std::string_view take_line(std::string_view* in) {
  const size_t end = in->find('\n');
  std::string_view line = in->substr(0, end);
  in->remove_prefix(end == std::string_view::npos ? in->size() : end + 1);
  return line;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> query;
  while (!text.empty() && query.size() < 64) {  // the server keeps at most 64
    const size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    text.remove_prefix(amp == std::string_view::npos ? text.size() : amp + 1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      query.emplace_back(std::string(pair), "");
    } else {
      query.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    }
  }
  return query;
}

std::string header(const admin::HttpResponse& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

void check_error_body(const admin::HttpResponse& r) {
  if (r.content_type != "application/json") broken("error content type", r.content_type);
  const json body = json::parse(r.body, nullptr, false);
  if (!body.is_object()) broken("error body is not a JSON object", r.body);
  if (body.size() != 2 || !body.contains("error") || !body["error"].is_string() ||
      !body.contains("detail") || !body["detail"].is_string()) {
    broken("error body is not exactly {error, detail}", r.body);
  }
  if (body["error"].get_ref<const std::string&>().empty()) broken("empty error", r.body);
}

void check(const admin::HttpRequest& request, bool right_token, const admin::HttpResponse& r,
           const FuzzDaemon& daemon, const FuzzProber& prober, const FuzzDestinations& destinations,
           const runtime::Clock& clock) {
  const std::string status = std::to_string(r.status);
  switch (r.status) {
    case 201:
      if ((request.path != "/api/v1/campaigns" && request.path != "/api/v1/suppressions") ||
          request.method != "POST")
        broken("201", request.path);
      [[fallthrough]];
    case 200:
      if (r.content_type == "application/json" &&
          json::parse(r.body, nullptr, false).is_discarded()) {
        broken("200 body does not parse", r.body);
      }
      if (r.event_stream && request.path != "/api/v1/events") broken("stream", request.path);
      if (r.content_type.starts_with("text/csv") && request.path != "/api/v1/suppressions")
        broken("csv", request.path);
      if (request.path == "/api/v1/explain" && request.method == "GET") check_explain(r);
      break;
    case 503: {
      // /healthz's answer, not an error body.
      const json body = json::parse(r.body, nullptr, false);
      if (request.path != "/healthz" || !body.is_object() ||
          body.value("status", "") != "unavailable" || !body.contains("reason")) {
        broken("503", r.body);
      }
      break;
    }
    case 401:
      if (header(r, "WWW-Authenticate").empty()) broken("401 without WWW-Authenticate", r.body);
      check_error_body(r);
      break;
    case 405: {
      // A list of methods the API has, ", "-separated, never empty.
      const std::string allow = header(r, "Allow");
      bool ok = !allow.empty();
      size_t start = 0;
      while (ok && start <= allow.size()) {
        size_t end = allow.find(", ", start);
        if (end == std::string::npos) end = allow.size();
        const std::string method = allow.substr(start, end - start);
        ok = method == "GET" || method == "POST" || method == "DELETE";
        start = end + 2;
      }
      if (!ok) broken("405 without a proper Allow", allow);
    }
      check_error_body(r);
      break;
    case 409:
      if (!request.path.starts_with("/api/v1/campaigns/")) broken("409", request.path);
      [[fallthrough]];
    case 400:
    case 404:
    case 413:
    case 500:
      check_error_body(r);
      break;
    default:
      broken("unexpected status", status);
  }
  if (r.status != 200 && r.event_stream) broken("an error that streams", status);
  if (request.path.starts_with("/api/") && !right_token && r.status != 401) {
    broken("an /api/ request without the token was not refused", request.path);
  }
  const bool refused = r.status >= 400 && r.status < 500;
  if (refused && !daemon.commands.empty()) broken("a refused request reached the daemon", status);
  if (daemon.commands.size() > 1) broken("more than one command", status);
  if (prober.domains.size() > (r.status == 200 ? 1u : 0u)) broken("probed", status);
  if (destinations.domains.size() >
      (r.status == 200 || r.status == 404 || r.status == 500 ? 1u : 0u))
    broken("looked up", status);
  std::vector<std::string> looked_up = prober.domains;
  looked_up.insert(looked_up.end(), destinations.domains.begin(), destinations.domains.end());
  for (const std::string& domain : looked_up) {
    if (domain.empty() || domain.size() > 255) broken("a probe of that length", domain);
    for (char ch : domain) {
      if ((ch >= 'A' && ch <= 'Z') ||
          std::string_view(" \t/\\@\0\r\n", 8).find(ch) != std::string_view::npos) {
        broken("a probe of a domain with that character", domain);
      }
    }
  }
  for (const mta::AdminCommand& c : daemon.commands) {
    for (const std::string* text : {&c.target, &c.reason}) {
      if (text->find_first_of(std::string_view("\0\r\n", 3)) != std::string::npos) {
        broken("a control character in a command", *text);
      }
    }
    if (c.kind == mta::AdminCommand::Kind::suspend_site ||
        c.kind == mta::AdminCommand::Kind::suspend_domain) {
      if (c.target.empty()) broken("a suspension of nothing", r.body);
      if (c.until <= clock.wall() || c.until > clock.wall() + std::chrono::hours(24 * 30)) {
        broken("a suspension outside (now, now + 30d]", r.body);
      }
    }
    if (c.kind == mta::AdminCommand::Kind::suspend_domain ||
        c.kind == mta::AdminCommand::Kind::resume_domain ||
        c.kind == mta::AdminCommand::Kind::bounce_domain) {
      for (char ch : c.target) {
        if (ch >= 'A' && ch <= 'Z') broken("a domain not lower-cased", c.target);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view flags = take_line(&in);
  admin::HttpRequest request;
  request.method = std::string(take_line(&in));
  request.path = std::string(take_line(&in));
  request.query = parse_query(take_line(&in));
  const std::string_view auth = take_line(&in);
  const std::string token = flags.find('n') != std::string_view::npos ? "" : kToken;
  request.authorization = auth == "=" ? std::string("Bearer ") + kToken : std::string(auth);
  request.body = std::string(in);
  request.body_too_large = flags.find('L') != std::string_view::npos;
  const bool metrics_auth = flags.find('m') != std::string_view::npos;

  FuzzDaemon daemon(flags);
  const runtime::FakeClock clock;
  FuzzProber prober;
  FuzzDestinations destinations(flags);
  admin::AdminRouter router(daemon, clock);
  if (flags.find('P') == std::string_view::npos) router.set_prober(&prober);
  if (flags.find('D') == std::string_view::npos) router.set_destinations(&destinations);
  const admin::HttpResponse response = router.handle(request, token, metrics_auth);
  if (std::getenv("ADMIN_FUZZ_VERBOSE")) {
    std::fprintf(stderr, "%s %s -> %d %s\n", request.method.c_str(), request.path.c_str(),
                 response.status, response.body.c_str());
  }
  check(request, admin::bearer_matches(request.authorization, token), response, daemon, prober,
        destinations, clock);
  return 0;
}
