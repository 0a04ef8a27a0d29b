// policy/feedback_attribution.h — what a message to the feedback listener
// means for Ringmail (CONTRACT.md "Feedback, suppression and compliance in
// detail"): which sent message and recipient it is about, and what follows
// from it: a Feedback record, a suppression, a complaint count.
//
// Owns the rules, in two pure steps with the spool look-up between them
// (the caller's, mta/feedback_processor.h):
//   1. read_feedback_tokens(): the subjects a report names through a token
//      that verifies — the VERP local part `b-TOKEN` of each RCPT address,
//      or, when no RCPT carries one that verifies (ARF reports go to an
//      abuse or fbl address, with the recipient redacted), the
//      `X-Ringmail-Ref` header of the returned original. A token that does
//      not verify is forged (or from a rotated-out key): never acted on.
//   2. decide_feedback(): one subject, what the spool knows of its message,
//      and the parsed report in; the decision out:
//        DSN Action failed   -> "bounce", category from the classifier; a
//                               hard category suppresses (source bounce)
//        DSN Action delayed  -> "delay", never suppresses
//        ARF abuse           -> "complaint": suppresses (source complaint)
//                               and counts one complaint for the campaign
//                               and the tenant
//        ARF of another type, DSN delivered/relayed/expanded, anything
//        that is no report   -> logged only
//        auto-reply          -> "autoreply" (category AutoReply), never
//                               suppresses
//      Without the stored message a VERP subject cannot be attributed (the
//      token names no tenant or campaign); a ref subject still is, to the
//      tenant and campaign its token names, but nobody is suppressed, as
//      the recipient's address is unknown.
//
// Pure: facts in, decisions out, the time passed in; no I/O, no clock, no
// logging. Any thread. SECURITY: the report is untrusted input from
// anyone; only what a verified token names is believed, and the recipient
// address that is suppressed is always the one the spool stored, never one
// read from the report.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mail/feedback_report.h"
#include "policy/bounce_classifier.h"
#include "policy/feedback_token.h"
#include "queue/campaign_records.h"
#include "queue/suppression_store.h"

namespace ringmail::policy {

// CONTRACT's feedback_type values.
enum class FeedbackType { bounce, delay, complaint, autoreply, unsubscribe };
std::string_view feedback_type_name(FeedbackType type);

enum class AttributedBy { verp, ref };
std::string_view attributed_by_name(AttributedBy by);

// A sent message's recipient, as a verified token names it.
struct FeedbackSubject {
  AttributedBy by = AttributedBy::verp;
  queue::MessageId message;
  uint32_t recipient = 0;  // index in the message's envelope
  // From a ref token only (a VERP token carries neither).
  std::string tenant;
  std::string campaign;
  friend bool operator==(const FeedbackSubject&, const FeedbackSubject&) = default;
};

struct FeedbackTokens {
  // Distinct subjects, in RCPT order; the ref header's alone when no RCPT
  // named one. Empty: the report cannot be attributed.
  std::vector<FeedbackSubject> subjects;
  // Tokens that did not verify, for the log: "RCPT b-1abc…: bad_mac",
  // "X-Ringmail-Ref: bad_length".
  std::vector<std::string> forged;
};

// rcpt_addresses: the envelope recipients as received (all at the return
// path domain; the listener refused the rest). A local part without the
// "b-" prefix (abuse@, fbl@) is no token and not forged.
FeedbackTokens read_feedback_tokens(std::span<const std::string> rcpt_addresses,
                                    const mail::FeedbackReport& report, TokenKeys keys);

// What the spool still knows of the subject's message (in the spool, its
// status record, or its dead letter).
struct StoredRecipient {
  std::string address;  // the recipient at the token's index, as sent
  std::string tenant;
  std::string campaign;
};

struct FeedbackFacts {
  const mail::FeedbackReport* report = nullptr;  // required
  FeedbackSubject subject;
  // nullopt: the message is not known (never was, or forgotten after
  // spool.keep_status), or has no recipient at that index.
  std::optional<StoredRecipient> stored;
  int64_t now_unix_ms = 0;  // the suppression's created time
};

struct FeedbackDecision {
  enum class Outcome {
    record,        // a Feedback record (and what it carries below)
    log_only,      // a report Ringmail does not act on: logged
    unattributed,  // nobody to attribute it to: logged and dropped
  };
  Outcome outcome = Outcome::unattributed;
  std::string why;  // for the log, with log_only and unattributed
  FeedbackType type = FeedbackType::bounce;
  // The record's fields (CONTRACT "Feedback").
  std::string id;
  std::string recipient;  // "" when only a ref token without the stored message named it
  std::string tenant;
  std::string campaign;
  std::string category;  // bounce category name; "" for complaints
  // The record's "report" object: what the report said, in this order,
  // only the fields it had (kind, attributed_by, reporting_mta, action,
  // status, diagnostic_code, remote_mta, feedback_type, user_agent,
  // source_ip, arrival_date, original_mail_from, reported_message_id,
  // auto_reply_rule, subject).
  std::vector<std::pair<std::string, std::string>> report;
  std::optional<queue::SuppressionEntry> suppression;
  std::optional<queue::StatsAddition> stats;  // a complaint's count
};

FeedbackDecision decide_feedback(const FeedbackFacts& facts, const BounceClassifier& classifier);

// An unsubscribe (policy/unsubscribe_request.h, or mail to the mailto
// address): one verified token and what the spool knows of its message.
enum class UnsubscribeMethod { one_click, mailto };
std::string_view unsubscribe_method_name(UnsubscribeMethod method);  // "one-click", "mailto"

struct UnsubscribeFacts {
  UnsubscribeToken token;  // verified
  UnsubscribeMethod method = UnsubscribeMethod::one_click;
  std::optional<StoredRecipient> stored;  // nullopt: the message is not known
  int64_t now_unix_ms = 0;
};

// A record of type "unsubscribe" for the token's tenant, suppressing the
// recipient (source unsubscribe; tenant "" suppresses for "*") and counting
// one unsubscribe for the campaign and the tenant. The address is the
// token's (authenticated) or else the stored one; with neither (a mailto
// token about a message forgotten since): unattributed.
FeedbackDecision decide_unsubscribe(const UnsubscribeFacts& facts);

}  // namespace ringmail::policy
