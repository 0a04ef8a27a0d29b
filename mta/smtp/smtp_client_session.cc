#include "mta/smtp/smtp_client_session.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "mta/smtp/smtp_client_reply.h"
#include "mta/smtp/smtp_command.h"

namespace ringmail::mta {
namespace {

// Which reply the session waits for next. With PIPELINING the commands of
// later states are already on the wire; the state still names the reply
// that comes first.
enum class State {
  connecting,  // before connected()
  greeting,
  ehlo,
  helo,
  starttls,
  tls_handshake,  // the loop is doing it
  ready,
  mail,
  rcpt,
  data_init,  // the 354
  data_term,  // the reply to "." or to BDAT LAST
  rset,
  quit,
  closed,
};

const char* to_string(State s) {
  switch (s) {
    case State::connecting:
      return "connecting";
    case State::greeting:
      return "greeting";
    case State::ehlo:
      return "ehlo";
    case State::helo:
      return "helo";
    case State::starttls:
      return "starttls";
    case State::tls_handshake:
      return "tls_handshake";
    case State::ready:
      return "ready";
    case State::mail:
      return "mail";
    case State::rcpt:
      return "rcpt";
    case State::data_init:
      return "data_init";
    case State::data_term:
      return "data_term";
    case State::rset:
      return "rset";
    case State::quit:
      return "quit";
    case State::closed:
      return "closed";
  }
  return "?";
}

// Whether a session that must end says QUIT first: only when the dialogue
// is in step (a refusal), not after garbage, a timeout or a lost stream.
enum class Farewell { quit, none };

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

int reply_class(const SmtpReply& reply) { return reply.code / 100; }

// Envelope data comes from the spool or the injection API; a CR or LF in
// it would smuggle a command into the flight.
bool has_control_character(std::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// An ESMTP parameter value (xtext, NOTIFY list): printable, no space.
bool is_parameter_value(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '=') return false;
  }
  return true;
}

// The envelope in progress, from send_message() until the session is
// ready again (which may be after `finished`: pipelined replies to consume,
// RSET).
struct Transaction {
  std::shared_ptr<const OutboundMessage> message;
  std::vector<std::optional<SmtpReply>> results;  // per recipient, once final
  std::vector<size_t> sent;                       // recipients whose RCPT went out, in order
  size_t rcpt_replies = 0;                        // replies to `sent` read so far
  std::vector<size_t> accepted;                   // RCPT 250, waiting for the end of data
  bool pipelined = false;                         // every RCPT went with MAIL
  bool data_pipelined = false;                    // and DATA too
  bool use_bdat = false;
  bool binary = false;  // BODY=BINARYMIME
  bool mail_accepted = false;
  bool mail_refused = false;
  bool discard_final = false;  // "." went out only to end a 354 nobody needed
  bool data_sent = false;
  bool finished = false;  // ClientOutput::finished was handed out
};

}  // namespace

struct SmtpClientSession::Impl {
  ClientSettings settings;
  State state = State::connecting;
  ServerCapabilities caps;
  bool server_binarymime = false;
  bool tls = false;
  std::string tls_description;
  std::string greeting_text;
  SmtpReplyReader reader;
  std::optional<Transaction> txn;
  ClientOutput* out = nullptr;

  explicit Impl(ClientSettings s) : settings(std::move(s)) {}

  // ---- output ----
  void enter_state(State to) {
    if (spdlog::should_log(spdlog::level::trace)) {
      spdlog::trace("smtp client {}: {} -> {}", settings.helo_name, to_string(state),
                    to_string(to));
    }
    state = to;
  }
  void send(std::string_view bytes) { out->send.append(bytes); }
  void command(std::string_view line) {
    out->send.append(line);
    out->send.append("\r\n");
  }
  void close() {
    enter_state(State::closed);
    out->close = true;
    out->ready = false;
    reader.clear();
    txn.reset();
  }
  void become_ready() {
    txn.reset();
    enter_state(State::ready);
    out->ready = true;
  }

  // Hands out the results: recipients without a final reply get `rest`.
  void finish_transaction(const SmtpReply& rest) {
    if (!txn || txn->finished) return;
    TransactionResult result;
    result.recipients.reserve(txn->results.size());
    for (const std::optional<SmtpReply>& r : txn->results)
      result.recipients.push_back(r ? *r : rest);
    result.data_sent = txn->data_sent;
    txn->finished = true;
    out->finished = std::move(result);
  }
  void finish_transaction() { finish_transaction(SmtpReply::made_here(0, "4.3.0", "no reply")); }
  void resolve(const std::vector<size_t>& recipients, const SmtpReply& reply) {
    for (size_t i : recipients) txn->results[i] = reply;
  }
  void resolve_unresolved(const SmtpReply& reply) {
    for (std::optional<SmtpReply>& r : txn->results) {
      if (!r) r = reply;
    }
  }

