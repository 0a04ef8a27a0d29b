// tests/mta/feedback_processor_test.cc — the feedback listener's worker on
// a memory spool: corpus reports addressed with real tokens become
// Feedback records, suppressions and complaint counts; forged and
// unattributable ones are dropped; a failure to persist answers 451 and a
// report sent again counts once.
#include "mta/feedback_processor.h"

#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "conf/config_policy.h"
#include "policy/feedback_token.h"
#include "queue/delivery_log.h"
#include "queue/spool_memory.h"
#include "queue/spool_writer.h"
#include "tests/queue/spool_test_support.h"
#include "tests/support/feedback_corpus.h"

namespace ringmail::mta {
namespace {

using test_support::read_feedback_corpus;

const std::string kKey = "0123456789abcdef0123456789abcdef";
constexpr char kDomain[] = "bounces.example.test";
constexpr char kMailtoDomain[] = "unsub.example.test";

// Replaces the first line starting with `prefix`.
std::string with_line(std::string text, std::string_view prefix, const std::string& line) {
  const size_t at = text.find(std::string("\n") + std::string(prefix));
  if (at == std::string::npos) return text;
  const size_t end = text.find('\n', at + 1);
  return text.replace(at + 1, end - at - 1, line);
}

queue::Recipient recipient(const std::string& address) {
  queue::Recipient r;
  r.address = address;
  r.domain = kDomain;
  return r;
}

// The spool's suppression store, watched, and made to fail when asked.
class FakeSuppressions final : public SuppressionWriter {
 public:
  explicit FakeSuppressions(queue::SuppressionStore& store) : store_(store) {}
  queue::StoreOutcome add(std::span<const queue::SuppressionEntry> entries,
                          size_t* added) override {
    if (fail) return {queue::StoreStatus::failed, "injected"};
    stored.insert(stored.end(), entries.begin(), entries.end());
    return StoreSuppressionWriter(store_).add(entries, added);
  }
  std::vector<queue::SuppressionEntry> stored;
  bool fail = false;

 private:
  queue::SuppressionStore& store_;
};

class FeedbackProcessorTest : public ::testing::Test {
 protected:
  FeedbackProcessorTest() {
    std::string error;
    log_ = queue::DeliveryLog::open(dir_ / "delivery.jsonl", &error);
    auto policy = std::make_shared<conf::PolicyConfig>();
    conf::ReturnPathConfig rp;
    rp.domain = kDomain;
    rp.key.key = kKey;
    policy->return_path = rp;
    conf::ListUnsubscribeConfig unsubscribe;
    unsubscribe.url = "https://unsub.example.test/u";
    unsubscribe.mailto_domain = kMailtoDomain;
    unsubscribe.key.key = kKey;
    policy->list_unsubscribe = unsubscribe;
    auto config = std::make_shared<conf::Config>();
    config->policy = policy;
    sent_ = queue::testing::make_test_message(2, 100, "spring");
    queue::SpoolMessage* batch[] = {&sent_};
    EXPECT_TRUE(spool_.commit(batch, {}, {}).ok());
    FeedbackDependencies deps;
    deps.spool = &spool_;
    deps.writer = &writer_;
    deps.find_message = [this](const std::string& id) { return tracker_.find(id); };
    deps.suppressions = &suppressions_;
    deps.log = log_.get();
    deps.metrics = &metrics_;
    deps.clock = &clock_;
    processor_ = std::make_unique<FeedbackProcessor>(std::move(deps), config);
  }

  std::string verp(uint32_t index, const std::string& key = kKey) const {
    return *policy::verp_local_part({sent_.id, index}, key) + "@" + kDomain;
  }
  std::string ref(uint32_t index) const {
    return *policy::encode_ref_token({sent_.id, index, "app1", "spring"}, kKey);
  }

  CommitResult::Status process(const std::string& rcpt, const std::string& content) {
    queue::SpoolMessage m;
    m.id = queue::make_message_id();
    m.envelope.recipients.push_back(recipient(rcpt));
    m.meta.listener = "feedback";
    m.meta.client_ip = "203.0.113.5";
    m.content = content;
    return processor_->process(m).status;
  }

