// tests/conf/config_feedback_test.cc — the feedback loop's keys:
// policy.return_path, policy.list_unsubscribe, policy.complaints,
// webhooks[], listeners with mode feedback, and the HMAC key files they
// name (at least 32 octets as read, one trailing newline stripped).
#include <gtest/gtest.h>

#include <string>

#include "conf/config.h"
#include "conf/config_policy.h"
#include "conf/config_secret.h"
#include "tests/conf/conf_test_support.h"

namespace ringmail::conf {
namespace {

using testing::has_problem;
using testing::TempDir;

const std::string kKey32 = "0123456789abcdef0123456789abcdef";

// Tests append lines from line 5 on.
constexpr const char* kBase =
    "hostname: mx.example.test\n"                        // 1
    "listeners: [{name: a, address: 127.0.0.1:2525}]\n"  // 2
    "relay_networks: [127.0.0.0/8]\n"                    // 3
    "spool: {path: spool}\n";                            // 4

class FeedbackConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("rp.key", kKey32 + "\n");
    dir_.write("unsub.key", kKey32 + "unsub");
    dir_.write("hook.key", kKey32 + "hook\n");
    dir_.write("short.key", kKey32.substr(0, 31) + "\n");
  }
  LoadResult load(std::string_view lines, std::string_view base = kBase) {
    file_ = dir_.write("ringmail.yaml", std::string(base) + std::string(lines));
    return load_config(file_);
  }
  std::string at(int line, std::string_view key_path) const {
    return file_.string() + ":" + std::to_string(line) + ": " + std::string(key_path) + ": ";
  }
  TempDir dir_;
  std::filesystem::path file_;
};

// --- key files ------------------------------------------------------------

TEST_F(FeedbackConfigTest, KeyFileIsReadAsIsLessOneNewline) {
  std::string problem;
  EXPECT_EQ(read_hmac_key_file(dir_.write("a", kKey32), &problem), kKey32);
  EXPECT_EQ(read_hmac_key_file(dir_.write("b", kKey32 + "\n"), &problem), kKey32);
  EXPECT_EQ(read_hmac_key_file(dir_.write("c", kKey32 + "\n\n"), &problem), kKey32 + "\n");
  EXPECT_EQ(read_hmac_key_file(dir_.write("d", " " + kKey32 + " \r\n"), &problem),
            " " + kKey32 + " \r");  // only one "\n" goes
  std::string binary = kKey32;
  binary[3] = '\0';
  EXPECT_EQ(read_hmac_key_file(dir_.write("e", binary), &problem), binary);
}

TEST_F(FeedbackConfigTest, KeyFileProblems) {
  std::string problem;
  EXPECT_FALSE(read_hmac_key_file(dir_ / "short.key", &problem));
  EXPECT_EQ(problem, "the key in " + (dir_ / "short.key").string() +
                         " has 31 octets; at least 32 are needed (make one with: openssl rand "
                         "-hex 32 > FILE)");
  EXPECT_FALSE(read_hmac_key_file(dir_.write("empty", ""), &problem));
  EXPECT_TRUE(problem.starts_with("the key in ")) << problem;
  EXPECT_FALSE(read_hmac_key_file(dir_.write("nl", "\n"), &problem));
  EXPECT_FALSE(read_hmac_key_file(dir_ / "absent.key", &problem));
  EXPECT_EQ(problem, "file " + (dir_ / "absent.key").string() + " does not exist");
  EXPECT_FALSE(read_hmac_key_file(dir_.path(), &problem));
  EXPECT_EQ(problem, dir_.path().string() + " is not a regular file");
  EXPECT_FALSE(read_hmac_key_file(dir_.write("big", std::string(4097, 'k')), &problem));
  EXPECT_TRUE(problem.ends_with("is larger than 4096 octets; a key file holds one key")) << problem;
  EXPECT_TRUE(read_hmac_key_file(dir_.write("max", std::string(4096, 'k')), &problem));
}

