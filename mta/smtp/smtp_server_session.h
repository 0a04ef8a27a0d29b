// mta/smtp/smtp_server_session.h — the inbound ESMTP protocol machine (sans-IO).
//
// Owns: one client's SMTP dialogue, from greeting to QUIT: command parsing,
// sequencing, ESMTP extensions, DATA/BDAT streaming with limits, and the
// construction of the SpoolMessage that the spool writer makes durable.
// It never touches a socket, a clock or the disk: the event loop feeds it
// bytes and completions and carries out the SessionOutput it returns.
// Called from one shard thread only.
//
// SECURITY: faces the network. Every byte it is given is untrusted; it keeps
// bounded buffers, never ends DATA on anything but <CRLF>.<CRLF>, and answers
// malformed input with a reply, never with an abort.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "policy/submission_limiter.h"
#include "queue/spool_message.h"

namespace ringmail::mta {

// feedback: bounces and reports for one domain, from anyone (no AUTH, no
// relaying); its messages go to the feedback processor, not the spool.
enum class SessionMode { submission, relay, feedback };

// Asked at each MAIL FROM whether the session's tenant may submit one more
// message (policy.tenants[].max_messages); an admitted answer has counted
// the message. Implementations are thread-safe and never block: the
// inbound server's asks the tenant submission limiter with its clock.
class SubmissionGate {
 public:
  virtual ~SubmissionGate() = default;
  virtual policy::SubmissionVerdict admit_message(std::string_view tenant) = 0;
};

// Copied from the Config when the connection is accepted, so that a reload
// never changes the rules under a session in progress.
struct SessionSettings {
  std::string hostname;  // greeting and Received: by
  std::string listener_name;
  SessionMode mode = SessionMode::relay;
  // Mode feedback: the one domain RCPT TO takes (policy.return_path.domain,
  // lower case); any other is refused with 550 5.1.1.
  std::string feedback_domain;
  // Mode feedback: also policy.list_unsubscribe.mailto_domain ("" : none),
  // whose u-TOKEN addresses unsubscribe.
  std::string unsubscribe_domain;
  bool starttls_available = false;  // listener tls: starttls and a TLS context exists
  bool require_tls_for_auth = true;
  bool auth_available = false;  // a users_file is configured
  uint64_t max_message_size = 50ull << 20;
  uint32_t max_recipients = 1000;
  std::string campaign_header = "X-Campaign-ID";
  // Tenant submission limits; null when no tenant has max_messages (then
  // MAIL FROM asks nothing). Outlives every session given it.
  SubmissionGate* submission_gate = nullptr;
  // DKIM body canonicalizations in use: their bh= is computed while the
  // body streams in (SessionOutput::dkim_body_hash_*).
  bool dkim_hash_relaxed_body = false;
  bool dkim_hash_simple_body = false;
  // Deadlines that a client cannot extend by trickling bytes (the idle
  // timeout, which every byte resets, is the event loop's). A command line
  // (RFC 5321 §4.5.3.2) must be complete within command_timeout of its
  // first byte; a STARTTLS handshake must end within tls_handshake_timeout;
  // a message body must average min_data_rate octets/s (0: no minimum)
  // once data_rate_grace has passed since DATA's 354 or the first BDAT.
  std::chrono::milliseconds command_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds tls_handshake_timeout = std::chrono::seconds(10);
  uint64_t min_data_rate = 1024;
  std::chrono::milliseconds data_rate_grace = std::chrono::seconds(30);
};

struct ConnectionInfo {
  std::string peer_ip;  // textual, no brackets
  uint16_t peer_port = 0;
  std::string local_ip;
  uint16_t local_port = 0;
  // The relay_networks entry the peer matched ("127.0.0.0/8"), "" if none.
  // It is the tenant of mail accepted on a relay listener.
  std::string relay_network;
  bool implicit_tls = false;    // TLS is already up when start() is called
  std::string tls_description;  // set with implicit_tls: "TLSv1.3 <cipher>"
  int64_t now_unix_ms = 0;      // connection time
};

// Credentials for the event loop to verify (crypt(3) is too slow for a shard).
struct AuthRequest {
  std::string authzid;
  std::string username;
  std::string password;
  std::string mechanism;  // "PLAIN" or "LOGIN"
  std::string peer_ip;
};

struct AuthResult {
  enum class Status { ok, invalid_credentials, temporary_failure };
  Status status = Status::invalid_credentials;
};

struct CommitResult {
  // rejected: a filter (milter) refused the message; `reply` is its complete
  // SMTP reply ("550 5.7.1 text", "451 4.7.1 text"), sent as is.
  enum class Status { committed, spool_full, failed, rejected };
  Status status = Status::failed;
  std::string detail;  // for logs, never sent to the client
  std::string reply;   // with rejected only
};

// What the event loop must do after a call. Replies are plaintext; the loop
// encrypts them when TLS is up.
struct SessionOutput {
  std::string replies;
  // After flushing `replies` in clear text, start a server-side TLS
  // handshake and call tls_established() when it completes.
  bool start_tls = false;
  // After flushing `replies`, close the connection.
  bool close = false;
  // A complete message to make durable; the session waits (buffering any
  // further input) until commit_finished() is called.
  std::unique_ptr<queue::SpoolMessage> commit;
  // With commit: the DKIM bh= of its body per canonicalization, computed as
  // the body arrived; "" when not asked for or not applicable (the signer
  // then hashes the body itself).
  std::string dkim_body_hash_relaxed;
  std::string dkim_body_hash_simple;
  // Credentials to verify; the session waits until auth_finished().
  std::optional<AuthRequest> auth;
};

class SmtpServerSession {
 public:
  SmtpServerSession(SessionSettings settings, ConnectionInfo connection);
  ~SmtpServerSession();
  SmtpServerSession(const SmtpServerSession&) = delete;
  SmtpServerSession& operator=(const SmtpServerSession&) = delete;

  // The 220 greeting (after the TLS handshake for implicit TLS).
  SessionOutput start();
  // Bytes from the client (plaintext). May be any split of the stream.
  // Empty: bytes arrived that gave no plaintext yet (a partial TLS record);
  // like the first byte of a command line, that starts its deadline.
  SessionOutput receive(std::string_view bytes);
  // The STARTTLS handshake completed: the session forgets EHLO, envelope and
  // AUTH state (RFC 3207 §4.2) and expects a new EHLO.
  SessionOutput tls_established(std::string tls_description);
  SessionOutput auth_finished(const AuthResult& result);
  // now_unix_ms is only used to stamp logs; the message was already built.
  SessionOutput commit_finished(const CommitResult& result);
  // Idle timeout: 421 4.4.2 and close.
  SessionOutput idle_timeout();
  // Server stopping: 421 4.3.2 and close (unless waiting for a commit).
  SessionOutput shutdown();
  // Checks the deadlines of SessionSettings against the time last given to
  // set_now(); on expiry 421 4.4.2 and close (a STARTTLS handshake: close
  // without a reply). Never fires while waiting for a commit or an AUTH
  // check. The loop calls it periodically; it is cheap.
  SessionOutput check_deadlines();

  // True while a commit or an auth check is outstanding.
  bool waiting() const;
  // True in the middle of a transaction (after MAIL, before its end).
  bool in_transaction() const;
  const std::string& authenticated_user() const;

  // The loop sets the wall clock before each call (used for Received:,
  // Date: and metadata) so the session stays deterministic in tests.
  void set_now(int64_t unix_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ringmail::mta
