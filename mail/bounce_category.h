// mail/bounce_category.h — the fixed list of bounce categories (CONTRACT.md
// "Bounce categories", KumoMTA's names) and their names.
//
// Owns: the enum and its text form, used by every layer: the classifier
// that picks one, the config rules that name one, the replies and records
// that carry one. Pure; any thread.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace ringmail::mail {

enum class BounceCategory {
  InvalidRecipient,
  DNSFailure,
  SpamBlock,
  SpamContent,
  ProhibitedAttachment,
  RelayDenied,
  AutoReply,
  TransientFailure,
  Subscribe,
  Unsubscribe,
  ChallengeResponse,
  BadConfiguration,
  BadConnection,
  BadDomain,
  ContentRelated,
  InactiveMailbox,
  InvalidSender,
  MessageExpired,
  NoAnswerFromHost,
  PolicyRelated,
  ProtocolErrors,
  QuotaIssues,
  RelayingIssues,
  RoutingErrors,
  SpamRelated,
  VirusRelated,
  AuthenticationFailed,
  TooManyRecipients,
  Uncategorized,
};

std::string_view bounce_category_name(BounceCategory category);
std::optional<BounceCategory> parse_bounce_category(std::string_view name);
// Every category in CONTRACT order.
const std::vector<BounceCategory>& all_bounce_categories();

}  // namespace ringmail::mail
