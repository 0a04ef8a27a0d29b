// mta/milter/milter_protocol.cc — milter packet codec and MilterSession.
#include "mta/milter/milter_protocol.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace ringmail::mta {

namespace {

void append_u32(std::string& out, uint32_t value) {
  out.push_back(static_cast<char>((value >> 24) & 0xFF));
  out.push_back(static_cast<char>((value >> 16) & 0xFF));
  out.push_back(static_cast<char>((value >> 8) & 0xFF));
  out.push_back(static_cast<char>(value & 0xFF));
}

void append_cstring(std::string& out, std::string_view text) {
  out.append(text);
  out.push_back('\0');
}

// Macro names compare with or without braces, as smfi_getsymval does.
std::string_view bare_macro_name(std::string_view name) {
  if (name.size() >= 2 && name.front() == '{' && name.back() == '}') {
    return name.substr(1, name.size() - 2);
  }
  return name;
}

bool valid_header_name(std::string_view name) {
  if (name.empty() || name.size() > 998) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 33 && u <= 126 && c != ':';
  });
}

bool has_line_break(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

// "<a@b>" -> "a@b"; sendmail passes addresses with brackets both ways.
std::string strip_brackets(std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  return std::string(address);
}

// "550 5.7.1 text" or a multi-line "550-5.7.1 a\r\n550 5.7.1 b".
bool valid_reply_text(std::string_view text) {
  if (text.size() < 3) return false;
  if (text[0] != '4' && text[0] != '5') return false;
  if (text[1] < '0' || text[1] > '9' || text[2] < '0' || text[2] > '9') return false;
  return text.size() == 3 || text[3] == ' ' || text[3] == '-';
}

// What sendmail puts on the wire for a header value: without leading
// blanks (unless the milter asked for them) and with LF line breaks.
std::string wire_header_value(std::string_view value, bool keep_leading_space) {
  if (!keep_leading_space) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
  }
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
    out.push_back(value[i]);
  }
  return out;
}

// Unknown commands go into logs; keep them printable.
std::string printable_command(char command) {
  auto u = static_cast<unsigned char>(command);
  if (u >= 33 && u <= 126) return std::string(1, command);
  char hex[8];
  std::snprintf(hex, sizeof(hex), "\\x%02x", u);
  return hex;
}

char stage_command_for_symlist_index(uint32_t index) {
  static constexpr char kStages[] = {'C', 'H', 'M', 'R', 'T', 'E', 'N'};
  return index < sizeof(kStages) ? kStages[index] : 0;
}

}  // namespace

void append_milter_packet(std::string& out, char command, std::string_view data) {
  append_u32(out, static_cast<uint32_t>(data.size() + 1));
  out.push_back(command);
  out.append(data);
}

void MilterPacketReader::feed(std::string_view bytes) {
  if (!error_.empty()) return;
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  buffer_.append(bytes);
}

MilterPacketReader::Status MilterPacketReader::next(MilterPacket& packet) {
  if (!error_.empty()) return Status::error;
  std::string_view pending = std::string_view(buffer_).substr(offset_);
  if (pending.size() < 4) return Status::need_more;
  uint32_t length = *read_milter_u32(pending, 0);
  if (length == 0) {
    error_ = "packet without a command byte";
    return Status::error;
  }
  if (length > milter::kMaxPacketSize) {
    error_ = "packet of " + std::to_string(length) + " bytes exceeds the 64 MiB limit";
    return Status::error;
  }
  if (pending.size() - 4 < length) return Status::need_more;
  packet.command = pending[4];
  packet.data.assign(pending.substr(5, length - 1));
  offset_ += 4 + length;
  if (offset_ > (1u << 16) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  return Status::packet;
}

std::optional<uint32_t> read_milter_u32(std::string_view data, size_t offset) {
  if (offset > data.size() || data.size() - offset < 4) return std::nullopt;
  auto byte = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(data[offset + i]));
  };
  return (byte(0) << 24) | (byte(1) << 16) | (byte(2) << 8) | byte(3);
}

