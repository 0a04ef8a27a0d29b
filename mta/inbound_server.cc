#include "mta/inbound_server.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "admin-api/metrics_registry.h"
#include "mta/auth_service.h"
#include "mta/dkim_signer.h"
#include "mta/smtp_server_session.h"
#include "mta/tls_context.h"
#include "queue/spool_writer.h"

namespace ringmail::mta {

namespace {

using Clock = std::chrono::steady_clock;

// io_uring user_data: operation in the top byte, connection slot (or
// listener index) in the next 24 bits, slot generation in the low 32 bits.
enum class Op : uint8_t { accept = 1, recv, send, wake, tick, auth_delay, ignore };

uint64_t pack(Op op, uint32_t slot, uint32_t generation) {
  return (uint64_t(op) << 56) | (uint64_t(slot & 0xffffffu) << 32) | generation;
}
Op op_of(uint64_t data) { return Op(data >> 56); }
uint32_t slot_of(uint64_t data) { return uint32_t(data >> 32) & 0xffffffu; }
uint32_t generation_of(uint64_t data) { return uint32_t(data); }

constexpr unsigned kRingEntries = 4096;
constexpr unsigned kBufferCount = 512;  // power of two
constexpr unsigned kBufferSize = 16 * 1024;
constexpr int kBufferGroup = 1;
constexpr auto kTickInterval = std::chrono::milliseconds(250);
constexpr auto kFlushGrace = std::chrono::seconds(10);  // a close waiting for a stuck send

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct PeerAddress {
  std::string ip;
  uint16_t port = 0;
  int family = 0;
  uint8_t bytes[16] = {};
};

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

// Creates a listening socket with SO_REUSEPORT so that every shard can own one.
int open_listener(const conf::SocketAddress& address, std::string* error) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (inet_pton(AF_INET, address.host.c_str(), &reinterpret_cast<sockaddr_in&>(ss).sin_addr) == 1) {
    auto& sin = reinterpret_cast<sockaddr_in&>(ss);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(address.port);
    len = sizeof sin;
  } else if (inet_pton(AF_INET6, address.host.c_str(),
                       &reinterpret_cast<sockaddr_in6&>(ss).sin6_addr) == 1) {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(ss);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(address.port);
    len = sizeof sin6;
    family = AF_INET6;
  } else {
    *error = "listener address " + address.text + ": not an IP address";
    return -1;
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 4096) != 0) {
    *error = "cannot listen on " + address.text + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// What a shard needs from the config; swapped whole on reload.
struct ShardSettings {
  std::shared_ptr<const conf::Config> config;
  std::shared_ptr<const TlsContext> tls;
  std::shared_ptr<const DkimSignerSet> dkim;  // null or empty: no signing
  std::vector<SessionSettings> sessions;      // one per listener, same order
};

struct Connection {
  uint32_t generation = 0;
  int fd = -1;
  size_t listener = 0;
  PeerAddress peer;
  PeerAddress local;
  std::string relay_network;
  std::shared_ptr<const ShardSettings> settings;  // as at accept time
  std::unique_ptr<SmtpServerSession> session;     // null until implicit TLS is up
  std::unique_ptr<TlsSession> tls;
  bool tls_up = false;
  std::string pending_out;  // bytes for the wire, waiting for the send in flight
  std::string sending;      // the bytes of the send in flight
  bool send_in_flight = false;
  bool recv_armed = false;
  bool close_after_flush = false;
  bool closing = false;  // shutdown(2) done; waiting for operations to end
  bool shutdown_said = false;
  bool auth_delay_armed = false;
  AuthOutcome delayed_auth{};
  __kernel_timespec auth_delay_ts{};
  Clock::time_point last_activity{};
  Clock::time_point close_requested{};
};

class InboundShard {
 public:
  InboundShard(InboundServer& server, int index) : server_(server), index_(index) {}
  ~InboundShard() {
    if (thread_.joinable()) thread_.join();
    for (int fd : listen_fds_)
      if (fd >= 0) ::close(fd);
    // Closed only now: spool and auth completions may still post() after
    // the loop has ended, and must not write to a recycled descriptor.
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (ring_ok_) io_uring_queue_exit(&ring_);
  }

  void adopt_listener(int fd) { listen_fds_.push_back(fd); }
  void set_settings(std::shared_ptr<const ShardSettings> settings) {
    settings_ = std::move(settings);
  }

  bool run(std::string* error) {
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
  void post(std::function<void()> fn) {
    bool wake;
    {
      std::lock_guard lock(post_mutex_);
      wake = posted_.empty();
      posted_.push_back(std::move(fn));
    }
    if (wake) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    }
  }

  void request_stop(std::chrono::milliseconds timeout) {
    post([this, timeout] { begin_stop(timeout); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  bool setup(std::string* error) {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = kRingEntries * 4;
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
    rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) {
      *error = std::string("io_uring_register_buf_ring: ") + std::strerror(-rc);
      return false;
    }
    buffers_.reset(
        static_cast<char*>(std::aligned_alloc(4096, size_t(kBufferCount) * kBufferSize)));
    for (unsigned i = 0; i < kBufferCount; ++i) {
      io_uring_buf_ring_add(buffer_ring_, buffers_.get() + size_t(i) * kBufferSize, kBufferSize, i,
                            io_uring_buf_ring_mask(kBufferCount), int(i));
    }
    io_uring_buf_ring_advance(buffer_ring_, kBufferCount);

    wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (wake_fd_ < 0) {
      *error = std::string("eventfd: ") + std::strerror(errno);
      return false;
    }
    for (size_t i = 0; i < listen_fds_.size(); ++i) arm_accept(i);
    arm_wake();
    arm_tick();
    io_uring_submit(&ring_);
    auto* metrics = server_.deps_.metrics;
    sessions_active_ = &metrics->gauge("smtp_sessions_active", "SMTP sessions in progress",
                                       {{"direction", "inbound"}});
    connections_refused_ = &metrics->counter(
        "connections_refused_total", "Inbound connections refused with 421 (max_connections)");
    tls_failures_ =
        &metrics->counter("tls_handshake_failures_total", "Inbound TLS handshakes that failed",
                          {{"direction", "inbound"}});
    return true;
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (!s) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  void arm_accept(size_t listener) {
    io_uring_sqe* s = sqe();
    io_uring_prep_multishot_accept(s, listen_fds_[listener], nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, pack(Op::accept, uint32_t(listener), 0));
  }
  void arm_wake() {
    io_uring_sqe* s = sqe();
    io_uring_prep_read(s, wake_fd_, &wake_value_, sizeof wake_value_, 0);
    io_uring_sqe_set_data64(s, pack(Op::wake, 0, 0));
  }
  void arm_tick() {
    tick_ts_.tv_sec = 0;
    tick_ts_.tv_nsec = std::chrono::nanoseconds(kTickInterval).count();
    io_uring_sqe* s = sqe();
    io_uring_prep_timeout(s, &tick_ts_, 0, 0);
    io_uring_sqe_set_data64(s, pack(Op::tick, 0, 0));
  }
  void arm_recv(uint32_t slot, Connection& c) {
    io_uring_sqe* s = sqe();
    io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(s, pack(Op::recv, slot, c.generation));
    c.recv_armed = true;
  }

  void loop() {
    while (running_) {
      int rc = io_uring_submit_and_wait(&ring_, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        spdlog::critical("shard {}: io_uring_submit_and_wait: {}", index_, std::strerror(-rc));
        break;
      }
      unsigned head;
      unsigned seen = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        handle(cqe->user_data, cqe->res, cqe->flags);
      }
      io_uring_cq_advance(&ring_, seen);
    }
    for (size_t slot = 0; slot < connections_.size(); ++slot) {
      if (connections_[slot] && connections_[slot]->fd >= 0) {
        ::close(connections_[slot]->fd);
        connections_[slot].reset();
        server_.connections_.fetch_sub(1, std::memory_order_relaxed);
        sessions_active_->add(-1);
      }
    }
    if (ring_ok_) io_uring_queue_exit(&ring_);
    ring_ok_ = false;
  }

  void handle(uint64_t data, int res, unsigned flags) {
    switch (op_of(data)) {
      case Op::accept:
        on_accept(slot_of(data), res, flags);
        return;
      case Op::recv:
        on_recv(slot_of(data), generation_of(data), res, flags);
        return;
      case Op::send:
        on_send(slot_of(data), generation_of(data), res);
        return;
      case Op::wake:
        on_wake();
        return;
      case Op::tick:
        on_tick();
        return;
      case Op::auth_delay:
        on_auth_delay(slot_of(data), generation_of(data));
        return;
      case Op::ignore:
        return;
    }
    spdlog::error("shard {}: completion with unknown operation {:#x}", index_, data);
  }

  Connection* lookup(uint32_t slot, uint32_t generation) {
    if (slot >= connections_.size()) return nullptr;
    Connection* c = connections_[slot].get();
    return c && c->generation == generation ? c : nullptr;
  }

  void on_accept(uint32_t listener, int res, unsigned flags) {
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
    if (server_.connections_.load(std::memory_order_relaxed) >=
        int(config.limits.max_connections)) {
      // A fresh socket has an empty send buffer: this cannot block.
      std::string reply =
          "421 4.7.0 " + config.hostname + " Too many connections, try again later\r\n";
      [[maybe_unused]] ssize_t n =
          ::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      ::close(fd);
      connections_refused_->inc();
      return;
    }
    server_.connections_.fetch_add(1, std::memory_order_relaxed);
    sessions_active_->add(1);

    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage peer{}, local{};
    socklen_t plen = sizeof peer, llen = sizeof local;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);

    uint32_t slot = allocate_slot();
    Connection& c = *connections_[slot];
    c.fd = fd;
    c.listener = listener;
    c.settings = settings_;
    c.peer = describe(peer);
    c.local = describe(local);
    c.last_activity = Clock::now();
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

  void create_session(Connection& c, const std::string& tls_description) {
    ConnectionInfo info;
    info.peer_ip = c.peer.ip;
    info.peer_port = c.peer.port;
    info.local_ip = c.local.ip;
    info.local_port = c.local.port;
    info.relay_network = c.relay_network;
    info.implicit_tls = !tls_description.empty();
    info.tls_description = tls_description;
    info.now_unix_ms = unix_now_ms();
    c.session = std::make_unique<SmtpServerSession>(c.settings->sessions[c.listener], info);
    c.session->set_now(info.now_unix_ms);
  }

  uint32_t allocate_slot() {
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = uint32_t(connections_.size());
      connections_.emplace_back();
    }
    connections_[slot] = std::make_unique<Connection>();
    connections_[slot]->generation = ++generation_counter_;
    return slot;
  }

  void on_recv(uint32_t slot, uint32_t generation, int res, unsigned flags) {
    Connection* c = lookup(slot, generation);
    const bool more = flags & IORING_CQE_F_MORE;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
      const unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
      char* buf = buffers_.get() + size_t(bid) * kBufferSize;
      if (c && !c->closing) on_bytes(slot, *c, std::string_view(buf, size_t(res)));
      io_uring_buf_ring_add(buffer_ring_, buf, kBufferSize, bid,
                            io_uring_buf_ring_mask(kBufferCount), 0);
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

  void on_bytes(uint32_t slot, Connection& c, std::string_view bytes) {
    c.last_activity = Clock::now();
    if (!c.tls) {
      c.session->set_now(unix_now_ms());
      apply(slot, c, c.session->receive(bytes));
      return;
    }
    std::string plain;
    TlsStatus status = c.tls->feed(bytes, plain);
    queue_wire(slot, c, c.tls->take_output());
    if (status == TlsStatus::failed) {
      tls_failures_->inc();
      spdlog::info("inbound TLS from [{}]:{} failed: {}", c.peer.ip, c.peer.port, c.tls->error());
      c.close_after_flush = true;
      flush(slot, c);
      return;
    }
    if (!c.tls_up && c.tls->handshake_done()) {
      c.tls_up = true;
      if (!c.session) {  // implicit TLS: the dialogue starts now
        create_session(c, c.tls->description());
        apply(slot, c, c.session->start());
      } else {
        c.session->set_now(unix_now_ms());
        apply(slot, c, c.session->tls_established(c.tls->description()));
      }
    }
    if (!plain.empty() && c.session && !c.closing) {
      c.session->set_now(unix_now_ms());
      apply(slot, c, c.session->receive(plain));
    }
    if (status == TlsStatus::closed) c.close_after_flush = true;
    flush(slot, c);  // handshake records need sending even when no reply was made
  }

  // Carries out what the session asked for.
  void apply(uint32_t slot, Connection& c, SessionOutput out) {
    if (!out.replies.empty()) queue_plaintext(slot, c, out.replies);
    if (out.start_tls) {
      if (c.settings->tls) {
        c.tls = std::make_unique<TlsSession>(*c.settings->tls);
        c.tls_up = false;
      } else {
        out.close = true;
      }
    }
    if (out.close) c.close_after_flush = true;
    if (out.commit) submit_commit(slot, c, std::move(out.commit));
    if (out.auth) start_auth(slot, c, std::move(*out.auth));
    flush(slot, c);
  }

  void queue_plaintext(uint32_t slot, Connection& c, std::string_view text) {
    if (c.tls && c.tls_up) {
      if (c.tls->write(text) != TlsStatus::ok) c.close_after_flush = true;
      queue_wire(slot, c, c.tls->take_output());
    } else {
      queue_wire(slot, c, std::string(text));
    }
  }

  void queue_wire(uint32_t, Connection& c, std::string bytes) {
    if (bytes.empty()) return;
    if (c.pending_out.empty())
      c.pending_out = std::move(bytes);
    else
      c.pending_out += bytes;
  }

  void flush(uint32_t slot, Connection& c) {
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

  void on_send(uint32_t slot, uint32_t generation, int res) {
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

  // DKIM signs once per message, here on the shard (the cores sign in
  // parallel), before the commit: a retry or a second recipient never re-signs.
  void sign(const DkimSignerSet& signers, queue::SpoolMessage& message) {
    const int64_t now = unix_now_ms() / 1000;
    std::vector<DkimSignerSet::Signature> signatures = signers.sign(message.content, now);
    if (signatures.empty()) return;
    std::string signed_content;
    size_t total = message.content.size();
    for (const auto& sig : signatures) total += sig.header_field.size();
    signed_content.reserve(total);
    for (const auto& sig : signatures) {
      signed_content += sig.header_field;
      dkim_counter(sig.signer->domain(), sig.signer->algorithm_name()).inc();
    }
    signed_content += message.content;
    message.content = std::move(signed_content);
    message.meta.size = message.content.size();
  }

  admin::Counter& dkim_counter(std::string_view domain, std::string_view algorithm) {
    std::string key = std::string(domain) + '\0' + std::string(algorithm);
    auto it = dkim_counters_.find(key);
    if (it != dkim_counters_.end()) return *it->second;
    admin::Counter& counter = server_.deps_.metrics->counter(
        "dkim_signatures_total", "DKIM signatures made, by signing domain and algorithm",
        {{"domain", std::string(domain)}, {"algorithm", std::string(algorithm)}});
    dkim_counters_.emplace(std::move(key), &counter);
    return counter;
  }

  void submit_commit(uint32_t slot, Connection& c, std::unique_ptr<queue::SpoolMessage> message) {
    if (c.settings->dkim && !c.settings->dkim->empty()) sign(*c.settings->dkim, *message);
    const uint32_t generation = c.generation;
    server_.deps_.spool_writer->submit(
        std::move(message),
        [this, slot, generation](const queue::SpoolMessage&, queue::StoreStatus status,
                                 const std::string& detail) {
          CommitResult result;
          result.detail = detail;
          switch (status) {
            case queue::StoreStatus::ok:
              result.status = CommitResult::Status::committed;
              break;
            case queue::StoreStatus::spool_full:
              result.status = CommitResult::Status::spool_full;
              break;
            case queue::StoreStatus::failed:
              result.status = CommitResult::Status::failed;
              break;
          }
          post([this, slot, generation, result] {
            Connection* c = lookup(slot, generation);
            if (!c || c->closing || !c->session) return;
            c->session->set_now(unix_now_ms());
            apply(slot, *c, c->session->commit_finished(result));
            if (stopping_) say_shutdown_if_idle(slot, *c);
          });
        });
  }

  void start_auth(uint32_t slot, Connection& c, AuthRequest request) {
    AuthService* auth = server_.deps_.auth;
    if (!auth) {
      AuthResult r;
      r.status = AuthResult::Status::temporary_failure;
      apply(slot, c, c.session->auth_finished(r));
      return;
    }
    if (auto cached = auth->try_cached(request)) {
      deliver_auth(slot, c, *cached);
      return;
    }
    const uint32_t generation = c.generation;
    auth->verify(std::move(request), [this, slot, generation](AuthOutcome outcome) {
      post([this, slot, generation, outcome] {
        if (Connection* c = lookup(slot, generation); c && !c->closing)
          deliver_auth(slot, *c, outcome);
      });
    });
  }

  static AuthResult to_result(const AuthOutcome& outcome) {
    AuthResult r;
    switch (outcome.status) {
      case AuthOutcome::Status::ok:
        r.status = AuthResult::Status::ok;
        break;
      case AuthOutcome::Status::invalid:
        r.status = AuthResult::Status::invalid_credentials;
        break;
      case AuthOutcome::Status::tempfail:
        r.status = AuthResult::Status::temporary_failure;
        break;
    }
    return r;
  }

  void deliver_auth(uint32_t slot, Connection& c, const AuthOutcome& outcome) {
    if (outcome.delay.count() > 0) {  // failed AUTH is slowed down per client
      c.delayed_auth = outcome;
      c.auth_delay_ts.tv_sec = outcome.delay.count() / 1000;
      c.auth_delay_ts.tv_nsec = (outcome.delay.count() % 1000) * 1000000;
      c.auth_delay_armed = true;
      io_uring_sqe* s = sqe();
      io_uring_prep_timeout(s, &c.auth_delay_ts, 0, 0);
      io_uring_sqe_set_data64(s, pack(Op::auth_delay, slot, c.generation));
      io_uring_submit(&ring_);  // the timespec is read at submission
      return;
    }
    c.session->set_now(unix_now_ms());
    apply(slot, c, c.session->auth_finished(to_result(outcome)));
  }

  void on_auth_delay(uint32_t slot, uint32_t generation) {
    Connection* c = lookup(slot, generation);
    if (!c) return;
    c->auth_delay_armed = false;
    if (c->closing) {
      maybe_finish_close(slot, *c);
      return;
    }
    c->session->set_now(unix_now_ms());
    apply(slot, *c, c->session->auth_finished(to_result(c->delayed_auth)));
  }

  // Stops reading and writing; the slot is freed once no operation refers
  // to its buffers any more.
  void close_now(uint32_t slot, Connection& c) {
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

  void maybe_finish_close(uint32_t slot, Connection& c) {
    if (!c.closing || c.recv_armed || c.send_in_flight || c.auth_delay_armed) return;
    ::close(c.fd);
    connections_[slot].reset();
    free_slots_.push_back(slot);
    server_.connections_.fetch_sub(1, std::memory_order_relaxed);
    sessions_active_->add(-1);
    check_stopped();
  }

  void on_wake() {
    std::vector<std::function<void()>> work;
    {
      std::lock_guard lock(post_mutex_);
      work.swap(posted_);
    }
    for (auto& fn : work) fn();
    if (running_) arm_wake();
  }

  void on_tick() {
    if (!running_) return;
    const auto now = Clock::now();
    for (uint32_t slot = 0; slot < connections_.size(); ++slot) {
      Connection* c = connections_[slot].get();
      if (!c) continue;
      if (c->closing) continue;
      if (c->close_after_flush) {
        if (c->close_requested == Clock::time_point{}) c->close_requested = now;
        if (now - c->close_requested > kFlushGrace) close_now(slot, *c);
        continue;
      }
      const auto idle_limit = c->settings->config->limits.idle_timeout;
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

  void begin_stop(std::chrono::milliseconds timeout) {
    if (stopping_) return;
    stopping_ = true;
    stop_deadline_ = Clock::now() + timeout;
    for (int& fd : listen_fds_) {
      // shutdown(2) ends the pending multishot accept; nothing new comes in.
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
      fd = -1;
    }
    for (uint32_t slot = 0; slot < connections_.size(); ++slot) {
      if (Connection* c = connections_[slot].get(); c && !c->closing) {
        if (!c->session)
          close_now(slot, *c);
        else
          say_shutdown_if_idle(slot, *c);
      }
    }
    check_stopped();
  }

  // Between transactions a client can simply be told to come back later.
  void say_shutdown_if_idle(uint32_t slot, Connection& c) {
    if (c.closing || c.shutdown_said || !c.session) return;
    if (c.session->in_transaction() || c.session->waiting()) return;
    c.shutdown_said = true;
    apply(slot, c, c.session->shutdown());
  }

  void check_stopped() {
    if (!stopping_) return;
    for (const auto& c : connections_)
      if (c) return;
    running_ = false;
  }

  InboundServer& server_;
  int index_;
  std::thread thread_;
  io_uring ring_{};
  bool ring_ok_ = false;
  io_uring_buf_ring* buffer_ring_ = nullptr;
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> buffers_;
  int wake_fd_ = -1;
  uint64_t wake_value_ = 0;
  __kernel_timespec tick_ts_{};
  std::vector<int> listen_fds_;
  std::shared_ptr<const ShardSettings> settings_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<uint32_t> free_slots_;
  uint32_t generation_counter_ = 0;
  bool running_ = true;
  bool stopping_ = false;
  Clock::time_point stop_deadline_{};
  std::mutex post_mutex_;
  std::vector<std::function<void()>> posted_;
  admin::Gauge* sessions_active_ = nullptr;
  admin::Counter* connections_refused_ = nullptr;
  admin::Counter* tls_failures_ = nullptr;
  std::unordered_map<std::string, admin::Counter*> dkim_counters_;
};

namespace {

std::shared_ptr<const ShardSettings> make_settings(std::shared_ptr<const conf::Config> config,
                                                   std::shared_ptr<const TlsContext> tls,
                                                   std::shared_ptr<const DkimSignerSet> dkim,
                                                   bool auth_available) {
  auto s = std::make_shared<ShardSettings>();
  s->dkim = std::move(dkim);
  for (const auto& l : config->listeners) {
    SessionSettings ss;
    ss.hostname = config->hostname;
    ss.listener_name = l.name;
    ss.mode =
        l.mode == conf::ListenerMode::submission ? SessionMode::submission : SessionMode::relay;
    ss.starttls_available = l.tls == conf::TlsMode::starttls && tls != nullptr;
    ss.require_tls_for_auth = l.require_tls_for_auth;
    ss.auth_available = auth_available;
    ss.max_message_size = config->limits.max_message_size;
    ss.max_recipients = config->limits.max_recipients;
    ss.campaign_header = config->campaign_header;
    s->sessions.push_back(std::move(ss));
  }
  s->config = std::move(config);
  s->tls = std::move(tls);
  return s;
}

}  // namespace

InboundServer::InboundServer(InboundDependencies deps, int shard_count)
    : deps_(deps), shard_count_(shard_count < 1 ? 1 : shard_count) {}

InboundServer::~InboundServer() {
  stop(std::chrono::milliseconds(0));
  shards_.clear();
}

bool InboundServer::start(std::shared_ptr<const conf::Config> config,
                          std::shared_ptr<const TlsContext> tls,
                          std::shared_ptr<const DkimSignerSet> dkim, std::string* error) {
  auto settings = make_settings(config, std::move(tls), std::move(dkim), deps_.auth != nullptr);
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
  auto settings =
      make_settings(std::move(config), std::move(tls), std::move(dkim), deps_.auth != nullptr);
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
