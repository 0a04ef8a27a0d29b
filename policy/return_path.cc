// policy/return_path.cc — VERP senders, X-Ringmail-Ref and Feedback-ID for
// outgoing mail.
#include "policy/return_path.h"

#include "policy/feedback_token.h"

namespace ringmail::policy {
namespace {

void append_clean(std::string& out, std::string_view text) {
  text = text.substr(0, kMaxFeedbackIdField);
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u <= 0x20 || u >= 0x7f || c == ':' ? '_' : c);
  }
}

}  // namespace

ReturnPathUse return_path_use(const conf::ReturnPathConfig* config, std::string_view sender,
                              std::string_view listener) {
  if (!config || listener == queue::kDsnListener) return ReturnPathUse::none;
  if (!config->verp || sender.empty()) return ReturnPathUse::headers;
  return ReturnPathUse::verp;
}

OutgoingCopy outgoing_copy(const conf::ReturnPathConfig& config, ReturnPathUse use,
                           const queue::SpoolMessage& message,
                           std::span<const uint32_t> recipients) {
  OutgoingCopy copy;
  copy.sender = message.envelope.sender;
  if (use == ReturnPathUse::none || recipients.empty()) return copy;
  const uint32_t recipient = recipients.size() == 1 ? recipients[0] : kRefSeveralRecipients;
  if (use == ReturnPathUse::verp && recipients.size() == 1) {
    if (auto local = verp_local_part(VerpToken{message.id, recipient}, config.key.key)) {
      copy.sender = *local + "@" + config.domain;
    }
  }
  RefToken ref{message.id, recipient, message.meta.tenant, message.meta.campaign};
  if (auto token = encode_ref_token(ref, config.key.key)) {
    copy.header_prefix.reserve(kRefHeaderName.size() + token->size() + 4);
    copy.header_prefix.append(kRefHeaderName);
    copy.header_prefix.append(": ");
    copy.header_prefix.append(*token);
    copy.header_prefix.append("\r\n");
  }
  return copy;
}

std::string feedback_id_value(std::string_view campaign, std::string_view tenant,
                              std::string_view listener, std::string_view sender_id) {
  std::string value;
  value.reserve(campaign.size() + tenant.size() + listener.size() + sender_id.size() + 3);
  append_clean(value, campaign);
  value.push_back(':');
  append_clean(value, tenant);
  value.push_back(':');
  append_clean(value, listener);
  value.push_back(':');
  append_clean(value, sender_id);
  return value;
}

std::string feedback_id_field(const conf::ReturnPathConfig& config,
                              const queue::SpoolMessage& message) {
  std::string field(kFeedbackIdHeaderName);
  field += ": ";
  field += feedback_id_value(message.meta.campaign, message.meta.tenant, message.meta.listener,
                             config.sender_id);
  field += "\r\n";
  return field;
}

}  // namespace ringmail::policy
