// queue/spool.h — the Spool interface: where accepted messages become
// durable, and where restart finds them again.
//
// Owns: nothing itself; implementations are the LMDB spool
// (queue/spool_lmdb.h, production) and an in-memory spool
// (queue/spool_memory.h, tests).
//
// Threads: store_batch() is called by one writer at a time (the SpoolWriter
// thread); load_message(), for_each_recipient() and stats() may be called
// from any thread, concurrently with a store. recover() runs once at
// start-up, before the writer starts.
//
// Durability: when store_batch() returns ok, every message of the batch is
// in one committed, synced transaction (LMDB) and survives kill -9 and power
// loss. When it returns anything else, nothing of the batch was written.
//
// Trust: records read back from disk are treated as untrusted input; a
// record that does not decode is reported and skipped, never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mail/bounce_category.h"
#include "queue/campaign_records.h"
#include "queue/spool_message.h"
#include "runtime/clock.h"

namespace ringmail::queue {

enum class StoreStatus {
  ok,
  spool_full,  // map full, ENOSPC, EDQUOT, EIO on a full filesystem, or the writer's
               // reserve reached: the client gets 452 4.3.1
  failed,      // any other error: the client gets a 451
};
inline const char* to_string(StoreStatus status) {
  switch (status) {
    case StoreStatus::ok:
      return "ok";
    case StoreStatus::spool_full:
      return "spool_full";
    case StoreStatus::failed:
      return "failed";
  }
  return "unknown";
}

struct StoreOutcome {
  StoreStatus status = StoreStatus::failed;
  std::string detail;  // for logs, never sent to a client
  bool ok() const { return status == StoreStatus::ok; }
};

// What recover() found. Counts cover records that decoded; corrupt ones
// are counted in corrupt_records and described (up to a bound) in problems.
struct RecoverySummary {
  uint32_t format_version = 0;
  uint64_t messages = 0;
  uint64_t recipients = 0;
  std::array<uint64_t, 9> recipients_by_state{};  // indexed by RecipientState
  uint64_t scheduled = 0;                         // entries of the next-attempt index
  uint64_t corrupt_records = 0;
  std::vector<std::string> problems;  // first kMaxProblems, human readable
  double seconds = 0;

  static constexpr size_t kMaxProblems = 100;
  uint64_t count(RecipientState state) const {
    return recipients_by_state[static_cast<size_t>(state)];
  }
};

struct SpoolStats {
  uint64_t map_size_bytes = 0;  // the configured capacity
  uint64_t used_bytes = 0;      // pages in use (LMDB: last page number x page size)
  uint64_t messages = 0;        // message records
  uint64_t recipients = 0;      // recipient records
};

// Room left for new records. LMDB's data file never shrinks: deleted
// records leave pages on its free list, which later transactions reuse, so
// the room is those free pages plus what the file may still grow by, which
// both the map and the filesystem bound.
struct SpoolSpace {
  uint64_t map_size_bytes = 0;         // the configured capacity
  uint64_t map_used_bytes = 0;         // pages the data file holds
  uint64_t free_page_bytes = 0;        // of those, pages on the free list (reusable)
  uint64_t filesystem_free_bytes = 0;  // what the filesystem still grants (statvfs)
  bool free_pages_counted = false;     // false: free_page_bytes was not looked up (0)

  uint64_t growth_bytes() const {
    const uint64_t map_left = map_size_bytes > map_used_bytes ? map_size_bytes - map_used_bytes : 0;
    return map_left < filesystem_free_bytes ? map_left : filesystem_free_bytes;
  }
  uint64_t available_bytes() const { return growth_bytes() + free_page_bytes; }
};

// Whether space() walks LMDB's free list (proportional to its length, so
// only when the cheap figure is close to the limit).
enum class CountFreePages { no, yes };

// A new state for one stored recipient (the scheduler's transitions, an
// operator's release of quarantined mail).
struct RecipientUpdate {
  RecipientUpdate() = default;
  RecipientUpdate(MessageId id_, uint32_t index_, RecipientState state_, uint32_t attempts_,
                  int64_t next_attempt_unix_ms_)
      : id(std::move(id_)),
        index(index_),
        state(state_),
        attempts(attempts_),
        next_attempt_unix_ms(next_attempt_unix_ms_) {}

  MessageId id;
  uint32_t index = 0;  // position in the message's recipients
  RecipientState state = RecipientState::queued;
  uint32_t attempts = 0;
  int64_t next_attempt_unix_ms = 0;
  // Bounced or expired: the reply's category, counted in the campaign's
  // and tenant's bounced_by_category (queue/campaign_records.h).
  std::optional<mail::BounceCategory> category;
  RecipientResponse response;  // the reply behind the new state
};

// How long a finished message is remembered (queue/spool_retention.h):
// its status record (spool.keep_status) and, when a recipient bounced or
// expired, the whole message as a dead letter (spool.keep_failed). 0: not kept.
struct RetentionPolicy {
  int64_t keep_status_ms = 0;
  int64_t keep_failed_ms = 0;
};

// A control-plane key (see Spool::put_control) that a commit writes, or
// deletes when value is nullopt: state that must change together with the
// delivery results it belongs to (the warm-up counts, queue/warmup_records.h).
struct ControlWrite {
  std::string key;
  std::optional<std::string> value;
};
// What both spools take as a control key (LMDB's key limit is 511 bytes).
inline bool valid_control_key(std::string_view key) { return !key.empty() && key.size() <= 400; }

struct SpoolOptions {
  RetentionPolicy retention;
  // Expired status records and dead letters removed per commit at most,
  // plus two per message the commit finishes (so that a busy spool keeps
  // up with what it adds), so that the cleanup never makes one huge
  // transaction.
  size_t expire_per_commit = 100;
  // Finished and expiry times (null: the system clock). Must outlive the spool.
  const runtime::Clock* clock = nullptr;
};

class Spool {
 public:
  virtual ~Spool() = default;

