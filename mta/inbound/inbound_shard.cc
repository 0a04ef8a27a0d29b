#include "mta/inbound/inbound_shard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "queue/spool_writer.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {

namespace {

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kBufferCount = 512;  // power of two
constexpr unsigned kBufferSize = 16 * 1024;
constexpr int kBufferGroup = 1;
constexpr auto kTickInterval = std::chrono::milliseconds(250);
constexpr auto kFlushGrace = std::chrono::seconds(10);  // a close waiting for a stuck send

PeerAddress describe(const sockaddr_storage& ss) {
  PeerAddress p;
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
    p.port = ntohs(sin.sin_port);
    p.family = AF_INET;
    std::memcpy(p.bytes, &sin.sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof text);
    p.port = ntohs(sin6.sin6_port);
    p.family = AF_INET6;
    std::memcpy(p.bytes, &sin6.sin6_addr, 16);
  }
  p.ip = text;
  return p;
}

}  // namespace

int64_t InboundShard::unix_now_ms() const { return server_.deps_.clock->unix_ms(); }

InboundShard::~InboundShard() {
  if (thread_.joinable()) thread_.join();
  for (int fd : listen_fds_)
    if (fd >= 0) ::close(fd);
  reactor_.close();
}

void InboundShard::set_settings(std::shared_ptr<const ShardSettings> settings) {
  settings_ = std::move(settings);
}

bool InboundShard::run(std::string* error) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  std::string setup_error;
  thread_ = std::thread([&] {
    std::string err;
    bool ok = setup(&err);
    {
      std::lock_guard lock(mu);
      ready = true;
      setup_error = err;
      if (!ok && setup_error.empty()) setup_error = "io_uring setup failed";
      if (ok) setup_error.clear();
    }
    cv.notify_one();
    if (ok) loop();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return ready; });
  if (!setup_error.empty()) {
    *error = setup_error;
    lock.unlock();
    thread_.join();
    return false;
  }
  return true;
}

// Runs fn on this shard's thread. Callable from any thread.
void InboundShard::post(std::function<void()> fn) { reactor_.mailbox().post(std::move(fn)); }

void InboundShard::request_stop(std::chrono::milliseconds timeout) {
  post([this, timeout] { begin_stop(timeout); });
}

void InboundShard::join() {
  if (thread_.joinable()) thread_.join();
}

bool InboundShard::setup(std::string* error) {
  if (!reactor_.open(kRingEntries, kRingEntries * 4, error)) return false;
  const size_t ring_bytes = kBufferCount * sizeof(io_uring_buf);
  void* mem =
      ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    *error = "mmap of the buffer ring failed";
    return false;
  }
  buffer_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(buffer_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(buffer_ring_);
  reg.ring_entries = kBufferCount;
  reg.bgid = kBufferGroup;
  const int rc = io_uring_register_buf_ring(reactor_.ring(), &reg, 0);
  if (rc < 0) {
    *error = std::string("io_uring_register_buf_ring: ") + std::strerror(-rc);
    return false;
  }
  buffers_.reset(static_cast<char*>(std::aligned_alloc(4096, size_t(kBufferCount) * kBufferSize)));
  for (unsigned i = 0; i < kBufferCount; ++i) {
    io_uring_buf_ring_add(buffer_ring_, buffers_.get() + size_t(i) * kBufferSize, kBufferSize, i,
                          io_uring_buf_ring_mask(kBufferCount), int(i));
  }
  io_uring_buf_ring_advance(buffer_ring_, kBufferCount);

  if (!reactor_.mailbox().open(error)) return false;
  for (size_t i = 0; i < listen_fds_.size(); ++i) arm_accept(i);
  arm_wake();
  arm_tick();
  io_uring_submit(reactor_.ring());
  auto* metrics = server_.deps_.metrics;
  sessions_active_ = &metrics->gauge("smtp_sessions_active", "SMTP sessions in progress",
                                     {{"direction", "inbound"}});
  connections_refused_ = &metrics->counter(
      "connections_refused_total", "Inbound connections refused with 421 (max_connections)");
  connections_refused_per_ip_ =
      &metrics->counter("connections_refused_per_ip_total",
                        "Inbound connections refused with 421 (limits.max_connections_per_ip)");
  tls_failures_ =
      &metrics->counter("tls_handshake_failures_total", "Inbound TLS handshakes that failed",
                        {{"direction", "inbound"}});
  return true;
}

