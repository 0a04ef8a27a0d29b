#include "mta/smtp/smtp_server_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "mta/smtp/smtp_command.h"
#include "mta/smtp/smtp_data_reader.h"
#include "mta/smtp/smtp_message_headers.h"

namespace ringmail::mta {
namespace {

constexpr size_t kMaxCommandLine = 1000;  // octets including CRLF (RFC 5321 §4.5.3.1.4 + ESMTP)
constexpr size_t kMaxAuthLine = 12288;    // RFC 4954 §4
constexpr int kMaxErrors = 20;
// Input buffered while a commit or an auth check is outstanding. The loop
// should not read while waiting(); past this the client is cut off.
constexpr size_t kMaxPendingInput = 1u << 20;

enum class State {
  command,
  data,
  bdat_chunk,
  auth_plain_response,
  auth_login_username,
  auth_login_password,
  waiting_auth,
  waiting_commit,
  tls_handshake,
  closed,
};

const char* to_string(State s) {
  switch (s) {
    case State::command:
      return "command";
    case State::data:
      return "data";
    case State::bdat_chunk:
      return "bdat_chunk";
    case State::auth_plain_response:
      return "auth_plain_response";
    case State::auth_login_username:
      return "auth_login_username";
    case State::auth_login_password:
      return "auth_login_password";
    case State::waiting_auth:
      return "waiting_auth";
    case State::waiting_commit:
      return "waiting_commit";
    case State::tls_handshake:
      return "tls_handshake";
    case State::closed:
      return "closed";
  }
  return "?";
}

enum class Greeted { none, helo, ehlo };

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    if (c != prefix[i]) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && istarts_with(a, b);
}

// The envelope in progress (RFC 5321 §3.3), from MAIL to its end.
struct Transaction {
  bool active = false;
  queue::Envelope envelope;
  uint32_t rcpt_commands = 0;
  bool bdat_started = false;
  std::string bdat_failure;  // reply repeated for later chunks once a chunk failed
};

}  // namespace

struct SmtpServerSession::Impl {
  SessionSettings settings;
  ConnectionInfo connection;
  State state = State::command;
  Greeted greeted = Greeted::none;
  std::string helo;
  bool tls = false;
  std::string tls_description;
  std::string user;
  Transaction txn;
  SmtpDataReader reader;

  uint64_t chunk_remaining = 0;
  uint64_t chunk_size = 0;
  bool chunk_last = false;
  std::string chunk_error;  // reply to give once the chunk is consumed

  std::string auth_mechanism;
  std::string auth_authzid;
  std::string auth_username;

  std::string pending;  // unconsumed input
  bool discarding_line = false;
  bool input_overflow = false;
  int errors = 0;
  int64_t now_ms = 0;
  std::string deferred_close;  // 421 to give once the commit is answered
  std::string committing_id;   // id of the message handed out for commit
  SessionOutput* out = nullptr;

  // Deadlines (check_deadlines); -1: not running.
  int64_t line_started_ms = -1;  // first byte of the command line not complete yet
  uint64_t lines_completed = 0;  // tells a new incomplete line from the same one
  int64_t body_started_ms = -1;  // DATA's 354 or the first BDAT, to the end of the message
  uint64_t body_octets = 0;      // received since body_started_ms, as sent
  int64_t tls_started_ms = -1;   // STARTTLS answered

  Impl(SessionSettings s, ConnectionInfo c)
      : settings(std::move(s)), connection(std::move(c)), now_ms(connection.now_unix_ms) {
    if (connection.implicit_tls) {
      tls = true;
      tls_description = connection.tls_description;
    }
  }

  // ---- output ----
  void enter_state(State to) {
    if (spdlog::should_log(spdlog::level::trace)) {
      spdlog::trace("smtp session {}: {} -> {}", connection.peer_ip, to_string(state),
                    to_string(to));
    }
    state = to;
  }
  void reply(std::string_view line) {
    out->replies.append(line);
    out->replies.append("\r\n");
  }
  void close() {
    enter_state(State::closed);
    out->close = true;
    discarding_line = false;
  }
  // A reply to a client mistake; too many of them end the session.
  void error_reply(std::string_view line) {
    reply(line);
    if (++errors >= kMaxErrors && state != State::closed) {
      reply("421 4.7.0 " + settings.hostname + " Too many errors");
      close();
    }
  }

  void reset_transaction() {
    txn = Transaction{};
    reader = SmtpDataReader{};
    body_started_ms = -1;
  }