std::optional<std::vector<std::string_view>> split_milter_strings(std::string_view data) {
  std::vector<std::string_view> parts;
  while (!data.empty()) {
    size_t nul = data.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    parts.push_back(data.substr(0, nul));
    data.remove_prefix(nul + 1);
  }
  return parts;
}

const char* to_string(MilterAction action) {
  switch (action) {
    case MilterAction::proceed:
      return "continue";
    case MilterAction::accept:
      return "accept";
    case MilterAction::reject:
      return "reject";
    case MilterAction::tempfail:
      return "tempfail";
    case MilterAction::discard:
      return "discard";
    case MilterAction::quarantine:
      return "quarantine";
    case MilterAction::replycode:
      return "replycode";
  }
  return "?";
}

const char* to_string(MilterStage stage) {
  switch (stage) {
    case MilterStage::negotiate:
      return "negotiate";
    case MilterStage::connect:
      return "connect";
    case MilterStage::helo:
      return "helo";
    case MilterStage::mail:
      return "envfrom";
    case MilterStage::rcpt:
      return "envrcpt";
    case MilterStage::data:
      return "data";
    case MilterStage::header:
      return "header";
    case MilterStage::eoh:
      return "eoh";
    case MilterStage::body:
      return "body";
    case MilterStage::eom:
      return "eom";
    case MilterStage::finished:
      return "finished";
  }
  return "?";
}

MilterSession::MilterSession(const MilterMessage& message) : message_(message) {
  std::string data;
  append_u32(data, milter::kProtocolVersion);
  append_u32(data, milter::kAllActions);
  append_u32(data, milter::kOfferedProtocol);
  append_milter_packet(output_, milter::kOptionNegotiation, data);
}

void MilterSession::consume_output(size_t n) {
  output_sent_ = std::min(output_.size(), output_sent_ + n);
  if (output_sent_ == output_.size()) {
    output_.clear();
    output_sent_ = 0;
  }
}

void MilterSession::receive(std::string_view bytes) {
  if (finished_) return;
  reader_.feed(bytes);
  MilterPacket packet;
  while (!finished_) {
    switch (reader_.next(packet)) {
      case MilterPacketReader::Status::need_more:
        return;
      case MilterPacketReader::Status::error:
        fail(reader_.error());
        return;
      case MilterPacketReader::Status::packet:
        handle_packet(packet);
        break;
    }
  }
}

void MilterSession::connection_closed() {
  if (!finished_) fail(std::string("connection closed by the milter at ") + to_string(stage_));
}

void MilterSession::enter_stage(MilterStage next) {
  SPDLOG_TRACE("milter: {} -> {}", to_string(stage_), to_string(next));
  stage_ = next;
}

void MilterSession::fail(std::string why) {
  failure_ = std::move(why);
  finished_ = true;
}

bool MilterSession::in_transaction() const {
  switch (stage_) {
    case MilterStage::negotiate:
    case MilterStage::connect:
    case MilterStage::helo:
    case MilterStage::eom:
    case MilterStage::finished:
      return false;
    case MilterStage::mail:
    case MilterStage::rcpt:
    case MilterStage::data:
    case MilterStage::header:
    case MilterStage::eoh:
    case MilterStage::body:
      return true;
  }
  return false;
}

// Ends the conversation: the milter gets SMFIC_ABORT when a transaction is
// open (libmilter then calls xxfi_abort), then SMFIC_QUIT.
void MilterSession::conclude(MilterAction action, std::string reply) {
  if (action != MilterAction::accept && action != MilterAction::proceed &&
      action != MilterAction::quarantine) {
    verdict_.modifications.clear();  // sendmail drops changes of a refused message
  }
  verdict_.action = action;
  verdict_.reply = std::move(reply);
  if (in_transaction()) append_milter_packet(output_, milter::kAbort, {});
  append_milter_packet(output_, milter::kQuit, {});
  enter_stage(MilterStage::finished);
  finished_ = true;
}

