// tests/policy/feedback_attribution_test.cc — which message a report is
// about (verified tokens only) and what follows from it: table tests of
// the decision for every kind of report, with and without the stored
// message, and one pass over real corpus reports.
#include "policy/feedback_attribution.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "tests/support/feedback_corpus.h"

namespace ringmail::policy {
namespace {

using test_support::read_feedback_corpus;

const std::string kKey = "0123456789abcdef0123456789abcdef";
const std::string kOldKey = "fedcba9876543210fedcba9876543210";
const std::vector<std::string> kKeys = {kKey, kOldKey};
constexpr const char* kId = "0190f3a2b4c5d6e7f809";
constexpr const char* kOtherId = "0190f3a2b4c5d6e7f80a";

std::string verp(const char* id, uint32_t index, const std::string& key = kKey) {
  return *verp_local_part({queue::MessageId{id}, index}, key) + "@bounces.example.test";
}

std::string ref(const char* id, uint32_t index, std::string tenant, std::string campaign,
                const std::string& key = kKey) {
  return *encode_ref_token({queue::MessageId{id}, index, std::move(tenant), std::move(campaign)},
                           key);
}

mail::FeedbackReport report_with_ref(const std::string& value) {
  mail::FeedbackReport report;
  report.kind = mail::FeedbackKind::Arf;
  report.original = mail::ReturnedOriginal{};
  report.original->headers.push_back({"X-Ringmail-Ref", value});
  return report;
}

FeedbackSubject verp_subject(const char* id, uint32_t index) {
  return {AttributedBy::verp, queue::MessageId{id}, index, {}, {}};
}

// --- tokens ------------------------------------------------------------

TEST(ReadFeedbackTokens, Table) {
  const std::string good_ref = ref(kId, 2, "app1", "spring");
  std::string forged_verp = verp(kId, 1);
  forged_verp[10] = forged_verp[10] == 'a' ? 'b' : 'a';
  std::string forged_ref = good_ref;
  forged_ref[12] = forged_ref[12] == 'a' ? 'b' : 'a';
  const FeedbackSubject ref_subject{AttributedBy::ref, queue::MessageId{kId}, 2, "app1", "spring"};
  const struct {
    const char* name;
    std::vector<std::string> rcpts;
    std::optional<std::string> ref_header;
    std::vector<FeedbackSubject> subjects;
    size_t forged;
  } kCases[] = {
      {"one VERP recipient", {verp(kId, 1)}, std::nullopt, {verp_subject(kId, 1)}, 0},
      {"upper-cased by a relay",
       {[] {
         std::string a = verp(kId, 1);
         for (char& c : a) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
         return a;
       }()},
       std::nullopt,
       {verp_subject(kId, 1)},
       0},
      {"an older key still verifies",
       {verp(kId, 4, kOldKey)},
       std::nullopt,
       {verp_subject(kId, 4)},
       0},
      {"two recipients, one twice",
       {verp(kId, 1), verp(kOtherId, 0), verp(kId, 1)},
       std::nullopt,
       {verp_subject(kId, 1), verp_subject(kOtherId, 0)},
       0},
      {"VERP wins over the ref header", {verp(kId, 1)}, good_ref, {verp_subject(kId, 1)}, 0},
      {"abuse@ is no token: the ref header",
       {"abuse@bounces.example.test"},
       good_ref,
       {ref_subject},
       0},
      {"forged VERP, no ref", {forged_verp}, std::nullopt, {}, 1},
      {"forged VERP, good ref: the ref", {forged_verp}, good_ref, {ref_subject}, 1},
      {"forged ref", {"fbl@bounces.example.test"}, forged_ref, {}, 1},
      {"a key nobody has", {verp(kId, 1, std::string(32, 'k'))}, std::nullopt, {}, 1},
      {"b- but not a token", {"b-hello@bounces.example.test"}, std::nullopt, {}, 1},
      {"nothing at all", {"postmaster@bounces.example.test"}, std::nullopt, {}, 0},
  };
  for (const auto& c : kCases) {
    mail::FeedbackReport report;
    if (c.ref_header) report = report_with_ref(*c.ref_header);
    const FeedbackTokens tokens = read_feedback_tokens(c.rcpts, report, kKeys);
    EXPECT_EQ(tokens.subjects, c.subjects) << c.name;
    EXPECT_EQ(tokens.forged.size(), c.forged) << c.name;
  }
}

TEST(ReadFeedbackTokens, ForgedTokensAreNamedShortly) {
  mail::FeedbackReport report = report_with_ref("1" + std::string(300, 'a'));
  const FeedbackTokens tokens =
      read_feedback_tokens(std::vector<std::string>{"fbl@x.test"}, report, kKeys);
  ASSERT_EQ(tokens.forged.size(), 1u);
  EXPECT_LT(tokens.forged[0].size(), 80u);
  EXPECT_TRUE(tokens.forged[0].starts_with("X-Ringmail-Ref 1aaa")) << tokens.forged[0];
}

// --- decisions ---------------------------------------------------------

mail::FeedbackReport dsn(mail::DsnAction action, std::string status, std::string diagnostic,
                         std::string final_recipient = "user@example.net") {
  mail::FeedbackReport report;
  report.kind = mail::FeedbackKind::Dsn;
  report.subject = "Undelivered Mail Returned to Sender";
  report.dsn.reporting_mta = mail::TypedAddress{"dns", "mail.example.net"};
  mail::DsnRecipient r;
  r.final_recipient = mail::TypedAddress{"rfc822", std::move(final_recipient)};
  r.action = action;
  r.status = std::move(status);
  if (!diagnostic.empty()) {
    mail::DiagnosticCode d;
    d.type = "smtp";
    d.text = diagnostic;
    // As the parser splits it.
    d.smtp_code = std::stoi(diagnostic.substr(0, 3));
    d.enhanced = diagnostic.substr(4, 5);
    d.reply_text = diagnostic.substr(10);
    r.diagnostic_code = d;
  }
  report.dsn.recipients.push_back(r);
  report.reported_message_id = "<orig@sender.example>";
  return report;
}

mail::FeedbackReport arf(mail::ArfFeedbackType type, std::string text) {
  mail::FeedbackReport report;
  report.kind = mail::FeedbackKind::Arf;
  report.arf.feedback_type = type;
  report.arf.feedback_type_text = std::move(text);
  report.arf.user_agent = "Yahoo!-Mail-Feedback/2.0";
  report.arf.original_rcpt_to = {"redacted@yahoo.example"};
  return report;
}

mail::FeedbackReport autoreply() {
  mail::FeedbackReport report;
  report.kind = mail::FeedbackKind::AutoReply;
  report.auto_reply_rule = "Auto-Submitted: auto-replied";
  report.subject = "Out of office";
  return report;
}

mail::FeedbackReport other() {
  mail::FeedbackReport report;
  report.subject = "hello";
  return report;
}

const StoredRecipient kStored{"User@Example.NET", "app1", "spring"};

TEST(FeedbackDecision, Table) {
  using Outcome = FeedbackDecision::Outcome;
  const FeedbackSubject by_verp = verp_subject(kId, 1);
  const FeedbackSubject by_ref{AttributedBy::ref, queue::MessageId{kId}, 1, "app1", "spring"};
  const struct {
    const char* name;
    mail::FeedbackReport report;
    FeedbackSubject subject;
    std::optional<StoredRecipient> stored;
    Outcome outcome;
    FeedbackType type;
    std::string category;
    bool suppresses;
    queue::SuppressionSource source;
    bool counts_complaint;
  } kCases[] = {
      {"hard bounce", dsn(mail::DsnAction::Failed, "5.1.1", "550 5.1.1 User unknown"), by_verp,
       kStored, Outcome::record, FeedbackType::bounce, "InvalidRecipient", true,
       queue::SuppressionSource::bounce, false},
      {"mailbox full: a bounce, not suppressing",
       dsn(mail::DsnAction::Failed, "5.2.2", "552 5.2.2 Mailbox full"), by_verp, kStored,
       Outcome::record, FeedbackType::bounce, "QuotaIssues", false,
       queue::SuppressionSource::bounce, false},
      {"policy block: not the address's fault",
       dsn(mail::DsnAction::Failed, "5.7.1",
           "554 5.7.1 Service unavailable; client host blocked "
           "using zen.spamhaus.org"),
       by_verp, kStored, Outcome::record, FeedbackType::bounce, "SpamBlock", false,
       queue::SuppressionSource::bounce, false},
      {"status only, no diagnostic", dsn(mail::DsnAction::Failed, "5.1.1", ""), by_verp, kStored,
       Outcome::record, FeedbackType::bounce, "InvalidRecipient", true,
       queue::SuppressionSource::bounce, false},
      {"bad domain",
       dsn(mail::DsnAction::Failed, "5.1.2", "550 5.1.2 Host or domain name not found"), by_verp,
       kStored, Outcome::record, FeedbackType::bounce, "BadDomain", true,
       queue::SuppressionSource::bounce, false},
      {"delayed: never suppresses",
       dsn(mail::DsnAction::Delayed, "4.1.1", "450 4.1.1 User unknown, try later"), by_verp,
       kStored, Outcome::record, FeedbackType::delay, "TransientFailure", false,
       queue::SuppressionSource::bounce, false},
      {"delivered notice: logged only", dsn(mail::DsnAction::Delivered, "2.0.0", ""), by_verp,
       kStored, Outcome::log_only, FeedbackType::bounce, "", false,
       queue::SuppressionSource::bounce, false},
      {"bounce of a forgotten message", dsn(mail::DsnAction::Failed, "5.1.1", ""), by_verp,
       std::nullopt, Outcome::unattributed, FeedbackType::bounce, "", false,
       queue::SuppressionSource::bounce, false},
      {"complaint", arf(mail::ArfFeedbackType::Abuse, "abuse"), by_ref, kStored, Outcome::record,
       FeedbackType::complaint, "", true, queue::SuppressionSource::complaint, true},
      {"complaint through VERP", arf(mail::ArfFeedbackType::Abuse, "abuse"), by_verp, kStored,
       Outcome::record, FeedbackType::complaint, "", true, queue::SuppressionSource::complaint,
       true},
      {"complaint about a forgotten message: counted, nobody suppressed",
       arf(mail::ArfFeedbackType::Abuse, "abuse"), by_ref, std::nullopt, Outcome::record,
       FeedbackType::complaint, "", false, queue::SuppressionSource::complaint, true},
      {"fraud report: logged only", arf(mail::ArfFeedbackType::Fraud, "fraud"), by_ref, kStored,
       Outcome::log_only, FeedbackType::bounce, "", false, queue::SuppressionSource::bounce, false},
      {"virus report: logged only", arf(mail::ArfFeedbackType::Virus, "virus"), by_ref, kStored,
       Outcome::log_only, FeedbackType::bounce, "", false, queue::SuppressionSource::bounce, false},
      {"out of office", autoreply(), by_verp, kStored, Outcome::record, FeedbackType::autoreply,
       "AutoReply", false, queue::SuppressionSource::bounce, false},
      {"not a report", other(), by_verp, kStored, Outcome::log_only, FeedbackType::bounce, "",
       false, queue::SuppressionSource::bounce, false},
  };
  const BounceClassifier classifier;
  for (const auto& c : kCases) {
    const FeedbackDecision d =
        decide_feedback({&c.report, c.subject, c.stored, 1700000000000}, classifier);
    EXPECT_EQ(d.outcome, c.outcome) << c.name << ": " << d.why;
    EXPECT_EQ(d.id, kId) << c.name;
    if (c.outcome == Outcome::unattributed) {
      EXPECT_NE(d.why.find("not known"), std::string::npos) << c.name;
      continue;
    }
    EXPECT_EQ(d.recipient, c.stored ? "User@Example.NET" : "") << c.name;
    EXPECT_EQ(d.tenant, "app1") << c.name;
    EXPECT_EQ(d.campaign, "spring") << c.name;
    if (c.outcome == Outcome::log_only) {
      EXPECT_FALSE(d.why.empty()) << c.name;
      EXPECT_FALSE(d.suppression) << c.name;
      EXPECT_FALSE(d.stats) << c.name;
      continue;
    }
    EXPECT_EQ(d.type, c.type) << c.name;
    EXPECT_EQ(d.category, c.category) << c.name;
    ASSERT_EQ(d.suppression.has_value(), c.suppresses) << c.name;
    if (c.suppresses) {
      EXPECT_EQ(d.suppression->tenant, "app1") << c.name;
      EXPECT_EQ(d.suppression->address, "user@example.net") << c.name;
      EXPECT_EQ(d.suppression->source, c.source) << c.name;
      EXPECT_EQ(d.suppression->category, c.category) << c.name;
      EXPECT_EQ(d.suppression->campaign, "spring") << c.name;
      EXPECT_EQ(d.suppression->created_unix_ms, 1700000000000) << c.name;
      EXPECT_FALSE(d.suppression->reason.empty()) << c.name;
    }
    ASSERT_EQ(d.stats.has_value(), c.counts_complaint) << c.name;
    if (c.counts_complaint) {
      EXPECT_EQ(d.stats->tenant, "app1");
      EXPECT_EQ(d.stats->campaign, "spring");
      queue::DeliveryStats one;
      one.complaints = 1;
      EXPECT_EQ(d.stats->delta, one);
    }
  }
}

TEST(FeedbackDecision, TheStoredMessageWinsOverTheRefTokensNames) {
  const mail::FeedbackReport report = arf(mail::ArfFeedbackType::Abuse, "abuse");
  const FeedbackSubject subject{AttributedBy::ref, queue::MessageId{kId}, 0, "token-tenant",
                                "token-campaign"};
  const FeedbackDecision d = decide_feedback({&report, subject, kStored, 0}, BounceClassifier{});
  EXPECT_EQ(d.tenant, "app1");
  EXPECT_EQ(d.campaign, "spring");
  ASSERT_TRUE(d.stats);
  EXPECT_EQ(d.stats->campaign, "spring");
}

TEST(FeedbackDecision, AMessageWithoutTenantSuppressesForEveryTenant) {
  const mail::FeedbackReport report = dsn(mail::DsnAction::Failed, "5.1.1", "550 5.1.1 no");
  const FeedbackDecision d = decide_feedback(
      {&report, verp_subject(kId, 0), StoredRecipient{"a@b.test", "", ""}, 0}, BounceClassifier{});
  ASSERT_TRUE(d.suppression);
  EXPECT_EQ(d.suppression->tenant, "*");
}

TEST(FeedbackDecision, TheGroupThatNamesTheStoredRecipientIsTheOne) {
  mail::FeedbackReport report =
      dsn(mail::DsnAction::Failed, "5.1.1", "550 5.1.1 unknown user", "someone-else@example.net");
  mail::DsnRecipient mine;
  mine.final_recipient = mail::TypedAddress{"rfc822", "user@example.net"};
  mine.action = mail::DsnAction::Delayed;
  mine.status = "4.4.1";
  report.dsn.recipients.push_back(mine);
  const FeedbackDecision d =
      decide_feedback({&report, verp_subject(kId, 1), kStored, 0}, BounceClassifier{});
  EXPECT_EQ(d.type, FeedbackType::delay);
  EXPECT_FALSE(d.suppression);
  // Unknown to the report: the failed group.
  const FeedbackDecision other = decide_feedback(
      {&report, verp_subject(kId, 1), StoredRecipient{"x@y.test", "t", ""}, 0}, BounceClassifier{});
  EXPECT_EQ(other.type, FeedbackType::bounce);
}

TEST(FeedbackDecision, TheReportObjectKeepsItsOrderAndOnlyWhatWasThere) {
  const mail::FeedbackReport report =
      dsn(mail::DsnAction::Failed, "5.1.1", "550 5.1.1 User unknown");
  const FeedbackDecision d =
      decide_feedback({&report, verp_subject(kId, 1), kStored, 0}, BounceClassifier{});
  std::vector<std::string> names;
  for (const auto& [name, value] : d.report) names.push_back(name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"kind", "attributed_by", "reporting_mta", "action", "status",
                                      "diagnostic_code", "reported_message_id", "subject"}));
  EXPECT_EQ(d.report[0].second, "dsn");
  EXPECT_EQ(d.report[5].second, "smtp; 550 5.1.1 User unknown");
}

