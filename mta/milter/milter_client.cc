// mta/milter/milter_client.cc — MilterClient (sockets, poll, timeouts, workers)
// and apply_milter_modifications().
#include "mta/milter/milter_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace ringmail::mta {

namespace {

struct RawField {
  std::string_view name;
  std::string_view value;  // after the colon, folding kept, without the final CRLF
  std::string_view line;   // the whole field, for fields without a colon
  bool has_colon = false;
};

// Splits content into header fields and returns the offset of the body.
size_t split_header_block(std::string_view content, std::vector<RawField>& fields) {
  size_t pos = 0;
  while (pos < content.size()) {
    if (content.compare(pos, 2, "\r\n") == 0) return pos + 2;
    if (content[pos] == '\n') return pos + 1;
    size_t eol = content.find('\n', pos);
    size_t next = eol == std::string_view::npos ? content.size() : eol + 1;
    size_t end = eol == std::string_view::npos ? content.size() : eol;
    if (end > pos && content[end - 1] == '\r') --end;
    std::string_view line = content.substr(pos, end - pos);
    if ((line.front() == ' ' || line.front() == '\t') && !fields.empty()) {
      RawField& last = fields.back();
      const char* start = last.has_colon ? last.value.data() : last.line.data();
      auto extended = std::string_view(start, static_cast<size_t>(content.data() + end - start));
      (last.has_colon ? last.value : last.line) = extended;
    } else {
      RawField field;
      field.line = line;
      size_t colon = line.find(':');
      if (colon != std::string_view::npos && colon > 0) {
        field.has_colon = true;
        field.name = line.substr(0, colon);
        while (!field.name.empty() && (field.name.back() == ' ' || field.name.back() == '\t')) {
          field.name.remove_suffix(1);
        }
        field.value = line.substr(colon + 1);
      }
      fields.push_back(field);
    }
    pos = next;
  }
  return content.size();
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : lower(address.substr(at + 1));
}

// Local parts compare exactly, domains without regard to case.
bool same_address(std::string_view a, std::string_view b) {
  size_t at_a = a.rfind('@');
  size_t at_b = b.rfind('@');
  if (at_a == std::string_view::npos || at_b == std::string_view::npos) return iequals(a, b);
  return a.substr(0, at_a) == b.substr(0, at_b) && iequals(a.substr(at_a + 1), b.substr(at_b + 1));
}

// Any line break becomes CRLF.
std::string crlf_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\r') {
      out.append("\r\n");
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out.append("\r\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// A header value from a milter, made safe to write after "Name:": every
// continuation line starts with white space, so no new field can appear.
std::string folded_value(std::string_view value) {
  std::string lines = crlf_lines(value);
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t eol = lines.find("\r\n", pos);
    std::string_view line = std::string_view(lines).substr(
        pos, eol == std::string::npos ? std::string::npos : eol - pos);
    if (pos > 0) {
      out.append("\r\n");
      if (line.empty() || (line.front() != ' ' && line.front() != '\t')) out.push_back('\t');
    }
    out.append(line);
    if (eol == std::string::npos) break;
    pos = eol + 2;
  }
  return out;
}

std::string esmtp_value(std::string_view args, std::string_view keyword) {
  size_t pos = 0;
  while (pos < args.size()) {
    size_t end = args.find(' ', pos);
    std::string_view token =
        args.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (token.size() > keyword.size() && token[keyword.size()] == '=' &&
        iequals(token.substr(0, keyword.size()), keyword)) {
      return std::string(token.substr(keyword.size() + 1));
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return {};
}

struct OwnedField {
  std::string name;
  std::string value;  // as it goes after "Name:" (CRLF folding)
  std::string line;   // fields without a colon are kept verbatim
  bool has_colon = true;
};

void apply_header_modification(std::vector<OwnedField>& fields, const MilterModification& mod) {
  using Kind = MilterModification::Kind;
  OwnedField added{mod.name, folded_value(mod.value), "", true};
  switch (mod.kind) {
    case Kind::add_header:
      fields.push_back(std::move(added));
      return;
    case Kind::insert_header:
      fields.insert(fields.begin() + std::min<size_t>(mod.index, fields.size()), std::move(added));
      return;
    case Kind::change_header: {
      uint32_t seen = 0;
      for (auto it = fields.begin(); it != fields.end(); ++it) {
        if (!it->has_colon || !iequals(it->name, mod.name)) continue;
        // sendmail treats index 0 like 1.
        if (++seen < std::max<uint32_t>(mod.index, 1)) continue;
        if (mod.value.empty()) {
          fields.erase(it);
        } else {
          it->value = std::move(added.value);
        }
        return;
      }
      if (!mod.value.empty()) fields.push_back(std::move(added));
      return;
    }
    case Kind::add_recipient:
    case Kind::delete_recipient:
    case Kind::replace_body:
    case Kind::change_sender:
      return;
  }
}

void remove_recipient(queue::SpoolMessage& message, std::string_view address) {
  auto& rcpts = message.envelope.recipients;
  rcpts.erase(
      std::remove_if(rcpts.begin(), rcpts.end(),
                     [&](const queue::Recipient& r) { return same_address(r.address, address); }),
      rcpts.end());
}

}  // namespace

MilterMessage build_milter_message(const queue::SpoolMessage& message,
                                   const MilterContext& context) {
  MilterMessage m;
  m.client_ip = context.client_ip.empty() ? message.meta.client_ip : context.client_ip;
  m.client_port = context.client_port;
  in6_addr v6{};
  in_addr v4{};
  if (inet_pton(AF_INET, m.client_ip.c_str(), &v4) == 1) {
    m.client_family = '4';
  } else if (inet_pton(AF_INET6, m.client_ip.c_str(), &v6) == 1) {
    m.client_family = '6';
  } else {
    m.client_family = 'U';
  }
  std::string bracketed = m.client_ip.empty() ? "localhost" : "[" + m.client_ip + "]";
  m.client_hostname = context.client_hostname.empty() ? bracketed : context.client_hostname;
  m.helo = context.helo.empty() ? message.meta.helo : context.helo;

  const queue::Envelope& env = message.envelope;
  m.sender = env.sender;
  if (!env.body_type.empty() && env.body_type != "7BIT")
    m.mail_args.push_back("BODY=" + env.body_type);
  if (env.smtputf8) m.mail_args.push_back("SMTPUTF8");
  if (!env.dsn_ret.empty()) m.mail_args.push_back("RET=" + env.dsn_ret);
  if (!env.dsn_envid.empty()) m.mail_args.push_back("ENVID=" + env.dsn_envid);
  for (const auto& r : env.recipients) {
    MilterRecipient rcpt{r.address, {}};
    if (!r.dsn_notify.empty()) rcpt.args.push_back("NOTIFY=" + r.dsn_notify);
    if (!r.dsn_orcpt.empty()) rcpt.args.push_back("ORCPT=" + r.dsn_orcpt);
    m.recipients.push_back(std::move(rcpt));
  }

  std::vector<RawField> fields;
  size_t body_offset = split_header_block(message.content, fields);
  for (const auto& f : fields) {
    if (f.has_colon) m.headers.push_back({f.name, f.value});
  }
  m.body = std::string_view(message.content).substr(body_offset);

  MilterMacros& macros = m.macros;
  macros.hostname = context.hostname;
  macros.client_description =
      context.client_hostname.empty() ? bracketed : context.client_hostname + " " + bracketed;
  macros.daemon_name = context.daemon_name.empty() ? message.meta.listener : context.daemon_name;
  macros.if_addr = context.local_ip;
  macros.client_addr = m.client_ip;
  macros.client_name = m.client_hostname;
  if (m.client_port != 0) macros.client_port = std::to_string(m.client_port);
  macros.queue_id = message.id.value;
  macros.auth_authen = context.auth_user;
  return m;
}

void apply_milter_modifications(queue::SpoolMessage& message, const MilterVerdict& verdict) {
  using Kind = MilterModification::Kind;
  for (const auto& rejected : verdict.rejected_recipients)
    remove_recipient(message, rejected.address);

  bool content_changes = false;
  for (const auto& mod : verdict.modifications) {
    switch (mod.kind) {
      case Kind::add_header:
      case Kind::insert_header:
      case Kind::change_header:
      case Kind::replace_body:
        content_changes = true;
        break;
      case Kind::delete_recipient:
        remove_recipient(message, mod.value);
        break;
      case Kind::add_recipient: {
        auto& rcpts = message.envelope.recipients;
        if (std::any_of(rcpts.begin(), rcpts.end(),
                        [&](const auto& r) { return same_address(r.address, mod.value); })) {
          break;
        }
        queue::Recipient rcpt;
        rcpt.address = mod.value;
        rcpt.domain = domain_of(mod.value);
        rcpt.dsn_notify = esmtp_value(mod.args, "NOTIFY");
        rcpt.dsn_orcpt = esmtp_value(mod.args, "ORCPT");
        if (!rcpts.empty()) rcpt.next_attempt_unix_ms = rcpts.front().next_attempt_unix_ms;
        rcpts.push_back(std::move(rcpt));
        break;
      }
      case Kind::change_sender:
        message.envelope.sender = mod.value;
        break;
    }
  }
  if (!content_changes) return;

  std::vector<RawField> raw;
  size_t body_offset = split_header_block(message.content, raw);
  std::vector<OwnedField> fields;
  fields.reserve(raw.size() + verdict.modifications.size());
  for (const auto& f : raw) {
    fields.push_back({std::string(f.name), std::string(f.value), std::string(f.line), f.has_colon});
  }
  std::string body = message.content.substr(body_offset);
  for (const auto& mod : verdict.modifications) {
    if (mod.kind == Kind::replace_body) {
      body = crlf_lines(mod.value);
    } else {
      apply_header_modification(fields, mod);
    }
  }
  std::string content;
  content.reserve(message.content.size() + 256);
  for (const auto& f : fields) {
    if (f.has_colon) {
      content.append(f.name).append(":").append(f.value);
    } else {
      content.append(f.line);
    }
    content.append("\r\n");
  }
  content.append("\r\n").append(body);
  message.content = std::move(content);
  message.meta.size = message.content.size();
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kInterrupted = "interrupted: the milter client is stopping";
bool is_interruption(const std::string& error) { return error == kInterrupted; }

struct Conversation {
  MilterVerdict verdict;
  std::string failure;       // "" on success
  bool interrupted = false;  // the client is stopping: tempfail, whatever on_failure says
};

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd, or for the stop eventfd. Returns the revents of
// fd, 0 on timeout, -1 when stopping or on a poll failure.
int wait_for(int fd, short events, int stop_fd, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, stop_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (stop_fd >= 0 && (fds[1].revents & POLLIN)) return -1;
    if (n > 0 && fds[0].revents != 0) return fds[0].revents;
  }
}

std::string connect_to(const conf::SocketAddress& address, int stop_fd, Clock::duration timeout,
                       int& out_fd) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_UNSPEC;
  if (!address.unix_path.empty()) {
    auto* un = reinterpret_cast<sockaddr_un*>(&storage);
    if (address.unix_path.size() >= sizeof(un->sun_path)) return "unix socket path too long";
    un->sun_family = AF_UNIX;
    std::memcpy(un->sun_path, address.unix_path.c_str(), address.unix_path.size() + 1);
    length = sizeof(sockaddr_un);
    family = AF_UNIX;
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, address.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = family = AF_INET;
      v4->sin_port = htons(address.port);
      length = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = family = AF_INET6;
      v6->sin6_port = htons(address.port);
      length = sizeof(sockaddr_in6);
    } else {
      return "not an IP address: " + address.host;
    }
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  out_fd = fd;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&storage), length) == 0) return {};
  if (errno != EINPROGRESS && errno != EAGAIN)
    return std::string("connect: ") + std::strerror(errno);
  int revents = wait_for(fd, POLLOUT, stop_fd, Clock::now() + timeout);
  if (revents < 0) return std::string(kInterrupted);
  if (revents == 0) return "connect timed out";
  int error = 0;
  socklen_t error_length = sizeof(error);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length) != 0) error = errno;
  if (error != 0) return std::string("connect: ") + std::strerror(error);
  return {};
}

