#include "mta/smtp/smtp_data_reader.h"

namespace ringmail::mta {
namespace {
constexpr uint32_t kMaxLineLength = 998;  // RFC 5322 §2.1.1, without CRLF
}

void SmtpDataReader::begin(Framing framing, uint64_t max_size, bool hash_relaxed_body,
                           bool hash_simple_body) {
  content_.clear();
  relaxed_hasher_.reset();
  simple_hasher_.reset();
  if (hash_relaxed_body) relaxed_hasher_.emplace(DkimCanonicalization::relaxed);
  if (hash_simple_body) simple_hasher_.emplace(DkimCanonicalization::simple);
  in_body_ = false;
  body_offset_ = 0;
  hashed_upto_ = 0;
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
  // The body starts after the first empty line: CRLF CRLF, or a CRLF that
  // opens the message (no header section).
  if (!in_body_ && (relaxed_hasher_ || simple_hasher_) && content_.size() >= 2 &&
      content_.compare(content_.size() - 2, 2, "\r\n") == 0 &&
      (content_.size() == 2 ||
       (content_.size() >= 4 && content_.compare(content_.size() - 4, 2, "\r\n") == 0))) {
    in_body_ = true;
    body_offset_ = hashed_upto_ = content_.size();
  }
}

// Called at each line end: the hashers see the body as it arrives, so the
// signer does not read it again.
void SmtpDataReader::hash_completed_lines() {
  if (!in_body_ || too_big_ || hashed_upto_ >= content_.size()) return;
  std::string_view fresh = std::string_view(content_).substr(hashed_upto_);
  if (relaxed_hasher_) relaxed_hasher_->update(fresh);
  if (simple_hasher_) simple_hasher_->update(fresh);
  hashed_upto_ = content_.size();
}

SmtpDataReader::BodyHashes SmtpDataReader::body_hashes() {
  BodyHashes hashes;
  if (!in_body_ || too_big_) return hashes;
  hash_completed_lines();
  if (relaxed_hasher_) hashes.relaxed = relaxed_hasher_->finish();
  if (simple_hasher_) hashes.simple = simple_hasher_->finish();
  hashes.body_offset = body_offset_;
  relaxed_hasher_.reset();
  simple_hasher_.reset();
  return hashes;
}

void SmtpDataReader::end_line(bool proper_crlf) {
  emit("\r\n", 2);
  hash_completed_lines();
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
