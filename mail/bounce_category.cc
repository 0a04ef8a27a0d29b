#include "mail/bounce_category.h"

#include <array>

namespace ringmail::mail {
namespace {

struct CategoryName {
  BounceCategory category;
  std::string_view name;
};

constexpr std::array kCategoryNames = {
    CategoryName{BounceCategory::InvalidRecipient, "InvalidRecipient"},
    CategoryName{BounceCategory::DNSFailure, "DNSFailure"},
    CategoryName{BounceCategory::SpamBlock, "SpamBlock"},
    CategoryName{BounceCategory::SpamContent, "SpamContent"},
    CategoryName{BounceCategory::ProhibitedAttachment, "ProhibitedAttachment"},
    CategoryName{BounceCategory::RelayDenied, "RelayDenied"},
    CategoryName{BounceCategory::AutoReply, "AutoReply"},
    CategoryName{BounceCategory::TransientFailure, "TransientFailure"},
    CategoryName{BounceCategory::Subscribe, "Subscribe"},
    CategoryName{BounceCategory::Unsubscribe, "Unsubscribe"},
    CategoryName{BounceCategory::ChallengeResponse, "ChallengeResponse"},
    CategoryName{BounceCategory::BadConfiguration, "BadConfiguration"},
    CategoryName{BounceCategory::BadConnection, "BadConnection"},
    CategoryName{BounceCategory::BadDomain, "BadDomain"},
    CategoryName{BounceCategory::ContentRelated, "ContentRelated"},
    CategoryName{BounceCategory::InactiveMailbox, "InactiveMailbox"},
    CategoryName{BounceCategory::InvalidSender, "InvalidSender"},
    CategoryName{BounceCategory::MessageExpired, "MessageExpired"},
    CategoryName{BounceCategory::NoAnswerFromHost, "NoAnswerFromHost"},
    CategoryName{BounceCategory::PolicyRelated, "PolicyRelated"},
    CategoryName{BounceCategory::ProtocolErrors, "ProtocolErrors"},
    CategoryName{BounceCategory::QuotaIssues, "QuotaIssues"},
    CategoryName{BounceCategory::RelayingIssues, "RelayingIssues"},
    CategoryName{BounceCategory::RoutingErrors, "RoutingErrors"},
    CategoryName{BounceCategory::SpamRelated, "SpamRelated"},
    CategoryName{BounceCategory::VirusRelated, "VirusRelated"},
    CategoryName{BounceCategory::AuthenticationFailed, "AuthenticationFailed"},
    CategoryName{BounceCategory::TooManyRecipients, "TooManyRecipients"},
    CategoryName{BounceCategory::Uncategorized, "Uncategorized"},
};

}  // namespace

std::string_view bounce_category_name(BounceCategory category) {
  for (const auto& entry : kCategoryNames) {
    if (entry.category == category) return entry.name;
  }
  return "Uncategorized";
}

std::optional<BounceCategory> parse_bounce_category(std::string_view name) {
  for (const auto& entry : kCategoryNames) {
    if (entry.name == name) return entry.category;
  }
  return std::nullopt;
}

const std::vector<BounceCategory>& all_bounce_categories() {
  static const std::vector<BounceCategory> all = [] {
    std::vector<BounceCategory> out;
    for (const auto& entry : kCategoryNames) out.push_back(entry.category);
    return out;
  }();
  return all;
}

}  // namespace ringmail::mail
