// libFuzzer target for the MTA side of the milter protocol
// (mta/milter_protocol.h): the input is what a milter sends back.
//
// The first input byte seeds a pseudo-random sequence that splits the rest
// into receive() calls and picks one of a few fixed messages (recipients,
// headers, a body of one or two 64 KiB chunks); the rest is the milter's
// reply stream. Every input replays identically.
//
// Besides ASan/UBSan findings, the target aborts when the session breaks a
// promise: it must end in a verdict or a failure once the milter has hung
// up; what it writes must be well-framed MTA commands (body chunks of at
// most 65535 bytes, nothing but ABORT/QUIT after the verdict); a verdict
// must be self-consistent (refusals carry a 4xx/5xx reply and no
// modifications; modifications only with the actions negotiated; header
// names valid); nothing it receives after finishing may change it.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON; run with the seed corpus in
// tests/fuzz/corpus/milter_protocol/ (byte 0 = seed, then milter packets);
// MILTER_FUZZ_VERBOSE=1 prints how each input ended.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mta/milter/milter_protocol.h"

namespace {

namespace milter = ringmail::mta::milter;
using ringmail::mta::MilterAction;
using ringmail::mta::MilterMessage;
using ringmail::mta::MilterModification;
using ringmail::mta::MilterPacket;
using ringmail::mta::MilterPacketReader;
using ringmail::mta::MilterSession;
using ringmail::mta::MilterStage;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "milter_protocol_fuzz: %s: %.*s\n", what,
               static_cast<int>(std::min<size_t>(detail.size(), 400)), detail.data());
  std::abort();
}

struct Rng {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

// The message facts; `message.body` points into `body`.
struct Facts {
  std::string body;
  MilterMessage message;
};

// Allocated once and never moved, so the views stay valid.
Facts* make_facts(bool big_body, bool no_recipients) {
  auto* f = new Facts;
  f->message.headers = {{"From", " App <app@example.test>"},
                        {"Subject", " fuzzed reply stream"},
                        {"X-Folded", " first part\r\n\tsecond part"}};
  if (big_body) {
    std::string line = "a body line that repeats to make more than one 64 KiB chunk\r\n";
    while (f->body.size() < milter::kBodyChunkSize + 1000) f->body += line;
  } else {
    f->body = "short body\r\n";
  }
  MilterMessage& m = f->message;
  m.body = f->body;
  m.client_ip = "192.0.2.7";
  m.client_family = '4';
  m.client_port = 40123;
  m.client_hostname = "client.example.net";
  m.helo = "client.example.net";
  m.sender = "app@example.test";
  m.mail_args = {"BODY=8BITMIME", "SIZE=1234"};
  if (!no_recipients) {
    m.recipients = {{"one@example.net", {}}, {"two@example.net", {"NOTIFY=NEVER"}}};
  }
  m.macros.hostname = "mx.fuzz.test";
  m.macros.client_description = "client.example.net [192.0.2.7]";
  m.macros.daemon_name = "relay";
  m.macros.if_addr = "192.0.2.1";
  m.macros.client_addr = "192.0.2.7";
  m.macros.client_name = "client.example.net";
  m.macros.client_port = "40123";
  m.macros.queue_id = "01FUZZ";
  m.macros.auth_authen = "app1";
  return f;
}

const MilterMessage& message_for(uint32_t pick) {
  // Built once: the session keeps views into them.
  static Facts* facts[3] = {make_facts(false, false), make_facts(true, false),
                            make_facts(false, true)};
  return facts[pick % 3]->message;
}

// Decodes everything the session wrote since the last call.
void check_output(MilterSession& session, MilterPacketReader& reader, bool& saw_quit) {
  std::string_view out = session.output();
  reader.feed(out);
  session.consume_output(out.size());
  MilterPacket packet;
  while (true) {
    switch (reader.next(packet)) {
      case MilterPacketReader::Status::need_more:
        return;
      case MilterPacketReader::Status::error:
        broken("session wrote an unframed packet", reader.error());
      case MilterPacketReader::Status::packet:
        break;
    }
    if (std::string_view("ABCDEHLMNOQRT").find(packet.command) == std::string_view::npos) {
      broken("session wrote an unknown command", std::string(1, packet.command));
    }
    if (saw_quit) broken("output after QUIT", std::string(1, packet.command));
    if (packet.command == milter::kQuit) saw_quit = true;
    if (packet.command == milter::kBody && packet.data.size() > milter::kBodyChunkSize) {
      broken("body chunk over 65535 bytes", std::to_string(packet.data.size()));
    }
  }
}

bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && c != ':';
  });
}

