// policy/return_path.h — what policy.return_path does to outgoing mail
// (CONTRACT.md "Feedback, suppression and compliance in detail"):
//
//   VERP         with `verp: true`, each recipient's copy goes in a
//                transaction of its own with the envelope sender
//                `b-TOKEN@domain` (policy/feedback_token.h: message id and
//                recipient index), so that a bounce names its recipient.
//   X-Ringmail-Ref  prepended to each copy at delivery: the ref token of
//                message, recipient, tenant and campaign. It is not in any
//                DKIM signature's h= (the signature was made at reception),
//                so adding it breaks none.
//   Feedback-ID  Gmail's feedback-loop header, added once per message at
//                reception, before DKIM signing (mta/inbound/message_signing.h
//                puts it in), value `CAMPAIGN:TENANT:LISTENER:SENDER_ID`.
//
// Ringmail's own DSNs (listener "dsn") get none of this: they keep the null
// sender and carry no reference, so a report about a DSN is never
// attributed (no DSN about a DSN). Any other message with the null sender
// keeps it too (RFC 5321 §4.5.5) but gets the headers.
//
// Owns nothing: pure functions of their arguments (one HMAC per token).
// Any thread. The message id, tenant and campaign come from the spool;
// campaign and tenant are cleaned before they go into a header value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "conf/config_policy.h"
#include "queue/spool_message.h"

namespace ringmail::policy {

inline constexpr std::string_view kFeedbackIdHeaderName = "Feedback-ID";
inline constexpr size_t kMaxFeedbackIdField = 200;
// The recipient index of the ref token on a copy that went to several
// recipients at once (verp: false): message, tenant and campaign are
// named, the recipient is not.
inline constexpr uint32_t kRefSeveralRecipients = 0xffffffff;

enum class ReturnPathUse : uint8_t {
  none,     // not configured, or Ringmail's own DSN: the message goes as it is
  headers,  // X-Ringmail-Ref on each copy, envelope sender unchanged
  verp,     // headers, and one recipient per transaction from b-TOKEN@domain
};

// config: policy.return_path, null when it is not configured. sender: the
// envelope sender ("" null); listener: the message's meta.listener.
ReturnPathUse return_path_use(const conf::ReturnPathConfig* config, std::string_view sender,
                              std::string_view listener);
inline ReturnPathUse return_path_use(const conf::ReturnPathConfig* config,
                                     const queue::SpoolMessage& message) {
  return return_path_use(config, message.envelope.sender, message.meta.listener);
}

// One transaction's copy: what goes in MAIL FROM and the header lines put
// in front of the stored content.
struct OutgoingCopy {
  std::string sender;
  std::string header_prefix;  // "X-Ringmail-Ref: TOKEN\r\n", or ""
};

// The copy of `message` for `recipients` (indexes into its envelope, at
// least one) under `use` (return_path_use of the same message; with verp,
// exactly one recipient). The envelope sender stays the message's when a
// token cannot be made (a message id that make_message_id did not make);
// the header is left out then, and also when the tenant or campaign is
// longer than a ref token carries (kMaxTokenTenant, kMaxTokenCampaign).
OutgoingCopy outgoing_copy(const conf::ReturnPathConfig& config, ReturnPathUse use,
                           const queue::SpoolMessage& message,
                           std::span<const uint32_t> recipients);

// The value of Feedback-ID: "CAMPAIGN:TENANT:LISTENER:SENDER_ID", Gmail's
// `a:b:c:SenderId` (empty fields stay empty). Each of the first three is
// cut to kMaxFeedbackIdField octets and every octet that is not printable
// ASCII, or is ':', becomes '_' (the field stays within 998 octets).
std::string feedback_id_value(std::string_view campaign, std::string_view tenant,
                              std::string_view listener, std::string_view sender_id);
// "Feedback-ID: VALUE\r\n" for the message (its campaign, tenant, listener).
std::string feedback_id_field(const conf::ReturnPathConfig& config,
                              const queue::SpoolMessage& message);

}  // namespace ringmail::policy
