// Tests for mta/auth_service: real crypt(3) hashes made at test time by
// mkpasswd (package whois), verified on the service's worker thread; the
// cache, reload, per-client slow-down and overload behaviour as the event
// loop would see them (outcome and delay).
#include "mta/inbound/auth_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace ringmail::mta {
namespace {

using namespace std::chrono_literals;
using Status = AuthOutcome::Status;

// `password` must not contain a single quote (it is quoted for the shell).
std::string mkpasswd(const std::string& method, const std::string& password) {
  std::string cmd = "mkpasswd -m " + method + " '" + password + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return {};
  char buf[512];
  std::string out;
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

AuthRequest request(std::string user, std::string password, std::string ip = "192.0.2.10",
                    std::string authzid = "") {
  AuthRequest r;
  r.authzid = std::move(authzid);
  r.username = std::move(user);
  r.password = std::move(password);
  r.mechanism = "PLAIN";
  r.peer_ip = std::move(ip);
  return r;
}

AuthOutcome verify_sync(AuthService& service, AuthRequest r) {
  auto promise = std::make_shared<std::promise<AuthOutcome>>();
  auto future = promise->get_future();
  service.verify(std::move(r), [promise](AuthOutcome o) { promise->set_value(o); });
  if (future.wait_for(30s) != std::future_status::ready) {
    ADD_FAILURE() << "no answer within 30 s";
    return AuthOutcome{Status::tempfail, 0ms};
  }
  return future.get();
}

class AuthServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alice_yescrypt_ = mkpasswd("yescrypt", "correct horse battery");
    bob_sha512_ = mkpasswd("sha-512", "s3cret-Bob");
    alice_new_ = mkpasswd("yescrypt", "new password 2");
  }
  void SetUp() override {
    ASSERT_TRUE(alice_yescrypt_.starts_with("$y$")) << "mkpasswd missing? " << alice_yescrypt_;
    ASSERT_TRUE(bob_sha512_.starts_with("$6$")) << bob_sha512_;
  }
  static std::vector<conf::UserEntry> users() {
    return {{"alice", alice_yescrypt_, 1}, {"bob", bob_sha512_, 2}};
  }
  // Bob first: unknown users then crypt against the fast sha-512 hash.
  static std::vector<conf::UserEntry> fast_users() {
    return {{"bob", bob_sha512_, 1}, {"alice", alice_yescrypt_, 2}};
  }

  static std::string alice_yescrypt_, bob_sha512_, alice_new_;
};
std::string AuthServiceTest::alice_yescrypt_;
std::string AuthServiceTest::bob_sha512_;
std::string AuthServiceTest::alice_new_;

TEST_F(AuthServiceTest, RightPasswordOkWrongPasswordAndUnknownUserInvalid) {
  AuthService service(users());
  AuthOutcome ok = verify_sync(service, request("alice", "correct horse battery"));
  EXPECT_EQ(ok.status, Status::ok);
  EXPECT_EQ(ok.delay, 0ms);
  EXPECT_EQ(verify_sync(service, request("bob", "s3cret-Bob")).status, Status::ok);

  EXPECT_EQ(verify_sync(service, request("alice", "correct horse batterY")).status,
            Status::invalid);
  EXPECT_EQ(verify_sync(service, request("bob", "s3cret-bob")).status, Status::invalid);
  EXPECT_EQ(verify_sync(service, request("bob", "")).status, Status::invalid);
  EXPECT_EQ(verify_sync(service, request("carol", "s3cret-Bob")).status, Status::invalid);
  EXPECT_EQ(verify_sync(service, request("Alice", "correct horse battery")).status,
            Status::invalid);
  // A NUL would cut the password short for crypt(3).
  EXPECT_EQ(verify_sync(service, request("bob", std::string("s3cret-Bob\0x", 12))).status,
            Status::invalid);
}

TEST_F(AuthServiceTest, AuthorizationIdentityMustBeEmptyOrTheUser) {
  AuthService service(users());
  EXPECT_EQ(verify_sync(service, request("bob", "s3cret-Bob", "192.0.2.1", "bob")).status,
            Status::ok);
  EXPECT_EQ(verify_sync(service, request("bob", "s3cret-Bob", "192.0.2.1", "alice")).status,
            Status::invalid);
  // Not answered from the cache either.
  EXPECT_FALSE(service.try_cached(request("bob", "s3cret-Bob", "192.0.2.1", "alice")));
}