  std::vector<nlohmann::json> records() {
    std::ifstream in(dir_ / "delivery.jsonl");
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  queue::DeliveryStats stats(const std::string& key) {
    const queue::StatsDeltas found = spool_.delivery_stats(key);
    return found.empty() ? queue::DeliveryStats{} : found.begin()->second;
  }
  std::string metric(const std::string& series) {
    const std::string text = metrics_.render();
    const size_t at = text.find(series + " ");
    return at == std::string::npos
               ? ""
               : text.substr(at + series.size() + 1, text.find('\n', at) - at - series.size() - 1);
  }

  queue::testing::TempDir dir_;
  runtime::FakeClock clock_;
  queue::MemorySpool spool_;
  queue::SpoolWriter writer_{spool_, nullptr, nullptr};
  MessageTracker tracker_{spool_, clock_, {}, {}};
  queue::SuppressionStore store_{spool_};
  FakeSuppressions suppressions_{store_};
  runtime::MetricsRegistry metrics_;
  std::unique_ptr<queue::DeliveryLog> log_;
  queue::SpoolMessage sent_;
  std::unique_ptr<FeedbackProcessor> processor_;
};

using Status = CommitResult::Status;

TEST_F(FeedbackProcessorTest, APostfixBounceToTheVerpAddressSuppressesTheStoredRecipient) {
  EXPECT_EQ(process(verp(1), read_feedback_corpus("postfix_bounce.eml")), Status::committed);
  const auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  const nlohmann::json& r = lines[0];
  EXPECT_EQ(r.at("type"), "Feedback");
  EXPECT_EQ(r.at("feedback_type"), "bounce");
  EXPECT_EQ(r.at("id"), sent_.id.value);
  EXPECT_EQ(r.at("recipient"), "user1@example.org");
  EXPECT_EQ(r.at("campaign"), "spring");
  EXPECT_EQ(r.at("tenant"), "app1");
  EXPECT_EQ(r.at("category"), "InvalidRecipient");
  EXPECT_EQ(r.at("report").at("kind"), "dsn");
  EXPECT_EQ(r.at("report").at("status"), "5.1.1");
  EXPECT_EQ(r.at("report").at("attributed_by"), "verp");
  ASSERT_EQ(suppressions_.stored.size(), 1u);
  EXPECT_EQ(suppressions_.stored[0].address, "user1@example.org");
  EXPECT_EQ(suppressions_.stored[0].tenant, "app1");
  EXPECT_EQ(suppressions_.stored[0].source, queue::SuppressionSource::bounce);
  const auto entry = store_.find("app1", "USER1@example.org");
  ASSERT_TRUE(entry) << "in the spool's suppression list";
  EXPECT_EQ(entry->category, "InvalidRecipient");
  EXPECT_EQ(entry->campaign, "spring");
  EXPECT_FALSE(store_.find("app1", "user0@example.test")) << "only the bounced recipient";
  EXPECT_EQ(metric("ringmail_feedback_total{feedback_type=\"bounce\"}"), "1");
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 0u);
}

TEST_F(FeedbackProcessorTest,
       ARedactedYahooComplaintIsAttributedThroughTheRefHeaderAndCountedOnce) {
  const std::string arf = with_line(read_feedback_corpus("yahoo_arf.eml"),
                                    "X-Ringmail-Ref:", "X-Ringmail-Ref: " + ref(0));
  EXPECT_EQ(process(std::string("fbl@") + kDomain, arf), Status::committed);
  auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("feedback_type"), "complaint");
  EXPECT_EQ(lines[0].at("recipient"), "user0@example.test");
  EXPECT_EQ(lines[0].at("report").at("attributed_by"), "ref");
  EXPECT_EQ(lines[0].at("report").at("user_agent"), "Yahoo!-Mail-Feedback/2.0");
  ASSERT_EQ(suppressions_.stored.size(), 1u);
  EXPECT_EQ(suppressions_.stored[0].source, queue::SuppressionSource::complaint);
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 1u);
  EXPECT_EQ(stats(queue::tenant_stats_key("app1")).complaints, 1u);
  // The provider sends it again (or a retry after a lost 250): one complaint.
  EXPECT_EQ(process(std::string("fbl@") + kDomain, arf), Status::committed);
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 1u);
  EXPECT_EQ(suppressions_.stored.size(), 2u) << "the entry is written again (replaced)";
}