Conversation converse(const conf::Milter& milter, const MilterMessage& message, int stop_fd) {
  Conversation result;
  const Clock::duration timeout = milter.timeout;
  int raw_fd = -1;
  std::string error = connect_to(milter.address, stop_fd, timeout, raw_fd);
  Socket socket(raw_fd);
  if (!error.empty()) {
    result.failure = error;
    result.interrupted = is_interruption(error);
    return result;
  }
  MilterSession session(message);
  auto deadline = Clock::now() + timeout;
  char buffer[65536];
  while (!session.finished()) {
    short events = POLLIN;
    if (!session.output().empty()) events |= POLLOUT;
    int revents = wait_for(socket.fd(), events, stop_fd, deadline);
    if (revents < 0) {
      result.failure = std::string(kInterrupted);
      result.interrupted = true;
      return result;
    }
    if (revents == 0) {
      result.failure = std::string("timed out at ") + to_string(session.stage());
      return result;
    }
    if ((revents & POLLOUT) && !session.output().empty()) {
      ssize_t n =
          ::send(socket.fd(), session.output().data(), session.output().size(), MSG_NOSIGNAL);
      if (n > 0) {
        session.consume_output(static_cast<size_t>(n));
        deadline = Clock::now() + timeout;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        result.failure = std::string("write: ") + std::strerror(errno);
        return result;
      }
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
      // libmilter writes a modification and the reply that follows it as
      // separate small packets without TCP_NODELAY: Nagle holds the second
      // until ours acknowledges the first, and a delayed ACK costs ~40 ms a
      // message. Quick ACKs (re-armed before every read, as Linux resets
      // them) remove the stall. Harmless on unix sockets (it fails there).
      int quick = 1;
      ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_QUICKACK, &quick, sizeof quick);
      ssize_t n = ::recv(socket.fd(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        session.receive(std::string_view(buffer, static_cast<size_t>(n)));
        deadline = Clock::now() + timeout;
      } else if (n == 0) {
        session.connection_closed();
      } else if (errno != EAGAIN && errno != EINTR) {
        result.failure = std::string("read: ") + std::strerror(errno);
        return result;
      }
    }
  }
  if (session.failed()) {
    result.failure = "protocol error: " + session.failure();
    return result;
  }
  // ABORT/QUIT: best effort, the verdict is already known.
  if (!session.output().empty()) {
    (void)::send(socket.fd(), session.output().data(), session.output().size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  result.verdict = session.verdict();
  return result;
}

MilterOutcome run_milters(const std::vector<conf::Milter>& milters, const MilterJob& job,
                          int stop_fd) {
  MilterOutcome outcome;
  outcome.message = job.message;
  MilterVerdict& total = outcome.verdict;
  for (const conf::Milter& milter : milters) {
    MilterMessage facts = build_milter_message(outcome.message, job.context);
    Conversation c = converse(milter, facts, stop_fd);
    outcome.milters.push_back({milter.name, c.verdict, c.failure});
    if (!c.failure.empty()) {
      spdlog::warn("milter {}: message {}: {} (on_failure: {})", milter.name, job.message.id.value,
                   c.failure,
                   milter.on_failure == conf::MilterFailure::accept   ? "accept"
                   : milter.on_failure == conf::MilterFailure::reject ? "reject"
                                                                      : "tempfail");
      switch (c.interrupted ? conf::MilterFailure::tempfail : milter.on_failure) {
        case conf::MilterFailure::accept:
          continue;
        case conf::MilterFailure::reject:
          total.action = MilterAction::reject;
          total.reply = std::string(kMilterRejectReply);
          return outcome;
        case conf::MilterFailure::tempfail:
          total.action = MilterAction::tempfail;
          total.reply = std::string(kMilterTempfailReply);
          return outcome;
      }
    }
    const MilterVerdict& v = c.verdict;
    total.progress_reports += v.progress_reports;
    switch (v.action) {
      case MilterAction::proceed:
      case MilterAction::accept:
      case MilterAction::quarantine:
        apply_milter_modifications(outcome.message, v);
        total.modifications.insert(total.modifications.end(), v.modifications.begin(),
                                   v.modifications.end());
        total.rejected_recipients.insert(total.rejected_recipients.end(),
                                         v.rejected_recipients.begin(),
                                         v.rejected_recipients.end());
        if (v.action == MilterAction::quarantine) {
          total.action = MilterAction::quarantine;
          total.quarantine_reason = v.quarantine_reason;
        } else if (v.action == MilterAction::accept && total.action == MilterAction::proceed) {
          total.action = MilterAction::accept;
        }
        if (outcome.message.envelope.recipients.empty()) {
          total.action = MilterAction::discard;
          total.reply.clear();
          return outcome;
        }
        break;
      case MilterAction::reject:
      case MilterAction::tempfail:
      case MilterAction::replycode:
      case MilterAction::discard:
        total.action = v.action;
        total.reply = v.reply;
        return outcome;
    }
  }
  return outcome;
}

}  // namespace

MilterClient::MilterClient(std::vector<conf::Milter> milters, size_t worker_threads)
    : milters_(std::move(milters)) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (milters_.empty()) return;
  for (size_t i = 0; i < std::max<size_t>(worker_threads, 1); ++i) {
    workers_.emplace_back([this] { worker_loop(); });
  }
}

MilterClient::~MilterClient() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)::write(stop_fd_, &one, sizeof(one));
  }
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void MilterClient::run(std::shared_ptr<MilterJob> job, std::function<void(MilterOutcome)> done) {
  if (milters_.empty()) {
    MilterOutcome outcome;
    outcome.message = job->message;
    done(std::move(outcome));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back({std::move(job), std::move(done)});
  }
  wake_.notify_one();
}

MilterOutcome MilterClient::run_now(const MilterJob& job) {
  return run_milters(milters_, job, stop_fd_);
}

void MilterClient::worker_loop() {
  while (true) {
    Task task;
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
      stopping = stopping_;
    }
    MilterOutcome outcome;
    if (stopping) {
      outcome.message = task.job->message;
      outcome.verdict.action = MilterAction::tempfail;
      outcome.verdict.reply = std::string(kMilterTempfailReply);
    } else {
      outcome = run_milters(milters_, *task.job, stop_fd_);
    }
    task.done(std::move(outcome));
  }
}

}  // namespace ringmail::mta
