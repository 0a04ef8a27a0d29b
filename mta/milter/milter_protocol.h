// mta/milter/milter_protocol.h — the Sendmail milter protocol, version 6, as
// spoken by libmilter: the packet codec and MilterSession, the MTA side of
// one conversation about one message.
//
// Owns: packet framing (uint32 big-endian length, command byte, data),
// option negotiation (actions, protocol steps, "no reply" steps, macro
// lists), the event sequence connect, helo, envfrom, envrcpt, data,
// header, eoh, body (chunks of at most 65535 bytes), eom, abort, quit, and
// the interpretation of every reply and modification into a MilterVerdict.
//
// Sans-IO: MilterSession never touches a socket or a clock. The caller
// writes output(), feeds whatever the milter sends to receive(), and reads
// the verdict once finished(). mta/milter_client.h moves the bytes and
// owns timeouts. A session is used by one thread at a time.
//
// SECURITY: faces a milter, which is a separate program reached over a
// socket; everything it sends is untrusted. Packets are bounded (64 MiB),
// every field is length-checked, unknown commands, modifications the
// milter did not negotiate and modifications before end-of-message are
// protocol errors (values, never exceptions or aborts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::mta {

// Constants from libmilter's mfdef.h / mfapi.h (the wire protocol).
namespace milter {
constexpr uint32_t kProtocolVersion = 6;
constexpr size_t kMaxPacketSize = 64u << 20;  // larger lengths are errors
constexpr size_t kBodyChunkSize = 65535;      // MILTER_CHUNK_SIZE

// Commands, MTA -> milter.
constexpr char kAbort = 'A';
constexpr char kBody = 'B';
constexpr char kConnect = 'C';
constexpr char kMacro = 'D';
constexpr char kEndOfBody = 'E';
constexpr char kHelo = 'H';
constexpr char kHeader = 'L';
constexpr char kMail = 'M';
constexpr char kEndOfHeaders = 'N';
constexpr char kOptionNegotiation = 'O';
constexpr char kQuit = 'Q';
constexpr char kRcpt = 'R';
constexpr char kData = 'T';

// Replies, milter -> MTA.
constexpr char kReplyAddRcpt = '+';
constexpr char kReplyDelRcpt = '-';
constexpr char kReplyAddRcptPar = '2';
constexpr char kReplyShutdown = '4';
constexpr char kReplyAccept = 'a';
constexpr char kReplyReplaceBody = 'b';
constexpr char kReplyContinue = 'c';
constexpr char kReplyDiscard = 'd';
constexpr char kReplyChangeFrom = 'e';
constexpr char kReplyConnectionFail = 'f';
constexpr char kReplyAddHeader = 'h';
constexpr char kReplyInsertHeader = 'i';
constexpr char kReplySetSymList = 'l';
constexpr char kReplyChangeHeader = 'm';
constexpr char kReplyProgress = 'p';
constexpr char kReplyQuarantine = 'q';
constexpr char kReplyReject = 'r';
constexpr char kReplySkip = 's';
constexpr char kReplyTempfail = 't';
constexpr char kReplyReplyCode = 'y';

// Actions (SMFIF_*): what the milter may do at end of message.
constexpr uint32_t kActAddHeaders = 0x001;
constexpr uint32_t kActChangeBody = 0x002;
constexpr uint32_t kActAddRcpt = 0x004;
constexpr uint32_t kActDelRcpt = 0x008;
constexpr uint32_t kActChangeHeaders = 0x010;
constexpr uint32_t kActQuarantine = 0x020;
constexpr uint32_t kActChangeFrom = 0x040;
constexpr uint32_t kActAddRcptPar = 0x080;
constexpr uint32_t kActSetSymList = 0x100;
constexpr uint32_t kAllActions = 0x1FF;

// Protocol flags (SMFIP_*): steps the milter does not want, steps it will
// not answer, and capabilities.
constexpr uint32_t kNoConnect = 0x000001;
constexpr uint32_t kNoHelo = 0x000002;
constexpr uint32_t kNoMail = 0x000004;
constexpr uint32_t kNoRcpt = 0x000008;
constexpr uint32_t kNoBody = 0x000010;
constexpr uint32_t kNoHeaders = 0x000020;
constexpr uint32_t kNoEndOfHeaders = 0x000040;
constexpr uint32_t kNoReplyHeader = 0x000080;
constexpr uint32_t kNoUnknown = 0x000100;
constexpr uint32_t kNoData = 0x000200;
constexpr uint32_t kSkip = 0x000400;
constexpr uint32_t kRcptRejected = 0x000800;  // not offered: rejected RCPTs never reach us
constexpr uint32_t kNoReplyConnect = 0x001000;
constexpr uint32_t kNoReplyHelo = 0x002000;
constexpr uint32_t kNoReplyMail = 0x004000;
constexpr uint32_t kNoReplyRcpt = 0x008000;
constexpr uint32_t kNoReplyData = 0x010000;
constexpr uint32_t kNoReplyUnknown = 0x020000;
constexpr uint32_t kNoReplyEndOfHeaders = 0x040000;
constexpr uint32_t kNoReplyBody = 0x080000;
constexpr uint32_t kHeaderLeadingSpace = 0x100000;
// Everything in SMFI_CURR_PROT except SMFIP_RCPT_REJ.
constexpr uint32_t kOfferedProtocol = 0x1FFFFF & ~kRcptRejected;
}  // namespace milter

