// mta/smtp/tls_context.cc — see tls_context.h.
#include "mta/smtp/tls_context.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

namespace ringmail::mta {

namespace {

// TLS 1.2 suites: forward-secret AEAD only (Mozilla "intermediate"); the
// TLS 1.3 suites are OpenSSL's defaults, which are all good.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

constexpr unsigned char kSessionIdContext[] = "ringmail-smtp";

// Drains the thread's OpenSSL error queue into one line.
std::string drain_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text;
}

// A readable reason for a file OpenSSL could not load: a missing or
// unreadable file is named as such rather than as a PEM decoding error.
std::string file_problem(const std::filesystem::path& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) return std::strerror(errno);
  return {};
}

// The SNI host name for `server_name`, or "" when it is not a host name:
// RFC 6066 3 allows neither IP addresses nor a trailing dot.
std::string sni_host_name(std::string_view server_name) {
  if (server_name.ends_with('.')) server_name.remove_suffix(1);
  if (server_name.empty() || server_name.size() > 253) return {};
  const std::string name(server_name);
  unsigned char address[16];
  if (inet_pton(AF_INET, name.c_str(), address) == 1 ||
      inet_pton(AF_INET6, name.c_str(), address) == 1) {
    return {};
  }
  const bool host_name_characters = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
  return host_name_characters ? name : std::string();
}

}  // namespace

std::shared_ptr<TlsContext> TlsContext::load_server(const std::filesystem::path& certificate,
                                                    const std::filesystem::path& private_key,
                                                    std::string* error) {
  auto set_error = [&](std::string text) {
    if (error) *error = std::move(text);
    return nullptr;
  };
  ERR_clear_error();
  if (std::string problem = file_problem(certificate); !problem.empty()) {
    return set_error("cannot read certificate " + certificate.string() + ": " + problem);
  }
  if (std::string problem = file_problem(private_key); !problem.empty()) {
    return set_error("cannot read private key " + private_key.string() + ": " + problem);
  }

  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (!raw) return set_error("SSL_CTX_new failed: " + drain_errors());
  // Owned from here on, so that every early return frees it.
  std::shared_ptr<TlsContext> context(new TlsContext(raw, false));

  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(
      raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections should not keep 34 KiB of record buffers each.
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(raw, kTls12Ciphers) != 1) {
    return set_error("cannot set TLS 1.2 ciphers: " + drain_errors());
  }
  SSL_CTX_set_dh_auto(raw, 1);
  // Session resumption: tickets (on by default, stated here on purpose) and
  // a server-side cache keyed by this context.
  SSL_CTX_clear_options(raw, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(raw, kSessionIdContext, sizeof kSessionIdContext - 1);

  if (SSL_CTX_use_certificate_chain_file(raw, certificate.c_str()) != 1) {
    return set_error("cannot load certificate " + certificate.string() + ": " + drain_errors());
  }
  if (SSL_CTX_use_PrivateKey_file(raw, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      return set_error("private key " + private_key.string() + " does not match certificate " +
                       certificate.string() + ": " + drain_errors());
    }
    return set_error("cannot load private key " + private_key.string() + ": " + drain_errors());
  }
  if (SSL_CTX_check_private_key(raw) != 1) {
    return set_error("private key " + private_key.string() + " does not match certificate " +
                     certificate.string() + ": " + drain_errors());
  }
  return context;
}

std::shared_ptr<TlsContext> TlsContext::create_client(std::string* error) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (!raw) {
    if (error) *error = "SSL_CTX_new failed: " + drain_errors();
    return nullptr;
  }
  std::shared_ptr<TlsContext> context(new TlsContext(raw, true));
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  // Opportunistic TLS (RFC 7435): any certificate will do; see the header.
  SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  // Sessions are not resumed: a cache would have to be keyed by MX host and
  // shared across shards, which is not worth it for one handshake per
  // connection.
  SSL_CTX_set_session_cache_mode(raw, SSL_SESS_CACHE_OFF);
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

bool TlsSession::attach(const TlsContext& context) {
  ssl_ = SSL_new(context.native());
  network_in_ = BIO_new(BIO_s_mem());
  network_out_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !network_in_ || !network_out_) {
    BIO_free(network_in_);
    BIO_free(network_out_);
    network_in_ = network_out_ = nullptr;
    fail("cannot create TLS session");
    return false;
  }
  // An empty input BIO means "wait for more bytes", not end of stream.
  BIO_set_mem_eof_return(network_in_, -1);
  SSL_set_bio(ssl_, network_in_, network_out_);
  return true;
}

