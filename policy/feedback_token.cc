// policy/feedback_token.cc — VERP, ref and unsubscribe tokens: base32 of
// payload + truncated HMAC-SHA256 (OpenSSL), version 1.
#include "policy/feedback_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <vector>

namespace ringmail::policy {
namespace {

constexpr char kVersion = '1';
constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
constexpr size_t kIdBytes = 10;  // 20 hex digits
constexpr size_t kIndexBytes = 4;
constexpr size_t kShortMac = 12;  // VERP, unsubscribe: local parts are short
constexpr size_t kLongMac = 16;   // ref header

// One context a kind: the MAC input starts with it and a NUL.
constexpr std::string_view kVerpContext = "ringmail verp 1";
constexpr std::string_view kRefContext = "ringmail ref 1";
constexpr std::string_view kUnsubscribeContext = "ringmail unsubscribe 1";

using Bytes = std::vector<uint8_t>;

struct Layout {
  std::string_view context;
  size_t mac_bytes;
  size_t min_payload;
  size_t max_payload;
};

constexpr Layout kVerpLayout{kVerpContext, kShortMac, kIdBytes + kIndexBytes,
                             kIdBytes + kIndexBytes};
constexpr Layout kRefLayout{kRefContext, kLongMac, kIdBytes + kIndexBytes + 2,
                            kIdBytes + kIndexBytes + 2 + kMaxTokenTenant + kMaxTokenCampaign};
constexpr Layout kUnsubscribeLayout{
    kUnsubscribeContext, kShortMac, kIdBytes + kIndexBytes + 1,
    kIdBytes + kIndexBytes + 1 + kMaxTokenTenant + 1 + kMaxTokenAddress};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Only what make_message_id() makes: 20 lower-case hex digits.
bool append_message_id(const queue::MessageId& id, Bytes& out) {
  if (id.value.size() != 2 * kIdBytes) return false;
  for (size_t i = 0; i < id.value.size(); i += 2) {
    int high = hex_value(id.value[i]);
    int low = hex_value(id.value[i + 1]);
    if (high < 0 || low < 0) return false;
    out.push_back(static_cast<uint8_t>(high << 4 | low));
  }
  return true;
}

void append_index(uint32_t index, Bytes& out) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(index >> shift));
}

bool append_text(std::string_view text, size_t max, Bytes& out) {
  if (text.size() > max) return false;
  out.push_back(static_cast<uint8_t>(text.size()));
  out.insert(out.end(), text.begin(), text.end());
  return true;
}

std::string base32(const Bytes& bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(buffer >> bits) & 31]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

int base32_value(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

// The inverse of base32(), either case; only the one spelling base32()
// makes of each byte string (padding bits clear), so that no two texts
// carry the same token.
TokenProblem unbase32(std::string_view text, Bytes& out) {
  switch (text.size() % 8) {
    case 1:
    case 3:
    case 6:
      return TokenProblem::bad_length;  // no byte count encodes to these
    default:
      break;
  }
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = base32_value(c);
    if (value < 0) return TokenProblem::bad_character;
    buffer = (buffer << 5) | static_cast<uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(buffer >> bits));
    }
  }
  if ((buffer & ((1u << bits) - 1)) != 0) return TokenProblem::bad_character;
  return TokenProblem::none;
}

bool mac(std::string_view key, std::string_view context, const uint8_t* payload, size_t size,
         std::array<uint8_t, EVP_MAX_MD_SIZE>& out) {
  if (key.empty()) return false;
  Bytes input(context.begin(), context.end());
  input.push_back(0);
  input.insert(input.end(), payload, payload + size);
  unsigned int length = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), input.data(), input.size(),
              out.data(), &length) != nullptr &&
         length >= kLongMac;
}

std::optional<std::string> seal(const Layout& layout, Bytes payload, std::string_view key) {
  std::array<uint8_t, EVP_MAX_MD_SIZE> digest{};
  if (!mac(key, layout.context, payload.data(), payload.size(), digest)) return std::nullopt;
  payload.insert(payload.end(), digest.begin(), digest.begin() + layout.mac_bytes);
  return std::string(1, kVersion) + base32(payload);
}

