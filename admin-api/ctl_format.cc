#include "admin-api/ctl_format.h"

#include <algorithm>
#include <set>

namespace ringmail::admin::ctl {

namespace {

using nlohmann::json;

std::string dump(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

// A reply text or a domain from the network could carry escape sequences;
// the terminal gets '?' for each control character instead.
std::string printable(std::string text) {
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return text;
}

const json& field(const json& object, const char* name) {
  static const json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(name);
  return it == object.end() ? kNull : *it;
}

std::string plural(const json& n, const char* one, const char* many) {
  return cell_text(n) + " " + (n.is_number() && n == 1 ? one : many);
}

// The name/value block of a summary: names padded to one width.
std::string key_values(const std::vector<std::pair<std::string, std::string>>& lines,
                       const std::string& indent) {
  size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : lines) {
    out += indent + key + std::string(width - key.size() + 2, ' ') + value + "\n";
  }
  return out;
}

}  // namespace

std::string admin_url_from_address(const std::string& host, uint16_t port) {
  std::string reach = host;
  if (host == "0.0.0.0" || host.empty()) reach = "127.0.0.1";
  if (host == "::" || host == "::0") reach = "::1";
  const bool ipv6 = reach.find(':') != std::string::npos;
  return "http://" + (ipv6 ? "[" + reach + "]" : reach) + ":" + std::to_string(port);
}

std::optional<std::string> normalize_admin_url(std::string_view url, std::string* problem) {
  std::string text(url);
  size_t scheme_end = text.find("://");
  if (scheme_end == std::string::npos) {
    text = "http://" + text;
    scheme_end = 4;
  }
  const std::string scheme = text.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    *problem = "--admin: \"" + scheme + "\" is not http or https";
    return std::nullopt;
  }
  while (text.size() > scheme_end + 3 && text.back() == '/') text.pop_back();
  if (text.size() == scheme_end + 3 || text[scheme_end + 3] == '/') {
    *problem =
        url.empty() ? "--admin: empty URL" : "--admin: no host in \"" + std::string(url) + "\"";
    return std::nullopt;
  }
  return text;
}

std::string cell_text(const json& value) {
  if (value.is_null()) return "-";
  if (value.is_string()) return printable(value.get<std::string>());
  if (value.is_array()) {
    if (value.empty()) return "-";
    std::string out;
    for (const json& element : value) {
      out += out.empty() ? "" : ",";
      out += element.is_string() ? printable(element.get<std::string>()) : printable(dump(element));
    }
    return out;
  }
  return printable(dump(value));
}