  // Writes every message (envelope, metadata, recipients, indexes, content)
  // in one transaction and commits it. All or nothing. Messages must have a
  // non-empty id without NUL bytes and at least one recipient.
  virtual StoreOutcome store_batch(std::span<SpoolMessage* const> messages) = 0;

  // The message with its recipients' current state; content only when
  // with_content. nullopt when absent or corrupt (corruption is logged).
  virtual std::optional<SpoolMessage> load_message(const MessageId& id,
                                                   bool with_content) const = 0;

  // Calls visit(message, index) once per stored recipient that decodes, in
  // message id order, with message.envelope.recipients filled in and
  // message.content empty; index is the recipient's position in the
  // message. Bodies are not read. visit must not store into this spool.
  using RecipientVisitor = std::function<void(const SpoolMessage& message, size_t index)>;
  virtual void for_each_recipient(const RecipientVisitor& visit) const = 0;

  // Start-up check: format, every message and recipient record, the
  // scheduler index. Logs and counts corrupt records; never throws.
  virtual RecoverySummary recover() = 0;

  virtual SpoolStats stats() const = 0;

  // Room for new records now (see SpoolSpace). Any thread; cheap without
  // free pages (no I/O but one statvfs), a read transaction with them.
  virtual SpoolSpace space(CountFreePages count) const = 0;

  // Rewrites recipients' state, attempts and next attempt, and their index
  // entries, in one synced transaction: all or nothing. failed when a
  // recipient does not exist.
  virtual StoreOutcome update_recipients(std::span<const RecipientUpdate> updates) = 0;

  // The spool writer's group commit: in one synced transaction, stores
  // `messages` (as store_batch), applies `updates` (as update_recipients,
  // except that an update of a recipient that no longer exists is skipped
  // and logged, so that one stale update cannot sink the batch), then
  // deletes every message of `finished` whose recipients are all in a
  // final state (delivered, bounced, expired, suppressed, cancelled):
  // its record, body, recipients and index entries. A finished message
  // with a recipient still active or quarantined is kept. In the same
  // transaction it creates the campaign records new messages name (never
  // overwriting one) and adds what the commit changed to the campaign and
  // tenant statistics (queue/campaign_records.h).
  // Retention (queue/spool_retention.h), in the same transaction: a
  // finished message that is deleted leaves its status record and, with a
  // failed recipient, its dead letter, as the RetentionPolicy in force
  // says; a message of origin dead_letter_retry takes its dead letter back
  // (failed when there is none: nothing of it is stored) and its recipients
  // count as queued again, not received; and a bounded number of expired
  // records are removed (SpoolOptions::expire_per_commit; a commit with
  // nothing else to do removes them too). Last, it writes `controls` in
  // order (a later write of a key wins), so that control state changes
  // with the results it goes with, and counts `additions` (complaints and
  // unsubscribes, queue/campaign_records.h) into the statistics with the
  // rest. All or nothing.
  virtual StoreOutcome commit(std::span<SpoolMessage* const> messages,
                              std::span<const RecipientUpdate> updates,
                              std::span<const MessageId> finished,
                              std::span<const ControlWrite> controls = {},
                              std::span<const StatsAddition> additions = {}) = 0;

  // Control-plane state (holds, campaigns and their statistics; lists
  // later): small values by key, beside the messages, not part of their
  // format. put_control() writes one key in its own synced transaction
  // (nullopt deletes it; deleting an absent key is ok); any thread, one at
  // a time with the writer (LMDB serialises write transactions).
  virtual StoreOutcome put_control(const std::string& key,
                                   const std::optional<std::string>& value) = 0;
  // Writes every control write in order in one synced transaction (a later
  // write of a key wins): all or nothing. Any thread, as put_control().
  virtual StoreOutcome put_controls(std::span<const ControlWrite> writes) = 0;
  // Every key that starts with `prefix`, in key order.
  virtual std::vector<std::pair<std::string, std::string>> controls(
      const std::string& prefix) const = 0;
  // Calls visit(key, value) for every key that starts with `prefix`, in key
  // order, in one read transaction, until visit returns false; for prefixes
  // with too many keys to copy at once (the suppression lists). visit must
  // not write to this spool.
  using ControlVisitor = std::function<bool(std::string_view key, std::string_view value)>;
  virtual void for_each_control(const std::string& prefix, const ControlVisitor& visit) const = 0;
  // One key's value; nullopt when absent.
  virtual std::optional<std::string> control(const std::string& key) const = 0;

  // The campaign and tenant statistics whose keys start with `prefix`
  // (kCampaignStatsPrefix, kTenantStatsPrefix, or one stats key), as the
  // last commit left them: the records plus what is not folded into them
  // yet. Any thread.
  virtual StatsDeltas delivery_stats(const std::string& prefix) const = 0;
  // Applies from the next commit (a reload). Any thread.
  virtual void set_retention(const RetentionPolicy& policy) = 0;
  // Drops a dead letter with its body and expiry entry in one synced
  // transaction; *found false (and ok) when there is none. Any thread.
  virtual StoreOutcome drop_dead_letter(const MessageId& id, bool* found) = 0;
};

}  // namespace ringmail::queue
