// libFuzzer target for the feedback token decoders (policy/feedback_token.h):
// the VERP local part of a bounce's recipient, the X-Ringmail-Ref header
// value of a returned message and the unsubscribe URL segment or mailto
// local part, all of which anyone can send.
//
// The whole input goes to every decoder, with the two fixed keys of the
// unit tests. Then the input is read as token fields (10 octets of message
// id, 4 of recipient index, a tenant and a campaign of up to 200 octets
// each, cut by length octets) and the tokens made from them are decoded
// again, as made and with one character changed (position and character
// from the input). Every input replays identically.
//
// Besides ASan/UBSan findings, the target aborts when a promise is broken:
// a decoder accepts what no key made (an accepted input must be the
// encoder's own output for the decoded token, up to case and, for the ref
// header, blanks around it), reports no problem without a token or a
// problem with one, or names a key it was not given; a made token does
// not decode to what it was made from, is longer than its bound or has a
// character outside its alphabet; a token with one character changed
// (other than its case) still decodes.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON. Seed corpus in
// tests/fuzz/corpus/feedback_token/.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/feedback_token.h"

namespace {

namespace policy = ringmail::policy;
using policy::Decoded;
using policy::TokenProblem;

const std::vector<std::string> kKeys = {"0123456789abcdef0123456789abcdef",
                                        "fedcba9876543210fedcba9876543210"};

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "feedback_token_fuzz: %s: %.*s\n", what,
               static_cast<int>(std::min<size_t>(detail.size(), 400)), detail.data());
  std::abort();
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool is_token_text(std::string_view text) {
  if (text.empty() || text[0] != '1') return false;
  return std::all_of(text.begin() + 1, text.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); });
}

template <class Token>
void check_shape(const Decoded<Token>& decoded, const char* kind) {
  if (decoded.token.has_value() != (decoded.problem == TokenProblem::none)) {
    broken(kind, "token and problem disagree");
  }
  if (decoded.token && decoded.key_index >= kKeys.size()) broken(kind, "key index out of range");
}

std::string_view trim_blanks(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && blank(text.back())) text.remove_suffix(1);
  return text;
}

void decode_input(std::string_view input) {
  auto verp = policy::decode_verp_local_part(input, kKeys);
  check_shape(verp, "verp");
  if (verp.token) {
    auto made = policy::verp_local_part(*verp.token, kKeys[verp.key_index]);
    if (!made || *made != lower(input)) broken("verp accepted what it did not make", input);
  }
  auto ref = policy::decode_ref_token(input, kKeys);
  check_shape(ref, "ref");
  if (ref.token) {
    auto made = policy::encode_ref_token(*ref.token, kKeys[ref.key_index]);
    if (!made || *made != lower(trim_blanks(input))) {
      broken("ref accepted what it did not make", input);
    }
  }
  auto path = policy::decode_unsubscribe_token(input, kKeys);
  check_shape(path, "unsubscribe");
  if (path.token) {
    auto made = policy::encode_unsubscribe_token(*path.token, kKeys[path.key_index]);
    if (!made || *made != lower(input)) broken("unsubscribe accepted what it did not make", input);
  }
  auto mailto = policy::decode_unsubscribe_local_part(input, kKeys);
  check_shape(mailto, "unsubscribe local part");
  if (mailto.token) {
    auto made = policy::encode_unsubscribe_token(*mailto.token, kKeys[mailto.key_index]);
    if (!made || "u-" + *made != lower(input)) {
      broken("unsubscribe local part accepted what it did not make", input);
    }
  }
}

// Reads token fields off the input; missing octets are zero.
class Source {
 public:
  explicit Source(std::string_view input) : input_(input) {}
  uint8_t byte() {
    if (at_ >= input_.size()) return 0;
    return static_cast<uint8_t>(input_[at_++]);
  }
  std::string text(size_t max) {
    size_t size = std::min<size_t>(byte(), max);
    size = std::min(size, input_.size() - std::min(at_, input_.size()));
    std::string out(input_.substr(std::min(at_, input_.size()), size));
    at_ += size;
    return out;
  }

 private:
  std::string_view input_;
  size_t at_ = 0;
};

// A changed character that is not the same letter in another case.
std::string change_one(const std::string& text, uint8_t where, uint8_t what) {
  std::string changed = text;
  size_t i = where % changed.size();
  char c = static_cast<char>(what);
  if (lower(std::string(1, c)) == lower(std::string(1, changed[i])))
    c = changed[i] == 'a' ? 'b' : 'a';
  changed[i] = c;
  return changed;
}

template <class Token, class Decode>
void round_trip(const Token& token, const std::optional<std::string>& made, size_t max_size,
                Decode decode, uint8_t where, uint8_t what, const char* kind) {
  if (!made) return;
  std::string_view text = *made;
  if (text.starts_with("b-") || text.starts_with("u-")) text.remove_prefix(2);
  if (made->size() > max_size || !is_token_text(text)) broken(kind, *made);
  auto decoded = decode(*made);
  if (!decoded.token || !(*decoded.token == token) || decoded.key_index != 0) {
    broken("a made token does not decode", *made);
  }
  if (decode(change_one(*made, where, what)).token) {
    broken("a changed token still decodes", change_one(*made, where, what));
  }
}

void encode_from_input(std::string_view input) {
  static constexpr char kHex[] = "0123456789abcdef";
  Source source(input);
  ringmail::queue::MessageId id;
  for (int i = 0; i < 10; ++i) {
    uint8_t b = source.byte();
    id.value.push_back(kHex[b >> 4]);
    id.value.push_back(kHex[b & 15]);
  }
  uint32_t index = 0;
  for (int i = 0; i < 4; ++i) index = (index << 8) | source.byte();
  std::string tenant = source.text(policy::kMaxTokenTenant);
  std::string campaign = source.text(policy::kMaxTokenCampaign);
  const uint8_t where = source.byte();
  const uint8_t what = source.byte();
  const std::string& key = kKeys[0];

  const policy::VerpToken verp{id, index};
  round_trip(
      verp, policy::verp_local_part(verp, key), 45,
      [](const std::string& t) { return policy::decode_verp_local_part(t, kKeys); }, where, what,
      "verp");
  const policy::RefToken ref{id, index, tenant, campaign};
  round_trip(
      ref, policy::encode_ref_token(ref, key), 998 - policy::kRefHeaderName.size() - 2,
      [](const std::string& t) { return policy::decode_ref_token(t, kKeys); }, where, what, "ref");
  const policy::UnsubscribeToken unsubscribe{id, index, tenant, ""};
  round_trip(
      unsubscribe, policy::encode_unsubscribe_token(unsubscribe, key), 1000,
      [](const std::string& t) { return policy::decode_unsubscribe_token(t, kKeys); }, where, what,
      "unsubscribe");
  round_trip(
      unsubscribe, policy::unsubscribe_local_part(unsubscribe, key), policy::kMaxLocalPart,
      [](const std::string& t) { return policy::decode_unsubscribe_local_part(t, kKeys); }, where,
      what, "unsubscribe local part");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  decode_input(input);
  encode_from_input(input);
  return 0;
}
