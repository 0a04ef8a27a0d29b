#include "mta/inbound/message_signing.h"

#include <string>
#include <utility>

#include "conf/config_policy.h"
#include "mta/smtp/smtp_message_headers.h"
#include "policy/list_unsubscribe.h"
#include "policy/return_path.h"

namespace ringmail::mta {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

bool prepend_feedback_id(const conf::Config& config, queue::SpoolMessage& message) {
  if (!config.policy || !config.policy->return_path) return false;
  for (const HeaderField& field : parse_header_section(message.content).fields) {
    if (iequals(field.name, policy::kFeedbackIdHeaderName)) return false;
  }
  message.content.insert(0, policy::feedback_id_field(*config.policy->return_path, message));
  message.meta.size = message.content.size();
  return true;
}

bool defer_signing_for_unsubscribe(const conf::Config& config, queue::SpoolMessage& message) {
  const conf::ListUnsubscribeConfig* unsubscribe = config.policy && config.policy->list_unsubscribe
                                                       ? &*config.policy->list_unsubscribe
                                                       : nullptr;
  if (!unsubscribe || message.meta.campaign.empty()) return false;  // the common case: no parse
  bool own = false;
  for (const HeaderField& field : parse_header_section(message.content).fields) {
    own |= iequals(field.name, policy::kListUnsubscribeHeaderName);
  }
  if (!policy::adds_list_unsubscribe(unsubscribe, message, own)) return false;
  message.meta.sign_at_delivery = true;
  return true;
}

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