// The authenticated payload of text, or why not.
TokenProblem open(const Layout& layout, std::string_view text, TokenKeys keys, Bytes& payload,
                  size_t& key_index) {
  if (text.empty() || text[0] != kVersion) return TokenProblem::bad_version;
  text.remove_prefix(1);
  const size_t max_chars = ((layout.max_payload + layout.mac_bytes) * 8 + 4) / 5;
  const size_t min_chars = ((layout.min_payload + layout.mac_bytes) * 8 + 4) / 5;
  if (text.size() > max_chars || text.size() < min_chars) return TokenProblem::bad_length;
  Bytes bytes;
  if (TokenProblem problem = unbase32(text, bytes); problem != TokenProblem::none) return problem;
  if (bytes.size() < layout.min_payload + layout.mac_bytes ||
      bytes.size() > layout.max_payload + layout.mac_bytes) {
    return TokenProblem::bad_length;
  }
  const size_t size = bytes.size() - layout.mac_bytes;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::array<uint8_t, EVP_MAX_MD_SIZE> digest{};
    if (!mac(keys[i], layout.context, bytes.data(), size, digest)) continue;
    if (CRYPTO_memcmp(digest.data(), bytes.data() + size, layout.mac_bytes) == 0) {
      payload.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size));
      key_index = i;
      return TokenProblem::none;
    }
  }
  return TokenProblem::bad_mac;
}

// Reads the fields of an authenticated payload in order; any shortfall or
// excess is a bad length (a MAC-valid payload never has one).
class Fields {
 public:
  explicit Fields(const Bytes& bytes) : bytes_(bytes) {}
  bool message_id(queue::MessageId& id) {
    if (bytes_.size() - at_ < kIdBytes) return false;
    static constexpr char kHex[] = "0123456789abcdef";
    id.value.clear();
    for (size_t i = 0; i < kIdBytes; ++i) {
      id.value.push_back(kHex[bytes_[at_ + i] >> 4]);
      id.value.push_back(kHex[bytes_[at_ + i] & 15]);
    }
    at_ += kIdBytes;
    return true;
  }
  bool index(uint32_t& value) {
    if (bytes_.size() - at_ < kIndexBytes) return false;
    value = 0;
    for (size_t i = 0; i < kIndexBytes; ++i) value = (value << 8) | bytes_[at_ + i];
    at_ += kIndexBytes;
    return true;
  }
  bool text(size_t max, std::string& value) {
    if (bytes_.size() - at_ < 1) return false;
    size_t size = bytes_[at_];
    if (size > max || bytes_.size() - at_ - 1 < size) return false;
    value.assign(bytes_.begin() + static_cast<std::ptrdiff_t>(at_ + 1),
                 bytes_.begin() + static_cast<std::ptrdiff_t>(at_ + 1 + size));
    at_ += 1 + size;
    return true;
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const Bytes& bytes_;
  size_t at_ = 0;
};

template <class Token>
Decoded<Token> refused(TokenProblem problem) {
  Decoded<Token> result;
  result.problem = problem;
  return result;
}

// text without prefix (either case), or nullopt.
std::optional<std::string_view> strip_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return std::nullopt;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return std::nullopt;
  }
  return text.substr(prefix.size());
}

