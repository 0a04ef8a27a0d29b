// admin-api/admin_json.h — the pieces every route handler shares: JSON
// responses, the checks of a JSON request body and its fields (each
// failure a 400 naming the field), 405 with Allow, RFC 3339 times.
// Internal to admin-api/; pure, any thread.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "admin-api/admin_router.h"
#include "runtime/clock.h"

namespace ringmail::admin {

inline constexpr size_t kMaxName = 255;  // a site, domain, tenant, campaign

HttpResponse json_response(int status, const nlohmann::ordered_json& body);
HttpResponse method_not_allowed(const std::string& allow, const std::string& path);
std::string time_text(runtime::WallTime t);
std::string time_text_ms(int64_t unix_ms);
// A JSON object body, or the 400 that says why not.
std::optional<nlohmann::json> parse_object(const HttpRequest& request, HttpResponse* error);
// A string field: absent or null -> "" (and true); wrong type, longer than
// max or with control characters (tab excepted) -> false with the 400.
bool string_field(const nlohmann::json& body, const char* name, size_t max, std::string* out,
                  HttpResponse* error);
// Exactly one of the named target fields, non-empty; else the 400.
struct Target {
  std::string field;
  std::string value;
};
std::optional<Target> one_target(const nlohmann::json& body,
                                 std::initializer_list<const char*> names, HttpResponse* error);
// False with a 400 when the body has a field not in `names`.
bool known_field(const nlohmann::json& body, std::initializer_list<const char*> names,
                 HttpResponse* error);

}  // namespace ringmail::admin
