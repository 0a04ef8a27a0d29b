#include "queue/campaign_records.h"

#include <array>

#include "queue/record_bytes.h"

namespace ringmail::queue {
namespace {

constexpr uint8_t kCampaignVersion = 1;
constexpr uint8_t kStatsVersion = 1;
constexpr uint32_t kMaxCategories = 256;
constexpr size_t kMaxTenantKey = 256;

}  // namespace

const char* to_string(CampaignState state) {
  switch (state) {
    case CampaignState::active:
      return "active";
    case CampaignState::paused:
      return "paused";
    case CampaignState::cancelled:
      return "cancelled";
  }
  return "unknown";
}

void DeliveryStats::add(const DeliveryStats& d) {
  received += d.received;
  delivered += d.delivered;
  deferred += d.deferred;
  bounced += d.bounced;
  expired += d.expired;
  suppressed += d.suppressed;
  cancelled += d.cancelled;
  complaints += d.complaints;
  unsubscribes += d.unsubscribes;
  queued += d.queued;
  for (const auto& [name, n] : d.bounced_by_category) bounced_by_category[name] += n;
}

bool valid_campaign_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char ch : id) {
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!ok) return false;
  }
  return true;
}

std::string campaign_record_key(std::string_view id) {
  return std::string(kCampaignPrefix).append(id);
}
std::string campaign_stats_key(std::string_view id) {
  return std::string(kCampaignStatsPrefix).append(id);
}
std::string tenant_stats_key(std::string_view tenant) {
  return std::string(kTenantStatsPrefix).append(tenant);
}

void encode_campaign(const CampaignRecord& c, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kCampaignVersion);
  put_str(out, c.id);
  put_str(out, c.name);
  put_str(out, c.tenant);
  put_str(out, c.pool);
  put_str(out, c.message_rate);
  put_u8(out, static_cast<uint8_t>(c.state));
  put_u64le(out, static_cast<uint64_t>(c.created_unix_ms));
  append_crc(out, start);
}

DecodeResult decode_campaign(std::string_view bytes, CampaignRecord* out) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "campaign", &payload, kCampaignVersion); !opened)
    return opened;
  Reader r(payload);
  r.str("id", &out->id);
  r.str("name", &out->name);
  r.str("tenant", &out->tenant);
  r.str("pool", &out->pool);
  r.str("message_rate", &out->message_rate);
  const uint8_t state = r.u8("state");
  if (r.ok() && state > static_cast<uint8_t>(CampaignState::cancelled))
    r.fail("unknown state " + std::to_string(state));
  out->state = static_cast<CampaignState>(state);
  out->created_unix_ms = static_cast<int64_t>(r.u64le("created_ms"));
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (!r.ok()) return DecodeResult::failure("campaign record: " + r.error());
  return {};
}

void encode_stats(const DeliveryStats& s, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kStatsVersion);
  for (uint64_t v : {s.received, s.delivered, s.deferred, s.bounced, s.expired, s.suppressed,
                     s.cancelled, s.complaints, s.unsubscribes}) {
    put_u64le(out, v);
  }
  put_u64le(out, static_cast<uint64_t>(s.queued));
  put_u32le(out, static_cast<uint32_t>(s.bounced_by_category.size()));
  for (const auto& [name, n] : s.bounced_by_category) {
    put_str(out, name);
    put_u64le(out, n);
  }
  append_crc(out, start);
}

DecodeResult decode_stats(std::string_view bytes, DeliveryStats* out) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "stats", &payload, kStatsVersion); !opened)
    return opened;
  Reader r(payload);
  *out = DeliveryStats{};
  out->received = r.u64le("received");
  out->delivered = r.u64le("delivered");
  out->deferred = r.u64le("deferred");
  out->bounced = r.u64le("bounced");
  out->expired = r.u64le("expired");
  out->suppressed = r.u64le("suppressed");
  out->cancelled = r.u64le("cancelled");
  out->complaints = r.u64le("complaints");
  out->unsubscribes = r.u64le("unsubscribes");
  out->queued = static_cast<int64_t>(r.u64le("queued"));
  const uint32_t categories = r.u32le("category_count");
  if (r.ok() && categories > kMaxCategories)
    r.fail("implausible category count " + std::to_string(categories));
  for (uint32_t i = 0; r.ok() && i < categories; ++i) {
    std::string name;
    r.str("category", &name);
    const uint64_t n = r.u64le("category_count");
    if (r.ok() && !out->bounced_by_category.emplace(std::move(name), n).second)
      r.fail("category listed twice");
  }
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (!r.ok()) return DecodeResult::failure("stats record: " + r.error());
  return {};
}

