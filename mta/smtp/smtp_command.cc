#include "mta/smtp/smtp_command.h"

#include <arpa/inet.h>

#include <array>
#include <limits>

namespace ringmail::mta {
namespace {

constexpr size_t kMaxLocalPart = 64;  // RFC 5321 §4.5.3.1.1
constexpr size_t kMaxDomain = 255;    // RFC 5321 §4.5.3.1.2
constexpr size_t kMaxPath = 256;      // RFC 5321 §4.5.3.1.3
constexpr size_t kMaxEnvid = 100;     // RFC 3461 §4.4
constexpr size_t kMaxOrcpt = 500;     // RFC 3461 §4.2

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_high(char c) { return static_cast<unsigned char>(c) >= 0x80; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

// RFC 5322 atext.
bool is_atext(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

struct VerbEntry {
  std::string_view name;
  SmtpVerb verb;
};

constexpr std::array<VerbEntry, 14> kVerbs{{
    {"HELO", SmtpVerb::helo},
    {"EHLO", SmtpVerb::ehlo},
    {"MAIL", SmtpVerb::mail},
    {"RCPT", SmtpVerb::rcpt},
    {"DATA", SmtpVerb::data},
    {"BDAT", SmtpVerb::bdat},
    {"RSET", SmtpVerb::rset},
    {"NOOP", SmtpVerb::noop},
    {"QUIT", SmtpVerb::quit},
    {"VRFY", SmtpVerb::vrfy},
    {"EXPN", SmtpVerb::expn},
    {"HELP", SmtpVerb::help},
    {"STARTTLS", SmtpVerb::starttls},
    {"AUTH", SmtpVerb::auth},
}};

bool is_ldh_label(std::string_view label, bool allow_utf8) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  for (char c : label) {
    if (is_alpha(c) || is_digit(c) || c == '-') continue;
    if (allow_utf8 && is_high(c)) continue;
    return false;
  }
  return true;
}

bool is_address_literal(std::string_view lit) {
  // lit is the text between '[' and ']'.
  if (lit.empty() || lit.size() > 64) return false;
  char buf[sizeof(struct in6_addr)];
  std::string text(lit);
  if (istarts_with(lit, "IPv6:")) {
    std::string v6 = text.substr(5);
    return inet_pton(AF_INET6, v6.c_str(), buf) == 1;
  }
  if (is_digit(lit.front())) return inet_pton(AF_INET, text.c_str(), buf) == 1;
  // General-address-literal: Standardized-tag ":" 1*dcontent.
  size_t colon = lit.find(':');
  if (colon == std::string_view::npos || colon + 1 == lit.size()) return false;
  if (!is_ldh_label(lit.substr(0, colon), false)) return false;
  for (char c : lit.substr(colon + 1)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!((u >= 33 && u <= 90) || (u >= 94 && u <= 126))) return false;
  }
  return true;
}

bool is_valid_local_part(std::string_view local, bool allow_utf8) {
  if (local.empty() || local.size() > kMaxLocalPart) return false;
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      unsigned char u = static_cast<unsigned char>(local[i]);
      if (u == '\\') {
        if (i + 2 >= local.size()) return false;
        unsigned char n = static_cast<unsigned char>(local[++i]);
        if (n < 32 || n > 126) return false;
        continue;
      }
      if (u == '"') return false;
      if (u >= 32 && u <= 126) continue;
      if (allow_utf8 && u >= 0x80) continue;
      return false;
    }
    return true;
  }
  // Dot-string. Consecutive or trailing dots break RFC 5321 but exist in
  // the wild (some mobile carriers); they are harmless, so accept them.
  for (char c : local) {
    if (is_atext(c) || c == '.') continue;
    if (allow_utf8 && is_high(c)) continue;
    return false;
  }
  return true;
}

// Scans the local part of a path starting at `pos`; returns the index of
// the first character after it, or npos.
size_t scan_local_part(std::string_view s, size_t pos) {
  if (pos < s.size() && s[pos] == '"') {
    for (size_t i = pos + 1; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
        continue;
      }
      if (s[i] == '"') return i + 1;
    }
    return std::string_view::npos;
  }
  size_t i = pos;
  while (i < s.size() && s[i] != '@' && s[i] != '>') ++i;
  return i;
}