  // ---- deadlines ----
  bool reading_lines() const {
    switch (state) {
      case State::command:
      case State::auth_plain_response:
      case State::auth_login_username:
      case State::auth_login_password:
        return true;
      case State::data:
      case State::bdat_chunk:
      case State::waiting_auth:
      case State::waiting_commit:
      case State::tls_handshake:
      case State::closed:
        return false;
    }
    return false;
  }

  // After input was consumed: an incomplete line keeps the deadline of its
  // first byte; a new incomplete line starts one; none stops it.
  void track_command_line(uint64_t lines_before) {
    if (!reading_lines() || (pending.empty() && !discarding_line)) {
      line_started_ms = -1;
    } else if (line_started_ms < 0 || lines_completed != lines_before) {
      line_started_ms = now_ms;
    }
  }

  void start_body_clock() {
    body_started_ms = now_ms;
    body_octets = 0;
  }

  bool body_too_slow() const {
    if (body_started_ms < 0 || settings.min_data_rate == 0) return false;
    const int64_t elapsed_ms = now_ms - body_started_ms;
    if (elapsed_ms <= settings.data_rate_grace.count()) return false;
    return body_octets * 1000 < settings.min_data_rate * static_cast<uint64_t>(elapsed_ms);
  }

  void check_deadlines() {
    switch (state) {
      case State::waiting_auth:
      case State::waiting_commit:
      case State::closed:
        return;
      case State::tls_handshake:
        if (now_ms - tls_started_ms >= settings.tls_handshake_timeout.count()) {
          spdlog::info("smtp session {}: TLS handshake not done in time; closing",
                       connection.peer_ip);
          close();  // no reply: the client is speaking TLS, not SMTP
          pending.clear();
        }
        return;
      case State::command:
      case State::data:
      case State::bdat_chunk:
      case State::auth_plain_response:
      case State::auth_login_username:
      case State::auth_login_password:
        break;
    }
    if (line_started_ms >= 0 && now_ms - line_started_ms >= settings.command_timeout.count()) {
      spdlog::info("smtp session {}: command line not complete in time; closing",
                   connection.peer_ip);
      return end_session_with("421 4.4.2 " + settings.hostname + " Error: timeout exceeded");
    }
    if (body_too_slow()) {
      spdlog::info("smtp session {}: {} octets of message in {} ms; closing", connection.peer_ip,
                   body_octets, now_ms - body_started_ms);
      end_session_with("421 4.4.2 " + settings.hostname + " Error: data rate too low");
    }
  }

  // ---- input ----
  // Runs the state machine over `in`; returns the octets consumed. Stops
  // early when waiting, closed or handing over to TLS.
  size_t run(std::string_view in) {
    size_t pos = 0;
    while (pos < in.size()) {
      switch (state) {
        case State::command:
        case State::auth_plain_response:
        case State::auth_login_username:
        case State::auth_login_password: {
          size_t used = take_line(in.substr(pos));
          if (used == 0) return pos;
          pos += used;
          break;
        }
        case State::data: {
          size_t used = reader.feed(in.substr(pos));
          pos += used;
          body_octets += used;
          if (reader.finished()) end_of_message();
          break;
        }
        case State::bdat_chunk: {
          size_t n = static_cast<size_t>(
              std::min<uint64_t>(chunk_remaining, static_cast<uint64_t>(in.size() - pos)));
          if (chunk_error.empty() && txn.bdat_failure.empty()) reader.feed(in.substr(pos, n));
          pos += n;
          body_octets += n;
          chunk_remaining -= n;
          if (chunk_remaining == 0) end_of_chunk();
          break;
        }
        case State::waiting_auth:
        case State::waiting_commit:
        case State::tls_handshake:
        case State::closed:
          return pos;
      }
    }
    return pos;
  }

  // Keeps what run() left over, within bounds.
  void keep(std::string_view rest) {
    if (state == State::closed || state == State::tls_handshake) {
      pending.clear();  // after STARTTLS: the pipelining injection defence
      return;
    }
    if (rest.size() > kMaxPendingInput) {
      rest = rest.substr(0, kMaxPendingInput);
      input_overflow = true;
    }
    pending.assign(rest);
  }

  void feed(std::string_view bytes) {
    if (pending.empty()) {
      size_t used = run(bytes);
      keep(bytes.substr(used));
      return;
    }
    std::string buffer = std::move(pending);
    pending.clear();
    buffer.append(bytes);
    size_t used = run(buffer);
    keep(std::string_view(buffer).substr(used));
  }

  void buffer_while_waiting(std::string_view bytes) {
    if (input_overflow) return;
    size_t room = kMaxPendingInput - std::min(kMaxPendingInput, pending.size());
    if (bytes.size() > room) {
      input_overflow = true;
      bytes = bytes.substr(0, room);
    }
    pending.append(bytes);
  }

