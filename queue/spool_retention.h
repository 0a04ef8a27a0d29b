// queue/spool_retention.h — what the spool keeps of a message once it is
// finished: a compact status record (`spool.keep_status`, for "what became
// of message X"), and, when a recipient bounced or expired, a dead letter
// (`spool.keep_failed`: the message with its body, which an operator may
// retry or drop).
//
// Owns: the byte layout of these control-table values and keys, and the
// rules for writing, taking back and expiring them, written once against
// ControlTableAccess so that the LMDB and the memory spool run the same
// code inside their own transaction. Pure apart from that interface; any
// thread (the spool calls it from its commit, on the writer thread).
//
// Keys (in the control table, beside "hold/..." and "campaign/..."):
//   "status/ID"          StatusRecord
//   "dead/ID"            DeadLetter: message and recipient records, no body
//   "dead_body/ID"       the body, as the "bodies" database holds it
//   "expiry/T/s/ID"      expiry index of status/ID (T: 16 lower-case hex
//   "expiry/T/d/ID"      digits of the expiry time in Unix ms); empty values
// Layout (version 1; integers little-endian, strings u32 length + bytes, a
// CRC-32 trailer as in the message records):
//   status : ver id sender tenant campaign received_ms size finished_ms
//            expires_ms recipient_count
//            (address state attempts code enhanced text category)* crc
//   dead   : ver finished_ms expires_ms message_record(str) recipient_count
//            recipient_record(str)* crc   (the spool's own records, as in
//            queue/spool_codec.h, so a retry gets back exactly what was spooled)
//
// Durability: the records are written in the same transaction that deletes
// the finished message (Spool::commit), so after kill -9 a message is either
// still in the spool or has its status record; never neither. Expired
// records are removed a bounded number per commit, never in one huge
// transaction. A record's own expiry time is what counts: readers treat a
// record past it as gone even before the cleanup reached it.
//
// SECURITY: decoders take bytes from disk as untrusted (bounds-checked,
// versioned, CRC-checked); a value that does not decode is an error, and an
// expiry key that does not parse is dropped by the cleanup.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/campaign_records.h"
#include "queue/spool.h"
#include "queue/spool_codec.h"
#include "queue/spool_message.h"

namespace ringmail::queue {

inline constexpr char kStatusPrefix[] = "status/";
inline constexpr char kDeadPrefix[] = "dead/";
inline constexpr char kDeadBodyPrefix[] = "dead_body/";
inline constexpr char kExpiryPrefix[] = "expiry/";
// Longer ids (never made by make_message_id) get no status record: the
// keys must stay within LMDB's key size.
inline constexpr size_t kMaxRetainedIdSize = 200;

struct StatusRecipient {
  std::string address;
  RecipientState state = RecipientState::delivered;
  uint32_t attempts = 0;
  RecipientResponse response;
  std::string category;  // bounce category name, "" if none
  friend bool operator==(const StatusRecipient&, const StatusRecipient&) = default;
};

struct StatusRecord {
  std::string id;
  std::string sender;
  std::string tenant;
  std::string campaign;
  int64_t received_unix_ms = 0;
  uint64_t size = 0;
  int64_t finished_unix_ms = 0;
  int64_t expires_unix_ms = 0;
  std::vector<StatusRecipient> recipients;
  friend bool operator==(const StatusRecord&, const StatusRecord&) = default;
};

struct DeadLetter {
  SpoolMessage message;  // envelope with its recipients, metadata; content empty
  uint64_t body_size = 0;
  int64_t finished_unix_ms = 0;
  int64_t expires_unix_ms = 0;
};

enum class RetainedKind : char { status = 's', dead = 'd' };

std::string status_key(std::string_view id);
std::string dead_key(std::string_view id);
std::string dead_body_key(std::string_view id);
std::string expiry_key(int64_t expires_unix_ms, RetainedKind kind, std::string_view id);
struct ExpiryKey {
  int64_t expires_unix_ms = 0;
  RetainedKind kind = RetainedKind::status;
  std::string_view id;
};
std::optional<ExpiryKey> parse_expiry_key(std::string_view key);
// Every expiry key of a record that expired at or before now_ms sorts below this.
std::string expiry_key_bound(int64_t now_ms);

// A message's status record as it is when it finished (recipients filled).
StatusRecord status_record_of(const SpoolMessage& message, int64_t finished_unix_ms,
                              int64_t expires_unix_ms);
void encode_status(const StatusRecord& record, std::string* out);
DecodeResult decode_status(std::string_view bytes, StatusRecord* out);

// message_record: the message's record as the spool stores it (its body
// size is the body kept beside the dead letter).
void encode_dead_letter(std::string_view message_record, const std::vector<Recipient>& recipients,
                        int64_t finished_unix_ms, int64_t expires_unix_ms, std::string* out);
DecodeResult decode_dead_letter(std::string_view bytes, DeadLetter* out);

// Bounced or expired: what makes a finished message a dead letter, and
// what a retry queues again.
bool is_failed(RecipientState state);
bool has_failed_recipient(const SpoolMessage& message);

// The message a retry commits: the dead letter's envelope, metadata and
// `content`, with every failed recipient queued again (due now, its
// attempts kept, its last response kept until the next attempt) and the
// others as they ended. Its received time becomes now_ms, so that
// delivery.retry.max_age counts from the retry. *requeued: how many.
SpoolMessage retry_message(const DeadLetter& dead, std::string content, int64_t now_unix_ms,
                           size_t* requeued);

// The control table inside one spool write transaction.
class ControlTableAccess {
 public:
  virtual ~ControlTableAccess() = default;
  // *value is nullopt when the key is absent.
  virtual StoreOutcome get(const std::string& key, std::optional<std::string>* value) = 0;
  virtual StoreOutcome put(const std::string& key, std::string_view value) = 0;
  // Deleting an absent key is ok.
  virtual StoreOutcome remove(const std::string& key) = 0;
  // Keys k with first <= k < below, in order, at most limit.
  virtual StoreOutcome keys(const std::string& first, const std::string& below, size_t limit,
                            std::vector<std::string>* out) = 0;
};

// A finished message leaves the spool: writes its status record and, when
// it has a failed recipient, its dead letter with `body_value` (the
// bodies-database value; read only when a dead letter is kept). Replaces
// earlier records of the same id, with their expiry entries.
StoreOutcome retain_finished(ControlTableAccess& table, const SpoolMessage& message,
                             std::string_view message_record,
                             const std::function<std::optional<std::string>()>& body_value,
                             const RetentionPolicy& policy, int64_t now_unix_ms);

// A dead letter's retry is being committed: its dead letter (and status
// record) go, and the recipients' way back from their final state is
// counted in *stats. failed when there is no dead letter of that id any
// more (dropped or retried meanwhile): nothing is then committed for it.
StoreOutcome take_back_dead_letter(ControlTableAccess& table, const SpoolMessage& retry,
                                   StatsBatch* stats);

// Drops a dead letter (DELETE /api/v1/dead/ID) with its body and expiry
// entry; *found false when there was none.
StoreOutcome drop_dead_letter(ControlTableAccess& table, std::string_view id, bool* found);

// Removes at most `limit` records whose expiry time is at or before now,
// with their expiry entries; *removed counts the records.
StoreOutcome expire_retained(ControlTableAccess& table, int64_t now_unix_ms, size_t limit,
                             size_t* removed);

}  // namespace ringmail::queue
