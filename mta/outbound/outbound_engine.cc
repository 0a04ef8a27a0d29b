// The delivery thread's ring mechanics: sockets, connect with a timeout,
// send and receive, TLS over memory BIOs, protocol deadlines. Every
// decision is the DeliveryPlanner's (mta/delivery_planner.h): this file
// carries out its commands and reports completions to it as events.
#include "mta/outbound/outbound_engine.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <random>

#include "mta/dkim/dkim_signer.h"
#include "mta/outbound/delivery_holds.h"
#include "queue/campaign_records.h"
#include "queue/delivery_log.h"
#include "queue/spool_codec.h"
#include "queue/spool_writer.h"

namespace ringmail::mta {

namespace {

constexpr unsigned kRingEntries = 1024;
constexpr size_t kRecvBufferSize = 16 * 1024;
constexpr auto kTickInterval = std::chrono::milliseconds(100);

// What a completion was (runtime::UserData's op).
enum class OutOp : uint8_t { connect = 1, recv, send, wake, tick, cancel };
using runtime::pack;

// A connection that failed before any reply: a local, transient failure.
SmtpReply local_failure(std::string text) {
  return SmtpReply::made_here(0, "4.4.1", std::move(text));
}

bool fill_address(const ConnectTarget& target, sockaddr_storage* ss, socklen_t* length) {
  std::memset(ss, 0, sizeof *ss);
  auto* sin = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, target.ip.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(target.port);
    *length = sizeof(sockaddr_in);
    return true;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, target.ip.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(target.port);
    *length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// The source address as a sockaddr of the target's family; false when the
// families differ (an IPv4 source cannot reach an IPv6 MX).
bool bind_address(const conf::IpAddress& source, int family, sockaddr_storage* ss,
                  socklen_t* length) {
  std::memset(ss, 0, sizeof *ss);
  *length = 0;
  if (source.family != family) return false;
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, source.bytes, 4);
    *length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, source.bytes, 16);
    *length = sizeof(sockaddr_in6);
  }
  return true;
}

}  // namespace

const char* to_string(Phase phase) {
  switch (phase) {
    case Phase::connecting:
      return "connecting";
    case Phase::dialogue:
      return "dialogue";
    case Phase::tls_handshake:
      return "tls_handshake";
    case Phase::ready:
      return "ready";
    case Phase::closing:
      return "closing";
    case Phase::closed:
      return "closed";
  }
  return "?";
}

OutboundEngine::OutboundEngine(OutboundDependencies deps,
                               std::shared_ptr<const conf::Config> config,
                               std::unique_ptr<DnsResolver> resolver,
                               std::shared_ptr<const TlsContext> tls, const runtime::Clock& clock)
    : deps_(deps),
      clock_(clock),
      config_(config),
      resolver_(std::move(resolver)),
      tls_(std::move(tls)),
      planner_(*deps.spool, clock, std::move(config), std::random_device{}()) {
  planner_.set_records_wanted(deps_.delivery_log != nullptr || !config_->webhooks.empty());
  planner_.set_suppressions(deps_.suppressions);
}

OutboundEngine::~OutboundEngine() {
  if (thread_.joinable()) thread_.join();
  if (resolver_) resolver_->stop();
}

int64_t OutboundEngine::now_steady_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady().time_since_epoch())
      .count();
}

void OutboundEngine::set_config(std::shared_ptr<const conf::Config> config) {
  config_ = config;
  // Webhooks (mta/webhook_dispatcher.h) take the records through the spool writer.
  planner_.set_records_wanted(deps_.delivery_log != nullptr || !config_->webhooks.empty());
  planner_.set_config(std::move(config));
}

