// tests/conf/config_loader_test.cc — load_config() as an operator sees it:
// each kind of mistake gives "FILE:LINE: key.path: problem", all mistakes are
// reported together, and the shipped example and dev configs load.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "conf/config.h"
#include "conf/config_policy.h"
#include "tests/conf/conf_test_support.h"

namespace ringmail::conf {
namespace {

using testing::has_problem;
using testing::TempDir;

// yescrypt hash of "secret", as made by `mkpasswd -m yescrypt`.
constexpr const char* kHash =
    "$y$j9T$YV.5HfzG1NMMGA1VwLMp4/$AoPg6ls8AXjmC7WOCa5SvTTfRMgb640fvNXd4rGQas5";

// A valid config whose line numbers the tests rely on; tests append lines
// from line 9 on.
constexpr const char* kMinimal =
    "hostname: mx.example.test\n"      // 1
    "listeners:\n"                     // 2
    "  - name: relay\n"                // 3
    "    address: 127.0.0.1:2525\n"    // 4
    "    mode: relay\n"                // 5
    "relay_networks: [127.0.0.0/8]\n"  // 6
    "spool:\n"                         // 7
    "  path: spool\n";                 // 8

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

class ConfigLoaderTest : public ::testing::Test {
 protected:
  // Key material is made once for the suite (RSA key generation is slow)
  // and copied into each test's directory.
  static void SetUpTestSuite() {
    keys_ = new TempDir();
    EVP_PKEY* tls_key = testing::make_rsa_key(2048);
    testing::write_private_key(tls_key, *keys_ / "tls/key.pem");
    testing::write_self_signed_certificate(tls_key, *keys_ / "tls/cert.pem");
    EVP_PKEY* other = testing::make_ed25519_key();
    testing::write_private_key(other, *keys_ / "tls/other-key.pem");
    EVP_PKEY* rsa1024 = testing::make_rsa_key(1024);
    testing::write_private_key(rsa1024, *keys_ / "dkim/rsa1024.pem");
    EVP_PKEY* rsa512 = testing::make_rsa_key(512);
    testing::write_private_key(rsa512, *keys_ / "dkim/rsa512.pem");
    testing::write_private_key(tls_key, *keys_ / "dkim/example.test.pem");
    testing::write_private_key(other, *keys_ / "dkim/ed25519.pem");
    EVP_PKEY_free(tls_key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(rsa512);
    keys_->write("users.yaml", std::string("- {name: app1, password: \"") + kHash + "\"}\n");
    keys_->write("admin.token", "0123456789abcdef\n");
  }
  static void TearDownTestSuite() {
    delete keys_;
    keys_ = nullptr;
  }

  void SetUp() override {
    std::filesystem::copy(keys_->path(), dir_.path(), std::filesystem::copy_options::recursive);
  }

  // Writes ringmail.yaml in the test directory and loads it.
  LoadResult load(std::string_view yaml) {
    file_ = dir_.write("ringmail.yaml", yaml);
    return load_config(file_);
  }
  // The prefix a user sees for a problem at line of key_path.
  std::string at(int line, std::string_view key_path) const {
    return file_.string() + ":" + std::to_string(line) + ": " + std::string(key_path) + ": ";
  }

  static TempDir* keys_;
  TempDir dir_;
  std::filesystem::path file_;
};

TempDir* ConfigLoaderTest::keys_ = nullptr;

TEST_F(ConfigLoaderTest, MinimalConfigLoadsWithDefaults) {
  auto result = load(kMinimal);
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_NE(result.config, nullptr);
  const Config& config = *result.config;
  EXPECT_EQ(config.source_file, file_);
  EXPECT_EQ(config.hostname, "mx.example.test");
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].address.host, "127.0.0.1");
  EXPECT_EQ(config.listeners[0].address.port, 2525);
  EXPECT_EQ(config.listeners[0].tls, TlsMode::none);
  EXPECT_EQ(config.spool.path, dir_.path() / "spool");
  EXPECT_EQ(config.spool.max_size, 16ull << 30);
  EXPECT_EQ(config.limits.max_message_size, 50ull << 20);
  EXPECT_EQ(config.limits.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(config.delivery.retry.intervals.size(), 5u);
  ASSERT_NE(config.policy, nullptr);
  EXPECT_EQ(config.campaign_header, "X-Campaign-ID");
  EXPECT_EQ(config.log.level, "info");
  EXPECT_TRUE(config.log.delivery_log.empty());
}

TEST_F(ConfigLoaderTest, UnknownTopLevelKeyIsNamedWithItsLine) {
  auto result = load(std::string(kMinimal) + "hostnme: typo\n");
  EXPECT_EQ(result.config, nullptr);
  EXPECT_TRUE(has_problem(result.errors, at(9, "hostnme") + "unknown key"));
}

TEST_F(ConfigLoaderTest, UnknownNestedKeyIsNamedWithItsPath) {
  auto nested = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - name: a\n"
      "    address: 127.0.0.1:2525\n"
      "  - name: b\n"
      "    adress: 127.0.0.1:2526\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(nested.errors, at(6, "listeners[1].adress") + "unknown key"));
  EXPECT_TRUE(has_problem(nested.errors, at(5, "listeners[1].address") + "required key missing"));
}

TEST_F(ConfigLoaderTest, RepeatedKeyIsAnError) {
  auto result = load(std::string(kMinimal) + "hostname: other.example.test\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "hostname") + "key given twice (first at line 1)"));
}

TEST_F(ConfigLoaderTest, WrongTypes) {
  auto result = load(
      "hostname: [a, b]\n"
      "listeners: submission\n"
      "spool:\n"
      "  path: spool\n"
      "limits:\n"
      "  max_recipients: lots\n"
      "  max_connections: -5\n"
      "delivery:\n"
      "  generate_dsn: maybe\n"
      "tls: yes\n");
  EXPECT_TRUE(has_problem(result.errors, at(1, "hostname") + "expected a string, got a list"));
  EXPECT_TRUE(
      has_problem(result.errors, at(2, "listeners") + "expected a list, got a single value"));
  EXPECT_TRUE(
      has_problem(result.errors, at(6, "limits.max_recipients") + "expected a whole number"));
  EXPECT_TRUE(
      has_problem(result.errors, at(7, "limits.max_connections") + "expected a whole number"));
  EXPECT_TRUE(
      has_problem(result.errors, at(9, "delivery.generate_dsn") + "expected true or false"));
  EXPECT_TRUE(has_problem(result.errors, at(10, "tls") + "expected a mapping"));
}

TEST_F(ConfigLoaderTest, NumberOutOfRange) {
  auto result = load(std::string(kMinimal) + "limits: {max_recipients: 0}\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "limits.max_recipients") + "must be between 1 and"));
}

TEST_F(ConfigLoaderTest, BadDuration) {
  auto result = load(std::string(kMinimal) +
                     "limits:\n"
                     "  idle_timeout: 5x\n"
                     "delivery:\n"
                     "  retry: {intervals: [1m, 10], max_age: 5d}\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "limits.idle_timeout") + "bad duration \"5x\""));
  EXPECT_TRUE(
      has_problem(result.errors, at(12, "delivery.retry.intervals[1]") + "bad duration \"10\""));
}

TEST_F(ConfigLoaderTest, DeliveryExtensionsAreReadAndChecked) {
  auto good = load(std::string(kMinimal) +
                   "delivery:\n"
                   "  smtp_port: 2525\n"
                   "  tls: required\n"
                   "  max_connections: 50\n"
                   "  max_connections_per_site: 4\n"
                   "  max_messages_per_connection: 7\n"
                   "  idle_timeout: 2s\n"
                   "  timeouts: {connect: 3s, data_term: 1m}\n"
                   "  paused: true\n");
  ASSERT_TRUE(good.errors.empty()) << testing::describe(good.errors);
  const DeliveryConfig& d = good.config->delivery;
  EXPECT_EQ(d.smtp_port, 2525);
  EXPECT_EQ(d.tls, OutboundTls::required);
  EXPECT_EQ(d.max_connections, 50u);
  EXPECT_EQ(d.max_connections_per_site, 4u);
  EXPECT_EQ(d.max_messages_per_connection, 7u);
  EXPECT_EQ(d.idle_timeout, std::chrono::seconds(2));
  EXPECT_EQ(d.timeouts.connect, std::chrono::seconds(3));
  EXPECT_EQ(d.timeouts.data_term, std::chrono::minutes(1));
  EXPECT_EQ(d.timeouts.greeting, std::chrono::minutes(5));  // default kept
  EXPECT_TRUE(d.paused);

  auto bad = load(std::string(kMinimal) +
                  "delivery:\n"                      // 9
                  "  smtp_port: 70000\n"             // 10
                  "  tls: sometimes\n"               // 11
                  "  max_connections_per_site: 0\n"  // 12
                  "  timeouts:\n"                    // 13
                  "    connect: 0s\n"                // 14
                  "    dns: 5s\n");                  // 15
  EXPECT_TRUE(has_problem(bad.errors, at(10, "delivery.smtp_port") + "must be between 1 and"));
  EXPECT_TRUE(has_problem(
      bad.errors,
      at(11, "delivery.tls") + "\"sometimes\" is not one of none, opportunistic, required"));
  EXPECT_TRUE(has_problem(bad.errors,
                          at(12, "delivery.max_connections_per_site") + "must be between 1 and"));
  EXPECT_TRUE(has_problem(bad.errors,
                          at(14, "delivery.timeouts.connect") + "a timeout must be longer than 0"));
  EXPECT_TRUE(has_problem(bad.errors, at(15, "delivery.timeouts.dns") + "unknown key"));
}

TEST_F(ConfigLoaderTest, BadSize) {
  auto result = load(std::string(kMinimal) +
                     "limits:\n"
                     "  max_message_size: 50MB\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "limits.max_message_size") + "bad size \"50MB\""));
}

TEST_F(ConfigLoaderTest, SlowClientLimitsAreReadAndChecked) {
  auto defaults = load(kMinimal);
  ASSERT_TRUE(defaults.errors.empty()) << testing::describe(defaults.errors);
  const Limits& d = defaults.config->limits;
  EXPECT_EQ(d.command_timeout, std::chrono::seconds(60));
  EXPECT_EQ(d.tls_handshake_timeout, std::chrono::seconds(10));
  EXPECT_EQ(d.min_data_rate, 1024u);
  EXPECT_EQ(d.data_rate_grace, std::chrono::seconds(30));
  EXPECT_EQ(d.max_connections_per_ip, 50u);
  EXPECT_TRUE(d.connection_limit_exempt.empty());

  auto good = load(std::string(kMinimal) +
                   "limits:\n"
                   "  command_timeout: 3s\n"
                   "  tls_handshake_timeout: 2s\n"
                   "  min_data_rate: 4KiB/s\n"
                   "  data_rate_grace: 5s\n"
                   "  max_connections_per_ip: 0\n"
                   "  connection_limit_exempt: [10.0.0.0/8, \"2001:db8::/32\"]\n");
  ASSERT_TRUE(good.errors.empty()) << testing::describe(good.errors);
  const Limits& g = good.config->limits;
  EXPECT_EQ(g.command_timeout, std::chrono::seconds(3));
  EXPECT_EQ(g.tls_handshake_timeout, std::chrono::seconds(2));
  EXPECT_EQ(g.min_data_rate, 4096u);
  EXPECT_EQ(g.data_rate_grace, std::chrono::seconds(5));
  EXPECT_EQ(g.max_connections_per_ip, 0u);
  ASSERT_EQ(g.connection_limit_exempt.size(), 2u);
  EXPECT_EQ(g.connection_limit_exempt[1].prefix_length, 32);

  auto bad = load(std::string(kMinimal) +
                  "limits:\n"                                  // 9
                  "  command_timeout: 500ms\n"                 // 10
                  "  tls_handshake_timeout: 0s\n"              // 11
                  "  min_data_rate: 1KiB\n"                    // 12
                  "  max_connections_per_ip: many\n"           // 13
                  "  connection_limit_exempt: [10.0.0/8]\n");  // 14
  EXPECT_TRUE(has_problem(bad.errors, at(10, "limits.command_timeout") + "must be at least 1s"));
  EXPECT_TRUE(
      has_problem(bad.errors, at(11, "limits.tls_handshake_timeout") + "must be at least 1s"));
  EXPECT_TRUE(has_problem(bad.errors, at(12, "limits.min_data_rate") + "bad rate \"1KiB\""));
  EXPECT_TRUE(
      has_problem(bad.errors, at(13, "limits.max_connections_per_ip") + "expected a whole number"));
  EXPECT_TRUE(has_problem(bad.errors, at(14, "limits.connection_limit_exempt[0]")));
}

TEST_F(ConfigLoaderTest, SpoolSizeTooSmall) {
  auto result = load(std::string(kMinimal) + "  max_size: 1KiB\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "spool.max_size") + "must be at least 1MiB"));
}

TEST_F(ConfigLoaderTest, SpoolReserve) {
  auto unset = load(kMinimal);
  ASSERT_NE(unset.config, nullptr) << testing::describe(unset.errors);
  EXPECT_FALSE(unset.config->spool.reserve.has_value());  // the daemon picks the default
  auto set = load(std::string(kMinimal) + "  max_size: 64MiB\n  reserve: 8MiB\n");
  ASSERT_NE(set.config, nullptr) << testing::describe(set.errors);
  EXPECT_EQ(set.config->spool.reserve, 8ull << 20);
  auto none = load(std::string(kMinimal) + "  reserve: 0\n");
  ASSERT_NE(none.config, nullptr) << testing::describe(none.errors);
  EXPECT_EQ(none.config->spool.reserve, 0u);
  auto too_big = load(std::string(kMinimal) + "  max_size: 64MiB\n  reserve: 32MiB\n");
  EXPECT_TRUE(has_problem(too_big.errors,
                          at(10, "spool.reserve") + "must be less than half of spool.max_size"));
  auto bad = load(std::string(kMinimal) + "  reserve: lots\n");
  EXPECT_TRUE(has_problem(bad.errors, at(9, "spool.reserve")));
}

TEST_F(ConfigLoaderTest, SpoolKeepStatusAndKeepFailed) {
  auto unset = load(kMinimal);
  ASSERT_NE(unset.config, nullptr) << testing::describe(unset.errors);
  EXPECT_EQ(unset.config->spool.keep_status, std::chrono::hours(24 * 7));
  EXPECT_EQ(unset.config->spool.keep_failed, conf::Duration{0});
  auto set = load(std::string(kMinimal) + "  keep_status: 36h\n  keep_failed: 3d\n");
  ASSERT_NE(set.config, nullptr) << testing::describe(set.errors);
  EXPECT_EQ(set.config->spool.keep_status, std::chrono::hours(36));
  EXPECT_EQ(set.config->spool.keep_failed, std::chrono::hours(72));
  auto off = load(std::string(kMinimal) + "  keep_status: 0\n  keep_failed: 0s\n");
  ASSERT_NE(off.config, nullptr) << testing::describe(off.errors);
  EXPECT_EQ(off.config->spool.keep_status, conf::Duration{0});
  EXPECT_EQ(off.config->spool.keep_failed, conf::Duration{0});
  auto bad = load(std::string(kMinimal) +
                  "  keep_status: a week\n"   // 9
                  "  keep_failed: 4000d\n");  // 10
  EXPECT_TRUE(has_problem(bad.errors, at(9, "spool.keep_status") + "bad duration"))
      << testing::describe(bad.errors);
  EXPECT_TRUE(has_problem(bad.errors, at(10, "spool.keep_failed") + "must be at most 3650d"))
      << testing::describe(bad.errors);
  auto listed = load(std::string(kMinimal) + "  keep_failed: [1d]\n");
  EXPECT_TRUE(has_problem(listed.errors, at(9, "spool.keep_failed")))
      << testing::describe(listed.errors);
  auto unknown = load(std::string(kMinimal) + "  keep_forever: true\n");
  EXPECT_TRUE(has_problem(unknown.errors, at(9, "spool.keep_forever")))
      << testing::describe(unknown.errors);
}

TEST_F(ConfigLoaderTest, AddressWithoutPort) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: a, address: 127.0.0.1:2525}\n"
      "  - {name: b, address: 1.2.3.4}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(
      has_problem(result.errors, at(4, "listeners[1].address") + "missing port in \"1.2.3.4\""));
}