TEST_F(AuthServiceTest, CacheAnswersRepeatsUntilUsersAreReplaced) {
  AuthService service(users());
  EXPECT_FALSE(service.try_cached(request("alice", "correct horse battery")));
  ASSERT_EQ(verify_sync(service, request("alice", "correct horse battery")).status, Status::ok);

  auto cached = service.try_cached(request("alice", "correct horse battery", "198.51.100.1"));
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->status, Status::ok);
  EXPECT_EQ(cached->delay, 0ms);
  EXPECT_FALSE(service.try_cached(request("alice", "correct horse batter")));
  EXPECT_FALSE(service.try_cached(request("bob", "correct horse battery")));
  // Failures are never cached.
  verify_sync(service, request("bob", "nope"));
  EXPECT_FALSE(service.try_cached(request("bob", "nope")));

  // Reload with a changed password: the old one stops working at once.
  service.replace_users({{"alice", alice_new_, 1}, {"bob", bob_sha512_, 2}});
  EXPECT_FALSE(service.try_cached(request("alice", "correct horse battery")));
  EXPECT_EQ(verify_sync(service, request("alice", "correct horse battery")).status,
            Status::invalid);
  EXPECT_EQ(verify_sync(service, request("alice", "new password 2")).status, Status::ok);
  EXPECT_TRUE(service.try_cached(request("alice", "new password 2")));

  // A removed user is gone too.
  service.replace_users({{"bob", bob_sha512_, 1}});
  EXPECT_FALSE(service.try_cached(request("alice", "new password 2")));
  EXPECT_EQ(verify_sync(service, request("alice", "new password 2")).status, Status::invalid);
}

TEST_F(AuthServiceTest, CacheEntriesExpireAndTheCacheIsBounded) {
  auto now = std::make_shared<std::atomic<int64_t>>(0);  // minutes
  AuthServiceOptions options;
  options.cache_capacity = 2;
  options.clock = [now] {
    return std::chrono::steady_clock::time_point(std::chrono::minutes(*now));
  };
  AuthService service({{"bob", bob_sha512_, 1},
                       {"carl", mkpasswd("sha-512", "carl-pw"), 2},
                       {"dora", mkpasswd("sha-512", "dora-pw"), 3}},
                      options);
  ASSERT_EQ(verify_sync(service, request("bob", "s3cret-Bob")).status, Status::ok);
  *now = 9;
  EXPECT_TRUE(service.try_cached(request("bob", "s3cret-Bob")));
  *now = 10;
  EXPECT_FALSE(service.try_cached(request("bob", "s3cret-Bob")));  // TTL 10 min

  ASSERT_EQ(verify_sync(service, request("bob", "s3cret-Bob")).status, Status::ok);
  *now = 11;
  ASSERT_EQ(verify_sync(service, request("carl", "carl-pw")).status, Status::ok);
  *now = 12;
  ASSERT_EQ(verify_sync(service, request("dora", "dora-pw")).status, Status::ok);
  // Capacity 2: the oldest entry (bob) made room.
  EXPECT_FALSE(service.try_cached(request("bob", "s3cret-Bob")));
  EXPECT_TRUE(service.try_cached(request("carl", "carl-pw")));
  EXPECT_TRUE(service.try_cached(request("dora", "dora-pw")));
}

