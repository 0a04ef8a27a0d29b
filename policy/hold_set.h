// policy/hold_set.h — what an operator has held: all delivery, a tenant, a
// campaign, or one site until a time (suspension).
//
// Owns: the holds themselves, nothing about the jobs. The delivery planner
// asks before it attempts a job (held jobs wait; they are not attempts and
// do not expire while a campaign or tenant hold lasts) and before it opens
// or uses a connection to a site. Pure: no clock (times are passed in), no
// I/O, no locks; one thread (the planner's). Not durable by itself: the
// admin API persists holds and replays them at start-up.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/clock.h"

namespace ringmail::policy {

class HoldSet {
 public:
  void pause_all() { all_ = true; }
  void resume_all() { all_ = false; }
  bool all_paused() const { return all_; }

  void pause_tenant(std::string tenant) { tenants_.insert(std::move(tenant)); }
  void resume_tenant(const std::string& tenant) { tenants_.erase(tenant); }
  void pause_campaign(std::string campaign) { campaigns_.insert(std::move(campaign)); }
  void resume_campaign(const std::string& campaign) { campaigns_.erase(campaign); }
  // For good: its jobs are cancelled, not held (a cancelled campaign is
  // never resumed).
  void cancel_campaign(std::string campaign) {
    campaigns_.erase(campaign);
    cancelled_.insert(std::move(campaign));
  }
  bool campaign_cancelled(std::string_view campaign) const {
    return !cancelled_.empty() && !campaign.empty() && cancelled_.contains(campaign);
  }

  // No new attempt to `site` before `until`.
  void suspend_site(std::string site, runtime::WallTime until) { sites_[std::move(site)] = until; }
  void resume_site(const std::string& site) { sites_.erase(site); }
  // No new attempt to recipients of `domain` before `until`, whatever site
  // it routes to.
  void suspend_domain(std::string domain, runtime::WallTime until) {
    domains_[std::move(domain)] = until;
  }
  void resume_domain(const std::string& domain) { domains_.erase(domain); }

  // A job of this tenant and campaign must wait (every hold but sites').
  bool holds_job(std::string_view tenant, std::string_view campaign) const;
  // The end of the site's suspension, when it is suspended at `now`.
  std::optional<runtime::WallTime> site_suspended(const std::string& site,
                                                  runtime::WallTime now) const;
  std::optional<runtime::WallTime> domain_suspended(const std::string& domain,
                                                    runtime::WallTime now) const;
  // Forgets suspensions that ended before `now`; true when one did (its
  // held jobs may go now). Domains whose suspension ended are appended to
  // *ended_domains when given.
  bool expire(runtime::WallTime now, std::vector<std::string>* ended_domains = nullptr);

 private:
  bool all_ = false;
  std::set<std::string, std::less<>> tenants_;
  std::set<std::string, std::less<>> campaigns_;
  std::set<std::string, std::less<>> cancelled_;
  std::unordered_map<std::string, runtime::WallTime> sites_;
  std::unordered_map<std::string, runtime::WallTime> domains_;
};

}  // namespace ringmail::policy
