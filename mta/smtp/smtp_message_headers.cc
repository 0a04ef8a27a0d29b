#include "mta/smtp/smtp_message_headers.h"

#include <cstdio>
#include <ctime>

#include "mail/mail_time.h"

namespace ringmail::mta {
namespace {

constexpr size_t kFoldAt = 78;  // RFC 5322 §2.1.1 SHOULD
constexpr size_t kMaxCampaignLength = 200;

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// RFC 5322 ftext (printable ASCII except ':'); returns the name length, or
// 0 when the line is not "name [WSP] :".
size_t header_name_length(std::string_view line) {
  size_t i = 0;
  while (i < line.size()) {
    unsigned char u = static_cast<unsigned char>(line[i]);
    if (u < 33 || u > 126 || u == ':') break;
    ++i;
  }
  if (i == 0) return 0;
  size_t j = i;
  while (j < line.size() && is_wsp(line[j])) ++j;  // obs-optional (RFC 5322 §4.5)
  if (j >= line.size() || line[j] != ':') return 0;
  return i;
}

std::string sanitized_campaign(std::string_view value) {
  std::string out;
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\t')
      c = ' ';
    else if (u < 32 || u == 127)
      continue;
    if (out.size() >= kMaxCampaignLength) break;
    out.push_back(c);
  }
  while (!out.empty() && is_wsp(out.back())) out.pop_back();
  return out;
}

}  // namespace

HeaderSection parse_header_section(std::string_view content) {
  HeaderSection hs;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t eol = content.find("\r\n", pos);
    size_t next = eol == std::string_view::npos ? content.size() : eol + 2;
    std::string_view line =
        content.substr(pos, (eol == std::string_view::npos ? content.size() : eol) - pos);
    if (line.empty()) {
      hs.has_separator = true;
      hs.body_offset = next;
      return hs;
    }
    if (is_wsp(line.front())) {
      if (hs.fields.empty()) {
        hs.malformed = true;
        hs.body_offset = 0;
        return hs;
      }
      HeaderField& last = hs.fields.back();
      last.raw = content.substr(last.raw.data() - content.data(),
                                next - static_cast<size_t>(last.raw.data() - content.data()));
      pos = next;
      continue;
    }
    size_t name_len = header_name_length(line);
    if (name_len == 0) {
      // Not a header: the body starts here (no header section at all when
      // this is the first line).
      hs.body_offset = pos;
      return hs;
    }
    hs.fields.push_back(
        HeaderField{content.substr(pos, name_len), content.substr(pos, next - pos)});
    pos = next;
  }
  hs.body_offset = content.size();
  return hs;
}

std::string unfolded_value(const HeaderField& field) {
  std::string_view raw = field.raw;
  size_t colon = raw.find(':');
  std::string out;
  if (colon == std::string_view::npos) return out;
  for (size_t i = colon + 1; i < raw.size(); ++i) {
    if (raw[i] == '\r' || raw[i] == '\n') continue;
    out.push_back(raw[i]);
  }
  size_t b = 0;
  while (b < out.size() && is_wsp(out[b])) ++b;
  size_t e = out.size();
  while (e > b && is_wsp(out[e - 1])) --e;
  return out.substr(b, e - b);
}

std::string make_received_header(const ReceivedTrace& t) {
  std::vector<std::string> words;
  words.emplace_back("Received:");
  words.emplace_back("from");
  words.emplace_back(t.helo.empty() ? std::string_view("unknown") : t.helo);
  words.emplace_back("(unknown");
  std::string ip = "[";
  if (t.client_ip.find(':') != std::string_view::npos) ip += "IPv6:";
  ip.append(t.client_ip);
  ip += "])";
  words.push_back(std::move(ip));
  words.emplace_back("by");
  words.emplace_back(t.hostname);
  words.emplace_back("(Ringmail)");
  words.emplace_back("with");
  words.emplace_back(t.protocol);
  words.emplace_back("id");
  if (t.for_recipient.empty()) {
    words.push_back(std::string(t.id) + ";");
  } else {
    words.emplace_back(t.id);
    words.emplace_back("for");
    words.push_back("<" + std::string(t.for_recipient) + ">;");
  }
  words.push_back(mail::format_rfc5322_date(t.unix_ms));  // kept on one line

  std::string out;
  size_t line_len = 0;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (i == 0) {
      out += w;
      line_len = w.size();
    } else if (line_len + 1 + w.size() <= kFoldAt) {
      out += ' ';
      out += w;
      line_len += 1 + w.size();
    } else {
      out += "\r\n\t";
      out += w;
      line_len = 1 + w.size();
    }
  }
  out += "\r\n";
  return out;
}

RewriteResult rewrite_message(std::string_view content, std::string_view prepend,
                              const HeaderRewrite& rewrite, std::string* out) {
  RewriteResult result;
  HeaderSection hs = parse_header_section(content);
  if (hs.malformed) return result;
  out->clear();
  out->reserve(prepend.size() + content.size() + 128);
  out->append(prepend);
  bool has_message_id = false;
  bool has_date = false;
  bool campaign_seen = false;
  for (const HeaderField& f : hs.fields) {
    if (!rewrite.campaign_header.empty() && iequals(f.name, rewrite.campaign_header)) {
      if (!campaign_seen) {
        result.campaign = sanitized_campaign(unfolded_value(f));
        campaign_seen = true;
      }
      continue;  // stripped, continuation lines included
    }
    if (iequals(f.name, "Message-ID")) has_message_id = true;
    if (iequals(f.name, "Date")) has_date = true;
    out->append(f.raw);
    if (f.raw.size() < 2 || f.raw.substr(f.raw.size() - 2) != "\r\n") out->append("\r\n");
  }
  if (rewrite.add_missing_message_id_and_date) {
    if (!has_message_id) {
      out->append("Message-ID: ");
      out->append(rewrite.message_id);
      out->append("\r\n");
    }
    if (!has_date) {
      out->append("Date: ");
      out->append(mail::format_rfc5322_date(rewrite.unix_ms));
      out->append("\r\n");
    }
  }
  std::string_view body = content.substr(hs.body_offset);
  if (hs.has_separator || !body.empty()) out->append("\r\n");
  out->append(body);
  result.ok = true;
  return result;
}

}  // namespace ringmail::mta
