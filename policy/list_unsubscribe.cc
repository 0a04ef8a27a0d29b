// policy/list_unsubscribe.cc — List-Unsubscribe and List-Unsubscribe-Post
// for one recipient's copy.
#include "policy/list_unsubscribe.h"

#include <optional>

#include "policy/feedback_token.h"

namespace ringmail::policy {

bool adds_list_unsubscribe(const conf::ListUnsubscribeConfig* config,
                           const queue::SpoolMessage& message, bool has_own_field) {
  return config != nullptr && !message.meta.campaign.empty() &&
         message.meta.listener != queue::kDsnListener && !has_own_field;
}

std::string list_unsubscribe_fields(const conf::ListUnsubscribeConfig& config,
                                    const queue::SpoolMessage& message, uint32_t index) {
  if (index >= message.envelope.recipients.size()) return {};
  UnsubscribeToken token{message.id, index, message.meta.tenant,
                         message.envelope.recipients[index].address};
  const std::optional<std::string> path = encode_unsubscribe_token(token, config.key.key);
  if (!path) return {};
  std::string fields;
  fields.reserve(2 * path->size() + config.url.size() + 160);
  fields.append(kListUnsubscribeHeaderName).append(": <").append(config.url);
  fields.append("/").append(*path).append(">");
  if (!config.mailto_domain.empty()) {
    if (std::optional<std::string> local = unsubscribe_local_part(token, config.key.key)) {
      // Folded after the comma (RFC 2369 §2), so each line stays short.
      fields.append(",\r\n <mailto:").append(*local).append("@").append(config.mailto_domain);
      fields.append("?subject=unsubscribe>");
    }
  }
  fields.append("\r\n");
  fields.append(kListUnsubscribePostHeaderName).append(": ").append(kOneClickValue).append("\r\n");
  return fields;
}

}  // namespace ringmail::policy