TEST_F(FeedbackProcessorTest, AFailureToPersistAnswers451AndTheRetryCountsOnce) {
  const std::string arf = with_line(read_feedback_corpus("yahoo_arf.eml"),
                                    "X-Ringmail-Ref:", "X-Ringmail-Ref: " + ref(1));
  suppressions_.fail = true;
  EXPECT_EQ(process(std::string("fbl@") + kDomain, arf), Status::failed);
  EXPECT_TRUE(records().empty());
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 0u);
  suppressions_.fail = false;
  spool_.fail_next_stores(queue::StoreStatus::failed, 1);  // the writer retries it
  EXPECT_EQ(process(std::string("fbl@") + kDomain, arf), Status::committed);
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 1u);
}

TEST_F(FeedbackProcessorTest, AnOutOfOfficeIsAnAutoreplyThatSuppressesNobody) {
  EXPECT_EQ(process(verp(0), read_feedback_corpus("rfc3834_autoreply.eml")), Status::committed);
  const auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("feedback_type"), "autoreply");
  EXPECT_EQ(lines[0].at("category"), "AutoReply");
  EXPECT_TRUE(suppressions_.stored.empty());
}

TEST_F(FeedbackProcessorTest, ForgedUnknownAndMalformedReportsAreDroppedWith250) {
  // Signed with a key Ringmail does not have.
  EXPECT_EQ(process(verp(1, std::string(32, 'x')), read_feedback_corpus("postfix_bounce.eml")),
            Status::committed);
  // A real token of a message the spool never had.
  const std::string unknown =
      *policy::verp_local_part({queue::MessageId{"00000000000000000000"}, 0}, kKey) + "@" + kDomain;
  EXPECT_EQ(process(unknown, read_feedback_corpus("postfix_bounce.eml")), Status::committed);
  // No token at all; and garbage.
  EXPECT_EQ(process(std::string("postmaster@") + kDomain, read_feedback_corpus("plain.eml")),
            Status::committed);
  EXPECT_EQ(process(verp(0), std::string("\0\xff\r\n--x\r\n", 9)), Status::committed);
  EXPECT_TRUE(suppressions_.stored.empty());
  EXPECT_TRUE(records().empty());
  EXPECT_EQ(metric("ringmail_feedback_dropped_total{reason=\"forged\"}"), "1");
  EXPECT_EQ(metric("ringmail_feedback_dropped_total{reason=\"unattributed\"}"), "2");
  EXPECT_EQ(metric("ringmail_feedback_dropped_total{reason=\"not_acted_on\"}"), "1");
  // A report cut short still counts for what could be read of it.
  EXPECT_EQ(process(verp(0), read_feedback_corpus("truncated_multipart.eml")), Status::committed);
  ASSERT_EQ(records().size(), 1u);
  EXPECT_EQ(records()[0].at("feedback_type"), "bounce");
}

TEST_F(FeedbackProcessorTest, SubmitAnswersThroughTheWorkerAndRefusesAfterStop) {
  std::promise<CommitResult> answered;
  auto m = std::make_unique<queue::SpoolMessage>();
  m->id = queue::make_message_id();
  m->envelope.recipients.push_back(recipient(verp(0)));
  m->content = read_feedback_corpus("rfc3834_autoreply.eml");
  processor_->submit(std::move(m), [&](const CommitResult& r) { answered.set_value(r); });
  auto future = answered.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(future.get().status, Status::committed);
  processor_->stop();
  Status after = Status::committed;
  processor_->submit(std::make_unique<queue::SpoolMessage>(),
                     [&](const CommitResult& r) { after = r.status; });
  EXPECT_EQ(after, Status::failed);
}

// --- unsubscribes ------------------------------------------------------