bool OutboundEngine::start(std::string* error) {
  if (!reactor_.mailbox().open(error)) return false;
  auto* metrics = deps_.metrics;
  sessions_active_ = &metrics->gauge("smtp_sessions_active", "SMTP sessions in progress",
                                     {{"direction", "outbound"}});
  queued_gauge_ = &metrics->gauge("queue_recipients", "Recipients in the spool by state",
                                  {{"state", "queued"}});
  deferred_gauge_ = &metrics->gauge("queue_recipients", "Recipients in the spool by state",
                                    {{"state", "deferred"}});
  cancelled_ = &metrics->counter("messages_cancelled_total",
                                 "Recipients dropped with their cancelled campaign");
  suppressed_ = &metrics->counter("messages_suppressed_total",
                                  "Recipients not attempted: on a suppression list");
  attempt_seconds_ = &metrics->histogram("delivery_attempt_seconds",
                                         "Time of one delivery transaction, per message", {},
                                         runtime::latency_buckets());
  for (const runtime::LabelledCounters* family :
       {&delivered_, &deferred_, &bounced_, &backoff_activations_}) {
    family->declare(*metrics);
  }
  load_spool();
  // The ring is made on its own thread: a single-issuer ring belongs to the
  // thread that creates it.
  std::promise<std::string> setup;
  std::future<std::string> setup_done = setup.get_future();
  thread_ = std::thread([this, &setup] {
    std::string why;
    const bool ok = setup_ring(&why);
    setup.set_value(ok ? std::string() : (why.empty() ? "io_uring setup failed" : why));
    if (ok) loop();
  });
  std::string why = setup_done.get();
  if (!why.empty()) {
    thread_.join();
    *error = why;
    return false;
  }
  return true;
}

// Start-up: every active recipient of the spool, without bodies.
void OutboundEngine::load_spool() {
  // The operator's holds first, so that no attempt goes out before them.
  const RestoredHolds holds = restore_holds(deps_.spool->controls(kHoldPrefix), clock_.wall());
  for (const AdminCommand& command : holds.commands) (void)planner_.command(command);
  for (const std::string& key : holds.expired) (void)deps_.spool->put_control(key, std::nullopt);
  for (const std::string& key : holds.problems)
    spdlog::warn("spool: control {} is unreadable",
                 nlohmann::json(key).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
  if (!holds.commands.empty())
    spdlog::info("delivery: {} operator hold(s) restored from the spool", holds.commands.size());
  std::vector<std::string> unreadable;
  const std::vector<AdminCommand> campaigns =
      campaign_holds(deps_.spool->controls(queue::kCampaignPrefix), &unreadable);
  for (const AdminCommand& command : campaigns) (void)planner_.command(command);
  for (const std::string& key : unreadable)
    spdlog::warn("spool: campaign record {} is unreadable",
                 nlohmann::json(key).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace));
  std::string current;
  queue::SpoolMessage message;
  std::vector<size_t> indexes;
  uint64_t deferred = 0;
  deps_.spool->for_each_recipient([&](const queue::SpoolMessage& m, size_t index) {
    const queue::Recipient& r = m.envelope.recipients[index];
    if (!queue::is_active(r.state)) return;
    if (m.id.value != current) {
      planner_.load(message, indexes);
      indexes.clear();
      current = m.id.value;
      message = m;
    }
    if (r.state == queue::RecipientState::deferred) ++deferred;
    indexes.push_back(index);
  });
  planner_.load(message, indexes);
  deferred_gauge_->set(static_cast<int64_t>(deferred));
  spdlog::info("delivery: {} jobs for {} messages loaded from the spool",
               planner_.scheduler().size(), planner_.active_messages());
}

bool OutboundEngine::setup_ring(std::string* error) {
  if (!reactor_.open(kRingEntries, 0, error)) return false;
  reactor_.arm_wake(pack(OutOp::wake, 0, 0));
  reactor_.arm_tick(pack(OutOp::tick, 0, 0), kTickInterval);
  return true;
}

void OutboundEngine::post(std::function<void()> fn) { reactor_.mailbox().post(std::move(fn)); }

void OutboundEngine::request_stop(std::chrono::milliseconds timeout) {
  post([this, timeout] {
    if (stopping_) return;
    stopping_ = true;
    carry_out(planner_.stop(timeout));
    check_stopped();
  });
}

void OutboundEngine::join() {
  if (thread_.joinable()) thread_.join();
}

void OutboundEngine::enqueue_messages(
    const std::vector<std::shared_ptr<queue::SpoolMessage>>& messages) {
  carry_out(planner_.committed(messages));
}

void OutboundEngine::adopt_unknown(std::vector<queue::SpoolMessage> messages) {
  carry_out(planner_.adopt(messages));
}