void check_verdict(const MilterSession& session, const MilterMessage& message) {
  if (!session.finished()) broken("not finished after the milter hung up", "");
  if (session.failed()) {
    if (session.failure().empty()) broken("failed without a reason", "");
    return;
  }
  if (session.stage() != MilterStage::finished) broken("verdict before the finished stage", "");
  const auto& v = session.verdict();
  bool refused = v.action == MilterAction::reject || v.action == MilterAction::tempfail ||
                 v.action == MilterAction::replycode;
  if (refused) {
    if (v.reply.size() < 3 || (v.reply[0] != '4' && v.reply[0] != '5')) {
      broken("refusal without a 4xx/5xx reply", v.reply);
    }
  } else if (!v.reply.empty()) {
    broken("reply text without a refusal", v.reply);
  }
  if ((refused || v.action == MilterAction::discard) && !v.modifications.empty()) {
    broken("modifications kept for a refused message", ringmail::mta::to_string(v.action));
  }
  if (v.action == MilterAction::quarantine && v.quarantine_reason.empty()) {
    broken("quarantine without a reason", "");
  }
  if (!message.recipients.empty() && v.rejected_recipients.size() >= message.recipients.size()) {
    broken("every recipient refused but the message goes on", "");
  }
  uint32_t actions = session.negotiated_actions();
  for (const MilterModification& mod : v.modifications) {
    using Kind = MilterModification::Kind;
    uint32_t needed = 0;
    switch (mod.kind) {
      case Kind::add_header:
      case Kind::insert_header:
        needed = milter::kActAddHeaders;
        break;
      case Kind::change_header:
        needed = milter::kActChangeHeaders;
        break;
      case Kind::add_recipient:
        needed = milter::kActAddRcpt | milter::kActAddRcptPar;
        break;
      case Kind::delete_recipient:
        needed = milter::kActDelRcpt;
        break;
      case Kind::replace_body:
        needed = milter::kActChangeBody;
        break;
      case Kind::change_sender:
        needed = milter::kActChangeFrom;
        break;
    }
    if (!(actions & needed)) broken("modification that was not negotiated", mod.name);
    bool header = mod.kind == Kind::add_header || mod.kind == Kind::insert_header ||
                  mod.kind == Kind::change_header;
    if (header && !valid_header_name(mod.name)) broken("invalid header name", mod.name);
    if (!header && !mod.name.empty()) broken("name on a non-header modification", mod.name);
    bool address = mod.kind == Kind::add_recipient || mod.kind == Kind::delete_recipient ||
                   mod.kind == Kind::change_sender;
    if (address && (mod.value.find_first_of("\r\n") != std::string::npos ||
                    mod.args.find_first_of("\r\n") != std::string::npos)) {
      broken("line break in an address", mod.value);
    }
  }
}

// MILTER_FUZZ_VERBOSE=1 prints each input's outcome (to check seeds).
bool verbose() {
  static const bool on = std::getenv("MILTER_FUZZ_VERBOSE") != nullptr;
  return on;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Rng rng{0x9E3779B97F4A7C15ull ^ data[0]};
  const MilterMessage& message = message_for(rng.next());
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  MilterSession session(message);
  MilterPacketReader written;
  bool saw_quit = false;
  check_output(session, written, saw_quit);
  size_t pos = 0;
  while (pos < input.size() && !session.finished()) {
    uint32_t r = rng.next();
    size_t chunk = (r % 4 == 0) ? 1 + (r >> 2) % 8 : 1 + (r >> 2) % 512;
    chunk = std::min(chunk, input.size() - pos);
    session.receive(input.substr(pos, chunk));
    pos += chunk;
    check_output(session, written, saw_quit);
  }
  if (!session.finished()) {
    session.connection_closed();
    if (!session.failed()) broken("hang-up mid-conversation is not a failure", "");
  }
  check_verdict(session, message);
  if (verbose()) {
    std::fprintf(stderr,
                 "milter_protocol_fuzz: stage %s, %s%s, %zu modification(s), %zu refused rcpt(s)\n",
                 to_string(session.stage()),
                 session.failed() ? "failed: " : to_string(session.verdict().action),
                 session.failure().c_str(), session.verdict().modifications.size(),
                 session.verdict().rejected_recipients.size());
  }

  // Whatever arrives after the verdict is ignored.
  MilterAction action = session.verdict().action;
  size_t modifications = session.verdict().modifications.size();
  std::string failure = session.failure();
  session.receive(input.substr(pos));
  session.receive(std::string_view("\0\0\0\x01r", 5));
  session.connection_closed();
  check_output(session, written, saw_quit);
  if (session.verdict().action != action ||
      session.verdict().modifications.size() != modifications || session.failure() != failure) {
    broken("verdict changed after the session finished", failure);
  }
  if (!session.failed() && !saw_quit) broken("verdict without QUIT", "");
  return 0;
}