  // After a completion: continue with what the client pipelined meanwhile.
  void resume() {
    if (!deferred_close.empty()) {
      reply(deferred_close);
      close();
      pending.clear();
      return;
    }
    if (input_overflow) {
      reply("421 4.7.0 " + settings.hostname + " Too much pipelined input");
      close();
      pending.clear();
      return;
    }
    if (pending.empty()) return;
    std::string buffer = std::move(pending);
    pending.clear();
    size_t used = run(buffer);
    keep(std::string_view(buffer).substr(used));
  }

  // Reads one line from the start of `in`; returns the octets consumed, 0
  // when the line is not complete yet.
  size_t take_line(std::string_view in) {
    if (discarding_line) {
      const void* lf = std::memchr(in.data(), '\n', in.size());
      if (!lf) return in.size();
      discarding_line = false;
      ++lines_completed;
      return static_cast<size_t>(static_cast<const char*>(lf) - in.data()) + 1;
    }
    size_t limit = kMaxCommandLine;
    if (state != State::command || istarts_with(in, "AUTH ")) limit = kMaxAuthLine;
    size_t window = std::min(limit, in.size());
    const void* lf = std::memchr(in.data(), '\n', window);
    if (!lf) {
      if (in.size() < limit) return 0;
      discarding_line = true;
      line_too_long();
      return limit;
    }
    size_t len = static_cast<size_t>(static_cast<const char*>(lf) - in.data());
    std::string_view line = in.substr(0, len);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++lines_completed;
    if (state == State::command) {
      command_line(line);
    } else {
      auth_line(line);
    }
    return len + 1;
  }

  void line_too_long() {
    if (state != State::command) enter_state(State::command);  // abandons an AUTH exchange
    error_reply("500 5.5.2 Error: line too long");
  }