TEST_F(ConfigLoaderTest, AddressWithPortOutOfRange) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: a, address: \"[::1]:99999\"}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors, at(3, "listeners[0].address") + "bad port \"99999\""));
}

TEST_F(ConfigLoaderTest, AddressWithHostName) {
  auto result = load(std::string(kMinimal) +
                     "delivery:\n"
                     "  routes:\n"
                     "    - {domain: example.org, smarthost: mail.example.org:25}\n");
  EXPECT_TRUE(has_problem(result.errors, at(11, "delivery.routes[0].smarthost") +
                                             "\"mail.example.org\" is not an IP address"));
}

TEST_F(ConfigLoaderTest, SmarthostFailoverLists) {
  auto good =
      load(std::string(kMinimal) +
           "delivery:\n"
           "  routes:\n"
           "    - {domain: example.org, smarthost: [192.0.2.1:25, \"[2001:db8::1]:587\"]}\n");
  ASSERT_TRUE(good.errors.empty());
  ASSERT_EQ(good.config->delivery.routes.size(), 1u);
  EXPECT_EQ(good.config->delivery.routes[0].site(), "192.0.2.1:25,[2001:db8::1]:587");
  auto bad = load(std::string(kMinimal) +
                  "delivery:\n"
                  "  routes:\n"
                  "    - {domain: example.org, smarthost: [192.0.2.1:25, mail.example.org]}\n"
                  "    - {domain: example.net, smarthost: []}\n");
  EXPECT_TRUE(has_problem(bad.errors, at(11, "delivery.routes[0].smarthost[1]") +
                                          "\"mail.example.org\" is not an IP address"));
  EXPECT_TRUE(has_problem(bad.errors, at(12, "delivery.routes[1].smarthost") + "an empty list"));
}

