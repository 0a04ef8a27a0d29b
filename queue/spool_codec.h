// queue/spool_codec.h — the on-disk encoding of spool records and keys.
//
// Owns: the byte layout of every LMDB key and value the spool writes. Pure
// functions over bytes; any thread.
//
// Layout (spool format 1). Every value starts with a record-version byte; strings
// are a u32 little-endian length then the bytes; integers are fixed-width
// little-endian; message and recipient records end with a CRC-32 of what
// precedes it, so a flipped bit or a torn record is caught on read.
//   message   : ver id sender body_type smtputf8 dsn_ret dsn_envid
//               recipient_count tenant campaign listener received_ms
//               client_ip helo tls size body_size crc
//   recipient : ver(2) address domain dsn_notify dsn_orcpt state attempts
//               next_attempt_ms response_code(u32) response_enhanced
//               response_text category crc
//               (the reply behind its state, code 0 = none, and the bounce
//               category name of a bounced or expired recipient, "" if none)
//   recipient version 1, still read: ver(1) address domain dsn_notify
//               dsn_orcpt state attempts next_attempt_ms crc (no response)
//   Record versions move one record kind at a time, without a new spool
//   format: a version-1 recipient is read as one without a response and
//   written back as version 2 at its next update, so an older spool opens
//   without a conversion pass. The other way is not safe: a build that
//   knows only version 1 reports version-2 recipients as corrupt, so going
//   back to such a build needs an empty spool.
//   body      : ver content
// Keys (their layout is fixed by the spool format in the "meta" database):
//   recipients   : id '\0' u32be(index)
//   idx_next     : u64be(next_attempt_ms, negatives as 0) id '\0' u32be(index)
//   idx_site     : site '\0' id '\0' u32be(index)
//   idx_campaign : campaign '\0' id '\0' u32be(index) — no longer written:
//                  nothing read it, and keeping it up cost campaign mail
//                  about a tenth of the relay rate; LmdbSpool empties it
//                  at open (a spool from an earlier build may hold entries)
//
// SECURITY: decoders take bytes from disk as untrusted: every length is
// bounds-checked against what remains, unknown versions and enum values are
// errors, and any truncation or trailing garbage is an error, never a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "queue/spool_message.h"

namespace ringmail::queue {

// Message records and bodies.
inline constexpr uint8_t kRecordVersion = 1;
// The optional last octet of a message record: MessageMetadata flags.
inline constexpr uint8_t kMessageFlagSignAtDelivery = 1;
// Recipient records (version 1 is still decoded).
inline constexpr uint8_t kRecipientRecordVersion = 2;
// Readers size vectors by a record's recipient count; bound what they trust.
inline constexpr uint32_t kMaxRecipientsPerRecord = 1u << 20;

struct DecodeResult {
  bool ok = true;
  std::string error;  // what is wrong, for logs
  explicit operator bool() const { return ok; }
  static DecodeResult failure(std::string why) { return {false, std::move(why)}; }
};

// What a message record says about the records stored beside it.
struct MessageRecordInfo {
  uint32_t recipient_count = 0;
  uint64_t body_size = 0;  // octets of content in the body record
};

// Message record: id, envelope (without recipients), metadata, recipient
// count and content length. Appends to *out.
void encode_message_record(const SpoolMessage& message, std::string* out);
// Fills id, envelope (recipients left empty) and meta of *out, and *info.
// *out is unspecified on failure.
DecodeResult decode_message_record(std::string_view bytes, SpoolMessage* out,
                                   MessageRecordInfo* info);

void encode_recipient_record(const Recipient& recipient, std::string* out);
DecodeResult decode_recipient_record(std::string_view bytes, Recipient* out);

// Body value: version byte then the content. body_value_size() is what
// encode writes, so callers can reserve space in place (MDB_RESERVE).
inline size_t body_value_size(std::string_view content) { return content.size() + 1; }
void encode_body_into(std::string_view content, char* out);
DecodeResult decode_body(std::string_view bytes, std::string* content);

// States the scheduler still has to act on; only these are indexed.
bool is_active(RecipientState state);
// Done with: delivered, bounced, expired, suppressed or cancelled (neither
// active nor held by a milter's quarantine).
bool is_final(RecipientState state);
// True when byte is a RecipientState this build knows.
bool is_known_state(uint8_t byte);

std::string recipient_key(std::string_view id, uint32_t index);
std::string next_attempt_key(int64_t next_attempt_ms, std::string_view id, uint32_t index);
std::string site_key(std::string_view site, std::string_view id, uint32_t index);
std::string campaign_key(std::string_view campaign, std::string_view id, uint32_t index);
// Prefix shared by all recipient keys of one message.
std::string recipient_key_prefix(std::string_view id);

struct RecipientKey {
  std::string_view id;
  uint32_t index = 0;
};
// Parses a recipients key; nullopt when malformed.
std::optional<RecipientKey> parse_recipient_key(std::string_view key);

struct NextAttemptKey {
  int64_t next_attempt_ms = 0;
  std::string_view id;
  uint32_t index = 0;
};
std::optional<NextAttemptKey> parse_next_attempt_key(std::string_view key);

// CRC-32 (IEEE 802.3, reflected), as in zlib's crc32().
uint32_t crc32(std::string_view bytes, uint32_t crc = 0);

}  // namespace ringmail::queue