void OutboundEngine::loop() {
  carry_out(planner_.start());
  while (running_) {
    if (!reactor_.run_once([this](uint64_t data, int res, unsigned) { handle(data, res); })) break;
    free_released();
  }
  for (uint32_t slot = 0; slot < connections_.slots(); ++slot) {
    OutboundConnection* c = connections_.at(slot);
    if (c && c->fd >= 0) {
      ::close(c->fd);
      c->fd = -1;
    }
  }
  reactor_.close();
}

void OutboundEngine::handle(uint64_t data, int res) {
  const runtime::UserData what = runtime::UserData::unpack(data);
  switch (OutOp(what.op)) {
    case OutOp::connect:
      on_connect(what.slot, what.generation, res);
      return;
    case OutOp::recv:
      on_recv(what.slot, what.generation, res);
      return;
    case OutOp::send:
      on_send(what.slot, what.generation, res);
      return;
    case OutOp::wake:
      on_wake();
      return;
    case OutOp::tick:
      on_tick();
      return;
    case OutOp::cancel:
      return;
  }
  spdlog::error("delivery: completion with unknown operation {:#x}", data);
}

void OutboundEngine::on_wake() {
  reactor_.mailbox().drain();
  if (running_) reactor_.arm_wake(pack(OutOp::wake, 0, 0));
}

void OutboundEngine::enter_phase(OutboundConnection& c, Phase to) {
  if (spdlog::should_log(spdlog::level::trace)) {
    spdlog::trace("delivery: connection {} to [{}]: {} -> {}", c.id, c.target.ip,
                  to_string(c.phase), to_string(to));
  }
  c.phase = to;
}

// ---- the planner's commands

void OutboundEngine::carry_out(PlannerOutput out) {
  if (deps_.delivery_log && !out.records.empty()) deps_.delivery_log->write_all(out.records);
  for (auto& dsn : out.dsns) submit_dsn(std::move(dsn));
  // The records go into the spool with the results they describe, for the webhooks.
  std::vector<nlohmann::ordered_json> records;
  if (!config_->webhooks.empty()) records = std::move(out.records);
  if (!out.updates.empty() || !out.finished.empty() || !out.controls.empty() || !records.empty()) {
    deps_.spool_writer->submit_updates(std::move(out.updates), std::move(out.finished), {},
                                       std::move(out.controls), std::move(records));
  }
  apply_metrics(out.metrics);
  for (const DkimSigner* signer : out.dkim_signatures) {
    dkim_signatures_.get(*deps_.metrics, {signer->domain(), signer->algorithm_name()}).inc();
  }
  for (ConnectionId id : out.close) cut(id);
  for (ConnectionId id : out.quit) quit(id);
  for (const StartCommand& command : out.start) start_transaction(command);
  for (const OpenCommand& command : out.open) open(command);
  for (const std::string& name : out.resolve) {
    resolver_->resolve_mx(name, [this, name](const MxResolution& resolution) {
      auto copy = std::make_shared<MxResolution>(resolution);
      post([this, name, copy] { carry_out(planner_.resolved(name, *copy)); });
    });
  }
  planner_.recycle(std::move(out));
}

size_t OutboundEngine::command(const AdminCommand& command) {
  PlannerOutput out = planner_.command(command);
  const size_t bounced = out.admin_bounced;
  carry_out(std::move(out));
  return bounced;
}

void OutboundEngine::apply_metrics(const MetricDeltas& m) {
  runtime::MetricsRegistry& metrics = *deps_.metrics;
  for (const auto& [site, n] : m.delivered_by_site.counts) delivered_.get(metrics, site).inc(n);
  for (const auto& [site, n] : m.deferred_by_site.counts) deferred_.get(metrics, site).inc(n);
  for (const auto& [category, n] : m.bounced_by_category.counts) {
    bounced_.get(metrics, category).inc(n);
  }
  for (const auto& [action, n] : m.backoff_activations.counts) {
    backoff_activations_.get(metrics, action).inc(n);
  }
  for (const BackoffGauge& g : m.backoff_active) {
    metrics
        .gauge("backoff_active", "1 while a backoff rule holds or slows the (source, site)",
               {{"source", g.source}, {"site", g.site}})
        .set(g.active ? 1 : 0);
  }
  for (const auto& [source, sent] : m.warmup_sent) {
    metrics
        .gauge("warmup_sent", "Recipient attempts in the current warm-up window, by source",
               {{"source", source}})
        .set(static_cast<int64_t>(sent));
  }
  if (m.cancelled != 0) cancelled_->inc(m.cancelled);
  if (m.suppressed != 0) suppressed_->inc(m.suppressed);
  if (m.queued != 0) queued_gauge_->add(m.queued);
  if (m.deferred != 0) deferred_gauge_->add(m.deferred);
  for (double seconds : m.attempt_seconds) attempt_seconds_->observe(seconds);
}

