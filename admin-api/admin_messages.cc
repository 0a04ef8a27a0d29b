// The message status and dead-letter routes of AdminRouter (CONTRACT
// "Control plane in detail": GET /api/v1/messages/{id}, GET /api/v1/dead,
// POST /api/v1/dead/{id}/retry, DELETE /api/v1/dead/{id}). POST
// /api/v1/messages (the exact path) is injection, routed elsewhere.
#include <nlohmann/json.hpp>

#include "admin-api/admin_json.h"
#include "admin-api/admin_router.h"
#include "mail/bounce_category.h"
#include "mta/message_tracker.h"

namespace ringmail::admin {

namespace {

using nlohmann::ordered_json;

constexpr std::string_view kMessages = "/api/v1/messages/";
constexpr std::string_view kDead = "/api/v1/dead";
constexpr size_t kMaxId = 200;

ordered_json or_null(const std::string& s) {
  return s.empty() ? ordered_json(nullptr) : ordered_json(s);
}

ordered_json response_json(const queue::RecipientResponse& r) {
  if (r.code == 0 && r.enhanced.empty() && r.text.empty()) return nullptr;
  return ordered_json{
      {"code", r.code == 0 ? ordered_json(nullptr) : ordered_json(r.code)},
      {"enhanced", or_null(r.enhanced)},
      {"text", r.text},
  };
}

ordered_json recipient_json(const mta::RecipientStatus& r) {
  return ordered_json{
      {"recipient", r.address},
      {"state", queue::to_string(r.state)},
      {"attempts", r.attempts},
      {"next_attempt", r.next_attempt_unix_ms ? ordered_json(time_text_ms(*r.next_attempt_unix_ms))
                                              : ordered_json(nullptr)},
      {"response", response_json(r.response)},
      {"category", or_null(r.category)},  // Ringmail extension
  };
}

// CONTRACT's shape, then the Ringmail extensions "finished" and "kept_until"
// (null while the message is in the spool).
ordered_json message_json(const mta::MessageStatus& m) {
  ordered_json recipients = ordered_json::array();
  for (const mta::RecipientStatus& r : m.recipients) recipients.push_back(recipient_json(r));
  auto time_or_null = [](const std::optional<int64_t>& t) {
    return t ? ordered_json(time_text_ms(*t)) : ordered_json(nullptr);
  };
  return ordered_json{
      {"id", m.id},
      {"sender", m.sender},
      {"tenant", or_null(m.tenant)},
      {"campaign", or_null(m.campaign)},
      {"received", time_text_ms(m.received_unix_ms)},
      {"size", m.size},
      {"recipients", recipients},
      {"finished", time_or_null(m.finished_unix_ms)},
      {"kept_until", time_or_null(m.kept_until_unix_ms)},
  };
}

HttpResponse no_tracker() {
  return json_error(500, "no spool", "message status needs the spool, which is not open");
}

}  // namespace

HttpResponse AdminRouter::messages(const HttpRequest& request) const {
  const std::string& path = request.path;
  const std::string id = path.substr(kMessages.size());
  if (id.empty() || id.size() > kMaxId || id.find('/') != std::string::npos)
    return json_error(404, "not found", "no route " + path);
  if (request.method != "GET" && request.method != "HEAD") return method_not_allowed("GET", path);
  if (!request.query.empty())
    return json_error(
        400, "unknown parameter",
        request.query.front().first.substr(0, 64) + ": this route takes no parameters");
  mta::MessageTracker* tracker = daemon_.messages();
  if (!tracker) return no_tracker();
  std::optional<mta::MessageStatus> status = tracker->find(id);
  if (!status) {
    return json_error(
        404, "not found",
        "no message \"" + id + "\" (unknown, or finished longer ago than " + "spool.keep_status)");
  }
  return json_response(200, message_json(*status));
}

HttpResponse AdminRouter::dead(const HttpRequest& request) const {
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  mta::MessageTracker* tracker = daemon_.messages();
  if (path == kDead) {
    if (!get) return method_not_allowed("GET", path);
    mta::DeadLetterFilter filter;
    for (const auto& [key, value] : request.query) {
      std::string* field = key == "tenant"     ? &filter.tenant
                           : key == "campaign" ? &filter.campaign
                           : key == "category" ? &filter.category
                                               : nullptr;
      if (!field) {
        return json_error(400, "unknown parameter",
                          key.substr(0, 64) + ": filters are tenant, campaign and category");
      }
      if (value.size() > kMaxName) return json_error(400, "bad parameter", key + ": too long");
      *field = value;
    }
    if (!filter.category.empty() && !mail::parse_bounce_category(filter.category)) {
      return json_error(400, "bad parameter",
                        "category: \"" + filter.category.substr(0, 64) +
                            "\" is not a bounce category (e.g. InvalidRecipient)");
    }
    if (!tracker) return no_tracker();
    ordered_json list = ordered_json::array();
    for (const mta::MessageStatus& m : tracker->dead_letters(filter))
      list.push_back(message_json(m));
    return json_response(200, ordered_json{{"dead", list}});
  }
  // /api/v1/dead/{id} (DELETE) and /api/v1/dead/{id}/retry (POST)
  std::string id = path.substr(kDead.size() + 1);
  bool retry = false;
  if (id.ends_with("/retry")) {
    retry = true;
    id.resize(id.size() - 6);
  }
  if (id.empty() || id.size() > kMaxId || id.find('/') != std::string::npos)
    return json_error(404, "not found", "no route " + path);
  if (retry && request.method != "POST") return method_not_allowed("POST", path);
  if (!retry && !get && request.method != "DELETE") return method_not_allowed("GET, DELETE", path);
  if (!tracker) return no_tracker();
  if (!retry && get) {  // Ringmail extension: one dead letter
    std::optional<mta::MessageStatus> m = tracker->dead_letter(id);
    if (!m) return json_error(404, "not found", "no dead letter \"" + id + "\"");
    return json_response(200, message_json(*m));
  }
  const mta::DeadLetterOutcome outcome = retry ? tracker->retry(id) : tracker->remove(id);
  switch (outcome.status) {
    case mta::DeadLetterOutcome::Status::ok:
      if (retry)
        return json_response(200, ordered_json{{"id", id}, {"requeued", outcome.requeued}});
      return json_response(200, ordered_json{{"id", id}, {"deleted", true}});
    case mta::DeadLetterOutcome::Status::not_found:
      return json_error(404, "not found", outcome.detail);
    case mta::DeadLetterOutcome::Status::failed:
      break;
  }
  return json_error(500, retry ? "retry failed" : "delete failed", outcome.detail);
}

}  // namespace ringmail::admin
