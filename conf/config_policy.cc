// conf/config_policy.cc — reads and validates the policy: section.
#include "conf/config_policy.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

#include "conf/config_reader.h"
#include "mail/mailbox_provider.h"

namespace ringmail::conf {
namespace {

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool is_header_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') return false;
  }
  return true;
}

bool is_domain_like(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_' || u >= 0x80)) return false;
  }
  return true;
}

// "5", "5.7" or "5.7.1": class 2/4/5, then up to two parts of 1-3 digits.
bool is_enhanced_code_pattern(std::string_view text) {
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return false;
  size_t parts = 1;
  size_t i = 1;
  while (i < text.size()) {
    if (text[i] != '.') return false;
    ++i;
    size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3) return false;
    ++parts;
  }
  return parts <= 3;
}

// ECMAScript has no inline flags; "(?i)" is the common way to ask for
// case-insensitive matching, so it is honoured at the start.
std::shared_ptr<const std::regex> compile_response_text(std::string_view text) {
  std::string pattern(text);
  auto flags = std::regex::ECMAScript | std::regex::optimize;
  if (pattern.starts_with("(?i)")) {
    pattern.erase(0, 4);
    flags |= std::regex::icase;
  }
  return std::make_shared<const std::regex>(pattern, flags);
}

using detail::Fields;
using detail::Item;
using detail::Need;
using detail::Reader;

constexpr uint64_t kMaxPoolWeight = 1000;
constexpr uint64_t kMaxBurst = 1000000000;

std::optional<Rate> read_rate(Reader& r, const Item& item) {
  auto text = r.string(item);
  if (!text) return std::nullopt;
  auto rate = parse_rate(*text);
  if (!rate) {
    r.error(item.line, item.path,
            "bad rate \"" + *text + "\" (expected COUNT/UNIT with unit s, m, h or d, like 300/m)");
  }
  return rate;
}

