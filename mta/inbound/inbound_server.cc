#include "mta/inbound/inbound_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "conf/config_policy.h"
#include "mta/dkim/dkim_signer.h"
#include "mta/inbound/inbound_shard.h"
#include "runtime/listen_socket.h"

namespace ringmail::mta {

namespace {

// Creates a listening socket with SO_REUSEPORT so that every shard can own one.
int open_listener(const conf::SocketAddress& address, std::string* error) {
  std::string why;
  const int fd = runtime::listen_tcp(address.host, address.port,
                                     runtime::ListenOptions{4096, /*reuse_port=*/true}, &why);
  if (fd < 0) {
    *error = why == "not an IP address" ? "listener address " + address.text + ": " + why
                                        : "cannot listen on " + address.text + ": " + why;
  }
  return fd;
}

// The tenant submission limiter, asked at the time of the question.
class LimiterGate final : public SubmissionGate {
 public:
  LimiterGate(policy::SubmissionLimiter& limiter, const runtime::Clock& clock)
      : limiter_(limiter), clock_(clock) {}
  policy::SubmissionVerdict admit_message(std::string_view tenant) override {
    return limiter_.admit(tenant, clock_.steady());
  }

 private:
  policy::SubmissionLimiter& limiter_;
  const runtime::Clock& clock_;
};

bool limits_submissions(const conf::Config& config) {
  if (!config.policy) return false;
  const auto& tenants = config.policy->tenants;
  return std::any_of(tenants.begin(), tenants.end(),
                     [](const conf::TenantPolicy& t) { return t.max_messages.has_value(); });
}

std::shared_ptr<const ShardSettings> make_settings(std::shared_ptr<const conf::Config> config,
                                                   std::shared_ptr<const TlsContext> tls,
                                                   std::shared_ptr<const DkimSignerSet> dkim,
                                                   bool auth_available, SubmissionGate* gate) {
  auto s = std::make_shared<ShardSettings>();
  // Sessions of a config without limits ask nothing at MAIL FROM.
  SubmissionGate* submission_gate = limits_submissions(*config) ? gate : nullptr;
  s->dkim = std::move(dkim);
  for (const auto& l : config->listeners) {
    SessionSettings ss;
    ss.hostname = config->hostname;
    ss.listener_name = l.name;
    switch (l.mode) {
      case conf::ListenerMode::submission:
        ss.mode = SessionMode::submission;
        break;
      case conf::ListenerMode::relay:
        ss.mode = SessionMode::relay;
        break;
      case conf::ListenerMode::feedback:
        ss.mode = SessionMode::feedback;
        // The config check requires policy.return_path with a feedback
        // listener; without one, no RCPT TO matches "" and all is refused.
        if (config->policy && config->policy->return_path)
          ss.feedback_domain = config->policy->return_path->domain;
        if (config->policy && config->policy->list_unsubscribe)
          ss.unsubscribe_domain = config->policy->list_unsubscribe->mailto_domain;
        break;
    }
    ss.starttls_available = l.tls == conf::TlsMode::starttls && tls != nullptr;
    ss.require_tls_for_auth = l.require_tls_for_auth;
    ss.auth_available = auth_available && l.mode != conf::ListenerMode::feedback;
    ss.max_message_size = config->limits.max_message_size;
    ss.max_recipients = config->limits.max_recipients;
    ss.campaign_header = config->campaign_header;
    ss.submission_gate = submission_gate;
    ss.command_timeout = config->limits.command_timeout;
    ss.tls_handshake_timeout = config->limits.tls_handshake_timeout;
    ss.min_data_rate = config->limits.min_data_rate;
    ss.data_rate_grace = config->limits.data_rate_grace;
    if (s->dkim) {
      ss.dkim_hash_relaxed_body =
          s->dkim->uses_body_canonicalization(DkimCanonicalization::relaxed);
      ss.dkim_hash_simple_body = s->dkim->uses_body_canonicalization(DkimCanonicalization::simple);
    }
    s->sessions.push_back(std::move(ss));
  }
  s->config = std::move(config);
  s->tls = std::move(tls);
  return s;
}

}  // namespace

InboundServer::InboundServer(InboundDependencies deps, int shard_count)
    : deps_(deps), shard_count_(shard_count < 1 ? 1 : shard_count) {
  if (deps_.submission_limiter) {
    submission_gate_ = std::make_unique<LimiterGate>(*deps_.submission_limiter, *deps_.clock);
  }
}

InboundServer::~InboundServer() {
  stop(std::chrono::milliseconds(0));
  shards_.clear();
}

bool InboundServer::start(std::shared_ptr<const conf::Config> config,
                          std::shared_ptr<const TlsContext> tls,
                          std::shared_ptr<const DkimSignerSet> dkim, std::string* error) {
  auto settings = make_settings(config, std::move(tls), std::move(dkim), deps_.auth != nullptr,
                                submission_gate_.get());
  std::vector<std::unique_ptr<InboundShard>> shards;
  for (int i = 0; i < shard_count_; ++i) {
    auto shard = std::make_unique<InboundShard>(*this, i);
    for (const auto& l : config->listeners) {
      int fd = open_listener(l.address, error);
      if (fd < 0) {
        *error = "listener " + l.name + ": " + *error;
        return false;  // shards' destructors close what was opened
      }
      shard->adopt_listener(fd);
    }
    shard->set_settings(settings);
    shards.push_back(std::move(shard));
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    if (!shards[i]->run(error)) {
      for (size_t j = 0; j < i; ++j) {
        shards[j]->request_stop(std::chrono::milliseconds(0));
        shards[j]->join();
      }
      return false;
    }
  }
  shards_ = std::move(shards);
  return true;
}

void InboundServer::reload(std::shared_ptr<const conf::Config> config,
                           std::shared_ptr<const TlsContext> tls,
                           std::shared_ptr<const DkimSignerSet> dkim) {
  auto settings = make_settings(std::move(config), std::move(tls), std::move(dkim),
                                deps_.auth != nullptr, submission_gate_.get());
  for (auto& shard : shards_) {
    InboundShard* s = shard.get();
    s->post([s, settings] { s->set_settings(settings); });
  }
}

void InboundServer::stop(std::chrono::milliseconds timeout) {
  if (stopped_) return;
  stopped_ = true;
  for (auto& shard : shards_) shard->request_stop(timeout);
  for (auto& shard : shards_) shard->join();
}

}  // namespace ringmail::mta
