// queue/suppression_store.h — the suppression lists (CONTRACT.md
// "Feedback, suppression and compliance in detail"): per tenant ("*": every
// tenant), the addresses that must not be mailed again, with why.
//
// Owns: the durable entries, in the spool's control table under
// "suppress/" (one key per tenant and address, value the versioned record
// below), and an in-memory index of their 64-bit hashes, so that the
// lookup the delivery planner makes for every recipient costs one hash and
// one probe of a flat table, at 10 million entries as at none. A hash hit
// is confirmed against the record (a read transaction), so a collision
// never suppresses anybody.
//
// Threads: any thread. add() and remove() (admin API, feedback listener,
// unsubscribe endpoint) each write one synced transaction before they
// change the index; staged() entries (the planner's hard bounces) reach
// the disk with the commit of the bounce they come from. Lookups take a
// shared lock.
//
// Durability: when add() or remove() returns ok the change is on disk; a
// staged entry is on disk when the commit that carries its ControlWrite is.
// load() at start-up rebuilds the index from the records.
//
// Trust: addresses come from the network and the API: they are stored
// lower-cased (compared case-insensitively, as CONTRACT says), and a
// record read back that does not decode is skipped and counted, never a
// crash.
#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "queue/spool.h"

namespace ringmail::queue {

inline constexpr char kSuppressionPrefix[] = "suppress/";
// A tenant's list, or "*" for every tenant.
inline constexpr std::string_view kEveryTenant = "*";

// Where an entry came from (CONTRACT's "source").
enum class SuppressionSource : uint8_t { bounce, complaint, unsubscribe, admin };
std::string_view to_string(SuppressionSource source);
std::optional<SuppressionSource> parse_suppression_source(std::string_view text);

struct SuppressionEntry {
  std::string tenant;   // "*" or a tenant name
  std::string address;  // lower-cased
  std::string reason;   // free text, at most kMaxReason bytes
  SuppressionSource source = SuppressionSource::admin;
  std::string category;  // the bounce category's name, "" when none
  std::string campaign;  // "" when none
  int64_t created_unix_ms = 0;
  friend bool operator==(const SuppressionEntry&, const SuppressionEntry&) = default;
};
inline constexpr size_t kMaxSuppressionReason = 500;
// RFC 5321's path limit: 256 octets with the angle brackets.
inline constexpr size_t kMaxSuppressionAddress = 254;

// An address a list can hold: local@domain, both non-empty, at most
// kMaxSuppressionAddress octets, without blanks, control characters, angle
// brackets or a second '@' in the domain. (Not a full RFC 5321 check: it
// must take every address Ringmail accepted as a recipient.)
bool valid_suppression_address(std::string_view address);

// The control key of (tenant, address): "suppress/" tenant '\n' address,
// address lower-cased. nullopt when the pair cannot be one (empty, too long
// for a key, or a tenant with '\n').
std::optional<std::string> suppression_key(std::string_view tenant, std::string_view address);
// Record bytes (JSON, {"v":1,...}) and back; decode fails on anything but a
// version-1 record with every field of its type.
std::string encode_suppression(const SuppressionEntry& entry);
std::optional<SuppressionEntry> decode_suppression(std::string_view key, std::string_view bytes);

class SuppressionStore {
 public:
  explicit SuppressionStore(Spool& spool) : spool_(spool) {}

  // Rebuilds the index from the spool's records (start-up, before the
  // planner starts). Returns the entries read; *corrupt counts skipped ones.
  size_t load(uint64_t* corrupt = nullptr);

  // Writes the entries in one synced transaction, then indexes them; an
  // existing entry for the same (tenant, address) is replaced (addresses are
  // lower-cased, reasons cut to kMaxSuppressionReason). *added counts
  // entries that were not there before. failed, writing nothing, when a
  // pair cannot be a key.
  StoreOutcome add(std::span<const SuppressionEntry> entries, size_t* added);
  // *found false (and ok) when there was no such entry.
  StoreOutcome remove(std::string_view tenant, std::string_view address, bool* found);

  // For the planner: indexes `entry` now and returns the ControlWrite that
  // makes it durable with the commit it goes with (nullopt for a pair that
  // cannot be a key).
  std::optional<ControlWrite> stage(const SuppressionEntry& entry);

  // The entry that suppresses `address` for `tenant`: the tenant's own,
  // else the "*" one. No I/O when the index has neither (the common case).
  std::optional<SuppressionEntry> find(std::string_view tenant, std::string_view address) const;

  // Entries of `tenant` ("" = every list), optionally only `address`, in
  // key order, at most `limit`.
  std::vector<SuppressionEntry> list(std::string_view tenant, std::string_view address,
                                     size_t limit) const;
  size_t size() const;

 private:
  static uint64_t hash_of(std::string_view key);
  // The index has the key's hash and the record is there.
  bool contains_key(const std::string& key) const;

  Spool& spool_;
  mutable std::shared_mutex mutex_;
  std::unordered_set<uint64_t> index_;
};

}  // namespace ringmail::queue
