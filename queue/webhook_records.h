// queue/webhook_records.h — the webhooks' backlog as the spool's control
// table keeps it (mta/webhook_dispatcher.h): each delivery-log record a
// webhook still has to POST, under a key that sorts in sending order, and
// the sequence that gives every record its stable event_id.
//
// Owns: the key syntax, the value formats and the event id. Pure
// functions; any thread. The spool writer commits these writes with the
// results the records describe (queue/record_journal.h); nothing here
// touches LMDB.
//
// Keys: "webhook/" NAME "/" SEQ, SEQ 16 lower-case hex digits (big-endian,
// so key order is sequence order; NAME 1-64 of [A-Za-z0-9._-], never a
// '/'); "webhook-sequence" holds the next sequence number (outside the
// "webhook/" prefix, so that no webhook name can collide with it).
// Record value (version 1): the version byte, the record's JSON text (one
// object with string "type" and "event_id"), a CRC-32 trailer as in the
// message records.
// Sequence value (version 1, 21 bytes): version, epoch (u64le: a random
// number drawn when the first sequence was written, so that a new spool
// never repeats an old spool's ids), next sequence (u64le), CRC-32.
// event_id: EPOCH as 16 hex digits, '-', the sequence in decimal
// ("5f0c3a9e1b2d4c68-42"): unique per record and spool, the same on every
// retry and after a restart.
//
// SECURITY: the decoders take bytes from disk as untrusted (length,
// version, CRC, JSON shape checked); a value that does not decode is
// refused (the dispatcher drops that key and logs it), never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ringmail::queue {

inline constexpr char kWebhookPrefix[] = "webhook/";
inline constexpr char kWebhookSequenceKey[] = "webhook-sequence";

// "webhook/NAME/": every key of one webhook's backlog starts with it.
std::string webhook_backlog_prefix(std::string_view webhook);
std::string webhook_backlog_key(std::string_view webhook, uint64_t sequence);
struct WebhookBacklogKey {
  std::string webhook;
  uint64_t sequence = 0;
  bool operator==(const WebhookBacklogKey&) const = default;
};
// nullopt for anything webhook_backlog_key() could not have made.
std::optional<WebhookBacklogKey> parse_webhook_backlog_key(std::string_view key);

std::string encode_webhook_record(std::string_view json);
// The record's JSON text; nullopt (and *error says why, when given) for
// anything but a value encode_webhook_record() could have written for one
// JSON object with string "type" and "event_id" members.
std::optional<std::string> decode_webhook_record(std::string_view bytes,
                                                 std::string* error = nullptr);

struct WebhookSequence {
  uint64_t epoch = 0;
  uint64_t next = 1;  // the sequence number the next record gets
  bool operator==(const WebhookSequence&) const = default;
};
std::string encode_webhook_sequence(const WebhookSequence& sequence);
std::optional<WebhookSequence> decode_webhook_sequence(std::string_view bytes,
                                                       std::string* error = nullptr);

std::string webhook_event_id(uint64_t epoch, uint64_t sequence);

// `object` (the JSON text of one non-empty or empty object, as
// nlohmann::json::dump() writes it) with "event_id": ID added as its last
// member; nullopt when `object` does not end like an object. The id must
// need no JSON escaping (webhook_event_id() makes such ids).
std::optional<std::string> with_event_id(std::string_view object, std::string_view event_id);

// The body of one POST: the records' JSON texts as one JSON array.
std::string webhook_batch_body(std::span<const std::string_view> records);

}  // namespace ringmail::queue
