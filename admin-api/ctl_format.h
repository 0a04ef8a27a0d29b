// admin-api/ctl_format.h — what ringmailctl prints: the admin URL and token
// it derives from the config, the tables and one-line summaries it makes
// of the API's JSON, and its error lines.
//
// Owns: presentation only. Pure: strings in, strings out, no I/O, so the
// unit tests compare exactly what an operator sees.
// Threads: any. Trust: the API's JSON comes from the daemon the operator
// named; a field of an unexpected type is shown as its JSON text, never
// an exception.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin-api/ctl_args.h"
#include "conf/config.h"

namespace ringmail::admin::ctl {

// admin.address as parsed by conf (host without brackets) to a base URL:
// "127.0.0.1", 8025 -> "http://127.0.0.1:8025", "::1" -> "http://[::1]:8025".
// An address that listens on every interface (0.0.0.0, ::) is reached on
// the loopback of its family.
std::string admin_url_from_address(const std::string& host, uint16_t port);

// --admin as typed: "http://h:p" as is (without a trailing '/'), "h:p"
// gets "http://". nullopt with *problem for an empty URL or another scheme.
std::optional<std::string> normalize_admin_url(std::string_view url, std::string* problem);

// The token file's contents without trailing whitespace and newlines.
using conf::trim_token;

// A field's value as a table cell: strings as they are, numbers and
// booleans as JSON, null or absent as "-", arrays of strings comma-joined.
std::string cell_text(const nlohmann::json& value);

enum class Align { left, right };
struct Column {
  std::string header;
  Align align = Align::left;
};

// Columns separated by two spaces, each as wide as its widest cell; no
// trailing spaces. Rows shorter than the header get empty cells.
std::string format_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows);

// SITE  SOURCE  QUEUED  DEFERRED  IN-FLIGHT  DELIVERED  BOUNCED  SUSPENDED-UNTIL  DOMAINS,
// then a "backoff" line for each site with one in force.
std::string format_sites(const nlohmann::json& sites);
// GET /api/v1/stats: "key  value" totals, bounced_by_category, the sites table.
std::string format_stats(const nlohmann::json& stats);
// GET /api/v1/queue: the sites table, then "total: n".
std::string format_queue(const nlohmann::json& queue);
// GET /api/v1/messages/ID (and one dead letter): the message's fields,
// then RECIPIENT  STATE  ATTEMPTS  NEXT-ATTEMPT  CODE  ENHANCED  CATEGORY  RESPONSE.
std::string format_message(const nlohmann::json& message);
// GET /api/v1/dead: ID  RECEIVED  FAILED  KEPT-UNTIL  TENANT  CAMPAIGN  SENDER  FAILED-RCPTS
// CATEGORIES, then "total: n".
std::string format_dead_letters(const nlohmann::json& list);
// GET /api/v1/explain: domain, site, provider and source, then
// LIMIT  VALUE  SET-BY, one row per limit in force.
std::string format_explain(const nlohmann::json& body);
// GET /api/v1/warmup: SOURCE  ADDRESS  POOL  PROVIDER  STARTED  DAY  CAP
// WINDOW  SENT  STATE, one row per source (and provider); a null provider
// shows "all", a null cap "unlimited".
std::string format_warmup(const nlohmann::json& body);
// The campaigns and tenants tables (GET /api/v1/campaigns, /tenants).
std::string format_campaigns(const nlohmann::json& body);
std::string format_tenants(const nlohmann::json& body);
// One delivery-log record: TIME TYPE RECIPIENT SITE CODE TEXT.
std::string format_event(const nlohmann::json& record);

// What a successful answer prints in human form (with a final newline).
std::string format_human(Output output, const nlohmann::json& body);

// "ERROR: DETAIL" from an error body {"error", "detail"}; for a body that
// is not one, "HTTP STATUS" and the body's first line.
std::string api_error_text(long status, std::string_view body);

}  // namespace ringmail::admin::ctl