TlsSession::TlsSession(const TlsContext& context) {
  if (!attach(context)) return;
  SSL_set_accept_state(ssl_);
}

TlsSession::TlsSession(const TlsContext& context, ClientMode, std::string_view server_name) {
  if (!context.is_client()) {
    error_ = "TLS client session needs a client context";
    state_ = TlsStatus::failed;
    return;
  }
  if (!attach(context)) return;
  SSL_set_connect_state(ssl_);
  if (std::string host = sni_host_name(server_name); !host.empty()) {
    ERR_clear_error();
    if (SSL_set_tlsext_host_name(ssl_, host.c_str()) != 1) {
      fail("cannot set TLS server name");
      return;
    }
  }
  // Writes the ClientHello into the output BIO; the reply comes via feed().
  drive_handshake();
}

TlsSession::~TlsSession() { SSL_free(ssl_); }  // frees both BIOs

TlsStatus TlsSession::fail(const char* what) {
  std::string detail = drain_errors();
  error_ = what;
  if (!detail.empty()) error_ += ": " + detail;
  state_ = TlsStatus::failed;
  return state_;
}

TlsStatus TlsSession::drive_handshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    handshake_done_ = true;
    return TlsStatus::ok;
  }
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return TlsStatus::ok;
    case SSL_ERROR_ZERO_RETURN:
      state_ = TlsStatus::closed;
      return state_;
    default:
      return fail("TLS handshake failed");
  }
}

TlsStatus TlsSession::feed(std::string_view ciphertext, std::string& plaintext_out) {
  if (state_ != TlsStatus::ok) return state_;
  while (!ciphertext.empty()) {
    int chunk = static_cast<int>(std::min<size_t>(ciphertext.size(), INT_MAX));
    int written = BIO_write(network_in_, ciphertext.data(), chunk);
    if (written <= 0) return fail("cannot buffer TLS input");
    ciphertext.remove_prefix(static_cast<size_t>(written));
  }
  if (!handshake_done_) {
    if (drive_handshake() != TlsStatus::ok || !handshake_done_) return state_;
  }
  char buf[16384];
  for (;;) {
    ERR_clear_error();
    size_t got = 0;
    int rc = SSL_read_ex(ssl_, buf, sizeof buf, &got);
    if (rc == 1) {
      plaintext_out.append(buf, got);
      continue;
    }
    switch (SSL_get_error(ssl_, rc)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:
        return TlsStatus::ok;
      case SSL_ERROR_ZERO_RETURN:
        // Answer the peer's close_notify with ours before the loop closes.
        SSL_shutdown(ssl_);
        ERR_clear_error();
        state_ = TlsStatus::closed;
        return state_;
      default:
        return fail("TLS read failed");
    }
  }
}

TlsStatus TlsSession::write(std::string_view plaintext) {
  if (state_ != TlsStatus::ok) return state_;
  if (!handshake_done_) {
    error_ = "TLS write before the handshake completed";
    return TlsStatus::failed;
  }
  while (!plaintext.empty()) {
    ERR_clear_error();
    size_t chunk = std::min<size_t>(plaintext.size(), 1u << 30);
    size_t written = 0;
    if (SSL_write_ex(ssl_, plaintext.data(), chunk, &written) != 1) {
      return fail("TLS write failed");
    }
    plaintext.remove_prefix(written);
  }
  return TlsStatus::ok;
}

void TlsSession::shutdown() {
  if (!ssl_ || !handshake_done_ || state_ == TlsStatus::failed) return;
  if (SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::string TlsSession::take_output() {
  std::string out;
  if (!network_out_) return out;
  size_t pending = BIO_ctrl_pending(network_out_);
  if (pending == 0) return out;
  out.resize(pending);
  size_t got = 0;
  if (BIO_read_ex(network_out_, out.data(), pending, &got) != 1) got = 0;
  out.resize(got);
  return out;
}

bool TlsSession::has_output() const { return network_out_ && BIO_ctrl_pending(network_out_) > 0; }

std::string TlsSession::description() const {
  if (!handshake_done_) return {};
  std::string text = SSL_get_version(ssl_);
  text += ' ';
  text += SSL_get_cipher_name(ssl_);
  return text;
}

}  // namespace ringmail::mta
