// libFuzzer target for the outbound SMTP client (mta/smtp_client_session.h).
//
// The input is a remote server's byte stream. A hash of it picks the
// session settings and a pseudo-random sequence that splits the stream into
// receive() calls and interleaves the loop's events (TLS up or failed,
// timeouts, a lost connection, QUIT, new messages when ready), so every
// input replays identically. Besides ASan/UBSan findings, the target aborts
// when the session breaks a promise: a command that is not one CRLF-ended
// line, a transaction finished twice or never, results that do not match
// its recipients, output after close.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON; run with the seed corpus in
// tests/fuzz/corpus/smtp_client_session/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "mta/smtp/smtp_client_session.h"

namespace {

using namespace ringmail::mta;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "smtp_client_session_fuzz: %s: %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

struct Rng {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

std::shared_ptr<const OutboundMessage> make_message(Rng& rng) {
  auto m = std::make_shared<OutboundMessage>();
  m->sender = rng.next() % 5 == 0 ? "" : "app@sender.test";
  const uint32_t n = 1 + rng.next() % 4;
  for (uint32_t i = 0; i < n; ++i) {
    m->recipients.push_back(OutboundRecipient{"user" + std::to_string(i) + "@example.test",
                                              i == 0 ? "FAILURE" : "", ""});
  }
  const uint32_t kind = rng.next() % 4;
  m->body_type = kind == 1 ? "8BITMIME" : "7BIT";
  m->smtputf8 = kind == 2;
  std::string content = "From: app@sender.test\r\nSubject: x\r\n\r\n.leading dot\r\nbody\r\n";
  if (kind == 1) content += "caf\xc3\xa9\r\n";
  if (kind == 3) content += "no final newline";
  m->content = std::make_shared<const std::string>(std::move(content));
  return m;
}

struct State {
  bool closed = false;
  bool in_transaction = false;
  size_t recipients = 0;
};

void check(State& state, const ClientOutput& out) {
  if (state.closed && (!out.send.empty() || out.finished || out.ready || out.start_tls)) {
    broken("output after close", out.send);
  }
  // Every command is whole lines; only message content may be longer.
  if (!out.send.empty() && !out.send.ends_with("\r\n") && !state.in_transaction) {
    broken("command without CRLF", out.send);
  }
  if (out.finished) {
    if (!state.in_transaction) broken("finished without a transaction", "");
    if (out.finished->recipients.size() != state.recipients) {
      broken("results do not match the recipients", "");
    }
    for (const SmtpReply& r : out.finished->recipients) {
      if (r.code != 0 && (r.code < 200 || r.code > 599)) broken("bad reply code", r.text);
    }
    state.in_transaction = false;
  }
  if (out.close) {
    state.closed = true;
    if (state.in_transaction) broken("closed with a transaction unfinished", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  uint64_t seed = 1469598103934665603ull;
  for (uint8_t b : std::string_view(input).substr(0, 32)) seed = (seed ^ b) * 1099511628211ull;
  Rng rng{seed};

  ClientSettings settings;
  settings.helo_name = "mx.ringmail.test";
  settings.starttls = rng.next() % 2;
  settings.require_tls = rng.next() % 5 == 0;
  SmtpClientSession session(settings);
  State state;
  check(state, session.connected());

  size_t pos = 0;
  int messages = 0;
  while (pos < input.size() && !state.closed) {
    const uint32_t roll = rng.next() % 100;
    if (roll < 3) {
      check(state, session.timeout());
    } else if (roll < 5 && session.waiting_for() == ClientWait::starttls) {
      check(state, rng.next() % 2 ? session.tls_established("TLSv1.3 TLS_AES_128_GCM_SHA256")
                                  : session.tls_failed("handshake failure"));
    } else if (roll < 40 && session.is_ready() && !state.in_transaction) {
      if (messages < 4) {
        auto message = make_message(rng);
        state.in_transaction = true;
        state.recipients = message->recipients.size();
        ++messages;
        check(state, session.send_message(message));
      } else {
        check(state, session.quit());
      }
    } else {
      const size_t chunk = 1 + rng.next() % 64;
      const std::string_view bytes = input.substr(pos, chunk);
      pos += bytes.size();
      check(state, session.receive(bytes));
    }
  }
  if (!state.closed) check(state, session.connection_lost("end of input"));
  return 0;
}
