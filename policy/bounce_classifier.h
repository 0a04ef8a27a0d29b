// policy/bounce_classifier.h — maps an SMTP reply (or a local delivery
// failure) to one bounce category of CONTRACT.md.
//
// Owns: the shipped default rules (the common replies of large mailbox
// providers and of the usual MTAs) and the order in which rules are tried:
// the operator's policy.bounce_rules first, then the shipped rules, then a
// fallback on the reply class. First match wins.
//
// Threads: immutable after construction; classify() is pure and may be
// called from any thread at once. Network: classify() takes text from remote
// servers; regexes are searched over it, never compiled from it.
#pragma once

#include <string_view>
#include <vector>

#include "conf/config_policy.h"

namespace ringmail::policy {

class BounceClassifier {
 public:
  // operator_rules: policy.bounce_rules, tried before the shipped rules.
  explicit BounceClassifier(std::vector<conf::BounceRule> operator_rules = {});

  // code: the SMTP reply code (e.g. 550); enhanced: "5.1.1" or "" when the
  // reply had none; text: the reply text, lines joined with a space,
  // without code and enhanced code. A reply that no rule matches falls back
  // on its enhanced code's class/subject, then on its code: 4xx ->
  // TransientFailure, 5xx -> Uncategorized.
  conf::BounceCategory classify(int code, std::string_view enhanced, std::string_view text) const;

  // The shipped rules, in the order they are tried (for tests and docs).
  static const std::vector<conf::BounceRule>& default_rules();

 private:
  std::vector<conf::BounceRule> operator_rules_;
};

// Hard bounces suppress the address for its tenant (CONTRACT.md):
// InvalidRecipient, BadDomain, InactiveMailbox.
bool is_hard_bounce(conf::BounceCategory category);

}  // namespace ringmail::policy