void OutboundEngine::submit_dsn(std::unique_ptr<queue::SpoolMessage> dsn) {
  deps_.spool_writer->submit(
      std::move(dsn),
      [](const queue::SpoolMessage& m, queue::StoreStatus status, const std::string& detail) {
        if (status == queue::StoreStatus::ok) {
          spdlog::info("delivery: DSN {} queued to <{}>", m.id.value,
                       m.envelope.recipients.empty() ? "" : m.envelope.recipients[0].address);
        } else {
          spdlog::error("delivery: DSN {} not queued: {}", m.id.value, detail);
        }
      },
      queue::SpoolWriter::Kind::delivery_report);
}

OutboundConnection* OutboundEngine::find(ConnectionId id, uint32_t* slot) {
  auto it = slots_.find(id);
  if (it == slots_.end()) return nullptr;
  OutboundConnection* c = connections_.at(it->second);
  if (!c || c->released || c->phase == Phase::closed) return nullptr;
  *slot = it->second;
  return c;
}

void OutboundEngine::open(const OpenCommand& command) {
  auto c = std::make_unique<OutboundConnection>();
  c->id = command.id;
  c->target = command.target;
  c->starttls = command.starttls && tls_ != nullptr;
  c->require_tls = command.require_tls;
  c->source = command.source;
  c->recv_buffer = std::make_unique<char[]>(kRecvBufferSize);
  const uint32_t slot = connections_.add(std::move(c));
  slots_[command.id] = slot;
  sessions_active_->add(1);
  connect_target(slot, *connections_.at(slot));
}

void OutboundEngine::start_transaction(const StartCommand& command) {
  uint32_t slot = 0;
  OutboundConnection* c = find(command.id, &slot);
  if (!c) return;  // it ended meanwhile and said so: the planner retries the job
  if (c->phase != Phase::ready) {
    // The planner starts transactions only on ready connections. Should one
    // not be, it is cut, so that its end hands the job back for a retry.
    spdlog::error("delivery: transaction for connection {} in phase {}", command.id,
                  to_string(c->phase));
    const SmtpReply why = local_failure("connection not ready for a transaction");
    close_connection(slot, *c, &why);
    return;
  }
  c->in_transaction = true;
  enter_phase(*c, Phase::dialogue);
  apply(slot, *c, c->session->send_message(command.message));
}

void OutboundEngine::quit(ConnectionId id) {
  uint32_t slot = 0;
  OutboundConnection* c = find(id, &slot);
  if (!c || c->phase == Phase::closing) return;
  if (c->phase != Phase::ready) {
    c->quit_pending = true;  // after the reply awaited now
    return;
  }
  enter_phase(*c, Phase::dialogue);
  apply(slot, *c, c->session->quit());
}

// The stop deadline: what is in flight ends as a local failure, retried later.
void OutboundEngine::cut(ConnectionId id) {
  uint32_t slot = 0;
  OutboundConnection* c = find(id, &slot);
  if (!c) return;
  if (c->session && !c->session->is_closed()) {
    apply(slot, *c, c->session->connection_lost("the server is stopping"));
  }
  if (c->phase != Phase::closed) close_connection(slot, *c);
}

// ---- ring mechanics