std::optional<ResponseMatch> read_response_match(Reader& r, const Item& item) {
  auto fields = r.map(item, {"code", "enhanced", "text"});
  if (!fields) return std::nullopt;
  ResponseMatch match;
  bool ok = true;
  bool any = false;
  if (auto code = fields->get("code")) {
    any = true;
    auto value = r.integer(*code, 200, 599);
    if (value) match.code = static_cast<int>(*value);
    ok = ok && value.has_value();
  }
  if (auto enhanced = fields->get("enhanced")) {
    any = true;
    auto value = r.string(*enhanced);
    if (value && !is_enhanced_code_pattern(*value)) {
      r.error(enhanced->line, enhanced->path,
              "bad enhanced status code \"" + *value +
                  "\" (expected like 5.7.1, or a prefix like 5.7)");
      value.reset();
    }
    if (value) match.enhanced = *value;
    ok = ok && value.has_value();
  }
  if (auto text = fields->get("text")) {
    any = true;
    auto value = r.string(*text);
    if (value) {
      match.text = *value;
      try {
        match.text_regex = compile_response_text(*value);
      } catch (const std::regex_error& e) {
        r.error(text->line, text->path,
                "bad regular expression \"" + *value + "\" (ECMAScript syntax): " + e.what());
        ok = false;
      }
    } else {
      ok = false;
    }
  }
  if (!any) {
    r.error(fields->line(), item.path, "needs at least one of code, enhanced, text");
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  return match;
}

std::optional<BackoffAction> read_backoff_action(Reader& r, const Item& item) {
  auto fields = r.map(item, {"suspend", "rate_factor", "recover_after", "bounce"});
  if (!fields) return std::nullopt;
  int kinds = fields->has("suspend") + fields->has("rate_factor") + fields->has("bounce");
  if (kinds != 1) {
    r.error(fields->line(), item.path, "needs exactly one of suspend, rate_factor, bounce");
    return std::nullopt;
  }
  BackoffAction action;
  if (auto suspend = fields->get("suspend")) {
    if (fields->has("recover_after")) {
      r.error(fields->line(), detail::child_path(item.path, "recover_after"),
              "only goes with rate_factor");
      return std::nullopt;
    }
    auto value = r.duration(*suspend);
    if (!value) return std::nullopt;
    action.kind = BackoffAction::Kind::suspend;
    action.suspend = *value;
    return action;
  }
  if (auto factor = fields->get("rate_factor")) {
    auto value = r.number(*factor);
    if (value && !(*value > 0.0 && *value < 1.0)) {
      r.error(factor->line, factor->path, "must be between 0 and 1 (exclusive), like 0.5");
      value.reset();
    }
    auto recover = r.duration(*fields, "recover_after", Need::required);
    if (!value || !recover) return std::nullopt;
    action.kind = BackoffAction::Kind::rate_factor;
    action.rate_factor = *value;
    action.recover_after = *recover;
    return action;
  }
  auto bounce = fields->get("bounce");
  if (fields->has("recover_after")) {
    r.error(fields->line(), detail::child_path(item.path, "recover_after"),
            "only goes with rate_factor");
    return std::nullopt;
  }
  auto value = r.boolean(*bounce);
  if (!value) return std::nullopt;
  if (!*value) {
    r.error(bounce->line, bounce->path, "only \"bounce: true\" is meaningful; remove the rule");
    return std::nullopt;
  }
  action.kind = BackoffAction::Kind::bounce;
  return action;
}

// Names given in policy.sources, also those whose entry had an error, so
// that a bad address is reported once and not again at every reference.
using DeclaredSources = std::vector<std::string>;

bool declared(const DeclaredSources& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void read_sources(Reader& r, const Item& item, PolicyConfig& policy, DeclaredSources& names) {
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields = r.map(element, {"name", "address"});
    if (!fields) continue;
    auto name = r.string(*fields, "name", Need::required);
    auto address_item = r.field(*fields, "address", Need::required);
    std::optional<IpAddress> address;
    if (address_item) {
      if (auto text = r.string(*address_item)) {
        address = parse_ip_address(*text);
        if (!address) {
          r.error(address_item->line, address_item->path,
                  "\"" + *text + "\" is not an IP address (egress sources are local IPs, no port)");
        }
      }
    }
    if (name) names.push_back(*name);
    if (!name || !address) continue;
    if (policy.find_source(*name)) {
      r.error(fields->line(), detail::child_path(element.path, "name"),
              "duplicate source name \"" + *name + "\"");
      continue;
    }
    policy.sources.push_back(EgressSource{*name, *address});
  }
}

// A pool's source: its name, or {source: NAME, weight: N}. nullopt when
// the entry is bad or names an unknown source (reported unless the source
// was declared with an error of its own).
std::optional<PoolMember> read_pool_member(Reader& r, const Item& item, const PolicyConfig& policy,
                                           const DeclaredSources& names) {
  PoolMember member;
  std::optional<Item> name_item = item;
  if (item.node.IsMap()) {
    auto fields = r.map(item, {"source", "weight"});
    if (!fields) return std::nullopt;
    name_item = r.field(*fields, "source", Need::required);
    if (auto weight_item = fields->get("weight")) {
      auto weight = r.integer(*weight_item, 1, kMaxPoolWeight);
      if (!weight) return std::nullopt;
      member.weight = static_cast<uint32_t>(*weight);
    }
    if (!name_item) return std::nullopt;
  }
  auto source_name = r.string(*name_item);
  if (!source_name) return std::nullopt;
  if (!policy.find_source(*source_name)) {
    if (!declared(names, *source_name)) {
      r.error(name_item->line, name_item->path,
              "unknown source \"" + *source_name + "\" (not in policy.sources)");
    }
    return std::nullopt;
  }
  member.source = *source_name;
  return member;
}

// Names given in policy.pools, also those whose entry had an error (see
// DeclaredSources).
using DeclaredPools = std::vector<std::string>;

void read_pools(Reader& r, const Item& item, PolicyConfig& policy, const DeclaredSources& names,
                DeclaredPools& pool_names) {
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields = r.map(element, {"name", "sources"});
    if (!fields) continue;
    EgressPool pool;
    auto name = r.string(*fields, "name", Need::required);
    bool ok = name.has_value();
    if (name) pool_names.push_back(*name);
    if (name && policy.find_pool(*name)) {
      r.error(fields->line(), detail::child_path(element.path, "name"),
              "duplicate pool name \"" + *name + "\"");
      ok = false;
    }
    if (auto sources_item = r.field(*fields, "sources", Need::required)) {
      if (auto sources = r.list(*sources_item)) {
        if (sources->empty()) {
          r.error(sources_item->line, sources_item->path, "a pool needs at least one source");
          ok = false;
        }
        for (const Item& source : *sources) {
          auto member = read_pool_member(r, source, policy, names);
          if (!member) {
            ok = false;
            continue;
          }
          if (std::any_of(pool.sources.begin(), pool.sources.end(),
                          [&](const PoolMember& m) { return m.source == member->source; })) {
            r.error(source.line, source.path,
                    "source \"" + member->source +
                        "\" is already in this pool (give it a weight instead)");
            ok = false;
            continue;
          }
          pool.sources.push_back(std::move(*member));
        }
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (!ok) continue;
    pool.name = *name;
    policy.pools.push_back(std::move(pool));
  }
}

// message_rate with its optional burst, in a shaping rule or a tenant.
bool read_rate_and_burst(Reader& r, const Fields& fields, std::optional<Rate>* rate,
                         uint64_t* burst) {
  bool ok = true;
  if (auto item_value = fields.get("message_rate")) {
    *rate = read_rate(r, *item_value);
    ok = rate->has_value();
  }
  if (auto burst_item = fields.get("burst")) {
    auto value = r.integer(*burst_item, 1, kMaxBurst);
    if (value && !fields.has("message_rate")) {
      r.error(burst_item->line, burst_item->path, "only goes with message_rate");
      value.reset();
    }
    if (value) *burst = *value;
    ok = ok && value.has_value();
  }
  return ok;
}

void read_tenants(Reader& r, const Item& item, PolicyConfig& policy,
                  const DeclaredPools& pool_names) {
  auto items = r.list(item);
  if (!items) return;
  std::vector<std::string> seen;  // also names whose entry had an error
  for (const Item& element : *items) {
    auto fields = r.map(element, {"name", "pool", "message_rate", "burst", "max_messages"});
    if (!fields) continue;
    TenantPolicy tenant;
    bool ok = true;
    auto name = r.string(*fields, "name", Need::required);
    if (name && name->empty()) {
      r.error(fields->line(), detail::child_path(element.path, "name"), "must not be empty");
      name.reset();
    } else if (name && std::find(seen.begin(), seen.end(), *name) != seen.end()) {
      r.error(fields->line(), detail::child_path(element.path, "name"),
              "duplicate tenant name \"" + *name + "\"");
      name.reset();
    } else if (name) {
      seen.push_back(*name);
      tenant.name = *name;
    }
    ok = name.has_value();
    if (auto pool_item = fields->get("pool")) {
      auto pool = r.string(*pool_item);
      if (pool && !policy.find_pool(*pool)) {
        if (!declared(pool_names, *pool)) {
          std::string known;
          for (const EgressPool& p : policy.pools) known += (known.empty() ? "" : ", ") + p.name;
          r.error(pool_item->line, pool_item->path,
                  "unknown pool \"" + *pool + "\" (policy.pools has " +
                      (known.empty() ? std::string("none") : known) + ")");
        }
        pool.reset();
      }
      if (pool) tenant.pool = *pool;
      ok = ok && pool.has_value();
    }
    ok = read_rate_and_burst(r, *fields, &tenant.message_rate, &tenant.burst) && ok;
    if (auto max_item = fields->get("max_messages")) {
      tenant.max_messages = read_rate(r, *max_item);
      ok = ok && tenant.max_messages.has_value();
    }
    if (ok) policy.tenants.push_back(std::move(tenant));
  }
}

void read_shaping(Reader& r, const Item& item, PolicyConfig& policy) {
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields = r.map(element, {"match", "max_connections", "max_messages_per_connection",
                                  "message_rate", "burst", "connection_rate"});
    if (!fields) continue;
    ShapingRule rule;
    bool ok = true;
    if (auto match_item = r.field(*fields, "match", Need::required)) {
      auto match = r.map(*match_item, {"domain", "mx_suffix", "provider"});
      if (match) {
        int kinds = match->has("domain") + match->has("mx_suffix") + match->has("provider");
        if (kinds != 1) {
          r.error(match->line(), match_item->path,
                  "needs exactly one of domain, mx_suffix, provider");
          ok = false;
        } else {
          std::pair<const char*, ShapingMatch::Kind> kinds_by_key[] = {
              {"domain", ShapingMatch::Kind::domain},
              {"mx_suffix", ShapingMatch::Kind::mx_suffix},
              {"provider", ShapingMatch::Kind::provider}};
          for (const auto& [key, kind] : kinds_by_key) {
            auto value_item = match->get(key);
            if (!value_item) continue;
            auto value = r.string(*value_item);
            if (value && !is_domain_like(*value)) {
              r.error(value_item->line, value_item->path,
                      "\"" + *value + "\" is not a domain name");
              value.reset();
            }
            if (!value) {
              ok = false;
              continue;
            }
            rule.match.kind = kind;
            rule.match.value = lower(*value);
          }
        }
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto item_value = fields->get("max_connections")) {
      auto value = r.integer(*item_value, 1, 1000000);
      if (value) rule.max_connections = static_cast<uint32_t>(*value);
      ok = ok && value.has_value();
    }
    if (auto item_value = fields->get("max_messages_per_connection")) {
      auto value = r.integer(*item_value, 1, 100000000);
      if (value) rule.max_messages_per_connection = static_cast<uint32_t>(*value);
      ok = ok && value.has_value();
    }
    ok = read_rate_and_burst(r, *fields, &rule.message_rate, &rule.burst) && ok;
    if (auto item_value = fields->get("connection_rate")) {
      rule.connection_rate = read_rate(r, *item_value);
      ok = ok && rule.connection_rate.has_value();
    }
    if (ok) policy.shaping.push_back(std::move(rule));
  }
}

// The largest count a `when` may ask for: the evaluator keeps one time
// stamp per matching reply while it counts, so the bound bounds memory.
constexpr uint64_t kMaxBackoffWhenCount = 10000;

std::optional<BackoffWhen> read_backoff_when(Reader& r, const Item& item) {
  auto fields = r.map(item, {"count", "within"});
  if (!fields) return std::nullopt;
  auto count = r.integer(*fields, "count", Need::required, 1, kMaxBackoffWhenCount);
  std::optional<Duration> within;
  if (auto within_item = r.field(*fields, "within", Need::required)) {
    within = r.duration(*within_item);
    if (within && within->count() <= 0) {
      r.error(within_item->line, within_item->path, "must be longer than 0, like 10m");
      within.reset();
    }
  }
  if (!count || !within) return std::nullopt;
  return BackoffWhen{static_cast<uint32_t>(*count), *within};
}

void read_backoff(Reader& r, const Item& item, PolicyConfig& policy) {
  policy.backoff_given = true;
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields = r.map(element, {"match", "action", "when"});
    if (!fields) continue;
    std::optional<ResponseMatch> match;
    std::optional<BackoffAction> action;
    std::optional<BackoffWhen> when;
    bool when_ok = true;
    if (auto match_item = r.field(*fields, "match", Need::required)) {
      match = read_response_match(r, *match_item);
    }
    if (auto action_item = r.field(*fields, "action", Need::required)) {
      action = read_backoff_action(r, *action_item);
    }
    if (auto when_item = fields->get("when")) {
      when = read_backoff_when(r, *when_item);
      when_ok = when.has_value();
    }
    if (match && action && when_ok) {
      policy.backoff.push_back(BackoffRule{std::move(*match), *action, when});
    }
  }
}

std::optional<std::vector<std::optional<Rate>>> read_warmup_schedule(Reader& r, const Item& item) {
  auto steps = r.list(item);
  if (!steps) return std::nullopt;
  if (steps->empty()) {
    r.error(item.line, item.path, "a schedule needs at least one step");
    return std::nullopt;
  }
  std::vector<std::optional<Rate>> schedule;
  bool ok = true;
  for (const Item& step : *steps) {
    auto text = r.string(step);
    if (!text) {
      ok = false;
    } else if (*text == "unlimited") {
      schedule.push_back(std::nullopt);
    } else if (auto rate = parse_rate(*text)) {
      schedule.push_back(*rate);
    } else {
      r.error(
          step.line, step.path,
          "bad warm-up step \"" + *text + "\" (expected a rate like 50/h or 1000/d, or unlimited)");
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return schedule;
}

std::optional<std::vector<std::string>> read_warmup_providers(Reader& r, const Item& item) {
  auto names = r.list(item);
  if (!names) return std::nullopt;
  if (names->empty()) {
    r.error(item.line, item.path, "list at least one provider, or leave providers out");
    return std::nullopt;
  }
  std::vector<std::string> providers;
  bool ok = true;
  for (const Item& name_item : *names) {
    auto name = r.string(name_item);
    if (!name) {
      ok = false;
      continue;
    }
    const std::string provider = lower(*name);
    if (mail::provider_mx_suffixes(provider).empty()) {
      std::string known;
      for (std::string_view each : mail::provider_names()) {
        known += known.empty() ? "" : ", ";
        known += each;
      }
      r.error(name_item.line, name_item.path,
              "unknown provider \"" + *name + "\" (known: " + known + ")");
      ok = false;
    } else if (std::find(providers.begin(), providers.end(), provider) != providers.end()) {
      r.error(name_item.line, name_item.path, "provider \"" + provider + "\" is listed twice");
      ok = false;
    } else {
      providers.push_back(provider);
    }
  }
  if (!ok) return std::nullopt;
  return providers;
}

void read_warmup(Reader& r, const Item& item, PolicyConfig& policy, const DeclaredSources& names) {
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields =
        r.map(element, {"source", "schedule", "started", "providers", "overflow", "advance"});
    if (!fields) continue;
    WarmupPlan plan;
    bool ok = true;
    auto source_item = r.field(*fields, "source", Need::required);
    if (source_item) {
      auto source = r.string(*source_item);
      if (source && !policy.find_source(*source)) {
        if (!declared(names, *source))
          r.error(source_item->line, source_item->path,
                  "unknown source \"" + *source + "\" (not in policy.sources)");
        source.reset();
      } else if (source && policy.find_warmup(*source)) {
        r.error(source_item->line, source_item->path,
                "source \"" + *source + "\" already has a warm-up schedule");
        source.reset();
      }
      if (source) plan.source = *source;
      ok = ok && source.has_value();
    } else {
      ok = false;
    }
    if (auto schedule_item = r.field(*fields, "schedule", Need::required)) {
      auto schedule = read_warmup_schedule(r, *schedule_item);
      if (schedule) plan.schedule = std::move(*schedule);
      ok = ok && schedule.has_value();
    } else {
      ok = false;
    }
    if (auto started_item = fields->get("started")) {
      if (auto text = r.string(*started_item)) {
        plan.started = parse_utc_date(*text);
        if (!plan.started) {
          r.error(started_item->line, started_item->path,
                  "bad date \"" + *text + "\" (expected a UTC date YYYY-MM-DD, like 2026-03-01)");
        }
      }
      ok = ok && plan.started.has_value();
    }
    if (auto providers_item = fields->get("providers")) {
      auto providers = read_warmup_providers(r, *providers_item);
      if (providers) plan.providers = std::move(*providers);
      ok = ok && providers.has_value();
    }
    if (auto overflow_item = fields->get("overflow")) {
      auto overflow = r.choice<WarmupOverflow>(
          *overflow_item, {{"spill", WarmupOverflow::spill}, {"hold", WarmupOverflow::hold}});
      if (overflow) plan.overflow = *overflow;
      ok = ok && overflow.has_value();
    }
    if (auto advance_item = fields->get("advance")) {
      auto advance = r.choice<WarmupAdvance>(
          *advance_item,
          {{"calendar", WarmupAdvance::calendar}, {"sending_day", WarmupAdvance::sending_day}});
      if (advance) plan.advance = *advance;
      ok = ok && advance.has_value();
    }
    if (ok) policy.warmup.push_back(std::move(plan));
  }
}

void read_bounce_rules(Reader& r, const Item& item, PolicyConfig& policy) {
  auto items = r.list(item);
  if (!items) return;
  for (const Item& element : *items) {
    auto fields = r.map(element, {"match", "category"});
    if (!fields) continue;
    std::optional<ResponseMatch> match;
    std::optional<BounceCategory> category;
    if (auto match_item = r.field(*fields, "match", Need::required)) {
      match = read_response_match(r, *match_item);
    }
    if (auto category_item = r.field(*fields, "category", Need::required)) {
      if (auto name = r.string(*category_item)) {
        category = parse_bounce_category(*name);
        if (!category) {
          r.error(category_item->line, category_item->path,
                  "unknown bounce category \"" + *name +
                      "\" (see CONTRACT.md, e.g. InvalidRecipient, SpamBlock, QuotaIssues)");
        }
      }
    }
    if (match && category) policy.bounce_rules.push_back(BounceRule{std::move(*match), *category});
  }
}

}  // namespace

std::optional<Rate> parse_rate(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  Rate rate;
  auto [end, ec] = std::from_chars(text.data(), text.data() + slash, rate.count);
  if (ec != std::errc() || end != text.data() + slash || rate.count == 0) return std::nullopt;
  std::string_view unit = text.substr(slash + 1);
  if (unit == "s") {
    rate.per = std::chrono::seconds(1);
  } else if (unit == "m") {
    rate.per = std::chrono::minutes(1);
  } else if (unit == "h") {
    rate.per = std::chrono::hours(1);
  } else if (unit == "d") {
    rate.per = std::chrono::hours(24);
  } else {
    return std::nullopt;
  }
  return rate;
}

std::optional<std::chrono::sys_days> parse_utc_date(std::string_view text) {
  // Exactly YYYY-MM-DD: four, two and two digits.
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  auto number = [&](size_t from, size_t length) -> std::optional<unsigned> {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data() + from, text.data() + from + length, value);
    if (ec != std::errc() || end != text.data() + from + length) return std::nullopt;
    return value;
  };
  auto year = number(0, 4);
  auto month = number(5, 2);
  auto day = number(8, 2);
  if (!year || !month || !day || *year < 1970) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year(static_cast<int>(*year)),
                                         std::chrono::month(*month), std::chrono::day(*day)};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days(date);
}

