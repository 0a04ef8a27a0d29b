// conf/config.h — the typed, validated configuration of ringmaild.
//
// Owns: the Config value that every other module reads. A Config is built
// once by load_config() (conf/config_loader.cc), never modified afterwards,
// and shared as std::shared_ptr<const Config>; reload builds a new one and
// swaps the pointer. Any thread may read a Config it holds.
//
// Trust: the YAML file is operator input; load_config() validates every key
// and every file it names and reports FILE:LINE: key.path: problem.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::conf {

using Duration = std::chrono::milliseconds;

// "host:port" or "[v6]:port"; unix sockets use unix_path instead.
struct SocketAddress {
  std::string host;  // literal IP, without brackets
  uint16_t port = 0;
  std::string unix_path;  // set for "unix:/path" addresses (milters only)
  std::string text;       // as written in the config, for messages
};

// An IPv4 or IPv6 network in CIDR form.
struct Network {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t bytes[16] = {};
  int prefix_length = 0;
  std::string text;
  // addr: 4 or 16 bytes in network order, family AF_INET / AF_INET6.
  // IPv4-mapped IPv6 addresses match IPv4 networks.
  bool contains(int addr_family, const uint8_t* addr) const;
};

// feedback: bounces and reports for policy.return_path.domain, from anyone
// (no AUTH, no relay), processed by mta/feedback_processor.h.
enum class ListenerMode { submission, relay, feedback };
enum class TlsMode { none, starttls, implicit };

struct Listener {
  std::string name;
  SocketAddress address;
  ListenerMode mode = ListenerMode::relay;
  TlsMode tls = TlsMode::none;
  bool require_tls_for_auth = true;
};

struct TlsConfig {
  std::filesystem::path certificate;  // empty when no tls: section
  std::filesystem::path private_key;
};

struct AuthConfig {
  std::filesystem::path users_file;  // empty when no auth: section
};

struct Limits {
  uint64_t max_message_size = 50ull << 20;
  uint32_t max_recipients = 1000;
  uint32_t max_connections = 20000;
  Duration idle_timeout = std::chrono::minutes(5);
  Duration shutdown_timeout = std::chrono::seconds(30);
  // Deadlines a client cannot extend by trickling bytes (Ringmail
  // extensions; mta::SessionSettings says what each one times).
  Duration command_timeout = std::chrono::seconds(60);
  Duration tls_handshake_timeout = std::chrono::seconds(10);
  uint64_t min_data_rate = 1024;  // body octets per second; 0: no minimum
  Duration data_rate_grace = std::chrono::seconds(30);
  // Connections per client address (IPv6: per /64), across all listeners;
  // 0: unlimited. Clients in connection_limit_exempt are not counted.
  uint32_t max_connections_per_ip = 50;
  std::vector<Network> connection_limit_exempt;
};

struct SpoolConfig {
  std::filesystem::path path;
  uint64_t max_size = 16ull << 30;  // LMDB map size
  // Room kept for delivery results: new mail is refused (452 4.3.1) below
  // it. Unset: queue::default_spool_reserve(max_size); 0: no reserve.
  std::optional<uint64_t> reserve;
  // How long a finished message's status record is kept (GET
  // /api/v1/messages/ID); 0: not kept.
  Duration keep_status = std::chrono::hours(24 * 7);
  // How long a message with a bounced or expired recipient is kept whole,
  // as a dead letter that can be retried; 0 (the default): not kept.
  Duration keep_failed{0};
};

struct Route {
  std::string domain;  // exact, or "*.suffix", or "*"
  SocketAddress smarthost;
  // `smarthost: [A, B, …]` (Ringmail extension): the ones after the first,
  // tried in order when the ones before fail (failover).
  std::vector<SocketAddress> failover = {};
  // The delivery log's site: "A" alone, else "A,B,…".
  std::string site() const {
    std::string text = smarthost.text;
    for (const SocketAddress& next : failover) text += "," + next.text;
    return text;
  }
};

struct DnsConfig {
  std::vector<SocketAddress> nameservers;  // empty: /etc/resolv.conf
};

struct RetryConfig {
  std::vector<Duration> intervals = {std::chrono::minutes(1), std::chrono::minutes(5),
                                     std::chrono::minutes(15), std::chrono::hours(1),
                                     std::chrono::hours(4)};
  Duration max_age = std::chrono::hours(24 * 5);
};

enum class OutboundTls { none, opportunistic, required };

// RFC 5321 §4.5.3.2 defaults (delivery.timeouts).
struct DeliveryTimeouts {
  Duration connect = std::chrono::seconds(30);
  Duration greeting = std::chrono::minutes(5);
  Duration ehlo = std::chrono::minutes(5);
  Duration starttls = std::chrono::minutes(2);
  Duration mail = std::chrono::minutes(5);
  Duration rcpt = std::chrono::minutes(5);
  Duration data_init = std::chrono::minutes(2);
  Duration data_block = std::chrono::minutes(3);
  Duration data_term = std::chrono::minutes(10);
  Duration quit = std::chrono::seconds(30);
};