void OutboundEngine::on_tick() {
  if (!running_) return;
  const int64_t now = now_steady_ms();
  for (uint32_t slot = 0; slot < connections_.slots(); ++slot) {
    OutboundConnection* c = connections_.at(slot);
    if (!c || c->phase == Phase::closed) continue;
    if (c->deadline_ms == 0 || now < c->deadline_ms) continue;
    c->deadline_ms = 0;
    switch (c->phase) {
      case Phase::closing:
        close_connection(slot, *c);  // the last bytes never left: a peer that stopped reading
        break;
      case Phase::connecting: {
        // Cancels the connect; its completion (-ECANCELED) moves on.
        io_uring_sqe* s = sqe();
        io_uring_prep_cancel64(s, pack(OutOp::connect, slot, c->generation), 0);
        io_uring_sqe_set_data64(s, pack(OutOp::cancel, slot, c->generation));
        break;
      }
      case Phase::tls_handshake:
        c->tls_failed = true;
        enter_phase(*c, Phase::dialogue);
        apply(slot, *c, c->session->tls_failed("TLS handshake timed out"));
        break;
      case Phase::dialogue:
        if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
        apply(slot, *c, c->session->timeout());
        break;
      case Phase::ready:
      case Phase::closed:
        break;
    }
  }
  carry_out(planner_.tick());
  check_stopped();
  if (running_) reactor_.arm_tick(pack(OutOp::tick, 0, 0), kTickInterval);
}

OutboundConnection* OutboundEngine::lookup(uint32_t slot, uint32_t generation) {
  OutboundConnection* c = connections_.find(slot, generation);
  return c && !c->released ? c : nullptr;
}

void OutboundEngine::connect_target(uint32_t slot, OutboundConnection& c) {
  const ConnectTarget& target = c.target;
  if (!fill_address(target, &c.address, &c.address_length)) {
    const SmtpReply why = local_failure("not an IP address: " + target.ip);
    close_connection(slot, c, &why);
    return;
  }
  c.fd = ::socket(c.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    const SmtpReply why = local_failure(std::string("socket: ") + std::strerror(errno));
    close_connection(slot, c, &why);
    return;
  }
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_storage local{};
  socklen_t local_length = 0;
  // The egress source, bound before connect (port chosen by the kernel).
  // A source of the other address family cannot reach this target: like
  // Postfix's per-family bind addresses, that target gets the default one.
  if (c.source && bind_address(*c.source, c.address.ss_family, &local, &local_length) &&
      ::bind(c.fd, reinterpret_cast<sockaddr*>(&local), local_length) != 0) {
    const int err = errno;
    ::close(c.fd);
    c.fd = -1;
    const SmtpReply why = local_failure("cannot send from source " + c.source->text + " to " +
                                        target.ip + ": " + std::strerror(err));
    close_connection(slot, c, &why);
    return;
  }
  enter_phase(c, Phase::connecting);
  c.connect_in_flight = true;
  c.deadline_ms = now_steady_ms() + config_->delivery.timeouts.connect.count();
  io_uring_sqe* s = sqe();
  io_uring_prep_connect(s, c.fd, reinterpret_cast<sockaddr*>(&c.address), c.address_length);
  io_uring_sqe_set_data64(s, pack(OutOp::connect, slot, c.generation));
}

void OutboundEngine::on_connect(uint32_t slot, uint32_t generation, int res) {
  OutboundConnection* c = lookup(slot, generation);
  if (!c) return;
  c->connect_in_flight = false;
  if (c->phase == Phase::closed) {
    maybe_release(slot, *c);
    return;
  }
  if (res < 0) {
    const ConnectTarget& target = c->target;
    std::string why = res == -ECANCELED ? "connection timed out" : std::strerror(-res);
    const SmtpReply failure = local_failure("connect to " + target.mx + " [" + target.ip +
                                            "]:" + std::to_string(target.port) + ": " + why);
    close_connection(slot, *c, &failure);
    return;
  }
  enter_phase(*c, Phase::dialogue);
  ClientSettings settings;
  settings.helo_name = config_->hostname;
  settings.starttls = c->starttls;
  settings.require_tls = c->require_tls;
  const conf::DeliveryTimeouts& t = config_->delivery.timeouts;
  settings.timeouts = ClientTimeouts{t.greeting,  t.ehlo,       t.starttls,  t.mail, t.rcpt,
                                     t.data_init, t.data_block, t.data_term, t.mail, t.quit};
  c->session = std::make_unique<SmtpClientSession>(std::move(settings));
  c->tls.reset();
  apply(slot, *c, c->session->connected());
  if (c->phase != Phase::closed && c->phase != Phase::closing) arm_recv(slot, *c);
}