std::string format_rate(const Rate& rate) {
  const std::string count = std::to_string(rate.count) + "/";
  if (rate.per == std::chrono::seconds(1)) return count + "s";
  if (rate.per == std::chrono::minutes(1)) return count + "m";
  if (rate.per == std::chrono::hours(1)) return count + "h";
  if (rate.per == std::chrono::hours(24)) return count + "d";
  return count + std::to_string(rate.per.count()) + "ms";
}

ResponseMatch make_response_match(std::optional<int> code, std::string enhanced, std::string text) {
  ResponseMatch match;
  match.code = code;
  match.enhanced = std::move(enhanced);
  if (!text.empty()) match.text_regex = compile_response_text(text);
  match.text = std::move(text);
  return match;
}

bool ResponseMatch::matches(int reply_code, std::string_view reply_enhanced,
                            std::string_view reply_text) const {
  if (code && *code != reply_code) return false;
  if (!enhanced.empty()) {
    if (!reply_enhanced.starts_with(enhanced)) return false;
    // "5.7" must not match "5.71.0": the prefix has to end on a part boundary.
    if (reply_enhanced.size() > enhanced.size() && reply_enhanced[enhanced.size()] != '.') {
      return false;
    }
  }
  if (text_regex) {
    try {
      if (!std::regex_search(reply_text.begin(), reply_text.end(), *text_regex)) return false;
    } catch (const std::regex_error&) {
      // Pathological text against a backtracking pattern: treat as no match.
      return false;
    }
  }
  return true;
}

