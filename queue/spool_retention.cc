#include "queue/spool_retention.h"

#include <cstdio>
#include <limits>

#include "queue/record_bytes.h"

namespace ringmail::queue {
namespace {

constexpr uint8_t kStatusVersion = 1;
constexpr uint8_t kDeadLetterVersion = 1;
constexpr size_t kHexDigits = 16;

std::string hex16(int64_t value) {
  char buf[kHexDigits + 1];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(value < 0 ? 0 : static_cast<uint64_t>(value)));
  return std::string(buf, kHexDigits);
}

std::optional<int64_t> parse_hex16(std::string_view text) {
  if (text.size() != kHexDigits) return std::nullopt;
  uint64_t value = 0;
  for (const char ch : text) {
    int digit = 0;
    if (ch >= '0' && ch <= '9') {
      digit = ch - '0';
    } else if (ch >= 'a' && ch <= 'f') {
      digit = ch - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return static_cast<int64_t>(value);
}

std::string record_key(RetainedKind kind, std::string_view id) {
  return kind == RetainedKind::status ? status_key(id) : dead_key(id);
}

// The expiry time a stored record names; nullopt when it does not decode.
std::optional<int64_t> stored_expiry(RetainedKind kind, std::string_view value) {
  if (kind == RetainedKind::status) {
    StatusRecord record;
    if (!decode_status(value, &record)) return std::nullopt;
    return record.expires_unix_ms;
  }
  DeadLetter dead;
  if (!decode_dead_letter(value, &dead)) return std::nullopt;
  return dead.expires_unix_ms;
}

// Deletes a record (a dead letter with its body) and the expiry entry its
// value names.
StoreOutcome remove_record(ControlTableAccess& table, RetainedKind kind, std::string_view id,
                           bool* found) {
  const std::string key = record_key(kind, id);
  std::optional<std::string> old;
  if (StoreOutcome got = table.get(key, &old); !got.ok()) return got;
  if (found) *found = old.has_value();
  if (!old) return {StoreStatus::ok, {}};
  if (std::optional<int64_t> expires = stored_expiry(kind, *old)) {
    if (StoreOutcome r = table.remove(expiry_key(*expires, kind, id)); !r.ok()) return r;
  }
  if (kind == RetainedKind::dead) {
    if (StoreOutcome r = table.remove(dead_body_key(id)); !r.ok()) return r;
  }
  return table.remove(key);
}

StoreOutcome put_record(ControlTableAccess& table, RetainedKind kind, std::string_view id,
                        std::string_view value, int64_t expires) {
  // An earlier record of the id (a message retried and finished again)
  // goes with its expiry entry, which would otherwise cut the new one short.
  if (StoreOutcome r = remove_record(table, kind, id, nullptr); !r.ok()) return r;
  if (StoreOutcome r = table.put(record_key(kind, id), value); !r.ok()) return r;
  return table.put(expiry_key(expires, kind, id), "");
}

int64_t saturating_add(int64_t a, int64_t b) {
  if (b > 0 && a > std::numeric_limits<int64_t>::max() - b)
    return std::numeric_limits<int64_t>::max();
  return a + b;
}

}  // namespace

std::string status_key(std::string_view id) { return std::string(kStatusPrefix).append(id); }
std::string dead_key(std::string_view id) { return std::string(kDeadPrefix).append(id); }
std::string dead_body_key(std::string_view id) { return std::string(kDeadBodyPrefix).append(id); }

std::string expiry_key(int64_t expires_unix_ms, RetainedKind kind, std::string_view id) {
  std::string key(kExpiryPrefix);
  key += hex16(expires_unix_ms);
  key.push_back('/');
  key.push_back(static_cast<char>(kind));
  key.push_back('/');
  key.append(id);
  return key;
}

std::optional<ExpiryKey> parse_expiry_key(std::string_view key) {
  const std::string_view prefix = kExpiryPrefix;
  if (!key.starts_with(prefix)) return std::nullopt;
  key.remove_prefix(prefix.size());
  if (key.size() < kHexDigits + 4 || key[kHexDigits] != '/' || key[kHexDigits + 2] != '/')
    return std::nullopt;
  const std::optional<int64_t> expires = parse_hex16(key.substr(0, kHexDigits));
  if (!expires) return std::nullopt;
  const char kind = key[kHexDigits + 1];
  if (kind != static_cast<char>(RetainedKind::status) &&
      kind != static_cast<char>(RetainedKind::dead))
    return std::nullopt;
  return ExpiryKey{*expires, static_cast<RetainedKind>(kind), key.substr(kHexDigits + 3)};
}

std::string expiry_key_bound(int64_t now_ms) {
  return std::string(kExpiryPrefix) + hex16(saturating_add(now_ms, 1));
}

StatusRecord status_record_of(const SpoolMessage& m, int64_t finished_unix_ms,
                              int64_t expires_unix_ms) {
  StatusRecord record;
  record.id = m.id.value;
  record.sender = m.envelope.sender;
  record.tenant = m.meta.tenant;
  record.campaign = m.meta.campaign;
  record.received_unix_ms = m.meta.received_unix_ms;
  record.size = m.meta.size;
  record.finished_unix_ms = finished_unix_ms;
  record.expires_unix_ms = expires_unix_ms;
  record.recipients.reserve(m.envelope.recipients.size());
  for (const Recipient& r : m.envelope.recipients) {
    record.recipients.push_back(
        StatusRecipient{r.address, r.state, r.attempts, r.last_response, r.category});
  }
  return record;
}

void encode_status(const StatusRecord& s, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kStatusVersion);
  put_str(out, s.id);
  put_str(out, s.sender);
  put_str(out, s.tenant);
  put_str(out, s.campaign);
  put_u64le(out, static_cast<uint64_t>(s.received_unix_ms));
  put_u64le(out, s.size);
  put_u64le(out, static_cast<uint64_t>(s.finished_unix_ms));
  put_u64le(out, static_cast<uint64_t>(s.expires_unix_ms));
  put_u32le(out, static_cast<uint32_t>(s.recipients.size()));
  for (const StatusRecipient& r : s.recipients) {
    put_str(out, r.address);
    put_u8(out, static_cast<uint8_t>(r.state));
    put_u32le(out, r.attempts);
    put_u32le(out, static_cast<uint32_t>(r.response.code));
    put_str(out, r.response.enhanced);
    put_str(out, r.response.text);
    put_str(out, r.category);
  }
  append_crc(out, start);
}

DecodeResult decode_status(std::string_view bytes, StatusRecord* out) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "status", &payload, kStatusVersion); !opened)
    return opened;
  Reader r(payload);
  *out = StatusRecord{};
  r.str("id", &out->id);
  r.str("sender", &out->sender);
  r.str("tenant", &out->tenant);
  r.str("campaign", &out->campaign);
  out->received_unix_ms = static_cast<int64_t>(r.u64le("received_ms"));
  out->size = r.u64le("size");
  out->finished_unix_ms = static_cast<int64_t>(r.u64le("finished_ms"));
  out->expires_unix_ms = static_cast<int64_t>(r.u64le("expires_ms"));
  const uint32_t count = r.u32le("recipient_count");
  // Each recipient takes at least 25 bytes: the count cannot claim more.
  if (r.ok() && (count == 0 || count > kMaxRecipientsPerRecord || count > r.remaining() / 25))
    r.fail("implausible recipient count " + std::to_string(count));
  if (r.ok()) out->recipients.resize(count);
  for (uint32_t i = 0; r.ok() && i < count; ++i) {
    StatusRecipient& rcpt = out->recipients[i];
    r.str("address", &rcpt.address);
    const uint8_t state = r.u8("state");
    if (r.ok() && !is_known_state(state))
      r.fail("unknown recipient state " + std::to_string(state));
    rcpt.state = static_cast<RecipientState>(state);
    rcpt.attempts = r.u32le("attempts");
    const uint32_t code = r.u32le("response_code");
    if (r.ok() && code > 999) r.fail("implausible reply code " + std::to_string(code));
    rcpt.response.code = static_cast<int>(code);
    r.str("response_enhanced", &rcpt.response.enhanced);
    r.str("response_text", &rcpt.response.text);
    r.str("category", &rcpt.category);
  }
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (!r.ok()) {
    out->recipients.clear();
    return DecodeResult::failure("status record: " + r.error());
  }
  return {};
}

