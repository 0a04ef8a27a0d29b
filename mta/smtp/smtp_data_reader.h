// mta/smtp/smtp_data_reader.h — the message content decoder behind DATA and BDAT.
//
// Owns: the bytes of one message in transit from the client to the session:
// end-of-data detection (only <CRLF>.<CRLF>), dot-unstuffing, bare LF
// normalisation to CRLF, and the content checks that reject the message at
// its end (bare CR, NUL, lines over 998 octets, size over the limit).
// One reader per session; called from the session's shard thread only.
//
// SECURITY: faces the network. It is the SMTP smuggling defence: "\n.\n",
// "\r\n.\n", "\n.\r\n" and "\r.\r" never end the data, whatever the split of
// the input. Memory is bounded by the size limit: past it, bytes are counted
// and dropped.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mta/smtp/dkim_canonical.h"

namespace ringmail::mta {

class SmtpDataReader {
 public:
  enum class Framing { dot_terminated, chunked };

  // DKIM body hashes (bh=) computed while the body streams in, one per
  // canonicalization asked for; "" when not asked for or not available.
  struct BodyHashes {
    std::string relaxed;
    std::string simple;
    size_t body_offset = 0;  // where the hashed body starts in content()
  };

  // Starts a new message. The previous content is dropped. With a
  // canonicalization flag set, the body (after the first empty line) is
  // hashed line by line as it arrives.
  void begin(Framing framing, uint64_t max_size, bool hash_relaxed_body = false,
             bool hash_simple_body = false);
  // Takes bytes of the stream; returns how many it consumed. With
  // dot_terminated framing it stops right after the terminating
  // <CRLF>.<CRLF> (finished() is then true); chunked framing takes all.
  size_t feed(std::string_view bytes);
  // BDAT LAST: ends the content (a CR left at the very end is a bare CR; a
  // last line without CRLF gets one).
  void finish_chunked();

  bool finished() const { return finished_; }
  uint64_t size() const { return size_; }  // octets after decoding, even past the limit
  bool too_big() const { return too_big_; }
  bool bare_cr() const { return bare_cr_; }
  bool nul() const { return nul_; }
  bool long_line() const { return long_line_; }
  const std::string& content() const { return content_; }
  std::string take_content() { return std::move(content_); }
  // After finished(): the streamed body hashes (empty strings when the
  // message had no empty line, was too big, or hashing was not asked for).
  BodyHashes body_hashes();

 private:
  enum class DotState { none, after_dot, after_dot_cr };

  void put(char c);  // one content byte, with CR/LF bookkeeping
  void emit(const char* p, size_t n);
  void end_line(bool proper_crlf);
  void hash_completed_lines();

  std::optional<DkimBodyHasher> relaxed_hasher_;
  std::optional<DkimBodyHasher> simple_hasher_;
  bool in_body_ = false;
  size_t body_offset_ = 0;  // start of the body in content_
  size_t hashed_upto_ = 0;  // content_ offset fed to the hashers so far

  std::string content_;
  Framing framing_ = Framing::dot_terminated;
  uint64_t max_size_ = 0;
  uint64_t size_ = 0;
  uint32_t line_length_ = 0;
  DotState dot_ = DotState::none;
  bool at_line_start_ = true;
  bool line_start_proper_ = true;  // the line began after a real CRLF
  bool dot_line_proper_ = false;
  bool pending_cr_ = false;
  bool finished_ = false;
  bool too_big_ = false;
  bool bare_cr_ = false;
  bool nul_ = false;
  bool long_line_ = false;
};

}  // namespace ringmail::mta
