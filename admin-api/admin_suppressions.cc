// The suppression routes of AdminRouter (CONTRACT "Feedback, suppression
// and compliance in detail"): GET, POST and DELETE /api/v1/suppressions,
// and (Ringmail extension) their CSV forms, ?format=csv.
#include <nlohmann/json.hpp>

#include "admin-api/admin_json.h"
#include "admin-api/admin_router.h"
#include "queue/suppression_store.h"

namespace ringmail::admin {

namespace {

using nlohmann::ordered_json;

constexpr size_t kDefaultLimit = 1000;
constexpr size_t kMaxJsonLimit = 100000;
constexpr size_t kMaxCsvLimit = 10000000;

ordered_json entry_json(const queue::SuppressionEntry& e) {
  auto or_null = [](const std::string& s) {
    return s.empty() ? ordered_json(nullptr) : ordered_json(s);
  };
  return ordered_json{
      {"tenant", e.tenant},
      {"address", e.address},
      {"reason", e.reason},
      {"source", queue::to_string(e.source)},
      {"category", or_null(e.category)},
      {"campaign", or_null(e.campaign)},
      {"created", time_text_ms(e.created_unix_ms)},
  };
}

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// The first field of one CSV line (the address column of an import),
// unquoted; "" for a blank line.
std::string first_csv_field(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  if (line.empty()) return {};
  if (line.front() != '"') {
    const size_t comma = line.find(',');
    std::string_view f = line.substr(0, comma);
    while (!f.empty() && (f.back() == ' ' || f.back() == '\t' || f.back() == '\r')) {
      f.remove_suffix(1);
    }
    return std::string(f);
  }
  std::string out;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '"') {
      if (i + 1 < line.size() && line[i + 1] == '"') {
        out.push_back('"');
        ++i;
        continue;
      }
      return out;
    }
    out.push_back(line[i]);
  }
  return out;  // an unterminated quote: what there is (checked as an address)
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

struct Query {
  std::string tenant, address, format, reason;
  size_t limit = kDefaultLimit;
  bool limit_given = false;
};

std::optional<Query> read_query(const HttpRequest& request, HttpResponse* error) {
  Query q;
  for (const auto& [key, value] : request.query) {
    if (key == "tenant" || key == "address" || key == "format" || key == "reason") {
      if (value.size() > queue::kMaxSuppressionReason) {
        *error = json_error(400, "bad parameter", key + ": too long");
        return std::nullopt;
      }
      (key == "tenant"    ? q.tenant
       : key == "address" ? q.address
       : key == "format"  ? q.format
                          : q.reason) = value;
    } else if (key == "limit") {
      size_t n = 0;
      bool ok = !value.empty() && value.size() <= 9;
      for (char c : value) ok = ok && c >= '0' && c <= '9';
      if (ok) n = std::stoul(value);
      if (!ok || n == 0) {
        *error = json_error(400, "bad parameter", "limit: a number from 1");
        return std::nullopt;
      }
      q.limit = n;
      q.limit_given = true;
    } else {
      *error = json_error(
          400, "unknown parameter",
          key.substr(0, 64) + ": parameters are tenant, address, format, limit and reason");
      return std::nullopt;
    }
  }
  if (!q.format.empty() && q.format != "json" && q.format != "csv") {
    *error = json_error(400, "bad parameter", "format: json or csv");
    return std::nullopt;
  }
  return q;
}

}  // namespace