  // The session cannot go on.
  void fail(const SmtpReply& why, Farewell farewell) {
    finish_transaction(why);
    out->failure = why;
    if (farewell == Farewell::quit) command("QUIT");
    close();
  }
  void protocol_error(const std::string& detail) {
    if (state == State::quit) return close();  // the server is done with us anyway
    fail(SmtpReply::made_here(0, "4.5.0", "protocol error: " + detail,
                              mail::BounceCategory::ProtocolErrors),
         Farewell::none);
  }

  // What the session waits for, for timeout and connection-loss texts.
  std::string stage() const {
    switch (state) {
      case State::connecting:
        return "the connection";
      case State::greeting:
        return "the greeting";
      case State::ehlo:
        return "the reply to EHLO";
      case State::helo:
        return "the reply to HELO";
      case State::starttls:
        return "the reply to STARTTLS";
      case State::tls_handshake:
        return "the TLS handshake";
      case State::ready:
        return "a command to send";
      case State::mail:
        return "the reply to MAIL";
      case State::rcpt:
        return "the reply to RCPT";
      case State::data_init:
        return "the reply to DATA";
      case State::data_term:
        return txn && txn->use_bdat ? "the reply to BDAT" : "the reply to the end of data";
      case State::rset:
        return "the reply to RSET";
      case State::quit:
        return "the reply to QUIT";
      case State::closed:
        return "nothing";
    }
    return "?";
  }

  // ---- input ----
  void pump() {
    while (state != State::closed) {
      if (state == State::tls_handshake) {
        // Anything after the 220 was sent before TLS and must not be read
        // as if it came through it (CVE-2011-0411 in reverse).
        if (reader.buffered() > 0) protocol_error("data after the 220 reply to STARTTLS");
        return;
      }
      ReplyLines raw;
      switch (reader.next(&raw)) {
        case SmtpReplyReader::Status::incomplete:
          return;
        case SmtpReplyReader::Status::error:
          protocol_error(reader.error());
          return;
        case SmtpReplyReader::Status::reply:
          on_reply(raw);
          break;
      }
    }
  }

  void on_reply(const ReplyLines& raw) {
    SmtpReply reply = make_reply(raw);
    // RFC 5321 §3.8: 421 may answer any command, and the server closes.
    if (reply.code == 421 && state != State::quit && state != State::greeting &&
        state != State::connecting) {
      return fail(reply, Farewell::none);
    }
    switch (state) {
      case State::connecting:
      case State::greeting:
        return on_greeting(raw, reply);
      case State::ehlo:
        return on_ehlo(raw, reply);
      case State::helo:
        return on_helo(reply);
      case State::starttls:
        return on_starttls(reply);
      case State::tls_handshake:
        return protocol_error("reply during the TLS handshake");
      case State::ready:
        return protocol_error("reply while no command was outstanding: " + reply.to_string());
      case State::mail:
        return on_mail(reply);
      case State::rcpt:
        return on_rcpt(reply);
      case State::data_init:
        return on_data_init(reply);
      case State::data_term:
        return on_data_term(reply);
      case State::rset:
        return on_rset(reply);
      case State::quit:
        return close();
      case State::closed:
        return;
    }
  }

  // ---- greeting, EHLO, STARTTLS ----
  void send_ehlo() {
    command("EHLO " + settings.helo_name);
    enter_state(State::ehlo);
  }

  void on_greeting(const ReplyLines& raw, const SmtpReply& reply) {
    greeting_text = raw.lines.empty() ? std::string() : raw.lines.front();
    if (reply.code == 220) return send_ehlo();
    if (reply_class(reply) == 4 || reply_class(reply) == 5) {
      // RFC 5321 §3.1: after a 554 greeting the client should send QUIT.
      return fail(reply, reply.code == 421 ? Farewell::none : Farewell::quit);
    }
    protocol_error("unexpected greeting: " + reply.to_string());
  }