TEST_F(AuthServiceTest, DelayGrowsWithFailuresPerClientAndDecays) {
  auto now = std::make_shared<std::atomic<int64_t>>(0);  // seconds
  AuthServiceOptions options;
  options.clock = [now] {
    return std::chrono::steady_clock::time_point(std::chrono::seconds(*now));
  };
  AuthService service(fast_users(), options);

  std::vector<int64_t> delays;
  for (int i = 0; i < 12; ++i) {
    const char* user = i % 2 ? "bob" : "nobody";  // unknown users count too
    AuthOutcome o = verify_sync(service, request(user, "guess" + std::to_string(i), "192.0.2.1"));
    EXPECT_EQ(o.status, Status::invalid);
    delays.push_back(o.delay.count());
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000,
                                          5000, 5000}));

  // Another client is not slowed by the first one's failures.
  EXPECT_EQ(verify_sync(service, request("bob", "x", "198.51.100.7")).delay, 500ms);
  // Success is never delayed, even from the guessing client.
  AuthOutcome ok = verify_sync(service, request("bob", "s3cret-Bob", "192.0.2.1"));
  EXPECT_EQ(ok.status, Status::ok);
  EXPECT_EQ(ok.delay, 0ms);

  // IPv6 clients are counted per /64.
  EXPECT_EQ(verify_sync(service, request("bob", "x", "2001:db8:1:2::1")).delay, 500ms);
  EXPECT_EQ(verify_sync(service, request("bob", "x", "2001:db8:1:2:ffff::9")).delay, 1000ms);
  EXPECT_EQ(verify_sync(service, request("bob", "x", "2001:db8:1:3::1")).delay, 500ms);

  // Fifteen quiet minutes and the client starts from zero again.
  *now = 14 * 60;
  EXPECT_EQ(verify_sync(service, request("bob", "x", "198.51.100.7")).delay, 1000ms);
  *now = 14 * 60 + 15 * 60;
  EXPECT_EQ(verify_sync(service, request("bob", "x", "198.51.100.7")).delay, 500ms);
  EXPECT_EQ(verify_sync(service, request("bob", "x", "192.0.2.1")).delay, 500ms);
}

using Decision = AuthAdmission::Decision;

const char* decision_name(const AuthAdmission& a) {
  switch (a.decision) {
    case Decision::go:
      return "go";
    case Decision::wait:
      return "wait";
    case Decision::refuse:
      return "refuse";
  }
  return "?";
}

// The admission bucket as the shards use it: per client address (IPv6 per
// /64), shared by every caller, refunded by successes from the cache and
// from crypt, untouched by failures.
TEST_F(AuthServiceTest, AdmissionPerClientAcrossCallersRefundedBySuccess) {
  auto now = std::make_shared<std::atomic<int64_t>>(0);  // seconds
  AuthServiceOptions options;
  options.clock = [now] {
    return std::chrono::steady_clock::time_point(std::chrono::seconds(*now));
  };
  AuthService service(fast_users(), options);

  for (int i = 0; i < 10; ++i) EXPECT_STREQ(decision_name(service.admit("192.0.2.1")), "go");
  AuthAdmission waiting = service.admit("192.0.2.1");
  EXPECT_STREQ(decision_name(waiting), "wait");
  EXPECT_EQ(waiting.delay, 1s);
  // Other addresses are not held up.
  EXPECT_STREQ(decision_name(service.admit("192.0.2.2")), "go");

  // Failures keep their tokens; a success gives one back.
  verify_sync(service, request("bob", "wrong", "192.0.2.1"));
  EXPECT_EQ(service.admit("192.0.2.1").delay, 2s);
  ASSERT_EQ(verify_sync(service, request("bob", "s3cret-Bob", "192.0.2.1")).status, Status::ok);
  EXPECT_EQ(service.admit("192.0.2.1").delay, 2s);
  ASSERT_TRUE(service.try_cached(request("bob", "s3cret-Bob", "192.0.2.1")));
  EXPECT_EQ(service.admit("192.0.2.1").delay, 2s);

  // Waits of 3 s to 30 s, then refused.
  for (int i = 0; i < 28; ++i) EXPECT_STREQ(decision_name(service.admit("192.0.2.1")), "wait");
  EXPECT_STREQ(decision_name(service.admit("192.0.2.1")), "refuse");

  // IPv6 clients share a bucket per /64.
  for (int i = 0; i < 5; ++i) service.admit("2001:db8:1:2::" + std::to_string(i + 1));
  for (int i = 0; i < 5; ++i) service.admit("2001:db8:1:2:ffff::" + std::to_string(i + 1));
  EXPECT_STREQ(decision_name(service.admit("2001:db8:1:2::99")), "wait");
  EXPECT_STREQ(decision_name(service.admit("2001:db8:1:3::1")), "go");

  // Quiet refills the bucket.
  *now = 60;
  EXPECT_STREQ(decision_name(service.admit("192.0.2.1")), "go");
}