  // ---- commands ----
  void command_line(std::string_view line) {
    if (line.find('\0') != std::string_view::npos) {
      error_reply("500 5.5.2 Error: NUL character in command");
      return;
    }
    SmtpCommandLine cmd = parse_command_line(line);
    switch (cmd.verb) {
      case SmtpVerb::helo:
        return do_hello(cmd, Greeted::helo);
      case SmtpVerb::ehlo:
        return do_hello(cmd, Greeted::ehlo);
      case SmtpVerb::mail:
        return do_mail(cmd);
      case SmtpVerb::rcpt:
        return do_rcpt(cmd);
      case SmtpVerb::data:
        return do_data(cmd);
      case SmtpVerb::bdat:
        return do_bdat(cmd);
      case SmtpVerb::rset:
        if (!cmd.argument.empty()) return error_reply("501 5.5.4 Syntax: RSET");
        reset_transaction();
        return reply("250 2.0.0 Ok");
      case SmtpVerb::noop:
        return reply("250 2.0.0 Ok");
      case SmtpVerb::quit:
        reply("221 2.0.0 Bye");
        return close();
      case SmtpVerb::vrfy:
        if (cmd.argument.empty()) return error_reply("501 5.5.4 Syntax: VRFY address");
        return reply("252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
      case SmtpVerb::expn:
        return error_reply("502 5.5.1 Error: command not implemented");
      case SmtpVerb::help:
        return reply(
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP "
            "STARTTLS AUTH");
      case SmtpVerb::starttls:
        return do_starttls(cmd);
      case SmtpVerb::auth:
        return do_auth(cmd);
      case SmtpVerb::unknown:
        return error_reply("500 5.5.2 Error: command not recognized");
    }
  }

  bool auth_offered() const {
    return settings.mode == SessionMode::submission && settings.auth_available &&
           (tls || !settings.require_tls_for_auth);
  }

  void do_hello(const SmtpCommandLine& cmd, Greeted kind) {
    std::string_view name = cmd.argument;
    bool valid = !name.empty() && name.size() <= 255;
    for (char c : name) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 33 || u > 126) valid = false;
    }
    if (!valid) {
      return error_reply(kind == Greeted::ehlo ? "501 5.5.4 Syntax: EHLO hostname"
                                               : "501 5.5.4 Syntax: HELO hostname");
    }
    reset_transaction();
    greeted = kind;
    helo.assign(name);
    if (kind == Greeted::helo) return reply("250 " + settings.hostname);
    std::string r = "250-" + settings.hostname + "\r\n";
    r += "250-PIPELINING\r\n";
    r += "250-SIZE " + std::to_string(settings.max_message_size) + "\r\n";
    r += "250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n";
    bool starttls = settings.starttls_available && !tls;
    bool auth = auth_offered();
    r += (starttls || auth) ? "250-DSN\r\n" : "250 DSN\r\n";
    if (starttls) r += auth ? "250-STARTTLS\r\n" : "250 STARTTLS\r\n";
    if (auth) r += "250 AUTH PLAIN LOGIN\r\n";
    out->replies += r;
  }

  // Whose mail this is (CONTRACT "Traffic policy"): the AUTH user of
  // submitted mail, the relay_networks entry of relayed mail.
  // Feedback is nobody's mail: it has no tenant.
  const std::string& tenant() const {
    static const std::string kNobody;
    switch (settings.mode) {
      case SessionMode::submission:
        return user;
      case SessionMode::relay:
        return connection.relay_network;
      case SessionMode::feedback:
        return kNobody;
    }
    return kNobody;
  }

  void do_mail(const SmtpCommandLine& cmd) {
    if (greeted == Greeted::none) return error_reply("503 5.5.1 Error: send HELO/EHLO first");
    if (settings.mode == SessionMode::submission && user.empty()) {
      return error_reply("530 5.7.0 Authentication required");
    }
    if (txn.active) return error_reply("503 5.5.1 Error: nested MAIL command");
    CommandParse<MailFromCommand> p = parse_mail_from(cmd.argument);
    switch (p.error) {
      case CommandError::none:
        break;
      case CommandError::syntax:
        return error_reply("501 5.5.4 Syntax: MAIL FROM:<address>");
      case CommandError::bad_address:
        return error_reply("501 5.1.7 Bad sender address syntax");
      case CommandError::unknown_parameter:
        return error_reply("555 5.5.4 Unsupported MAIL parameter");
      case CommandError::bad_parameter:
        return error_reply("501 5.5.4 Invalid MAIL parameter");
      case CommandError::utf8_needs_smtputf8:
        return error_reply("553 5.6.7 UTF-8 address requires the SMTPUTF8 parameter");
    }
    if (p.value.size && *p.value.size > settings.max_message_size) {
      return reply("552 5.3.4 Message size exceeds fixed limit");
    }
    // The last check: a message refused for another reason takes no token.
    if (settings.submission_gate) {
      const std::string& who = tenant();
      if (!who.empty()) {
        const policy::SubmissionVerdict verdict = settings.submission_gate->admit_message(who);
        if (!verdict.admitted) {
          return reply("452 4.7.1 Tenant " + who + " is over its submission limit of " +
                       verdict.limit + "; try again later");
        }
      }
    }
    txn = Transaction{};
    txn.active = true;
    txn.envelope.sender = std::move(p.value.sender);
    txn.envelope.body_type = std::move(p.value.body_type);
    txn.envelope.smtputf8 = p.value.smtputf8;
    txn.envelope.dsn_ret = std::move(p.value.dsn_ret);
    txn.envelope.dsn_envid = std::move(p.value.dsn_envid);
    reply("250 2.1.0 Ok");
  }

  void do_rcpt(const SmtpCommandLine& cmd) {
    if (!txn.active) return error_reply("503 5.5.1 Error: need MAIL command");
    if (txn.bdat_started) return error_reply("503 5.5.1 Error: RCPT after BDAT");
    ++txn.rcpt_commands;
    CommandParse<RcptToCommand> p = parse_rcpt_to(cmd.argument);
    switch (p.error) {
      case CommandError::none:
        break;
      case CommandError::syntax:
        return error_reply("501 5.5.4 Syntax: RCPT TO:<address>");
      case CommandError::bad_address:
        return error_reply("501 5.1.3 Bad recipient address syntax");
      case CommandError::unknown_parameter:
        return error_reply("555 5.5.4 Unsupported RCPT parameter");
      case CommandError::bad_parameter:
        return error_reply("501 5.5.4 Invalid RCPT parameter");
      case CommandError::utf8_needs_smtputf8:
        break;  // not produced for RCPT
    }
    RcptToCommand& r = p.value;
    if (settings.mode == SessionMode::relay && connection.relay_network.empty()) {
      return error_reply("554 5.7.1 <" + r.recipient + ">: Relay access denied");
    }
    // A feedback listener takes mail for the return-path domain only; DSNs
    // and abuse reports come from anyone, so nothing else is relayed.
    if (settings.mode == SessionMode::feedback && r.domain != settings.feedback_domain &&
        (settings.unsubscribe_domain.empty() || r.domain != settings.unsubscribe_domain)) {
      return error_reply("550 5.1.1 <" + r.recipient +
                         ">: Recipient address rejected: this server takes feedback for " +
                         settings.feedback_domain + " only");
    }
    if (r.is_utf8 && !txn.envelope.smtputf8) {
      return error_reply("553 5.6.7 UTF-8 address requires the SMTPUTF8 parameter");
    }
    auto& rcpts = txn.envelope.recipients;
    for (const queue::Recipient& existing : rcpts) {
      if (existing.address == r.recipient) return reply("250 2.1.5 Ok");  // duplicate
    }
    if (rcpts.size() >= settings.max_recipients) {
      return reply("452 4.5.3 Error: too many recipients");
    }
    queue::Recipient rec;
    rec.address = std::move(r.recipient);
    rec.domain = std::move(r.domain);
    rec.dsn_notify = std::move(r.dsn_notify);
    rec.dsn_orcpt = std::move(r.dsn_orcpt);
    rcpts.push_back(std::move(rec));
    reply("250 2.1.5 Ok");
  }

  // Empty when DATA/BDAT may start, else the 5xx reply.
  std::string message_precondition() const {
    if (!txn.active) return "503 5.5.1 Error: need MAIL command";
    if (txn.envelope.recipients.empty()) {
      return txn.rcpt_commands > 0 ? "554 5.5.1 Error: no valid recipients"
                                   : "503 5.5.1 Error: need RCPT command";
    }
    return {};
  }

  void do_data(const SmtpCommandLine& cmd) {
    if (!cmd.argument.empty()) return error_reply("501 5.5.4 Syntax: DATA");
    if (txn.bdat_started) return error_reply("503 5.5.1 Error: DATA after BDAT");
    std::string refusal = message_precondition();
    if (!refusal.empty()) return error_reply(refusal);
    reader.begin(SmtpDataReader::Framing::dot_terminated, settings.max_message_size,
                 settings.dkim_hash_relaxed_body, settings.dkim_hash_simple_body);
    enter_state(State::data);
    reply("354 End data with <CR><LF>.<CR><LF>");
    start_body_clock();
  }

  void do_bdat(const SmtpCommandLine& cmd) {
    std::string_view arg = cmd.argument;
    size_t space = arg.find(' ');
    std::string_view count = arg.substr(0, space);
    std::string_view rest;
    if (space != std::string_view::npos) {
      rest = arg.substr(space + 1);
      while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    }
    bool valid = !count.empty() && count.size() <= 20 && (rest.empty() || iequals(rest, "LAST"));
    uint64_t n = 0;
    for (char c : count) {
      if (c < '0' || c > '9') {
        valid = false;
        break;
      }
      uint64_t d = static_cast<uint64_t>(c - '0');
      n = n > (std::numeric_limits<uint64_t>::max() - d) / 10 ? std::numeric_limits<uint64_t>::max()
                                                              : n * 10 + d;
    }
    if (!valid) {
      // Without a count the chunk cannot be framed: what follows would be
      // read as commands. Refuse and hang up.
      reply("501 5.5.4 Syntax: BDAT count [LAST]");
      reply("421 4.7.0 " + settings.hostname + " Closing connection");
      return close();
    }
    chunk_remaining = n;
    chunk_size = n;
    chunk_last = !rest.empty();
    chunk_error.clear();
    if (txn.bdat_failure.empty()) {
      chunk_error = message_precondition();
      if (chunk_error.empty() && !txn.bdat_started) {
        txn.bdat_started = true;
        reader.begin(SmtpDataReader::Framing::chunked, settings.max_message_size,
                     settings.dkim_hash_relaxed_body, settings.dkim_hash_simple_body);
      }
    }
    // The rate clock runs over the whole message, across chunks; a chunk
    // outside a transaction is timed too, as it is read all the same.
    if (body_started_ms < 0) start_body_clock();
    enter_state(State::bdat_chunk);
    if (n == 0) end_of_chunk();
  }

  void end_of_chunk() {
    enter_state(State::command);
    if (!txn.bdat_started) body_started_ms = -1;
    if (!chunk_error.empty()) return error_reply(chunk_error);
    if (txn.bdat_failure.empty() && reader.too_big()) {
      txn.bdat_failure = "552 5.3.4 Message too big";
    }
    if (!txn.bdat_failure.empty()) {
      reply(txn.bdat_failure);
      if (chunk_last) reset_transaction();
      return;
    }
    if (!chunk_last) {
      return reply("250 2.0.0 " + std::to_string(chunk_size) + " octets received");
    }
    reader.finish_chunked();
    end_of_message();
  }

  // ---- end of message ----
  void end_of_message() {
    enter_state(State::command);
    const char* rejection = nullptr;
    if (reader.too_big()) {
      rejection = "552 5.3.4 Message too big";
    } else if (reader.bare_cr()) {
      rejection = "550 5.6.2 Bare CR not allowed";
    } else if (reader.nul()) {
      rejection = "550 5.6.0 NUL character in message";
    } else if (reader.long_line()) {
      rejection = "550 5.6.0 Line too long (over 998 octets)";
    }
    if (rejection) {
      reset_transaction();
      return reply(rejection);
    }
    SmtpDataReader::BodyHashes hashes = reader.body_hashes();
    const size_t streamed_body_size = reader.content().size() - hashes.body_offset;
    auto message = build_message();
    reset_transaction();
    if (!message) return reply("550 5.6.0 Malformed header section");
    committing_id = message->id.value;
    // The header rewrite leaves the body alone, except when the message had
    // no header section: then the hashed region is not the final body.
    const size_t separator = message->content.find("\r\n\r\n");
    if (separator != std::string::npos &&
        message->content.size() - (separator + 4) == streamed_body_size) {
      out->dkim_body_hash_relaxed = std::move(hashes.relaxed);
      out->dkim_body_hash_simple = std::move(hashes.simple);
    }
    out->commit = std::move(message);
    enter_state(State::waiting_commit);
  }

  std::string protocol_name() const {
    if (greeted == Greeted::helo) return "SMTP";
    std::string p = "ESMTP";
    if (tls) p += 'S';
    if (!user.empty()) p += 'A';
    return p;
  }

  std::unique_ptr<queue::SpoolMessage> build_message() {
    auto m = std::make_unique<queue::SpoolMessage>();
    m->id = queue::make_message_id();
    m->envelope = std::move(txn.envelope);
    std::string protocol = protocol_name();
    ReceivedTrace trace;
    trace.helo = helo;
    trace.client_ip = connection.peer_ip;
    trace.hostname = settings.hostname;
    trace.protocol = protocol;
    trace.id = m->id.value;
    if (m->envelope.recipients.size() == 1) trace.for_recipient = m->envelope.recipients[0].address;
    trace.unix_ms = now_ms;
    std::string received = make_received_header(trace);
    std::string message_id = "<" + m->id.value + "@" + settings.hostname + ">";
    HeaderRewrite rewrite;
    // A report's header is the reporter's: nothing of it is taken as ours.
    if (settings.mode != SessionMode::feedback) rewrite.campaign_header = settings.campaign_header;
    rewrite.add_missing_message_id_and_date = settings.mode == SessionMode::submission;
    rewrite.message_id = message_id;
    rewrite.unix_ms = now_ms;
    std::string original = reader.take_content();
    RewriteResult r = rewrite_message(original, received, rewrite, &m->content);
    if (!r.ok) return nullptr;
    m->meta.tenant = tenant();
    m->meta.campaign = std::move(r.campaign);
    m->meta.listener = settings.listener_name;
    m->meta.received_unix_ms = now_ms;
    m->meta.client_ip = connection.peer_ip;
    m->meta.helo = helo;
    m->meta.tls = tls ? tls_description : std::string();
    m->meta.size = m->content.size();
    return m;
  }

  // ---- STARTTLS and AUTH ----
  void do_starttls(const SmtpCommandLine& cmd) {
    if (!cmd.argument.empty()) return error_reply("501 5.5.4 Syntax: STARTTLS");
    if (tls) return error_reply("503 5.5.1 Error: TLS already active");
    if (!settings.starttls_available) {
      return error_reply("502 5.5.1 Error: command not implemented");
    }
    reply("220 2.0.0 Ready to start TLS");
    out->start_tls = true;
    enter_state(State::tls_handshake);
    tls_started_ms = now_ms;
  }

  void do_auth(const SmtpCommandLine& cmd) {
    if (settings.mode != SessionMode::submission || !settings.auth_available) {
      return error_reply("502 5.5.1 Error: command not implemented");
    }
    if (greeted != Greeted::ehlo) return error_reply("503 5.5.1 Error: send EHLO first");
    if (!user.empty()) return error_reply("503 5.5.1 Error: already authenticated");
    if (txn.active) return error_reply("503 5.5.1 Error: AUTH not allowed during a transaction");
    if (settings.require_tls_for_auth && !tls) {
      return error_reply("538 5.7.11 Encryption required for requested authentication mechanism");
    }
    std::string_view arg = cmd.argument;
    size_t space = arg.find(' ');
    std::string_view mechanism = arg.substr(0, space);
    std::string_view initial;
    bool has_initial = false;
    if (space != std::string_view::npos) {
      initial = arg.substr(space + 1);
      has_initial = true;
    }
    if (mechanism.empty()) return error_reply("501 5.5.4 Syntax: AUTH mechanism");
    auth_authzid.clear();
    auth_username.clear();
    if (iequals(mechanism, "PLAIN")) {
      auth_mechanism = "PLAIN";
      if (!has_initial) {
        enter_state(State::auth_plain_response);
        return reply("334 ");
      }
      enter_state(State::auth_plain_response);
      return auth_line(initial);
    }
    if (iequals(mechanism, "LOGIN")) {
      auth_mechanism = "LOGIN";
      if (!has_initial) {
        enter_state(State::auth_login_username);
        return reply("334 VXNlcm5hbWU6");
      }
      enter_state(State::auth_login_username);
      return auth_line(initial);
    }
    error_reply("504 5.5.4 Unrecognized authentication type");
  }

  void auth_line(std::string_view line) {
    if (line == "*") {
      enter_state(State::command);
      return error_reply("501 5.7.0 Authentication cancelled");
    }
    std::string decoded;
    bool ok = (line == "=" && state == State::auth_plain_response) || decode_base64(line, &decoded);
    if (!ok) {
      enter_state(State::command);
      return error_reply("501 5.5.2 Invalid base64 data");
    }
    switch (state) {
      case State::auth_plain_response: {
        size_t first = decoded.find('\0');
        size_t second = first == std::string::npos ? first : decoded.find('\0', first + 1);
        if (second == std::string::npos || decoded.find('\0', second + 1) != std::string::npos ||
            second == first + 1) {
          enter_state(State::command);
          return error_reply("501 5.5.2 Invalid PLAIN response");
        }
        auth_authzid = decoded.substr(0, first);
        auth_username = decoded.substr(first + 1, second - first - 1);
        return submit_auth(decoded.substr(second + 1));
      }
      case State::auth_login_username:
        if (decoded.empty() || decoded.find('\0') != std::string::npos) {
          enter_state(State::command);
          return error_reply("501 5.5.2 Invalid LOGIN username");
        }
        auth_username = std::move(decoded);
        enter_state(State::auth_login_password);
        return reply("334 UGFzc3dvcmQ6");
      case State::auth_login_password:
        if (decoded.find('\0') != std::string::npos) {
          enter_state(State::command);
          return error_reply("501 5.5.2 Invalid LOGIN password");
        }
        return submit_auth(std::move(decoded));
      case State::command:
      case State::data:
      case State::bdat_chunk:
      case State::waiting_auth:
      case State::waiting_commit:
      case State::tls_handshake:
      case State::closed:
        return;  // not reached: only called in the three AUTH states
    }
  }

  void submit_auth(std::string password) {
    AuthRequest request;
    request.authzid = auth_authzid;
    request.username = auth_username;
    request.password = std::move(password);
    request.mechanism = auth_mechanism;
    request.peer_ip = connection.peer_ip;
    out->auth = std::move(request);
    enter_state(State::waiting_auth);
  }

  void end_session_with(std::string line) {
    if (state == State::closed) return;
    if (state == State::waiting_commit) {
      if (deferred_close.empty()) deferred_close = std::move(line);
      return;
    }
    reply(line);
    close();
    pending.clear();
  }
};