void encode_dead_letter(std::string_view message_record, const std::vector<Recipient>& recipients,
                        int64_t finished_unix_ms, int64_t expires_unix_ms, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kDeadLetterVersion);
  put_u64le(out, static_cast<uint64_t>(finished_unix_ms));
  put_u64le(out, static_cast<uint64_t>(expires_unix_ms));
  put_str(out, message_record);
  put_u32le(out, static_cast<uint32_t>(recipients.size()));
  std::string record;
  for (const Recipient& r : recipients) {
    record.clear();
    encode_recipient_record(r, &record);
    put_str(out, record);
  }
  append_crc(out, start);
}

DecodeResult decode_dead_letter(std::string_view bytes, DeadLetter* out) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "dead letter", &payload, kDeadLetterVersion);
      !opened)
    return opened;
  Reader r(payload);
  *out = DeadLetter{};
  out->finished_unix_ms = static_cast<int64_t>(r.u64le("finished_ms"));
  out->expires_unix_ms = static_cast<int64_t>(r.u64le("expires_ms"));
  std::string message_record;
  r.str("message_record", &message_record);
  const uint32_t count = r.u32le("recipient_count");
  if (!r.ok()) return DecodeResult::failure("dead letter: " + r.error());
  MessageRecordInfo info;
  if (DecodeResult m = decode_message_record(message_record, &out->message, &info); !m)
    return DecodeResult::failure("dead letter: " + m.error);
  if (count != info.recipient_count)
    return DecodeResult::failure("dead letter: " + std::to_string(count) +
                                 " recipient records for a message of " +
                                 std::to_string(info.recipient_count));
  // Each recipient record takes at least 4 + 14 bytes.
  if (count > r.remaining() / 18)
    return DecodeResult::failure("dead letter: implausible recipient count " +
                                 std::to_string(count));
  out->body_size = info.body_size;
  out->message.envelope.recipients.resize(count);
  std::string record;
  for (uint32_t i = 0; i < count; ++i) {
    r.str("recipient_record", &record);
    if (!r.ok()) break;
    if (DecodeResult d = decode_recipient_record(record, &out->message.envelope.recipients[i]); !d)
      return DecodeResult::failure("dead letter: recipient " + std::to_string(i) + ": " + d.error);
  }
  if (r.ok() && r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " trailing bytes");
  if (!r.ok()) return DecodeResult::failure("dead letter: " + r.error());
  return {};
}

