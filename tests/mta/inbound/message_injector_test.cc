// tests/mta/inbound/message_injector_test.cc — an injected message as the
// spool and the delivery log receive it: the same header work as SMTP
// submission (Received naming the API, campaign header moved into metadata,
// Message-ID and Date added), CRLF content, envelope flags, DKIM in front,
// the answer only after the commit, Reception records with listener "api",
// and nothing stored when it is refused. A MemorySpool behind a real
// SpoolWriter; the milters are exercised by tests/integration/test_injection.py.
#include "mta/inbound/message_injector.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "conf/config_policy.h"
#include "mta/dkim/dkim_signer.h"
#include "policy/submission_limiter.h"
#include "queue/delivery_log.h"
#include "queue/spool_memory.h"
#include "queue/spool_writer.h"
#include "runtime/clock.h"
#include "runtime/metrics_registry.h"
#include "tests/support/temp_dir.h"

namespace ringmail::mta {
namespace {

using Status = InjectionResult::Status;

constexpr int64_t kNowMs = 1767225600000;  // 2026-01-01T00:00:00Z

conf::Config test_config() {
  conf::Config c;
  c.hostname = "mx.example.test";
  c.limits.max_message_size = 64 * 1024;
  return c;
}

InjectionRequest raw_request(std::string content) {
  InjectionRequest r;
  r.tenant = "app1";
  r.client_ip = "192.0.2.7";
  r.envelope_sender = "bounces@example.test";
  r.recipients = {"one@example.net", "Two@Example.NET"};
  r.content = std::move(content);
  return r;
}

queue::SpoolMessage prepared(const InjectionRequest& request, const conf::Config& config) {
  InjectionResult failed;
  std::optional<queue::SpoolMessage> m = prepare_injected_message(
      request, config, queue::MessageId{"0123456789abcdef0123"}, kNowMs, &failed);
  EXPECT_TRUE(m.has_value()) << failed.detail;
  return m ? std::move(*m) : queue::SpoolMessage{};
}

TEST(MessageInjector, RawContentGetsTheSubmissionHeaderWork) {
  const conf::Config config = test_config();
  InjectionRequest request = raw_request(
      "From: App <app@example.test>\n"
      "Subject: hello\n"
      "X-Campaign-ID: spring\n"
      "\tfolded on\n"
      "\n"
      "body line\r\n"
      ".dot line\n"
      "last line without an end");
  queue::SpoolMessage m = prepared(request, config);
  EXPECT_EQ(m.content,
            "Received: from api (unknown [192.0.2.7]) by mx.example.test (Ringmail) with\r\n"
            "\tHTTP id 0123456789abcdef0123; Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "From: App <app@example.test>\r\n"
            "Subject: hello\r\n"
            "Message-ID: <0123456789abcdef0123@mx.example.test>\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            "\r\n"
            "body line\r\n"
            ".dot line\r\n"
            "last line without an end\r\n");
  // Unfolded, as SMTP takes it (the continuation line is the header's too).
  EXPECT_EQ(m.meta.campaign, "spring folded on");
  EXPECT_EQ(m.meta.listener, "api");
  EXPECT_EQ(m.meta.tenant, "app1");
  EXPECT_EQ(m.meta.client_ip, "192.0.2.7");
  EXPECT_EQ(m.meta.received_unix_ms, kNowMs);
  EXPECT_EQ(m.meta.size, m.content.size());
  EXPECT_EQ(m.envelope.sender, "bounces@example.test");
  ASSERT_EQ(m.envelope.recipients.size(), 2u);
  EXPECT_EQ(m.envelope.recipients[1].address, "Two@Example.NET");
  EXPECT_EQ(m.envelope.recipients[1].domain, "example.net");
  EXPECT_EQ(m.envelope.recipients[1].state, queue::RecipientState::queued);
  EXPECT_EQ(m.envelope.body_type, "7BIT");
  EXPECT_FALSE(m.envelope.smtputf8);

  // The request's campaign wins over the header; the header still goes.
  request.campaign = "autumn";
  queue::SpoolMessage named = prepared(request, config);
  EXPECT_EQ(named.meta.campaign, "autumn");
  EXPECT_EQ(named.content.find("X-Campaign-ID"), std::string::npos);
}

TEST(MessageInjector, OneRecipientIsNamedInReceivedAndItsOwnHeadersStay) {
  InjectionRequest request = raw_request(
      "Message-ID: <own@example.test>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
      "Subject: x\r\n\r\nbody\r\n");
  request.recipients = {"one@example.net"};
  queue::SpoolMessage m = prepared(request, test_config());
  EXPECT_NE(m.content.find("for <one@example.net>;"), std::string::npos) << m.content;
  EXPECT_NE(m.content.find("Message-ID: <own@example.test>\r\n"), std::string::npos);
  EXPECT_EQ(m.content.find("0123456789abcdef0123@mx.example.test"), std::string::npos);
  EXPECT_EQ(m.content.find("Date: Thu"), std::string::npos);
}

TEST(MessageInjector, EightBitContentAndUtf8AddressesSetTheEnvelopeFlags) {
  InjectionRequest body8 = raw_request("Subject: x\r\n\r\nna\xc3\xafve\r\n");
  queue::SpoolMessage m = prepared(body8, test_config());
  EXPECT_EQ(m.envelope.body_type, "8BITMIME");
  EXPECT_FALSE(m.envelope.smtputf8);

  InjectionRequest header8 = raw_request("Subject: caf\xc3\xa9\r\n\r\nx\r\n");
  EXPECT_TRUE(prepared(header8, test_config()).envelope.smtputf8);

  InjectionRequest address8 = raw_request("Subject: x\r\n\r\nx\r\n");
  address8.recipients = {"j\xc3\xb6rg@example.net"};
  EXPECT_TRUE(prepared(address8, test_config()).envelope.smtputf8);
}

TEST(MessageInjector, BuiltMessagesAreMimeWithTheQueueIdAsMessageId) {
  InjectionRequest request;
  request.tenant = "api";
  request.envelope_sender = "app@example.test";
  request.recipients = {"r@example.net", "hidden@example.net"};
  MimeMessageSpec spec;
  spec.from = {"App", "app@example.test"};
  spec.to = {{"", "r@example.net"}};
  spec.subject = "built";
  spec.text = "hello\n";
  spec.headers = {{"X-Campaign-ID", "from-a-header"}};
  request.built = spec;
  queue::SpoolMessage m = prepared(request, test_config());
  EXPECT_TRUE(m.content.starts_with("Received: from api"));
  EXPECT_NE(m.content.find("Message-Id: <0123456789abcdef0123@mx.example.test>\r\n"),
            std::string::npos)
      << m.content;
  EXPECT_EQ(m.content.find("Message-ID:"), std::string::npos) << "a second Message-ID";
  EXPECT_NE(m.content.find("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"), std::string::npos);
  EXPECT_EQ(m.content.find("hidden@"), std::string::npos);
  // A campaign header among "headers" is taken and stripped like SMTP's.
  EXPECT_EQ(m.meta.campaign, "from-a-header");
  EXPECT_EQ(m.content.find("X-Campaign-ID"), std::string::npos);
  EXPECT_EQ(m.envelope.recipients.size(), 2u);

  // Over limits.max_message_size once encoded: refused, with the size.
  request.built->text = std::string();
  for (int i = 0; i < 30000; ++i) request.built->text->append("\xc3\xbc");
  InjectionResult failed;
  EXPECT_FALSE(
      prepare_injected_message(request, test_config(), queue::MessageId{"x"}, kNowMs, &failed));
  EXPECT_EQ(failed.status, Status::too_large);
  EXPECT_TRUE(failed.detail.starts_with("the built message is ")) << failed.detail;
}

TEST(MessageInjector, MalformedHeaderSectionIsRefused) {
  InjectionResult failed;
  EXPECT_FALSE(prepare_injected_message(raw_request(" starts folded\r\n\r\nx\r\n"), test_config(),
                                        queue::MessageId{"x"}, kNowMs, &failed));
  EXPECT_EQ(failed.status, Status::invalid);
  EXPECT_TRUE(failed.detail.starts_with("content: ")) << failed.detail;
}

std::string ed25519_pem() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

class InjectorPipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    log_ = queue::DeliveryLog::open(dir_ / "delivery.jsonl", &error);
    ASSERT_TRUE(log_) << error;
    conf::DkimKey key;
    key.domain = "example.test";
    key.selector = "s1";
    std::unique_ptr<DkimSigner> signer =
        DkimSigner::from_pem(ed25519_pem(), key, DkimSignerOptions{}, &error, nullptr);
    ASSERT_TRUE(signer) << error;
    signers_.add(std::move(signer));
  }