void MilterSession::send_macros(char stage_command) {
  std::vector<std::pair<std::string_view, std::string_view>> macros;
  const MilterMacros& m = message_.macros;
  std::string rcpt_addr;
  switch (stage_command) {
    case milter::kConnect:
      macros = {{"j", m.hostname},
                {"_", m.client_description},
                {"{daemon_name}", m.daemon_name},
                {"{if_addr}", m.if_addr},
                {"{client_addr}", m.client_addr},
                {"{client_name}", m.client_name},
                {"{client_port}", m.client_port}};
      break;
    case milter::kMail:
      macros = {
          {"i", m.queue_id}, {"{auth_authen}", m.auth_authen}, {"{mail_addr}", message_.sender}};
      break;
    case milter::kRcpt:
      macros = {{"{rcpt_addr}", message_.recipients[item_].address}};
      break;
    case milter::kData:
    case milter::kEndOfHeaders:
    case milter::kEndOfBody:
      macros = {{"i", m.queue_id}};
      break;
    default:
      break;
  }
  const std::vector<std::string>* wanted = nullptr;
  for (const auto& [stage, names] : macro_lists_) {
    if (stage == stage_command) wanted = &names;
  }
  std::string data(1, stage_command);
  for (const auto& [name, value] : macros) {
    if (value.empty()) continue;
    // Captured by value: clang 14 cannot capture a structured binding.
    const std::string_view bare = bare_macro_name(name);
    if (wanted != nullptr &&
        std::none_of(wanted->begin(), wanted->end(),
                     [bare](const std::string& w) { return bare_macro_name(w) == bare; })) {
      continue;
    }
    append_cstring(data, name);
    append_cstring(data, value);
  }
  if (data.size() > 1) append_milter_packet(output_, milter::kMacro, data);
}

// Sends the event of the current stage unless the milter declined it;
// true when a reply must be awaited.
bool MilterSession::emit_current_step() {
  std::string data;
  switch (stage_) {
    case MilterStage::negotiate:
    case MilterStage::finished:
      return false;
    case MilterStage::connect:
      if (protocol_ & milter::kNoConnect) return false;
      send_macros(milter::kConnect);
      append_cstring(data, message_.client_hostname);
      data.push_back(message_.client_family);
      if (message_.client_family != 'U') {
        data.push_back(static_cast<char>(message_.client_port >> 8));
        data.push_back(static_cast<char>(message_.client_port & 0xFF));
        append_cstring(data, message_.client_ip);
      }
      append_milter_packet(output_, milter::kConnect, data);
      return !(protocol_ & milter::kNoReplyConnect);
    case MilterStage::helo:
      if ((protocol_ & milter::kNoHelo) || message_.helo.empty()) return false;
      send_macros(milter::kHelo);
      append_cstring(data, message_.helo);
      append_milter_packet(output_, milter::kHelo, data);
      return !(protocol_ & milter::kNoReplyHelo);
    case MilterStage::mail:
      if (protocol_ & milter::kNoMail) return false;
      send_macros(milter::kMail);
      append_cstring(data, "<" + message_.sender + ">");
      for (const auto& arg : message_.mail_args) append_cstring(data, arg);
      append_milter_packet(output_, milter::kMail, data);
      return !(protocol_ & milter::kNoReplyMail);
    case MilterStage::rcpt: {
      if (protocol_ & milter::kNoRcpt) return false;
      send_macros(milter::kRcpt);
      const MilterRecipient& rcpt = message_.recipients[item_];
      append_cstring(data, "<" + rcpt.address + ">");
      for (const auto& arg : rcpt.args) append_cstring(data, arg);
      append_milter_packet(output_, milter::kRcpt, data);
      return !(protocol_ & milter::kNoReplyRcpt);
    }
    case MilterStage::data:
      if (protocol_ & milter::kNoData) return false;
      send_macros(milter::kData);
      append_milter_packet(output_, milter::kData, {});
      return !(protocol_ & milter::kNoReplyData);
    case MilterStage::header: {
      if (protocol_ & milter::kNoHeaders) return false;
      const MilterHeaderField& field = message_.headers[item_];
      append_cstring(data, field.name);
      append_cstring(data, wire_header_value(field.value, protocol_ & milter::kHeaderLeadingSpace));
      append_milter_packet(output_, milter::kHeader, data);
      return !(protocol_ & milter::kNoReplyHeader);
    }
    case MilterStage::eoh:
      if (protocol_ & milter::kNoEndOfHeaders) return false;
      send_macros(milter::kEndOfHeaders);
      append_milter_packet(output_, milter::kEndOfHeaders, {});
      return !(protocol_ & milter::kNoReplyEndOfHeaders);
    case MilterStage::body:
      if (protocol_ & milter::kNoBody) return false;
      append_milter_packet(output_, milter::kBody,
                           message_.body.substr(item_, milter::kBodyChunkSize));
      return !(protocol_ & milter::kNoReplyBody);
    case MilterStage::eom:
      send_macros(milter::kEndOfBody);
      append_milter_packet(output_, milter::kEndOfBody, {});
      return true;
  }
  return false;
}