TEST_F(ConfigLoaderTest, UnbracketedIpv6Address) {
  auto result =
      load(std::string(kMinimal) + "admin: {address: \"::1:8025\", token_file: admin.token}\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "admin.address") + "IPv6 addresses need brackets"));
}

TEST_F(ConfigLoaderTest, BadCidr) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
      "relay_networks:\n"
      "  - 10.0.0.0/8\n"
      "  - 10.0.0.0/33\n"
      "  - example.org/24\n"
      "  - \"::1/129\"\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors,
                          at(5, "relay_networks[1]") + "prefix length 33 is longer than 32"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(6, "relay_networks[2]") + "\"example.org/24\" is not a network"));
  EXPECT_TRUE(has_problem(result.errors, at(7, "relay_networks[3]") + "prefix length 129"));
}

TEST_F(ConfigLoaderTest, CidrWithHostBitsWarns) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
      "relay_networks: [192.168.1.7/24]\n"
      "spool: {path: spool}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_TRUE(has_problem(result.warnings,
                          at(3, "relay_networks[0]") + "\"192.168.1.7/24\" has host bits"));
  EXPECT_EQ(result.config->relay_networks[0].bytes[3], 0);
}

// Each case is one problem, reported once on the line the operator has to
// fix: a bad entry is not also reported as an "empty" list.
TEST_F(ConfigLoaderTest, RelayNetworksReportOneProblemOnItsLine) {
  struct Case {
    const char* relay_networks;  // the config's line 3 on, "" for no key
    bool is_error;
    int line;
    const char* key_path;
    const char* problem;
  };
  const Case cases[] = {
      {"relay_networks: [\"127.0.0.300/8\"]\n", true, 3, "relay_networks[0]",
       "\"127.0.0.300/8\" is not a network in CIDR form (like 10.0.0.0/8 or ::1/128)"},
      {"relay_networks:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n", true, 5, "relay_networks[1]",
       "prefix length 33 is longer than 32 in \"10.0.0.0/33\""},
      {"relay_networks: [\"10.0.0.0/x\"]\n", true, 3, "relay_networks[0]",
       "bad prefix length in \"10.0.0.0/x\""},
      {"relay_networks: 10.0.0.0/8\n", true, 3, "relay_networks",
       "expected a list, got a single value"},
      {"relay_networks: []\n", false, 3, "relay_networks",
       "empty: relay listeners will refuse every client"},
      {"relay_networks:\n", false, 3, "relay_networks",
       "empty: relay listeners will refuse every client"},
      {"", false, 2, "relay_networks", "empty: relay listeners will refuse every client"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.relay_networks);
    auto result = load(std::string("hostname: mx.example.test\n"
                                   "listeners: [{name: a, address: 127.0.0.1:2525}]\n") +
                       c.relay_networks + "spool: {path: spool}\n");
    std::vector<ConfigError> problems = result.errors;
    problems.insert(problems.end(), result.warnings.begin(), result.warnings.end());
    ASSERT_EQ(problems.size(), 1u) << testing::describe(problems);
    EXPECT_EQ(result.errors.size(), c.is_error ? 1u : 0u) << testing::describe(problems);
    EXPECT_EQ(problems[0].to_string(), at(c.line, c.key_path) + c.problem);
  }
}