void InboundShard::arm_accept(size_t listener) {
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listen_fds_[listener], nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, pack(Op::accept, uint32_t(listener), 0));
}

void InboundShard::arm_wake() { reactor_.arm_wake(pack(Op::wake, 0, 0)); }

void InboundShard::arm_tick() { reactor_.arm_tick(pack(Op::tick, 0, 0), kTickInterval); }

void InboundShard::arm_recv(uint32_t slot, Connection& c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(s, pack(Op::recv, slot, c.generation));
  c.recv_armed = true;
}

void InboundShard::loop() {
  while (running_) {
    if (!reactor_.run_once(
            [this](uint64_t data, int res, unsigned flags) { handle(data, res, flags); })) {
      spdlog::critical("shard {}: its ring failed; the shard stops", index_);
      break;
    }
  }
  for (uint32_t slot = 0; slot < connections_.slots(); ++slot) {
    if (Connection* c = connections_.at(slot); c && c->fd >= 0) {
      ::close(c->fd);
      release_counts(*c);
      connections_.remove(slot);
    }
  }
  reactor_.close();
}

void InboundShard::handle(uint64_t data, int res, unsigned flags) {
  const runtime::UserData what = runtime::UserData::unpack(data);
  switch (Op(what.op)) {
    case Op::accept:
      on_accept(what.slot, res, flags);
      return;
    case Op::recv:
      on_recv(what.slot, what.generation, res, flags);
      return;
    case Op::send:
      on_send(what.slot, what.generation, res);
      return;
    case Op::wake:
      on_wake();
      return;
    case Op::tick:
      on_tick();
      return;
    case Op::auth_delay:
      on_auth_delay(what.slot, what.generation);
      return;
    case Op::ignore:
      return;
  }
  spdlog::error("shard {}: completion with unknown operation {:#x}", index_, data);
}

Connection* InboundShard::lookup(uint32_t slot, uint32_t generation) {
  return connections_.find(slot, generation);
}

void InboundShard::on_accept(uint32_t listener, int res, unsigned flags) {
  if (!(flags & IORING_CQE_F_MORE) && !stopping_) arm_accept(listener);
  if (res < 0) {
    if (res != -ECANCELED && res != -EINVAL && !stopping_)
      spdlog::warn("shard {}: accept: {}", index_, std::strerror(-res));
    return;
  }
  int fd = res;
  if (stopping_) {
    ::close(fd);
    return;
  }
  const ShardSettings& settings = *settings_;
  const conf::Config& config = *settings.config;
  if (server_.connections_.load(std::memory_order_relaxed) >= int(config.limits.max_connections)) {
    // A fresh socket has an empty send buffer: this cannot block.
    std::string reply =
        "421 4.7.0 " + config.hostname + " Too many connections, try again later\r\n";
    [[maybe_unused]] ssize_t n =
        ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::close(fd);
    connections_refused_->inc();
    return;
  }
  sockaddr_storage peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
  PeerAddress peer_address = describe(peer);
  bool exempt = config.limits.max_connections_per_ip == 0;
  for (const auto& net : config.limits.connection_limit_exempt) {
    if (exempt) break;
    exempt = net.contains(peer_address.family, peer_address.bytes);
  }
  ClientKey client_key = client_key_of(peer_address.family, peer_address.bytes);
  if (!exempt && !server_.connections_per_client_.try_acquire(
                     client_key, config.limits.max_connections_per_ip)) {
    std::string reply = "421 4.7.0 " + config.hostname +
                        " Too many connections from your address, try again later\r\n";
    [[maybe_unused]] ssize_t n =
        ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::close(fd);
    connections_refused_per_ip_->inc();
    return;
  }
  server_.connections_.fetch_add(1, std::memory_order_relaxed);
  sessions_active_->add(1);

  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  const uint32_t slot = connections_.add(std::make_unique<Connection>());
  Connection& c = *connections_.at(slot);
  c.fd = fd;
  c.listener = listener;
  c.settings = settings_;
  c.peer = std::move(peer_address);
  c.local = describe(local);
  c.counted_per_client = !exempt;
  c.client_key = std::move(client_key);
  c.last_activity = Clock::now();
  c.accepted = c.last_activity;
  for (const auto& net : config.relay_networks) {
    if (net.contains(c.peer.family, c.peer.bytes)) {
      c.relay_network = net.text;
      break;
    }
  }
  const conf::Listener& l = config.listeners[listener];
  if (l.tls == conf::TlsMode::implicit) {
    if (!settings.tls) {  // validation forbids this; refuse rather than talk clear text
      close_now(slot, c);
      return;
    }
    c.tls = std::make_unique<TlsSession>(*settings.tls);
  } else {
    create_session(c, "");
    apply(slot, c, c.session->start());
  }
  arm_recv(slot, c);
}