struct DeliveryConfig {
  std::vector<Route> routes;
  DnsConfig dns;
  RetryConfig retry;
  bool generate_dsn = true;
  // Ringmail extensions.
  uint16_t smtp_port = 25;  // port of MX hosts (routes name their own)
  OutboundTls tls = OutboundTls::opportunistic;
  uint32_t max_connections = 2000;                  // outbound connections in all
  uint32_t max_connections_per_site = 32;           // unless a shaping rule says otherwise
  uint32_t initial_connections = 2;                 // a site's start, grown with its backlog
  uint32_t max_messages_per_connection = 100;       // unless a shaping rule says otherwise
  Duration idle_timeout = std::chrono::seconds(5);  // an idle outbound connection closes
  // Accept and spool, deliver nothing (no DNS, no connection) until a
  // reload sets it false again: maintenance, migrations, benchmarks of
  // acceptance alone.
  bool paused = false;
  DeliveryTimeouts timeouts;
};

struct DkimKey {
  std::string domain;
  std::string selector;
  std::filesystem::path private_key;
  // feedback-id: Gmail counts it only when a signature covers it.
  std::vector<std::string> headers = {
      "from", "to", "subject", "date", "message-id", "list-unsubscribe", "feedback-id"};
  // canonicalization: "relaxed/relaxed" (default), "simple/simple", … (header/body)
  bool simple_header_canonicalization = false;
  bool simple_body_canonicalization = false;
  std::optional<Duration> expire_after;  // x= = t= + expire_after
  bool match_subdomains = false;         // also sign mail from sub.domain
};

enum class MilterFailure { tempfail, accept, reject };

struct Milter {
  std::string name;
  SocketAddress address;
  MilterFailure on_failure = MilterFailure::tempfail;
  Duration timeout = std::chrono::seconds(10);
};

// One tenant API key of admin.api_keys_file: only the SHA-256 of the key is
// known, never the key itself.
struct ApiKey {
  std::string tenant;
  std::array<unsigned char, 32> sha256{};
  int line = 0;  // 1-based line of the entry in the keys file
};

struct AdminConfig {
  std::optional<SocketAddress> address;
  std::filesystem::path token_file;
  bool metrics_auth = false;
  // Keys that may inject (POST /api/v1/messages) and nothing else, read from
  // api_keys_file at load and at every reload; empty without the file.
  std::filesystem::path api_keys_file;
  std::vector<ApiKey> api_keys;
};

// The admin token a token file holds: its contents without trailing
// whitespace (the final newline an editor adds). "" when there is none. The
// daemon, the config check and ringmailctl all read a token file this way.
std::string trim_token(std::string_view contents);

// A key of an HMAC key file (conf/config_secret.h): at least 32 octets.
struct HmacKey {
  std::filesystem::path file;
  std::string key;  // the octets as read, one trailing newline stripped
};

// The delivery-log record types (CONTRACT.md "Delivery log"), for
// webhooks[].events.
inline constexpr std::string_view kDeliveryLogTypes[] = {
    "Reception",   "Delivery",  "TransientFailure", "Bounce",  "Expiration",
    "AdminBounce", "Cancelled", "Suppressed",       "Feedback"};

// webhooks[]: delivery-log records POSTed as JSON arrays, signed with
// X-Ringmail-Signature (CONTRACT.md); posted by mta/webhook_dispatcher.h.
struct Webhook {
  std::string name;                 // 1-64 of [A-Za-z0-9._-], unique
  std::string url;                  // http:// or https://
  std::vector<std::string> events;  // kDeliveryLogTypes names; empty: every type
  HmacKey secret;
  uint32_t batch = 100;           // records per POST, 1..1000
  uint64_t max_backlog = 100000;  // records kept for a dead endpoint
};

struct LogConfig {
  std::string level = "info";          // trace debug info warn error critical off
  std::filesystem::path delivery_log;  // empty: no delivery log
};

// policy: is parsed and validated here; its rule types live in
// conf/config_policy.h so that this header stays small.
struct PolicyConfig;

struct Config {
  std::filesystem::path source_file;  // absolute path of the YAML file
  std::string hostname;
  std::vector<Listener> listeners;
  std::vector<Network> relay_networks;
  TlsConfig tls;
  AuthConfig auth;
  Limits limits;
  SpoolConfig spool;
  DeliveryConfig delivery;
  std::vector<DkimKey> dkim;
  std::vector<Milter> milters;
  std::shared_ptr<const PolicyConfig> policy;     // never null after load_config()
  std::string campaign_header = "X-Campaign-ID";  // policy.campaign_header
  AdminConfig admin;
  LogConfig log;
  std::vector<Webhook> webhooks;
};

// One validation problem, printed as "FILE:LINE: key.path: problem".
struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  std::string key_path;
  std::string problem;
  std::string to_string() const;
};

struct ConfigWarning : ConfigError {};

struct LoadResult {
  std::shared_ptr<const Config> config;  // null when errors is not empty
  std::vector<ConfigError> errors;
  std::vector<ConfigError> warnings;  // e.g. weak DKIM keys
};

// Reads, parses and validates a config file and every file it names
// (certificates, keys, users file, token file, DKIM keys). Never throws.
LoadResult load_config(const std::filesystem::path& file);

// Parses "500ms", "30s", "5m", "4h", "5d". nullopt on bad input.
std::optional<Duration> parse_duration(std::string_view text);
// Parses "512KiB", "50MiB", "16GiB", or a plain byte count.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace ringmail::conf
