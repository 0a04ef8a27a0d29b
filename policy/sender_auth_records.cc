#include "policy/sender_auth_records.h"

#include <cstdio>

namespace ringmail::policy {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
// VALCHAR (RFC 6376 §3.2): printable ASCII but ';'.
bool is_value_char(char c) { return c >= 0x21 && c <= 0x7e && c != ';'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// "a:b : c" -> {"a", "b", "c"}, lower case (h=, s=, t= of RFC 6376).
std::vector<std::string> colon_list(std::string_view value) {
  std::vector<std::string> items;
  while (true) {
    size_t colon = value.find(':');
    std::string_view item = trim(value.substr(0, colon));
    if (!item.empty()) items.push_back(lower(item));
    if (colon == std::string_view::npos) break;
    value.remove_prefix(colon + 1);
  }
  return items;
}

bool contains(const std::vector<std::string>& items, std::string_view wanted) {
  for (const std::string& item : items)
    if (item == wanted) return true;
  return false;
}

// Base64 of RFC 4648 §4 with padding, whitespace already removed.
bool is_base64(std::string_view text) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      ++padding;
      continue;
    }
    bool alphabet = is_alpha(c) || is_digit(c) || c == '+' || c == '/';
    if (!alphabet || padding > 0) return false;
  }
  return padding <= 2;
}

std::optional<DmarcPolicy> dmarc_policy_of(std::string_view value) {
  if (iequals(value, "none")) return DmarcPolicy::none;
  if (iequals(value, "quarantine")) return DmarcPolicy::quarantine;
  if (iequals(value, "reject")) return DmarcPolicy::reject;
  return std::nullopt;
}

TagList tag_list_error(std::string problem) {
  TagList list;
  list.error = std::move(problem);
  return list;
}

}  // namespace

const Tag* TagList::find(std::string_view name) const {
  for (const Tag& tag : tags)
    if (tag.name == name) return &tag;
  return nullptr;
}

TagList parse_tag_list(std::string_view text) {
  TagList list;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(';', pos);
    std::string_view spec = trim(text.substr(pos, end == std::string_view::npos ? end : end - pos));
    bool last = end == std::string_view::npos;
    if (spec.empty()) {
      // Only a trailing ";" (or nothing at all after the last one) may be empty.
      if (last && !list.tags.empty()) break;
      return tag_list_error(list.tags.empty() && last ? "empty record" : "empty tag between ';'");
    }
    size_t name_end = 0;
    if (!is_alpha(spec[0])) {
      return tag_list_error("tag name \"" + printable_excerpt(spec, 16) +
                            "\" does not start with a letter");
    }
    while (name_end < spec.size() &&
           (is_alpha(spec[name_end]) || is_digit(spec[name_end]) || spec[name_end] == '_'))
      ++name_end;
    std::string_view name = spec.substr(0, name_end);
    std::string_view rest = trim(spec.substr(name_end));
    if (rest.empty() || rest[0] != '=') {
      return tag_list_error("tag \"" + printable_excerpt(name, 16) + "\" has no '='");
    }
    std::string_view value = trim(rest.substr(1));
    for (char c : value) {
      if (!is_value_char(c) && !is_space(c)) {
        return tag_list_error("tag " + std::string(name) +
                              "= holds a byte outside printable ASCII");
      }
    }
    if (list.find(name) != nullptr) {
      return tag_list_error("tag " + std::string(name) + "= appears twice");
    }
    list.tags.push_back(Tag{name, value});
    if (last) break;
    pos = end + 1;
  }
  return list;
}

DkimKeyRecordResult parse_dkim_key_record(std::string_view text) {
  DkimKeyRecordResult result;
  TagList list = parse_tag_list(text);
  if (!list.error.empty()) {
    result.error = list.error;
    return result;
  }
  if (const Tag* version = list.find("v")) {
    if (version != &list.tags.front()) {
      result.error = "v= is not the first tag";
      return result;
    }
    if (version->value != "DKIM1") {
      result.error = "v=" + printable_excerpt(version->value, 16) + " is not DKIM1";
      return result;
    }
  }
  const Tag* key = list.find("p");
  if (key == nullptr) {
    result.error = "no p= tag";
    return result;
  }
  DkimKeyRecord record;
  for (char c : key->value)
    if (!is_space(c)) record.public_key += c;
  if (!is_base64(record.public_key)) {
    result.error = "p= is not base64";
    return result;
  }
  if (const Tag* type = list.find("k")) {
    std::string k = lower(type->value);
    record.key_type = k == "rsa" || k == "ed25519" ? k : std::string(type->value);
  }
  if (const Tag* hashes = list.find("h")) record.hash_algorithms = colon_list(hashes->value);
  if (const Tag* services = list.find("s")) record.service_types = colon_list(services->value);
  if (const Tag* flags = list.find("t")) {
    std::vector<std::string> t = colon_list(flags->value);
    record.testing = contains(t, "y");
    record.strict_subdomains = contains(t, "s");
  }
  result.record = std::move(record);
  return result;
}