std::string format_table(const std::vector<Column>& columns,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) width[i] = columns[i].header.size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < columns.size() && i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto line = [&](auto cell_of) {
    std::string out;
    for (size_t i = 0; i < columns.size(); ++i) {
      const std::string text = cell_of(i);
      const std::string pad(width[i] - text.size(), ' ');
      if (i > 0) out += "  ";
      out += columns[i].align == Align::right ? pad + text : text + pad;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = line([&](size_t i) { return columns[i].header; });
  for (const auto& row : rows) {
    out += line([&](size_t i) { return i < row.size() ? row[i] : std::string(); });
  }
  return out;
}

std::string format_sites(const json& sites) {
  static const std::vector<Column> kColumns = {
      {"SITE", Align::left},      {"SOURCE", Align::left},          {"QUEUED", Align::right},
      {"DEFERRED", Align::right}, {"IN-FLIGHT", Align::right},      {"DELIVERED", Align::right},
      {"BOUNCED", Align::right},  {"SUSPENDED-UNTIL", Align::left}, {"DOMAINS", Align::left},
  };
  std::vector<std::vector<std::string>> rows;
  std::string backoffs;
  if (sites.is_array()) {
    for (const json& s : sites) {
      rows.push_back({cell_text(field(s, "site")), cell_text(field(s, "source")),
                      cell_text(field(s, "queued")), cell_text(field(s, "deferred")),
                      cell_text(field(s, "in_flight")), cell_text(field(s, "delivered")),
                      cell_text(field(s, "bounced")), cell_text(field(s, "suspended_until")),
                      cell_text(field(s, "domains"))});
      const json& backoff = field(s, "backoff");
      if (backoff.is_object()) {
        backoffs += "backoff " + cell_text(field(s, "site")) + ": " +
                    cell_text(field(backoff, "action")) + " until " +
                    cell_text(field(backoff, "until")) + " (rule " +
                    cell_text(field(backoff, "rule")) + "; reply " +
                    cell_text(field(backoff, "reply")) + ")\n";
      }
    }
  }
  return format_table(kColumns, rows) + backoffs;
}

std::string format_stats(const json& stats) {
  static const std::vector<std::string> kTotals = {
      "received",  "delivered",  "deferred",      "bounced", "expired",  "suppressed",
      "cancelled", "complaints", "admin_bounced", "queued",  "in_flight"};
  static const std::set<std::string> kShownElsewhere = {"bounced_by_category", "sites"};
  std::vector<std::pair<std::string, std::string>> totals;
  for (const auto& name : kTotals) {
    if (stats.is_object() && stats.contains(name)) {
      totals.emplace_back(name, cell_text(stats[name]));
    }
  }
  // Counts a newer daemon adds are shown too, after the known ones.
  if (stats.is_object()) {
    for (auto it = stats.begin(); it != stats.end(); ++it) {
      if (std::find(kTotals.begin(), kTotals.end(), it.key()) != kTotals.end() ||
          kShownElsewhere.count(it.key()) || it->is_structured()) {
        continue;
      }
      totals.emplace_back(printable(it.key()), cell_text(*it));
    }
  }
  std::string out = key_values(totals, "");
  const json& by_category = field(stats, "bounced_by_category");
  if (by_category.is_object() && !by_category.empty()) {
    std::vector<std::pair<std::string, std::string>> lines;
    for (auto it = by_category.begin(); it != by_category.end(); ++it) {
      lines.emplace_back(printable(it.key()), cell_text(*it));
    }
    out += "\nbounced by category:\n" + key_values(lines, "  ");
  }
  out += "\n" + format_sites(field(stats, "sites"));
  return out;
}

std::string format_queue(const json& queue) {
  return format_sites(field(queue, "sites")) + "total: " + cell_text(field(queue, "total")) + "\n";
}

std::string format_campaigns(const json& body) {
  static const std::vector<Column> kColumns = {
      {"ID", Align::left},        {"STATE", Align::left},      {"TENANT", Align::left},
      {"RECEIVED", Align::right}, {"DELIVERED", Align::right}, {"DEFERRED", Align::right},
      {"BOUNCED", Align::right},  {"QUEUED", Align::right},    {"NAME", Align::left},
  };
  std::vector<std::vector<std::string>> rows;
  const json& list = field(body, "campaigns");
  if (list.is_array()) {
    for (const json& c : list) {
      const json& s = field(c, "stats");
      rows.push_back({cell_text(field(c, "id")), cell_text(field(c, "state")),
                      cell_text(field(c, "tenant")), cell_text(field(s, "received")),
                      cell_text(field(s, "delivered")), cell_text(field(s, "deferred")),
                      cell_text(field(s, "bounced")), cell_text(field(s, "queued")),
                      cell_text(field(c, "name"))});
    }
  }
  return format_table(kColumns, rows);
}

std::string format_tenants(const json& body) {
  static const std::vector<Column> kColumns = {
      {"TENANT", Align::left},     {"STATE", Align::left},     {"RECEIVED", Align::right},
      {"DELIVERED", Align::right}, {"DEFERRED", Align::right}, {"BOUNCED", Align::right},
      {"QUEUED", Align::right},
  };
  std::vector<std::vector<std::string>> rows;
  const json& list = field(body, "tenants");
  if (list.is_array()) {
    for (const json& t : list) {
      const json& s = field(t, "stats");
      rows.push_back({cell_text(field(t, "name")), cell_text(field(t, "state")),
                      cell_text(field(s, "received")), cell_text(field(s, "delivered")),
                      cell_text(field(s, "deferred")), cell_text(field(s, "bounced")),
                      cell_text(field(s, "queued"))});
    }
  }
  return format_table(kColumns, rows);
}

// One campaign or tenant: its own fields, then its stats as format_stats
// shows the daemon's (without sites).
std::string format_object(const json& body, const std::vector<std::string>& fields) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const std::string& name : fields) {
    if (body.is_object() && body.contains(name)) lines.emplace_back(name, cell_text(body[name]));
  }
  std::string out = key_values(lines, "");
  const json& stats = field(body, "stats");
  if (stats.is_object()) {
    std::string shown = format_stats(stats);
    // format_stats ends with the (here empty) sites table: drop it.
    const size_t sites = shown.rfind("\nSITE");
    if (sites != std::string::npos) shown.resize(sites + 1);
    out += "\n" + shown;
  }
  return out;
}

