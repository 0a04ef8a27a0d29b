#include "admin-api/admin_destination.h"

#include <future>
#include <memory>

#include "mta/outbound/delivery_planner.h"

namespace ringmail::admin {

Destination DnsDestinationFinder::find(const conf::Config& config, const std::string& domain) {
  Destination d;
  d.port = config.delivery.smtp_port;
  for (const conf::Route& r : config.delivery.routes) {
    if (!mta::route_matches(r, domain)) continue;
    d.outcome = Destination::Outcome::found;
    d.site = r.site();  // the delivery log's site: the failover list too
    d.shaping_domain = r.domain;
    d.hosts = {mta::MxHost{r.smarthost.host, 0, {r.smarthost.host}, r.smarthost.port}};
    d.port = r.smarthost.port;
    return d;
  }
  mta::DnsResolverOptions options;
  options.nameservers = config.delivery.dns.nameservers;
  std::string why;
  std::unique_ptr<mta::DnsResolver> resolver = mta::DnsResolver::create(options, &why);
  if (!resolver) {
    d.error = "DNS resolver: " + why;
    return d;
  }
  std::promise<mta::MxResolution> answer;
  std::future<mta::MxResolution> done = answer.get_future();
  resolver->resolve_mx(domain, [&answer](const mta::MxResolution& r) { answer.set_value(r); });
  if (done.wait_for(kLookupTimeout) != std::future_status::ready) {
    resolver->stop();
    d.error = "DNS lookup of " + domain + " timed out";
    return d;
  }
  const mta::MxResolution resolution = done.get();
  resolver->stop();
  switch (resolution.status) {
    case mta::MxResolution::Status::ok:
      d.outcome = Destination::Outcome::found;
      d.site = resolution.site;
      d.shaping_domain = domain;
      d.hosts = resolution.hosts;
      return d;
    case mta::MxResolution::Status::null_mx:
    case mta::MxResolution::Status::no_domain:
    case mta::MxResolution::Status::no_hosts:
      d.outcome = Destination::Outcome::no_destination;
      break;
    case mta::MxResolution::Status::temporary:
      break;
  }
  d.error = "DNS: " + resolution.error;
  return d;
}

}  // namespace ringmail::admin