// Moves to the next event the milter wants and sends it, until one needs a
// reply (end of message always does).
void MilterSession::advance() {
  while (!finished_) {
    switch (stage_) {
      case MilterStage::negotiate:
        enter_stage(MilterStage::connect);
        break;
      case MilterStage::connect:
        enter_stage(MilterStage::helo);
        break;
      case MilterStage::helo:
        enter_stage(MilterStage::mail);
        break;
      case MilterStage::mail:
        item_ = 0;
        enter_stage(message_.recipients.empty() ? MilterStage::data : MilterStage::rcpt);
        break;
      case MilterStage::rcpt:
        if (item_ + 1 < message_.recipients.size()) {
          ++item_;
          break;
        }
        if (!verdict_.rejected_recipients.empty() &&
            verdict_.rejected_recipients.size() == message_.recipients.size()) {
          // Nobody is left to deliver to: the message takes the last refusal.
          std::string reply = verdict_.rejected_recipients.back().reply;
          MilterAction action = reply[0] == '4' ? MilterAction::tempfail : MilterAction::reject;
          verdict_.rejected_recipients.clear();
          conclude(action, std::move(reply));
          return;
        }
        enter_stage(MilterStage::data);
        break;
      case MilterStage::data:
        item_ = 0;
        enter_stage(message_.headers.empty() ? MilterStage::eoh : MilterStage::header);
        break;
      case MilterStage::header:
        if (++item_ >= message_.headers.size()) enter_stage(MilterStage::eoh);
        break;
      case MilterStage::eoh:
        item_ = 0;
        enter_stage(message_.body.empty() ? MilterStage::eom : MilterStage::body);
        break;
      case MilterStage::body:
        item_ += milter::kBodyChunkSize;
        if (item_ >= message_.body.size()) enter_stage(MilterStage::eom);
        break;
      case MilterStage::eom:
      case MilterStage::finished:
        return;
    }
    if (emit_current_step()) return;
  }
}