TEST_F(ConfigLoaderTest, EnumValues) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: a, address: 127.0.0.1:2525, mode: relais, tls: ssl}\n"
      "spool: {path: spool}\n"
      "milters:\n"
      "  - {name: m, address: 127.0.0.1:8891, on_failure: ignore}\n"
      "log: {level: verbose}\n");
  EXPECT_TRUE(has_problem(
      result.errors,
      at(3, "listeners[0].mode") + "expected one of submission, relay, feedback; got \"relais\""));
  EXPECT_TRUE(has_problem(
      result.errors,
      at(3, "listeners[0].tls") + "expected one of none, starttls, implicit; got \"ssl\""));
  EXPECT_TRUE(has_problem(
      result.errors, at(6, "milters[0].on_failure") + "expected one of tempfail, accept, reject"));
  EXPECT_TRUE(
      has_problem(result.errors, at(7, "log.level") + "expected one of trace, debug, info"));
}

TEST_F(ConfigLoaderTest, DuplicateListenerNames) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: smtp, address: 127.0.0.1:2525}\n"
      "  - {name: smtp, address: 127.0.0.1:2526}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(
      result.errors,
      at(4, "listeners[1].name") + "duplicate listener name \"smtp\" (also listeners[0])"));
}

TEST_F(ConfigLoaderTest, DuplicateListenerAddresses) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: a, address: 127.0.0.1:2525}\n"
      "  - {name: b, address: 127.0.0.1:2525}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors, at(4, "listeners[1].address") +
                                             "127.0.0.1:2525 is already used by listeners[0]"));
}

TEST_F(ConfigLoaderTest, RequiredKeysMissing) {
  auto result = load("log: {level: info}\n");
  EXPECT_TRUE(has_problem(result.errors, at(1, "hostname") + "required key missing"));
  EXPECT_TRUE(has_problem(result.errors, at(1, "listeners") + "required key missing"));
  EXPECT_TRUE(has_problem(result.errors, at(1, "spool") + "required key missing"));

  auto empty_list = load(
      "hostname: mx.example.test\n"
      "listeners: []\n"
      "spool:\n"
      "  max_size: 1GiB\n");
  EXPECT_TRUE(
      has_problem(empty_list.errors, at(2, "listeners") + "at least one listener is needed"));
  EXPECT_TRUE(has_problem(empty_list.errors, at(3, "spool.path") + "required key missing"));
}

TEST_F(ConfigLoaderTest, EmptyValueIsReportedAtItsKey) {
  auto result = load(
      "hostname:\n"
      "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors, at(1, "hostname") + "missing value"));
}

TEST_F(ConfigLoaderTest, AllProblemsAreReportedInLineOrder) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a, address: 127.0.0.1}]\n"
      "limits: {idle_timeout: soon}\n"
      "spool: {path: spool, size: 1GiB}\n");
  ASSERT_EQ(result.errors.size(), 3u) << testing::describe(result.errors);
  EXPECT_EQ(result.errors[0].line, 2);
  EXPECT_EQ(result.errors[1].line, 3);
  EXPECT_EQ(result.errors[2].to_string().substr(0, at(4, "spool.size").size()),
            at(4, "spool.size"));
}

TEST_F(ConfigLoaderTest, YamlSyntaxErrorGivesOneErrorWithItsLine) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a,\n"
      "spool: {path: spool}\n"
      "  bad: - indentation\n");
  ASSERT_EQ(result.errors.size(), 1u) << testing::describe(result.errors);
  EXPECT_GT(result.errors[0].line, 1);
  EXPECT_TRUE(result.errors[0].to_string().starts_with(
      file_.string() + ":" + std::to_string(result.errors[0].line) + ": YAML syntax error: "));
}

TEST_F(ConfigLoaderTest, YamlSyntaxErrorLine) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - name: a\n"
      "    address: 127.0.0.1: 25\n"
      "spool: {path: spool}\n");
  ASSERT_EQ(result.errors.size(), 1u) << testing::describe(result.errors);
  EXPECT_TRUE(has_problem(result.errors, file_.string() + ":4: YAML syntax error: "));
}

