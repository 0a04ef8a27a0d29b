// policy/feedback_attribution.cc — the attribution and decision rules of
// policy/feedback_attribution.h.
#include "policy/feedback_attribution.h"

#include <algorithm>

#include "mail/bounce_category.h"

namespace ringmail::policy {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

// What comes before the last '@' (the whole address when there is none).
std::string_view local_part_of(std::string_view address) {
  const size_t at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

// A token is shown in logs by its start only: enough to find it, and the
// rest adds nothing.
std::string shortened(std::string_view text) {
  constexpr size_t kShown = 24;
  return text.size() <= kShown ? std::string(text) : std::string(text.substr(0, kShown)) + "...";
}

void add_subject(FeedbackTokens* tokens, FeedbackSubject subject) {
  if (std::find(tokens->subjects.begin(), tokens->subjects.end(), subject) ==
      tokens->subjects.end())
    tokens->subjects.push_back(std::move(subject));
}

// The per-recipient group a subject is about: the one that names the
// stored address, else the only one, else the first failed, else the
// first delayed, else the first.
const mail::DsnRecipient* pick_group(const mail::DsnReport& dsn,
                                     const std::optional<StoredRecipient>& stored) {
  if (dsn.recipients.empty()) return nullptr;
  if (stored) {
    for (const mail::DsnRecipient& r : dsn.recipients) {
      if ((r.final_recipient && iequals(r.final_recipient->address, stored->address)) ||
          (r.original_recipient && iequals(r.original_recipient->address, stored->address)))
        return &r;
    }
  }
  if (dsn.recipients.size() == 1) return &dsn.recipients.front();
  for (mail::DsnAction wanted : {mail::DsnAction::Failed, mail::DsnAction::Delayed}) {
    for (const mail::DsnRecipient& r : dsn.recipients) {
      if (r.action == wanted) return &r;
    }
  }
  return &dsn.recipients.front();
}

struct ReplyFacts {
  int code = 0;
  std::string enhanced;
  std::string text;
};

// The reply behind a DSN group, for the classifier: its Diagnostic-Code,
// else its Status alone. A group with neither is classified by its action
// (5xx for failed, 4xx for delayed) and nothing more.
ReplyFacts reply_of(const mail::DsnRecipient& group) {
  ReplyFacts reply;
  if (group.diagnostic_code) {
    reply.code = group.diagnostic_code->smtp_code;
    reply.enhanced = group.diagnostic_code->enhanced;
    reply.text = group.diagnostic_code->smtp_code != 0 ? group.diagnostic_code->reply_text
                                                       : group.diagnostic_code->text;
  }
  if (reply.enhanced.empty()) reply.enhanced = group.status;
  if (reply.code == 0) {
    const char klass = !reply.enhanced.empty() ? reply.enhanced.front() : '\0';
    if (klass == '5' || klass == '4' || klass == '2') {
      reply.code = (klass - '0') * 100 + 50;
    } else {
      reply.code = group.action == mail::DsnAction::Delayed ? 450 : 550;
    }
  }
  return reply;
}

std::string describe(const ReplyFacts& reply) {
  std::string out = std::to_string(reply.code);
  if (!reply.enhanced.empty()) out += " " + reply.enhanced;
  if (!reply.text.empty()) out += " " + reply.text;
  return out;
}

// Cut at a character boundary (the parser's values are valid UTF-8).
std::string bounded(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  text.resize(cut);
  return text;
}

class ReportFields {
 public:
  void add(std::string name, std::string_view value) {
    if (!value.empty()) fields_.emplace_back(std::move(name), std::string(value));
  }
  void add(std::string name, const std::optional<mail::TypedAddress>& value) {
    if (value) add(std::move(name), value->address);
  }
  std::vector<std::pair<std::string, std::string>> take() { return std::move(fields_); }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

}  // namespace

std::string_view feedback_type_name(FeedbackType type) {
  switch (type) {
    case FeedbackType::bounce:
      return "bounce";
    case FeedbackType::delay:
      return "delay";
    case FeedbackType::complaint:
      return "complaint";
    case FeedbackType::autoreply:
      return "autoreply";
    case FeedbackType::unsubscribe:
      return "unsubscribe";
  }
  return "bounce";
}

std::string_view attributed_by_name(AttributedBy by) {
  switch (by) {
    case AttributedBy::verp:
      return "verp";
    case AttributedBy::ref:
      return "ref";
  }
  return "verp";
}

FeedbackTokens read_feedback_tokens(std::span<const std::string> rcpt_addresses,
                                    const mail::FeedbackReport& report, TokenKeys keys) {
  FeedbackTokens tokens;
  for (const std::string& address : rcpt_addresses) {
    const std::string_view local = local_part_of(address);
    Decoded<VerpToken> decoded = decode_verp_local_part(local, keys);
    if (decoded.problem == TokenProblem::bad_prefix) continue;  // abuse@, fbl@: no token
    if (!decoded.token) {
      tokens.forged.push_back("RCPT " + shortened(local) + ": " +
                              std::string(token_problem_name(decoded.problem)));
      continue;
    }
    add_subject(&tokens,
                FeedbackSubject{
                    AttributedBy::verp, decoded.token->message, decoded.token->recipient, {}, {}});
  }
  if (!tokens.subjects.empty() || !report.original) return tokens;
  const std::optional<std::string> ref = report.original->header(kRefHeaderName);
  if (!ref) return tokens;
  Decoded<RefToken> decoded = decode_ref_token(*ref, keys);
  if (!decoded.token) {
    tokens.forged.push_back(std::string(kRefHeaderName) + " " + shortened(*ref) + ": " +
                            std::string(token_problem_name(decoded.problem)));
    return tokens;
  }
  add_subject(&tokens, FeedbackSubject{AttributedBy::ref, std::move(decoded.token->message),
                                       decoded.token->recipient, std::move(decoded.token->tenant),
                                       std::move(decoded.token->campaign)});
  return tokens;
}

FeedbackDecision decide_feedback(const FeedbackFacts& facts, const BounceClassifier& classifier) {
  const mail::FeedbackReport& report = *facts.report;
  const FeedbackSubject& subject = facts.subject;
  FeedbackDecision d;
  d.id = subject.message.value;
  if (facts.stored) {
    d.recipient = facts.stored->address;
    d.tenant = facts.stored->tenant;
    d.campaign = facts.stored->campaign;
  } else if (subject.by == AttributedBy::ref) {
    d.tenant = subject.tenant;
    d.campaign = subject.campaign;
  } else {
    d.outcome = FeedbackDecision::Outcome::unattributed;
    d.why = "message " + d.id + " recipient " + std::to_string(subject.recipient) +
            " is not known to the spool (any more)";
    return d;
  }

  ReportFields fields;
  fields.add("kind", mail::feedback_kind_name(report.kind));
  fields.add("attributed_by", attributed_by_name(subject.by));
  d.outcome = FeedbackDecision::Outcome::record;
  std::string reason;
  bool suppresses = false;
  queue::SuppressionSource source = queue::SuppressionSource::bounce;
  switch (report.kind) {
    case mail::FeedbackKind::Dsn: {
      fields.add("reporting_mta", report.dsn.reporting_mta);
      const mail::DsnRecipient* group = pick_group(report.dsn, facts.stored);
      if (!group) {
        d.outcome = FeedbackDecision::Outcome::log_only;
        d.why = "a delivery-status report without per-recipient fields";
        break;
      }
      fields.add("action", mail::dsn_action_name(group->action));
      fields.add("status", group->status);
      if (group->diagnostic_code) {
        const mail::DiagnosticCode& diagnostic = *group->diagnostic_code;
        fields.add("diagnostic_code", diagnostic.type.empty()
                                          ? diagnostic.text
                                          : diagnostic.type + "; " + diagnostic.text);
      }
      fields.add("remote_mta", group->remote_mta);
      if (group->action != mail::DsnAction::Failed && group->action != mail::DsnAction::Delayed) {
        d.outcome = FeedbackDecision::Outcome::log_only;
        d.why = "DSN action " + std::string(mail::dsn_action_name(group->action)) +
                ": nothing to act on";
        break;
      }
      const ReplyFacts reply = reply_of(*group);
      const mail::BounceCategory category =
          classifier.classify(reply.code, reply.enhanced, reply.text);
      d.category = mail::bounce_category_name(category);
      if (group->action == mail::DsnAction::Delayed) {
        d.type = FeedbackType::delay;
        break;
      }
      d.type = FeedbackType::bounce;
      suppresses = is_hard_bounce(category);
      source = queue::SuppressionSource::bounce;
      reason = "bounce: " + describe(reply);
      break;
    }
    case mail::FeedbackKind::Arf: {
      const mail::ArfReport& arf = report.arf;
      fields.add("reporting_mta", arf.reporting_mta);
      fields.add("feedback_type", arf.feedback_type_text);
      fields.add("user_agent", arf.user_agent);
      fields.add("source_ip", arf.source_ip);
      fields.add("arrival_date", arf.arrival_date);
      fields.add("original_mail_from", arf.original_mail_from);
      if (arf.feedback_type != mail::ArfFeedbackType::Abuse) {
        d.outcome = FeedbackDecision::Outcome::log_only;
        d.why = "abuse report of type " +
                (arf.feedback_type_text.empty() ? std::string("(none)") : arf.feedback_type_text) +
                ": only abuse counts as a complaint";
        break;
      }
      d.type = FeedbackType::complaint;
      suppresses = true;
      source = queue::SuppressionSource::complaint;
      reason = "complaint: abuse report";
      if (!arf.user_agent.empty()) reason += " by " + arf.user_agent;
      if (!d.tenant.empty() || !d.campaign.empty()) {
        queue::StatsAddition addition{d.tenant, d.campaign, {}};
        addition.delta.complaints = 1;
        d.stats = std::move(addition);
      }
      break;
    }
    case mail::FeedbackKind::AutoReply:
      d.type = FeedbackType::autoreply;
      d.category = mail::bounce_category_name(mail::BounceCategory::AutoReply);
      fields.add("auto_reply_rule", report.auto_reply_rule);
      break;
    case mail::FeedbackKind::Other:
      d.outcome = FeedbackDecision::Outcome::log_only;
      d.why = "neither a delivery-status report, an abuse report nor an auto-reply";
      break;
  }
  fields.add("reported_message_id", report.reported_message_id);
  fields.add("subject", report.subject);
  d.report = fields.take();
  if (d.outcome == FeedbackDecision::Outcome::record && suppresses && facts.stored &&
      !facts.stored->address.empty()) {
    queue::SuppressionEntry entry;
    entry.tenant = d.tenant.empty() ? std::string(queue::kEveryTenant) : d.tenant;
    entry.address = lowered(d.recipient);
    entry.reason = bounded(std::move(reason), queue::kMaxSuppressionReason);
    entry.source = source;
    entry.category = d.category;
    entry.campaign = d.campaign;
    entry.created_unix_ms = facts.now_unix_ms;
    d.suppression = std::move(entry);
  }
  return d;
}

FeedbackDecision decide_unsubscribe(const UnsubscribeFacts& facts) {
  FeedbackDecision d;
  const UnsubscribeToken& token = facts.token;
  d.id = token.message.value;
  // The URL's token carries the address; the mailto's does not, and then
  // only the spool knows it.
  d.recipient = !token.address.empty() ? token.address
                : facts.stored         ? facts.stored->address
                                       : std::string();
  if (d.recipient.empty()) {
    d.why = "unsubscribe for " + d.id + " recipient " + std::to_string(token.recipient) +
            ": the message is no longer known and the token names no address";
    return d;
  }
  d.outcome = FeedbackDecision::Outcome::record;
  d.type = FeedbackType::unsubscribe;
  d.tenant = token.tenant;
  if (facts.stored) d.campaign = facts.stored->campaign;
  ReportFields fields;
  fields.add("kind", "unsubscribe");
  fields.add("method", unsubscribe_method_name(facts.method));
  d.report = fields.take();
  queue::SuppressionEntry entry;
  entry.tenant = d.tenant.empty() ? std::string(queue::kEveryTenant) : d.tenant;
  entry.address = lowered(d.recipient);
  entry.reason = std::string("unsubscribe: ") + std::string(unsubscribe_method_name(facts.method));
  entry.source = queue::SuppressionSource::unsubscribe;
  entry.campaign = d.campaign;
  entry.created_unix_ms = facts.now_unix_ms;
  d.suppression = std::move(entry);
  if (!d.tenant.empty() || !d.campaign.empty()) {
    queue::StatsAddition addition{d.tenant, d.campaign, {}};
    addition.delta.unsubscribes = 1;
    d.stats = std::move(addition);
  }
  return d;
}

std::string_view unsubscribe_method_name(UnsubscribeMethod method) {
  return method == UnsubscribeMethod::mailto ? "mailto" : "one-click";
}

}  // namespace ringmail::policy