void MilterSession::handle_negotiation(const MilterPacket& packet) {
  auto version = read_milter_u32(packet.data, 0);
  auto actions = read_milter_u32(packet.data, 4);
  auto protocol = read_milter_u32(packet.data, 8);
  if (!version || !actions || !protocol) return fail("short option negotiation reply");
  if (*version < 2 || *version > milter::kProtocolVersion) {
    return fail("milter speaks protocol version " + std::to_string(*version));
  }
  if (*actions & ~milter::kAllActions) return fail("milter asks for unknown actions");
  if (*protocol & ~milter::kOfferedProtocol)
    return fail("milter asks for protocol flags not offered");
  actions_ = *actions;
  protocol_ = *protocol;
  std::string_view rest = std::string_view(packet.data).substr(12);
  while (!rest.empty()) {
    if (!(actions_ & milter::kActSetSymList)) return fail("macro list without SMFIF_SETSYMLIST");
    auto index = read_milter_u32(rest, 0);
    if (!index) return fail("truncated macro list");
    char stage = stage_command_for_symlist_index(*index);
    if (stage == 0) return fail("macro list for unknown stage " + std::to_string(*index));
    rest.remove_prefix(4);
    size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) return fail("unterminated macro list");
    std::vector<std::string> names;
    std::string_view list = rest.substr(0, nul);
    while (!list.empty()) {
      size_t sep = list.find_first_of(" ,");
      std::string_view name = list.substr(0, sep);
      if (!name.empty()) names.emplace_back(name);
      if (sep == std::string_view::npos) break;
      list.remove_prefix(sep + 1);
    }
    macro_lists_.emplace_back(stage, std::move(names));
    rest.remove_prefix(nul + 1);
  }
  advance();
}

void MilterSession::handle_modification(const MilterPacket& packet) {
  if (stage_ != MilterStage::eom) {
    return fail(std::string("modification '") + packet.command + "' before end of message");
  }
  auto require = [&](uint32_t action) {
    if (actions_ & action) return true;
    fail(std::string("modification '") + packet.command + "' was not negotiated");
    return false;
  };
  auto header_value = [&](std::string_view value) {
    if (value.empty() || (protocol_ & milter::kHeaderLeadingSpace)) return std::string(value);
    return " " + std::string(value);
  };
  MilterModification mod;
  std::string_view data = packet.data;
  switch (packet.command) {
    case milter::kReplyInsertHeader:
    case milter::kReplyChangeHeader: {
      if (!require(packet.command == milter::kReplyInsertHeader ? milter::kActAddHeaders
                                                                : milter::kActChangeHeaders)) {
        return;
      }
      auto index = read_milter_u32(data, 0);
      if (!index) return fail("truncated header index");
      mod.index = *index;
      data.remove_prefix(4);
      [[fallthrough]];
    }
    case milter::kReplyAddHeader: {
      if (packet.command == milter::kReplyAddHeader && !require(milter::kActAddHeaders)) return;
      auto parts = split_milter_strings(data);
      if (!parts || parts->size() != 2) return fail("malformed header modification");
      if (!valid_header_name((*parts)[0])) return fail("invalid header name from milter");
      mod.kind = packet.command == milter::kReplyAddHeader ? MilterModification::Kind::add_header
                 : packet.command == milter::kReplyInsertHeader
                     ? MilterModification::Kind::insert_header
                     : MilterModification::Kind::change_header;
      mod.name = std::string((*parts)[0]);
      mod.value = header_value((*parts)[1]);
      break;
    }
    case milter::kReplyAddRcpt:
    case milter::kReplyAddRcptPar:
    case milter::kReplyDelRcpt:
    case milter::kReplyChangeFrom: {
      uint32_t action = packet.command == milter::kReplyAddRcpt      ? milter::kActAddRcpt
                        : packet.command == milter::kReplyAddRcptPar ? milter::kActAddRcptPar
                        : packet.command == milter::kReplyDelRcpt    ? milter::kActDelRcpt
                                                                     : milter::kActChangeFrom;
      if (!require(action)) return;
      auto parts = split_milter_strings(data);
      size_t max_parts =
          packet.command == milter::kReplyAddRcpt || packet.command == milter::kReplyDelRcpt ? 1
                                                                                             : 2;
      if (!parts || parts->empty() || parts->size() > max_parts)
        return fail("malformed address modification");
      mod.kind =
          packet.command == milter::kReplyChangeFrom ? MilterModification::Kind::change_sender
          : packet.command == milter::kReplyDelRcpt  ? MilterModification::Kind::delete_recipient
                                                     : MilterModification::Kind::add_recipient;
      mod.value = strip_brackets((*parts)[0]);
      if (parts->size() == 2) mod.args = std::string((*parts)[1]);
      if (has_line_break(mod.value) || has_line_break(mod.args))
        return fail("line break in an address");
      if (mod.value.empty() && mod.kind != MilterModification::Kind::change_sender) {
        return fail("empty recipient address");
      }
      break;
    }
    case milter::kReplyReplaceBody: {
      if (!require(milter::kActChangeBody)) return;
      for (auto& existing : verdict_.modifications) {
        if (existing.kind == MilterModification::Kind::replace_body) {
          existing.value.append(data);
          return;
        }
      }
      mod.kind = MilterModification::Kind::replace_body;
      mod.value = std::string(data);
      break;
    }
    case milter::kReplyQuarantine: {
      if (!require(milter::kActQuarantine)) return;
      auto parts = split_milter_strings(data);
      if (!parts || parts->size() != 1) return fail("malformed quarantine reason");
      verdict_.quarantine_reason = std::string((*parts)[0]);
      if (verdict_.quarantine_reason.empty()) verdict_.quarantine_reason = "quarantined by milter";
      return;
    }
    default:
      return fail(std::string("reply '") + packet.command +
                  "' is only valid in option negotiation");
  }
  verdict_.modifications.push_back(std::move(mod));
}