bool is_failed(RecipientState state) {
  return state == RecipientState::bounced || state == RecipientState::expired;
}

bool has_failed_recipient(const SpoolMessage& message) {
  for (const Recipient& r : message.envelope.recipients) {
    if (is_failed(r.state)) return true;
  }
  return false;
}

SpoolMessage retry_message(const DeadLetter& dead, std::string content, int64_t now_unix_ms,
                           size_t* requeued) {
  SpoolMessage m = dead.message;
  m.origin = MessageOrigin::dead_letter_retry;
  m.content = std::move(content);
  m.meta.received_unix_ms = now_unix_ms;
  size_t n = 0;
  for (Recipient& r : m.envelope.recipients) {
    if (!is_failed(r.state)) continue;
    r.state = RecipientState::queued;
    r.next_attempt_unix_ms = now_unix_ms;
    r.category.clear();
    ++n;
  }
  if (requeued) *requeued = n;
  return m;
}

StoreOutcome retain_finished(ControlTableAccess& table, const SpoolMessage& message,
                             std::string_view message_record,
                             const std::function<std::optional<std::string>()>& body_value,
                             const RetentionPolicy& policy, int64_t now_unix_ms) {
  const std::string& id = message.id.value;
  if (id.empty() || id.size() > kMaxRetainedIdSize) return {StoreStatus::ok, {}};
  if (policy.keep_status_ms > 0) {
    const int64_t expires = saturating_add(now_unix_ms, policy.keep_status_ms);
    std::string value;
    encode_status(status_record_of(message, now_unix_ms, expires), &value);
    if (StoreOutcome r = put_record(table, RetainedKind::status, id, value, expires); !r.ok())
      return r;
  }
  if (policy.keep_failed_ms > 0 && has_failed_recipient(message)) {
    std::optional<std::string> body = body_value();
    if (!body) return {StoreStatus::ok, {}};  // nothing to retry with: the status record stays
    const int64_t expires = saturating_add(now_unix_ms, policy.keep_failed_ms);
    std::string value;
    encode_dead_letter(message_record, message.envelope.recipients, now_unix_ms, expires, &value);
    if (StoreOutcome r = put_record(table, RetainedKind::dead, id, value, expires); !r.ok())
      return r;
    if (StoreOutcome r = table.put(dead_body_key(id), *body); !r.ok()) return r;
  }
  return {StoreStatus::ok, {}};
}