const EgressSource* PolicyConfig::find_source(std::string_view name) const {
  for (const auto& source : sources) {
    if (source.name == name) return &source;
  }
  return nullptr;
}

const EgressPool* PolicyConfig::find_pool(std::string_view name) const {
  for (const auto& pool : pools) {
    if (pool.name == name) return &pool;
  }
  return nullptr;
}

const TenantPolicy* PolicyConfig::find_tenant(std::string_view name) const {
  for (const auto& tenant : tenants) {
    if (tenant.name == name) return &tenant;
  }
  return nullptr;
}

const WarmupPlan* PolicyConfig::find_warmup(std::string_view source) const {
  for (const auto& plan : warmup) {
    if (plan.source == source) return &plan;
  }
  return nullptr;
}

namespace detail {

std::shared_ptr<const PolicyConfig> read_policy(Reader& r, const std::optional<Item>& item) {
  auto policy = std::make_shared<PolicyConfig>();
  if (!item) return policy;
  auto fields =
      r.map(*item, {"campaign_header", "sources", "pools", "tenants", "shaping", "backoff",
                    "warmup", "bounce_rules", "return_path", "list_unsubscribe", "complaints"});
  if (!fields) return policy;
  if (auto header_item = fields->get("campaign_header")) {
    if (auto header = r.string(*header_item)) {
      if (is_header_field_name(*header)) {
        policy->campaign_header = *header;
      } else {
        r.error(header_item->line, header_item->path,
                "\"" + *header + "\" is not a header field name");
      }
    }
  }
  // Sources first: pools and warm-up refer to them by name; tenants refer
  // to pools.
  DeclaredSources names;
  DeclaredPools pool_names;
  if (auto sources = fields->get("sources")) read_sources(r, *sources, *policy, names);
  if (auto pools = fields->get("pools")) read_pools(r, *pools, *policy, names, pool_names);
  if (auto tenants = fields->get("tenants")) read_tenants(r, *tenants, *policy, pool_names);
  if (auto shaping = fields->get("shaping")) read_shaping(r, *shaping, *policy);
  if (auto backoff = fields->get("backoff")) read_backoff(r, *backoff, *policy);
  if (auto warmup = fields->get("warmup")) read_warmup(r, *warmup, *policy, names);
  if (auto rules = fields->get("bounce_rules")) read_bounce_rules(r, *rules, *policy);
  if (auto return_path = fields->get("return_path")) read_return_path(r, *return_path, *policy);
  if (auto unsubscribe = fields->get("list_unsubscribe")) {
    read_list_unsubscribe(r, *unsubscribe, *policy);
  }
  if (auto complaints = fields->get("complaints")) read_complaints(r, *complaints, *policy);
  return policy;
}

}  // namespace detail
}  // namespace ringmail::conf
