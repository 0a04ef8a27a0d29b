#include "mta/outbound/delivery_holds.h"

#include <charconv>
#include <string_view>

#include "conf/config_policy.h"
#include "queue/campaign_records.h"

namespace ringmail::mta {

namespace {

constexpr std::string_view kSite = "hold/site/";
constexpr std::string_view kDomain = "hold/domain/";
constexpr std::string_view kAll = "hold/all";
constexpr std::string_view kTenant = "hold/tenant/";
// The latest time a WallTime holds (year 2262 with nanosecond ticks): a
// damaged value past it would overflow into some other time.
constexpr int64_t kMaxUnixMs =
    std::chrono::duration_cast<runtime::Millis>(runtime::WallTime::duration::max()).count();

int64_t unix_ms(runtime::WallTime t) {
  return std::chrono::duration_cast<runtime::Millis>(t.time_since_epoch()).count();
}

}  // namespace

std::optional<PersistedHold> persisted_hold(const AdminCommand& command) {
  using Kind = AdminCommand::Kind;
  switch (command.kind) {
    case Kind::suspend_site:
      return PersistedHold{std::string(kSite) + command.target,
                           std::to_string(unix_ms(command.until))};
    case Kind::resume_site:
      return PersistedHold{std::string(kSite) + command.target, std::nullopt};
    case Kind::suspend_domain:
      return PersistedHold{std::string(kDomain) + command.target,
                           std::to_string(unix_ms(command.until))};
    case Kind::resume_domain:
      return PersistedHold{std::string(kDomain) + command.target, std::nullopt};
    case Kind::pause_tenant:
      return PersistedHold{std::string(kTenant) + command.target, "1"};
    case Kind::resume_tenant:
      return PersistedHold{std::string(kTenant) + command.target, std::nullopt};
    case Kind::pause_all:
      return PersistedHold{std::string(kAll), "1"};
    case Kind::resume_all:
      return PersistedHold{std::string(kAll), std::nullopt};
    default:
      return std::nullopt;
  }
}

RestoredHolds restore_holds(const std::vector<std::pair<std::string, std::string>>& controls,
                            runtime::WallTime now) {
  RestoredHolds out;
  for (const auto& [key, value] : controls) {
    const std::string_view k = key;
    if (k == kAll) {
      if (value == "1") {
        out.commands.push_back(AdminCommand{AdminCommand::Kind::pause_all, "", {}, ""});
      } else {
        out.problems.push_back(key);
      }
      continue;
    }
    if (k.starts_with(kTenant)) {
      const std::string_view tenant = k.substr(kTenant.size());
      if (value == "1" && !tenant.empty()) {
        out.commands.push_back(
            AdminCommand{AdminCommand::Kind::pause_tenant, std::string(tenant), {}, ""});
      } else {
        out.problems.push_back(key);
      }
      continue;
    }
    const bool site = k.starts_with(kSite);
    const bool domain = !site && k.starts_with(kDomain);
    if (!site && !domain) {  // e.g. "hold/x", shorter than either prefix
      out.problems.push_back(key);
      continue;
    }
    const std::string_view target = k.substr(site ? kSite.size() : kDomain.size());
    int64_t until_ms = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), until_ms);
    if (target.empty() || ec != std::errc() || end != value.data() + value.size() ||
        until_ms <= 0 || until_ms > kMaxUnixMs) {
      out.problems.push_back(key);
      continue;
    }
    const runtime::WallTime until{runtime::Millis(until_ms)};
    if (until <= now) {
      out.expired.push_back(key);
      continue;
    }
    out.commands.push_back(
        AdminCommand{site ? AdminCommand::Kind::suspend_site : AdminCommand::Kind::suspend_domain,
                     std::string(target),
                     until,
                     "",
                     "",
                     0,
                     {}});
  }
  return out;
}

AdminCommand campaign_policy_command(const std::string& id, const std::string& pool,
                                     const std::string& message_rate) {
  AdminCommand command;
  command.kind = AdminCommand::Kind::set_campaign_policy;
  command.target = id;
  command.pool = pool;
  if (std::optional<conf::Rate> rate = conf::parse_rate(message_rate)) {
    command.rate_count = rate->count;
    command.rate_per = rate->per;
  }
  return command;
}

std::vector<AdminCommand> campaign_holds(
    const std::vector<std::pair<std::string, std::string>>& campaign_controls,
    std::vector<std::string>* problems) {
  std::vector<AdminCommand> out;
  for (const auto& [key, value] : campaign_controls) {
    queue::CampaignRecord record;
    if (!queue::decode_campaign(value, &record)) {
      if (problems) problems->push_back(key);
      continue;
    }
    if (!record.pool.empty() || !record.message_rate.empty()) {
      out.push_back(campaign_policy_command(record.id, record.pool, record.message_rate));
    }
    if (record.state == queue::CampaignState::paused) {
      out.push_back(AdminCommand{AdminCommand::Kind::pause_campaign, record.id, {}, ""});
    } else if (record.state == queue::CampaignState::cancelled) {
      out.push_back(AdminCommand{AdminCommand::Kind::cancel_campaign, record.id, {}, ""});
    }
  }
  return out;
}

}  // namespace ringmail::mta