void OutboundEngine::arm_recv(uint32_t slot, OutboundConnection& c) {
  if (c.recv_in_flight || c.fd < 0) return;
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c.fd, c.recv_buffer.get(), kRecvBufferSize, 0);
  io_uring_sqe_set_data64(s, pack(OutOp::recv, slot, c.generation));
  c.recv_in_flight = true;
}

void OutboundEngine::on_recv(uint32_t slot, uint32_t generation, int res) {
  OutboundConnection* c = lookup(slot, generation);
  if (!c) return;
  c->recv_in_flight = false;
  if (c->phase == Phase::closed) {
    maybe_release(slot, *c);
    return;
  }
  if (res <= 0) {
    std::string why = res == 0 ? "the server closed the connection" : std::strerror(-res);
    if (c->phase == Phase::tls_handshake) {
      c->tls_failed = true;
      enter_phase(*c, Phase::dialogue);
      apply(slot, *c, c->session->tls_failed(why));
    } else {
      if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
      apply(slot, *c, c->session->connection_lost(why));
    }
    if (c->phase != Phase::closed) close_connection(slot, *c);
    return;
  }
  std::string_view bytes(c->recv_buffer.get(), static_cast<size_t>(res));
  if (!c->tls) {
    // Whatever goes wrong while the answer to STARTTLS is awaited (junk
    // after the 220, a hang-up) counts as a failed handshake: opportunistic
    // TLS then retries the host in clear text.
    if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
    apply(slot, *c, c->session->receive(bytes));
    if (c->phase != Phase::closed && c->phase != Phase::tls_handshake) c->tls_failed = false;
    if (c->phase != Phase::closed && c->phase != Phase::closing) arm_recv(slot, *c);
    return;
  }
  std::string plaintext;
  const TlsStatus status = c->tls->feed(bytes, plaintext);
  if (c->tls->has_output()) {
    c->pending_out += c->tls->take_output();
    flush(slot, *c);
  }
  if (status != TlsStatus::ok) {
    if (c->phase == Phase::tls_handshake) {
      c->tls_failed = true;
      enter_phase(*c, Phase::dialogue);
      apply(slot, *c, c->session->tls_failed("TLS: " + c->tls->error()));
    } else {
      apply(slot, *c, c->session->connection_lost("TLS: " + c->tls->error()));
    }
    if (c->phase != Phase::closed) close_connection(slot, *c);
    return;
  }
  if (c->phase == Phase::tls_handshake && c->tls->handshake_done()) {
    c->tls_failed = false;
    enter_phase(*c, Phase::dialogue);
    apply(slot, *c, c->session->tls_established(c->tls->description()));
    if (c->phase == Phase::closed) return;
  }
  if (!plaintext.empty()) apply(slot, *c, c->session->receive(plaintext));
  if (c->phase != Phase::closed && c->phase != Phase::closing) arm_recv(slot, *c);
}

void OutboundEngine::queue_plaintext(uint32_t slot, OutboundConnection& c, std::string text) {
  if (text.empty()) return;
  if (c.tls && c.phase != Phase::tls_handshake) {
    if (c.tls->write(text) != TlsStatus::ok) {
      apply(slot, c, c.session->connection_lost("TLS: " + c.tls->error()));
      return;
    }
    c.pending_out += c.tls->take_output();
  } else if (c.pending_out.empty()) {
    c.pending_out = std::move(text);  // a whole message body: no copy
  } else {
    c.pending_out.append(text);
  }
  flush(slot, c);
}

void OutboundEngine::flush(uint32_t slot, OutboundConnection& c) {
  if (c.send_in_flight || c.pending_out.empty() || c.fd < 0 || c.phase == Phase::closed) return;
  c.sending.swap(c.pending_out);
  c.pending_out.clear();
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, c.sending.data(), c.sending.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, pack(OutOp::send, slot, c.generation));
  c.send_in_flight = true;
}

void OutboundEngine::on_send(uint32_t slot, uint32_t generation, int res) {
  OutboundConnection* c = lookup(slot, generation);
  if (!c) return;
  c->send_in_flight = false;
  if (c->phase == Phase::closed) {
    maybe_release(slot, *c);
    return;
  }
  if (res < 0) {
    apply(slot, *c, c->session->connection_lost(std::string("send: ") + std::strerror(-res)));
    if (c->phase != Phase::closed) close_connection(slot, *c);
    return;
  }
  if (static_cast<size_t>(res) < c->sending.size()) {
    c->pending_out.insert(0, c->sending.substr(static_cast<size_t>(res)));
  }
  c->sending.clear();
  if (!c->pending_out.empty()) {
    flush(slot, *c);
    return;
  }
  if (c->phase == Phase::closing) close_connection(slot, *c);
}