// The real thing: corpus reports through the parser, then the decision.
TEST(FeedbackDecision, CorpusReports) {
  const struct {
    const char* file;
    FeedbackDecision::Outcome outcome;
    FeedbackType type;
    bool suppresses;
  } kCases[] = {
      {"postfix_bounce.eml", FeedbackDecision::Outcome::record, FeedbackType::bounce, true},
      {"postfix_delay.eml", FeedbackDecision::Outcome::record, FeedbackType::delay, false},
      {"yahoo_arf.eml", FeedbackDecision::Outcome::record, FeedbackType::complaint, true},
      {"arf_fraud.eml", FeedbackDecision::Outcome::log_only, FeedbackType::bounce, false},
      {"rfc3834_autoreply.eml", FeedbackDecision::Outcome::record, FeedbackType::autoreply, false},
      {"german_ooo.eml", FeedbackDecision::Outcome::record, FeedbackType::autoreply, false},
      {"plain.eml", FeedbackDecision::Outcome::log_only, FeedbackType::bounce, false},
  };
  for (const auto& c : kCases) {
    const std::string raw = read_feedback_corpus(c.file);
    ASSERT_FALSE(raw.empty()) << c.file;
    const mail::FeedbackReport report = mail::parse_feedback_report(raw);
    const StoredRecipient stored{"nosuchuser@example.net", "app1", "spring"};
    const FeedbackDecision d =
        decide_feedback({&report, verp_subject(kId, 0), stored, 0}, BounceClassifier{});
    EXPECT_EQ(d.outcome, c.outcome) << c.file << ": " << d.why;
    if (c.outcome == FeedbackDecision::Outcome::record) {
      EXPECT_EQ(d.type, c.type) << c.file;
    }
    EXPECT_EQ(d.suppression.has_value(), c.suppresses) << c.file;
  }
}