TEST_F(ConfigLoaderTest, NeverThrows) {
  for (std::string_view text :
       {std::string_view(""), std::string_view("just a string\n"), std::string_view("- a\n- b\n"),
        std::string_view("? [a]\n: b\n"), std::string_view("a: &x [*x]\n"),
        std::string_view("\xff\xfe\x00\x01", 4),
        std::string_view("hostname: !!binary aGVsbG8=\nlisteners: {a: 1}\n"),
        std::string_view("policy: {shaping: [{match: [1]}], backoff: 3}\n")}) {
    LoadResult result;
    EXPECT_NO_THROW(result = load(text)) << text;
    EXPECT_FALSE(result.errors.empty()) << text;
    EXPECT_EQ(result.config, nullptr);
  }
  auto missing = load_config(dir_ / "no-such.yaml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].to_string(),
            (dir_ / "no-such.yaml").string() +
                ": cannot read the config file: No such file or directory");
}

// --- referenced files -------------------------------------------------------

TEST_F(ConfigLoaderTest, TlsFilesLoadAndMatch) {
  auto result = load(std::string(kMinimal) +
                     "tls:\n"
                     "  certificate: tls/cert.pem\n"
                     "  private_key: tls/key.pem\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_EQ(result.config->tls.certificate, dir_.path() / "tls/cert.pem");
  EXPECT_EQ(result.config->tls.private_key, dir_.path() / "tls/key.pem");
}

TEST_F(ConfigLoaderTest, MissingTlsFileNamesKeyAndFile) {
  auto result = load(std::string(kMinimal) +
                     "tls:\n"
                     "  certificate: tls/nope.pem\n"
                     "  private_key: tls/key.pem\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "tls.certificate") + "file " +
                                             (dir_ / "tls/nope.pem").string() + " does not exist"));
}

TEST_F(ConfigLoaderTest, TlsKeyMustMatchCertificate) {
  auto result = load(std::string(kMinimal) +
                     "tls:\n"
                     "  certificate: tls/cert.pem\n"
                     "  private_key: tls/other-key.pem\n");
  EXPECT_TRUE(has_problem(result.errors, at(11, "tls.private_key") + "the private key in " +
                                             (dir_ / "tls/other-key.pem").string() +
                                             " does not match the certificate"));
}

TEST_F(ConfigLoaderTest, TlsFilesMustParse) {
  dir_.write("tls/garbage.pem", "not a certificate\n");
  auto result = load(std::string(kMinimal) +
                     "tls:\n"
                     "  certificate: tls/garbage.pem\n"
                     "  private_key: tls/cert.pem\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "tls.certificate") +
                                             (dir_ / "tls/garbage.pem").string() +
                                             " holds no PEM certificate"));
  EXPECT_TRUE(has_problem(
      result.errors,
      at(11, "tls.private_key") + (dir_ / "tls/cert.pem").string() + " holds no PEM private key"));
}

TEST_F(ConfigLoaderTest, StarttlsListenerNeedsTlsSection) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - name: a\n"
      "    address: 127.0.0.1:2525\n"
      "    tls: starttls\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(
      result.errors, at(5, "listeners[0].tls") + "tls: starttls needs a top-level tls: section"));
}

TEST_F(ConfigLoaderTest, SubmissionListenerNeedsUsersFile) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - name: sub\n"
      "    address: 127.0.0.1:2587\n"
      "    mode: submission\n"
      "    tls: implicit\n"
      "tls: {certificate: tls/cert.pem, private_key: tls/key.pem}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(result.errors,
                          at(5, "listeners[0].mode") + "mode submission needs auth.users_file"));
}

TEST_F(ConfigLoaderTest, SubmissionWithoutTlsCannotAuthenticate) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: sub, address: 127.0.0.1:2587, mode: submission}\n"
      "auth: {users_file: users.yaml}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(has_problem(
      result.errors,
      at(3, "listeners[0].tls") + "a submission listener without TLS can never authenticate"));
  auto allowed = load(
      "hostname: mx.example.test\n"
      "listeners:\n"
      "  - {name: sub, address: 127.0.0.1:2587, mode: submission, require_tls_for_auth: false}\n"
      "auth: {users_file: users.yaml}\n"
      "spool: {path: spool}\n");
  EXPECT_TRUE(allowed.errors.empty()) << testing::describe(allowed.errors);
}

TEST_F(ConfigLoaderTest, UsersFileMissing) {
  auto result = load(std::string(kMinimal) + "auth: {users_file: nobody.yaml}\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "auth.users_file") + "file " +
                                             (dir_ / "nobody.yaml").string() + " does not exist"));
}

TEST_F(ConfigLoaderTest, UsersFileProblemsCarryTheUsersFileLine) {
  auto users = dir_.write("bad-users.yaml", std::string("- name: app1\n"
                                                        "  password: hunter2\n"
                                                        "- {name: app2, password: \"") +
                                                kHash + "\", role: admin}\n");
  auto result = load(std::string(kMinimal) + "auth: {users_file: bad-users.yaml}\n");
  EXPECT_TRUE(has_problem(result.errors, at(9, "auth.users_file") + "the users file " +
                                             users.string() + " has 2 problem(s)"));
  EXPECT_TRUE(
      has_problem(result.errors, users.string() + ":2: users[0].password: not a crypt(3) hash"));
  EXPECT_TRUE(has_problem(result.errors, users.string() + ":3: users[1].role: unknown key"));
}

TEST_F(ConfigLoaderTest, AdminTokenFileMustExistAndHoldAToken) {
  dir_.write("empty.token", "\n");
  auto result = load(std::string(kMinimal) +
                     "admin:\n"
                     "  address: 127.0.0.1:8025\n"
                     "  token_file: empty.token\n");
  EXPECT_TRUE(has_problem(result.errors, at(11, "admin.token_file") + "the token file " +
                                             (dir_ / "empty.token").string() + " is empty"));
  auto missing = load(std::string(kMinimal) +
                      "admin:\n"
                      "  address: 127.0.0.1:8025\n"
                      "  token_file: gone.token\n");
  EXPECT_TRUE(has_problem(missing.errors, at(11, "admin.token_file") + "file " +
                                              (dir_ / "gone.token").string() + " does not exist"));
  auto absent = load(std::string(kMinimal) + "admin:\n  address: 127.0.0.1:8025\n");
  EXPECT_TRUE(has_problem(absent.errors, at(9, "admin.token_file") + "required key missing"));
}

