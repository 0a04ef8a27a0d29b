#include "mta/outbound/outbound_server.h"

#include <spdlog/spdlog.h>

#include <future>

#include "mta/outbound/outbound_engine.h"
#include "queue/spool.h"
#include "queue/spool_codec.h"
#include "queue/spool_message.h"

namespace ringmail::mta {

OutboundServer::OutboundServer(OutboundDependencies deps) : deps_(deps) {}

OutboundServer::~OutboundServer() {
  stop(std::chrono::milliseconds(0));
  std::lock_guard lock(mutex_);
  engine_.reset();
}

bool OutboundServer::start(std::shared_ptr<const conf::Config> config,
                           std::shared_ptr<const DkimSignerSet> dkim, std::string* error) {
  DnsResolverOptions dns;
  dns.nameservers = config->delivery.dns.nameservers;
  std::string why;
  auto resolver = DnsResolver::create(dns, &why);
  if (!resolver) {
    *error = "DNS resolver: " + why;
    return false;
  }
  std::shared_ptr<const TlsContext> tls;
  if (config->delivery.tls != conf::OutboundTls::none) {
    tls = TlsContext::create_client(&why);
    if (!tls) {
      *error = "outbound TLS: " + why;
      return false;
    }
  }
  auto engine = std::make_unique<OutboundEngine>(deps_, std::move(config), std::move(resolver),
                                                 std::move(tls), runtime::system_clock());
  // Held while the engine starts, so that a message committed meanwhile (a
  // DSN of its first round) waits in enqueue() instead of being missed.
  engine->set_dkim(std::move(dkim));  // not running yet: no post needed
  std::lock_guard lock(mutex_);
  if (!engine->start(error)) return false;
  engine_ = std::move(engine);
  return true;
}

void OutboundServer::enqueue(std::vector<std::unique_ptr<queue::SpoolMessage>> messages) {
  std::lock_guard lock(mutex_);
  if (!engine_ || stopped_) return;  // stopped: it waits in the spool for the next start
  auto batch = std::make_shared<std::vector<std::shared_ptr<queue::SpoolMessage>>>();
  batch->reserve(messages.size());
  for (auto& m : messages) batch->push_back(std::shared_ptr<queue::SpoolMessage>(std::move(m)));
  OutboundEngine* engine = engine_.get();
  engine->post([engine, batch] { engine->enqueue_messages(*batch); });
}

void OutboundServer::reload(std::shared_ptr<const conf::Config> config,
                            std::shared_ptr<const DkimSignerSet> dkim) {
  std::lock_guard lock(mutex_);
  if (!engine_ || stopped_) return;
  OutboundEngine* engine = engine_.get();
  engine->post([engine, config, dkim] {
    engine->set_config(config);
    engine->set_dkim(dkim);
  });
}

void OutboundServer::rescan() {
  std::vector<queue::SpoolMessage> found;
  deps_.spool->for_each_recipient([&](const queue::SpoolMessage& m, size_t index) {
    if (!queue::is_active(m.envelope.recipients[index].state)) return;
    if (found.empty() || found.back().id != m.id) found.push_back(m);
  });
  std::lock_guard lock(mutex_);
  if (!engine_ || stopped_) return;
  auto shared = std::make_shared<std::vector<queue::SpoolMessage>>(std::move(found));
  OutboundEngine* engine = engine_.get();
  engine->post([engine, shared] { engine->adopt_unknown(std::move(*shared)); });
}

namespace {

// Runs `work` on the delivery thread and waits for its answer.
template <typename T, typename Work>
std::optional<T> ask(OutboundEngine* engine, Work work, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<T>>();
  std::future<T> answer = promise->get_future();
  engine->post([promise, work = std::move(work)]() mutable { promise->set_value(work()); });
  if (answer.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return answer.get();
}

}  // namespace

OutboundEngine* OutboundServer::running_engine() {
  std::lock_guard lock(mutex_);
  return engine_ && !stopped_ ? engine_.get() : nullptr;
}

std::optional<DeliverySnapshot> OutboundServer::snapshot(const QueueFilter& filter,
                                                         bool with_idle_sites,
                                                         std::chrono::milliseconds timeout) {
  OutboundEngine* engine = running_engine();
  if (!engine) return std::nullopt;
  return ask<DeliverySnapshot>(
      engine,
      [engine, filter, with_idle_sites] { return engine->snapshot(filter, with_idle_sites); },
      timeout);
}

std::optional<size_t> OutboundServer::command(const AdminCommand& command,
                                              std::chrono::milliseconds timeout) {
  OutboundEngine* engine = running_engine();
  if (!engine) return std::nullopt;
  return ask<size_t>(
      engine, [engine, command] { return engine->command(command); }, timeout);
}

std::optional<MessageLiveView> OutboundServer::live_view(const std::string& message_id,
                                                         std::chrono::milliseconds timeout) {
  OutboundEngine* engine = running_engine();
  if (!engine) return std::nullopt;
  return ask<MessageLiveView>(
      engine, [engine, message_id] { return engine->live_view(message_id); }, timeout);
}

void OutboundServer::stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lock(mutex_);
    if (!engine_ || stopped_) return;
    stopped_ = true;
  }
  engine_->request_stop(timeout);
  engine_->join();
  // The engine object stays until the destructor: the spool writer, which
  // stops after this, may still post commit confirmations to it.
}

}  // namespace ringmail::mta