  void on_ehlo(const ReplyLines& raw, const SmtpReply& reply) {
    switch (reply_class(reply)) {
      case 2: {
        EhloCapabilities parsed = parse_ehlo_capabilities(raw);
        caps = parsed.capabilities;
        server_binarymime = parsed.binarymime;
        return after_hello();
      }
      case 5:  // 500/502/504/550: an RFC 821 server
        command("HELO " + settings.helo_name);
        return enter_state(State::helo);
      case 4:
        return fail(reply, Farewell::quit);
      default:
        return protocol_error("unexpected reply to EHLO: " + reply.to_string());
    }
  }

  void on_helo(const SmtpReply& reply) {
    switch (reply_class(reply)) {
      case 2:
        caps = ServerCapabilities{};
        server_binarymime = false;
        return after_hello();
      case 4:
      case 5:
        return fail(reply, Farewell::quit);
      default:
        return protocol_error("unexpected reply to HELO: " + reply.to_string());
    }
  }

  void after_hello() {
    if (!tls && caps.starttls && settings.starttls) {
      command("STARTTLS");
      return enter_state(State::starttls);
    }
    if (!tls && settings.require_tls) {
      std::string why = caps.starttls ? "TLS is required but STARTTLS is not enabled here"
                                      : "TLS is required but the server does not offer STARTTLS";
      return fail(SmtpReply::made_here(0, "4.7.10", why), Farewell::quit);
    }
    become_ready();
  }

  void on_starttls(const SmtpReply& reply) {
    if (reply.code == 220) {
      out->start_tls = true;
      return enter_state(State::tls_handshake);
    }
    if (settings.require_tls) {
      return fail(
          SmtpReply::made_here(0, "4.7.10",
                               "TLS is required but STARTTLS was refused: " + reply.to_string()),
          Farewell::quit);
    }
    // Opportunistic: carry on in clear text with what EHLO said.
    become_ready();
  }

  // ---- transaction ----
  // A reply that refuses the message before anything is sent.
  std::optional<SmtpReply> local_refusal(const OutboundMessage& m, std::string_view content,
                                         bool needs_smtputf8, bool eight_bit) const {
    uint64_t size = message_wire_size(content, m.header_prefix);
    if (caps.size && *caps.size > 0 && size > *caps.size) {
      return SmtpReply::made_here(552, "5.3.4",
                                  "message size " + std::to_string(size) +
                                      " exceeds the server's limit of " +
                                      std::to_string(*caps.size));
    }
    if (needs_smtputf8 && !caps.smtputf8) {
      return SmtpReply::made_here(553, "5.6.7",
                                  "the message needs SMTPUTF8 and the server does not support it",
                                  mail::BounceCategory::ProtocolErrors);
    }
    if (eight_bit && !caps.eight_bit_mime && has_eight_bit(content)) {
      return SmtpReply::made_here(
          554, "5.6.3",
          "8-bit content (" + upper(m.body_type) + ") and the server does not support 8BITMIME",
          mail::BounceCategory::ProtocolErrors);
    }
    return std::nullopt;
  }

  std::string mail_command(const OutboundMessage& m, std::string_view content, bool needs_smtputf8,
                           bool eight_bit) const {
    std::string line = "MAIL FROM:<" + m.sender + ">";
    if (caps.size) line += " SIZE=" + std::to_string(message_wire_size(content, m.header_prefix));
    if (txn->binary) {
      line += " BODY=BINARYMIME";
    } else if (eight_bit && caps.eight_bit_mime) {
      line += " BODY=8BITMIME";
    }
    if (needs_smtputf8) line += " SMTPUTF8";
    if (caps.dsn) {
      std::string ret = upper(m.dsn_ret);
      if (ret == "FULL" || ret == "HDRS") line += " RET=" + ret;
      if (is_parameter_value(m.dsn_envid)) line += " ENVID=" + m.dsn_envid;
    }
    return line;
  }

  std::string rcpt_command(size_t index) const {
    const OutboundRecipient& r = txn->message->recipients[index];
    std::string line = "RCPT TO:<" + r.address + ">";
    if (caps.dsn) {
      if (is_parameter_value(r.dsn_notify)) line += " NOTIFY=" + r.dsn_notify;
      if (is_parameter_value(r.dsn_orcpt)) line += " ORCPT=" + r.dsn_orcpt;
    }
    return line;
  }

  std::string_view content() const {
    const std::shared_ptr<const std::string>& c = txn->message->content;
    return c ? std::string_view(*c) : std::string_view();
  }