TEST_F(ConfigLoaderTest, DkimKeys) {
  auto result =
      load(std::string(kMinimal) +
           "dkim:\n"
           "  - {domain: example.test, selector: rsa, private_key: dkim/example.test.pem}\n"
           "  - {domain: example.test, selector: ed, private_key: dkim/ed25519.pem}\n"
           "  - {domain: weak.test, selector: s1, private_key: dkim/rsa1024.pem}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->dkim.size(), 3u);
  EXPECT_EQ(result.config->dkim[1].private_key, dir_.path() / "dkim/ed25519.pem");
  EXPECT_EQ(result.config->dkim[0].headers.front(), "from");
  EXPECT_TRUE(has_problem(result.warnings, at(12, "dkim[2].private_key") + "the RSA key in " +
                                               (dir_ / "dkim/rsa1024.pem").string() +
                                               " has 1024 bits; 2048 is recommended"));
}

TEST_F(ConfigLoaderTest, DkimKeyProblems) {
  dir_.write("dkim/junk.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/rsa512.pem}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/junk.pem}\n"
                     "  - {domain: example.test, selector: s3, private_key: dkim/none.pem}\n"
                     "  - {domain: example.test, selector: s4, private_key: dkim/ed25519.pem,\n"
                     "     headers: [to, subject]}\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "dkim[0].private_key") + "the RSA key in " +
                                             (dir_ / "dkim/rsa512.pem").string() +
                                             " has 512 bits"));
  EXPECT_TRUE(has_problem(result.errors, at(11, "dkim[1].private_key") +
                                             (dir_ / "dkim/junk.pem").string() +
                                             " holds no PEM private key"));
  EXPECT_TRUE(has_problem(result.errors, at(12, "dkim[2].private_key") + "file " +
                                             (dir_ / "dkim/none.pem").string() +
                                             " does not exist"));
  EXPECT_TRUE(has_problem(result.errors, at(14, "dkim[3].headers") + "must include \"from\""));
}

// An RSA key of `bits` made of four primes: OpenSSL finds four ~1 kbit
// primes in well under a second, where two ~2 kbit primes for a key over
// 4096 bits take several seconds. The loader only looks at the modulus size.
EVP_PKEY* make_four_prime_rsa_key(unsigned bits) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, static_cast<int>(bits)) == 1 &&
      EVP_PKEY_CTX_set_rsa_keygen_primes(ctx, 4) == 1) {
    EVP_PKEY_generate(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

TEST_F(ConfigLoaderTest, DkimOptionDefaults) {
  auto result =
      load(std::string(kMinimal) +
           "dkim:\n"
           "  - {domain: Example.TEST, selector: rsa, private_key: dkim/example.test.pem}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->dkim.size(), 1u);
  const DkimKey& key = result.config->dkim[0];
  EXPECT_EQ(key.domain, "example.test");
  EXPECT_FALSE(key.simple_header_canonicalization);  // relaxed/relaxed
  EXPECT_FALSE(key.simple_body_canonicalization);
  EXPECT_FALSE(key.expire_after.has_value());
  EXPECT_FALSE(key.match_subdomains);
}

TEST_F(ConfigLoaderTest, DkimCanonicalizationValues) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: relaxed/relaxed}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: simple/simple}\n"
                     "  - {domain: example.test, selector: s3, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: relaxed/simple}\n"
                     "  - {domain: example.test, selector: s4, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: simple/relaxed}\n"
                     "  - {domain: example.test, selector: s5, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: Simple/Relaxed}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->dkim.size(), 5u);
  struct Expected {
    const char* selector;
    bool simple_header;
    bool simple_body;
  };
  const Expected expected[] = {{"s1", false, false},
                               {"s2", true, true},
                               {"s3", false, true},
                               {"s4", true, false},
                               {"s5", true, false}};
  for (size_t i = 0; i < std::size(expected); ++i) {
    const DkimKey& key = result.config->dkim[i];
    SCOPED_TRACE(key.selector);
    EXPECT_EQ(key.selector, expected[i].selector);
    EXPECT_EQ(key.simple_header_canonicalization, expected[i].simple_header);
    EXPECT_EQ(key.simple_body_canonicalization, expected[i].simple_body);
  }
}

TEST_F(ConfigLoaderTest, DkimBadCanonicalization) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: nofws}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: relaxed/strict}\n"
                     "  - {domain: example.test, selector: s3, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: relaxed/relaxed/relaxed}\n"
                     "  - {domain: example.test, selector: s4, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: [relaxed, simple]}\n");
  ASSERT_EQ(result.config, nullptr);
  EXPECT_TRUE(has_problem(result.errors, at(11, "dkim[0].canonicalization") +
                                             "\"nofws\" is not relaxed/relaxed, simple/simple, "
                                             "relaxed/simple or simple/relaxed"));
  EXPECT_TRUE(
      has_problem(result.errors, at(13, "dkim[1].canonicalization") + "\"relaxed/strict\" is not"));
  EXPECT_TRUE(has_problem(
      result.errors, at(15, "dkim[2].canonicalization") + "\"relaxed/relaxed/relaxed\" is not"));
  EXPECT_TRUE(has_problem(result.errors,
                          at(17, "dkim[3].canonicalization") + "expected a string, got a list"));
}

TEST_F(ConfigLoaderTest, DkimExpireAfter) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: 1d}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: 90m}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->dkim.size(), 2u);
  EXPECT_EQ(result.config->dkim[0].expire_after, std::chrono::hours(24));
  EXPECT_EQ(result.config->dkim[1].expire_after, std::chrono::minutes(90));
}

TEST_F(ConfigLoaderTest, DkimBadExpireAfter) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: 1y}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: -1d}\n"
                     "  - {domain: example.test, selector: s3, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: soon}\n");
  ASSERT_EQ(result.config, nullptr);
  EXPECT_TRUE(has_problem(result.errors, at(11, "dkim[0].expire_after") + "bad duration \"1y\""));
  EXPECT_TRUE(has_problem(result.errors, at(13, "dkim[1].expire_after") + "bad duration \"-1d\""));
  EXPECT_TRUE(has_problem(result.errors, at(15, "dkim[2].expire_after") + "bad duration \"soon\""));
}

TEST_F(ConfigLoaderTest, DkimExpireAfterUnderASecondWouldMakeXEqualT) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: 0s}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     expire_after: 500ms}\n");
  ASSERT_EQ(result.config, nullptr);
  EXPECT_TRUE(has_problem(result.errors, at(11, "dkim[0].expire_after") + "must be at least 1s"));
  EXPECT_TRUE(has_problem(result.errors, at(13, "dkim[1].expire_after") + "must be at least 1s"));
}

TEST_F(ConfigLoaderTest, DkimOneWordCanonicalizationMeansSimpleBodyAsInCTag) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     canonicalization: relaxed}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_FALSE(result.config->dkim[0].simple_header_canonicalization);
  EXPECT_TRUE(result.config->dkim[0].simple_body_canonicalization);
}

