// conf/config_feedback.cc — reads and validates the feedback loop's keys
// (CONTRACT.md "Feedback, suppression and compliance in detail"):
// policy.return_path, policy.list_unsubscribe, policy.complaints and the
// top-level webhooks[]. Their key files go through read_hmac_key_file().
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "conf/config_policy.h"
#include "conf/config_reader.h"
#include "conf/config_secret.h"

namespace ringmail::conf::detail {
namespace {

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

struct HttpUrl {
  bool https = false;
  std::string host;  // without brackets, lower-cased
  std::string rest;  // from the first '/', '?' or '#' on; "" when none
};

// "http[s]://host[:port][/path][?query]": printable ASCII without blanks,
// quotes, '<', '>' or ',' (the URL goes between <> in a header, and RFC 2369
// separates URLs with commas), no user info. nullopt with *problem.
std::optional<HttpUrl> parse_http_url(std::string_view text, std::string* problem) {
  HttpUrl url;
  std::string scheme = lower(std::string(text.substr(0, text.find("://"))));
  if (text.find("://") == std::string_view::npos || (scheme != "http" && scheme != "https")) {
    *problem = "must start with https:// (or http://)";
    return std::nullopt;
  }
  url.https = scheme == "https";
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '"' || c == '<' || c == '>' || c == ',' || c == '\\') {
      *problem =
          "has a character that needs percent-encoding (blank, quote, <, >, comma, "
          "backslash, control or non-ASCII)";
      return std::nullopt;
    }
  }
  std::string_view rest = text.substr(scheme.size() + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  url.rest = end == std::string_view::npos ? "" : std::string(rest.substr(end));
  if (authority.find('@') != std::string_view::npos) {
    *problem = "must not carry a user name or password";
    return std::nullopt;
  }
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      *problem = "has an IPv6 host without its closing ]";
      return std::nullopt;
    }
    url.host = lower(std::string(authority.substr(1, close - 1)));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(":")) {
      *problem = "has text after the IPv6 host";
      return std::nullopt;
    }
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
    if (!parse_ip_address(url.host)) {
      *problem = "has a bad IPv6 host";
      return std::nullopt;
    }
  } else {
    size_t colon = authority.find(':');
    url.host = lower(std::string(authority.substr(0, colon)));
    has_port = colon != std::string_view::npos;
    if (has_port) port = authority.substr(colon + 1);
    if (!is_host_name(url.host) && !parse_ip_address(url.host)) {
      *problem = "has no host name";
      return std::nullopt;
    }
  }
  if (has_port) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      *problem = "has a bad port";
      return std::nullopt;
    }
  }
  return url;
}

// Gmail asks for 5-15 characters; these keep the field free of ':' and
// anything a header value would have to quote.
bool is_sender_id(std::string_view id) {
  if (id.size() < 5 || id.size() > 15) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  });
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  auto ip = parse_ip_address(host);
  if (!ip) return false;
  if (ip->family == AF_INET) return ip->bytes[0] == 127;
  static const uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::equal(std::begin(kLoopback6), std::end(kLoopback6), ip->bytes);
}

// "0.1%", "0.3%", "1%", "100%": a fraction in (0, 1]. nullopt otherwise.
std::optional<double> parse_percentage(std::string_view text) {
  if (!text.ends_with("%")) return std::nullopt;
  text.remove_suffix(1);
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text.front())) != 0)) {
    return std::nullopt;
  }
  double value = 0;
  auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  if (!(value > 0.0 && value <= 100.0)) return std::nullopt;
  return value / 100.0;
}

std::optional<double> read_percentage(Reader& r, const Item& item) {
  auto text = r.string(item);
  if (!text) return std::nullopt;
  auto value = parse_percentage(*text);
  if (!value) {
    r.error(item.line, item.path,
            "bad percentage \"" + *text + "\" (expected more than 0% and at most 100%, like 0.1%)");
  }
  return value;
}

std::optional<std::string> read_domain(Reader& r, const Fields& fields, std::string_view key,
                                       Need need) {
  auto item = r.field(fields, key, need);
  if (!item) return std::nullopt;
  auto text = r.string(*item);
  if (!text) return std::nullopt;
  if (!is_host_name(*text)) {
    r.error(item->line, item->path, "\"" + *text + "\" is not a domain name");
    return std::nullopt;
  }
  return lower(*text);
}