std::string stats_journal_key(uint64_t sequence) {
  std::string key(kStatsJournalPrefix);
  put_u64be(&key, sequence);
  return key;
}

std::optional<uint64_t> stats_journal_sequence(std::string_view key) {
  const std::string_view prefix = kStatsJournalPrefix;
  if (!key.starts_with(prefix) || key.size() != prefix.size() + 8) return std::nullopt;
  return get_u64be(key.data() + prefix.size());
}

namespace {

// A journal delta: which of the ten counters are not zero (a bit each),
// those as varints (queued zigzag-encoded), then the categories. Most
// deltas are one or two counters: a few bytes, not a whole stats record.
void put_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t get_varint(Reader& r, const char* field) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && r.ok(); shift += 7) {
    const uint8_t byte = r.u8(field);
    v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return v;
  }
  r.fail(std::string(field) + ": varint too long");
  return 0;
}

constexpr int kCounters = 10;

std::array<uint64_t, kCounters> counters_of(const DeliveryStats& s) {
  const uint64_t queued =
      (static_cast<uint64_t>(s.queued) << 1) ^ static_cast<uint64_t>(s.queued >> 63);  // zigzag
  return {s.received,   s.delivered, s.deferred,   s.bounced,      s.expired,
          s.suppressed, s.cancelled, s.complaints, s.unsubscribes, queued};
}

void set_counters(const std::array<uint64_t, kCounters>& c, DeliveryStats* s) {
  s->received = c[0];
  s->delivered = c[1];
  s->deferred = c[2];
  s->bounced = c[3];
  s->expired = c[4];
  s->suppressed = c[5];
  s->cancelled = c[6];
  s->complaints = c[7];
  s->unsubscribes = c[8];
  s->queued = static_cast<int64_t>((c[9] >> 1) ^ (~(c[9] & 1) + 1));  // zigzag back
}

}  // namespace

void encode_stats_journal(const StatsDeltas& deltas, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kStatsVersion);
  put_u32le(out, static_cast<uint32_t>(deltas.size()));
  for (const auto& [key, stats] : deltas) {
    put_str(out, key);
    const std::array<uint64_t, kCounters> counters = counters_of(stats);
    uint32_t mask = 0;
    for (int i = 0; i < kCounters; ++i) mask |= counters[i] != 0 ? 1u << i : 0u;
    put_varint(out, mask);
    for (int i = 0; i < kCounters; ++i) {
      if (counters[i] != 0) put_varint(out, counters[i]);
    }
    put_varint(out, stats.bounced_by_category.size());
    for (const auto& [name, n] : stats.bounced_by_category) {
      put_str(out, name);
      put_varint(out, n);
    }
  }
  append_crc(out, start);
}

DecodeResult decode_stats_journal(std::string_view bytes, StatsDeltas* out) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "stats journal", &payload, kStatsVersion); !opened)
    return opened;
  Reader r(payload);
  out->clear();
  const uint32_t count = r.u32le("count");
  if (r.ok() && count > r.remaining()) r.fail("implausible count " + std::to_string(count));
  for (uint32_t i = 0; r.ok() && i < count; ++i) {
    std::string key;
    r.str("key", &key);
    const uint64_t mask = get_varint(r, "mask");
    if (r.ok() && mask >= (1u << kCounters)) r.fail("unknown counters in the mask");
    std::array<uint64_t, kCounters> counters{};
    for (int c = 0; r.ok() && c < kCounters; ++c) {
      if (mask & (1u << c)) counters[c] = get_varint(r, "counter");
    }
    DeliveryStats stats;
    set_counters(counters, &stats);
    const uint64_t categories = get_varint(r, "category_count");
    if (r.ok() && categories > kMaxCategories)
      r.fail("implausible category count " + std::to_string(categories));
    for (uint64_t k = 0; r.ok() && k < categories; ++k) {
      std::string name;
      r.str("category", &name);
      stats.bounced_by_category[name] += get_varint(r, "category_n");
    }
    if (r.ok()) (*out)[key].add(stats);
  }
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (!r.ok()) return DecodeResult::failure("stats journal: " + r.error());
  return {};
}