TEST_F(ConfigLoaderTest, DkimSubdomains) {
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                     "     subdomains: true}\n"
                     "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                     "     subdomains: false}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  ASSERT_EQ(result.config->dkim.size(), 2u);
  EXPECT_TRUE(result.config->dkim[0].match_subdomains);
  EXPECT_FALSE(result.config->dkim[1].match_subdomains);

  auto bad = load(std::string(kMinimal) +
                  "dkim:\n"
                  "  - {domain: example.test, selector: s1, private_key: dkim/ed25519.pem,\n"
                  "     subdomains: maybe}\n"
                  "  - {domain: example.test, selector: s2, private_key: dkim/ed25519.pem,\n"
                  "     subdomains: [true]}\n");
  ASSERT_EQ(bad.config, nullptr);
  EXPECT_TRUE(has_problem(bad.errors,
                          at(11, "dkim[0].subdomains") + "expected true or false, got \"maybe\""));
  EXPECT_TRUE(has_problem(bad.errors, at(13, "dkim[1].subdomains") + "expected true or false"));
}

TEST_F(ConfigLoaderTest, DkimRsaKeyOver4096BitsIsRefused) {
  EVP_PKEY* big = make_four_prime_rsa_key(4104);
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(EVP_PKEY_get_bits(big), 4104);
  testing::write_private_key(big, dir_ / "dkim/rsa4104.pem");
  EVP_PKEY_free(big);
  auto result = load(std::string(kMinimal) +
                     "dkim:\n"
                     "  - {domain: example.test, selector: s1, private_key: dkim/rsa4104.pem}\n");
  ASSERT_EQ(result.config, nullptr);
  EXPECT_TRUE(has_problem(result.errors, at(10, "dkim[0].private_key") + "the RSA key in " +
                                             (dir_ / "dkim/rsa4104.pem").string() +
                                             " has 4104 bits; DKIM keys over 4096 bits"));
}

TEST_F(ConfigLoaderTest, DeliveryLogDirectoryMustExist) {
  auto result = load(std::string(kMinimal) + "log:\n  delivery_log: logs/delivery.jsonl\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "log.delivery_log") + "the directory " +
                                             (dir_ / "logs").string() + " does not exist"));
  std::filesystem::create_directory(dir_ / "logs");
  auto ok = load(std::string(kMinimal) + "log:\n  delivery_log: logs/delivery.jsonl\n");
  ASSERT_TRUE(ok.errors.empty()) << testing::describe(ok.errors);
  EXPECT_EQ(ok.config->log.delivery_log, dir_.path() / "logs/delivery.jsonl");
}

TEST_F(ConfigLoaderTest, SpoolParentMustExist) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
      "spool:\n"
      "  path: no/such/spool\n");
  EXPECT_TRUE(has_problem(result.errors, at(4, "spool.path") + "the directory " +
                                             (dir_ / "no/such").string() +
                                             " (parent of the spool) does not exist"));
}