HttpResponse AdminRouter::suppressions(const HttpRequest& request) const {
  const std::string& path = request.path;
  queue::SuppressionStore* store = daemon_.suppressions();
  if (!store) return json_error(503, "unavailable", "the suppression lists are not loaded");
  const bool get = request.method == "GET" || request.method == "HEAD";
  const bool post = request.method == "POST";
  const bool del = request.method == "DELETE";
  if (!get && !post && !del) return method_not_allowed("GET, POST, DELETE", path);
  HttpResponse error;
  std::optional<Query> q = read_query(request, &error);
  if (!q) return error;
  const bool csv = q->format == "csv";
  if (!q->reason.empty() && !(post && csv)) {
    return json_error(400, "bad parameter", "reason: only with a CSV import (POST ?format=csv)");
  }

  if (get) {
    const size_t max = csv ? kMaxCsvLimit : kMaxJsonLimit;
    const size_t limit = q->limit_given ? std::min(q->limit, max) : (csv ? max : kDefaultLimit);
    std::vector<queue::SuppressionEntry> list = store->list(q->tenant, q->address, limit + 1);
    const bool more = list.size() > limit;
    if (more) list.resize(limit);
    if (csv) {
      HttpResponse r;
      r.content_type = "text/csv; charset=utf-8";
      r.body = "address,tenant,reason,source,category,campaign,created\r\n";
      for (const queue::SuppressionEntry& e : list) {
        r.body += csv_field(e.address) + "," + csv_field(e.tenant) + "," + csv_field(e.reason) +
                  "," + std::string(queue::to_string(e.source)) + "," + csv_field(e.category) +
                  "," + csv_field(e.campaign) + "," + time_text_ms(e.created_unix_ms) + "\r\n";
      }
      if (more) r.headers.emplace_back("X-Ringmail-Truncated", std::to_string(limit));
      return r;
    }
    ordered_json entries = ordered_json::array();
    for (const queue::SuppressionEntry& e : list) entries.push_back(entry_json(e));
    ordered_json body{{"suppressions", std::move(entries)}};
    if (more) body["more"] = true;
    return json_response(200, body);
  }

  if (del) {
    if (q->tenant.empty() || q->address.empty()) {
      return json_error(400, "bad parameter", "tenant and address are required");
    }
    bool found = false;
    queue::StoreOutcome outcome = store->remove(q->tenant, q->address, &found);
    if (!outcome.ok()) return json_error(500, "suppression change failed", outcome.detail);
    if (!found) {
      return json_error(404, "not found",
                        "no suppression of " + lower_ascii(q->address) + " for " + q->tenant);
    }
    return json_response(200, ordered_json{{"removed", 1}});
  }

  // POST: a JSON body {"tenant", "address" | "addresses", "reason"?}, or
  // with ?format=csv&tenant=T[&reason=...] a CSV body whose first column is
  // the address (a header line "address,..." is skipped).
  std::string tenant, reason;
  std::vector<std::string> addresses;
  if (csv) {
    tenant = q->tenant;
    reason = q->reason;
    if (!q->address.empty())
      return json_error(400, "bad parameter", "address: not with a CSV body");
    size_t start = 0;
    size_t line_no = 0;
    while (start <= request.body.size()) {
      size_t end = request.body.find('\n', start);
      if (end == std::string::npos) end = request.body.size();
      const std::string field =
          first_csv_field(std::string_view(request.body).substr(start, end - start));
      ++line_no;
      if (!field.empty() && !(line_no == 1 && lower_ascii(field) == "address") &&
          field.front() != '#') {
        addresses.push_back(field);
      }
      start = end + 1;
    }
  } else {
    std::optional<nlohmann::json> body = parse_object(request, &error);
    if (!body || !known_field(*body, {"tenant", "address", "addresses", "reason"}, &error))
      return error;
    if (!string_field(*body, "tenant", kMaxName, &tenant, &error)) return error;
    if (!string_field(*body, "reason", queue::kMaxSuppressionReason, &reason, &error)) return error;
    const bool one = body->contains("address");
    const bool many = body->contains("addresses");
    if (one == many) {
      return json_error(400, "bad field", "give address or addresses (a list), one of them");
    }
    if (one) {
      std::string address;
      if (!string_field(*body, "address", queue::kMaxSuppressionAddress, &address, &error))
        return error;
      addresses.push_back(std::move(address));
    } else {
      const nlohmann::json& list = (*body)["addresses"];
      if (!list.is_array()) return json_error(400, "bad field", "addresses: a list of strings");
      for (size_t i = 0; i < list.size(); ++i) {
        if (!list[i].is_string()) {
          return json_error(400, "bad field", "addresses[" + std::to_string(i) + "]: not a string");
        }
        addresses.push_back(list[i].get<std::string>());
      }
    }
  }
  if (tenant.empty()) return json_error(400, "bad field", "tenant: required (\"*\": every tenant)");
  if (tenant.find('\n') != std::string::npos)
    return json_error(400, "bad field", "tenant: a line break");
  if (addresses.empty()) return json_error(400, "bad field", "no address given");
  std::vector<queue::SuppressionEntry> entries;
  entries.reserve(addresses.size());
  const int64_t now = runtime::to_unix_ms(clock_.wall());
  for (size_t i = 0; i < addresses.size(); ++i) {
    if (!queue::valid_suppression_address(addresses[i])) {
      std::string shown = addresses[i].substr(0, 100);
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
      }
      return json_error(400, "bad field",
                        (addresses.size() == 1 ? std::string("address")
                                               : "addresses[" + std::to_string(i) + "]") +
                            ": \"" + shown + "\" is not an address like user@example.com");
    }
    queue::SuppressionEntry e;
    e.tenant = tenant;
    e.address = addresses[i];
    e.reason = reason.empty() ? "added by the operator" : reason;
    e.source = queue::SuppressionSource::admin;
    e.created_unix_ms = now;
    entries.push_back(std::move(e));
  }
  size_t added = 0;
  queue::StoreOutcome outcome = store->add(entries, &added);
  if (!outcome.ok()) {
    return json_error(outcome.status == queue::StoreStatus::spool_full ? 507 : 500,
                      "suppression change failed", outcome.detail);
  }
  return json_response(201, ordered_json{{"added", added}});
}

}  // namespace ringmail::admin