struct MilterPacket {
  char command = 0;
  std::string data;
};

// Appends one framed packet to `out`.
void append_milter_packet(std::string& out, char command, std::string_view data);

// Incremental decoder for the byte stream from a milter.
class MilterPacketReader {
 public:
  enum class Status { packet, need_more, error };
  void feed(std::string_view bytes);
  // Takes the next complete packet out of the buffer. After `error` the
  // stream is unusable (error() says why).
  Status next(MilterPacket& packet);
  const std::string& error() const { return error_; }
  size_t buffered() const { return buffer_.size() - offset_; }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  std::string error_;
};

// Field helpers for packet data; nullopt on malformed input.
std::optional<uint32_t> read_milter_u32(std::string_view data, size_t offset);
// Splits data made of NUL-terminated strings. Fails when the last one is
// not terminated.
std::optional<std::vector<std::string_view>> split_milter_strings(std::string_view data);

// Values of the macros (sendmail "symbols") sent with each stage.
struct MilterMacros {
  std::string hostname;            // j
  std::string client_description;  // _ : "name [ip]"
  std::string daemon_name;         // {daemon_name}: the listener name
  std::string if_addr;             // {if_addr}: local address of the session
  std::string client_addr;         // {client_addr}
  std::string client_name;         // {client_name}
  std::string client_port;         // {client_port}
  std::string queue_id;            // i
  std::string auth_authen;         // {auth_authen}: AUTH user, "" when none
};

struct MilterRecipient {
  std::string address;            // without angle brackets
  std::vector<std::string> args;  // ESMTP parameters, "NOTIFY=NEVER"
};

struct MilterHeaderField {
  std::string_view name;
  // Everything after the colon, folding kept (CRLF + WSP); the session
  // strips leading blanks and turns CRLF into LF the way sendmail does.
  std::string_view value;
};

// The facts a milter is told about one message. Views point into the
// caller's storage, which must outlive the session.
struct MilterMessage {
  std::string client_ip;     // "" when unknown
  char client_family = 'U';  // '4', '6', 'L' (unix) or 'U' (unknown)
  uint16_t client_port = 0;
  std::string client_hostname;  // PTR name, or "[ip]" when none
  std::string helo;
  std::string sender;  // without angle brackets; "" is the null sender
  std::vector<std::string> mail_args;
  std::vector<MilterRecipient> recipients;
  std::vector<MilterHeaderField> headers;
  std::string_view body;  // CRLF lines, as delivered
  MilterMacros macros;
};

// SMFIR_CONTINUE and SMFIR_ACCEPT both let the message through;
// replycode carries the milter's own SMTP reply (4xx or 5xx).
enum class MilterAction { proceed, accept, reject, tempfail, discard, quarantine, replycode };
const char* to_string(MilterAction action);