std::string_view trim_blanks(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

std::string_view token_problem_name(TokenProblem problem) {
  switch (problem) {
    case TokenProblem::none:
      return "none";
    case TokenProblem::bad_prefix:
      return "bad prefix";
    case TokenProblem::bad_version:
      return "unknown version";
    case TokenProblem::bad_character:
      return "bad character";
    case TokenProblem::bad_length:
      return "bad length";
    case TokenProblem::bad_mac:
      return "bad signature";
  }
  return "unknown";
}

std::optional<std::string> encode_verp_token(const VerpToken& token, std::string_view key) {
  Bytes payload;
  if (!append_message_id(token.message, payload)) return std::nullopt;
  append_index(token.recipient, payload);
  return seal(kVerpLayout, std::move(payload), key);
}

std::optional<std::string> verp_local_part(const VerpToken& token, std::string_view key) {
  auto encoded = encode_verp_token(token, key);
  if (!encoded) return std::nullopt;
  return std::string(kVerpPrefix) + *encoded;
}

Decoded<VerpToken> decode_verp_local_part(std::string_view local_part, TokenKeys keys) {
  auto text = strip_prefix(local_part, kVerpPrefix);
  if (!text) return refused<VerpToken>(TokenProblem::bad_prefix);
  Bytes payload;
  Decoded<VerpToken> result;
  result.problem = open(kVerpLayout, *text, keys, payload, result.key_index);
  if (result.problem != TokenProblem::none) return result;
  VerpToken token;
  Fields fields(payload);
  if (!fields.message_id(token.message) || !fields.index(token.recipient) || !fields.done()) {
    return refused<VerpToken>(TokenProblem::bad_length);
  }
  result.token = std::move(token);
  return result;
}

std::optional<std::string> encode_ref_token(const RefToken& token, std::string_view key) {
  Bytes payload;
  if (!append_message_id(token.message, payload)) return std::nullopt;
  append_index(token.recipient, payload);
  if (!append_text(token.tenant, kMaxTokenTenant, payload) ||
      !append_text(token.campaign, kMaxTokenCampaign, payload)) {
    return std::nullopt;
  }
  return seal(kRefLayout, std::move(payload), key);
}

Decoded<RefToken> decode_ref_token(std::string_view header_value, TokenKeys keys) {
  Bytes payload;
  Decoded<RefToken> result;
  result.problem = open(kRefLayout, trim_blanks(header_value), keys, payload, result.key_index);
  if (result.problem != TokenProblem::none) return result;
  RefToken token;
  Fields fields(payload);
  if (!fields.message_id(token.message) || !fields.index(token.recipient) ||
      !fields.text(kMaxTokenTenant, token.tenant) ||
      !fields.text(kMaxTokenCampaign, token.campaign) || !fields.done()) {
    return refused<RefToken>(TokenProblem::bad_length);
  }
  result.token = std::move(token);
  return result;
}

std::optional<std::string> encode_unsubscribe_token(const UnsubscribeToken& token,
                                                    std::string_view key) {
  Bytes payload;
  if (!append_message_id(token.message, payload)) return std::nullopt;
  append_index(token.recipient, payload);
  if (!append_text(token.tenant, kMaxTokenTenant, payload)) return std::nullopt;
  // The address is a trailing field, present only when carried: a token
  // without it is the one a local part holds.
  if (!token.address.empty() && !append_text(token.address, kMaxTokenAddress, payload)) {
    return std::nullopt;
  }
  return seal(kUnsubscribeLayout, std::move(payload), key);
}

std::optional<std::string> unsubscribe_local_part(const UnsubscribeToken& token,
                                                  std::string_view key) {
  UnsubscribeToken without_address = token;
  without_address.address.clear();
  auto encoded = encode_unsubscribe_token(without_address, key);
  if (!encoded || kUnsubscribePrefix.size() + encoded->size() > kMaxLocalPart) return std::nullopt;
  return std::string(kUnsubscribePrefix) + *encoded;
}

Decoded<UnsubscribeToken> decode_unsubscribe_token(std::string_view text, TokenKeys keys) {
  Bytes payload;
  Decoded<UnsubscribeToken> result;
  result.problem = open(kUnsubscribeLayout, text, keys, payload, result.key_index);
  if (result.problem != TokenProblem::none) return result;
  UnsubscribeToken token;
  Fields fields(payload);
  if (!fields.message_id(token.message) || !fields.index(token.recipient) ||
      !fields.text(kMaxTokenTenant, token.tenant) ||
      (!fields.done() &&
       (!fields.text(kMaxTokenAddress, token.address) || token.address.empty())) ||
      !fields.done()) {
    return refused<UnsubscribeToken>(TokenProblem::bad_length);
  }
  result.token = std::move(token);
  return result;
}

Decoded<UnsubscribeToken> decode_unsubscribe_local_part(std::string_view local_part,
                                                        TokenKeys keys) {
  auto text = strip_prefix(local_part, kUnsubscribePrefix);
  if (!text) return refused<UnsubscribeToken>(TokenProblem::bad_prefix);
  return decode_unsubscribe_token(*text, keys);
}

}  // namespace ringmail::policy