SmtpServerSession::SmtpServerSession(SessionSettings settings, ConnectionInfo connection)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(connection))) {}

SmtpServerSession::~SmtpServerSession() = default;

SessionOutput SmtpServerSession::start() {
  SessionOutput out;
  impl_->out = &out;
  impl_->reply("220 " + impl_->settings.hostname + " ESMTP Ringmail");
  impl_->out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::receive(std::string_view bytes) {
  SessionOutput out;
  Impl& s = *impl_;
  s.out = &out;
  const uint64_t lines_before = s.lines_completed;
  switch (s.state) {
    case State::closed:
    case State::tls_handshake:
      break;  // dropped: nothing may be read before the handshake completes
    case State::waiting_auth:
    case State::waiting_commit:
      s.buffer_while_waiting(bytes);
      break;
    case State::command:
    case State::data:
    case State::bdat_chunk:
    case State::auth_plain_response:
    case State::auth_login_username:
    case State::auth_login_password:
      s.feed(bytes);
      break;
  }
  if (!bytes.empty()) {
    s.track_command_line(lines_before);
  } else if (s.reading_lines() && s.line_started_ms < 0) {
    s.line_started_ms = s.now_ms;
  }
  s.out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::tls_established(std::string tls_description) {
  SessionOutput out;
  Impl& s = *impl_;
  if (s.state != State::tls_handshake) return out;
  s.out = &out;
  s.tls = true;
  s.tls_description = std::move(tls_description);
  s.greeted = Greeted::none;
  s.helo.clear();
  s.user.clear();
  s.reset_transaction();
  s.pending.clear();
  s.discarding_line = false;
  s.line_started_ms = -1;
  s.enter_state(State::command);
  s.out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::auth_finished(const AuthResult& result) {
  SessionOutput out;
  Impl& s = *impl_;
  if (s.state != State::waiting_auth) return out;
  s.out = &out;
  s.enter_state(State::command);
  switch (result.status) {
    case AuthResult::Status::ok:
      s.user = s.auth_username;
      s.reply("235 2.7.0 Authentication successful");
      break;
    case AuthResult::Status::invalid_credentials:
      s.error_reply("535 5.7.8 Authentication credentials invalid");
      break;
    case AuthResult::Status::temporary_failure:
      s.reply("454 4.7.0 Temporary authentication failure");
      break;
  }
  s.auth_username.clear();
  s.auth_authzid.clear();
  const uint64_t lines_before = s.lines_completed;
  if (s.state != State::closed) s.resume();
  s.track_command_line(lines_before);
  s.out = nullptr;
  return out;
}

namespace {
// A filter's reply is passed to the client only if it is a well-formed
// 4xx or 5xx reply: one line "NNN text", or several "NNN-text" lines joined
// by CRLF ending in "NNN text", all with the same code. Anything else (2xx,
// bare LF, NUL, mixed codes) could mislead the client about the message.
bool valid_filter_reply(const std::string& reply) {
  if (reply.size() < 4 || (reply[0] != '4' && reply[0] != '5')) return false;
  const std::string code = reply.substr(0, 3);
  size_t pos = 0;
  for (;;) {
    const size_t end = reply.find("\r\n", pos);
    const std::string_view line = std::string_view(reply).substr(
        pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.size() < 4 || line.substr(0, 3) != code) return false;
    if (!std::isdigit(static_cast<unsigned char>(code[1])) ||
        !std::isdigit(static_cast<unsigned char>(code[2])))
      return false;
    for (char ch : line)
      if (ch == '\r' || ch == '\n' || ch == '\0') return false;
    const bool last = end == std::string::npos;
    if (line[3] != (last ? ' ' : '-')) return false;
    if (last) return true;
    pos = end + 2;
  }
}
}  // namespace

SessionOutput SmtpServerSession::commit_finished(const CommitResult& result) {
  SessionOutput out;
  Impl& s = *impl_;
  if (s.state != State::waiting_commit) return out;
  s.out = &out;
  s.enter_state(State::command);
  switch (result.status) {
    case CommitResult::Status::committed:
      // A report is processed, not queued: nothing of it is delivered.
      s.reply(s.settings.mode == SessionMode::feedback
                  ? "250 2.0.0 Ok: report " + s.committing_id + " processed"
                  : "250 2.0.0 Ok: queued as " + s.committing_id);
      break;
    case CommitResult::Status::spool_full:
      s.reply("452 4.3.1 Insufficient system storage");
      break;
    case CommitResult::Status::failed:
      s.reply("451 4.3.0 Local error, try again later");
      break;
    case CommitResult::Status::rejected:
      // A malformed reply keeps its class: a permanent refusal must not
      // become a temporary one that the sender retries.
      if (valid_filter_reply(result.reply))
        s.reply(result.reply);
      else if (!result.reply.empty() && result.reply[0] == '5')
        s.reply("550 5.7.1 Message refused by a filter");
      else
        s.reply("451 4.7.1 Message refused by a filter");
      break;
  }
  const uint64_t lines_before = s.lines_completed;
  s.resume();
  s.track_command_line(lines_before);
  s.out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::idle_timeout() {
  SessionOutput out;
  impl_->out = &out;
  impl_->end_session_with("421 4.4.2 " + impl_->settings.hostname + " Idle timeout");
  impl_->out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::shutdown() {
  SessionOutput out;
  impl_->out = &out;
  impl_->end_session_with("421 4.3.2 " + impl_->settings.hostname + " Service shutting down");
  impl_->out = nullptr;
  return out;
}

SessionOutput SmtpServerSession::check_deadlines() {
  SessionOutput out;
  impl_->out = &out;
  impl_->check_deadlines();
  impl_->out = nullptr;
  return out;
}

bool SmtpServerSession::waiting() const {
  return impl_->state == State::waiting_auth || impl_->state == State::waiting_commit;
}

bool SmtpServerSession::in_transaction() const {
  return impl_->txn.active || impl_->state == State::waiting_commit;
}

const std::string& SmtpServerSession::authenticated_user() const { return impl_->user; }

void SmtpServerSession::set_now(int64_t unix_ms) { impl_->now_ms = unix_ms; }

}  // namespace ringmail::mta
