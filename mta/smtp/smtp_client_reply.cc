#include "mta/smtp/smtp_client_reply.h"

#include <cstring>
#include <limits>

namespace ringmail::mta {
namespace {

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

// Reply texts end up in logs, DSNs and the API: no control characters.
std::string sanitized(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) c = '?';
  }
  return out;
}

// "SIZE 10240000": the limit, 0 when absent or unreadable (no fixed limit).
uint64_t parse_size_parameter(std::string_view args) {
  while (!args.empty() && args.front() == ' ') args.remove_prefix(1);
  uint64_t n = 0;
  for (char c : args) {
    if (c == ' ') break;
    if (!is_digit(c)) return 0;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - d) / 10)
      return std::numeric_limits<uint64_t>::max();
    n = n * 10 + d;
  }
  return n;
}

// What must follow the content so that it ends with CRLF.
std::string_view missing_line_ending(std::string_view content) {
  if (content.empty() || content.ends_with("\r\n")) return {};
  if (content.back() == '\r') return "\n";
  return "\r\n";
}

}  // namespace

std::string SmtpReply::to_string() const {
  if (code == 0) return "local: " + text;
  std::string s = std::to_string(code);
  if (!enhanced.empty()) s += " " + enhanced;
  if (!text.empty()) s += " " + text;
  return s;
}

void SmtpReplyReader::feed(std::string_view bytes) {
  if (!error_.empty()) return;
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = scanned_ = 0;
  }
  buffer_.append(bytes);
}

void SmtpReplyReader::clear() {
  buffer_.clear();
  consumed_ = scanned_ = 0;
  partial_ = ReplyLines{};
  error_.clear();
}

SmtpReplyReader::Status SmtpReplyReader::fail(std::string why) {
  error_ = std::move(why);
  buffer_.clear();
  consumed_ = scanned_ = 0;
  partial_ = ReplyLines{};
  return Status::error;
}

SmtpReplyReader::Status SmtpReplyReader::next(ReplyLines* reply) {
  if (!error_.empty()) return Status::error;
  for (;;) {
    std::string_view rest = std::string_view(buffer_).substr(consumed_);
    size_t from = scanned_ > consumed_ ? scanned_ - consumed_ : 0;
    const void* lf = std::memchr(rest.data() + from, '\n', rest.size() - from);
    if (lf == nullptr) {
      if (rest.size() >= kMaxReplyLine) return fail("reply line too long");
      scanned_ = buffer_.size();
      if (consumed_ > buffer_.size() / 2) {  // keep the buffer from growing with old lines
        buffer_.erase(0, consumed_);
        scanned_ -= consumed_;
        consumed_ = 0;
      }
      return Status::incomplete;
    }
    size_t end = static_cast<size_t>(static_cast<const char*>(lf) - rest.data());
    if (end + 1 > kMaxReplyLine) return fail("reply line too long");
    std::string_view line = rest.substr(0, end);
    consumed_ += end + 1;
    scanned_ = consumed_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    bool valid = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
                 line[1] <= '5' && is_digit(line[2]) &&
                 (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!valid) return fail("malformed reply line \"" + sanitized(line.substr(0, 64)) + "\"");
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!partial_.lines.empty() && code != partial_.code) {
      return fail("reply code changes within a multi-line reply");
    }
    if (partial_.lines.size() >= kMaxReplyLines) return fail("reply has too many lines");
    partial_.code = code;
    partial_.lines.push_back(sanitized(line.size() > 4 ? line.substr(4) : std::string_view()));
    if (line.size() == 3 || line[3] == ' ') {
      *reply = std::move(partial_);
      partial_ = ReplyLines{};
      return Status::reply;
    }
  }
}