TEST_F(ConfigLoaderTest, AbsolutePathsStayAsWritten) {
  auto result = load(
      "hostname: mx.example.test\n"
      "listeners: [{name: a, address: 127.0.0.1:2525}]\n"
      "spool: {path: " +
      (dir_ / "abs-spool").string() + "}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_EQ(result.config->spool.path, dir_.path() / "abs-spool");
}

TEST_F(ConfigLoaderTest, PolicyProblemsUseTheirPolicyPath) {
  auto result = load(std::string(kMinimal) +
                     "policy:\n"
                     "  campaign_header: \"X Campaign\"\n"
                     "  sources: [{name: ip1, address: 192.0.2.10}]\n"
                     "  pools: [{name: default, sources: [ip1, ip9]}]\n"
                     "  warmup: [{source: ip7, schedule: [50/h]}]\n"
                     "  backoff:\n"
                     "    - match: {text: \"([unclosed\"}\n"
                     "      action: {suspend: 15m}\n"
                     "  bounce_rules:\n"
                     "    - match: {code: 550}\n"
                     "      category: NoSuchThing\n");
  EXPECT_TRUE(has_problem(result.errors, at(10, "policy.campaign_header") +
                                             "\"X Campaign\" is not a header field name"));
  EXPECT_TRUE(
      has_problem(result.errors, at(12, "policy.pools[0].sources[1]") + "unknown source \"ip9\""));
  EXPECT_TRUE(
      has_problem(result.errors, at(13, "policy.warmup[0].source") + "unknown source \"ip7\""));
  EXPECT_TRUE(has_problem(result.errors,
                          at(15, "policy.backoff[0].match.text") + "bad regular expression"));
  EXPECT_TRUE(has_problem(result.errors, at(19, "policy.bounce_rules[0].category") +
                                             "unknown bounce category \"NoSuchThing\""));
}

TEST_F(ConfigLoaderTest, CampaignHeaderIsMirrored) {
  auto result = load(std::string(kMinimal) + "policy: {campaign_header: X-Mailing}\n");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_EQ(result.config->campaign_header, "X-Mailing");
  EXPECT_EQ(result.config->policy->campaign_header, "X-Mailing");
}

// --- the shipped configs ------------------------------------------------------

TEST_F(ConfigLoaderTest, ExampleConfigLoadsWithTheFilesItNames) {
  std::string text =
      read_text(std::filesystem::path(RINGMAIL_SOURCE_DIR) / "conf/ringmail.example.yaml");
  ASSERT_FALSE(text.empty());
  // The example names system paths; point them into the test directory.
  std::filesystem::create_directories(dir_ / "log");
  replace_all(text, "/var/spool/ringmail", (dir_ / "spool").string());
  replace_all(text, "/var/log/ringmail/delivery.jsonl", (dir_ / "log/delivery.jsonl").string());
  auto result = load(text);
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_TRUE(result.warnings.empty()) << testing::describe(result.warnings);
  const Config& config = *result.config;
  EXPECT_EQ(config.hostname, "mx1.example.test");
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].name, "submission");
  EXPECT_EQ(config.listeners[0].address.host, "0.0.0.0");
  EXPECT_EQ(config.listeners[0].address.port, 587);
  EXPECT_EQ(config.listeners[0].mode, ListenerMode::submission);
  EXPECT_EQ(config.listeners[0].tls, TlsMode::starttls);
  EXPECT_TRUE(config.listeners[0].require_tls_for_auth);
  EXPECT_EQ(config.listeners[1].mode, ListenerMode::relay);
  ASSERT_EQ(config.relay_networks.size(), 2u);
  EXPECT_EQ(config.relay_networks[1].family, AF_INET6);
  EXPECT_EQ(config.relay_networks[1].prefix_length, 128);
  EXPECT_EQ(config.auth.users_file, dir_.path() / "users.yaml");
  EXPECT_EQ(config.limits.max_message_size, 50ull << 20);
  EXPECT_EQ(config.limits.max_recipients, 1000u);
  EXPECT_EQ(config.limits.max_connections, 20000u);
  EXPECT_EQ(config.limits.idle_timeout, std::chrono::minutes(5));
  EXPECT_EQ(config.limits.shutdown_timeout, std::chrono::seconds(30));
  EXPECT_EQ(config.spool.max_size, 16ull << 30);
  ASSERT_EQ(config.delivery.routes.size(), 2u);
  EXPECT_EQ(config.delivery.routes[0].domain, "*.internal.test");
  EXPECT_EQ(config.delivery.routes[0].smarthost.host, "10.0.0.5");
  EXPECT_TRUE(config.delivery.routes[0].failover.empty());
  EXPECT_EQ(config.delivery.routes[1].site(), "10.0.0.6:587,10.0.0.7:587");
  ASSERT_EQ(config.delivery.routes[1].failover.size(), 1u);
  EXPECT_EQ(config.delivery.routes[1].failover[0].port, 587);
  ASSERT_EQ(config.delivery.dns.nameservers.size(), 1u);
  EXPECT_EQ(config.delivery.dns.nameservers[0].port, 53);
  EXPECT_EQ(config.delivery.retry.intervals.back(), std::chrono::hours(4));
  EXPECT_EQ(config.delivery.retry.max_age, std::chrono::hours(24 * 5));
  EXPECT_TRUE(config.delivery.generate_dsn);
  EXPECT_EQ(config.delivery.smtp_port, 25);
  EXPECT_EQ(config.delivery.tls, OutboundTls::opportunistic);
  EXPECT_EQ(config.delivery.max_connections_per_site, 32u);
  EXPECT_EQ(config.delivery.timeouts.data_term, std::chrono::minutes(10));
  ASSERT_EQ(config.dkim.size(), 1u);
  EXPECT_EQ(config.dkim[0].selector, "s2026");
  EXPECT_EQ(config.dkim[0].headers.size(), 7u);
  ASSERT_EQ(config.milters.size(), 1u);
  EXPECT_EQ(config.milters[0].on_failure, MilterFailure::tempfail);
  EXPECT_EQ(config.milters[0].timeout, std::chrono::seconds(10));
  EXPECT_EQ(config.campaign_header, "X-Campaign-ID");
  const PolicyConfig& policy = *config.policy;
  ASSERT_EQ(policy.sources.size(), 2u);
  EXPECT_EQ(policy.sources[0].address.family, AF_INET);
  ASSERT_EQ(policy.pools.size(), 1u);
  EXPECT_EQ(policy.pools[0].sources, (std::vector<PoolMember>{{"ip1", 3}, {"ip2", 1}}));
  ASSERT_EQ(policy.tenants.size(), 1u);
  EXPECT_EQ(policy.tenants[0].name, "app1");
  EXPECT_EQ(policy.tenants[0].pool, "default");
  EXPECT_EQ(policy.tenants[0].max_messages, (Rate{10000, std::chrono::hours(1)}));
  ASSERT_EQ(policy.shaping.size(), 1u);
  EXPECT_EQ(policy.shaping[0].match.kind, ShapingMatch::Kind::mx_suffix);
  EXPECT_EQ(policy.shaping[0].match.value, ".google.com");
  EXPECT_EQ(policy.shaping[0].max_connections, 20u);
  EXPECT_EQ(policy.shaping[0].message_rate, (Rate{300, std::chrono::minutes(1)}));
  ASSERT_EQ(policy.backoff.size(), 1u);
  EXPECT_TRUE(policy.backoff[0].match.matches(421, "4.7.0", "Rate LIMIT exceeded"));
  EXPECT_EQ(policy.backoff[0].action.kind, BackoffAction::Kind::suspend);
  EXPECT_EQ(policy.backoff[0].action.suspend, std::chrono::minutes(15));
  ASSERT_EQ(policy.warmup.size(), 1u);
  EXPECT_EQ(policy.warmup[0].schedule.size(), 6u);
  EXPECT_FALSE(policy.warmup[0].schedule.back().has_value());
  EXPECT_TRUE(policy.bounce_rules.empty());
  ASSERT_TRUE(config.admin.address.has_value());
  EXPECT_EQ(config.admin.address->port, 8025);
  EXPECT_EQ(config.admin.token_file, dir_.path() / "admin.token");
  EXPECT_FALSE(config.admin.metrics_auth);
  EXPECT_EQ(config.log.delivery_log, dir_.path() / "log/delivery.jsonl");
}

TEST_F(ConfigLoaderTest, DevConfigLoadsAfterDevSetup) {
  if (std::system("command -v mkpasswd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") !=
      0) {
    GTEST_SKIP() << "mkpasswd or openssl missing (make deps)";
  }
  TempDir tree;
  std::filesystem::create_directories(tree / "conf");
  std::filesystem::copy_file(std::filesystem::path(RINGMAIL_SOURCE_DIR) / "conf/ringmail.dev.yaml",
                             tree / "conf/ringmail.dev.yaml");
  std::string command =
      "bash " + (std::filesystem::path(RINGMAIL_SOURCE_DIR) / "scripts/dev-setup.sh").string() +
      " " + (tree / "var").string() + " >/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  // A second run must change nothing.
  std::string token = read_text(tree / "var/admin.token");
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(read_text(tree / "var/admin.token"), token);

  auto result = load_config(tree / "conf/ringmail.dev.yaml");
  ASSERT_TRUE(result.errors.empty()) << testing::describe(result.errors);
  EXPECT_TRUE(result.warnings.empty()) << testing::describe(result.warnings);
  const Config& config = *result.config;
  EXPECT_EQ(config.hostname, "localhost");
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].address.port, 2587);
  EXPECT_EQ(config.listeners[1].address.port, 2525);
  EXPECT_EQ(config.spool.path, tree.path() / "var/spool");
  EXPECT_EQ(config.spool.max_size, 1ull << 30);
  EXPECT_EQ(config.log.delivery_log, tree.path() / "var/log/delivery.jsonl");
  ASSERT_EQ(config.dkim.size(), 1u);
  EXPECT_EQ(config.dkim[0].selector, "dev");
}

}  // namespace
}  // namespace ringmail::conf
