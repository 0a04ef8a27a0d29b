// policy/list_unsubscribe.h — the one-click unsubscribe header fields
// (RFC 8058, RFC 2369; CONTRACT.md "Feedback, suppression and compliance in
// detail") that policy.list_unsubscribe puts on campaign mail:
//
//   List-Unsubscribe: <URL/TOKEN>[,
//    <mailto:u-TOKEN@MAILTO_DOMAIN?subject=unsubscribe>]
//   List-Unsubscribe-Post: List-Unsubscribe=One-Click
//
// TOKEN (policy/feedback_token.h) names message, recipient, tenant and, in
// the URL, the address; the mailto's is the shorter one without the
// address, left out when even that exceeds a local part (a tenant of more
// than 11 octets). As the token differs per recipient, such a message is
// delivered and DKIM-signed per recipient, at delivery
// (mta/outbound/delivery_planner.h), with both fields in every signature.
//
// Owns nothing: pure functions of their arguments (one HMAC per token).
// Any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "conf/config_policy.h"
#include "queue/spool_message.h"

namespace ringmail::policy {

inline constexpr std::string_view kListUnsubscribeHeaderName = "List-Unsubscribe";
inline constexpr std::string_view kListUnsubscribePostHeaderName = "List-Unsubscribe-Post";
// The one value RFC 8058 §3.1 defines for the Post field, and the body a
// one-click POST carries.
inline constexpr std::string_view kOneClickValue = "List-Unsubscribe=One-Click";

// Whether Ringmail adds its fields to `message` (decided once, at
// reception): list_unsubscribe configured (config not null), a campaign
// message (meta.campaign not empty) that is not one of Ringmail's DSNs, and
// `has_own_field` false (the application's own List-Unsubscribe is kept as
// it is).
bool adds_list_unsubscribe(const conf::ListUnsubscribeConfig* config,
                           const queue::SpoolMessage& message, bool has_own_field);

// The two fields (CRLF lines) for recipient `index` of `message`; "" when
// no token can carry them (a message id make_message_id did not make, a
// tenant over kMaxTokenTenant or an address over kMaxTokenAddress octets).
std::string list_unsubscribe_fields(const conf::ListUnsubscribeConfig& config,
                                    const queue::SpoolMessage& message, uint32_t index);

}  // namespace ringmail::policy
