// policy/feedback_token.h — the signed tokens that let mail coming back to
// Ringmail name the message and recipient it is about (CONTRACT.md
// "Feedback, suppression and compliance in detail"):
//
//   VERP     the envelope sender of each outgoing recipient,
//            `b-TOKEN@policy.return_path.domain`: a bounce to it names the
//            message id and recipient index. Key: policy.return_path.key_file.
//   ref      the value of the `X-Ringmail-Ref` header (a Ringmail extension)
//            added to outgoing mail: message id, recipient index, tenant and
//            campaign, for complaints (ARF) that lost the envelope and have
//            the recipient redacted. Key: policy.return_path.key_file.
//   unsubscribe  the last path segment of the List-Unsubscribe URL and the
//            mailto local part `u-TOKEN`: message id, recipient index and
//            tenant, and in the URL's token also the recipient's address
//            (a one-click POST may come weeks after the message left the
//            spool; a local part has no room for it, so a mailto
//            unsubscribe looks the address up by message and index).
//            Key: policy.list_unsubscribe.key_file.
//
// Format (version 1): the character '1', then the payload and a truncated
// HMAC-SHA256 over a per-kind context string and the payload, in lower-case
// RFC 4648 base32 without padding. Base32 keeps every token inside the
// RFC 5321 dot-atom and URL-path characters, and lets decoders accept it
// upper-cased (some MTAs change the case of local parts). The context string
// keeps a token of one kind from being taken for another even though VERP
// and ref share a key. The MAC is 96 bits in the VERP and unsubscribe tokens
// (RFC 2104's floor is 80) and 128 bits in the ref header. A VERP local part
// is 45 octets; an unsubscribe local part fits the 64-octet limit only with
// a tenant of up to 11 octets (unsubscribe_local_part() says when not).
//
// Owns nothing: pure functions of their arguments. Any thread. The decoders
// face the network (bounce addresses, header values, URL paths from anyone):
// they accept only what the encoder made with one of the given keys, compare
// MACs in constant time (CRYPTO_memcmp) and never read past their input.
// SECURITY: the tokens authenticate, they do not hide: the message id,
// index, tenant and campaign can be read by anyone who has the mail. A
// token stays valid as long as its key does; rotate the key to end that.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "queue/spool_message.h"

namespace ringmail::policy {

// The header that carries the ref token (Ringmail extension).
inline constexpr std::string_view kRefHeaderName = "X-Ringmail-Ref";
// The local-part prefixes of VERP and mailto unsubscribe addresses.
inline constexpr std::string_view kVerpPrefix = "b-";
inline constexpr std::string_view kUnsubscribePrefix = "u-";
// Bounds of what a ref or unsubscribe token carries, in octets. The
// campaign header is cut at 200 octets when mail is received.
inline constexpr size_t kMaxTokenTenant = 200;
inline constexpr size_t kMaxTokenCampaign = 200;
inline constexpr size_t kMaxTokenAddress = 254;
// RFC 5321 §4.5.3.1.1.
inline constexpr size_t kMaxLocalPart = 64;

struct VerpToken {
  queue::MessageId message;  // 20 lower-case hex digits (make_message_id)
  uint32_t recipient = 0;    // index in the message's envelope
  friend bool operator==(const VerpToken&, const VerpToken&) = default;
};

struct RefToken {
  queue::MessageId message;
  uint32_t recipient = 0;
  std::string tenant;    // "" when none; at most kMaxTokenTenant octets
  std::string campaign;  // "" when none; at most kMaxTokenCampaign octets
  friend bool operator==(const RefToken&, const RefToken&) = default;
};

struct UnsubscribeToken {
  queue::MessageId message;
  uint32_t recipient = 0;
  std::string tenant;   // at most kMaxTokenTenant octets
  std::string address;  // "" : not carried; at most kMaxTokenAddress octets
  friend bool operator==(const UnsubscribeToken&, const UnsubscribeToken&) = default;
};

// Why a decoder refused its input.
enum class TokenProblem {
  none,
  bad_prefix,     // a local part without "b-" / "u-"
  bad_version,    // empty, or a first character other than '1'
  bad_character,  // not base32 (either case), or set padding bits
  bad_length,     // too short or too long for the payload it claims
  bad_mac,        // no given key made it
};
std::string_view token_problem_name(TokenProblem problem);

// What a decoder returns: the token, or nullopt and why. key_index is the
// index in `keys` of the key that verified it (0: the current key).
template <class Token>
struct Decoded {
  std::optional<Token> token;
  TokenProblem problem = TokenProblem::none;
  size_t key_index = 0;
};

// Keys as read from their key file (conf/config_secret.h), the current key
// first, then older ones still accepted during a rotation. An empty key
// never verifies anything.
using TokenKeys = std::span<const std::string>;

// Encoders return nullopt when the token cannot carry its input: a message
// id that is not 20 lower-case hex digits, a tenant or campaign over its
// bound, or an empty key.
std::optional<std::string> encode_verp_token(const VerpToken& token, std::string_view key);
// "b-TOKEN"
std::optional<std::string> verp_local_part(const VerpToken& token, std::string_view key);
// local_part: what comes before the '@' of the bounce's recipient, in any
// case.
Decoded<VerpToken> decode_verp_local_part(std::string_view local_part, TokenKeys keys);

std::optional<std::string> encode_ref_token(const RefToken& token, std::string_view key);
// header_value: the header's unfolded value; blanks around it are ignored.
Decoded<RefToken> decode_ref_token(std::string_view header_value, TokenKeys keys);

// The URL path segment (append to policy.list_unsubscribe.url after '/').
std::optional<std::string> encode_unsubscribe_token(const UnsubscribeToken& token,
                                                    std::string_view key);
// "u-TOKEN" of the token without its address, or nullopt also when it
// would exceed kMaxLocalPart octets (a tenant of more than 11 octets): then
// offer no mailto.
std::optional<std::string> unsubscribe_local_part(const UnsubscribeToken& token,
                                                  std::string_view key);
// token: the URL's last path segment, in any case.
Decoded<UnsubscribeToken> decode_unsubscribe_token(std::string_view token, TokenKeys keys);
Decoded<UnsubscribeToken> decode_unsubscribe_local_part(std::string_view local_part,
                                                        TokenKeys keys);

}  // namespace ringmail::policy
