// The delivery thread's ring mechanics: sockets, connect with a timeout,
// send and receive, TLS over memory BIOs, deadlines. Decisions live in
// outbound_dispatch.cc.
#include "mta/outbound_engine.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>

#include "admin-api/metrics_registry.h"
#include "queue/spool_writer.h"

namespace ringmail::mta {

namespace {

constexpr unsigned kRingEntries = 1024;
constexpr size_t kRecvBufferSize = 16 * 1024;
constexpr auto kTickInterval = std::chrono::milliseconds(100);
// How long a site whose every address failed is left alone before new
// messages try it again (their retry schedule still applies to each).
constexpr int64_t kSiteDownMs = 1000;

// io_uring user_data: operation in the top byte, connection slot in the
// next 24 bits, slot generation in the low 32 bits.
enum class OutOp : uint8_t { connect = 1, recv, send, wake, tick, cancel };

uint64_t pack(OutOp op, uint32_t slot, uint32_t generation) {
  return (uint64_t(op) << 56) | (uint64_t(slot & 0xffffffu) << 32) | generation;
}
OutOp op_of(uint64_t data) { return OutOp(data >> 56); }
uint32_t slot_of(uint64_t data) { return uint32_t(data >> 32) & 0xffffffu; }
uint32_t generation_of(uint64_t data) { return uint32_t(data); }

SmtpReply local_failure(std::string text, std::string enhanced = "4.4.1") {
  SmtpReply reply;
  reply.local = true;
  reply.enhanced = std::move(enhanced);
  reply.text = std::move(text);
  return reply;
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

OutboundEngine::OutboundEngine(OutboundDependencies deps,
                               std::shared_ptr<const conf::Config> config,
                               std::unique_ptr<DnsResolver> resolver,
                               std::shared_ptr<const TlsContext> tls)
    : deps_(deps),
      resolver_(std::move(resolver)),
      tls_(std::move(tls)),
      random_(std::random_device{}()) {
  set_config(std::move(config));
}

OutboundEngine::~OutboundEngine() {
  if (thread_.joinable()) thread_.join();
  if (resolver_) resolver_->stop();
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

int64_t OutboundEngine::now_steady_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

bool OutboundEngine::start(std::string* error) {
  if (!mailbox_.open(error)) return false;
  auto* metrics = deps_.metrics;
  sessions_active_ = &metrics->gauge("smtp_sessions_active", "SMTP sessions in progress",
                                     {{"direction", "outbound"}});
  queued_gauge_ = &metrics->gauge("queue_recipients", "Recipients in the spool by state",
                                  {{"state", "queued"}});
  deferred_gauge_ = &metrics->gauge("queue_recipients", "Recipients in the spool by state",
                                    {{"state", "deferred"}});
  attempt_seconds_ = &metrics->histogram("delivery_attempt_seconds",
                                         "Time of one delivery transaction, per message", {},
                                         admin::latency_buckets());
  for (const LabelledCounters* family : {&delivered_, &deferred_, &bounced_}) {
    metrics->declare(family->name, family->help, admin::MetricType::counter);
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

bool OutboundEngine::setup_ring(std::string* error) {
  // Completions are handled only when the thread asks for them (no task
  // work interrupting it), as on the inbound shards.
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  if (rc < 0) {  // older kernels: plain ring
    params = {};
    rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
  }
  if (rc < 0) {
    *error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  ring_ok_ = true;
  arm_wake();
  arm_tick();
  return true;
}

void OutboundEngine::post(std::function<void()> fn) { mailbox_.post(std::move(fn)); }

void OutboundEngine::request_stop(std::chrono::milliseconds timeout) {
  post([this, timeout] {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ms_ = now_steady_ms() + timeout.count();
    for (uint32_t slot = 0; slot < connections_.size(); ++slot) {
      OutboundConnection* c = connections_[slot].get();
      if (!c || c->closing) continue;
      if (!c->job) {
        if (c->session && c->session->is_ready()) {
          c->idle = false;
          apply(slot, *c, c->session->quit());
        } else {
          close_connection(slot, *c);
        }
      }
    }
    check_stopped();
  });
}

void OutboundEngine::join() {
  if (thread_.joinable()) thread_.join();
}

io_uring_sqe* OutboundEngine::sqe() { return next_sqe(&ring_); }

void OutboundEngine::arm_wake() { mailbox_.arm_read(&ring_, pack(OutOp::wake, 0, 0)); }

void OutboundEngine::arm_tick() {
  tick_ts_.tv_sec = 0;
  tick_ts_.tv_nsec = std::chrono::nanoseconds(kTickInterval).count();
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(s, pack(OutOp::tick, 0, 0));
}

void OutboundEngine::loop() {
  run_due();
  while (running_) {
    int rc = io_uring_submit_and_wait(&ring_, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      spdlog::critical("delivery: io_uring_submit_and_wait: {}", std::strerror(-rc));
      break;
    }
    unsigned head;
    unsigned seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++seen;
      handle(cqe->user_data, cqe->res);
    }
    io_uring_cq_advance(&ring_, seen);
    free_released();
  }
  for (auto& c : connections_) {
    if (c && c->fd >= 0) {
      ::close(c->fd);
      c->fd = -1;
    }
  }
}

void OutboundEngine::handle(uint64_t data, int res) {
  switch (op_of(data)) {
    case OutOp::connect:
      on_connect(slot_of(data), generation_of(data), res);
      return;
    case OutOp::recv:
      on_recv(slot_of(data), generation_of(data), res);
      return;
    case OutOp::send:
      on_send(slot_of(data), generation_of(data), res);
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
}

void OutboundEngine::on_wake() {
  mailbox_.drain();
  if (running_) arm_wake();
}

void OutboundEngine::on_tick() {
  if (!running_) return;
  const int64_t now = now_steady_ms();
  for (uint32_t slot = 0; slot < connections_.size(); ++slot) {
    OutboundConnection* c = connections_[slot].get();
    if (!c || c->closing) continue;
    if (stopping_ && now >= stop_deadline_ms_) {
      if (c->session && !c->session->is_closed()) {
        apply(slot, *c, c->session->connection_lost("the server is stopping"));
      }
      if (!c->closing) close_connection(slot, *c);
      continue;
    }
    if (c->deadline_ms == 0 || now < c->deadline_ms) continue;
    c->deadline_ms = 0;
    if (c->close_after_flush) {
      close_connection(slot, *c);  // the last bytes never left: a peer that stopped reading
      continue;
    }
    if (!c->connected) {
      // Cancels the connect; its completion (-ECANCELED) moves on.
      io_uring_sqe* s = sqe();
      io_uring_prep_cancel64(s, pack(OutOp::connect, slot, c->generation), 0);
      io_uring_sqe_set_data64(s, pack(OutOp::cancel, slot, c->generation));
      continue;
    }
    if (c->idle) {
      c->idle = false;
      auto& idle = sites_[c->site].idle;
      std::erase(idle, slot);
      apply(slot, *c, c->session->quit());
      continue;
    }
    if (c->tls_handshaking) {
      c->tls_handshaking = false;
      c->tls_failed = true;
      apply(slot, *c, c->session->tls_failed("TLS handshake timed out"));
      continue;
    }
    if (c->session) {
      if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
      apply(slot, *c, c->session->timeout());
    }
  }
  forget_old_finished();
  if (!stopping_) {
    run_due();
    // Ready jobs of sites that found no free connection when they became
    // ready (the global limit was reached then) get one now.
    if (scheduler_.ready_total() > 0 && open_connections_ < config_->delivery.max_connections) {
      for (const std::string& name : scheduler_.ready_sites()) {
        auto it = sites_.find(name);
        if (it != sites_.end()) service_site(it->second);
        if (open_connections_ >= config_->delivery.max_connections) break;
      }
    }
  }
  check_stopped();
  if (running_) arm_tick();
}

uint32_t OutboundEngine::allocate_slot() {
  if (!free_slots_.empty()) {
    uint32_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
  }
  connections_.emplace_back();
  return static_cast<uint32_t>(connections_.size() - 1);
}

OutboundConnection* OutboundEngine::lookup(uint32_t slot, uint32_t generation) {
  if (slot >= connections_.size()) return nullptr;
  OutboundConnection* c = connections_[slot].get();
  if (!c || c->generation != generation || c->released) return nullptr;
  return c;
}

void OutboundEngine::open_connection(SiteState& site) {
  auto c = std::make_unique<OutboundConnection>();
  c->generation = ++generation_counter_;
  c->site = site.name;
  std::vector<MxHost> hosts = site.hosts;
  shuffle_equal_preferences(hosts, random_);
  for (const MxHost& host : hosts) {
    for (const std::string& ip : host.addresses) {
      c->targets.push_back(ConnectTarget{host.name, ip, site.port});
    }
  }
  if (c->targets.empty()) return;
  c->starttls = tls_ && config_->delivery.tls != conf::OutboundTls::none;
  c->source = site.source.address;
  c->recv_buffer = std::make_unique<char[]>(kRecvBufferSize);
  const uint32_t slot = allocate_slot();
  connections_[slot] = std::move(c);
  ++site.connections;
  ++site.opening;
  ++open_connections_;
  sessions_active_->add(1);
  connect_target(slot, *connections_[slot]);
}

void OutboundEngine::connect_target(uint32_t slot, OutboundConnection& c) {
  const ConnectTarget& target = c.targets[c.target];
  if (!fill_address(target, &c.address, &c.address_length)) {
    connection_failed(slot, c, local_failure("not an IP address: " + target.ip));
    return;
  }
  c.fd = ::socket(c.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c.fd < 0) {
    connection_failed(slot, c, local_failure(std::string("socket: ") + std::strerror(errno)));
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
    connection_failed(slot, c,
                      local_failure("cannot send from source " + c.source->text + " to " +
                                    target.ip + ": " + std::strerror(err)));
    return;
  }
  c.connected = false;
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
  if (c->closing) {
    maybe_release(slot, *c);
    return;
  }
  if (res < 0) {
    const ConnectTarget& target = c->targets[c->target];
    std::string why = res == -ECANCELED ? "connection timed out" : std::strerror(-res);
    connection_failed(slot, *c,
                      local_failure("connect to " + target.mx + " [" + target.ip +
                                    "]:" + std::to_string(target.port) + ": " + why));
    return;
  }
  c->connected = true;
  ClientSettings settings;
  settings.helo_name = config_->hostname;
  settings.starttls = c->starttls;
  settings.require_tls = config_->delivery.tls == conf::OutboundTls::required;
  const conf::DeliveryTimeouts& t = config_->delivery.timeouts;
  settings.timeouts = ClientTimeouts{t.greeting,  t.ehlo,       t.starttls,  t.mail, t.rcpt,
                                     t.data_init, t.data_block, t.data_term, t.mail, t.quit};
  c->session = std::make_unique<SmtpClientSession>(std::move(settings));
  c->tls.reset();
  apply(slot, *c, c->session->connected());
  if (!c->closing && !c->close_after_flush) arm_recv(slot, *c);
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
  if (c->closing) {
    maybe_release(slot, *c);
    return;
  }
  if (res <= 0) {
    std::string why = res == 0 ? "the server closed the connection" : std::strerror(-res);
    if (c->tls_handshaking) {
      c->tls_handshaking = false;
      c->tls_failed = true;
      apply(slot, *c, c->session->tls_failed(why));
    } else {
      if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
      apply(slot, *c, c->session->connection_lost(why));
    }
    if (!c->closing) close_connection(slot, *c);
    return;
  }
  std::string_view bytes(c->recv_buffer.get(), static_cast<size_t>(res));
  if (!c->tls) {
    // Whatever goes wrong while the answer to STARTTLS is awaited (junk
    // after the 220, a hang-up) counts as a failed handshake: opportunistic
    // TLS then retries the host in clear text.
    if (c->session->waiting_for() == ClientWait::starttls) c->tls_failed = true;
    apply(slot, *c, c->session->receive(bytes));
    if (!c->closing && !c->tls_handshaking) c->tls_failed = false;
    if (!c->closing && !c->close_after_flush) arm_recv(slot, *c);
    return;
  }
  std::string plaintext;
  const TlsStatus status = c->tls->feed(bytes, plaintext);
  if (c->tls->has_output()) {
    c->pending_out += c->tls->take_output();
    flush(slot, *c);
  }
  if (status != TlsStatus::ok) {
    if (c->tls_handshaking) {
      c->tls_handshaking = false;
      c->tls_failed = true;
      apply(slot, *c, c->session->tls_failed("TLS: " + c->tls->error()));
    } else {
      apply(slot, *c, c->session->connection_lost("TLS: " + c->tls->error()));
    }
    if (!c->closing) close_connection(slot, *c);
    return;
  }
  if (c->tls_handshaking && c->tls->handshake_done()) {
    c->tls_handshaking = false;
    c->tls_failed = false;
    apply(slot, *c, c->session->tls_established(c->tls->description()));
    if (c->closing) return;
  }
  if (!plaintext.empty()) apply(slot, *c, c->session->receive(plaintext));
  if (!c->closing && !c->close_after_flush) arm_recv(slot, *c);
}

void OutboundEngine::queue_plaintext(uint32_t slot, OutboundConnection& c, std::string text) {
  if (text.empty()) return;
  if (c.tls && !c.tls_handshaking) {
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
  if (c.send_in_flight || c.pending_out.empty() || c.fd < 0 || c.closing) return;
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
  if (c->closing) {
    maybe_release(slot, *c);
    return;
  }
  if (res < 0) {
    apply(slot, *c, c->session->connection_lost(std::string("send: ") + std::strerror(-res)));
    if (!c->closing) close_connection(slot, *c);
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
  if (c->close_after_flush) close_connection(slot, *c);
}

void OutboundEngine::start_tls(uint32_t slot, OutboundConnection& c) {
  const ConnectTarget& target = c.targets[c.target];
  c.tls = std::make_unique<TlsSession>(*tls_, TlsSession::ClientMode{}, target.mx);
  c.tls_handshaking = true;
  c.pending_out += c.tls->take_output();
  c.deadline_ms = now_steady_ms() + config_->delivery.timeouts.starttls.count();
  flush(slot, c);
}

void OutboundEngine::arm_deadline(OutboundConnection& c) {
  if (c.tls_handshaking) return;
  if (c.idle) {
    c.deadline_ms = now_steady_ms() + config_->delivery.idle_timeout.count();
    return;
  }
  if (!c.session || c.session->waiting_for() == ClientWait::none) {
    c.deadline_ms = 0;
    return;
  }
  c.deadline_ms = now_steady_ms() + c.session->timeout_for_wait().count();
}

void OutboundEngine::apply(uint32_t slot, OutboundConnection& c, ClientOutput out) {
  if (c.closing) return;
  // Results first: a failure while sending what follows them (RSET, QUIT)
  // must not turn replies already received into a retry.
  if (out.finished && c.job) {
    const queue::JobId id = *c.job;
    c.job.reset();
    const std::string tls = c.session->tls_description();
    const ConnectTarget& target = c.targets[c.target];
    attempt_seconds_->observe(static_cast<double>(now_steady_ms() - c.attempt_started_ms) / 1000.0);
    finish_job(id, c.message.get(), out.finished->recipients, site_of(c.site), target.mx, tls);
    c.message.reset();
  }
  if (!out.send.empty()) queue_plaintext(slot, c, std::move(out.send));
  if (c.closing) return;
  if (out.start_tls) start_tls(slot, c);
  if (out.failure && !out.finished) {
    if (out.close || c.session->is_closed()) {
      connection_failed(slot, c, *out.failure);
      return;
    }
  }
  if (out.close) {
    c.close_after_flush = true;
    if (!c.send_in_flight && c.pending_out.empty()) {
      close_connection(slot, c);
    } else {
      c.deadline_ms = now_steady_ms() + config_->delivery.timeouts.quit.count();
    }
    return;
  }
  if (out.ready) {
    if (!c.ready_once) {
      c.ready_once = true;
      SiteState& site = sites_[c.site];
      --site.opening;
      ++site.established;
    }
    connection_ready(slot, c);
    if (c.closing) return;
  }
  arm_deadline(c);
}

void OutboundEngine::connection_failed(uint32_t slot, OutboundConnection& c,
                                       const SmtpReply& reply) {
  const ConnectTarget target = c.targets[c.target];
  SmtpReply why = reply;
  if (why.local && why.text.find(target.ip) == std::string::npos) {
    // Say which host it was: the log's text must stand on its own.
    why.text = target.mx + " [" + target.ip + "]: " + why.text;
  }
  spdlog::debug("delivery: {} [{}]:{}: {}", target.mx, target.ip, target.port, why.to_string());
  if (c.ready_once) {
    // It worked, then went away while idle (a peer's idle timeout, a 421
    // between transactions): nothing is wrong with the site.
    close_connection(slot, c);
    return;
  }
  bool retry_same = false;
  if (c.tls_failed && !c.tls_retry_done &&
      config_->delivery.tls == conf::OutboundTls::opportunistic && c.messages == 0) {
    // Opportunistic TLS (RFC 7435): a broken handshake is retried in clear text.
    retry_same = true;
  }
  const bool more = retry_same || c.target + 1 < c.targets.size();
  if (more && !stopping_ && c.messages == 0) {
    // The next MX (or address) on a fresh connection; this one closes.
    auto next = std::make_unique<OutboundConnection>();
    next->generation = ++generation_counter_;
    next->site = c.site;
    next->targets = c.targets;
    next->target = retry_same ? c.target : c.target + 1;
    // The clear-text retry is for this address only; the next one is
    // offered STARTTLS again.
    next->starttls =
        retry_same ? false : (tls_ && config_->delivery.tls != conf::OutboundTls::none);
    next->tls_retry_done = c.tls_retry_done || retry_same;
    next->source = c.source;
    next->recv_buffer = std::make_unique<char[]>(kRecvBufferSize);
    SiteState& site = sites_[c.site];
    ++site.connections;
    ++site.opening;
    ++open_connections_;
    sessions_active_->add(1);
    c.messages = 1;  // so that closing it does not give up on the site
    const uint32_t next_slot = allocate_slot();
    connections_[next_slot] = std::move(next);
    close_connection(slot, c);
    connect_target(next_slot, *connections_[next_slot]);
    return;
  }
  // Every address failed before a first transaction: the site is down for
  // a moment. Its ready jobs wait for their next attempt with this reason,
  // and no connection is opened for it meanwhile (other connections
  // failing at the same time must not reopen for each other's jobs).
  SiteState& site = sites_[c.site];
  if (!stopping_ && c.messages == 0 && site.established == 0) {
    site.down_until_ms = now_steady_ms() + kSiteDownMs;
    site.last_failure = why;
    site.last_mx = target.mx;
    std::vector<queue::JobId> jobs;
    scheduler_.take_ready(site.name, &jobs);
    for (queue::JobId id : jobs) fail_job(id, why, target.mx);
  }
  close_connection(slot, c);
}

void OutboundEngine::close_connection(uint32_t slot, OutboundConnection& c) {
  if (c.closing) return;
  c.closing = true;
  c.deadline_ms = 0;
  SiteState& site = sites_[c.site];
  if (c.idle) std::erase(site.idle, slot);
  c.idle = false;
  if (!c.ready_once && site.opening > 0) --site.opening;
  if (c.ready_once && site.established > 0) --site.established;
  if (site.connections > 0) --site.connections;
  --open_connections_;
  sessions_active_->add(-1);
  if (c.job) {
    // A transaction cut short without a result: its recipients are retried.
    const queue::JobId id = *c.job;
    c.job.reset();
    SmtpReply reply = local_failure("connection closed during the transaction");
    fail_job(id, reply, c.targets[c.target].mx);
  }
  if (c.fd >= 0) ::shutdown(c.fd, SHUT_RDWR);
  if (c.connect_in_flight) {
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, pack(OutOp::connect, slot, c.generation), 0);
    io_uring_sqe_set_data64(s, pack(OutOp::cancel, slot, c.generation));
  }
  maybe_release(slot, c);
  if (!stopping_) {
    auto it = sites_.find(site.name);
    if (it != sites_.end()) service_site(it->second);
  }
}

void OutboundEngine::maybe_release(uint32_t slot, OutboundConnection& c) {
  if (c.connect_in_flight || c.recv_in_flight || c.send_in_flight || c.released) return;
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  c.released = true;  // freed after this round of completions: callers may still hold it
  to_free_.push_back(slot);
}

void OutboundEngine::free_released() {
  for (uint32_t slot : to_free_) {
    connections_[slot].reset();
    free_slots_.push_back(slot);
  }
  to_free_.clear();
  check_stopped();
}

void OutboundEngine::check_stopped() {
  if (!stopping_ || !running_) return;
  if (open_connections_ > 0) return;
  for (const auto& c : connections_) {
    if (c) return;  // operations still in flight
  }
  running_ = false;
}

}  // namespace ringmail::mta