bool dkim_key_record_allows_email_sha256(const DkimKeyRecord& record) {
  bool hash_ok = record.hash_algorithms.empty() || contains(record.hash_algorithms, "sha256");
  bool service_ok = record.service_types.empty() || contains(record.service_types, "email") ||
                    contains(record.service_types, "*");
  return hash_ok && service_ok;
}

std::string_view dmarc_policy_name(DmarcPolicy policy) {
  switch (policy) {
    case DmarcPolicy::none:
      return "none";
    case DmarcPolicy::quarantine:
      return "quarantine";
    case DmarcPolicy::reject:
      return "reject";
  }
  return "none";
}

bool is_dmarc_record(std::string_view text) {
  text = trim(text);
  if (text.empty() || text[0] != 'v') return false;
  text = trim(text.substr(1));
  if (text.empty() || text[0] != '=') return false;
  text = trim(text.substr(1));
  constexpr std::string_view kVersion = "DMARC1";
  if (text.substr(0, kVersion.size()) != kVersion) return false;
  text.remove_prefix(kVersion.size());
  return text.empty() || text[0] == ';' || is_space(text[0]);
}

DmarcRecordResult parse_dmarc_record(std::string_view text) {
  DmarcRecordResult result;
  TagList list = parse_tag_list(text);
  if (!list.error.empty()) {
    result.error = list.error;
    return result;
  }
  if (list.tags.empty() || list.tags.front().name != "v") {
    result.error = "does not start with v=DMARC1";
    return result;
  }
  if (list.tags.front().value != "DMARC1") {
    result.error = "v=" + printable_excerpt(list.tags.front().value, 24) + " is not DMARC1";
    return result;
  }
  DmarcRecord record;
  const Tag* policy = list.find("p");
  if (policy == nullptr) {
    result.error = "no p= tag";
    return result;
  }
  std::optional<DmarcPolicy> p = dmarc_policy_of(policy->value);
  if (!p) {
    result.error =
        "p=" + printable_excerpt(policy->value, 24) + " is not none, quarantine or reject";
    return result;
  }
  record.policy = *p;
  if (const Tag* sub = list.find("sp")) {
    record.subdomain_policy = dmarc_policy_of(sub->value);
    if (!record.subdomain_policy) {
      result.error =
          "sp=" + printable_excerpt(sub->value, 24) + " is not none, quarantine or reject";
      return result;
    }
  }
  if (const Tag* pct = list.find("pct")) {
    int percent = 0;
    bool ok = !pct->value.empty() && pct->value.size() <= 3;
    for (char c : pct->value) {
      if (!is_digit(c)) ok = false;
      if (ok) percent = percent * 10 + (c - '0');
    }
    if (!ok || percent > 100) {
      result.error = "pct=" + printable_excerpt(pct->value, 16) + " is not 0 to 100";
      return result;
    }
    record.percent = percent;
  }
  if (const Tag* rua = list.find("rua")) record.aggregate_reports = std::string(rua->value);
  result.record = std::move(record);
  return result;
}

bool is_spf_record(std::string_view text) {
  constexpr std::string_view kVersion = "v=spf1";
  return text.size() >= kVersion.size() && iequals(text.substr(0, kVersion.size()), kVersion) &&
         (text.size() == kVersion.size() || text[kVersion.size()] == ' ');
}

SpfAll spf_all_term(std::string_view record) {
  SpfAll found = SpfAll::none;
  size_t pos = 0;
  while (pos < record.size()) {
    while (pos < record.size() && record[pos] == ' ') ++pos;
    size_t end = record.find(' ', pos);
    std::string_view term = record.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? record.size() : end;
    SpfAll qualifier = SpfAll::pass;  // RFC 7208 §4.6.2: no qualifier is "+"
    if (!term.empty()) {
      switch (term[0]) {
        case '+':
          term.remove_prefix(1);
          break;
        case '?':
          qualifier = SpfAll::neutral;
          term.remove_prefix(1);
          break;
        case '~':
          qualifier = SpfAll::softfail;
          term.remove_prefix(1);
          break;
        case '-':
          qualifier = SpfAll::fail;
          term.remove_prefix(1);
          break;
        default:
          break;
      }
    }
    if (iequals(term, "all")) found = qualifier;
  }
  return found;
}

std::string printable_excerpt(std::string_view text, size_t max_length) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i == max_length) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

}  // namespace ringmail::policy