void MilterSession::handle_packet(const MilterPacket& packet) {
  if (stage_ == MilterStage::negotiate) {
    if (packet.command != milter::kOptionNegotiation) {
      return fail(std::string("expected option negotiation, got '") +
                  printable_command(packet.command) + "'");
    }
    return handle_negotiation(packet);
  }
  auto refuse = [&](MilterAction action, std::string reply) {
    if (stage_ == MilterStage::rcpt) {
      // A refused recipient does not end the message (libmilter semantics).
      verdict_.rejected_recipients.push_back(
          {message_.recipients[item_].address, std::move(reply)});
      return advance();
    }
    conclude(action, std::move(reply));
  };
  switch (packet.command) {
    case milter::kReplyContinue:
      if (stage_ == MilterStage::eom) {
        return conclude(
            verdict_.quarantine_reason.empty() ? MilterAction::proceed : MilterAction::quarantine,
            "");
      }
      return advance();
    case milter::kReplyAccept:
      return conclude(
          verdict_.quarantine_reason.empty() ? MilterAction::accept : MilterAction::quarantine, "");
    case milter::kReplyReject:
      return refuse(MilterAction::reject, std::string(kMilterRejectReply));
    case milter::kReplyTempfail:
      return refuse(MilterAction::tempfail, std::string(kMilterTempfailReply));
    case milter::kReplyReplyCode: {
      auto parts = split_milter_strings(packet.data);
      if (!parts || parts->size() != 1 || !valid_reply_text((*parts)[0]))
        return fail("malformed reply code");
      return refuse(MilterAction::replycode, std::string((*parts)[0]));
    }
    case milter::kReplyDiscard:
      return conclude(MilterAction::discard, "");
    case milter::kReplyShutdown:
    case milter::kReplyConnectionFail:
      return conclude(MilterAction::tempfail, std::string(kMilterTempfailReply));
    case milter::kReplyProgress:
      ++verdict_.progress_reports;
      return;
    case milter::kReplySkip:
      if (stage_ != MilterStage::body) return fail("skip outside the body");
      item_ = message_.body.size();
      return advance();
    case milter::kOptionNegotiation:
      return fail("option negotiation repeated");
    case milter::kReplyAddHeader:
    case milter::kReplyInsertHeader:
    case milter::kReplyChangeHeader:
    case milter::kReplyAddRcpt:
    case milter::kReplyAddRcptPar:
    case milter::kReplyDelRcpt:
    case milter::kReplyReplaceBody:
    case milter::kReplyChangeFrom:
    case milter::kReplyQuarantine:
    case milter::kReplySetSymList:
      return handle_modification(packet);
    default:
      return fail(std::string("unknown reply '") + printable_command(packet.command) + "'");
  }
}

}  // namespace ringmail::mta
