// admin-api/ctl_events.h — splits a Server-Sent Events stream (GET
// /api/v1/events) into its records as bytes arrive.
//
// Owns: the event-stream framing only (W3C EventSource "parsing an event
// stream"): lines end in LF, CRLF or CR; "data:" lines of one event are
// joined with LF; a blank line ends the event; lines starting with ':' are
// comments (the server's keep-alives); other fields are ignored. Pure: the
// curl write callback feeds it chunks of any size.
// Threads: one stream, one thread. Trust: a line longer than kMaxLine is
// dropped with its event rather than growing without bound.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ringmail::admin::ctl {

class SseParser {
 public:
  static constexpr size_t kMaxLine = 1 << 20;

  // Consumes a chunk; returns the data of each event it completed.
  std::vector<std::string> feed(std::string_view chunk);

 private:
  void line(std::string_view text, std::vector<std::string>* out);

  std::string partial_;    // the current line so far
  std::string data_;       // the current event's data so far
  bool has_data_ = false;  // a "data" field was seen (it may be empty)
  bool after_cr_ = false;  // the last chunk ended in CR: a following LF is part of it
  bool overlong_ = false;  // the current line passed kMaxLine: drop it and its event
};

}  // namespace ringmail::admin::ctl
