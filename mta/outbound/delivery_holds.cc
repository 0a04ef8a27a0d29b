#include "mta/outbound/delivery_holds.h"

#include <charconv>
#include <string_view>

namespace ringmail::mta {

namespace {

constexpr std::string_view kSite = "hold/site/";
constexpr std::string_view kDomain = "hold/domain/";
constexpr std::string_view kAll = "hold/all";
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
                     std::string(target), until, ""});
  }
  return out;
}

}  // namespace ringmail::mta