  InjectorDependencies deps(queue::SpoolWriter& writer) {
    InjectorDependencies d;
    d.config = &config_;
    d.writer = &writer;
    d.dkim = &signers_;
    d.metrics = &metrics_;
    return d;
  }

  std::string log_text() {
    std::ifstream in(dir_ / "delivery.jsonl");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  test_support::TempDir dir_;
  conf::Config config_ = test_config();
  DkimSignerSet signers_;
  runtime::MetricsRegistry metrics_;
  std::unique_ptr<queue::DeliveryLog> log_;
};

TEST_F(InjectorPipeline, QueuedOnlyAfterTheCommitWithSignatureAndReceptionRecords) {
  queue::MemorySpool spool;
  queue::SpoolWriter writer(spool, &metrics_, log_.get());
  const InjectionResult r =
      inject_message(raw_request("From: App <app@example.test>\r\nSubject: s\r\n\r\nbody\r\n"),
                     deps(writer), kNowMs);
  ASSERT_EQ(r.status, Status::queued) << r.detail;
  EXPECT_EQ(r.recipients, 2u);
  EXPECT_EQ(r.id.size(), 20u);
  // When inject_message() returns, the message is in the spool already.
  std::optional<queue::SpoolMessage> stored = spool.load_message(queue::MessageId{r.id}, true);
  ASSERT_TRUE(stored);
  EXPECT_TRUE(stored->content.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"))
      << stored->content.substr(0, 200);
  EXPECT_NE(stored->content.find("\r\nReceived: from api"), std::string::npos);
  EXPECT_EQ(stored->meta.listener, "api");
  EXPECT_EQ(stored->meta.size, stored->content.size());
  EXPECT_NE(metrics_.render().find("ringmail_dkim_signatures_total{algorithm=\"ed25519-sha256\","
                                   "domain=\"example.test\"} 1"),
            std::string::npos)
      << metrics_.render();
  writer.stop();
  const std::string log = log_text();
  EXPECT_NE(log.find("\"type\":\"Reception\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"listener\":\"api\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"tenant\":\"app1\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"recipient\":\"Two@Example.NET\""), std::string::npos) << log;
}

// policy.return_path: Feedback-ID goes in before the signature, which
// covers it (feedback-id is in the default h= list); a message that has
// one of its own keeps it and gets no second; without return_path none.
TEST_F(InjectorPipeline, FeedbackIdIsAddedBeforeSigningWhenReturnPathIsConfigured) {
  auto policy = std::make_shared<conf::PolicyConfig>();
  conf::ReturnPathConfig rp;
  rp.domain = "returnpath.test";
  rp.key.key = std::string(32, 'k');
  rp.sender_id = "mailco";
  policy->return_path = rp;
  const struct {
    const char* name;
    bool configured;
    std::string headers;
    size_t feedback_ids;
    std::string value;  // of the first Feedback-ID, "" none
  } kCases[] = {
      {"configured", true, "", 1, "spring:app1:api:mailco"},
      {"the application's own is kept", true, "feedback-id: own:id\r\n", 1, "own:id"},
      {"not configured", false, "", 0, ""},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    config_.policy = c.configured ? policy : nullptr;
    queue::MemorySpool spool;
    queue::SpoolWriter writer(spool, &metrics_, log_.get());
    InjectionRequest request =
        raw_request("From: App <app@example.test>\r\n" + c.headers + "Subject: s\r\n\r\nbody\r\n");
    request.campaign = "spring";
    const InjectionResult r = inject_message(request, deps(writer), kNowMs);
    ASSERT_EQ(r.status, Status::queued) << r.detail;
    auto stored = spool.load_message(queue::MessageId{r.id}, true);
    ASSERT_TRUE(stored);
    writer.stop();
    const std::string& content = stored->content;
    EXPECT_EQ(stored->meta.size, content.size());
    size_t count = 0;
    std::string first, signed_headers;
    const std::string head = content.substr(0, content.find("\r\n\r\n") + 2);
    std::string unfolded;  // continuation lines joined, blanks dropped
    for (size_t at = 0; at < head.size();) {
      size_t end = head.find("\r\n", at);
      std::string line = head.substr(at, end - at);
      at = end + 2;
      if (line.starts_with(" ") || line.starts_with("\t")) {
        unfolded += line;
        continue;
      }
      if (!unfolded.empty()) unfolded += "\n";
      unfolded += line;
    }
    std::istringstream lines(unfolded);
    for (std::string line; std::getline(lines, line);) {
      std::string lower = line;
      for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (lower.starts_with("feedback-id:") && count++ == 0) first = line.substr(13);
      if (lower.starts_with("dkim-signature:")) {
        std::erase_if(lower, [](char ch) { return ch == ' ' || ch == '\t'; });
        size_t h = lower.find(";h=");
        ASSERT_NE(h, std::string::npos) << line;
        signed_headers = lower.substr(h + 3, lower.find(';', h + 1) - h - 3);
      }
    }
    EXPECT_EQ(count, c.feedback_ids) << content;
    EXPECT_EQ(first, c.value) << content;
    EXPECT_EQ(signed_headers.find("feedback-id") != std::string::npos, c.feedback_ids > 0)
        << signed_headers;
  }
}

TEST_F(InjectorPipeline, RefusalsStoreNothing) {
  // A spool too small for the message: spool_full, nothing stored.
  queue::MemorySpool tiny(100);
  queue::SpoolWriter writer(tiny, nullptr, nullptr);
  InjectionResult full =
      inject_message(raw_request("Subject: s\r\n\r\nbody\r\n"), deps(writer), kNowMs);
  EXPECT_EQ(full.status, Status::spool_full) << full.detail;
  EXPECT_EQ(tiny.stats().messages, 0u);

  // A spool that fails: failed (500), nothing stored.
  queue::MemorySpool failing;
  failing.fail_next_stores(queue::StoreStatus::failed, 10);
  queue::SpoolWriter failing_writer(failing, nullptr, nullptr);
  InjectionResult failed =
      inject_message(raw_request("Subject: s\r\n\r\nbody\r\n"), deps(failing_writer), kNowMs);
  EXPECT_EQ(failed.status, Status::failed);
  EXPECT_EQ(failing.stats().messages, 0u);

  // A stopped writer answers at once: failed.
  queue::MemorySpool spool;
  queue::SpoolWriter stopped(spool, nullptr, nullptr);
  stopped.stop();
  EXPECT_EQ(inject_message(raw_request("Subject: s\r\n\r\nx\r\n"), deps(stopped), kNowMs).status,
            Status::failed);
  EXPECT_EQ(spool.stats().messages, 0u);
}

TEST_F(InjectorPipeline, MailOfACancelledCampaignIsRefusedAndNothingIsStored) {
  queue::MemorySpool spool;
  queue::SpoolWriter writer(spool, nullptr, nullptr);
  policy::CampaignGate gate;
  gate.refuse("spring");
  InjectorDependencies d = deps(writer);
  d.campaigns = &gate;
  InjectionResult refused =
      inject_message(raw_request("Subject: s\r\nX-Campaign-ID: spring\r\n\r\nbody\r\n"), d, kNowMs);
  EXPECT_EQ(refused.status, Status::campaign_refused) << refused.detail;
  EXPECT_NE(refused.detail.find("spring"), std::string::npos);
  InjectionResult other =
      inject_message(raw_request("Subject: s\r\nX-Campaign-ID: autumn\r\n\r\nbody\r\n"), d, kNowMs);
  EXPECT_EQ(other.status, Status::queued) << other.detail;
  writer.stop();
  EXPECT_EQ(spool.stats().messages, 1u) << "only the other campaign's mail";
}

TEST_F(InjectorPipeline, ATenantOverItsLimitIsRefusedWithTheTimeOfItsNextToken) {
  queue::MemorySpool spool;
  queue::SpoolWriter writer(spool, nullptr, nullptr);
  conf::PolicyConfig policy;
  policy.tenants = {{"app1", "", std::nullopt, 0, conf::parse_rate("2/h")}};
  runtime::FakeClock clock;
  policy::SubmissionLimiter limiter;
  limiter.set_policy(&policy, clock.steady());
  InjectorDependencies d = deps(writer);
  d.submission_limiter = &limiter;
  d.clock = &clock;
  const InjectionRequest app1 = raw_request("Subject: s\r\n\r\nbody\r\n");
  InjectionRequest app2 = app1;
  app2.tenant = "app2";
  EXPECT_EQ(inject_message(app1, d, kNowMs).status, Status::queued);
  // A request refused before it counts (a malformed header) takes no token.
  EXPECT_EQ(inject_message(raw_request(" continuation\r\n\r\nbody\r\n"), d, kNowMs).status,
            Status::invalid);
  EXPECT_EQ(inject_message(app1, d, kNowMs).status, Status::queued);
  clock.advance(std::chrono::minutes(10));
  InjectionResult over = inject_message(app1, d, kNowMs);
  EXPECT_EQ(over.status, Status::over_limit) << over.detail;
  EXPECT_EQ(over.retry_after_seconds, 20 * 60);  // a token every 30 minutes
  EXPECT_EQ(over.detail, "tenant \"app1\" is over its submission limit of 2/h; try again later");
  EXPECT_EQ(inject_message(app2, d, kNowMs).status, Status::queued) << "another tenant";
  clock.advance(std::chrono::minutes(20));
  EXPECT_EQ(inject_message(app1, d, kNowMs).status, Status::queued);
  writer.stop();
  EXPECT_EQ(spool.stats().messages, 4u);
}

}  // namespace
}  // namespace ringmail::mta
