// mta/smtp/tls_context.h — TLS with OpenSSL over memory BIOs, for the inbound
// server and the outbound client (STARTTLS).
//
// Owns: TlsContext, one SSL_CTX: either a server context built from the
// configured certificate chain and private key (TLS 1.2 and 1.3 only,
// OpenSSL's secure cipher defaults minus the weak leftovers, session tickets
// on), or a client context for opportunistic STARTTLS; and TlsSession, the
// TLS state of one connection in either role. A TlsSession never touches a
// socket: the event loop hands it the bytes it read (feed()) and sends what
// take_output() returns, so the io_uring shard does all the I/O.
//
// Threads: a TlsContext is immutable after load_server() or create_client()
// and may be shared by every shard (SSL_CTX is thread-safe for creating
// sessions). A TlsSession belongs to the one shard thread that owns its
// connection.
//
// SECURITY: faces the network. Every byte fed is untrusted; malformed
// records, old protocol versions and garbage end in TlsStatus::failed with
// an alert queued in take_output(), never in an abort. Memory per session is
// bounded by OpenSSL's record limits plus what the caller leaves in the
// output buffer. The client does not authenticate the server (opportunistic
// TLS, RFC 3207 and RFC 7435): it defeats passive eavesdropping only; an
// active attacker can impersonate the server or strip STARTTLS. No
// durability promises.
#pragma once

#include <openssl/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace ringmail::mta {

class TlsContext {
 public:
  // Reads the PEM certificate chain (leaf first) and the PEM private key and
  // checks that they match. On failure returns null and sets *error to one
  // line naming the file and OpenSSL's reason. Called at start-up and reload.
  static std::shared_ptr<TlsContext> load_server(const std::filesystem::path& certificate,
                                                 const std::filesystem::path& private_key,
                                                 std::string* error);
  // The outbound client context: TLS 1.2 and 1.3, OpenSSL's default ciphers
  // (the widest set a receiving MTA may need), no client certificate and no
  // peer verification (SSL_VERIFY_NONE): opportunistic STARTTLS encrypts
  // without authenticating (RFC 7435), and a self-signed or mismatched MX
  // certificate is the common case. No session cache, so nothing is shared
  // between connections. Null with *error only if OpenSSL cannot allocate.
  static std::shared_ptr<TlsContext> create_client(std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool is_client() const { return client_; }

 private:
  TlsContext(SSL_CTX* ctx, bool client) : ctx_(ctx), client_(client) {}
  SSL_CTX* ctx_;
  bool client_;
};

enum class TlsStatus {
  ok,      // nothing wrong; more input may be needed
  failed,  // handshake or record error: send take_output() (an alert), then close
  closed,  // the peer sent close_notify: send take_output(), then close
};

class TlsSession {
 public:
  // Selects the client-mode constructor: TlsSession(context, ClientMode{}, mx).
  struct ClientMode {
    explicit ClientMode() = default;
  };

  // Server mode. The context must outlive the session (hold its shared_ptr).
  explicit TlsSession(const TlsContext& context);
  // Client mode, for a client context (create_client()); a server context
  // gives a failed session. The constructor starts the handshake: the
  // ClientHello is waiting in take_output() on return, to be sent right
  // after the server's 220 reply to STARTTLS. `server_name` (the MX host
  // name) is sent as SNI unless it is empty, an IP address or an address
  // literal ("[192.0.2.1]"); a trailing dot is dropped.
  TlsSession(const TlsContext& context, ClientMode, std::string_view server_name);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Network bytes from the peer (any split). Drives the handshake while it
  // is not done and appends any decrypted application data to
  // plaintext_out. After failed or closed, further calls return the same.
  TlsStatus feed(std::string_view ciphertext, std::string& plaintext_out);
  // Encrypts application data into the output buffer. Only valid after the
  // handshake is done (returns failed before, without queuing anything).
  TlsStatus write(std::string_view plaintext);
  // Queues a close_notify alert. Idempotent.
  void shutdown();
  // Ciphertext waiting to be sent: handshake records, alerts, app data.
  std::string take_output();
  bool has_output() const;

  bool handshake_done() const { return handshake_done_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done, else "".
  std::string description() const;
  // The OpenSSL error of the last failure, for logs ("" if none).
  const std::string& error() const { return error_; }

 private:
  bool attach(const TlsContext& context);
  TlsStatus fail(const char* what);
  TlsStatus drive_handshake();

  SSL* ssl_ = nullptr;
  BIO* network_in_ = nullptr;   // owned by ssl_; feed() writes here
  BIO* network_out_ = nullptr;  // owned by ssl_; take_output() reads here
  bool handshake_done_ = false;
  TlsStatus state_ = TlsStatus::ok;
  std::string error_;
};

}  // namespace ringmail::mta