  void start_transaction(std::shared_ptr<const OutboundMessage> message) {
    const OutboundMessage& m = *message;
    txn.emplace();
    txn->message = std::move(message);
    txn->results.resize(m.recipients.size());
    std::string_view body = content();

    bool needs_smtputf8 = m.smtputf8 || has_non_ascii(m.sender);
    for (const OutboundRecipient& r : m.recipients) needs_smtputf8 |= has_non_ascii(r.address);
    std::string body_type = upper(m.body_type);
    txn->binary = body_type == "BINARYMIME" && caps.chunking && server_binarymime;
    // BINARYMIME without CHUNKING and BINARYMIME at the server goes as 8BITMIME.
    bool eight_bit = !txn->binary && (body_type == "8BITMIME" || body_type == "BINARYMIME");

    std::optional<SmtpReply> refusal = local_refusal(m, body, needs_smtputf8, eight_bit);
    if (!refusal && has_control_character(m.sender)) {
      refusal = SmtpReply::made_here(553, "5.1.7", "invalid sender address");
    }
    if (refusal) {
      resolve_unresolved(*refusal);
      finish_transaction();
      return become_ready();
    }
    for (size_t i = 0; i < m.recipients.size(); ++i) {
      if (has_control_character(m.recipients[i].address)) {
        txn->results[i] = SmtpReply::made_here(553, "5.1.3", "invalid recipient address");
      } else {
        txn->sent.push_back(i);
      }
    }
    if (txn->sent.empty()) {
      finish_transaction();
      return become_ready();
    }

    txn->use_bdat = caps.chunking;
    txn->pipelined = caps.pipelining;
    command(mail_command(m, body, needs_smtputf8, eight_bit));
    if (txn->pipelined) {
      // One flight (RFC 2920). BDAT waits for the RCPT replies instead: it
      // costs no extra round trip over DATA's 354 and sends no content when
      // every recipient is refused.
      for (size_t i : txn->sent) command(rcpt_command(i));
      if (!txn->use_bdat) {
        command("DATA");
        txn->data_pipelined = true;
      }
    }
    enter_state(State::mail);
  }

  void on_mail(const SmtpReply& reply) {
    switch (reply_class(reply)) {
      case 2:
        txn->mail_accepted = true;
        break;
      case 4:
      case 5:
        // No transaction at the server: no RSET needed afterwards.
        txn->mail_refused = true;
        resolve_unresolved(reply);
        finish_transaction();
        break;
      default:
        return protocol_error("unexpected reply to MAIL: " + reply.to_string());
    }
    if (txn->pipelined) return enter_state(State::rcpt);  // their replies follow
    if (txn->mail_refused) return become_ready();
    command(rcpt_command(txn->sent.front()));
    enter_state(State::rcpt);
  }

  void on_rcpt(const SmtpReply& reply) {
    int klass = reply_class(reply);
    if (klass != 2 && klass != 4 && klass != 5) {
      return protocol_error("unexpected reply to RCPT: " + reply.to_string());
    }
    size_t index = txn->sent[txn->rcpt_replies++];
    if (!txn->mail_refused) {  // after a refused MAIL these are 503s that say nothing
      if (klass == 2) {
        txn->accepted.push_back(index);
      } else {
        txn->results[index] = reply;
      }
    }
    if (txn->rcpt_replies < txn->sent.size()) {
      if (!txn->pipelined) command(rcpt_command(txn->sent[txn->rcpt_replies]));
      return;
    }
    after_rcpts();
  }

  void after_rcpts() {
    if (txn->accepted.empty()) finish_transaction();  // every recipient has its reply
    if (txn->data_pipelined) return enter_state(State::data_init);
    if (txn->mail_refused) return become_ready();
    if (txn->accepted.empty()) return send_rset();
    if (txn->use_bdat) {
      send(bdat_payload(content(), txn->binary, txn->message->header_prefix));
      txn->data_sent = true;
      return enter_state(State::data_term);
    }
    command("DATA");
    enter_state(State::data_init);
  }

  void on_data_init(const SmtpReply& reply) {
    if (reply.code == 354) {
      if (txn->accepted.empty()) {
        // RFC 2920 §3.1: DATA went with the RCPTs, none of which succeeded.
        send(".\r\n");
        txn->discard_final = true;
      } else {
        send(data_payload(content(), txn->message->header_prefix));
        txn->data_sent = true;
      }
      return enter_state(State::data_term);
    }
    if (reply_class(reply) != 4 && reply_class(reply) != 5) {
      return protocol_error("unexpected reply to DATA: " + reply.to_string());
    }
    resolve(txn->accepted, reply);
    finish_transaction();
    if (txn->mail_accepted) return send_rset();  // the envelope may still be open
    become_ready();
  }