// The URL at item as written, when parse_http_url() takes it and `more`
// (a problem sentence, "" for none) finds nothing wrong with it.
template <class More>
std::optional<std::string> read_url(Reader& r, const Item& item, More more) {
  auto text = r.string(item);
  if (!text) return std::nullopt;
  std::string problem;
  auto url = parse_http_url(*text, &problem);
  if (url) problem = more(*url);
  if (!problem.empty()) {
    r.error(item.line, item.path, "\"" + *text + "\" " + problem);
    return std::nullopt;
  }
  return text;
}

bool is_webhook_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::optional<std::vector<std::string>> read_events(Reader& r, const Item& item) {
  auto names = r.list(item);
  if (!names) return std::nullopt;
  if (names->empty()) {
    r.error(item.line, item.path, "list at least one record type, or leave events out for all");
    return std::nullopt;
  }
  std::vector<std::string> events;
  bool ok = true;
  for (const Item& name_item : *names) {
    auto name = r.string(name_item);
    if (!name) {
      ok = false;
      continue;
    }
    const bool known = std::find(std::begin(kDeliveryLogTypes), std::end(kDeliveryLogTypes),
                                 *name) != std::end(kDeliveryLogTypes);
    if (!known) {
      std::string all;
      for (std::string_view type : kDeliveryLogTypes) {
        all += all.empty() ? "" : ", ";
        all += type;
      }
      r.error(name_item.line, name_item.path,
              "unknown delivery-log record type \"" + *name + "\" (known: " + all + ")");
      ok = false;
    } else if (std::find(events.begin(), events.end(), *name) != events.end()) {
      r.error(name_item.line, name_item.path, "\"" + *name + "\" is listed twice");
      ok = false;
    } else {
      events.push_back(*name);
    }
  }
  if (!ok) return std::nullopt;
  return events;
}

}  // namespace

std::optional<HmacKey> read_key_file(Reader& r, const Fields& fields, std::string_view key) {
  auto item = r.field(fields, key, Need::required);
  if (!item) return std::nullopt;
  auto path = r.path(*item);
  if (!path) return std::nullopt;
  std::string problem;
  auto bytes = read_hmac_key_file(*path, &problem);
  if (!bytes) {
    r.error(item->line, item->path, problem);
    return std::nullopt;
  }
  return HmacKey{*path, std::move(*bytes)};
}

void read_return_path(Reader& r, const Item& item, PolicyConfig& policy) {
  auto fields = r.map(item, {"domain", "verp", "key_file", "sender_id"});
  if (!fields) return;
  ReturnPathConfig config;
  auto domain = read_domain(r, *fields, "domain", Need::required);
  auto key = read_key_file(r, *fields, "key_file");
  bool ok = domain && key;
  if (auto verp_item = fields->get("verp")) {
    auto verp = r.boolean(*verp_item);
    if (verp) config.verp = *verp;
    ok = ok && verp.has_value();
  }
  if (auto id_item = fields->get("sender_id")) {
    auto id = r.string(*id_item);
    if (id && !is_sender_id(*id)) {
      r.error(id_item->line, id_item->path,
              "must be 5 to 15 of A-Z, a-z, 0-9, '.', '_', '-' (Gmail's Feedback-ID SenderId)");
      id.reset();
    }
    if (id) config.sender_id = std::move(*id);
    ok = ok && id.has_value();
  }
  if (!ok) return;
  config.domain = std::move(*domain);
  config.key = std::move(*key);
  policy.return_path = std::move(config);
}