struct ParsedPath {
  std::string address;
  std::string_view domain;
  bool is_utf8 = false;
  size_t end = 0;  // index after '>'
};

// Parses "<[route:]mailbox>" at the start of `s`.
CommandError parse_path(std::string_view s, bool allow_null, ParsedPath* out) {
  if (s.empty() || s.front() != '<') return CommandError::syntax;
  size_t pos = 1;
  if (pos < s.size() && s[pos] == '>') {
    if (!allow_null) return CommandError::bad_address;
    out->address.clear();
    out->end = 2;
    return CommandError::none;
  }
  // A-d-l (source route): accepted and ignored, RFC 5321 §4.1.2.
  if (pos < s.size() && s[pos] == '@') {
    size_t colon = s.find(':', pos);
    size_t close = s.find('>', pos);
    if (colon == std::string_view::npos || (close != std::string_view::npos && close < colon)) {
      return CommandError::bad_address;
    }
    std::string_view route = s.substr(pos, colon - pos);
    size_t start = 0;
    while (start < route.size()) {
      size_t comma = route.find(',', start);
      std::string_view hop = route.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (hop.size() < 2 || hop.front() != '@' ||
          !is_valid_domain_or_literal(hop.substr(1), false)) {
        return CommandError::bad_address;
      }
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    pos = colon + 1;
  }
  size_t local_end = scan_local_part(s, pos);
  if (local_end == std::string_view::npos || local_end >= s.size())
    return CommandError::bad_address;
  size_t close = local_end;
  if (s[local_end] == '@') {
    close = s.find('>', local_end);
    if (close == std::string_view::npos) return CommandError::bad_address;
  } else if (s[local_end] != '>') {
    return CommandError::bad_address;
  }
  std::string_view mailbox = s.substr(pos, close - pos);
  if (mailbox.size() > kMaxPath) return CommandError::bad_address;
  if (!is_valid_utf8(mailbox)) return CommandError::bad_address;
  std::string_view domain;
  if (!is_valid_mailbox(mailbox, true, &domain)) return CommandError::bad_address;
  out->address.assign(mailbox);
  out->domain = std::string_view(out->address).substr(out->address.size() - domain.size());
  out->is_utf8 = has_non_ascii(mailbox);
  out->end = close + 1;
  return CommandError::none;
}

struct Param {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool is_esmtp_keyword(std::string_view k) {
  if (k.empty() || !(is_alpha(k.front()) || is_digit(k.front()))) return false;
  for (char c : k) {
    if (!(is_alpha(c) || is_digit(c) || c == '-')) return false;
  }
  return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531).
bool is_esmtp_value(std::string_view v) {
  if (v.empty()) return false;
  for (char c : v) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) continue;
    if (u < 33 || u > 126 || u == '=') return false;
  }
  return is_valid_utf8(v);
}

// RFC 3461 xtext: printable ASCII except '+' and '=', or "+" 2 uppercase hex.
bool is_xtext(std::string_view v) {
  for (size_t i = 0; i < v.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(v[i]);
    if (u == '+') {
      if (i + 2 >= v.size()) return false;
      for (size_t k = 1; k <= 2; ++k) {
        char h = v[i + k];
        if (!(is_digit(h) || (h >= 'A' && h <= 'F'))) return false;
      }
      i += 2;
      continue;
    }
    if (u < 33 || u > 126 || u == '=') return false;
  }
  return true;
}

// Splits the text after the path into parameters and hands each to `fn`.
template <class Fn>
CommandError for_each_param(std::string_view rest, Fn&& fn) {
  if (rest.empty()) return CommandError::none;
  if (rest.front() != ' ') return CommandError::syntax;
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) break;
    size_t end = rest.find(' ', i);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view token = rest.substr(i, end - i);
    i = end;
    Param p;
    size_t eq = token.find('=');
    if (eq == std::string_view::npos) {
      p.keyword = token;
    } else {
      p.keyword = token.substr(0, eq);
      p.value = token.substr(eq + 1);
      p.has_value = true;
    }
    if (!is_esmtp_keyword(p.keyword)) return CommandError::syntax;
    if (p.has_value && !is_esmtp_value(p.value)) return CommandError::bad_parameter;
    CommandError e = fn(p);
    if (e != CommandError::none) return e;
  }
  return CommandError::none;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "FROM:" / "TO:" then optional blanks (a common client sloppiness).
