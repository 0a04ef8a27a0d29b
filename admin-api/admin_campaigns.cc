// The campaign and tenant routes of AdminRouter (CONTRACT "Control plane in
// detail": CAMPAIGN and TENANT), kept apart from the queue routes.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "admin-api/admin_json.h"
#include "admin-api/admin_router.h"

namespace ringmail::admin {

namespace {

using nlohmann::ordered_json;

constexpr std::string_view kCampaigns = "/api/v1/campaigns";
constexpr std::string_view kTenants = "/api/v1/tenants";

ordered_json or_null(const std::string& s) {
  return s.empty() ? ordered_json(nullptr) : ordered_json(s);
}

ordered_json stats_json(const queue::DeliveryStats& s) {
  ordered_json by_category = ordered_json::object();
  for (const auto& [category, n] : s.bounced_by_category) by_category[category] = n;
  return ordered_json{
      {"received", s.received},
      {"delivered", s.delivered},
      {"deferred", s.deferred},
      {"bounced", s.bounced},
      {"bounced_by_category", by_category},
      {"complaints", s.complaints},
      {"unsubscribes", s.unsubscribes},
      {"suppressed", s.suppressed},
      {"expired", s.expired},
      {"cancelled", s.cancelled},
      {"queued", s.queued > 0 ? s.queued : 0},
  };
}

ordered_json campaign_json(const mta::CampaignView& c) {
  const queue::CampaignRecord& r = c.record;
  return ordered_json{
      {"id", r.id},
      {"name", r.name.empty() ? r.id : r.name},
      {"tenant", or_null(r.tenant)},
      {"pool", or_null(r.pool)},
      {"message_rate", or_null(r.message_rate)},
      {"state", queue::to_string(r.state)},
      {"created", time_text_ms(r.created_unix_ms)},
      {"stats", stats_json(c.stats)},
  };
}

ordered_json tenant_json(const mta::TenantView& t) {
  return ordered_json{
      {"name", t.name},
      {"state", t.paused ? "paused" : "active"},
      {"stats", stats_json(t.stats)},
  };
}

HttpResponse campaign_outcome(const mta::CampaignOutcome& outcome) {
  using Status = mta::CampaignOutcome::Status;
  switch (outcome.status) {
    case Status::ok:
      return json_response(200, campaign_json(outcome.campaign));
    case Status::created:
      return json_response(201, campaign_json(outcome.campaign));
    case Status::not_found:
      return json_error(404, "not found", outcome.detail);
    case Status::invalid:
      return json_error(400, "bad field", outcome.detail);
    case Status::conflict:
      return json_error(409, "conflict", outcome.detail);
    case Status::failed:
      break;
  }
  return json_error(500, "campaign change failed", outcome.detail);
}

}  // namespace

HttpResponse AdminRouter::campaigns(const HttpRequest& request) const {
  mta::CampaignRegistry* registry = daemon_.campaigns();
  if (!registry) return json_error(500, "no spool", "the spool is not open");
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  if (path == kCampaigns) {
    if (get) {
      std::string tenant;
      for (const auto& [key, value] : request.query) {
        if (key != "tenant")
          return json_error(400, "unknown parameter", key.substr(0, 64) + ": the filter is tenant");
        if (value.size() > kMaxName) return json_error(400, "bad parameter", "tenant: too long");
        tenant = value;
      }
      ordered_json list = ordered_json::array();
      for (const mta::CampaignView& c : registry->list(tenant)) list.push_back(campaign_json(c));
      return json_response(200, ordered_json{{"campaigns", list}});
    }
    if (!post) return method_not_allowed("GET, POST", path);
    HttpResponse error;
    std::optional<nlohmann::json> body = parse_object(request, &error);
    if (!body || !known_field(*body, {"id", "name", "tenant", "pool", "message_rate"}, &error))
      return error;
    mta::CampaignUpdate update;
    if (!string_field(*body, "id", 64, &update.id, &error)) return error;
    if (update.id.empty()) return json_error(400, "bad field", "id: required");
    for (auto [name, field] : {std::pair{"name", &update.name},
                               {"tenant", &update.tenant},
                               {"pool", &update.pool},
                               {"message_rate", &update.message_rate}}) {
      auto it = body->find(name);
      if (it == body->end()) continue;
      std::string value;
      if (!string_field(*body, name, kMaxName, &value, &error)) return error;
      *field = std::move(value);  // null clears, as ""
    }
    const mta::CampaignRegistry::Deliver deliver = [this](const mta::AdminCommand& command,
                                                          std::string* error) {
      return daemon_.command(command, error).has_value();
    };
    return campaign_outcome(registry->update(update, *daemon_.config(), &deliver));
  }
  // /api/v1/campaigns/{id}[/pause|/resume|/cancel]
  std::string rest = path.substr(kCampaigns.size() + 1);
  std::string action;
  if (const size_t slash = rest.find('/'); slash != std::string::npos) {
    action = rest.substr(slash + 1);
    rest.resize(slash);
  }
  if (rest.empty() || rest.size() > 64) return json_error(404, "not found", "no route " + path);
  if (action.empty()) {
    if (!get) return method_not_allowed("GET", path);
    std::optional<mta::CampaignView> c = registry->find(rest);
    if (!c) return json_error(404, "not found", "no campaign \"" + rest + "\"");
    return json_response(200, campaign_json(*c));
  }
  mta::CampaignAction what;
  if (action == "pause") {
    what = mta::CampaignAction::pause;
  } else if (action == "resume") {
    what = mta::CampaignAction::resume;
  } else if (action == "cancel") {
    what = mta::CampaignAction::cancel;
  } else {
    return json_error(404, "not found", "no route " + path);
  }
  if (!post) return method_not_allowed("POST", path);
  return campaign_outcome(
      registry->act(rest, what, [this](const mta::AdminCommand& command, std::string* error) {
        return daemon_.command(command, error).has_value();
      }));
}

HttpResponse AdminRouter::tenants(const HttpRequest& request) const {
  mta::CampaignRegistry* registry = daemon_.campaigns();
  if (!registry) return json_error(500, "no spool", "the spool is not open");
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (path == kTenants) {
    if (!get) return method_not_allowed("GET", path);
    if (!request.query.empty())
      return json_error(
          400, "unknown parameter",
          request.query.front().first.substr(0, 64) + ": this route takes no parameters");
    ordered_json list = ordered_json::array();
    for (const mta::TenantView& t : registry->tenants()) list.push_back(tenant_json(t));
    return json_response(200, ordered_json{{"tenants", list}});
  }
  // A tenant's name may hold a '/' (a relay_networks entry such as
  // 127.0.0.0/8, sent as %2F): the action is the last segment.
  std::string name = path.substr(kTenants.size() + 1);
  std::optional<bool> pause;
  if (name.ends_with("/pause")) {
    pause = true;
    name.resize(name.size() - 6);
  } else if (name.ends_with("/resume")) {
    pause = false;
    name.resize(name.size() - 7);
  }
  if (name.empty() || name.size() > kMaxName)
    return json_error(404, "not found", "no route " + path);
  if (!pause) {
    if (!get) return method_not_allowed("GET", path);
    std::optional<mta::TenantView> t = registry->tenant(name);
    if (!t) return json_error(404, "not found", "no tenant \"" + name + "\"");
    return json_response(200, tenant_json(*t));
  }
  if (request.method != "POST") return method_not_allowed("POST", path);
  if (std::any_of(name.begin(), name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return json_error(400, "bad tenant", "the tenant name has control characters");
  mta::AdminCommand command;
  command.kind =
      *pause ? mta::AdminCommand::Kind::pause_tenant : mta::AdminCommand::Kind::resume_tenant;
  command.target = name;
  std::string why;
  if (!daemon_.command(command, &why))
    return json_error(500, *pause ? "pause failed" : "resume failed", why);
  mta::TenantView view;
  if (std::optional<mta::TenantView> t = registry->tenant(name)) view = std::move(*t);
  view.name = name;
  view.paused = *pause;
  return json_response(200, tenant_json(view));
}

}  // namespace ringmail::admin
