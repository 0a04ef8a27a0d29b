// queue/spool_message.h — the message record that flows from an inbound
// session through the spool writer into LMDB, and later to delivery.
//
// Owns: the in-memory shape of a spooled message (envelope, metadata,
// per-recipient state, content) and message id generation. Plain values:
// any thread may create or read one; ownership moves with unique_ptr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ringmail::queue {

// Printable, unique across restarts and shards: 20 lowercase hex digits
// (milliseconds since the epoch, process nonce, counter), so ids sort by
// reception time.
struct MessageId {
  std::string value;
  friend bool operator==(const MessageId&, const MessageId&) = default;
};

// Thread-safe; lock-free.
MessageId make_message_id();

// Persisted as one byte: append new states, never renumber.
enum class RecipientState : uint8_t {
  queued = 0,
  in_flight = 1,
  deferred = 2,
  delivered = 3,
  bounced = 4,
  expired = 5,
  suppressed = 6,
  cancelled = 7,
  // Held by a milter's quarantine: kept in the spool, never scheduled,
  // until an operator releases it.
  quarantined = 8,
};
const char* to_string(RecipientState state);

// The reply that gave a recipient its state, for the message status route:
// code 0 = none yet (or a state the daemon decided without a reply).
struct RecipientResponse {
  int code = 0;
  std::string enhanced;
  std::string text;
  friend bool operator==(const RecipientResponse&, const RecipientResponse&) = default;
};

struct Recipient {
  std::string address;     // forward-path without brackets
  std::string domain;      // lower-cased domain part (site key until MX routing)
  std::string dsn_notify;  // RFC 3461 NOTIFY= value as given, "" if absent
  std::string dsn_orcpt;   // RFC 3461 ORCPT= value as given, "" if absent
  RecipientState state = RecipientState::queued;
  uint32_t attempts = 0;
  int64_t next_attempt_unix_ms = 0;  // when the scheduler may try it
  RecipientResponse last_response;
  // The bounce category (mail/bounce_category.h name) behind its current
  // state when bounced or expired, "" otherwise.
  std::string category;
};

struct Envelope {
  std::string sender;  // reverse-path without brackets; "" is the null sender
  std::vector<Recipient> recipients;
  std::string body_type = "7BIT";  // 7BIT | 8BITMIME | BINARYMIME
  bool smtputf8 = false;
  std::string dsn_ret;    // RFC 3461 RET= (FULL | HDRS) or ""
  std::string dsn_envid;  // RFC 3461 ENVID= or ""
};

// The listener name of the DSNs the daemon itself makes (queue/dsn.h).
inline constexpr char kDsnListener[] = "dsn";

struct MessageMetadata {
  std::string tenant;    // AUTH user, or the relay_networks entry a relay client matched
  std::string campaign;  // from the campaign header, "" if none
  std::string listener;  // listener name
  int64_t received_unix_ms = 0;
  std::string client_ip;
  std::string helo;
  std::string tls;    // e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", "" if clear text
  uint64_t size = 0;  // content size in octets
  // Not signed at reception: DKIM signs each recipient's copy at delivery,
  // with the per-recipient List-Unsubscribe fields (policy/list_unsubscribe.h).
  bool sign_at_delivery = false;
};

// How a message comes to a spool commit; not stored. A dead letter's retry
// (queue/spool_retention.h) is the same message again: the commit takes its
// dead-letter record away and counts its recipients as queued again, not as
// received.
enum class MessageOrigin : uint8_t { received, dead_letter_retry };

struct SpoolMessage {
  MessageId id;
  MessageOrigin origin = MessageOrigin::received;
  Envelope envelope;
  MessageMetadata meta;
  std::string content;  // the RFC 5322 message as it will be delivered (CRLF lines)
};

}  // namespace ringmail::queue