// --- policy.return_path ---------------------------------------------------

TEST_F(FeedbackConfigTest, ReturnPathLoads) {
  auto result = load(
      "policy:\n"
      "  return_path: {domain: Bounces.Example.TEST, key_file: rp.key}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const auto& rp = result.config->policy->return_path;
  ASSERT_TRUE(rp);
  EXPECT_EQ(rp->domain, "bounces.example.test");
  EXPECT_TRUE(rp->verp);
  EXPECT_EQ(rp->key.key, kKey32);
  EXPECT_EQ(rp->key.file, dir_ / "rp.key");
  EXPECT_EQ(rp->sender_id, "ringmail");

  auto off = load(
      "policy:\n"
      "  return_path: {domain: b.example.test, verp: false, key_file: rp.key,\n"
      "                sender_id: Mail-Co_7.x}\n");
  ASSERT_TRUE(off.errors.empty()) << testing::describe(off.errors);
  EXPECT_FALSE(off.config->policy->return_path->verp);
  EXPECT_EQ(off.config->policy->return_path->sender_id, "Mail-Co_7.x");
}

TEST_F(FeedbackConfigTest, AbsentFeedbackKeysLeaveDefaults) {
  auto result = load("");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const PolicyConfig& policy = *result.config->policy;
  EXPECT_FALSE(policy.return_path);
  EXPECT_FALSE(policy.list_unsubscribe);
  EXPECT_EQ(policy.complaints, (ComplaintThresholds{0.001, 0.003}));
  EXPECT_TRUE(result.config->webhooks.empty());
}

TEST_F(FeedbackConfigTest, ReturnPathErrors) {
  const struct {
    const char* yaml;
    const char* key_path;
    std::string problem;
  } kCases[] = {
      {"{key_file: rp.key}", "policy.return_path.domain", "required key missing"},
      {"{domain: b.example.test}", "policy.return_path.key_file", "required key missing"},
      {"{domain: \"bad domain\", key_file: rp.key}", "policy.return_path.domain",
       "\"bad domain\" is not a domain name"},
      {"{domain: b.example.test, verp: maybe, key_file: rp.key}", "policy.return_path.verp",
       "expected true or false"},
      {"{domain: b.example.test, key_file: short.key}", "policy.return_path.key_file",
       "the key in "},
      {"{domain: b.example.test, key_file: gone.key}", "policy.return_path.key_file",
       "file " + (dir_ / "gone.key").string() + " does not exist"},
      {"{domain: b.example.test, key_file: rp.key, keyfile: x}", "policy.return_path.keyfile",
       "unknown key"},
      {"[b.example.test]", "policy.return_path", "expected a mapping"},
      {"{domain: b.example.test, key_file: rp.key, sender_id: abcd}",
       "policy.return_path.sender_id", "must be 5 to 15 of A-Z"},
      {"{domain: b.example.test, key_file: rp.key, sender_id: abcdefghijklmnop}",
       "policy.return_path.sender_id", "must be 5 to 15 of A-Z"},
      {"{domain: b.example.test, key_file: rp.key, sender_id: \"ring:mail\"}",
       "policy.return_path.sender_id", "must be 5 to 15 of A-Z"},
      {"{domain: b.example.test, key_file: rp.key, sender_id: [a]}", "policy.return_path.sender_id",
       "expected"},
  };
  for (const auto& c : kCases) {
    auto result = load(std::string("policy:\n  return_path: ") + c.yaml + "\n");
    EXPECT_TRUE(has_problem(result.errors, at(6, c.key_path) + c.problem)) << c.yaml;
    EXPECT_FALSE(result.config);
  }
}

// --- policy.list_unsubscribe ----------------------------------------------

TEST_F(FeedbackConfigTest, ListUnsubscribeLoads) {
  auto result = load(
      "policy:\n"
      "  list_unsubscribe:\n"
      "    listen: 127.0.0.1:8081\n"
      "    url: https://unsub.example.test/u/\n"
      "    mailto_domain: Unsub.Example.TEST\n"
      "    key_file: unsub.key\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const auto& lu = result.config->policy->list_unsubscribe;
  ASSERT_TRUE(lu);
  EXPECT_EQ(lu->listen.host, "127.0.0.1");
  EXPECT_EQ(lu->listen.port, 8081);
  EXPECT_EQ(lu->url, "https://unsub.example.test/u");  // trailing '/' dropped: URL/TOKEN
  EXPECT_EQ(lu->mailto_domain, "unsub.example.test");
  EXPECT_EQ(lu->key.key, kKey32 + "unsub");
}

TEST_F(FeedbackConfigTest, ListUnsubscribeUrls) {
  const struct {
    const char* url;
    const char* problem;  // nullptr: accepted
  } kCases[] = {
      {"https://unsub.example.test", nullptr},
      {"https://unsub.example.test:8443/one/two", nullptr},
      {"HTTPS://Unsub.Example.Test/u", nullptr},
      {"https://[2001:db8::1]/u", nullptr},
      {"https://192.0.2.1/u", nullptr},
      {"http://127.0.0.1:8081/u", nullptr},  // loopback only, for tests
      {"http://127.8.9.10/u", nullptr},
      {"http://localhost:8081/u", nullptr},
      {"http://[::1]:8081/u", nullptr},
      {"http://unsub.example.test/u", "must be https:// (http:// only for a loopback host"},
      {"http://192.0.2.1/u", "must be https://"},
      {"ftp://unsub.example.test/u", "must start with https://"},
      {"unsub.example.test/u", "must start with https://"},
      {"https:///u", "has no host name"},
      {"https://unsub.example.test:0/u", "has a bad port"},
      {"https://unsub.example.test:99999/u", "has a bad port"},
      {"https://unsub.example.test:/u", "has a bad port"},
      {"https://[2001:db8::1/u", "has an IPv6 host without its closing ]"},
      {"https://[nope]/u", "has a bad IPv6 host"},
      {"https://user:pw@unsub.example.test/u", "must not carry a user name or password"},
      {"https://unsub.example.test/u?x=1", "must not have a query or fragment"},
      {"https://unsub.example.test/u#top", "must not have a query or fragment"},
      {"https://unsub.example.test/a<b", "has a character that needs percent-encoding"},
      {"https://unsub.example.test/a,b", "has a character that needs percent-encoding"},
      {"https://unsub.example.test/caf\xc3\xa9", "has a character that needs percent-encoding"},
  };
  for (const auto& c : kCases) {
    auto result =
        load(std::string("policy:\n  list_unsubscribe: {listen: 127.0.0.1:8081, url: \"") + c.url +
             "\", key_file: unsub.key}\n");
    if (!c.problem) {
      EXPECT_TRUE(result.errors.empty()) << c.url << testing::describe(result.errors);
    } else {
      EXPECT_TRUE(has_problem(
          result.errors, at(6, "policy.list_unsubscribe.url") + "\"" + c.url + "\" " + c.problem))
          << c.url;
    }
  }
}

TEST_F(FeedbackConfigTest, ListUnsubscribeErrors) {
  const struct {
    const char* yaml;
    const char* key_path;
    const char* problem;
  } kCases[] = {
      {"{url: \"https://u.example.test\", key_file: unsub.key}", "policy.list_unsubscribe.listen",
       "required key missing"},
      {"{listen: 127.0.0.1:8081, key_file: unsub.key}", "policy.list_unsubscribe.url",
       "required key missing"},
      {"{listen: 127.0.0.1:8081, url: \"https://u.example.test\"}",
       "policy.list_unsubscribe.key_file", "required key missing"},
      {"{listen: nowhere, url: \"https://u.example.test\", key_file: unsub.key}",
       "policy.list_unsubscribe.listen", ""},
      {"{listen: 127.0.0.1:8081, url: \"https://u.example.test\", mailto_domain: \"a b\", "
       "key_file: unsub.key}",
       "policy.list_unsubscribe.mailto_domain", "\"a b\" is not a domain name"},
      {"{listen: 127.0.0.1:8081, url: \"https://u.example.test\", key_file: short.key}",
       "policy.list_unsubscribe.key_file", "the key in "},
      {"{listen: 127.0.0.1:8081, url: \"https://u.example.test\", key_file: unsub.key, post: 1}",
       "policy.list_unsubscribe.post", "unknown key"},
  };
  for (const auto& c : kCases) {
    auto result = load(std::string("policy:\n  list_unsubscribe: ") + c.yaml + "\n");
    EXPECT_TRUE(has_problem(result.errors, at(6, c.key_path) + c.problem)) << c.yaml;
    EXPECT_FALSE(result.config);
  }
}

// --- policy.complaints ----------------------------------------------------

TEST_F(FeedbackConfigTest, ComplaintThresholds) {
  const struct {
    const char* yaml;
    double warn;
    double pause;
  } kGood[] = {
      {"{warn: 0.1%, pause: 0.3%}", 0.001, 0.003},
      {"{warn: 0.05%}", 0.0005, 0.003},
      {"{pause: 1%}", 0.001, 0.01},
      {"{warn: 0.2%, pause: 0.2%}", 0.002, 0.002},
      {"{warn: 100%, pause: 100%}", 1.0, 1.0},
      {"{}", 0.001, 0.003},
  };
  for (const auto& c : kGood) {
    auto result = load(std::string("policy:\n  complaints: ") + c.yaml + "\n");
    ASSERT_TRUE(result.errors.empty()) << c.yaml << testing::describe(result.errors);
    EXPECT_DOUBLE_EQ(result.config->policy->complaints.warn, c.warn) << c.yaml;
    EXPECT_DOUBLE_EQ(result.config->policy->complaints.pause, c.pause) << c.yaml;
  }
  const struct {
    const char* yaml;
    const char* key_path;
    const char* problem;
  } kBad[] = {
      {"{warn: 0%}", "policy.complaints.warn", "bad percentage \"0%\" (expected more than 0%"},
      {"{pause: 100.5%}", "policy.complaints.pause", "bad percentage \"100.5%\""},
      {"{warn: 0.1}", "policy.complaints.warn", "bad percentage \"0.1\""},
      {"{warn: \"-1%\"}", "policy.complaints.warn", "bad percentage \"-1%\""},
      {"{warn: x%}", "policy.complaints.warn", "bad percentage \"x%\""},
      {"{warn: \"%\"}", "policy.complaints.warn", "bad percentage \"%\""},
      {"{warn: 1e-1%}", "policy.complaints.warn", "bad percentage \"1e-1%\""},
      {"{warn: nan%}", "policy.complaints.warn", "bad percentage \"nan%\""},
      {"{warn: 0.5%, pause: 0.3%}", "policy.complaints.pause",
       "warn (0.500000%) must not be above pause (0.300000%)"},
      {"{pause: 0.05%}", "policy.complaints.pause", "warn (0.100000%) must not be above pause"},
      {"{warn: 0.5%}", "policy.complaints.warn", "warn (0.500000%) must not be above pause"},
      {"{warn: 0.1%, stop: 1%}", "policy.complaints.stop", "unknown key"},
  };
  for (const auto& c : kBad) {
    auto result = load(std::string("policy:\n  complaints: ") + c.yaml + "\n");
    EXPECT_TRUE(has_problem(result.errors, at(6, c.key_path) + c.problem)) << c.yaml;
  }
}

// --- webhooks[] -----------------------------------------------------------

TEST_F(FeedbackConfigTest, WebhooksLoad) {
  auto result = load(
      "webhooks:\n"                                                // 5
      "  - name: app\n"                                            // 6
      "    url: https://hooks.example.test/ringmail?source=mx1\n"  // 7
      "    events: [Bounce, Feedback, Suppressed]\n"               // 8
      "    secret_file: hook.key\n"                                // 9
      "    batch: 500\n"                                           // 10
      "    max_backlog: 2000000\n"                                 // 11
      "  - {name: local.test_1, url: \"http://127.0.0.1:9000/h\", secret_file: hook.key}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  const auto& hooks = result.config->webhooks;
  ASSERT_EQ(hooks.size(), 2u);
  EXPECT_EQ(hooks[0].name, "app");
  EXPECT_EQ(hooks[0].url, "https://hooks.example.test/ringmail?source=mx1");
  EXPECT_EQ(hooks[0].events, (std::vector<std::string>{"Bounce", "Feedback", "Suppressed"}));
  EXPECT_EQ(hooks[0].secret.key, kKey32 + "hook");
  EXPECT_EQ(hooks[0].batch, 500u);
  EXPECT_EQ(hooks[0].max_backlog, 2000000u);
  EXPECT_EQ(hooks[1].name, "local.test_1");
  EXPECT_TRUE(hooks[1].events.empty());  // every type
  EXPECT_EQ(hooks[1].batch, 100u);
  EXPECT_EQ(hooks[1].max_backlog, 100000u);
}

TEST_F(FeedbackConfigTest, WebhooksTakeEveryDeliveryLogType) {
  auto result = load(
      "webhooks:\n"
      "  - name: all\n"
      "    url: https://hooks.example.test/\n"
      "    events: [Reception, Delivery, TransientFailure, Bounce, Expiration, AdminBounce,\n"
      "             Cancelled, Suppressed, Feedback]\n"
      "    secret_file: hook.key\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_EQ(result.config->webhooks[0].events.size(), std::size(kDeliveryLogTypes));
}

TEST_F(FeedbackConfigTest, WebhookErrors) {
  const struct {
    const char* yaml;
    const char* key_path;
    const char* problem;
  } kCases[] = {
      {"{url: \"https://h.example.test\", secret_file: hook.key}", "webhooks[0].name",
       "required key missing"},
      {"{name: \"a b\", url: \"https://h.example.test\", secret_file: hook.key}",
       "webhooks[0].name", "\"a b\" is not a webhook name (1-64 of A-Z a-z 0-9 . _ -)"},
      {"{name: app, secret_file: hook.key}", "webhooks[0].url", "required key missing"},
      {"{name: app, url: \"mailto:x@example.test\", secret_file: hook.key}", "webhooks[0].url",
       "\"mailto:x@example.test\" must start with https:// (or http://)"},
      {"{name: app, url: \"https://h.example.test/a b\", secret_file: hook.key}", "webhooks[0].url",
       "\"https://h.example.test/a b\" has a character"},
      {"{name: app, url: \"https://h.example.test\"}", "webhooks[0].secret_file",
       "required key missing"},
      {"{name: app, url: \"https://h.example.test\", secret_file: short.key}",
       "webhooks[0].secret_file", "the key in "},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, events: []}",
       "webhooks[0].events", "list at least one record type, or leave events out for all"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, events: [Bounced]}",
       "webhooks[0].events[0]",
       "unknown delivery-log record type \"Bounced\" (known: Reception, Delivery, "
       "TransientFailure, Bounce, Expiration, AdminBounce, Cancelled, Suppressed, Feedback)"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, events: [Bounce, "
       "Bounce]}",
       "webhooks[0].events[1]", "\"Bounce\" is listed twice"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, batch: 0}",
       "webhooks[0].batch", "must be between 1 and 1000, got 0"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, batch: 1001}",
       "webhooks[0].batch", "must be between 1 and 1000, got 1001"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, max_backlog: 0}",
       "webhooks[0].max_backlog", "must be between 1 and 100000000, got 0"},
      {"{name: app, url: \"https://h.example.test\", secret_file: hook.key, retries: 3}",
       "webhooks[0].retries", "unknown key"},
  };
  for (const auto& c : kCases) {
    auto result = load(std::string("webhooks:\n  - ") + c.yaml + "\n");
    EXPECT_TRUE(has_problem(result.errors, at(6, c.key_path) + c.problem)) << c.yaml;
    EXPECT_FALSE(result.config);
  }
  auto duplicate = load(
      "webhooks:\n"
      "  - {name: app, url: \"https://a.example.test\", secret_file: hook.key}\n"
      "  - {name: app, url: \"https://b.example.test\", secret_file: hook.key}\n");
  EXPECT_TRUE(
      has_problem(duplicate.errors, at(7, "webhooks[1].name") + "duplicate webhook name \"app\""));
  auto not_list = load("webhooks: {name: app}\n");
  EXPECT_TRUE(has_problem(not_list.errors, at(5, "webhooks") + "expected a list"));
}