bool strip_keyword(std::string_view* arg, std::string_view keyword) {
  if (!istarts_with(*arg, keyword)) return false;
  arg->remove_prefix(keyword.size());
  while (!arg->empty() && arg->front() == ' ') arg->remove_prefix(1);
  return true;
}

}  // namespace

SmtpCommandLine parse_command_line(std::string_view line) {
  SmtpCommandLine cmd;
  size_t space = line.find(' ');
  cmd.verb_text = line.substr(0, space);
  if (space != std::string_view::npos) {
    std::string_view arg = line.substr(space + 1);
    while (!arg.empty() && (arg.back() == ' ' || arg.back() == '\t')) arg.remove_suffix(1);
    cmd.argument = arg;
  }
  for (const VerbEntry& e : kVerbs) {
    if (iequals(cmd.verb_text, e.name)) {
      cmd.verb = e.verb;
      break;
    }
  }
  return cmd;
}

bool has_non_ascii(std::string_view text) {
  for (char c : text) {
    if (is_high(c)) return true;
  }
  return false;
}

bool is_valid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

bool is_valid_domain_or_literal(std::string_view domain, bool allow_utf8) {
  if (domain.empty() || domain.size() > kMaxDomain) return false;
  if (domain.front() == '[') {
    if (domain.back() != ']') return false;
    return is_address_literal(domain.substr(1, domain.size() - 2));
  }
  if (allow_utf8 && !is_valid_utf8(domain)) return false;
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_ldh_label(label, allow_utf8)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8, std::string_view* domain) {
  size_t local_end = scan_local_part(mailbox, 0);
  if (local_end == std::string_view::npos || local_end >= mailbox.size() ||
      mailbox[local_end] != '@') {
    return false;
  }
  std::string_view local = mailbox.substr(0, local_end);
  std::string_view dom = mailbox.substr(local_end + 1);
  if (!is_valid_local_part(local, allow_utf8)) return false;
  if (!is_valid_domain_or_literal(dom, allow_utf8)) return false;
  if (domain) *domain = dom;
  return true;
}

