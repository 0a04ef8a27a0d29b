// queue/backoff_records.h — a backoff override in force on one ready queue
// (policy/backoff_evaluator.h) as the spool's control table keeps it, so
// that a provider's "slow down" (a 2 h Yahoo suspension, a Gmail rate cut)
// survives a restart or kill -9 instead of being hammered again at once.
//
// Owns: the key syntax and the value format. Pure functions; any thread.
// The planner hands the writes to the spool writer (Spool::commit's
// control writes); nothing here touches LMDB.
//
// Key: "backoff/" QUEUE, QUEUE the planner's ready-queue text.
// Value (version 1): a JSON object {"v": 1, "source", "site", "kind":
// "suspend"|"rate_factor", "since", "until" (Unix ms), "factor",
// "rule_index", "shipped", "rule", "reply", and, for a rate cut of a queue
// without a configured message_rate, "base_count" and "base_per_ms": the
// rate that was cut (what it sent in the minute before)}.
//
// SECURITY: the decoder takes bytes from disk as untrusted: types, ranges
// (until after since, 0 < factor <= 1, bounded texts) are checked, and a
// value that does not decode is refused (the override is then dropped),
// never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/backoff_evaluator.h"

namespace ringmail::queue {

inline constexpr char kBackoffPrefix[] = "backoff/";

struct BackoffRecord {
  std::string source;  // the egress source's name
  std::string site;    // ReadyQueueKey::site
  policy::BackoffOverride override_in_force;
  // A rate cut of a queue without a configured rate: the rate it cut.
  uint64_t base_count = 0;
  int64_t base_per_ms = 0;
};

std::string backoff_record_key(std::string_view queue);
// The queue of a backoff key; nullopt for any other key.
std::optional<std::string> parse_backoff_record_key(std::string_view key);

std::string encode_backoff_record(const BackoffRecord& record);
// nullopt (and *error says why, when given) for anything but a value
// encode_backoff_record() could have written.
std::optional<BackoffRecord> decode_backoff_record(std::string_view bytes,
                                                   std::string* error = nullptr);

}  // namespace ringmail::queue