TEST_F(AuthServiceTest, FiftyConcurrentVerificationsAllAnsweredOnTheWorker) {
  AuthService service(users());
  constexpr int kRequests = 50;
  std::mutex mutex;
  std::condition_variable all_done;
  std::vector<std::optional<AuthOutcome>> outcomes(kRequests);
  std::set<std::thread::id> callback_threads;
  int answered = 0;
  std::vector<std::thread> callers;
  for (int i = 0; i < kRequests; ++i) {
    callers.emplace_back([&, i] {
      AuthRequest r = i % 2 ? request("bob", i % 4 == 1 ? "s3cret-Bob" : "bad")
                            : request("alice", i % 4 == 0 ? "correct horse battery" : "bad",
                                      "192.0.2." + std::to_string(i));
      service.verify(std::move(r), [&, i](AuthOutcome o) {
        std::lock_guard lock(mutex);
        EXPECT_FALSE(outcomes[i].has_value()) << "answered twice: " << i;
        outcomes[i] = o;
        callback_threads.insert(std::this_thread::get_id());
        if (++answered == kRequests) all_done.notify_one();
      });
    });
  }
  for (auto& t : callers) t.join();
  std::unique_lock lock(mutex);
  ASSERT_TRUE(all_done.wait_for(lock, 60s, [&] { return answered == kRequests; }))
      << answered << " of " << kRequests << " answered";
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(outcomes[i]);
    bool right = i % 4 == 0 || i % 4 == 1;
    EXPECT_EQ(outcomes[i]->status, right ? Status::ok : Status::invalid) << i;
  }
  EXPECT_EQ(callback_threads.size(), 1u);
  EXPECT_FALSE(callback_threads.contains(std::this_thread::get_id()));
}

TEST_F(AuthServiceTest, OverloadAndShutdownAnswerTempfail) {
  AuthServiceOptions options;
  options.max_pending = 2;
  auto service = std::make_unique<AuthService>(fast_users(), options);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> worker_blocked;
  // The first callback holds the worker so that the queue fills up.
  service->verify(request("bob", "s3cret-Bob"), [&, released](AuthOutcome o) {
    EXPECT_EQ(o.status, Status::ok);
    worker_blocked.set_value();
    released.wait();
  });
  worker_blocked.get_future().wait();

  std::mutex mutex;
  std::vector<std::pair<int, Status>> answers;  // in answer order
  for (int i = 0; i < 4; ++i) {
    service->verify(request("bob", "s3cret-Bob"), [&, i](AuthOutcome o) {
      std::lock_guard lock(mutex);
      answers.emplace_back(i, o.status);
    });
  }
  release.set_value();
  for (int waited = 0; waited < 3000; ++waited) {
    {
      std::lock_guard lock(mutex);
      if (answers.size() == 4) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  service.reset();
  ASSERT_EQ(answers.size(), 4u);
  // Overflow is answered before the queued requests get their crypt.
  EXPECT_EQ(answers[0].first, 3);
  EXPECT_EQ(answers[1].first, 2);
  // Requests 2 and 3 found the queue full: tempfail, answered first.
  std::sort(answers.begin(), answers.end());
  EXPECT_EQ(answers[0].second, Status::ok);
  EXPECT_EQ(answers[1].second, Status::ok);
  EXPECT_EQ(answers[2].second, Status::tempfail);
  EXPECT_EQ(answers[3].second, Status::tempfail);
}

TEST_F(AuthServiceTest, ShutdownAnswersQueuedRequestsWithTempfail) {
  auto service = std::make_unique<AuthService>(fast_users());
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> worker_blocked;
  service->verify(request("bob", "s3cret-Bob"), [&, released](AuthOutcome) {
    worker_blocked.set_value();
    released.wait();
  });
  worker_blocked.get_future().wait();
  std::atomic<int> tempfails{0};
  for (int i = 0; i < 3; ++i) {
    service->verify(request("bob", "s3cret-Bob"), [&](AuthOutcome o) {
      if (o.status == Status::tempfail) ++tempfails;
    });
  }
  std::thread destroyer([&] { service.reset(); });
  std::this_thread::sleep_for(200ms);  // let the destructor mark the service stopping
  release.set_value();
  destroyer.join();
  EXPECT_EQ(tempfails.load(), 3);
}

TEST_F(AuthServiceTest, NoUsersStillCostsACryptAndFails) {
  AuthService service({});
  EXPECT_EQ(verify_sync(service, request("alice", "correct horse battery")).status,
            Status::invalid);
  EXPECT_EQ(verify_sync(service, request("", "")).status, Status::invalid);
}

}  // namespace
}  // namespace ringmail::mta
