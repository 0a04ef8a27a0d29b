#include "queue/webhook_records.h"

#include <nlohmann/json.hpp>

#include "queue/record_bytes.h"

namespace ringmail::queue {
namespace {

constexpr uint8_t kWebhookRecordVersion = 1;
constexpr uint8_t kWebhookSequenceVersion = 1;
constexpr size_t kSequenceDigits = 16;
constexpr size_t kMaxNameLength = 64;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

void put_hex64(std::string* out, uint64_t value) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kHex[(value >> shift) & 0xf]);
}

std::optional<std::string> fail(std::string* error, std::string why) {
  if (error) *error = std::move(why);
  return std::nullopt;
}

}  // namespace

std::string webhook_backlog_prefix(std::string_view webhook) {
  std::string out(kWebhookPrefix);
  out.append(webhook);
  out.push_back('/');
  return out;
}

std::string webhook_backlog_key(std::string_view webhook, uint64_t sequence) {
  std::string out = webhook_backlog_prefix(webhook);
  put_hex64(&out, sequence);
  return out;
}

std::optional<WebhookBacklogKey> parse_webhook_backlog_key(std::string_view key) {
  if (!key.starts_with(kWebhookPrefix)) return std::nullopt;
  key.remove_prefix(sizeof(kWebhookPrefix) - 1);
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash > kMaxNameLength) return std::nullopt;
  const std::string_view name = key.substr(0, slash);
  for (char c : name) {
    if (!is_name_char(c)) return std::nullopt;
  }
  const std::string_view digits = key.substr(slash + 1);
  if (digits.size() != kSequenceDigits) return std::nullopt;
  uint64_t sequence = 0;
  for (char c : digits) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else {
      return std::nullopt;  // upper case too: the encoder never writes it
    }
    sequence = (sequence << 4) | uint64_t(v);
  }
  return WebhookBacklogKey{std::string(name), sequence};
}

std::string encode_webhook_record(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 5);
  put_u8(&out, kWebhookRecordVersion);
  out.append(json);
  append_crc(&out, 0);
  return out;
}

std::optional<std::string> decode_webhook_record(std::string_view bytes, std::string* error) {
  std::string_view payload;
  DecodeResult opened = open_checked_record(bytes, "webhook", &payload, kWebhookRecordVersion);
  if (!opened) return fail(error, opened.error);
  const nlohmann::json parsed = nlohmann::json::parse(payload, nullptr, false);
  if (parsed.is_discarded()) return fail(error, "webhook record is not JSON");
  if (!parsed.is_object()) return fail(error, "webhook record is not a JSON object");
  auto type = parsed.find("type");
  if (type == parsed.end() || !type->is_string() || type->get_ref<const std::string&>().empty()) {
    return fail(error, "webhook record has no \"type\"");
  }
  auto id = parsed.find("event_id");
  if (id == parsed.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
    return fail(error, "webhook record has no \"event_id\"");
  }
  return std::string(payload);
}

std::string encode_webhook_sequence(const WebhookSequence& sequence) {
  std::string out;
  out.reserve(21);
  put_u8(&out, kWebhookSequenceVersion);
  put_u64le(&out, sequence.epoch);
  put_u64le(&out, sequence.next);
  append_crc(&out, 0);
  return out;
}

std::optional<WebhookSequence> decode_webhook_sequence(std::string_view bytes, std::string* error) {
  auto failed = [error](std::string why) -> std::optional<WebhookSequence> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  std::string_view payload;
  DecodeResult opened =
      open_checked_record(bytes, "webhook sequence", &payload, kWebhookSequenceVersion);
  if (!opened) return failed(opened.error);
  if (payload.size() != 16) {
    return failed("webhook sequence record of " + std::to_string(bytes.size()) + " bytes");
  }
  Reader r(payload);
  WebhookSequence out;
  out.epoch = r.u64le("epoch");
  out.next = r.u64le("next");
  if (!r.ok()) return failed(r.error());
  if (out.next == 0) return failed("webhook sequence record with next sequence 0");
  return out;
}

std::string webhook_event_id(uint64_t epoch, uint64_t sequence) {
  std::string out;
  out.reserve(kSequenceDigits + 21);
  put_hex64(&out, epoch);
  out.push_back('-');
  out.append(std::to_string(sequence));
  return out;
}

std::optional<std::string> with_event_id(std::string_view object, std::string_view event_id) {
  if (object.size() < 2 || object.front() != '{' || object.back() != '}') return std::nullopt;
  std::string out;
  out.reserve(object.size() + event_id.size() + 16);
  out.append(object.substr(0, object.size() - 1));
  if (object.size() > 2) out.push_back(',');
  out.append("\"event_id\":\"");
  out.append(event_id);
  out.append("\"}");
  return out;
}

std::string webhook_batch_body(std::span<const std::string_view> records) {
  size_t size = 2 + records.size();
  for (std::string_view r : records) size += r.size();
  std::string out;
  out.reserve(size);
  out.push_back('[');
  for (size_t i = 0; i < records.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(records[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace ringmail::queue
