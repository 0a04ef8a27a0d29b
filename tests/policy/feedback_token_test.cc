// tests/policy/feedback_token_test.cc — VERP, ref and unsubscribe tokens:
// round trips, fixed known answers (computed apart from this code, with
// Python's hmac and base64 modules), every kind of tampering, key rotation
// and the limits of what a token carries.
#include "policy/feedback_token.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";       // 32 octets
const std::string kOtherKey = "fedcba9876543210fedcba9876543210";  // 32 octets
const std::vector<std::string> kKeys = {kKey};
const std::vector<std::string> kOtherKeys = {kOtherKey};
constexpr const char* kId = "0190f3a2b4c5d6e7f809";

queue::MessageId id(const char* text) { return queue::MessageId{text}; }

bool is_base32_lower(std::string_view text) {
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

std::string upper(std::string text) {
  for (char& c : text) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return text;
}

// Every text that differs from `text` in one character at or after `from`,
// except case changes of letters (base32 is read in either case).
std::vector<std::string> one_character_changes(const std::string& text, size_t from) {
  static const std::string kCandidates = "abcdefghijklmnopqrstuvwxyz0123456789-._~+=/ ";
  std::vector<std::string> out;
  for (size_t i = from; i < text.size(); ++i) {
    for (char c : kCandidates) {
      char original = text[i];
      if (c == original) continue;
      if (c >= 'a' && c <= 'z' && original == static_cast<char>(c - 'a' + 'A')) continue;
      std::string changed = text;
      changed[i] = c;
      out.push_back(changed);
    }
  }
  return out;
}

// --- VERP -----------------------------------------------------------------

TEST(VerpToken, KnownAnswer) {
  // python3: hmac.new(key, b"ringmail verp 1\0" + payload, "sha256"),
  // payload = bytes.fromhex(id) + index.to_bytes(4, "big"), MAC cut to 12
  // octets, base64.b32encode(payload + mac).lower() without "=".
  EXPECT_EQ(verp_local_part({id(kId), 3}, kKey), "b-1agiphivuyxlop6ajaaaaaa2ohjq6dmbfkh6kxbykgm");
}

TEST(VerpToken, RoundTrips) {
  const struct {
    const char* id;
    uint32_t recipient;
  } kCases[] = {{kId, 0},
                {kId, 1},
                {kId, 999999},
                {kId, 0xffffffffu},
                {"00000000000000000000", 0},
                {"ffffffffffffffffffff", 7},
                {"0123456789abcdef0123", 42}};
  for (const auto& c : kCases) {
    const VerpToken token{id(c.id), c.recipient};
    auto local_part = verp_local_part(token, kKey);
    ASSERT_TRUE(local_part) << c.id;
    EXPECT_EQ(local_part->size(), 45u);
    EXPECT_LT(local_part->size(), kMaxLocalPart);
    EXPECT_TRUE(local_part->starts_with("b-1"));
    EXPECT_TRUE(is_base32_lower(local_part->substr(3))) << *local_part;
    EXPECT_EQ(*local_part, "b-" + *encode_verp_token(token, kKey));
    auto decoded = decode_verp_local_part(*local_part, kKeys);
    ASSERT_TRUE(decoded.token) << token_problem_name(decoded.problem);
    EXPECT_EQ(*decoded.token, token);
    EXPECT_EQ(decoded.problem, TokenProblem::none);
    EXPECT_EQ(decoded.key_index, 0u);
  }
}

TEST(VerpToken, UpperCasedLocalPartStillDecodes) {
  const VerpToken token{id(kId), 5};
  const std::string local_part = *verp_local_part(token, kKey);
  auto decoded = decode_verp_local_part(upper(local_part), kKeys);
  ASSERT_TRUE(decoded.token) << token_problem_name(decoded.problem);
  EXPECT_EQ(*decoded.token, token);
  std::string mixed = local_part;
  for (size_t i = 0; i < mixed.size(); i += 2) mixed[i] = upper(std::string(1, mixed[i]))[0];
  EXPECT_EQ(decode_verp_local_part(mixed, kKeys).token, token);
}

TEST(VerpToken, AnyOneCharacterChangedIsRefused) {
  const std::string local_part = *verp_local_part({id(kId), 5}, kKey);
  auto changes = one_character_changes(local_part, 0);
  ASSERT_GT(changes.size(), 1000u);
  for (const std::string& changed : changes) {
    auto decoded = decode_verp_local_part(changed, kKeys);
    EXPECT_FALSE(decoded.token) << changed;
    EXPECT_NE(decoded.problem, TokenProblem::none) << changed;
  }
}

TEST(VerpToken, TruncatedOrExtendedIsRefused) {
  const std::string local_part = *verp_local_part({id(kId), 5}, kKey);
  for (size_t size = 0; size < local_part.size(); ++size) {
    EXPECT_FALSE(decode_verp_local_part(local_part.substr(0, size), kKeys).token) << size;
  }
  for (char c : std::string("abcdefghijklmnopqrstuvwxyz234567")) {
    EXPECT_FALSE(decode_verp_local_part(local_part + c, kKeys).token) << c;
  }
  EXPECT_EQ(decode_verp_local_part(local_part + "aaaaaaaa", kKeys).problem,
            TokenProblem::bad_length);
  EXPECT_FALSE(decode_verp_local_part("a" + local_part, kKeys).token);
}

TEST(VerpToken, Reasons) {
  const std::string local_part = *verp_local_part({id(kId), 5}, kKey);
  const std::string token = local_part.substr(2);
  EXPECT_EQ(decode_verp_local_part(token, kKeys).problem, TokenProblem::bad_prefix);
  EXPECT_EQ(decode_verp_local_part("c-" + token, kKeys).problem, TokenProblem::bad_prefix);
  EXPECT_EQ(decode_verp_local_part("", kKeys).problem, TokenProblem::bad_prefix);
  EXPECT_EQ(decode_verp_local_part("b-", kKeys).problem, TokenProblem::bad_version);
  EXPECT_EQ(decode_verp_local_part("b-2" + token.substr(1), kKeys).problem,
            TokenProblem::bad_version);
  std::string bad_char = local_part;
  bad_char[10] = '0';  // not in the base32 alphabet
  EXPECT_EQ(decode_verp_local_part(bad_char, kKeys).problem, TokenProblem::bad_character);
  bad_char[10] = '8';
  EXPECT_EQ(decode_verp_local_part(bad_char, kKeys).problem, TokenProblem::bad_character);
  EXPECT_EQ(decode_verp_local_part(local_part.substr(0, 44), kKeys).problem,
            TokenProblem::bad_length);
  EXPECT_EQ(decode_verp_local_part(local_part, kOtherKeys).problem, TokenProblem::bad_mac);
  // 45 octets of base32 that no key made.
  EXPECT_EQ(decode_verp_local_part("b-1" + std::string(42, 'a'), kKeys).problem,
            TokenProblem::bad_mac);
}

TEST(VerpToken, SetPaddingBitsAreRefused) {
  // 26 octets take 42 base32 digits: the last digit carries 3 bits of data
  // and 2 of padding. Any other last digit with the same data bits must
  // not decode to the same token.
  const std::string local_part = *verp_local_part({id(kId), 5}, kKey);
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const size_t last = alphabet.find(local_part.back());
  for (size_t padding = 1; padding < 4; ++padding) {
    std::string changed = local_part;
    changed.back() = alphabet[(last & ~size_t{3}) | padding];
    if (changed == local_part) continue;
    EXPECT_EQ(decode_verp_local_part(changed, kKeys).problem, TokenProblem::bad_character)
        << changed;
  }
}

TEST(VerpToken, KeyRotationAcceptsOlderKeys) {
  const VerpToken token{id(kId), 9};
  const std::string old_token = *verp_local_part(token, kOtherKey);
  const std::vector<std::string> rotated = {kKey, kOtherKey};
  auto decoded = decode_verp_local_part(old_token, rotated);
  ASSERT_TRUE(decoded.token);
  EXPECT_EQ(*decoded.token, token);
  EXPECT_EQ(decoded.key_index, 1u);
  EXPECT_EQ(decode_verp_local_part(*verp_local_part(token, kKey), rotated).key_index, 0u);
  EXPECT_EQ(decode_verp_local_part(old_token, {}).problem, TokenProblem::bad_mac);
  const std::vector<std::string> with_empty = {"", kOtherKey};
  EXPECT_EQ(decode_verp_local_part(old_token, with_empty).key_index, 1u);
}

TEST(VerpToken, EncoderRefusesWhatItCannotCarry) {
  for (const char* bad : {"", "0190f3a2b4c5d6e7f80", "0190f3a2b4c5d6e7f8091",
                          "0190F3A2B4C5D6E7F809", "0190f3a2b4c5d6e7f80g", "0190f3a2b4c5d6e7f8 9"}) {
    EXPECT_FALSE(encode_verp_token({id(bad), 0}, kKey)) << bad;
  }
  EXPECT_FALSE(encode_verp_token({id(kId), 0}, ""));
}

// --- ref header -----------------------------------------------------------

TEST(RefToken, KnownAnswer) {
  // As for VERP with context "ringmail ref 1", payload id + index + len +
  // tenant + len + campaign, MAC cut to 16 octets.
  EXPECT_EQ(encode_ref_token({id(kId), 2, "app1", "spring-2026"}, kKey),
            "1agiphivuyxlop6ajaaaaaaqemfyhamilonyhe2lom4wtembsgzt7lbmnk5jmy4dxvelwivurc7fq");
}

TEST(RefToken, RoundTrips) {
  const RefToken kCases[] = {
      {id(kId), 0, "", ""},
      {id(kId), 2, "app1", "spring-2026"},
      {id(kId), 1000, "192.168.0.0/16", ""},
      {id(kId), 7, "", "welcome"},
      {id("ffffffffffffffffffff"), 0xffffffffu, std::string(kMaxTokenTenant, 't'),
       std::string(kMaxTokenCampaign, 'c')},
      {id(kId), 3, "bin\x01\xff\"\n", "UTF-8 caf\xc3\xa9"},
  };
  for (const RefToken& token : kCases) {
    auto value = encode_ref_token(token, kKey);
    ASSERT_TRUE(value) << token.tenant;
    EXPECT_TRUE(value->starts_with("1"));
    EXPECT_TRUE(is_base32_lower(value->substr(1))) << *value;
    // A header line: name, ": ", value, CRLF within RFC 5322's 998.
    EXPECT_LE(kRefHeaderName.size() + 2 + value->size(), 998u);
    auto decoded = decode_ref_token(*value, kKeys);
    ASSERT_TRUE(decoded.token) << token_problem_name(decoded.problem);
    EXPECT_EQ(*decoded.token, token);
    EXPECT_EQ(decode_ref_token(" " + upper(*value) + "\r\n", kKeys).token, token);
  }
}

TEST(RefToken, TamperingIsRefused) {
  const std::string value = *encode_ref_token({id(kId), 2, "app1", "spring-2026"}, kKey);
  for (const std::string& changed : one_character_changes(value, 0)) {
    if (changed.front() == ' ' || changed.back() == ' ') continue;  // blanks around are trimmed
    EXPECT_FALSE(decode_ref_token(changed, kKeys).token) << changed;
  }
  for (size_t size = 0; size < value.size(); ++size) {
    EXPECT_FALSE(decode_ref_token(value.substr(0, size), kKeys).token) << size;
  }
  EXPECT_FALSE(decode_ref_token(value + "a", kKeys).token);
  EXPECT_FALSE(decode_ref_token(value + "aaaaaaaa", kKeys).token);
  EXPECT_EQ(decode_ref_token(value, kOtherKeys).problem, TokenProblem::bad_mac);
  EXPECT_EQ(decode_ref_token("1" + std::string(2000, 'a'), kKeys).problem,
            TokenProblem::bad_length);
  EXPECT_EQ(decode_ref_token("x-ringmail", kKeys).problem, TokenProblem::bad_version);
}

TEST(RefToken, EncoderRefusesOverlongTenantOrCampaign) {
  EXPECT_FALSE(encode_ref_token({id(kId), 0, std::string(kMaxTokenTenant + 1, 't'), ""}, kKey));
  EXPECT_FALSE(encode_ref_token({id(kId), 0, "", std::string(kMaxTokenCampaign + 1, 'c')}, kKey));
  EXPECT_FALSE(encode_ref_token({id("nope"), 0, "", ""}, kKey));
  EXPECT_FALSE(encode_ref_token({id(kId), 0, "", ""}, ""));
}

// --- unsubscribe ----------------------------------------------------------

TEST(UnsubscribeToken, KnownAnswer) {
  // Context "ringmail unsubscribe 1", payload id + index + len + tenant,
  // MAC cut to 12 octets.
  EXPECT_EQ(encode_unsubscribe_token({id(kId), 1, "app1", ""}, kKey),
            "1agiphivuyxlop6ajaaaaaaiemfyhamnoqqjee65ateuddkxftm");
}

TEST(UnsubscribeToken, RoundTripsAsPathAndLocalPart) {
  const UnsubscribeToken kCases[] = {
      {id(kId), 0, "", ""},
      {id(kId), 1, "app1", ""},
      {id(kId), 12, "10.0.0.0/8", ""},
      {id(kId), 12, "abcdefghijk", ""},  // 11 octets: the longest that fits a local part
  };
  for (const UnsubscribeToken& token : kCases) {
    auto path = encode_unsubscribe_token(token, kKey);
    ASSERT_TRUE(path);
    EXPECT_TRUE(is_base32_lower(path->substr(1))) << *path;  // URL path-safe, no escaping
    EXPECT_EQ(decode_unsubscribe_token(*path, kKeys).token, token);
    EXPECT_EQ(decode_unsubscribe_token(upper(*path), kKeys).token, token);
    auto local_part = unsubscribe_local_part(token, kKey);
    ASSERT_TRUE(local_part) << token.tenant;
    EXPECT_LE(local_part->size(), kMaxLocalPart);
    EXPECT_EQ(*local_part, "u-" + *path);
    EXPECT_EQ(decode_unsubscribe_local_part(*local_part, kKeys).token, token);
    EXPECT_EQ(decode_unsubscribe_local_part(upper(*local_part), kKeys).token, token);
  }
}

TEST(UnsubscribeToken, LongTenantHasAPathButNoLocalPart) {
  const UnsubscribeToken token{id(kId), 1, "abcdefghijkl", ""};  // 12 octets
  EXPECT_FALSE(unsubscribe_local_part(token, kKey));
  auto path = encode_unsubscribe_token(token, kKey);
  ASSERT_TRUE(path);
  EXPECT_EQ(decode_unsubscribe_token(*path, kKeys).token, token);
  const UnsubscribeToken longest{id(kId), 1, std::string(kMaxTokenTenant, 't'), ""};
  ASSERT_TRUE(encode_unsubscribe_token(longest, kKey));
  EXPECT_EQ(decode_unsubscribe_token(*encode_unsubscribe_token(longest, kKey), kKeys).token,
            longest);
  EXPECT_FALSE(
      encode_unsubscribe_token({id(kId), 1, std::string(kMaxTokenTenant + 1, 't'), ""}, kKey));
}

// The URL's token carries the address (the message may be long gone when
// the click comes); the local part leaves it out and stays short.
TEST(UnsubscribeToken, ThePathCarriesTheAddressTheLocalPartDoesNot) {
  const UnsubscribeToken kCases[] = {
      {id(kId), 3, "app1", "Jane.Doe@Example.org"},
      {id(kId), 0, "", "a@b"},
      {id(kId), 9, std::string(kMaxTokenTenant, 't'), std::string(kMaxTokenAddress, 'x')},
  };
  for (const UnsubscribeToken& token : kCases) {
    auto path = encode_unsubscribe_token(token, kKey);
    ASSERT_TRUE(path) << token.address;
    EXPECT_TRUE(is_base32_lower(path->substr(1))) << *path;
    EXPECT_EQ(decode_unsubscribe_token(*path, kKeys).token, token);
    UnsubscribeToken without = token;
    without.address.clear();
    EXPECT_NE(*path, *encode_unsubscribe_token(without, kKey));
    if (auto local_part = unsubscribe_local_part(token, kKey)) {
      EXPECT_EQ(decode_unsubscribe_local_part(*local_part, kKeys).token, without);
    }
  }
  EXPECT_FALSE(
      encode_unsubscribe_token({id(kId), 1, "app1", std::string(kMaxTokenAddress + 1, 'x')}, kKey));
  const std::string path = *encode_unsubscribe_token({id(kId), 1, "app1", "a@b"}, kKey);
  for (const std::string& changed : one_character_changes(path, 0)) {
    EXPECT_FALSE(decode_unsubscribe_token(changed, kKeys).token) << changed;
  }
}

TEST(UnsubscribeToken, TamperingIsRefused) {
  const std::string path = *encode_unsubscribe_token({id(kId), 1, "app1", ""}, kKey);
  for (const std::string& changed : one_character_changes(path, 0)) {
    EXPECT_FALSE(decode_unsubscribe_token(changed, kKeys).token) << changed;
  }
  for (size_t size = 0; size < path.size(); ++size) {
    EXPECT_FALSE(decode_unsubscribe_token(path.substr(0, size), kKeys).token) << size;
  }
  EXPECT_FALSE(decode_unsubscribe_token(path + "a", kKeys).token);
  EXPECT_FALSE(decode_unsubscribe_token(path + "/", kKeys).token);
  EXPECT_EQ(decode_unsubscribe_token(path, kOtherKeys).problem, TokenProblem::bad_mac);
  EXPECT_EQ(decode_unsubscribe_local_part(path, kKeys).problem, TokenProblem::bad_prefix);
  EXPECT_EQ(decode_unsubscribe_local_part("b-" + path, kKeys).problem, TokenProblem::bad_prefix);
}

// --- kinds do not mix -----------------------------------------------------

TEST(FeedbackTokens, AKindIsNeverTakenForAnother) {
  // VERP and ref share a key; the context string keeps them apart.
  const std::string verp = *encode_verp_token({id(kId), 1}, kKey);
  const std::string ref = *encode_ref_token({id(kId), 1, "", ""}, kKey);
  const std::string unsubscribe = *encode_unsubscribe_token({id(kId), 1, "", ""}, kKey);
  EXPECT_FALSE(decode_ref_token(verp, kKeys).token);
  EXPECT_FALSE(decode_unsubscribe_token(verp, kKeys).token);
  EXPECT_FALSE(decode_verp_local_part("b-" + ref, kKeys).token);
  EXPECT_FALSE(decode_unsubscribe_token(ref, kKeys).token);
  EXPECT_FALSE(decode_verp_local_part("b-" + unsubscribe, kKeys).token);
  EXPECT_FALSE(decode_ref_token(unsubscribe, kKeys).token);
}

TEST(FeedbackTokens, ProblemNames) {
  EXPECT_EQ(token_problem_name(TokenProblem::none), "none");
  EXPECT_EQ(token_problem_name(TokenProblem::bad_prefix), "bad prefix");
  EXPECT_EQ(token_problem_name(TokenProblem::bad_version), "unknown version");
  EXPECT_EQ(token_problem_name(TokenProblem::bad_character), "bad character");
  EXPECT_EQ(token_problem_name(TokenProblem::bad_length), "bad length");
  EXPECT_EQ(token_problem_name(TokenProblem::bad_mac), "bad signature");
}

}  // namespace
}  // namespace ringmail::policy