CommandParse<MailFromCommand> parse_mail_from(std::string_view argument) {
  CommandParse<MailFromCommand> r;
  std::string_view arg = trim_blanks(argument);
  if (!strip_keyword(&arg, "FROM:") || arg.empty() || arg.front() != '<') {
    r.error = CommandError::syntax;
    return r;
  }
  ParsedPath path;
  r.error = parse_path(arg, true, &path);
  if (!r.ok()) return r;
  r.value.sender = std::move(path.address);
  r.value.sender_is_utf8 = path.is_utf8;
  bool seen_size = false, seen_body = false, seen_utf8 = false, seen_ret = false,
       seen_envid = false, seen_auth = false;
  auto once = [](bool* seen) {
    if (*seen) return false;
    *seen = true;
    return true;
  };
  MailFromCommand& m = r.value;
  r.error = for_each_param(arg.substr(path.end), [&](const Param& p) {
    if (iequals(p.keyword, "SIZE")) {
      if (!once(&seen_size) || !p.has_value || p.value.size() > 20) {
        return CommandError::bad_parameter;
      }
      uint64_t v = 0;
      for (char c : p.value) {
        if (!is_digit(c)) return CommandError::bad_parameter;
        uint64_t d = static_cast<uint64_t>(c - '0');
        v = (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
                ? std::numeric_limits<uint64_t>::max()
                : v * 10 + d;
      }
      m.size = v;
      return CommandError::none;
    }
    if (iequals(p.keyword, "BODY")) {
      if (!once(&seen_body) || !p.has_value) return CommandError::bad_parameter;
      if (iequals(p.value, "7BIT")) {
        m.body_type = "7BIT";
      } else if (iequals(p.value, "8BITMIME")) {
        m.body_type = "8BITMIME";
      } else if (iequals(p.value, "BINARYMIME")) {
        return CommandError::unknown_parameter;  // not announced
      } else {
        return CommandError::bad_parameter;
      }
      return CommandError::none;
    }
    if (iequals(p.keyword, "SMTPUTF8")) {
      if (!once(&seen_utf8) || p.has_value) return CommandError::bad_parameter;
      m.smtputf8 = true;
      return CommandError::none;
    }
    if (iequals(p.keyword, "RET")) {
      if (!once(&seen_ret) || !p.has_value) return CommandError::bad_parameter;
      if (!iequals(p.value, "FULL") && !iequals(p.value, "HDRS")) {
        return CommandError::bad_parameter;
      }
      m.dsn_ret = to_upper(p.value);
      return CommandError::none;
    }
    if (iequals(p.keyword, "ENVID")) {
      if (!once(&seen_envid) || !p.has_value || p.value.size() > kMaxEnvid || !is_xtext(p.value)) {
        return CommandError::bad_parameter;
      }
      m.dsn_envid.assign(p.value);
      return CommandError::none;
    }
    if (iequals(p.keyword, "AUTH")) {
      // RFC 4954 §5: accepted; the submitter is the authenticated user.
      if (!once(&seen_auth) || !p.has_value) return CommandError::bad_parameter;
      if (p.value != "<>" && !is_xtext(p.value)) return CommandError::bad_parameter;
      return CommandError::none;
    }
    return CommandError::unknown_parameter;
  });
  if (!r.ok()) return r;
  if (m.sender_is_utf8 && !m.smtputf8) r.error = CommandError::utf8_needs_smtputf8;
  return r;
}

CommandParse<RcptToCommand> parse_rcpt_to(std::string_view argument) {
  CommandParse<RcptToCommand> r;
  std::string_view arg = trim_blanks(argument);
  if (!strip_keyword(&arg, "TO:") || arg.empty() || arg.front() != '<') {
    r.error = CommandError::syntax;
    return r;
  }
  ParsedPath path;
  r.error = parse_path(arg, false, &path);
  if (!r.ok()) return r;
  RcptToCommand& rc = r.value;
  rc.domain.assign(path.domain);
  for (char& c : rc.domain) c = ascii_lower(c);
  rc.recipient = std::move(path.address);
  rc.is_utf8 = path.is_utf8;
  bool seen_notify = false, seen_orcpt = false;
  r.error = for_each_param(arg.substr(path.end), [&](const Param& p) {
    if (iequals(p.keyword, "NOTIFY")) {
      if (seen_notify || !p.has_value) return CommandError::bad_parameter;
      seen_notify = true;
      if (iequals(p.value, "NEVER")) {
        rc.dsn_notify.assign(p.value);
        return CommandError::none;
      }
      size_t start = 0;
      while (true) {
        size_t comma = p.value.find(',', start);
        std::string_view item = p.value.substr(
            start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (!iequals(item, "SUCCESS") && !iequals(item, "FAILURE") && !iequals(item, "DELAY")) {
          return CommandError::bad_parameter;
        }
        if (comma == std::string_view::npos) break;
        start = comma + 1;
      }
      rc.dsn_notify.assign(p.value);
      return CommandError::none;
    }
    if (iequals(p.keyword, "ORCPT")) {
      if (seen_orcpt || !p.has_value || p.value.size() > kMaxOrcpt) {
        return CommandError::bad_parameter;
      }
      seen_orcpt = true;
      size_t semi = p.value.find(';');
      if (semi == std::string_view::npos || semi == 0 || semi + 1 == p.value.size() ||
          !is_esmtp_keyword(p.value.substr(0, semi))) {
        return CommandError::bad_parameter;
      }
      std::string_view addr = p.value.substr(semi + 1);
      // utf-8-addr-xtext (RFC 6533) may carry raw UTF-8; rfc822 is xtext.
      if (!has_non_ascii(addr) && !is_xtext(addr)) return CommandError::bad_parameter;
      rc.dsn_orcpt.assign(p.value);
      return CommandError::none;
    }
    return CommandError::unknown_parameter;
  });
  return r;
}

bool decode_base64(std::string_view in, std::string* out) {
  out->clear();
  if (in.size() % 4 != 0) return false;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  out->reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=') {
        if (!last || k < 2) return false;
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return false;  // data after padding
      v[k] = value(c);
      if (v[k] < 0) return false;
    }
    uint32_t triple = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                      (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out->push_back(static_cast<char>((triple >> 16) & 0xff));
    if (pad < 2) out->push_back(static_cast<char>((triple >> 8) & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(triple & 0xff));
  }
  return true;
}

}  // namespace ringmail::mta
