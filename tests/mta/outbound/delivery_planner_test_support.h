// tests/mta/outbound/delivery_planner_test_support.h — a DeliveryPlanner on a memory
// spool and a fake clock, with helpers that script its events (commit a
// message, answer a lookup, a connection's replies) and read its commands
// back the way the outbound engine and an operator see them: which address
// it connects to, which records the delivery log gets, which spool states
// it writes.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/outbound/delivery_planner.h"
#include "queue/spool_memory.h"
#include "runtime/clock.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::mta::testing {

using namespace std::chrono_literals;
using queue::RecipientState;

inline SmtpReply reply(int code, std::string enhanced, std::string text) {
  SmtpReply r;
  r.code = code;
  r.enhanced = std::move(enhanced);
  r.text = std::move(text);
  return r;
}

// What the engine reports when a connect() fails: made up locally, no code.
inline SmtpReply local_failure(std::string text) {
  SmtpReply r;
  r.local = true;
  r.text = std::move(text);
  return r;
}

inline TransactionResult result(std::vector<SmtpReply> replies) {
  TransactionResult r;
  r.recipients = std::move(replies);
  r.data_sent = true;
  return r;
}

inline MxHost host(std::string name, uint16_t preference, std::string ip) {
  return MxHost{std::move(name), preference, {std::move(ip)}, 0};
}

inline MxResolution mx_answer(std::string domain, std::string site, std::vector<MxHost> hosts,
                              uint32_t ttl_seconds = 300) {
  MxResolution r;
  r.status = MxResolution::Status::ok;
  r.domain = std::move(domain);
  r.site = std::move(site);
  r.hosts = std::move(hosts);
  r.ttl_seconds = ttl_seconds;
  return r;
}

inline conf::SocketAddress smarthost(std::string ip, uint16_t port) {
  return conf::SocketAddress{ip, port, "", ip + ":" + std::to_string(port)};
}

// The delivery-log record types, in order.
inline std::vector<std::string> types(const PlannerOutput& out) {
  std::vector<std::string> v;
  for (const auto& record : out.records) v.push_back(record["type"].get<std::string>());
  return v;
}

// The spool states written, in order, by name.
inline std::vector<std::string> states(const PlannerOutput& out) {
  std::vector<std::string> v;
  for (const auto& update : out.updates) v.emplace_back(queue::to_string(update.state));
  return v;
}

// The addresses connected to, in order.
inline std::vector<std::string> opened_ips(const PlannerOutput& out) {
  std::vector<std::string> v;
  for (const auto& open : out.open) v.push_back(open.target.ip);
  return v;
}

// The recipients of each transaction started, in order.
inline std::vector<std::vector<std::string>> started(const PlannerOutput& out) {
  std::vector<std::vector<std::string>> v;
  for (const auto& start : out.start) {
    std::vector<std::string> rcpts;
    for (const auto& r : start.message->recipients) rcpts.push_back(r.address);
    v.push_back(std::move(rcpts));
  }
  return v;
}

inline std::vector<std::pair<std::string, uint64_t>> counts(const LabelCounts& labels) {
  return labels.counts;
}

class DeliveryPlannerTest : public ::testing::Test {
 protected:
  DeliveryPlannerTest() {
    config.hostname = "mx.ringmail.test";
    config.delivery.retry.intervals = {std::chrono::minutes(1), std::chrono::minutes(10)};
    config.delivery.retry.max_age = std::chrono::hours(24);
  }

  // Built at first use, so that a test sets `config` first.
  DeliveryPlanner& planner() {
    if (!planner_) {
      planner_ = std::make_unique<DeliveryPlanner>(
          spool, clock, std::make_shared<const conf::Config>(config), /*random_seed=*/7);
    }
    return *planner_;
  }

  // A message from `sender` to `recipients`, received now, stored in the
  // spool (as the inbound side does before the planner hears of it).
  std::shared_ptr<queue::SpoolMessage> message(const std::vector<std::string>& recipients,
                                               std::string campaign = "",
                                               std::string sender = "app@sender.test") {
    auto m = std::make_shared<queue::SpoolMessage>(
        queue::testing::make_test_message(1, 512, std::move(campaign)));
    m->envelope.sender = std::move(sender);
    m->envelope.recipients.clear();
    for (const std::string& address : recipients) {
      queue::Recipient r;
      r.address = address;
      r.domain = address.substr(address.find('@') + 1);
      std::transform(r.domain.begin(), r.domain.end(), r.domain.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      m->envelope.recipients.push_back(r);
    }
    m->meta.received_unix_ms = clock.unix_ms();
    store(*m);
    return m;
  }

  void store(const queue::SpoolMessage& m) {
    queue::SpoolMessage copy = m;
    queue::SpoolMessage* batch[] = {&copy};
    ASSERT_TRUE(spool.store_batch(batch).ok());
  }

  PlannerOutput commit(const std::shared_ptr<queue::SpoolMessage>& m) {
    return planner().committed({m});
  }

  // The id of the one connection `out` opens.
  ConnectionId only_open(const PlannerOutput& out) {
    EXPECT_EQ(out.open.size(), 1u);
    return out.open.empty() ? 0 : out.open.front().id;
  }

  runtime::FakeClock clock;
  queue::MemorySpool spool;
  conf::Config config;

 private:
  std::unique_ptr<DeliveryPlanner> planner_;
};

}  // namespace ringmail::mta::testing