struct MilterModification {
  enum class Kind {
    add_header,     // name, value
    insert_header,  // index (0 = topmost), name, value
    change_header,  // index (1-based occurrence of name), name, value ("" deletes)
    add_recipient,  // value = address without brackets, args = ESMTP args
    delete_recipient,
    replace_body,   // value = the complete new body
    change_sender,  // value = address without brackets, args = ESMTP args
  };
  Kind kind = Kind::add_header;
  uint32_t index = 0;
  std::string name;
  // Header values are the exact text to write after "Name:" (sendmail's
  // separating space is already added unless the milter negotiated
  // SMFIP_HDR_LEADSPC); line breaks inside are LF as the milter sent them.
  std::string value;
  std::string args;
};

struct MilterRejectedRecipient {
  std::string address;
  std::string reply;  // "550 5.1.1 ..." or "451 4.7.1 ..."
};

struct MilterVerdict {
  MilterAction action = MilterAction::proceed;
  // Complete SMTP reply for reject, tempfail and replycode ("550 5.7.1 ...").
  std::string reply;
  std::string quarantine_reason;  // set whenever the milter quarantined
  std::vector<MilterModification> modifications;
  // Recipients a milter refused at envrcpt while others stayed; when all
  // are refused the whole message gets the last refusal as its verdict.
  std::vector<MilterRejectedRecipient> rejected_recipients;
  uint32_t progress_reports = 0;  // SMFIR_PROGRESS seen (timeouts restart)
};

inline constexpr std::string_view kMilterRejectReply = "550 5.7.1 Command rejected";
inline constexpr std::string_view kMilterTempfailReply =
    "451 4.7.1 Service unavailable - try again later";

enum class MilterStage {
  negotiate,
  connect,
  helo,
  mail,
  rcpt,
  data,
  header,
  eoh,
  body,
  eom,
  finished
};
const char* to_string(MilterStage stage);

class MilterSession {
 public:
  // Queues SMFIC_OPTNEG. `message` must outlive the session.
  explicit MilterSession(const MilterMessage& message);

  // Bytes to write to the milter; consume_output(n) after writing n.
  std::string_view output() const { return std::string_view(output_).substr(output_sent_); }
  void consume_output(size_t n);
  // Bytes read from the milter, any split.
  void receive(std::string_view bytes);
  // The milter closed its side: a failure unless the verdict is known.
  void connection_closed();

  // True while a reply is awaited (read more).
  bool wants_input() const { return !finished_; }
  // Verdict known or failed; output() may still hold ABORT/QUIT to flush.
  bool finished() const { return finished_; }
  bool failed() const { return !failure_.empty(); }
  const std::string& failure() const { return failure_; }
  const MilterVerdict& verdict() const { return verdict_; }
  MilterStage stage() const { return stage_; }
  uint32_t negotiated_actions() const { return actions_; }
  uint32_t negotiated_protocol() const { return protocol_; }

 private:
  void handle_packet(const MilterPacket& packet);
  void handle_negotiation(const MilterPacket& packet);
  void handle_modification(const MilterPacket& packet);
  void advance();
  bool emit_current_step();
  void send_macros(char stage_command);
  void conclude(MilterAction action, std::string reply);
  void fail(std::string why);
  void enter_stage(MilterStage next);
  bool in_transaction() const;

  const MilterMessage& message_;
  std::string output_;
  size_t output_sent_ = 0;
  MilterPacketReader reader_;
  MilterStage stage_ = MilterStage::negotiate;
  size_t item_ = 0;  // recipient / header index, or body offset
  uint32_t actions_ = 0;
  uint32_t protocol_ = 0;
  // SMFIR_SETSYMLIST lists by stage command ('C', 'H', 'M', 'R', 'T', 'E',
  // 'N'); absent: send every macro of the stage.
  std::vector<std::pair<char, std::vector<std::string>>> macro_lists_;
  MilterVerdict verdict_;
  bool finished_ = false;
  std::string failure_;
};

}  // namespace ringmail::mta
