#include "admin-api/admin_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "runtime/listen_socket.h"

namespace ringmail::admin {

namespace {

using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReply = 64 * 1024;

std::string x509_name(X509_NAME* name) {
  if (!name) return "";
  char buf[512];
  X509_NAME_oneline(name, buf, sizeof buf);
  return buf;
}

// One blocking SMTP dialogue with a deadline per step.
class Dialogue {
 public:
  ~Dialogue() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }

  bool connect(const std::string& ip, uint16_t port, const std::optional<conf::IpAddress>& source,
               std::string* error) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!runtime::socket_address(ip, port, &ss, &len)) {
      *error = ip + " is not an IP address";
      return false;
    }
    const int family = ss.ss_family;
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return fail(error, "socket");
    if (source && source->family == family) {
      sockaddr_storage src{};
      socklen_t src_len = 0;
      if (family == AF_INET) {
        auto& sin = reinterpret_cast<sockaddr_in&>(src);
        sin.sin_family = AF_INET;
        std::memcpy(&sin.sin_addr, source->bytes, 4);
        src_len = sizeof sin;
      } else {
        auto& sin6 = reinterpret_cast<sockaddr_in6&>(src);
        sin6.sin6_family = AF_INET6;
        std::memcpy(&sin6.sin6_addr, source->bytes, 16);
        src_len = sizeof sin6;
      }
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), src_len) != 0)
        return fail(error, "bind to source " + source->text);
    }
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS)
      return fail(error, "connect to " + ip);
    if (!wait(POLLOUT)) {
      *error = "connect to " + ip + ": timed out";
      return false;
    }
    int so_error = 0;
    socklen_t so_len = sizeof so_error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
    if (so_error != 0) {
      *error = "connect to " + ip + ": " + std::strerror(so_error);
      return false;
    }
    return true;
  }

  // One reply (all its lines); code 0 on a failure, with *error.
  int reply(std::vector<std::string>* lines, std::string* error) {
    lines->clear();
    for (;;) {
      size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        if (buffer_.size() > kMaxReply) {
          *error = "reply too long";
          return 0;
        }
        if (!fill(error)) return 0;
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 2);
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0]))) {
        *error = "malformed reply: " + line.substr(0, 200);
        return 0;
      }
      lines->push_back(line);
      if (line.size() == 3 || line[3] != '-') return std::atoi(line.substr(0, 3).c_str());
    }
  }

  bool send(const std::string& text, std::string* error) {
    size_t done = 0;
    while (done < text.size()) {
      if (!wait(POLLOUT)) {
        *error = "timed out sending";
        return false;
      }
      const int n =
          ssl_
              ? SSL_write(ssl_, text.data() + done, static_cast<int>(text.size() - done))
              : static_cast<int>(::send(fd_, text.data() + done, text.size() - done, MSG_NOSIGNAL));
      if (n <= 0) {
        if (!ssl_ && (errno == EAGAIN || errno == EINTR)) continue;
        if (ssl_ && SSL_get_error(ssl_, n) == SSL_ERROR_WANT_WRITE) continue;
        *error = "connection lost while sending";
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // STARTTLS's handshake; fills the TLS description and the certificate.
  bool start_tls(const std::string& host, ordered_json* out, std::string* error) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) return fail(error, "SSL_CTX_new");
    SSL_CTX_set_default_verify_paths(ctx_);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // verified below, reported, not enforced
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!host.empty() && inet_addr(host.c_str()) == INADDR_NONE) {
      SSL_set_tlsext_host_name(ssl_, host.c_str());
      SSL_set1_host(ssl_, host.c_str());
    }
    for (;;) {
      const int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      const int e = SSL_get_error(ssl_, rc);
      if ((e == SSL_ERROR_WANT_READ && wait(POLLIN)) ||
          (e == SSL_ERROR_WANT_WRITE && wait(POLLOUT)))
        continue;
      char buf[256];
      ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
      *error = std::string("TLS handshake failed: ") + buf;
      return false;
    }
    (*out)["tls"] = std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert) {
      (*out)["certificate"] = ordered_json{
          {"subject", x509_name(X509_get_subject_name(cert))},
          {"issuer", x509_name(X509_get_issuer_name(cert))},
          {"verified", SSL_get_verify_result(ssl_) == X509_V_OK},
          {"verify_result", X509_verify_cert_error_string(SSL_get_verify_result(ssl_))}};
      X509_free(cert);
    }
    return true;
  }

 private:
  bool fail(std::string* error, const std::string& what) {
    *error = what + ": " + std::strerror(errno);
    return false;
  }

  bool wait(short events) {
    const auto deadline = Clock::now() + SmtpProber::kStepTimeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  }

  bool fill(std::string* error) {
    char buf[4096];
    for (;;) {
      if (ssl_ && SSL_pending(ssl_) == 0 && !wait(POLLIN)) {
        *error = "timed out waiting for a reply";
        return false;
      }
      if (!ssl_ && !wait(POLLIN)) {
        *error = "timed out waiting for a reply";
        return false;
      }
      const int n = ssl_ ? SSL_read(ssl_, buf, sizeof buf)
                         : static_cast<int>(::recv(fd_, buf, sizeof buf, 0));
      if (n > 0) {
        buffer_.append(buf, static_cast<size_t>(n));
        return true;
      }
      if (!ssl_ && n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (ssl_ && SSL_get_error(ssl_, n) == SSL_ERROR_WANT_READ) continue;
      *error = "connection closed by the server";
      return false;
    }
  }

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& l : lines) text += (text.empty() ? "" : "\n") + l;
  return text;
}

}  // namespace

