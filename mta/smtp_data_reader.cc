#include "mta/smtp_data_reader.h"

namespace ringmail::mta {
namespace {
constexpr uint32_t kMaxLineLength = 998;  // RFC 5322 §2.1.1, without CRLF
}

void SmtpDataReader::begin(Framing framing, uint64_t max_size) {
  content_.clear();
  framing_ = framing;
  max_size_ = max_size;
  size_ = 0;
  line_length_ = 0;
  dot_ = DotState::none;
  at_line_start_ = true;
  line_start_proper_ = true;
  dot_line_proper_ = false;
  pending_cr_ = false;
  finished_ = false;
  too_big_ = false;
  bare_cr_ = false;
  nul_ = false;
  long_line_ = false;
}

void SmtpDataReader::emit(const char* p, size_t n) {
  size_ += n;
  if (too_big_) return;
  if (size_ > max_size_) {
    too_big_ = true;
    std::string().swap(content_);
    return;
  }
  content_.append(p, n);
}

void SmtpDataReader::end_line(bool proper_crlf) {
  emit("\r\n", 2);
  at_line_start_ = true;
  line_start_proper_ = proper_crlf;
  line_length_ = 0;
}

void SmtpDataReader::put(char c) {
  if (pending_cr_) {
    pending_cr_ = false;
    if (c == '\n') {
      end_line(true);
      return;
    }
    bare_cr_ = true;
    emit("\r", 1);
    ++line_length_;
    at_line_start_ = false;
  }
  if (c == '\r') {
    pending_cr_ = true;
    return;
  }
  if (c == '\n') {
    end_line(false);  // bare LF: stored as CRLF, but it can never start an end-of-data
    return;
  }
  if (c == '\0') nul_ = true;
  emit(&c, 1);
  if (++line_length_ > kMaxLineLength) long_line_ = true;
  at_line_start_ = false;
}

size_t SmtpDataReader::feed(std::string_view bytes) {
  if (finished_) return 0;
  const char* p = bytes.data();
  const size_t n = bytes.size();
  const bool dots = framing_ == Framing::dot_terminated;
  size_t i = 0;
  while (i < n) {
    if (!pending_cr_ && !at_line_start_ && dot_ == DotState::none) {
      // Fast path: a run of ordinary bytes inside a line.
      size_t j = i;
      while (j < n && p[j] != '\r' && p[j] != '\n' && p[j] != '\0') ++j;
      if (j > i) {
        emit(p + i, j - i);
        line_length_ +=
            static_cast<uint32_t>(j - i > kMaxLineLength + 1 ? kMaxLineLength + 1 : j - i);
        if (line_length_ > kMaxLineLength) long_line_ = true;
        i = j;
        continue;
      }
    }
    const char c = p[i++];
    if (!dots) {
      put(c);
      continue;
    }
    switch (dot_) {
      case DotState::none:
        if (at_line_start_ && !pending_cr_ && c == '.') {
          dot_ = DotState::after_dot;
          dot_line_proper_ = line_start_proper_;
          at_line_start_ = false;
        } else {
          put(c);
        }
        break;
      case DotState::after_dot:
        if (c == '\r') {
          dot_ = DotState::after_dot_cr;
        } else if (c == '\n') {
          // "." then a bare LF: not an end; keep the line as "." so that
          // nothing that looked like a terminator is silently rewritten.
          dot_ = DotState::none;
          put('.');
          put('\n');
        } else {
          dot_ = DotState::none;
          put(c);  // the leading dot is dropped (RFC 5321 §4.5.2)
        }
        break;
      case DotState::after_dot_cr:
        dot_ = DotState::none;
        if (c == '\n') {
          if (dot_line_proper_) {
            finished_ = true;
            return i;
          }
          put('.');  // "\n.\r\n": content, never an end
          put('\r');
          put('\n');
        } else {
          put('\r');  // bare CR after a stuffed dot
          put(c);
        }
        break;
    }
  }
  return i;
}

void SmtpDataReader::finish_chunked() {
  if (pending_cr_) {
    pending_cr_ = false;
    bare_cr_ = true;
    emit("\r", 1);
    at_line_start_ = false;
  }
  if (!at_line_start_) end_line(true);
  finished_ = true;
}

}  // namespace ringmail::mta
