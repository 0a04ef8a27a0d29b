#include "queue/spool_codec.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "queue/record_bytes.h"

namespace ringmail::queue {
namespace {

void append_id_index(std::string* out, std::string_view id, uint32_t index) {
  out->append(id);
  out->push_back('\0');
  put_u32be(out, index);
}

}  // namespace

uint32_t crc32(std::string_view bytes, uint32_t crc) {
  // zlib's, which is the same function computed several bytes at a time.
  uLong c = crc;
  while (!bytes.empty()) {
    const auto n = static_cast<uInt>(std::min<size_t>(bytes.size(), 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(bytes.data()), n);
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(c);
}

bool is_known_state(uint8_t byte) {
  return byte <= static_cast<uint8_t>(RecipientState::quarantined);
}

bool is_final(RecipientState state) {
  return !is_active(state) && state != RecipientState::quarantined;
}

bool is_active(RecipientState state) {
  switch (state) {
    case RecipientState::queued:
    case RecipientState::in_flight:
    case RecipientState::deferred:
      return true;
    case RecipientState::delivered:
    case RecipientState::bounced:
    case RecipientState::expired:
    case RecipientState::suppressed:
    case RecipientState::cancelled:
    case RecipientState::quarantined:
      return false;
  }
  return false;
}

void encode_message_record(const SpoolMessage& m, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kRecordVersion);
  put_str(out, m.id.value);
  put_str(out, m.envelope.sender);
  put_str(out, m.envelope.body_type);
  put_u8(out, m.envelope.smtputf8 ? 1 : 0);
  put_str(out, m.envelope.dsn_ret);
  put_str(out, m.envelope.dsn_envid);
  put_u32le(out, static_cast<uint32_t>(m.envelope.recipients.size()));
  put_str(out, m.meta.tenant);
  put_str(out, m.meta.campaign);
  put_str(out, m.meta.listener);
  put_u64le(out, static_cast<uint64_t>(m.meta.received_unix_ms));
  put_str(out, m.meta.client_ip);
  put_str(out, m.meta.helo);
  put_str(out, m.meta.tls);
  put_u64le(out, m.meta.size);
  put_u64le(out, m.content.size());
  // A trailing flags octet, only when a flag is set: a record without
  // flags is byte for byte what builds before it wrote (and read).
  if (m.meta.sign_at_delivery) put_u8(out, kMessageFlagSignAtDelivery);
  append_crc(out, start);
}

DecodeResult decode_message_record(std::string_view bytes, SpoolMessage* out,
                                   MessageRecordInfo* info) {
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "message", &payload); !opened) return opened;
  Reader r(payload);
  r.str("id", &out->id.value);
  r.str("sender", &out->envelope.sender);
  r.str("body_type", &out->envelope.body_type);
  out->envelope.smtputf8 = r.flag("smtputf8");
  r.str("dsn_ret", &out->envelope.dsn_ret);
  r.str("dsn_envid", &out->envelope.dsn_envid);
  info->recipient_count = r.u32le("recipient_count");
  if (r.ok() && (info->recipient_count == 0 || info->recipient_count > kMaxRecipientsPerRecord)) {
    r.fail("implausible recipient count " + std::to_string(info->recipient_count));
  }
  r.str("tenant", &out->meta.tenant);
  r.str("campaign", &out->meta.campaign);
  r.str("listener", &out->meta.listener);
  out->meta.received_unix_ms = static_cast<int64_t>(r.u64le("received_ms"));
  r.str("client_ip", &out->meta.client_ip);
  r.str("helo", &out->meta.helo);
  r.str("tls", &out->meta.tls);
  out->meta.size = r.u64le("size");
  info->body_size = r.u64le("body_size");
  out->meta.sign_at_delivery = false;
  if (r.ok() && r.remaining() == 1) {
    const uint8_t flags = r.u8("flags");
    if (flags == 0 || (flags & ~kMessageFlagSignAtDelivery) != 0) {
      r.fail("unknown message flags " + std::to_string(flags));
    }
    out->meta.sign_at_delivery = (flags & kMessageFlagSignAtDelivery) != 0;
  }
  if (r.ok() && r.remaining() != 0) {
    r.fail(std::to_string(r.remaining()) + " trailing bytes");
  }
  if (!r.ok()) return DecodeResult::failure("message record: " + r.error());
  out->envelope.recipients.clear();
  return {};
}