// --- unsubscribes ------------------------------------------------------

TEST(DecideUnsubscribe, Table) {
  const StoredRecipient stored{"Ann@Example.test", "app1", "spring"};
  const struct {
    const char* name;
    UnsubscribeToken token;
    UnsubscribeMethod method;
    std::optional<StoredRecipient> stored;
    FeedbackDecision::Outcome outcome;
    std::string recipient, tenant, campaign, suppressed_for, reason;
    bool counted;
  } kCases[] = {
      {"one-click, message known",
       {queue::MessageId{kId}, 1, "app1", "ann@example.test"},
       UnsubscribeMethod::one_click,
       stored,
       FeedbackDecision::Outcome::record,
       "ann@example.test",
       "app1",
       "spring",
       "app1",
       "unsubscribe: one-click",
       true},
      {"one-click, message forgotten: the token's address, no campaign",
       {queue::MessageId{kId}, 1, "app1", "ann@example.test"},
       UnsubscribeMethod::one_click,
       std::nullopt,
       FeedbackDecision::Outcome::record,
       "ann@example.test",
       "app1",
       "",
       "app1",
       "unsubscribe: one-click",
       true},
      {"mailto: the stored address",
       {queue::MessageId{kId}, 1, "app1", ""},
       UnsubscribeMethod::mailto,
       stored,
       FeedbackDecision::Outcome::record,
       "Ann@Example.test",
       "app1",
       "spring",
       "app1",
       "unsubscribe: mailto",
       true},
      {"mailto, message forgotten: nobody to name",
       {queue::MessageId{kId}, 1, "app1", ""},
       UnsubscribeMethod::mailto,
       std::nullopt,
       FeedbackDecision::Outcome::unattributed,
       "",
       "",
       "",
       "",
       "",
       false},
      {"no tenant: suppressed for every tenant, not counted without a campaign",
       {queue::MessageId{kId}, 0, "", "bob@example.test"},
       UnsubscribeMethod::one_click,
       std::nullopt,
       FeedbackDecision::Outcome::record,
       "bob@example.test",
       "",
       "",
       "*",
       "unsubscribe: one-click",
       false},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    const FeedbackDecision d = decide_unsubscribe({c.token, c.method, c.stored, 1234});
    EXPECT_EQ(d.outcome, c.outcome);
    if (c.outcome != FeedbackDecision::Outcome::record) {
      EXPECT_FALSE(d.suppression);
      EXPECT_FALSE(d.stats);
      EXPECT_NE(d.why.find("no longer known"), std::string::npos) << d.why;
      continue;
    }
    EXPECT_EQ(d.type, FeedbackType::unsubscribe);
    EXPECT_EQ(d.id, kId);
    EXPECT_EQ(d.recipient, c.recipient);
    EXPECT_EQ(d.tenant, c.tenant);
    EXPECT_EQ(d.campaign, c.campaign);
    ASSERT_TRUE(d.suppression);
    EXPECT_EQ(d.suppression->tenant, c.suppressed_for);
    std::string lowered = c.recipient;
    for (char& ch : lowered) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    EXPECT_EQ(d.suppression->address, lowered);
    EXPECT_EQ(d.suppression->source, queue::SuppressionSource::unsubscribe);
    EXPECT_EQ(d.suppression->reason, c.reason);
    EXPECT_EQ(d.suppression->created_unix_ms, 1234);
    EXPECT_EQ(d.stats.has_value(), c.counted);
    if (d.stats) {
      EXPECT_EQ(d.stats->delta.unsubscribes, 1u);
      EXPECT_EQ(d.stats->delta.complaints, 0u);
      EXPECT_EQ(d.stats->tenant, c.tenant);
      EXPECT_EQ(d.stats->campaign, c.campaign);
    }
    ASSERT_EQ(d.report.size(), 2u);
    EXPECT_EQ(d.report[1].second, unsubscribe_method_name(c.method));
  }
}

}  // namespace
}  // namespace ringmail::policy