void OutboundEngine::start_tls(uint32_t slot, OutboundConnection& c) {
  c.tls = std::make_unique<TlsSession>(*tls_, TlsSession::ClientMode{}, c.target.mx);
  enter_phase(c, Phase::tls_handshake);
  c.pending_out += c.tls->take_output();
  c.deadline_ms = now_steady_ms() + config_->delivery.timeouts.starttls.count();
  flush(slot, c);
}

void OutboundEngine::arm_deadline(OutboundConnection& c) {
  switch (c.phase) {
    case Phase::dialogue:
      c.deadline_ms = c.session->waiting_for() == ClientWait::none
                          ? 0
                          : now_steady_ms() + c.session->timeout_for_wait().count();
      return;
    case Phase::ready:  // idle: the planner's idle_timeout decides
      c.deadline_ms = 0;
      return;
    case Phase::connecting:
    case Phase::tls_handshake:
    case Phase::closing:
    case Phase::closed:
      return;  // armed when the phase began
  }
}

void OutboundEngine::apply(uint32_t slot, OutboundConnection& c, ClientOutput out) {
  if (c.phase == Phase::closed) return;
  // Results first: a failure while sending what follows them (RSET, QUIT)
  // must not turn replies already received into a retry.
  if (out.finished && c.in_transaction) {
    c.in_transaction = false;
    carry_out(planner_.transaction_done(c.id, *out.finished, c.session->tls_description()));
    if (c.phase == Phase::closed) return;
  }
  if (!out.send.empty()) queue_plaintext(slot, c, std::move(out.send));
  if (c.phase == Phase::closed) return;
  if (out.start_tls) start_tls(slot, c);
  if (out.failure && !out.finished && (out.close || c.session->is_closed())) {
    close_connection(slot, c, &*out.failure);
    return;
  }
  if (out.close) {
    enter_phase(c, Phase::closing);
    if (!c.send_in_flight && c.pending_out.empty()) {
      close_connection(slot, c);
    } else {
      c.deadline_ms = now_steady_ms() + config_->delivery.timeouts.quit.count();
    }
    return;
  }
  if (out.ready) {
    enter_phase(c, Phase::ready);
    c.deadline_ms = 0;
    if (c.quit_pending) {
      c.quit_pending = false;
      enter_phase(c, Phase::dialogue);
      apply(slot, c, c.session->quit());
      return;
    }
    carry_out(planner_.connection_ready(c.id));
    return;
  }
  arm_deadline(c);
}

void OutboundEngine::close_connection(uint32_t slot, OutboundConnection& c,
                                      const SmtpReply* failure) {
  if (c.phase == Phase::closed) return;
  enter_phase(c, Phase::closed);
  c.deadline_ms = 0;
  c.in_transaction = false;
  sessions_active_->add(-1);
  if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  if (c.connect_in_flight) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, pack(OutOp::connect, slot, c.generation), 0);
    io_uring_sqe_set_data64(s, pack(OutOp::cancel, slot, c.generation));
  }
  const ConnectionId id = c.id;
  const bool tls_failed = c.tls_failed;
  maybe_release(slot, c);
  slots_.erase(id);
  carry_out(failure ? planner_.connection_failed(id, *failure, tls_failed)
                    : planner_.connection_closed(id));
}

void OutboundEngine::maybe_release(uint32_t slot, OutboundConnection& c) {
  if (c.connect_in_flight || c.recv_in_flight || c.send_in_flight || c.released) return;
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.released = true;  // freed after this round of completions: callers may still hold it
  to_free_.push_back(slot);
}

void OutboundEngine::free_released() {
  for (uint32_t slot : to_free_) connections_.remove(slot);
  to_free_.clear();
  check_stopped();
}

void OutboundEngine::check_stopped() {
  if (!stopping_ || !running_) return;
  if (!planner_.stopped()) return;
  if (!connections_.empty()) return;  // operations still in flight
  running_ = false;
}

}  // namespace ringmail::mta