void encode_recipient_record(const Recipient& rcpt, std::string* out) {
  const size_t start = out->size();
  put_u8(out, kRecipientRecordVersion);
  put_str(out, rcpt.address);
  put_str(out, rcpt.domain);
  put_str(out, rcpt.dsn_notify);
  put_str(out, rcpt.dsn_orcpt);
  put_u8(out, static_cast<uint8_t>(rcpt.state));
  put_u32le(out, rcpt.attempts);
  put_u64le(out, static_cast<uint64_t>(rcpt.next_attempt_unix_ms));
  put_u32le(out, static_cast<uint32_t>(rcpt.last_response.code));
  put_str(out, rcpt.last_response.enhanced);
  put_str(out, rcpt.last_response.text);
  put_str(out, rcpt.category);
  append_crc(out, start);
}

DecodeResult decode_recipient_record(std::string_view bytes, Recipient* out) {
  // Version 1 (before the last response was kept) is still read: a spool
  // written by an older build opens without a conversion pass, and each of
  // its records becomes version 2 when it is next written.
  const uint8_t version = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  const uint8_t wanted = version == 1 ? 1 : kRecipientRecordVersion;
  std::string_view payload;
  if (auto opened = open_checked_record(bytes, "recipient", &payload, wanted); !opened)
    return opened;
  Reader r(payload);
  r.str("address", &out->address);
  r.str("domain", &out->domain);
  r.str("dsn_notify", &out->dsn_notify);
  r.str("dsn_orcpt", &out->dsn_orcpt);
  const uint8_t state = r.u8("state");
  if (r.ok() && !is_known_state(state)) r.fail("unknown recipient state " + std::to_string(state));
  out->state = static_cast<RecipientState>(state);
  out->attempts = r.u32le("attempts");
  out->next_attempt_unix_ms = static_cast<int64_t>(r.u64le("next_attempt_ms"));
  out->last_response = RecipientResponse{};
  out->category.clear();
  if (version >= 2) {
    const uint32_t code = r.u32le("response_code");
    if (r.ok() && code > 999) r.fail("implausible reply code " + std::to_string(code));
    out->last_response.code = static_cast<int>(code);
    r.str("response_enhanced", &out->last_response.enhanced);
    r.str("response_text", &out->last_response.text);
    r.str("category", &out->category);
  }
  if (r.ok() && r.remaining() != 0) {
    r.fail(std::to_string(r.remaining()) + " trailing bytes");
  }
  if (!r.ok()) return DecodeResult::failure("recipient record: " + r.error());
  return {};
}

void encode_body_into(std::string_view content, char* out) {
  out[0] = static_cast<char>(kRecordVersion);
  if (!content.empty()) std::memcpy(out + 1, content.data(), content.size());
}

DecodeResult decode_body(std::string_view bytes, std::string* content) {
  if (bytes.empty()) return DecodeResult::failure("body record empty");
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version != kRecordVersion) {
    return DecodeResult::failure("body record has unknown version " + std::to_string(version));
  }
  content->assign(bytes.substr(1));
  return {};
}

std::string recipient_key_prefix(std::string_view id) {
  std::string key(id);
  key.push_back('\0');
  return key;
}

std::string recipient_key(std::string_view id, uint32_t index) {
  std::string key;
  key.reserve(id.size() + 5);
  append_id_index(&key, id, index);
  return key;
}

std::string next_attempt_key(int64_t next_attempt_ms, std::string_view id, uint32_t index) {
  std::string key;
  key.reserve(8 + id.size() + 5);
  put_u64be(&key, next_attempt_ms < 0 ? 0 : static_cast<uint64_t>(next_attempt_ms));
  append_id_index(&key, id, index);
  return key;
}

std::string site_key(std::string_view site, std::string_view id, uint32_t index) {
  std::string key;
  key.reserve(site.size() + 1 + id.size() + 5);
  key.append(site);
  key.push_back('\0');
  append_id_index(&key, id, index);
  return key;
}

std::string campaign_key(std::string_view campaign, std::string_view id, uint32_t index) {
  return site_key(campaign, id, index);
}

std::optional<RecipientKey> parse_recipient_key(std::string_view key) {
  if (key.size() < 6) return std::nullopt;
  const size_t sep = key.size() - 5;
  if (key[sep] != '\0') return std::nullopt;
  RecipientKey parsed;
  parsed.id = key.substr(0, sep);
  if (parsed.id.find('\0') != std::string_view::npos) return std::nullopt;
  parsed.index = get_u32be(key.data() + sep + 1);
  return parsed;
}

std::optional<NextAttemptKey> parse_next_attempt_key(std::string_view key) {
  if (key.size() < 8 + 6) return std::nullopt;
  const uint64_t ms = get_u64be(key.data());
  if (ms > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  auto rest = parse_recipient_key(key.substr(8));
  if (!rest) return std::nullopt;
  return NextAttemptKey{static_cast<int64_t>(ms), rest->id, rest->index};
}

}  // namespace ringmail::queue
