// queue/warmup_records.h — the warm-up state of each key (a source, or a
// source and provider; policy/warmup.h) as the spool's control table keeps
// it, so that a restart or kill -9 keeps day and window counts.
//
// Owns: the key syntax and the byte layout. Pure functions; any thread.
// The spool writes these values in its group commits (the caller takes
// them from WarmupTracker::take_changes()); nothing here touches LMDB.
//
// Key: "warmup/" PROVIDER "/" SOURCE, PROVIDER "*" for all sites (provider
// names never hold a '/', source names may).
// Value (version 1; integers little-endian, days as i32 UTC days since
// 1970-01-01, a CRC-32 trailer as in the message records), 50 bytes:
//   ver flags first_day(i32) open_day(i32) advanced(u32) last_sent_day(i32)
//   plan_started(i32) window_start_ms(i64) window_ms(i64)
//   sent_in_window(u64) crc
//   flags: 1 first_day set, 2 last_sent_day set, 4 plan_started set,
//          8 backoff_on_open_day; an absent day is written as 0.
//
// SECURITY: the decoder takes bytes from disk as untrusted (length,
// version, CRC, flags and field consistency checked); a value that does
// not decode is refused (the key then starts fresh), never trusted.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "policy/warmup.h"

namespace ringmail::queue {

inline constexpr char kWarmupPrefix[] = "warmup/";

std::string warmup_state_key(const policy::WarmupKey& key);
// nullopt when `key` is not a warm-up key.
std::optional<policy::WarmupKey> parse_warmup_state_key(std::string_view key);

std::string encode_warmup_state(const policy::WarmupState& state);
// nullopt (and *error says why, when given) for anything but a value
// encode_warmup_state() could have written.
std::optional<policy::WarmupState> decode_warmup_state(std::string_view bytes,
                                                       std::string* error = nullptr);

}  // namespace ringmail::queue