void InboundShard::on_recv(uint32_t slot, uint32_t generation, int res, unsigned flags) {
  Connection* c = lookup(slot, generation);
  const bool more = flags & IORING_CQE_F_MORE;
  if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
    const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    char* buf = buffers_.get() + size_t(bid) * kBufferSize;
    if (c && !c->closing) on_bytes(slot, *c, std::string_view(buf, size_t(res)));
    io_uring_buf_ring_add(buffer_ring_, buf, kBufferSize, bid, io_uring_buf_ring_mask(kBufferCount),
                          0);
    io_uring_buf_ring_advance(buffer_ring_, 1);
  }
  if (!c) return;
  if (!more) c->recv_armed = false;
  if (res == 0 || (res < 0 && res != -ENOBUFS)) {
    // Peer closed or reset: whatever is in progress is abandoned (a message
    // not yet at its final dot was never acknowledged, so nothing is lost).
    close_now(slot, *c);
    return;
  }
  if (!more && !c->closing) arm_recv(slot, *c);
  maybe_finish_close(slot, *c);
}

void InboundShard::queue_wire(uint32_t, Connection& c, std::string bytes) {
  if (bytes.empty()) return;
  if (c.pending_out.empty())
    c.pending_out = std::move(bytes);
  else
    c.pending_out += bytes;
}

void InboundShard::flush(uint32_t slot, Connection& c) {
  if (c.closing || c.send_in_flight) return;
  if (c.pending_out.empty()) {
    if (c.close_after_flush) close_now(slot, c);
    return;
  }
  c.sending.swap(c.pending_out);
  c.pending_out.clear();
  c.send_in_flight = true;
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c.fd, c.sending.data(), c.sending.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, pack(Op::send, slot, c.generation));
}

void InboundShard::on_send(uint32_t slot, uint32_t generation, int res) {
  Connection* c = lookup(slot, generation);
  if (!c) return;
  c->send_in_flight = false;
  if (res < 0) {
    close_now(slot, *c);
    return;
  }
  c->last_activity = Clock::now();
  if (size_t(res) < c->sending.size()) {  // short send: the rest goes first
    c->pending_out.insert(0, c->sending, size_t(res), std::string::npos);
  }
  c->sending.clear();
  if (c->closing) {
    maybe_finish_close(slot, *c);
    return;
  }
  flush(slot, *c);
}

