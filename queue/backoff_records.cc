#include "queue/backoff_records.h"

#include <nlohmann/json.hpp>

namespace ringmail::queue {
namespace {

using nlohmann::json;
constexpr int kBackoffVersion = 1;
constexpr size_t kMaxName = 1024;

int64_t unix_ms(runtime::WallTime t) {
  return std::chrono::duration_cast<runtime::Millis>(t.time_since_epoch()).count();
}
runtime::WallTime wall(int64_t ms) { return runtime::WallTime(runtime::Millis(ms)); }

}  // namespace

std::string backoff_record_key(std::string_view queue) {
  return std::string(kBackoffPrefix) + std::string(queue);
}

std::optional<std::string> parse_backoff_record_key(std::string_view key) {
  if (!key.starts_with(kBackoffPrefix) || key.size() == sizeof(kBackoffPrefix) - 1)
    return std::nullopt;
  return std::string(key.substr(sizeof(kBackoffPrefix) - 1));
}

std::string encode_backoff_record(const BackoffRecord& r) {
  const policy::BackoffOverride& o = r.override_in_force;
  json value = {{"v", kBackoffVersion},
                {"source", r.source},
                {"site", r.site},
                {"kind", o.kind == policy::BackoffKind::rate_factor ? "rate_factor" : "suspend"},
                {"since", unix_ms(o.since)},
                {"until", unix_ms(o.until)},
                {"factor", o.factor},
                {"rule_index", o.rule_index},
                {"shipped", o.shipped},
                {"rule", o.rule},
                {"reply", o.reply}};
  if (r.base_count > 0) {
    value["base_count"] = r.base_count;
    value["base_per_ms"] = r.base_per_ms;
  }
  // Texts from remote servers may hold bytes that are not UTF-8: replaced,
  // not refused (the record is for the planner and the API, not a proof).
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<BackoffRecord> decode_backoff_record(std::string_view bytes, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<BackoffRecord> {
    if (error) *error = why;
    return std::nullopt;
  };
  const json value = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return fail("not a JSON object");
  auto string_field = [&](const char* name, std::string* out) {
    auto it = value.find(name);
    if (it == value.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return out->size() <= kMaxName;
  };
  auto integer_field = [&](const char* name, int64_t* out) {
    auto it = value.find(name);
    if (it == value.end() || !it->is_number_integer()) return false;
    *out = it->get<int64_t>();
    return true;
  };
  int64_t version = 0;
  if (!integer_field("v", &version) || version != kBackoffVersion) return fail("unknown version");
  BackoffRecord r;
  policy::BackoffOverride& o = r.override_in_force;
  std::string kind;
  if (!string_field("source", &r.source) || !string_field("site", &r.site) || r.site.empty() ||
      !string_field("kind", &kind) || !string_field("rule", &o.rule) ||
      !string_field("reply", &o.reply)) {
    return fail("a text field is missing or too long");
  }
  if (kind == "suspend") {
    o.kind = policy::BackoffKind::suspend;
  } else if (kind == "rate_factor") {
    o.kind = policy::BackoffKind::rate_factor;
  } else {
    return fail("unknown kind");
  }
  int64_t since = 0, until = 0, rule_index = 0;
  if (!integer_field("since", &since) || !integer_field("until", &until) || until <= since ||
      since < 0) {
    return fail("bad since/until");
  }
  o.since = wall(since);
  o.until = wall(until);
  auto factor = value.find("factor");
  if (factor == value.end() || !factor->is_number()) return fail("bad factor");
  o.factor = factor->get<double>();
  if (!(o.factor > 0.0 && o.factor <= 1.0)) return fail("bad factor");
  if (!integer_field("rule_index", &rule_index) || rule_index < 0) return fail("bad rule_index");
  o.rule_index = static_cast<size_t>(rule_index);
  auto shipped = value.find("shipped");
  if (shipped == value.end() || !shipped->is_boolean()) return fail("bad shipped");
  o.shipped = shipped->get<bool>();
  if (o.reply.size() > policy::BackoffEvaluator::kMaxReplyText) return fail("reply too long");
  if (value.contains("base_count")) {
    int64_t count = 0, per = 0;
    if (!integer_field("base_count", &count) || !integer_field("base_per_ms", &per) || count <= 0 ||
        per <= 0) {
      return fail("bad base rate");
    }
    r.base_count = static_cast<uint64_t>(count);
    r.base_per_ms = per;
  }
  return r;
}

}  // namespace ringmail::queue
