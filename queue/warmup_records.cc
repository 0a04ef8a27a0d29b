#include "queue/warmup_records.h"

#include "queue/record_bytes.h"

namespace ringmail::queue {
namespace {

constexpr uint8_t kWarmupVersion = 1;
constexpr char kAllSites[] = "*";
constexpr int64_t kLongestWindowMs = 86'400'000;

enum Flag : uint8_t {
  kFirstDay = 1,
  kLastSentDay = 2,
  kPlanStarted = 4,
  kBackoffOnOpenDay = 8,
};
constexpr uint8_t kKnownFlags = kFirstDay | kLastSentDay | kPlanStarted | kBackoffOnOpenDay;

void put_day(std::string* out, const std::optional<policy::UtcDay>& day) {
  put_u32le(out, static_cast<uint32_t>(day.value_or(0)));
}

policy::UtcDay get_day(Reader& r, const char* field) {
  return static_cast<policy::UtcDay>(r.u32le(field));
}

// What a state the policy code made always satisfies.
std::string inconsistency(const policy::WarmupState& s) {
  if (!s.first_day) {
    if (s.open_day != 0 || s.advanced != 0 || s.backoff_on_open_day || s.last_sent_day)
      return "days recorded before day 1";
  } else if (s.open_day < *s.first_day) {
    return "open day before day 1";
  }
  if (s.window_ms < 0 || s.window_ms > kLongestWindowMs) {
    return "window of " + std::to_string(s.window_ms) + " ms";
  }
  if (s.window_ms == 0) {
    if (s.window_start_ms != 0 || s.sent_in_window != 0) return "a count without a window";
  } else if (s.window_start_ms % s.window_ms != 0) {
    return "window start not aligned to its length";
  }
  return {};
}

}  // namespace

std::string warmup_state_key(const policy::WarmupKey& key) {
  std::string out(kWarmupPrefix);
  out.append(key.provider.empty() ? std::string_view(kAllSites) : std::string_view(key.provider));
  out.push_back('/');
  out.append(key.source);
  return out;
}

std::optional<policy::WarmupKey> parse_warmup_state_key(std::string_view key) {
  if (!key.starts_with(kWarmupPrefix)) return std::nullopt;
  key.remove_prefix(sizeof(kWarmupPrefix) - 1);
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == key.size()) return std::nullopt;
  policy::WarmupKey out;
  const std::string_view provider = key.substr(0, slash);
  if (provider != kAllSites) out.provider = std::string(provider);
  out.source = std::string(key.substr(slash + 1));
  return out;
}

std::string encode_warmup_state(const policy::WarmupState& s) {
  std::string out;
  out.reserve(50);
  put_u8(&out, kWarmupVersion);
  uint8_t flags = 0;
  if (s.first_day) flags |= kFirstDay;
  if (s.last_sent_day) flags |= kLastSentDay;
  if (s.plan_started) flags |= kPlanStarted;
  if (s.backoff_on_open_day) flags |= kBackoffOnOpenDay;
  put_u8(&out, flags);
  put_day(&out, s.first_day);
  put_day(&out, s.open_day);
  put_u32le(&out, s.advanced);
  put_day(&out, s.last_sent_day);
  put_day(&out, s.plan_started);
  put_u64le(&out, static_cast<uint64_t>(s.window_start_ms));
  put_u64le(&out, static_cast<uint64_t>(s.window_ms));
  put_u64le(&out, s.sent_in_window);
  append_crc(&out, 0);
  return out;
}

std::optional<policy::WarmupState> decode_warmup_state(std::string_view bytes, std::string* error) {
  auto refuse = [&](std::string why) -> std::optional<policy::WarmupState> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "warm-up", &payload, kWarmupVersion); !opened)
    return refuse(opened.error);
  Reader r(payload);
  policy::WarmupState s;
  const uint8_t flags = r.u8("flags");
  const policy::UtcDay first_day = get_day(r, "first_day");
  s.open_day = get_day(r, "open_day");
  s.advanced = r.u32le("advanced");
  const policy::UtcDay last_sent_day = get_day(r, "last_sent_day");
  const policy::UtcDay plan_started = get_day(r, "plan_started");
  s.window_start_ms = static_cast<int64_t>(r.u64le("window_start_ms"));
  s.window_ms = static_cast<int64_t>(r.u64le("window_ms"));
  s.sent_in_window = r.u64le("sent_in_window");
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (r.ok() && (flags & ~kKnownFlags) != 0) r.fail("unknown flags " + std::to_string(flags));
  if (!r.ok()) return refuse("warm-up record: " + r.error());
  if (flags & kFirstDay) s.first_day = first_day;
  if (flags & kLastSentDay) s.last_sent_day = last_sent_day;
  if (flags & kPlanStarted) s.plan_started = plan_started;
  s.backoff_on_open_day = (flags & kBackoffOnOpenDay) != 0;
  // An absent day is written as 0; anything else there is not ours.
  if ((!s.first_day && first_day != 0) || (!s.last_sent_day && last_sent_day != 0) ||
      (!s.plan_started && plan_started != 0))
    return refuse("warm-up record: a day given for an absent field");
  if (std::string why = inconsistency(s); !why.empty()) return refuse("warm-up record: " + why);
  return s;
}

}  // namespace ringmail::queue
