// mta/inbound/auth_service.cc — see auth_service.h.
#include "mta/inbound/auth_service.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace ringmail::mta {

namespace {

using Clock = std::chrono::steady_clock;

void wipe(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

// Failures are counted per client address; an IPv6 client usually holds a
// whole /64, so that is the unit there.
std::string client_key(const std::string& peer_ip) {
  in6_addr v6{};
  if (inet_pton(AF_INET6, peer_ip.c_str(), &v6) == 1 && !IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memset(v6.s6_addr + 8, 0, 8);
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v6, text, sizeof text)) return std::string(text) + "/64";
  }
  return peer_ip;
}

// Erases the entry with the smallest `when(entry)`. Linear, used only when a
// table is full of live entries (an attack), on the worker thread.
template <typename Map, typename When>
void evict_oldest(Map& map, When when) {
  auto oldest = std::min_element(map.begin(), map.end(), [&](const auto& a, const auto& b) {
    return when(a.second) < when(b.second);
  });
  if (oldest != map.end()) map.erase(oldest);
}

}  // namespace

struct AuthService::UserTable {
  std::unordered_map<std::string, std::string> hashes;  // name -> crypt(3) hash
  // Crypted against for unknown users so that they cost the same time as
  // known ones: a real hash of the table when there is one.
  std::string decoy_setting;
};

namespace {

std::shared_ptr<const AuthService::UserTable> build_table(std::vector<conf::UserEntry> users) {
  auto table = std::make_shared<AuthService::UserTable>();
  for (conf::UserEntry& user : users) {
    if (table->decoy_setting.empty()) table->decoy_setting = user.password_hash;
    table->hashes.emplace(std::move(user.name), std::move(user.password_hash));  // first wins
  }
  if (table->decoy_setting.empty()) {
    // No users: a yescrypt setting with random salt costs what a hash costs.
    unsigned char random[16];
    RAND_bytes(random, sizeof random);
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$y$", 0, reinterpret_cast<const char*>(random), sizeof random, setting,
                         sizeof setting)) {
      table->decoy_setting = setting;
    }
  }
  return table;
}

AuthThrottleOptions throttle_options(const AuthServiceOptions& options) {
  AuthThrottleOptions out;
  out.burst = options.attempt_burst;
  out.refill_interval = options.attempt_refill_interval;
  out.max_wait = options.max_admission_wait;
  out.max_tracked = options.max_tracked_clients;
  return out;
}

}  // namespace

AuthService::AuthService(std::vector<conf::UserEntry> users, AuthServiceOptions options)
    : options_(std::move(options)),
      users_(build_table(std::move(users))),
      throttle_(throttle_options(options_)) {
  if (RAND_bytes(cache_secret_, sizeof cache_secret_) != 1) {
    // Without randomness the cache key would be guessable: disable the cache.
    options_.cache_capacity = 0;
  }
  worker_ = std::thread([this] { run_worker(); });
}

AuthService::~AuthService() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
  OPENSSL_cleanse(cache_secret_, sizeof cache_secret_);
}

Clock::time_point AuthService::now() const {
  return options_.clock ? options_.clock() : Clock::now();
}

std::string AuthService::cache_key(const AuthRequest& request) const {
  std::string material;
  material.reserve(request.username.size() + 1 + request.password.size());
  material += request.username;
  material += '\0';
  material += request.password;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), cache_secret_, sizeof cache_secret_,
       reinterpret_cast<const unsigned char*>(material.data()), material.size(), digest, &length);
  wipe(material);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

AuthAdmission AuthService::admit(const std::string& peer_ip) {
  std::string key = client_key(peer_ip);
  std::lock_guard lock(mutex_);
  return throttle_.admit(key, now());
}

std::optional<AuthOutcome> AuthService::try_cached(const AuthRequest& request) {
  if (options_.cache_capacity == 0) return std::nullopt;
  if (!request.authzid.empty() && request.authzid != request.username) return std::nullopt;
  std::string key = cache_key(request);
  std::lock_guard lock(mutex_);
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  Clock::time_point t = now();
  if (it->second.expires <= t) {
    cache_.erase(it);
    return std::nullopt;
  }
  throttle_.refund(client_key(request.peer_ip), t);
  return AuthOutcome{AuthOutcome::Status::ok, std::chrono::milliseconds(0)};
}

void AuthService::verify(AuthRequest request, std::function<void(AuthOutcome)> done) {
  std::unique_lock lock(mutex_);
  if (stopping_) {
    // Only reachable when a caller races the destructor; answer honestly.
    lock.unlock();
    wipe(request.password);
    done(AuthOutcome{AuthOutcome::Status::tempfail, std::chrono::milliseconds(0)});
    return;
  }
  Pending pending{std::move(request), std::move(done), false};
  if (queue_.size() >= options_.max_pending) {
    // Overloaded: answered tempfail by the worker before its next crypt.
    pending.overflow = true;
    queue_.push_front(std::move(pending));
  } else {
    queue_.push_back(std::move(pending));
  }
  lock.unlock();
  wake_.notify_one();
}