// --- listeners[].mode: feedback ---------------------------------------------

constexpr const char* kFeedbackBase =
    "hostname: mx.example.test\n"  // 1
    "listeners:\n"                 // 2
    "  - name: feedback\n"         // 3
    "    address: 0.0.0.0:2526\n"  // 4
    "    mode: feedback\n"         // 5
    "spool: {path: spool}\n";      // 6

TEST_F(FeedbackConfigTest, FeedbackListenerLoadsWithReturnPath) {
  auto result = load(
      "policy:\n"
      "  return_path: {domain: b.example.test, key_file: rp.key}\n",
      kFeedbackBase);
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->listeners.size(), 1u);
  EXPECT_EQ(result.config->listeners[0].mode, ListenerMode::feedback);
  // Not a relay listener: no relay_networks warning, and nothing else.
  EXPECT_TRUE(result.warnings.empty()) << testing::describe(result.warnings);
  ASSERT_TRUE(result.config->policy && result.config->policy->return_path);
  EXPECT_EQ(result.config->policy->return_path->domain, "b.example.test");
}

TEST_F(FeedbackConfigTest, FeedbackListenerNeedsReturnPath) {
  auto result = load("", kFeedbackBase);
  EXPECT_TRUE(has_problem(result.errors,
                          at(5, "listeners[0].mode") + "mode feedback needs policy.return_path"));
  // A return_path with an error of its own is reported there, not again here.
  auto broken = load(
      "policy:\n"
      "  return_path: {domain: b.example.test, key_file: short.key}\n",
      kFeedbackBase);
  EXPECT_TRUE(has_problem(broken.errors, at(8, "policy.return_path.key_file") + "the key in "));
  EXPECT_FALSE(has_problem(broken.errors, at(5, "listeners[0].mode")));
}

TEST_F(FeedbackConfigTest, FeedbackListenerTakesNoAuth) {
  auto result = load(
      "    require_tls_for_auth: false\n"  // 7
      "policy:\n"
      "  return_path: {domain: b.example.test, key_file: rp.key}\n",
      "hostname: mx.example.test\n"
      "spool: {path: spool}\n"
      "listeners:\n"
      "  - name: feedback\n"
      "    address: 0.0.0.0:2526\n"
      "    mode: feedback\n");
  EXPECT_TRUE(has_problem(result.errors,
                          at(7, "listeners[0].require_tls_for_auth") +
                              "a feedback listener takes no AUTH; remove require_tls_for_auth"));
}

TEST_F(FeedbackConfigTest, ListenerModesNamedInTheError) {
  auto result = load("",
                     "hostname: mx.example.test\n"
                     "listeners: [{name: a, address: 127.0.0.1:2525, mode: bounce}]\n"
                     "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors, at(2, "listeners[0].mode") +
                                             "expected one of submission, relay, feedback; got "
                                             "\"bounce\""));
}

}  // namespace
}  // namespace ringmail::conf