void add_deltas(const StatsDeltas& from, StatsDeltas* into) {
  for (const auto& [key, delta] : from) (*into)[key].add(delta);
}

void StatsBatch::add_to(std::string_view prefix, std::string_view name,
                        const DeliveryStats& delta) {
  key_.assign(prefix).append(name);  // reused: no allocation per count
  auto it = deltas_.find(key_);
  if (it == deltas_.end()) it = deltas_.emplace(key_, DeliveryStats{}).first;
  it->second.add(delta);
}

void StatsBatch::count(const MessageMetadata& meta, const DeliveryStats& delta) {
  // A DSN keeps its original's tenant and campaign for the log, but it is
  // the daemon's mail, not theirs: it counts for neither.
  if (meta.listener == kDsnListener) return;
  if (!meta.campaign.empty() && valid_campaign_id(meta.campaign))
    add_to(kCampaignStatsPrefix, meta.campaign, delta);
  // (A tenant is an AUTH user or a relay_networks entry: short. One past
  // what a control key may hold would sink the whole commit, so it is
  // not counted rather than risked.)
  if (!meta.tenant.empty() && meta.tenant.size() <= kMaxTenantKey)
    add_to(kTenantStatsPrefix, meta.tenant, delta);
}

void StatsBatch::count_addition(const StatsAddition& addition) {
  MessageMetadata meta;
  meta.tenant = addition.tenant;
  meta.campaign = addition.campaign;
  count(meta, addition.delta);
}

void StatsBatch::count_new(const SpoolMessage& message) {
  const MessageMetadata& meta = message.meta;
  if ((meta.campaign.empty() && meta.tenant.empty()) || meta.listener == kDsnListener) return;
  if (!meta.campaign.empty() && valid_campaign_id(meta.campaign)) {
    key_.assign(kCampaignPrefix).append(meta.campaign);
    if (!new_campaigns_.contains(key_)) {
      CampaignRecord record;
      record.id = meta.campaign;
      record.tenant = meta.tenant;
      record.created_unix_ms = meta.received_unix_ms;
      new_campaigns_.emplace(key_, std::move(record));
    }
  }
  DeliveryStats delta;
  delta.received = message.envelope.recipients.size();
  delta.queued = static_cast<int64_t>(delta.received);
  count(meta, delta);
  // A recipient stored already final (e.g. suppressed at reception) leaves
  // the queue in the same commit.
  for (const Recipient& r : message.envelope.recipients) {
    if (is_final(r.state)) count_transition(meta, RecipientState::queued, r.state, std::nullopt);
  }
}

void StatsBatch::count_transition(const MessageMetadata& meta, RecipientState from,
                                  RecipientState to, std::optional<mail::BounceCategory> category) {
  if (meta.campaign.empty() && meta.tenant.empty()) return;
  DeliveryStats delta;
  if (to == RecipientState::deferred) delta.deferred = 1;
  if (!is_final(from) && is_final(to)) {
    delta.queued = -1;
    switch (to) {
      case RecipientState::delivered:
        delta.delivered = 1;
        break;
      case RecipientState::bounced:
        delta.bounced = 1;
        break;
      case RecipientState::expired:
        delta.expired = 1;
        if (!category) category = mail::BounceCategory::MessageExpired;
        break;
      case RecipientState::suppressed:
        delta.suppressed = 1;
        break;
      case RecipientState::cancelled:
        delta.cancelled = 1;
        break;
      default:
        break;
    }
    if (category && (to == RecipientState::bounced || to == RecipientState::expired))
      delta.bounced_by_category[std::string(mail::bounce_category_name(*category))] = 1;
  } else if (is_final(from) && !is_final(to)) {
    delta.queued = 1;  // queued again (a dead letter's retry)
  }
  if (delta == DeliveryStats{}) return;
  count(meta, delta);
}

}  // namespace ringmail::queue