void AuthService::replace_users(std::vector<conf::UserEntry> users) {
  auto table = build_table(std::move(users));
  std::lock_guard lock(mutex_);
  users_ = std::move(table);
  ++generation_;
  cache_.clear();
}

void AuthService::run_worker() {
  // crypt_rn's scratch space (tens of KiB), reused for every request.
  auto scratch = std::make_unique<crypt_data>();
  std::memset(scratch.get(), 0, sizeof(crypt_data));
  for (;;) {
    Pending pending;
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      pending = std::move(queue_.front());
      queue_.pop_front();
      stopping = stopping_;
    }
    AuthOutcome outcome{AuthOutcome::Status::tempfail, std::chrono::milliseconds(0)};
    if (!stopping && !pending.overflow) outcome = check(pending.request, *scratch);
    wipe(pending.request.password);
    pending.done(outcome);
  }
}

AuthOutcome AuthService::check(AuthRequest& request, crypt_data& scratch) {
  std::shared_ptr<const UserTable> table;
  uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    table = users_;
    generation = generation_;
  }
  // NUL cannot be passed to crypt(3) and appears in no configured name.
  bool well_formed = request.password.find('\0') == std::string::npos &&
                     request.username.find('\0') == std::string::npos;
  bool authorization_ok = request.authzid.empty() || request.authzid == request.username;
  auto user = table->hashes.find(request.username);
  bool known = user != table->hashes.end();
  const std::string& setting = known ? user->second : table->decoy_setting;

  // The crypt runs for unknown users and malformed input too: every
  // failure takes the time of a real verification.
  const char* result = crypt_rn(request.password.c_str(), setting.c_str(), &scratch,
                                static_cast<int>(sizeof scratch));
  bool match = false;
  if (result && result[0] != '*') {
    size_t length = std::strlen(result);
    match = known && length == setting.size() && CRYPTO_memcmp(result, setting.data(), length) == 0;
  } else if (known) {
    spdlog::warn("auth: the password hash of user '{}' is not usable by crypt(3)",
                 request.username);
  }
  OPENSSL_cleanse(&scratch, sizeof scratch);  // the derived hash of a wrong password too

  if (match && well_formed && authorization_ok) {
    remember_success(cache_key(request), generation);
    refund_admission(request.peer_ip);
    return AuthOutcome{AuthOutcome::Status::ok, std::chrono::milliseconds(0)};
  }
  return AuthOutcome{AuthOutcome::Status::invalid, record_failure(request.peer_ip)};
}

void AuthService::remember_success(std::string key, uint64_t generation) {
  if (options_.cache_capacity == 0) return;
  std::lock_guard lock(mutex_);
  if (generation != generation_) return;  // users replaced while crypt ran
  Clock::time_point t = now();
  if (cache_.size() >= options_.cache_capacity && !cache_.contains(key)) {
    std::erase_if(cache_, [&](const auto& entry) { return entry.second.expires <= t; });
    if (cache_.size() >= options_.cache_capacity) {
      evict_oldest(cache_, [](const CacheEntry& e) { return e.expires; });
    }
  }
  cache_[std::move(key)] = CacheEntry{t + options_.cache_ttl};
}

void AuthService::refund_admission(const std::string& peer_ip) {
  std::string key = client_key(peer_ip);
  std::lock_guard lock(mutex_);
  throttle_.refund(key, now());
}

std::chrono::milliseconds AuthService::record_failure(const std::string& peer_ip) {
  std::string key = client_key(peer_ip);
  std::lock_guard lock(mutex_);
  Clock::time_point t = now();
  auto it = failures_.find(key);
  if (it == failures_.end()) {
    if (failures_.size() >= options_.max_tracked_clients) {
      std::erase_if(failures_, [&](const auto& entry) {
        return t - entry.second.last >= options_.failure_window;
      });
      if (failures_.size() >= options_.max_tracked_clients) {
        evict_oldest(failures_, [](const FailureRecord& r) { return r.last; });
      }
    }
    it = failures_.emplace(std::move(key), FailureRecord{0, t}).first;
  }
  FailureRecord& record = it->second;
  // Quiet for a whole window: the client starts again from zero.
  if (t - record.last >= options_.failure_window) record.count = 0;
  record.count = std::min(record.count + 1, options_.max_counted_failures);
  record.last = t;
  return options_.delay_per_failure * record.count;
}

}  // namespace ringmail::mta
