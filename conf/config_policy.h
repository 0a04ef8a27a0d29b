// conf/config_policy.h — the policy: section of the config as typed rules:
// egress sources and weighted pools, tenants (pool, rate, submission
// limit), shaping, adaptive backoff, warm-up schedules, extra bounce
// rules, and the feedback loop's return path, unsubscribe and complaint
// thresholds (CONTRACT.md; read in conf/config_feedback.cc). The policy/ module turns these into
// decisions; here they are only parsed and validated (names cross-checked,
// regexes compiled, rates and categories checked).
//
// Threads: immutable after load_config(); any thread may read it. Network:
// operator input only. ResponseMatch::matches() is pure and may be called
// on the delivery path with text from a remote server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "conf/config_units.h"
#include "mail/bounce_category.h"

namespace ringmail::conf {

// The bounce categories of CONTRACT.md (KumoMTA's classifier names).
// The categories live in mail/bounce_category.h (below conf/, beside
// SmtpReply); conf names them for the rules it parses.
using mail::all_bounce_categories;
using mail::bounce_category_name;
using mail::BounceCategory;
using mail::parse_bounce_category;

// "300/m": count events per period (s, m, h or d).
struct Rate {
  uint64_t count = 0;
  Duration per{1000};
  double per_second() const {
    return per.count() > 0 ? static_cast<double>(count) * 1000.0 / static_cast<double>(per.count())
                           : 0.0;
  }
  friend bool operator==(const Rate&, const Rate&) = default;
};
std::optional<Rate> parse_rate(std::string_view text);
// The config's text of a rate ("300/m"); a period other than 1s, 1m, 1h or
// 1d (rates made in code) in milliseconds: "5/1500ms".
std::string format_rate(const Rate& rate);

// An egress source IP (bound before connect).
struct EgressSource {
  std::string name;
  IpAddress address;
};

// A source of a pool and its share of the pool's jobs: a pool's sources
// are used in proportion to their weights (policy/egress_selector.h).
struct PoolMember {
  std::string source;   // a name from PolicyConfig::sources
  uint32_t weight = 1;  // 1..1000
  friend bool operator==(const PoolMember&, const PoolMember&) = default;
};

struct EgressPool {
  std::string name;
  std::vector<PoolMember> sources;  // in the order configured
};

// policy.tenants[]: what a tenant's mail leaves from and how fast, and how
// much of it Ringmail takes in. The tenant of relayed mail is the text of
// its relay_networks entry, of submitted mail the AUTH user, of injected
// mail the API key's tenant (CONTRACT.md "Traffic policy").
struct TenantPolicy {
  std::string name;
  std::string pool;                  // a policy.pools name; "": the default pool
  std::optional<Rate> message_rate;  // delivery, per recipient attempt, across all sites
  uint64_t burst = 0;                // of message_rate; 0 (not given): the rate's count
  std::optional<Rate> max_messages;  // submission: messages (MAIL FROMs) taken in
};

// Shaping rules match exactly one of these.
struct ShapingMatch {
  enum class Kind { domain, mx_suffix, provider };
  Kind kind = Kind::domain;
  std::string value;  // lower-cased
};

struct ShapingRule {
  ShapingMatch match;
  std::optional<uint32_t> max_connections;
  std::optional<uint32_t> max_messages_per_connection;
  std::optional<Rate> message_rate;
  uint64_t burst = 0;  // of message_rate; 0 (not given): the rate's count
  std::optional<Rate> connection_rate;
};

// Matches an SMTP reply. Every given part must match; at least one is given.
struct ResponseMatch {
  std::optional<int> code;  // exact reply code, e.g. 421
  std::string enhanced;     // "5.7.1", or a prefix of whole parts: "5.7", "5"
  std::string text;         // the regex as written (a leading "(?i)" = ignore case)
  std::shared_ptr<const std::regex> text_regex;  // ECMAScript, searched in the reply text
  bool matches(int reply_code, std::string_view reply_enhanced, std::string_view reply_text) const;
};

// A ResponseMatch made in code (shipped rules, tests) the way the config
// makes one: text is ECMAScript, a leading "(?i)" ignores case, "" = any
// text. Throws std::regex_error on a bad pattern, so only for patterns
// written by people, never for text from the network.
ResponseMatch make_response_match(std::optional<int> code, std::string enhanced, std::string text);

struct BackoffAction {
  enum class Kind { suspend, rate_factor, bounce };
  Kind kind = Kind::suspend;
  Duration suspend{0};        // kind == suspend
  double rate_factor = 1.0;   // kind == rate_factor: 0 < factor < 1
  Duration recover_after{0};  // kind == rate_factor
};

// A rule with `when` fires only on the count-th matching reply within
// `within` on one ready queue (source, site); the count then starts again.
struct BackoffWhen {
  uint32_t count = 1;  // >= 1
  Duration within{0};  // > 0
  friend bool operator==(const BackoffWhen&, const BackoffWhen&) = default;
};

struct BackoffRule {
  ResponseMatch match;
  BackoffAction action;
  std::optional<BackoffWhen> when;  // none: every matching reply fires
};

// A UTC date written YYYY-MM-DD (a real calendar day, years 1970-9999).
std::optional<std::chrono::sys_days> parse_utc_date(std::string_view text);

// What a warming source does with jobs over its cap (CONTRACT.md).
enum class WarmupOverflow {
  spill,  // they go to other sources of the pool that are warm or under cap
  hold,   // they wait for the next window (but spill rather than expire)
};

// Which days move a source on to its next step (policy/warmup.h).
enum class WarmupAdvance {
  calendar,     // every UTC day
  sending_day,  // only UTC days on which it sent
};

// One step per day of the source's age; nullopt = unlimited.
struct WarmupPlan {
  std::string source;
  std::vector<std::optional<Rate>> schedule;
  // Day 1; none: the UTC day of first use (persisted by the spool).
  std::optional<std::chrono::sys_days> started;
  // Provider names of mail/mailbox_provider.h, in config order, no
  // repeats: the cap counts per named provider (other sites are not
  // capped). Empty: one cap across all sites.
  std::vector<std::string> providers;
  WarmupOverflow overflow = WarmupOverflow::spill;
  WarmupAdvance advance = WarmupAdvance::calendar;
  friend bool operator==(const WarmupPlan&, const WarmupPlan&) = default;
};

struct BounceRule {
  ResponseMatch match;
  BounceCategory category = BounceCategory::Uncategorized;
};

// policy.return_path (CONTRACT.md "Feedback"): VERP envelope senders
// b-TOKEN@domain and the X-Ringmail-Ref header, both signed with key
// (policy/feedback_token.h), and the Feedback-ID header whose last field
// is sender_id (policy/return_path.h does all three).
struct ReturnPathConfig {
  std::string domain;  // lower-cased
  bool verp = true;
  HmacKey key;
  std::string sender_id = "ringmail";  // 5-15 of [A-Za-z0-9._-] (Gmail's SenderId)
};

// policy.list_unsubscribe: one-click unsubscribe (RFC 8058): the header
// fields (policy/list_unsubscribe.h) and the endpoint on `listen`
// (mta/unsubscribe_endpoint.h).
struct ListUnsubscribeConfig {
  SocketAddress listen;
  // https://host[:port][/path] without a trailing '/', query or fragment;
  // http:// only for a loopback host (tests). A token is appended as
  // URL/TOKEN.
  std::string url;
  std::string mailto_domain;  // "" : no mailto; lower-cased
  HmacKey key;
};

// policy.complaints: complaint rates, as fractions (0.001 = 0.1%), with
// 0 < warn <= pause <= 1.
struct ComplaintThresholds {
  double warn = 0.001;
  double pause = 0.003;
  friend bool operator==(const ComplaintThresholds&, const ComplaintThresholds&) = default;
};

struct PolicyConfig {
  std::string campaign_header = "X-Campaign-ID";
  std::vector<EgressSource> sources;
  std::vector<EgressPool> pools;
  std::vector<TenantPolicy> tenants;
  std::vector<ShapingRule> shaping;  // first match wins
  std::vector<BackoffRule> backoff;  // first match wins
  // policy.backoff was given (even as []): it replaces the shipped rules
  // (policy/backoff_defaults.h). Absent: the shipped rules apply.
  bool backoff_given = false;
  std::vector<WarmupPlan> warmup;
  std::vector<BounceRule> bounce_rules;  // tried before the shipped rules
  std::optional<ReturnPathConfig> return_path;
  std::optional<ListUnsubscribeConfig> list_unsubscribe;
  ComplaintThresholds complaints;

  const EgressSource* find_source(std::string_view name) const;
  const EgressPool* find_pool(std::string_view name) const;
  const TenantPolicy* find_tenant(std::string_view name) const;
  const WarmupPlan* find_warmup(std::string_view source) const;
};

}  // namespace ringmail::conf