std::string_view enhanced_code_prefix(std::string_view text, int reply_class) {
  if (text.size() < 5 || text[0] != static_cast<char>('0' + reply_class) || text[1] != '.') {
    return {};
  }
  if (reply_class != 2 && reply_class != 4 && reply_class != 5) return {};
  size_t pos = 2;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (pos < text.size() && is_digit(text[pos]) && digits < 4) {
      ++pos;
      ++digits;
    }
    if (digits == 0 || digits > 3) return {};
    if (part == 0) {
      if (pos >= text.size() || text[pos] != '.') return {};
      ++pos;
    }
  }
  if (pos < text.size() && text[pos] != ' ') return {};
  return text.substr(0, pos);
}

SmtpReply make_reply(const ReplyLines& reply) {
  SmtpReply r;
  r.code = reply.code;
  if (!reply.lines.empty()) r.enhanced = enhanced_code_prefix(reply.lines[0], reply.code / 100);
  for (const std::string& line : reply.lines) {
    std::string_view text = line;
    // RFC 2034 repeats the code on every line; drop it wherever it is.
    if (!r.enhanced.empty() && text.starts_with(r.enhanced) &&
        (text.size() == r.enhanced.size() || text[r.enhanced.size()] == ' ')) {
      text.remove_prefix(r.enhanced.size());
    }
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    if (text.empty()) continue;
    if (!r.text.empty()) r.text += ' ';
    r.text.append(text);
  }
  return r;
}

EhloCapabilities parse_ehlo_capabilities(const ReplyLines& reply) {
  EhloCapabilities result;
  ServerCapabilities& caps = result.capabilities;
  caps.esmtp = true;
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    std::string_view line = reply.lines[i];
    size_t space = line.find(' ');
    std::string_view keyword = line.substr(0, space);
    std::string_view args = space == std::string_view::npos ? "" : line.substr(space + 1);
    if (iequals(keyword, "PIPELINING")) {
      caps.pipelining = true;
    } else if (iequals(keyword, "STARTTLS")) {
      caps.starttls = true;
    } else if (iequals(keyword, "8BITMIME")) {
      caps.eight_bit_mime = true;
    } else if (iequals(keyword, "SMTPUTF8")) {
      caps.smtputf8 = true;
    } else if (iequals(keyword, "CHUNKING")) {
      caps.chunking = true;
    } else if (iequals(keyword, "BINARYMIME")) {
      result.binarymime = true;
    } else if (iequals(keyword, "DSN")) {
      caps.dsn = true;
    } else if (iequals(keyword, "ENHANCEDSTATUSCODES")) {
      caps.enhanced_status_codes = true;
    } else if (iequals(keyword, "SIZE")) {
      caps.size = parse_size_parameter(args);
    }
  }
  return result;
}

bool has_eight_bit(std::string_view content) {
  for (char c : content) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

size_t message_wire_size(std::string_view content, std::string_view prefix) {
  return prefix.size() + content.size() + missing_line_ending(content).size();
}

namespace {

void append_dot_stuffed(std::string_view text, std::string& out) {
  size_t line_start = 0;
  while (line_start < text.size()) {
    // A bare LF starts a line too: servers that end data on "\n.\n" must
    // never see one here (SMTP smuggling).
    size_t lf = text.find('\n', line_start);
    size_t end = lf == std::string_view::npos ? text.size() : lf + 1;
    if (text[line_start] == '.') out += '.';
    out.append(text.substr(line_start, end - line_start));
    line_start = end;
  }
}

}  // namespace

std::string data_payload(std::string_view content, std::string_view prefix) {
  std::string out;
  out.reserve(prefix.size() + content.size() + content.size() / 64 + 8);
  append_dot_stuffed(prefix, out);
  append_dot_stuffed(content, out);
  out.append(missing_line_ending(content));
  out.append(".\r\n");
  return out;
}

std::string bdat_payload(std::string_view content, bool binary, std::string_view prefix) {
  std::string_view ending = binary ? std::string_view() : missing_line_ending(content);
  std::string out =
      "BDAT " + std::to_string(prefix.size() + content.size() + ending.size()) + " LAST\r\n";
  out.reserve(out.size() + prefix.size() + content.size() + ending.size());
  out.append(prefix);
  out.append(content);
  out.append(ending);
  return out;
}

}  // namespace ringmail::mta
