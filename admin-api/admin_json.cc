#include "admin-api/admin_json.h"

#include <algorithm>

#include "mail/mail_time.h"

namespace ringmail::admin {

using nlohmann::ordered_json;

HttpResponse json_response(int status, const ordered_json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return r;
}

HttpResponse method_not_allowed(const std::string& allow, const std::string& path) {
  HttpResponse r = json_error(405, "method not allowed", path + " takes " + allow);
  r.headers.emplace_back("Allow", allow);
  return r;
}

std::string time_text(runtime::WallTime t) {
  return time_text_ms(std::chrono::duration_cast<runtime::Millis>(t.time_since_epoch()).count());
}

std::string time_text_ms(int64_t unix_ms) { return mail::format_rfc3339_ms(unix_ms); }

std::optional<nlohmann::json> parse_object(const HttpRequest& request, HttpResponse* error) {
  if (request.body.empty()) {
    *error = json_error(400, "bad request", "a JSON object body is required");
    return std::nullopt;
  }
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    *error = json_error(400, "malformed JSON", "the request body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    *error = json_error(400, "bad request", "the request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

bool string_field(const nlohmann::json& body, const char* name, size_t max, std::string* out,
                  HttpResponse* error) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *error = json_error(400, "bad field", std::string(name) + ": must be a string");
    return false;
  }
  const std::string& v = it->get_ref<const std::string&>();
  if (v.size() > max) {
    *error = json_error(400, "bad field",
                        std::string(name) + ": longer than " + std::to_string(max) + " bytes");
    return false;
  }
  if (std::any_of(v.begin(), v.end(), [](char c) {
        return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
      })) {
    *error = json_error(400, "bad field", std::string(name) + ": control characters");
    return false;
  }
  *out = v;
  return true;
}

std::optional<Target> one_target(const nlohmann::json& body,
                                 std::initializer_list<const char*> names, HttpResponse* error) {
  std::optional<Target> found;
  std::string list;
  for (const char* name : names) {
    list += list.empty() ? std::string("\"") + name + "\"" : std::string(", \"") + name + "\"";
    std::string value;
    if (!string_field(body, name, kMaxName, &value, error)) return std::nullopt;
    const auto present = body.find(name);
    if (present != body.end() && !present->is_null() && value.empty()) {
      *error = json_error(400, "bad field", std::string(name) + ": must not be empty");
      return std::nullopt;
    }
    if (value.empty()) continue;
    if (found) {
      *error = json_error(400, "bad request", "give only one of " + list);
      return std::nullopt;
    }
    found = Target{name, value};
  }
  if (!found) *error = json_error(400, "bad request", "one of " + list + " is required");
  return found;
}

bool known_field(const nlohmann::json& body, std::initializer_list<const char*> names,
                 HttpResponse* error) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (std::none_of(names.begin(), names.end(), [&](const char* n) { return it.key() == n; })) {
      *error = json_error(400, "unknown field", it.key() + ": not a field of this request");
      return false;
    }
  }
  return true;
}

}  // namespace ringmail::admin
