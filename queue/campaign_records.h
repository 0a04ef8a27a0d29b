// queue/campaign_records.h — campaigns, and the delivery statistics of each
// campaign and tenant, as the spool's control table keeps them.
//
// Owns: the byte layout of these control-table values and the counting
// rules. Pure functions and values; any thread.
//
// Keys (in the control table, beside "hold/..."):
//   "campaign/ID"        CampaignRecord
//   "stats/campaign/ID"  DeliveryStats of the campaign's recipients
//   "stats/tenant/NAME"  DeliveryStats of the tenant's recipients
// Layout (version 1; integers little-endian, strings u32 length + bytes,
// a CRC-32 trailer as in the message records):
//   campaign : ver id name tenant pool message_rate state created_ms crc
//   stats    : ver received delivered deferred bounced expired suppressed
//              cancelled complaints unsubscribes queued(i64)
//              category_count (name u64)* crc
//   journal  : ver count (key mask counter* category_count (name n)*)* crc,
//              mask a varint with a bit per non-zero counter (received ..
//              unsubscribes, queued), counters and n varints, queued zigzag
//
// Counting: a StatsBatch turns what one spool commit writes — new messages
// and recipients' state changes — into deltas, and the spool writes them in
// that same transaction (Spool::commit): as one journal entry of the
// commit's deltas, which a later commit folds into the records (so that a
// commit touching a thousand campaigns writes one value, not a thousand;
// Spool::delivery_stats() adds what is not folded yet). So the
// numbers move with the recipients they count: a result that did not
// commit is neither in the spool nor in the stats, and a restart that
// repeats it counts it once. What is counted is the transition, read from
// the stored recipient: a first final state (delivered, bounced, expired,
// suppressed, cancelled) takes one from `queued`; a final recipient queued
// again (a dead letter's retry) adds one back; every deferral counts.
// DSNs the daemon makes (listener "dsn") count for no campaign or tenant.
//
// SECURITY: decoders take bytes from disk as untrusted (bounds-checked,
// versioned, CRC-checked); a value that does not decode is an error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "mail/bounce_category.h"
#include "queue/spool_codec.h"
#include "queue/spool_message.h"

namespace ringmail::queue {

inline constexpr char kCampaignPrefix[] = "campaign/";
inline constexpr char kCampaignStatsPrefix[] = "stats/campaign/";
inline constexpr char kTenantStatsPrefix[] = "stats/tenant/";
// The deltas of commits not yet folded into the records above, one entry
// per commit (key: prefix + u64be sequence); see LmdbSpool::commit.
inline constexpr char kStatsJournalPrefix[] = "stats-journal/";

// Persisted as one byte: append, never renumber.
enum class CampaignState : uint8_t { active = 0, paused = 1, cancelled = 2 };
const char* to_string(CampaignState state);

struct CampaignRecord {
  std::string id;    // 1-64 of [A-Za-z0-9._-] (valid_campaign_id)
  std::string name;  // "" until an operator names it
  std::string tenant;
  std::string pool;          // "" = the tenant's or the default pool
  std::string message_rate;  // as written ("300/m"), "" = none
  CampaignState state = CampaignState::active;
  int64_t created_unix_ms = 0;
  friend bool operator==(const CampaignRecord&, const CampaignRecord&) = default;
};

// Recipients, as CONTRACT's CAMPAIGN.stats counts them.
struct DeliveryStats {
  uint64_t received = 0;
  uint64_t delivered = 0;
  uint64_t deferred = 0;  // deferrals (TransientFailure), not recipients waiting
  uint64_t bounced = 0;   // bounced for good, by a reply or the operator (not expired)
  uint64_t expired = 0;
  uint64_t suppressed = 0;
  uint64_t cancelled = 0;
  uint64_t complaints = 0;
  uint64_t unsubscribes = 0;
  int64_t queued = 0;  // waiting now (a delta may be negative)
  // Bounces and expirations whose reply was classified, by category name.
  std::map<std::string, uint64_t> bounced_by_category;

  void add(const DeliveryStats& delta);
  friend bool operator==(const DeliveryStats&, const DeliveryStats&) = default;
};

// The campaign id syntax CONTRACT fixes for the API; a campaign header's
// value that does not fit it makes no campaign record (it is still logged).
bool valid_campaign_id(std::string_view id);

std::string campaign_record_key(std::string_view id);
std::string campaign_stats_key(std::string_view id);
std::string tenant_stats_key(std::string_view tenant);

void encode_campaign(const CampaignRecord& record, std::string* out);
DecodeResult decode_campaign(std::string_view bytes, CampaignRecord* out);
void encode_stats(const DeliveryStats& stats, std::string* out);
DecodeResult decode_stats(std::string_view bytes, DeliveryStats* out);

using StatsDeltas = std::map<std::string, DeliveryStats>;  // by stats key
std::string stats_journal_key(uint64_t sequence);
// The sequence of a journal key; nullopt when it is not one.
std::optional<uint64_t> stats_journal_sequence(std::string_view key);
void encode_stats_journal(const StatsDeltas& deltas, std::string* out);
DecodeResult decode_stats_journal(std::string_view bytes, StatsDeltas* out);
// Adds every delta of `from` to `into`.
void add_deltas(const StatsDeltas& from, StatsDeltas* into);

// A count that goes with no recipient's change of state: a complaint or
// an unsubscribe learnt from mail coming back (mta/feedback_processor.h),
// for the campaign and tenant named, in the commit that carries it
// (Spool::commit's `additions`). Only `complaints` and `unsubscribes` are
// meant here: the other counters move with the recipients they count.
struct StatsAddition {
  std::string tenant;    // "" = no tenant's statistics
  std::string campaign;  // "" = no campaign's
  DeliveryStats delta;
};

// What one commit changes in the statistics, by control key, and the
// campaigns its new messages name (created when absent, never overwritten:
// an operator's record wins).
class StatsBatch {
 public:
  // A message stored by this commit: its recipients are received.
  void count_new(const SpoolMessage& message);
  // A stored recipient of a message with this metadata goes from -> to.
  void count_transition(const MessageMetadata& meta, RecipientState from, RecipientState to,
                        std::optional<mail::BounceCategory> category);
  // A count of no recipient (StatsAddition); creates no campaign record.
  void count_addition(const StatsAddition& addition);

  bool empty() const { return deltas_.empty() && new_campaigns_.empty(); }
  const StatsDeltas& deltas() const { return deltas_; }
  const std::map<std::string, CampaignRecord>& new_campaigns() const { return new_campaigns_; }

 private:
  void count(const MessageMetadata& meta, const DeliveryStats& delta);
  void add_to(std::string_view prefix, std::string_view name, const DeliveryStats& delta);

  StatsDeltas deltas_;
  std::map<std::string, CampaignRecord> new_campaigns_;
  std::string key_;  // scratch for lookups  // by campaign_record_key
};

}  // namespace ringmail::queue
