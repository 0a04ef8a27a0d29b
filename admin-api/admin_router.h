// admin-api/admin_router.h — the admin API's routes (CONTRACT.md "Admin
// API" and "Control plane in detail"), without a socket.
//
// Owns: nothing but the decision for one request. A request in (method,
// path, query, the Authorization header, the body), a response out
// (status, headers, JSON body), like SmtpServerSession's effects as data:
// the HTTP server (admin_server.h) moves the bytes, this decides. Auth
// (the admin token, compared in constant time), 404/405/400/413 errors as
// {"error", "detail"}, JSON parsing and field checks, and the calls into
// the daemon (mta::DaemonControl) live here, so that the fuzz target and
// the unit tests drive all of it without a server.
//
// Threads: handle() may run on several admin threads at once; it keeps no
// state of its own but counters.
// Trust: everything in a request is untrusted: bodies are parsed with
// nlohmann-json without exceptions escaping, every field is checked for
// type and size, and nothing from the request reaches a log unquoted.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "mta/daemon.h"
#include "runtime/clock.h"

namespace ringmail::admin {

class Prober;             // admin-api/admin_probe.h
class DestinationFinder;  // admin-api/admin_destination.h

inline constexpr size_t kMaxRequestBody = 1 << 20;  // 1 MiB (CONTRACT)

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string, as received (percent-decoded)
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string authorization;                               // the header's value, "" if absent
  std::string body;
  bool body_too_large = false;  // the server stopped reading at request_body_limit()
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Allow, WWW-Authenticate
  // GET /api/v1/events: the server streams delivery-log records of these
  // types (all when empty) instead of sending `body`.
  bool event_stream = false;
  std::vector<std::string> event_types;
};

// {"error": error, "detail": detail} with that status.
HttpResponse json_error(int status, std::string error, std::string detail);

// The injection route, whose body is a whole message.
inline constexpr const char* kInjectionPath = "/api/v1/messages";

// How much of a request's body is read: limits.max_message_size for the
// injection route, kMaxRequestBody for every other (CONTRACT).
size_t request_body_limit(const std::string& path, const conf::Config& config);

class AdminRouter {
 public:
  // daemon and clock must outlive the router.
  AdminRouter(mta::DaemonControl& daemon, const runtime::Clock& clock)
      : daemon_(daemon), clock_(clock) {}

  // POST /api/v1/probe; without one the route answers 404.
  void set_prober(Prober* prober) { prober_ = prober; }
  // GET /api/v1/explain routes through it; without one the route answers 404.
  void set_destinations(DestinationFinder* finder) { destinations_ = finder; }

  // `token`: the admin token in force ("" refuses every /api/ request).
  // Tenant API keys (admin.api_keys_file) are taken from the daemon's
  // config; they open POST /api/v1/messages and nothing else.
  // `peer_ip`: the client's address, for the Received field of mail it
  // injects ("" when unknown).
  HttpResponse handle(const HttpRequest& request, const std::string& token, bool metrics_auth,
                      const std::string& peer_ip) const;
  HttpResponse handle(const HttpRequest& request, const std::string& token,
                      bool metrics_auth) const {
    return handle(request, token, metrics_auth, "");
  }

  // Who a request is: the admin, a tenant's API key, or nobody. Checked in
  // handle(); the server asks before it reads a large body.
  struct Caller {
    bool admin = false;
    std::string key_tenant;  // set for an API key
    bool known() const { return admin || !key_tenant.empty(); }
  };
  Caller authenticate(const std::string& authorization, const std::string& token) const;

 private:
  HttpResponse route(const HttpRequest& request) const;
  HttpResponse stats() const;
  HttpResponse queue(const HttpRequest& request) const;
  HttpResponse suspend(const HttpRequest& request) const;
  HttpResponse resume(const HttpRequest& request) const;
  HttpResponse bounce(const HttpRequest& request) const;
  HttpResponse delivery_pause(bool pause) const;
  HttpResponse reload() const;
  HttpResponse events(const HttpRequest& request) const;
  HttpResponse probe(const HttpRequest& request) const;
  HttpResponse explain(const HttpRequest& request) const;
  HttpResponse warmup(const HttpRequest& request) const;
  // admin_campaigns.cc: /api/v1/campaigns[/ID[/ACTION]], /api/v1/tenants[/NAME[/ACTION]]
  HttpResponse campaigns(const HttpRequest& request) const;
  HttpResponse tenants(const HttpRequest& request) const;
  HttpResponse inject(const HttpRequest& request, const Caller& caller,
                      const std::string& peer_ip) const;
  // admin_messages.cc: GET /api/v1/messages/ID, /api/v1/dead[/ID[/retry]]
  HttpResponse messages(const HttpRequest& request) const;
  HttpResponse dead(const HttpRequest& request) const;
  // admin_suppressions.cc: GET/POST/DELETE /api/v1/suppressions
  HttpResponse suppressions(const HttpRequest& request) const;

  mta::DaemonControl& daemon_;
  const runtime::Clock& clock_;
  Prober* prober_ = nullptr;
  DestinationFinder* destinations_ = nullptr;
};

// True when the Authorization header carries exactly `token` as a Bearer
// credential; the comparison takes the same time wherever they differ.
bool bearer_matches(const std::string& authorization, const std::string& token);

// The tenant whose API key the Authorization header carries as a Bearer
// credential, or "": the key's SHA-256 is compared with every configured
// hash in constant time (CRYPTO_memcmp), and all of them are looked at.
std::string api_key_tenant(const std::string& authorization, const std::vector<conf::ApiKey>& keys);

}  // namespace ringmail::admin