TEST_F(FeedbackProcessorTest, AOneClickUnsubscribeSuppressesLogsAndCountsOnce) {
  const policy::UnsubscribeToken token{sent_.id, 1, "app1", "user1@example.org"};
  for (int round = 0; round < 2; ++round) {
    std::promise<bool> stored;
    processor_->unsubscribe(token, policy::UnsubscribeMethod::one_click,
                            [&](bool ok) { stored.set_value(ok); });
    auto future = stored.get_future();
    ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_TRUE(future.get());
  }
  const auto lines = records();
  ASSERT_EQ(lines.size(), 2u) << "each request is logged";
  EXPECT_EQ(lines[0].at("type"), "Feedback");
  EXPECT_EQ(lines[0].at("feedback_type"), "unsubscribe");
  EXPECT_EQ(lines[0].at("recipient"), "user1@example.org");
  EXPECT_EQ(lines[0].at("campaign"), "spring");
  EXPECT_EQ(lines[0].at("tenant"), "app1");
  EXPECT_EQ(lines[0].at("report").at("method"), "one-click");
  const auto entry = store_.find("app1", "user1@example.org");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->source, queue::SuppressionSource::unsubscribe);
  EXPECT_EQ(entry->campaign, "spring");
  EXPECT_FALSE(store_.find("app1", "user0@example.test"));
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).unsubscribes, 1u) << "counted once";
  EXPECT_EQ(stats(queue::tenant_stats_key("app1")).unsubscribes, 1u);
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).complaints, 0u);
  EXPECT_EQ(metric("ringmail_feedback_total{feedback_type=\"unsubscribe\"}"), "2");
}

TEST_F(FeedbackProcessorTest, AnUnsubscribeThatCannotBeStoredSaysSo) {
  suppressions_.fail = true;
  std::promise<bool> stored;
  processor_->unsubscribe({sent_.id, 0, "app1", "user0@example.test"},
                          policy::UnsubscribeMethod::one_click,
                          [&](bool ok) { stored.set_value(ok); });
  auto future = stored.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_FALSE(future.get());
  EXPECT_TRUE(records().empty());
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).unsubscribes, 0u);
}

TEST_F(FeedbackProcessorTest, MailToTheMailtoAddressUnsubscribesTheStoredRecipient) {
  const std::string local = *policy::unsubscribe_local_part({sent_.id, 0, "app1", ""}, kKey);
  // Any case in the domain; the body does not matter.
  EXPECT_EQ(process(local + "@Unsub.Example.TEST", "Subject: unsubscribe\r\n\r\n"),
            Status::committed);
  const auto lines = records();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("feedback_type"), "unsubscribe");
  EXPECT_EQ(lines[0].at("recipient"), "user0@example.test") << "the address the spool stored";
  EXPECT_EQ(lines[0].at("report").at("method"), "mailto");
  const auto entry = store_.find("app1", "user0@example.test");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->source, queue::SuppressionSource::unsubscribe);
  EXPECT_EQ(stats(queue::campaign_stats_key("spring")).unsubscribes, 1u);
  // Forged: another key; and a token of a message the spool never had.
  const std::string forged =
      *policy::unsubscribe_local_part({sent_.id, 1, "app1", ""}, std::string(32, 'x'));
  EXPECT_EQ(process(forged + "@" + kMailtoDomain, "Subject: x\r\n\r\n"), Status::committed);
  const std::string unknown = *policy::unsubscribe_local_part(
      {queue::MessageId{"00000000000000000000"}, 0, "app1", ""}, kKey);
  EXPECT_EQ(process(unknown + "@" + kMailtoDomain, "Subject: x\r\n\r\n"), Status::committed);
  EXPECT_EQ(records().size(), 1u);
  EXPECT_FALSE(store_.find("app1", "user1@example.org"));
  EXPECT_EQ(metric("ringmail_feedback_dropped_total{reason=\"forged\"}"), "1");
  EXPECT_EQ(metric("ringmail_feedback_dropped_total{reason=\"unattributed\"}"), "1");
}

}  // namespace
}  // namespace ringmail::mta
