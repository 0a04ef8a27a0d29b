// mta/outbound/delivery_admin.h — what the admin API asks of delivery and
// what it gets back: operator commands (holds, suspensions, bounces) and
// snapshots of the queue and of the counts since start.
//
// Plain values, no behaviour: the delivery planner takes the commands and
// makes the snapshots on its thread; OutboundServer carries both across
// threads, so this header stays light for the admin server to include.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "policy/warmup.h"
#include "runtime/clock.h"

namespace ringmail::mta {

// What an operator asks of delivery (the admin API sends these).
struct AdminCommand {
  enum class Kind {
    suspend_site,
    resume_site,
    suspend_domain,  // recipients of the domain wait, whatever site it routes to
    resume_domain,
    pause_tenant,
    resume_tenant,
    pause_campaign,
    resume_campaign,
    pause_all,
    resume_all,
    // Every queued recipient of the campaign (`target`) leaves the spool,
    // logged Cancelled; any of its recipients that come up later (in a
    // transaction now, or committed meanwhile) are cancelled too.
    cancel_campaign,
    // Every queued recipient (not in a transaction now) of the site,
    // domain, campaign or tenant leaves the spool, logged AdminBounce with
    // `reason`; no DSN is sent (the operator chose to drop the mail).
    bounce_site,
    bounce_domain,
    bounce_campaign,
    bounce_tenant,
    // The campaign's egress pool and message_rate (its record's), for its
    // jobs from now on: `pool` ("" = its tenant's), rate_count per
    // rate_per (0 = no rate).
    set_campaign_policy,
  };
  Kind kind = Kind::pause_all;
  std::string target;         // site, domain, tenant or campaign
  runtime::WallTime until{};  // suspend_site, suspend_domain
  std::string reason;         // bounce_*
  std::string pool = {};      // set_campaign_policy (initialised: aggregates may omit it)
  uint64_t rate_count = 0;
  runtime::Millis rate_per{0};
};

// The set_campaign_policy command for a campaign record's pool and rate
// text ("300/m"; "" or unreadable = none).
AdminCommand campaign_policy_command(const std::string& id, const std::string& pool,
                                     const std::string& message_rate);

// What the admin API shows of the queue: one entry per destination site
// (as the delivery log names it) and egress source. A job not routed yet
// counts under its domain's last MX answer, else under the domain itself.
struct QueueFilter {
  std::string site, domain, campaign, tenant;  // "" = any
};
struct SiteSnapshot {
  std::string site;
  std::string source = "default";    // the egress source's name
  std::vector<std::string> domains;  // recipient domains queued for it (sorted, at most 50)
  uint64_t queued = 0;               // recipients waiting: ready, deferred or held
  uint64_t deferred = 0;             // of those, waiting for a retry time
  uint64_t in_flight = 0;            // in a transaction now
  uint64_t delivered = 0;            // since start
  uint64_t bounced = 0;              // since start (bounced or expired)
  std::optional<runtime::WallTime> suspended_until;
  // A backoff rule in force (CONTRACT's SITE.backoff).
  struct Backoff {
    std::string action;  // "suspend" or "rate_factor"
    runtime::WallTime until{};
    std::string rule, reply;
  };
  std::optional<Backoff> backoff;
  // The circuit breaker (Ringmail extension): every address failed
  // `failures` times in a row; no attempt before open_until, then one probe.
  struct Circuit {
    uint32_t failures = 0;
    runtime::WallTime open_until{};
  };
  std::optional<Circuit> circuit;
};
// Recipients since the planner started (the daemon's start).
struct DeliveryTotals {
  uint64_t received = 0;  // recipients of committed messages (DSNs included)
  uint64_t delivered = 0;
  uint64_t deferred = 0;  // deferrals (TransientFailure records)
  uint64_t bounced = 0;   // bounced for good (not expired)
  uint64_t expired = 0;
  uint64_t admin_bounced = 0;
  uint64_t cancelled = 0;                               // with their campaign
  uint64_t suppressed = 0;                              // on a suppression list, not attempted
  std::map<std::string, uint64_t> bounced_by_category;  // bounces and expirations
};
// One message as delivery sees it now (GET /api/v1/messages/ID): what the
// spool's recipient states cannot say.
struct MessageLiveView {
  bool scheduled = false;           // delivery has jobs for it
  std::vector<uint32_t> in_flight;  // recipient indexes in a transaction now
  std::vector<uint32_t> held;       // waiting under a pause or suspension (shown as queued)
};
struct DeliverySnapshot {
  DeliveryTotals totals;
  uint64_t queued = 0;              // recipients waiting or in flight that match the filter
  uint64_t in_flight = 0;           // of those, in a transaction
  std::vector<SiteSnapshot> sites;  // by site name, then source
  // Every warm-up key (GET /api/v1/warmup), by source then provider.
  std::vector<policy::WarmupStatus> warmup;
};

// GET /api/v1/explain: one more limit in force for a (source, site) that
// delivery knows at run time and the config does not say (an active
// backoff, a warm-up cap), as the route lists it: {"name", "value",
// "set_by"}.
struct ExplainedLimit {
  std::string name;  // "message_rate", "suspended", "warmup_cap", …
  std::variant<std::monostate, int64_t, bool, std::string> value;  // monostate: null
  std::string set_by;  // "backoff RULE", "warmup SOURCE day N", …
};
// The ready queue the explain route asks about.
struct ExplainTarget {
  std::string domain;
  std::string site;            // as the planner names it (ReadyQueueKey::site)
  std::string source;          // the egress source's name ("default": the machine's address)
  std::string source_address;  // "" for the machine's default address
  std::string provider;        // the shipped provider of the site, "" for none
};

}  // namespace ringmail::mta