ordered_json SmtpProber::probe(const std::string& domain) {
  const auto started = Clock::now();
  std::shared_ptr<const conf::Config> config = daemon_.config();
  ordered_json out{{"domain", domain},
                   {"site", nullptr},
                   {"mx", nullptr},
                   {"address", nullptr},
                   {"source", "default"},
                   {"banner", nullptr},
                   {"extensions", ordered_json::array()},
                   {"tls", nullptr},
                   {"certificate", nullptr},
                   {"milliseconds", 0},
                   {"error", nullptr}};
  auto finish = [&](std::string error) {
    if (!error.empty()) out["error"] = std::move(error);
    out["milliseconds"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    return out;
  };
  const policy::EgressChoice source = default_source(*config);
  out["source"] = source.name;
  const Destination destination = destinations_.find(*config, domain);
  if (destination.outcome != Destination::Outcome::found) return finish(destination.error);
  out["site"] = destination.site;
  // The first host with an address (every MX host has one, a route's
  // smarthost is its own address).
  std::string host, ip;
  for (const mta::MxHost& mx : destination.hosts) {
    if (mx.addresses.empty()) continue;
    host = mx.name;
    ip = mx.addresses.front();
    out["mx"] = mx.name;
    break;
  }
  if (ip.empty()) return finish("no MX host of " + domain + " has an address");
  const uint16_t port = destination.port;
  out["address"] = ip + ":" + std::to_string(port);
  Dialogue d;
  std::string error;
  std::vector<std::string> lines;
  if (!d.connect(ip, port, source.address, &error)) return finish(error);
  int code = d.reply(&lines, &error);
  if (code == 0) return finish("greeting: " + error);
  out["banner"] = joined(lines);
  if (code != 220) return finish("greeting refused: " + joined(lines));
  auto ehlo = [&]() -> bool {
    if (!d.send("EHLO " + config->hostname + "\r\n", &error)) return false;
    code = d.reply(&lines, &error);
    if (code != 250) {
      if (code != 0) error = "EHLO refused: " + joined(lines);
      return false;
    }
    ordered_json extensions = ordered_json::array();
    for (size_t i = 1; i < lines.size(); ++i) extensions.push_back(lines[i].substr(4));
    out["extensions"] = extensions;
    return true;
  };
  if (!ehlo()) return finish("EHLO: " + error);
  bool starttls = false;
  for (const auto& e : out["extensions"]) {
    std::string upper = e.get<std::string>();
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    starttls = starttls || upper == "STARTTLS";
  }
  if (starttls && config->delivery.tls != conf::OutboundTls::none) {
    if (!d.send("STARTTLS\r\n", &error)) return finish("STARTTLS: " + error);
    code = d.reply(&lines, &error);
    if (code != 220) return finish("STARTTLS refused: " + (code ? joined(lines) : error));
    if (!d.start_tls(host, &out, &error)) return finish(error);
    if (!ehlo()) return finish("EHLO after STARTTLS: " + error);
  }
  if (d.send("QUIT\r\n", &error)) d.reply(&lines, &error);
  return finish("");
}

}  // namespace ringmail::admin