  void on_data_term(const SmtpReply& reply) {
    if (txn->discard_final) return send_rset();
    int klass = reply_class(reply);
    if (klass != 2 && klass != 4 && klass != 5) {
      return protocol_error("unexpected reply to the end of data: " + reply.to_string());
    }
    resolve(txn->accepted, reply);
    finish_transaction();
    // RFC 3030 §2: a refused BDAT leaves the transaction to RSET; a refused
    // "." ends it.
    if (klass != 2 && txn->use_bdat) return send_rset();
    become_ready();
  }

  void send_rset() {
    command("RSET");
    enter_state(State::rset);
  }

  void on_rset(const SmtpReply& reply) {
    if (reply_class(reply) == 2) return become_ready();
    fail(reply, Farewell::quit);
  }
};

// ---- public interface ----

SmtpClientSession::SmtpClientSession(ClientSettings settings)
    : impl_(std::make_unique<Impl>(std::move(settings))) {}

SmtpClientSession::~SmtpClientSession() = default;

namespace {
// Points the session's output at `out` for the duration of one call.
class OutputScope {
 public:
  OutputScope(ClientOutput** slot, ClientOutput* out) : slot_(slot) { *slot_ = out; }
  ~OutputScope() { *slot_ = nullptr; }
  OutputScope(const OutputScope&) = delete;
  OutputScope& operator=(const OutputScope&) = delete;

 private:
  ClientOutput** slot_;
};
}  // namespace

ClientOutput SmtpClientSession::connected() {
  ClientOutput out;
  OutputScope scope(&impl_->out, &out);
  if (impl_->state == State::connecting) impl_->enter_state(State::greeting);
  return out;
}

ClientOutput SmtpClientSession::receive(std::string_view bytes) {
  ClientOutput out;
  Impl& s = *impl_;
  if (s.state == State::closed) return out;
  OutputScope scope(&s.out, &out);
  s.reader.feed(bytes);
  s.pump();
  return out;
}

ClientOutput SmtpClientSession::tls_established(std::string description) {
  ClientOutput out;
  Impl& s = *impl_;
  if (s.state != State::tls_handshake) return out;
  OutputScope scope(&s.out, &out);
  s.tls = true;
  s.tls_description = std::move(description);
  // RFC 3207 §4.2: forget everything learnt in clear text.
  s.caps = ServerCapabilities{};
  s.server_binarymime = false;
  s.reader.clear();
  s.send_ehlo();
  return out;
}

ClientOutput SmtpClientSession::tls_failed(std::string why) {
  ClientOutput out;
  Impl& s = *impl_;
  if (s.state == State::closed) return out;
  OutputScope scope(&s.out, &out);
  s.fail(SmtpReply::made_here(0, "4.7.0", "TLS handshake failed: " + why), Farewell::none);
  return out;
}

ClientOutput SmtpClientSession::send_message(std::shared_ptr<const OutboundMessage> message) {
  ClientOutput out;
  Impl& s = *impl_;
  OutputScope scope(&s.out, &out);
  if (!message) {
    out.finished = TransactionResult{};
    out.ready = s.state == State::ready;
    return out;
  }
  if (s.state != State::ready) {
    // A caller bug, but the recipients must not be lost: they are retried.
    spdlog::error("SmtpClientSession::send_message called in state {}", to_string(s.state));
    TransactionResult result;
    result.recipients.assign(
        message->recipients.size(),
        SmtpReply::made_here(0, "4.3.0",
                             std::string("session not ready (") + to_string(s.state) + ")"));
    out.finished = std::move(result);
    return out;
  }
  s.start_transaction(std::move(message));
  return out;
}

ClientOutput SmtpClientSession::quit() {
  ClientOutput out;
  Impl& s = *impl_;
  if (s.state == State::closed) return out;
  OutputScope scope(&s.out, &out);
  if (s.state == State::ready) {
    s.command("QUIT");
    s.enter_state(State::quit);
    return out;
  }
  // Not at a command boundary: hang up, and whatever was in flight is
  // retried.
  s.finish_transaction(
      SmtpReply::made_here(0, "4.3.0", "session ended while waiting for " + s.stage()));
  s.close();
  return out;
}