std::string format_warmup(const json& body) {
  static const std::vector<Column> kColumns = {
      {"SOURCE", Align::left},   {"ADDRESS", Align::left}, {"POOL", Align::left},
      {"PROVIDER", Align::left}, {"STARTED", Align::left}, {"DAY", Align::right},
      {"CAP", Align::right},     {"WINDOW", Align::left},  {"SENT", Align::right},
      {"STATE", Align::left},
  };
  std::vector<std::vector<std::string>> rows;
  const json& list = field(body, "sources");
  if (list.is_array()) {
    for (const json& w : list) {
      std::vector<std::string> row;
      for (const char* name : {"source", "address", "pool", "provider", "started", "day", "cap",
                               "window", "sent", "state"}) {
        row.push_back(cell_text(field(w, name)));
      }
      // null means "all sites" and "unlimited" here, not "unknown".
      if (row[3] == "-") row[3] = "all";
      if (row[6] == "-") row[6] = "unlimited";
      rows.push_back(std::move(row));
    }
  }
  return format_table(kColumns, rows);
}

std::string format_explain(const json& body) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const char* name : {"domain", "site", "provider", "source"}) {
    lines.emplace_back(name, cell_text(field(body, name)));
  }
  static const std::vector<Column> kColumns = {
      {"LIMIT", Align::left}, {"VALUE", Align::left}, {"SET-BY", Align::left}};
  std::vector<std::vector<std::string>> rows;
  const json& limits = field(body, "limits");
  if (limits.is_array()) {
    for (const json& l : limits) {
      rows.push_back({cell_text(field(l, "name")), cell_text(field(l, "value")),
                      cell_text(field(l, "set_by"))});
    }
  }
  return key_values(lines, "") + "\n" + format_table(kColumns, rows);
}

std::string format_message(const json& message) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const char* name :
       {"id", "sender", "tenant", "campaign", "received", "size", "finished", "kept_until"}) {
    if (!message.is_object() || !message.contains(name)) continue;
    const json& value = field(message, name);
    // The null sender is the empty string: show it as <>.
    lines.emplace_back(
        name, std::string(name) == "sender" && value == "" ? std::string("<>") : cell_text(value));
  }
  static const std::vector<Column> kColumns = {
      {"RECIPIENT", Align::left},    {"STATE", Align::left},    {"ATTEMPTS", Align::right},
      {"NEXT-ATTEMPT", Align::left}, {"CODE", Align::right},    {"ENHANCED", Align::left},
      {"CATEGORY", Align::left},     {"RESPONSE", Align::left},
  };
  std::vector<std::vector<std::string>> rows;
  const json& recipients = field(message, "recipients");
  if (recipients.is_array()) {
    for (const json& r : recipients) {
      const json& response = field(r, "response");
      rows.push_back({cell_text(field(r, "recipient")), cell_text(field(r, "state")),
                      cell_text(field(r, "attempts")), cell_text(field(r, "next_attempt")),
                      cell_text(field(response, "code")), cell_text(field(response, "enhanced")),
                      cell_text(field(r, "category")), cell_text(field(response, "text"))});
    }
  }
  return key_values(lines, "") + "\n" + format_table(kColumns, rows);
}

std::string format_dead_letters(const json& list) {
  static const std::vector<Column> kColumns = {
      {"ID", Align::left},         {"RECEIVED", Align::left},      {"FAILED", Align::left},
      {"KEPT-UNTIL", Align::left}, {"TENANT", Align::left},        {"CAMPAIGN", Align::left},
      {"SENDER", Align::left},     {"FAILED-RCPTS", Align::right}, {"CATEGORIES", Align::left},
  };
  std::vector<std::vector<std::string>> rows;
  const json& dead = field(list, "dead");
  size_t total = 0;
  if (dead.is_array()) {
    for (const json& m : dead) {
      ++total;
      size_t failed = 0, recipients = 0;
      std::set<std::string> categories;
      const json& rcpts = field(m, "recipients");
      if (rcpts.is_array()) {
        for (const json& r : rcpts) {
          ++recipients;
          const json& state = field(r, "state");
          if (state == "bounced" || state == "expired") ++failed;
          if (field(r, "category").is_string()) categories.insert(cell_text(field(r, "category")));
        }
      }
      const json& sender = field(m, "sender");
      rows.push_back(
          {cell_text(field(m, "id")), cell_text(field(m, "received")),
           cell_text(field(m, "finished")), cell_text(field(m, "kept_until")),
           cell_text(field(m, "tenant")), cell_text(field(m, "campaign")),
           sender == "" ? std::string("<>") : cell_text(sender),
           std::to_string(failed) + "/" + std::to_string(recipients),
           cell_text(json(std::vector<std::string>(categories.begin(), categories.end())))});
    }
  }
  return format_table(kColumns, rows) + "total: " + std::to_string(total) + "\n";
}

