// policy/backoff_defaults.cc — the shipped backoff rules, with their sources.
#include "policy/backoff_defaults.h"

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace ringmail::policy {
namespace {

using conf::BackoffAction;
using conf::BackoffRule;
using conf::BackoffWhen;
using conf::make_response_match;
using std::chrono::hours;
using std::chrono::minutes;

BackoffAction suspend(conf::Duration duration) {
  BackoffAction action;
  action.kind = BackoffAction::Kind::suspend;
  action.suspend = duration;
  return action;
}

BackoffAction rate_cut(double factor, conf::Duration recover_after) {
  BackoffAction action;
  action.kind = BackoffAction::Kind::rate_factor;
  action.rate_factor = factor;
  action.recover_after = recover_after;
  return action;
}

BackoffRule rule(std::optional<int> code, std::string enhanced, std::string text,
                 BackoffAction action, std::optional<BackoffWhen> when = std::nullopt) {
  return BackoffRule{make_response_match(code, std::move(enhanced), std::move(text)), action, when};
}

// Generic throttling texts, not tied to one provider: several servers say
// them now and then, so one reply is not enough; three within ten minutes
// on the same (source, site) are.
constexpr const char* kGenericThrottleText =
    "(?i)rate limited due to (ip|sender|domain) reputation"
    "|too many (concurrent |simultaneous )?(smtp )?(connections|sessions)";
const BackoffWhen kGenericThrottleWhen{3, minutes(10)};

std::vector<BackoffRule> make_shipped_rules() {
  std::vector<BackoffRule> rules;
  // Gmail. Source: "Gmail SMTP errors and codes"
  // (https://support.google.com/a/answer/3726730) and the page the replies
  // link to (https://support.google.com/mail/?p=UnsolicitedRateLimitError):
  //   421-4.7.28 [192.0.2.10 15] Our system has detected an unusual rate of
  //   unsolicited mail originating from your IP address. To protect our
  //   users from spam, mail sent from your IP address has been temporarily
  //   rate limited. ... - gsmtp
  // (also "... from your SPF domain", "... DKIM domain", "... containing one
  // of your URL domains"). 4.7.28 is Gmail's own code for this limit: cut
  // the rate to a trickle and let it recover over half an hour (Google gives
  // no duration; 0.1 and 30m are ours).
  rules.push_back(rule(421, "4.7.28", "", rate_cut(0.1, minutes(30))));

  // Yahoo. Replies (the codes are not on Yahoo's error page, which groups
  // them as "Message temporarily deferred (eg: TS* Errors)",
  // https://senders.yahooinc.com/smtp-error-codes/):
  //   421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to
  //   unexpected volume or user complaints - 4.16.55.1; see
  //   https://postmaster.yahooinc.com/error-codes
  // Yahoo's help (articles SLN3434 and SLN26151,
  // https://help.yahoo.com/kb/review-xx-smtp-sln26151.html) says to retry
  // 4 hours after such a deferral. TSS04 is the volume deferral and
  // clears once the volume drops: we hold 2h. TSS05 (same text, seen in
  // FortiMail's KB article 380206) and TSS09 (the IP is deferred
  // altogether, "553 5.7.2 [TSS09] All messages from 192.0.2.10 will be
  // permanently deferred; Retrying will NOT succeed", also sent as a 421)
  // are held the documented 4h. TSS09 matches on any code: its 5xx form is
  // about the source IP, not the recipient.
  rules.push_back(rule(421, "", "\\[TSS04\\]", suspend(hours(2))));
  rules.push_back(rule(421, "", "\\[TSS05\\]", suspend(hours(4))));
  rules.push_back(rule(std::nullopt, "", "\\[TSS09\\]", suspend(hours(4))));

  // Microsoft (Outlook.com, Exchange Online Protection). Source: "Fix email
  // delivery issues for error code 451 4.7.500-699 (ASxxx)" (Microsoft
  // support article 51356082-9fef-4639-a18a-fc7c5beae0c8, support.office.com;
  // now on Microsoft Learn) and the replies:
  //   451 4.7.650 The mail server [192.0.2.10] has been temporarily rate
  //   limited due to IP reputation. For e-mail delivery information, see
  //   https://postmaster.live.com
  //   451 4.7.651 ... (S3114): the same with another reason number
  //   451 4.7.500 Server busy. Please try again later from [192.0.2.10].
  //   (S77719)
  // Microsoft gives no duration (the article says the throttling goes away
  // as a sender ramps its traffic up over a few days). Ours: 1h for the
  // reputation limit, 30m for "server busy", which clears sooner.
  rules.push_back(rule(451, "4.7.650", "", suspend(hours(1))));
  rules.push_back(rule(451, "4.7.651", "", suspend(hours(1))));
  rules.push_back(rule(451, "4.7.500", "", suspend(minutes(30))));

  // Gmail 421 4.7.0, after Yahoo's 421 4.7.0 [TSS..] so those stay holds.
  // Source: the Gmail page above lists "421 4.7.0 Try again later, closing
  // connection" (a DoS limit at HELO) and the older form of the 4.7.28
  // reply, "421-4.7.0 ... suspicious due to the very low reputation of the
  // sending IP address. To protect our users from spam, mail sent from your
  // IP address has been temporarily rate limited." A gentler cut than 4.7.28.
  rules.push_back(
      rule(421, "4.7.0", "(?i)rate limited|try again later", rate_cut(0.5, minutes(30))));

  // Generic throttles (any 4xx, with or without an enhanced code), e.g.
  // "421 4.7.0 Too many concurrent SMTP connections from this IP address"
  // or "451 4.7.1 ... has been rate limited due to IP reputation".
  rules.push_back(rule(std::nullopt, "4", kGenericThrottleText, rate_cut(0.5, minutes(30)),
                       kGenericThrottleWhen));
  rules.push_back(
      rule(421, "", kGenericThrottleText, rate_cut(0.5, minutes(30)), kGenericThrottleWhen));
  return rules;
}

}  // namespace

const std::vector<conf::BackoffRule>& shipped_backoff_rules() {
  static const std::vector<conf::BackoffRule> rules = make_shipped_rules();
  return rules;
}

}  // namespace ringmail::policy