StoreOutcome take_back_dead_letter(ControlTableAccess& table, const SpoolMessage& retry,
                                   StatsBatch* stats) {
  const std::string& id = retry.id.value;
  std::optional<std::string> value;
  if (StoreOutcome got = table.get(dead_key(id), &value); !got.ok()) return got;
  DeadLetter dead;
  if (!value || !decode_dead_letter(*value, &dead)) {
    return {StoreStatus::failed,
            "no dead letter " + id + " to retry (dropped or retried meanwhile)"};
  }
  const std::vector<Recipient>& before = dead.message.envelope.recipients;
  const std::vector<Recipient>& after = retry.envelope.recipients;
  if (stats) {
    for (size_t i = 0; i < before.size() && i < after.size(); ++i) {
      stats->count_transition(retry.meta, before[i].state, after[i].state, std::nullopt);
    }
  }
  if (StoreOutcome r = remove_record(table, RetainedKind::dead, id, nullptr); !r.ok()) return r;
  // Back in the spool, the message answers for itself until it finishes again.
  return remove_record(table, RetainedKind::status, id, nullptr);
}

StoreOutcome drop_dead_letter(ControlTableAccess& table, std::string_view id, bool* found) {
  return remove_record(table, RetainedKind::dead, id, found);
}

StoreOutcome expire_retained(ControlTableAccess& table, int64_t now_unix_ms, size_t limit,
                             size_t* removed) {
  *removed = 0;
  if (limit == 0) return {StoreStatus::ok, {}};
  std::vector<std::string> keys;
  if (StoreOutcome r = table.keys(kExpiryPrefix, expiry_key_bound(now_unix_ms), limit, &keys);
      !r.ok())
    return r;
  for (const std::string& key : keys) {
    const std::optional<ExpiryKey> parsed = parse_expiry_key(key);
    if (parsed) {
      const std::string target = record_key(parsed->kind, parsed->id);
      std::optional<std::string> value;
      if (StoreOutcome r = table.get(target, &value); !r.ok()) return r;
      // A record rewritten since names a later expiry of its own: it stays.
      const std::optional<int64_t> expires =
          value ? stored_expiry(parsed->kind, *value) : std::nullopt;
      if (value && (!expires || *expires <= now_unix_ms)) {
        if (StoreOutcome r = table.remove(target); !r.ok()) return r;
        if (parsed->kind == RetainedKind::dead) {
          if (StoreOutcome r = table.remove(dead_body_key(parsed->id)); !r.ok()) return r;
        }
        ++*removed;
      }
    }
    if (StoreOutcome r = table.remove(key); !r.ok()) return r;
  }
  return {StoreStatus::ok, {}};
}

}  // namespace ringmail::queue
