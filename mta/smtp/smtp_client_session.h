// mta/smtp/smtp_client_session.h — the outbound ESMTP protocol machine (sans-IO).
//
// Owns: one outbound connection's SMTP dialogue from the greeting to QUIT:
// EHLO (HELO fallback), capability parsing, opportunistic STARTTLS,
// transactions with PIPELINING (MAIL, every RCPT and DATA in one flight),
// CHUNKING (BDAT), SIZE/8BITMIME/SMTPUTF8/DSN requirements, dot-stuffing,
// multi-line replies, per-recipient results, and connection reuse (after a
// transaction the session is ready for the next one). It never touches a
// socket, a clock or TLS: the event loop feeds it bytes, arms the timeout it
// names (RFC 5321 §4.5.3.2 stages), does the TLS handshake when asked, and
// carries out the ClientOutput it returns. One thread (the delivery loop).
//
// SECURITY: faces the network. Replies are untrusted: lines and replies are
// bounded, garbage is a protocol error that ends the session with a local
// failure, never an abort.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mta/smtp/smtp_client_reply.h"

namespace ringmail::mta {

// RFC 5321 §4.5.3.2 defaults; the loop arms the one waiting_for() names.
struct ClientTimeouts {
  std::chrono::milliseconds greeting{std::chrono::minutes(5)};
  std::chrono::milliseconds ehlo{std::chrono::minutes(5)};
  std::chrono::milliseconds starttls{std::chrono::minutes(2)};  // reply to STARTTLS and handshake
  std::chrono::milliseconds mail{std::chrono::minutes(5)};
  std::chrono::milliseconds rcpt{std::chrono::minutes(5)};
  std::chrono::milliseconds data_init{std::chrono::minutes(2)};   // the 354
  std::chrono::milliseconds data_block{std::chrono::minutes(3)};  // BDAT chunk replies
  std::chrono::milliseconds data_term{std::chrono::minutes(10)};  // reply to "." / BDAT LAST
  std::chrono::milliseconds rset{std::chrono::minutes(2)};
  std::chrono::milliseconds quit{std::chrono::seconds(30)};
};

struct ClientSettings {
  std::string helo_name;  // EHLO/HELO argument (config hostname)
  // Opportunistic STARTTLS: use it when the server offers it. The loop only
  // sets this when it has a client TLS context.
  bool starttls = true;
  // Refuse to send in clear text: no STARTTLS offered (or starttls false)
  // ends the session with a local transient failure.
  bool require_tls = false;
  ClientTimeouts timeouts;
};

struct OutboundRecipient {
  std::string address;     // without brackets
  std::string dsn_notify;  // RFC 3461 NOTIFY= value, "" if none
  std::string dsn_orcpt;   // RFC 3461 ORCPT= value, "" if none
};

// One transaction: one message to one or more recipients at one site.
struct OutboundMessage {
  std::string sender;  // "" is the null sender
  std::vector<OutboundRecipient> recipients;
  std::string body_type = "7BIT";  // 7BIT | 8BITMIME | BINARYMIME
  bool smtputf8 = false;
  std::string dsn_ret;    // FULL | HDRS | ""
  std::string dsn_envid;  // "" if none
  // The RFC 5322 message, CRLF lines, not dot-stuffed (the session stuffs
  // for DATA and sends it as is for BDAT). May lack a final CRLF.
  std::shared_ptr<const std::string> content;
  // Header fields for this transaction only, sent in front of `content`
  // (complete CRLF lines, or ""): e.g. X-Ringmail-Ref, which differs per
  // recipient while the stored content is shared.
  std::string header_prefix;
};

// The outcome of one transaction, one reply per recipient in the order of
// OutboundMessage::recipients: the RCPT reply when RCPT failed, otherwise
// the reply to the end of data (or the MAIL reply when MAIL failed, or a
// local reply when the message could not be sent at all, e.g. SIZE, 8-bit
// content to a 7-bit server, SMTPUTF8, a timeout or a lost connection).
struct TransactionResult {
  std::vector<SmtpReply> recipients;
  bool data_sent = false;  // the content went on the wire
};

enum class ClientWait {
  none,  // nothing outstanding (ready, or closed)
  greeting,
  ehlo,
  starttls,  // the reply to STARTTLS, then the loop's handshake
  mail,
  rcpt,
  data_init,
  data_block,
  data_term,
  rset,
  quit,
};

struct ClientOutput {
  std::string send;  // plaintext for the wire (the loop encrypts once TLS is up)
  // After flushing `send`, start a client TLS handshake and call
  // tls_established() or tls_failed().
  bool start_tls = false;
  // After flushing `send`, close the connection. Further calls do nothing.
  bool close = false;
  // The session is idle after EHLO or after a transaction: the loop may
  // call send_message() or quit().
  bool ready = false;
  // The transaction started by send_message() ended (every recipient has
  // its reply). Comes at most once per send_message().
  std::optional<TransactionResult> finished;
  // The session cannot go on (greeting refused, EHLO and HELO refused,
  // STARTTLS required and missing, protocol error, timeout, lost
  // connection). Set together with close. When it happens before the first
  // transaction, the loop typically tries the next MX; `finished` carries
  // the results of a transaction it interrupted.
  std::optional<SmtpReply> failure;
};

class SmtpClientSession {
 public:
  explicit SmtpClientSession(ClientSettings settings);
  ~SmtpClientSession();
  SmtpClientSession(const SmtpClientSession&) = delete;
  SmtpClientSession& operator=(const SmtpClientSession&) = delete;

  // The TCP connection is up: wait for the 220 greeting.
  ClientOutput connected();
  // Bytes from the server (plaintext), any split of the stream.
  ClientOutput receive(std::string_view bytes);
  // The STARTTLS handshake finished: the session sends EHLO again and
  // forgets what it knew of the server (RFC 3207 §4.2).
  ClientOutput tls_established(std::string description);
  ClientOutput tls_failed(std::string why);
  // Only when ready. Starts one transaction; the session keeps `message`
  // until it is finished.
  ClientOutput send_message(std::shared_ptr<const OutboundMessage> message);
  // Only when ready: QUIT, then close.
  ClientOutput quit();
  // The wait named by waiting_for() lasted longer than timeout_for_wait().
  ClientOutput timeout();
  // The connection broke (read error, EOF, send error).
  ClientOutput connection_lost(std::string why);

  ClientWait waiting_for() const;
  std::chrono::milliseconds timeout_for_wait() const;  // of waiting_for()
  bool is_ready() const;
  bool is_closed() const;
  const ServerCapabilities& capabilities() const;
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" after STARTTLS, "" in clear text.
  const std::string& tls_description() const;
  // The greeting's first line, e.g. "mx.example.net ESMTP", for logs.
  const std::string& greeting() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

const char* to_string(ClientWait wait);

}  // namespace ringmail::mta