ClientOutput SmtpClientSession::timeout() {
  ClientOutput out;
  Impl& s = *impl_;
  OutputScope scope(&s.out, &out);
  switch (s.state) {
    case State::closed:
      break;
    case State::quit:
      s.close();
      break;
    case State::ready:  // nothing outstanding: an idle connection to let go
      s.command("QUIT");
      s.close();
      break;
    case State::connecting:
    case State::greeting:
    case State::ehlo:
    case State::helo:
    case State::starttls:
    case State::tls_handshake:
    case State::mail:
    case State::rcpt:
    case State::data_init:
    case State::data_term:
    case State::rset:
      s.fail(SmtpReply::made_here(0, "4.4.2", "timeout waiting for " + s.stage()), Farewell::none);
      break;
  }
  return out;
}

ClientOutput SmtpClientSession::connection_lost(std::string why) {
  ClientOutput out;
  Impl& s = *impl_;
  OutputScope scope(&s.out, &out);
  std::string detail = why.empty() ? std::string() : " (" + why + ")";
  switch (s.state) {
    case State::closed:
      break;
    case State::quit:
      s.close();
      break;
    case State::ready:
      s.fail(SmtpReply::made_here(0, "4.4.2", "connection lost while idle" + detail),
             Farewell::none);
      break;
    case State::connecting:
    case State::greeting:
    case State::ehlo:
    case State::helo:
    case State::starttls:
    case State::tls_handshake:
    case State::mail:
    case State::rcpt:
    case State::data_init:
    case State::data_term:
    case State::rset:
      s.fail(SmtpReply::made_here(0, "4.4.2",
                                  "connection lost while waiting for " + s.stage() + detail),
             Farewell::none);
      break;
  }
  return out;
}

ClientWait SmtpClientSession::waiting_for() const {
  switch (impl_->state) {
    case State::connecting:
    case State::ready:
    case State::closed:
      return ClientWait::none;
    case State::greeting:
      return ClientWait::greeting;
    case State::ehlo:
    case State::helo:
      return ClientWait::ehlo;
    case State::starttls:
    case State::tls_handshake:
      return ClientWait::starttls;
    case State::mail:
      return ClientWait::mail;
    case State::rcpt:
      return ClientWait::rcpt;
    case State::data_init:
      return ClientWait::data_init;
    case State::data_term:
      return ClientWait::data_term;
    case State::rset:
      return ClientWait::rset;
    case State::quit:
      return ClientWait::quit;
  }
  return ClientWait::none;
}

std::chrono::milliseconds SmtpClientSession::timeout_for_wait() const {
  const ClientTimeouts& t = impl_->settings.timeouts;
  switch (waiting_for()) {
    case ClientWait::none:
      return std::chrono::milliseconds(0);
    case ClientWait::greeting:
      return t.greeting;
    case ClientWait::ehlo:
      return t.ehlo;
    case ClientWait::starttls:
      return t.starttls;
    case ClientWait::mail:
      return t.mail;
    case ClientWait::rcpt:
      return t.rcpt;
    case ClientWait::data_init:
      return t.data_init;
    case ClientWait::data_block:
      return t.data_block;
    case ClientWait::data_term:
      return t.data_term;
    case ClientWait::rset:
      return t.rset;
    case ClientWait::quit:
      return t.quit;
  }
  return std::chrono::milliseconds(0);
}

bool SmtpClientSession::is_ready() const { return impl_->state == State::ready; }
bool SmtpClientSession::is_closed() const { return impl_->state == State::closed; }
const ServerCapabilities& SmtpClientSession::capabilities() const { return impl_->caps; }
const std::string& SmtpClientSession::tls_description() const { return impl_->tls_description; }
const std::string& SmtpClientSession::greeting() const { return impl_->greeting_text; }

const char* to_string(ClientWait wait) {
  switch (wait) {
    case ClientWait::none:
      return "none";
    case ClientWait::greeting:
      return "greeting";
    case ClientWait::ehlo:
      return "ehlo";
    case ClientWait::starttls:
      return "starttls";
    case ClientWait::mail:
      return "mail";
    case ClientWait::rcpt:
      return "rcpt";
    case ClientWait::data_init:
      return "data_init";
    case ClientWait::data_block:
      return "data_block";
    case ClientWait::data_term:
      return "data_term";
    case ClientWait::rset:
      return "rset";
    case ClientWait::quit:
      return "quit";
  }
  return "?";
}

}  // namespace ringmail::mta
