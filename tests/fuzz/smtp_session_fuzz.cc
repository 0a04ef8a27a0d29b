// libFuzzer target for the inbound SMTP session (mta/smtp_server_session.h).
//
// The input is a client's byte stream. A hash of it picks the listener
// settings and a pseudo-random sequence that splits the stream into
// receive() calls and answers commits and AUTH checks (ok, refused,
// temporary, spool full, failure), so every input replays identically.
// Besides ASan/UBSan findings, the target aborts when the session breaks
// a promise: malformed replies, a spooled message that is not clean CRLF
// text, output after close.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON; run with the seed corpus in
// tests/fuzz/corpus/smtp_session/.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/smtp/smtp_server_session.h"

namespace {

using ringmail::mta::AuthResult;
using ringmail::mta::CommitResult;
using ringmail::mta::ConnectionInfo;
using ringmail::mta::SessionMode;
using ringmail::mta::SessionOutput;
using ringmail::mta::SessionSettings;
using ringmail::mta::SmtpServerSession;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "smtp_session_fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

struct Rng {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

void check_replies(std::string_view replies) {
  size_t pos = 0;
  while (pos < replies.size()) {
    size_t eol = replies.find("\r\n", pos);
    if (eol == std::string_view::npos) broken("reply without CRLF", replies.substr(pos));
    std::string_view line = replies.substr(pos, eol - pos);
    if (line.size() < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-')) {
      broken("malformed reply line", line);
    }
    for (char c : line) {
      if (c == '\r' || c == '\n' || c == '\0') broken("control character in reply", line);
    }
    pos = eol + 2;
  }
}

void check_message(const ringmail::queue::SpoolMessage& m, const SessionSettings& settings) {
  const std::string& c = m.content;
  if (c.rfind("Received: from", 0) != 0) broken("content does not start with Received", c);
  if (m.meta.size != c.size()) broken("metadata size differs from content", c);
  if (m.envelope.recipients.empty()) broken("message without recipients", c);
  if (m.envelope.recipients.size() > settings.max_recipients) broken("too many recipients", c);
  size_t line_length = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (ch == '\0') broken("NUL in spooled content", c);
    if (ch == '\r') {
      if (i + 1 >= c.size() || c[i + 1] != '\n') broken("bare CR in spooled content", c);
      ++i;
      line_length = 0;
      continue;
    }
    if (ch == '\n') broken("bare LF in spooled content", c);
    if (++line_length > 998) broken("line over 998 octets in spooled content", c);
  }
  if (!c.empty() && (c.size() < 2 || c.compare(c.size() - 2, 2, "\r\n") != 0)) {
    broken("content does not end with CRLF", c);
  }
}

// Carries out what the session asked for, as the event loop would.
bool settle(SmtpServerSession& session, SessionOutput out, Rng& rng,
            const SessionSettings& settings) {
  while (true) {
    check_replies(out.replies);
    if (out.close) {
      if (out.commit || out.auth || out.start_tls) broken("action together with close", "");
      if (!session.receive("NOOP\r\n").replies.empty()) broken("reply after close", "");
      return false;
    }
    if (out.commit) {
      check_message(*out.commit, settings);
      if (!session.waiting()) broken("commit without waiting", "");
      CommitResult r;
      uint32_t pick = rng.next() % 8;
      r.status = pick == 0   ? CommitResult::Status::spool_full
                 : pick == 1 ? CommitResult::Status::failed
                             : CommitResult::Status::committed;
      if (rng.next() % 16 == 0) {
        check_replies(session.receive("NOOP\r\n").replies);  // pipelined while waiting
      }
      out = session.commit_finished(r);
      continue;
    }
    if (out.auth) {
      if (!session.waiting()) broken("auth without waiting", "");
      AuthResult r;
      uint32_t pick = rng.next() % 4;
      r.status = pick == 0   ? AuthResult::Status::invalid_credentials
                 : pick == 1 ? AuthResult::Status::temporary_failure
                             : AuthResult::Status::ok;
      out = session.auth_finished(r);
      continue;
    }
    if (out.start_tls) {
      if (rng.next() % 8 == 0) {
        check_replies(session.receive("EHLO injected\r\n").replies);  // before the handshake
      }
      out = session.tls_established("TLSv1.3 TLS_AES_256_GCM_SHA384");
      if (!out.replies.empty()) broken("reply to tls_established", out.replies);
      continue;
    }
    return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t hash = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) hash = (hash ^ data[i]) * 1099511628211ull;
  Rng rng{hash};
  uint32_t bits = rng.next();

  SessionSettings settings;
  settings.hostname = "mx.fuzz.test";
  settings.listener_name = "fuzz";
  settings.mode = (bits & 1) ? SessionMode::submission : SessionMode::relay;
  if ((bits & (1u << 20)) && !(bits & 1)) {  // a quarter of the runs: a feedback listener
    settings.mode = SessionMode::feedback;
    settings.feedback_domain = "bounces.fuzz.test";
  }
  settings.starttls_available = bits & 2;
  settings.auth_available = !(bits & 4);
  settings.require_tls_for_auth = bits & 8;
  settings.max_message_size = (bits & 16) ? 2048 : (1u << 20);
  settings.max_recipients = (bits & 32) ? 3 : 100;
  ConnectionInfo connection;
  connection.peer_ip = (bits & 64) ? "2001:db8::7" : "192.0.2.7";
  connection.relay_network = (bits & 128) ? "" : "192.0.2.0/24";
  connection.implicit_tls = bits & 256;
  connection.tls_description = connection.implicit_tls ? "TLSv1.3 TLS_AES_128_GCM_SHA256" : "";
  connection.now_unix_ms = 1767225600000;

  SmtpServerSession session(settings, connection);
  session.set_now(1767225600000);
  if (!settle(session, session.start(), rng, settings)) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos < input.size()) {
    uint32_t r = rng.next();
    size_t chunk = (r % 8 == 0) ? 1 + (r >> 3) % 4096 : 1 + (r >> 3) % 48;
    chunk = std::min(chunk, input.size() - pos);
    SessionOutput out = session.receive(input.substr(pos, chunk));
    pos += chunk;
    if (!settle(session, std::move(out), rng, settings)) return 0;
  }
  SessionOutput end = (rng.next() & 1) ? session.shutdown() : session.idle_timeout();
  check_replies(end.replies);
  if (session.waiting()) {
    SessionOutput done = session.commit_finished({CommitResult::Status::committed, "", ""});
    check_replies(done.replies);
    if (!done.close) broken("shutdown deferred past the commit", done.replies);
  } else if (!end.close && !end.replies.empty()) {
    broken("421 without close", end.replies);
  }
  return 0;
}
