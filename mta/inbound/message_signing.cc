#include "mta/inbound/message_signing.h"

#include <string>
#include <utility>

namespace ringmail::mta {

std::vector<DkimSignerSet::Signature> prepend_dkim_signatures(const DkimSignerSet& signers,
                                                              queue::SpoolMessage& message,
                                                              int64_t now_unix,
                                                              const DkimBodyHashes* streamed) {
  std::vector<DkimSignerSet::Signature> signatures =
      signers.sign(message.content, now_unix, streamed);
  if (signatures.empty()) return signatures;
  std::string signed_content;
  size_t total = message.content.size();
  for (const auto& sig : signatures) total += sig.header_field.size();
  signed_content.reserve(total);
  for (const auto& sig : signatures) signed_content += sig.header_field;
  signed_content += message.content;
  message.content = std::move(signed_content);
  message.meta.size = message.content.size();
  return signatures;
}

}  // namespace ringmail::mta