void read_list_unsubscribe(Reader& r, const Item& item, PolicyConfig& policy) {
  auto fields = r.map(item, {"listen", "url", "mailto_domain", "key_file"});
  if (!fields) return;
  ListUnsubscribeConfig config;
  bool ok = true;
  if (auto listen_item = r.field(*fields, "listen", Need::required)) {
    AddressOptions options;
    options.allow_port_zero = true;
    auto address = r.address(*listen_item, options);
    if (address) config.listen = *address;
    ok = address.has_value();
  } else {
    ok = false;
  }
  if (auto url_item = r.field(*fields, "url", Need::required)) {
    auto url = read_url(r, *url_item, [](const HttpUrl& parts) -> std::string {
      if (!parts.https && !is_loopback_host(parts.host)) {
        return "must be https:// (http:// only for a loopback host, in tests)";
      }
      if (parts.rest.find_first_of("?#") != std::string::npos) {
        return "must not have a query or fragment (the token is appended as URL/TOKEN)";
      }
      return "";
    });
    if (url) {
      if (url->ends_with("/")) url->pop_back();
      config.url = std::move(*url);
    }
    ok = ok && url.has_value();
  } else {
    ok = false;
  }
  if (fields->has("mailto_domain")) {
    auto domain = read_domain(r, *fields, "mailto_domain", Need::optional);
    if (domain) config.mailto_domain = std::move(*domain);
    ok = ok && domain.has_value();
  }
  auto key = read_key_file(r, *fields, "key_file");
  if (!ok || !key) return;
  config.key = std::move(*key);
  policy.list_unsubscribe = std::move(config);
}

void read_complaints(Reader& r, const Item& item, PolicyConfig& policy) {
  auto fields = r.map(item, {"warn", "pause"});
  if (!fields) return;
  ComplaintThresholds thresholds;
  std::optional<double> warn, pause;
  if (auto warn_item = fields->get("warn")) {
    warn = read_percentage(r, *warn_item);
    if (!warn) return;
    thresholds.warn = *warn;
  }
  if (auto pause_item = fields->get("pause")) {
    pause = read_percentage(r, *pause_item);
    if (!pause) return;
    thresholds.pause = *pause;
  }
  if (thresholds.warn > thresholds.pause) {
    auto at = fields->get(pause ? "pause" : "warn");
    r.error(at->line, at->path,
            "warn (" + std::to_string(thresholds.warn * 100) + "%) must not be above pause (" +
                std::to_string(thresholds.pause * 100) + "%)");
    return;
  }
  policy.complaints = thresholds;
}

void read_webhooks(Reader& r, const Item& item, std::vector<Webhook>& webhooks) {
  auto items = r.list(item);
  if (!items) return;
  std::vector<std::string> names;  // also of entries with errors, reported once
  for (const Item& element : *items) {
    auto fields = r.map(element, {"name", "url", "events", "secret_file", "batch", "max_backlog"});
    if (!fields) continue;
    Webhook hook;
    bool ok = true;
    if (auto name_item = r.field(*fields, "name", Need::required)) {
      auto name = r.string(*name_item);
      if (name && !is_webhook_name(*name)) {
        r.error(name_item->line, name_item->path,
                "\"" + *name + "\" is not a webhook name (1-64 of A-Z a-z 0-9 . _ -)");
        name.reset();
      } else if (name && std::find(names.begin(), names.end(), *name) != names.end()) {
        r.error(name_item->line, name_item->path, "duplicate webhook name \"" + *name + "\"");
        name.reset();
      } else if (name) {
        names.push_back(*name);
        hook.name = *name;
      }
      ok = name.has_value();
    } else {
      ok = false;
    }
    if (auto url_item = r.field(*fields, "url", Need::required)) {
      auto url = read_url(r, *url_item, [](const HttpUrl&) { return std::string(); });
      if (url) hook.url = std::move(*url);
      ok = ok && url.has_value();
    } else {
      ok = false;
    }
    if (auto events_item = fields->get("events")) {
      auto events = read_events(r, *events_item);
      if (events) hook.events = std::move(*events);
      ok = ok && events.has_value();
    }
    auto secret = read_key_file(r, *fields, "secret_file");
    if (secret) hook.secret = std::move(*secret);
    ok = ok && secret.has_value();
    if (fields->has("batch")) {
      auto batch = r.integer(*fields, "batch", Need::optional, 1, 1000);
      if (batch) hook.batch = static_cast<uint32_t>(*batch);
      ok = ok && batch.has_value();
    }
    if (fields->has("max_backlog")) {
      auto backlog = r.integer(*fields, "max_backlog", Need::optional, 1, 100000000);
      if (backlog) hook.max_backlog = *backlog;
      ok = ok && backlog.has_value();
    }
    if (ok) webhooks.push_back(std::move(hook));
  }
}

}  // namespace ringmail::conf::detail