std::string format_event(const json& record) {
  const json& response = field(record, "response");
  std::string recipient = cell_text(field(record, "recipient"));
  if (recipient == "-" && field(record, "recipients").is_array()) {
    recipient = cell_text(field(record, "recipients"));  // Reception lists them all
  }
  std::string text = cell_text(field(response, "text"));
  if (text == "-") text = cell_text(field(record, "reason"));  // AdminBounce, Suppressed
  return cell_text(field(record, "time")) + " " + cell_text(field(record, "type")) + " " +
         recipient + " " + cell_text(field(record, "site")) + " " +
         cell_text(field(response, "code")) + " " + text;
}

std::string format_human(Output output, const json& body) {
  switch (output) {
    case Output::stats:
      return format_stats(body);
    case Output::queue:
      return format_queue(body);
    case Output::suspended: {
      const json& s = field(body, "suspended");
      const json& target = field(s, "site").is_null() ? field(s, "domain") : field(s, "site");
      return "suspended " + cell_text(target) + " until " + cell_text(field(s, "until")) + "\n";
    }
    case Output::resumed: {
      const json& r = field(body, "resumed");
      const json& target = field(r, "site").is_null() ? field(r, "domain") : field(r, "site");
      return "resumed " + cell_text(target) + "\n";
    }
    case Output::bounced:
      return "bounced " + plural(field(body, "bounced"), "recipient", "recipients") + "\n";
    case Output::reloaded:
      return "reloaded\n";
    case Output::events:
      return format_event(body) + "\n";
    case Output::addresses: {
      std::string out;
      const json& list = field(body, "suppressions");
      if (list.is_array()) {
        for (const json& entry : list) out += cell_text(field(entry, "address")) + "\n";
      }
      return out;
    }
    case Output::campaigns:
      return format_campaigns(body);
    case Output::tenants:
      return format_tenants(body);
    case Output::campaign:
      return format_object(body,
                           {"id", "name", "state", "tenant", "pool", "message_rate", "created"});
    case Output::tenant:
      return format_object(body, {"name", "state"});
    case Output::queued:
      return "queued as " + cell_text(field(body, "id")) + " (" +
             plural(field(body, "recipients"), "recipient", "recipients") + ")\n";
    case Output::message:
      return format_message(body);
    case Output::dead_list:
      return format_dead_letters(body);
    case Output::dead_retry:
      return cell_text(field(body, "id")) + ": " +
             plural(field(body, "requeued"), "recipient", "recipients") + " queued again\n";
    case Output::dead_delete:
      return "deleted dead letter " + cell_text(field(body, "id")) + "\n";
    case Output::explain:
      return format_explain(body);
    case Output::warmup:
      return format_warmup(body);
    case Output::pretty:
      return dump(body, 2) + "\n";
  }
  return dump(body, 2) + "\n";
}

std::string api_error_text(long status, std::string_view body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const json& error = field(parsed, "error");
  if (error.is_string()) {
    std::string text = printable(error.get<std::string>());
    const json& detail = field(parsed, "detail");
    if (detail.is_string() && !detail.get<std::string>().empty()) {
      // A reload's detail is one config problem per line: keep the lines.
      std::string lines = detail.get<std::string>();
      std::string kept;
      size_t start = 0;
      while (start <= lines.size()) {
        size_t end = std::min(lines.find('\n', start), lines.size());
        kept += (kept.empty() ? "" : "\n") + printable(lines.substr(start, end - start));
        start = end + 1;
      }
      text += ": " + kept;
    }
    return text;
  }
  std::string first(body.substr(0, body.find('\n')));
  if (first.size() > 200) first = first.substr(0, 200) + "...";
  return "HTTP " + std::to_string(status) + (first.empty() ? "" : ": " + printable(first));
}

}  // namespace ringmail::admin::ctl