// Stops reading and writing; the slot is freed once no operation refers
// to its buffers any more.
void InboundShard::close_now(uint32_t slot, Connection& c) {
  if (!c.closing) {
    c.closing = true;
    ::shutdown(c.fd, SHUT_RDWR);
    if (c.auth_delay_armed) {
      io_uring_sqe* s = sqe();
      io_uring_prep_timeout_remove(s, pack(Op::auth_delay, slot, c.generation), 0);
      io_uring_sqe_set_data64(s, pack(Op::ignore, 0, 0));
    }
  }
  maybe_finish_close(slot, c);
}

void InboundShard::maybe_finish_close(uint32_t slot, Connection& c) {
  if (!c.closing || c.recv_armed || c.send_in_flight || c.auth_delay_armed) return;
  ::close(c.fd);
  release_counts(c);
  connections_.remove(slot);
  check_stopped();
}

void InboundShard::release_counts(Connection& c) {
  server_.connections_.fetch_sub(1, std::memory_order_relaxed);
  sessions_active_->add(-1);
  if (c.counted_per_client) server_.connections_per_client_.release(c.client_key);
  c.counted_per_client = false;
}

void InboundShard::on_wake() {
  reactor_.mailbox().drain();
  if (running_) arm_wake();
}

void InboundShard::on_tick() {
  if (!running_) return;
  const auto now = Clock::now();
  const int64_t now_unix_ms = unix_now_ms();
  for (uint32_t slot = 0; slot < connections_.slots(); ++slot) {
    Connection* c = connections_.at(slot);
    if (!c) continue;
    if (c->closing) continue;
    if (c->close_after_flush) {
      if (c->close_requested == Clock::time_point{}) c->close_requested = now;
      if (now - c->close_requested > kFlushGrace) close_now(slot, *c);
      continue;
    }
    const conf::Limits& limits = c->settings->config->limits;
    if (c->session) {
      // Deadlines a trickling client cannot extend; they close the session.
      c->session->set_now(now_unix_ms);
      const uint32_t generation = c->generation;
      apply(slot, *c, c->session->check_deadlines());
      c = lookup(slot, generation);  // apply() may have ended it
      if (!c || c->close_after_flush || c->closing) continue;
    } else if (now - c->accepted > limits.tls_handshake_timeout) {
      spdlog::info("inbound TLS from [{}]:{}: handshake not done in time", c->peer.ip,
                   c->peer.port);
      close_now(slot, *c);  // implicit TLS: no session, nothing to say
      continue;
    }
    const auto idle_limit = limits.idle_timeout;
    if (now - c->last_activity > idle_limit && !(c->session && c->session->waiting())) {
      if (c->session) {
        apply(slot, *c, c->session->idle_timeout());
      } else {
        close_now(slot, *c);  // TLS handshake that never finished
      }
      continue;
    }
    if (stopping_) {
      if (now >= stop_deadline_ && c->session) {
        if (!c->shutdown_said) {
          c->shutdown_said = true;
          apply(slot, *c, c->session->shutdown());
        } else if (now >= stop_deadline_ + std::chrono::seconds(2)) {
          close_now(slot, *c);
        }
      } else if (now >= stop_deadline_) {
        close_now(slot, *c);
      } else {
        say_shutdown_if_idle(slot, *c);
      }
    }
  }
  check_stopped();
  if (running_) arm_tick();
}

void InboundShard::begin_stop(std::chrono::milliseconds timeout) {
  if (stopping_) return;
  stopping_ = true;
  stop_deadline_ = Clock::now() + timeout;
  for (int& fd : listen_fds_) {
    // shutdown(2) ends the pending multishot accept; nothing new comes in.
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    fd = -1;
  }
  for (uint32_t slot = 0; slot < connections_.slots(); ++slot) {
    if (Connection* c = connections_.at(slot); c && !c->closing) {
      if (!c->session)
        close_now(slot, *c);
      else
        say_shutdown_if_idle(slot, *c);
    }
  }
  check_stopped();
}

void InboundShard::check_stopped() {
  if (stopping_ && connections_.empty()) running_ = false;
}

}  // namespace ringmail::mta
