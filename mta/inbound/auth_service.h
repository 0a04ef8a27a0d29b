// mta/inbound/auth_service.h — verification of SMTP AUTH credentials against the
// users file (crypt(3) hashes: yescrypt, sha-512, bcrypt, ...).
//
// Owns: one worker thread that runs crypt_rn() (tens of milliseconds for
// yescrypt, so never on a shard thread), the current user table, a bounded
// cache of recent successful verifications, and two brakes on password
// guessing per client address: an admission bucket shared by all of the
// client's connections (mta/auth_throttle.h) and failure counts that delay
// each failed reply.
//
// Threads: admit(), try_cached(), verify() and replace_users() may be called
// from any thread (all shards share one service). The `done` callback of
// verify() runs on the worker thread; the event loop posts the outcome to
// the connection's shard. The destructor
// answers requests still queued with tempfail (on the worker thread) and
// joins it, so it must run before the shards that receive the answers go.
//
// SECURITY: the credentials come from the network. Hashes are compared in
// constant time; an unknown user costs one crypt against a real hash of the
// table, so timing does not reveal which names exist; the cache holds only
// keyed hashes (HMAC-SHA-256 with a per-process random key) of name and
// password, never the password; passwords are wiped after use. Every
// attempt of a client address (IPv6 per /64) is admitted before it is
// verified, cached successes included: after a burst, one attempt a second
// however many connections the client opens, and tempfail without crypt
// when the wait would exceed a cap. Failed attempts also raise a reply
// delay of up to 5 s. Memory is bounded: the cache, the failure and
// admission tables and the request queue all have fixed limits. No
// durability: everything here is in memory.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "conf/config_users.h"
#include "mta/inbound/auth_throttle.h"
#include "mta/smtp/smtp_server_session.h"

struct crypt_data;  // <crypt.h>

namespace ringmail::mta {

struct AuthOutcome {
  enum class Status { ok, invalid, tempfail };
  Status status = Status::invalid;
  // How long the loop waits before it sends the reply (failed attempts
  // only; 0 otherwise).
  std::chrono::milliseconds delay{0};
};

struct AuthServiceOptions {
  std::chrono::milliseconds cache_ttl = std::chrono::minutes(10);
  size_t cache_capacity = 10000;
  std::chrono::milliseconds failure_window = std::chrono::minutes(15);
  size_t max_tracked_clients = 100000;
  std::chrono::milliseconds delay_per_failure{500};
  int max_counted_failures = 10;  // delay is capped at this many steps
  // Admission per client across its connections (mta/auth_throttle.h): a
  // burst of attempts, then one per refill interval; an attempt that would
  // wait longer than max_admission_wait is refused. Tracks at most
  // max_tracked_clients clients.
  int attempt_burst = 10;
  std::chrono::milliseconds attempt_refill_interval{1000};
  std::chrono::milliseconds max_admission_wait = std::chrono::seconds(30);
  // Requests waiting for the worker beyond this answer tempfail at once.
  size_t max_pending = 1000;
  // Injected for tests; steady_clock::now by default.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

class AuthService {
 public:
  struct UserTable;  // defined in the .cc

  explicit AuthService(std::vector<conf::UserEntry> users, AuthServiceOptions options = {});
  ~AuthService();
  AuthService(const AuthService&) = delete;
  AuthService& operator=(const AuthService&) = delete;

  // Asked before every attempt of the client at peer_ip, before try_cached()
  // and verify(): go now, wait `delay` and then go, or refuse (answer
  // tempfail without verifying). A success later gives the token back.
  AuthAdmission admit(const std::string& peer_ip);
  // A recent successful verification of exactly these credentials: answers
  // ok without crypt. nullopt means "call verify()". Cheap; any thread.
  std::optional<AuthOutcome> try_cached(const AuthRequest& request);
  // Queues the request; `done` runs once, on the worker thread.
  void verify(AuthRequest request, std::function<void(AuthOutcome)> done);
  // New user table (reload). Forgets every cached verification, including
  // those of requests in flight, so that a changed password stops working.
  void replace_users(std::vector<conf::UserEntry> users);

 private:
  struct Pending {
    AuthRequest request;
    std::function<void(AuthOutcome)> done;
    bool overflow = false;  // answered tempfail without crypt
  };
  struct CacheEntry {
    std::chrono::steady_clock::time_point expires;
  };
  struct FailureRecord {
    int count = 0;
    std::chrono::steady_clock::time_point last;
  };

  std::chrono::steady_clock::time_point now() const;
  std::string cache_key(const AuthRequest& request) const;
  void run_worker();
  AuthOutcome check(AuthRequest& request, crypt_data& scratch);
  void remember_success(std::string key, uint64_t generation);
  std::chrono::milliseconds record_failure(const std::string& peer_ip);
  void refund_admission(const std::string& peer_ip);

  AuthServiceOptions options_;
  unsigned char cache_secret_[32];

  std::mutex mutex_;  // everything below
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::shared_ptr<const UserTable> users_;
  uint64_t generation_ = 0;  // bumped by replace_users()
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, FailureRecord> failures_;
  AuthThrottle throttle_;

  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace ringmail::mta
