#include "admin-api/admin_injection.h"

#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mta/smtp/smtp_command.h"

namespace ringmail::admin {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using Status = mta::InjectionResult::Status;

constexpr size_t kMaxAddress = 1000;     // one address as written, display name included
constexpr size_t kMaxSubject = 4000;     // GMime folds it into encoded-words
constexpr size_t kMaxHeaderName = 76;    // room for ": " and a value on one line
constexpr size_t kMaxHeaderValue = 900;  // a value GMime cannot fold stays under 998
constexpr size_t kMaxHeaders = 100;
constexpr size_t kMaxCampaign = 200;  // as the campaign header is cut (smtp_message_headers)
constexpr size_t kMaxTenant = 255;
constexpr size_t kMaxLine = 998;  // RFC 5322 §2.1.1, as SMTP refuses longer ones
constexpr int kRetryAfterSeconds = 60;

const std::initializer_list<const char*> kRawFields = {"envelope_sender", "recipients", "content",
                                                       "campaign", "tenant"};
const std::initializer_list<const char*> kBuiltFields = {
    "from", "to",   "cc",      "bcc",      "reply_to", "subject",
    "text", "html", "headers", "campaign", "tenant",   "envelope_sender"};
const std::initializer_list<const char*> kBuiltOnly = {
    "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers"};

HttpResponse bad(std::string detail) { return json_error(400, "bad field", std::move(detail)); }

std::string shown(std::string_view text) {
  std::string q = "\"";
  for (char c : text.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    q += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (text.size() > 200) q += "...";
  return q + "\"";
}

bool contains(std::initializer_list<const char*> names, const std::string& key) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return key == n; });
}

bool present(const json& body, const char* name) {
  auto it = body.find(name);
  return it != body.end() && !it->is_null();
}

enum class Text { line, multiline };

// Control characters refused in a value: every one but tab, and for
// multiline text also CR and LF; NUL never.
bool clean(std::string_view value, Text kind) {
  return std::none_of(value.begin(), value.end(), [kind](char c) {
    const auto u = static_cast<unsigned char>(c);
    if (kind == Text::multiline && (c == '\r' || c == '\n')) return false;
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

// The parse of one request, stopping at the first bad field.
class Parser {
 public:
  Parser(const json& body, const InjectionLimits& limits) : body_(body), limits_(limits) {}

  HttpResponse error;

  // A string field: absent (or null) is nullopt, and an error when required.
  std::optional<std::string> string(const char* name, bool required, size_t max, Text kind) {
    auto it = body_.find(name);
    if (it == body_.end() || it->is_null()) {
      if (required) fail(std::string(name) + ": required");
      return std::nullopt;
    }
    if (!it->is_string()) return fail(std::string(name) + ": must be a string");
    const std::string& v = it->get_ref<const std::string&>();
    if (v.size() > max) {
      return fail(std::string(name) + ": longer than " + std::to_string(max) + " bytes");
    }
    if (!clean(v, kind)) {
      return fail(std::string(name) + (kind == Text::line ? ": control characters or line breaks"
                                                          : ": control characters"));
    }
    return v;
  }

  // A bare address (an envelope path): "" only where allow_null.
  bool envelope_address(const std::string& field, const std::string& text, bool allow_null) {
    if (text.empty() && allow_null) return true;
    std::string_view domain;
    if (text.size() > kMaxAddress || !clean(text, Text::line) ||
        !mta::is_valid_mailbox(text, /*allow_utf8=*/true, &domain)) {
      fail(field + ": " + shown(text) + " is not a valid address");
      return false;
    }
    return true;
  }

  std::optional<mta::Mailbox> mailbox(const std::string& field, const std::string& text) {
    std::optional<mta::Mailbox> m;
    if (text.size() <= kMaxAddress) m = mta::parse_mailbox(text);
    if (!m) fail(field + ": " + shown(text) + " is not a valid address (Name <local@domain>)");
    return m;
  }

  // "to", "cc", "bcc": a list of mailboxes, or one as a string.
  std::optional<std::vector<mta::Mailbox>> mailboxes(const char* name) {
    std::vector<mta::Mailbox> out;
    auto it = body_.find(name);
    if (it == body_.end() || it->is_null()) return out;
    if (it->is_string()) {
      auto m = mailbox(name, it->get_ref<const std::string&>());
      if (!m) return std::nullopt;
      out.push_back(std::move(*m));
      return out;
    }
    if (!it->is_array()) return fail(std::string(name) + ": must be a list of addresses");
    for (size_t i = 0; i < it->size(); ++i) {
      const std::string field = std::string(name) + "[" + std::to_string(i) + "]";
      const json& item = (*it)[i];
      if (!item.is_string()) return fail(field + ": must be a string");
      auto m = mailbox(field, item.get_ref<const std::string&>());
      if (!m) return std::nullopt;
      out.push_back(std::move(*m));
    }
    return out;
  }

  std::nullopt_t too_many(size_t n) {
    error = bad("recipients: " + std::to_string(n) +
                " different recipients, more than limits.max_recipients (" +
                std::to_string(limits_.max_recipients) + ")");
    return std::nullopt;
  }

  std::nullopt_t fail(std::string detail) {
    error = bad(std::move(detail));
    return std::nullopt;
  }
  bool reject(std::string detail) {
    fail(std::move(detail));
    return false;
  }
  bool reject_too_many(size_t n) {
    too_many(n);
    return false;
  }

 private:
  const json& body_;
  const InjectionLimits& limits_;
};

// Raw content: a line over 998 octets or a NUL is refused as SMTP refuses it.
std::optional<std::string> content_problem(std::string_view content) {
  size_t line = 1, length = 0;
  for (size_t i = 0; i < content.size(); ++i) {
    const char c = content[i];
    if (c == '\0') return "content: NUL character on line " + std::to_string(line);
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < content.size() && content[i + 1] == '\n') ++i;
      ++line;
      length = 0;
      continue;
    }
    if (++length > kMaxLine) {
      return "content: line " + std::to_string(line) + " is longer than 998 octets";
    }
  }
  return std::nullopt;
}

// RFC 5322 field name: printable ASCII but ':'.
bool is_field_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxHeaderName) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && c != ':';
  });
}

bool is_tenant_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenant) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 32 || u == 127;
  });
}

// The recipients of one message: the same address twice (in to and bcc,
// say) gets one copy; the domain compares case-insensitively, the local
// part as written. limits.max_recipients counts different recipients.
class Recipients {
 public:
  explicit Recipients(std::vector<std::string>& out) : out_(out) {}
  void add(const std::string& address) {
    std::string key = address;
    const size_t at = key.rfind('@');
    for (size_t i = at == std::string::npos ? key.size() : at; i < key.size(); ++i)
      key[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(key[i])));
    if (seen_.insert(std::move(key)).second) out_.push_back(address);
  }
  size_t size() const { return out_.size(); }

 private:
  std::vector<std::string>& out_;
  std::unordered_set<std::string> seen_;
};

bool parse_raw(const json& body, Parser& p, const InjectionLimits& limits,
               mta::InjectionRequest& request) {
  for (const char* name : kBuiltOnly) {
    if (body.contains(name)) {
      p.error = bad(std::string(name) +
                    ": not a field of the raw form (envelope_sender, recipients, content); give "
                    "either content or the built form's fields");
      return false;
    }
  }
  auto sender = p.string("envelope_sender", true, kMaxAddress, Text::line);
  if (!sender || !p.envelope_address("envelope_sender", *sender, /*allow_null=*/true)) return false;
  request.envelope_sender = *sender;

  auto it = body.find("recipients");
  if (it == body.end() || it->is_null()) return p.reject("recipients: required");
  if (!it->is_array()) return p.reject("recipients: must be a list of addresses");
  if (it->empty()) return p.reject("recipients: at least one recipient is required");
  Recipients recipients(request.recipients);
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string field = "recipients[" + std::to_string(i) + "]";
    const json& item = (*it)[i];
    if (!item.is_string()) return p.reject(field + ": must be a string");
    const std::string& address = item.get_ref<const std::string&>();
    if (!p.envelope_address(field, address, /*allow_null=*/false)) return false;
    recipients.add(address);
    if (recipients.size() > limits.max_recipients) return p.reject_too_many(recipients.size());
  }

  auto content_it = body.find("content");
  if (!content_it->is_string()) return p.reject("content: must be a string");
  const std::string& content = content_it->get_ref<const std::string&>();
  if (content.size() > limits.max_message_size) {
    p.error = json_error(413, "message too large",
                         "content: " + std::to_string(content.size()) +
                             " bytes, over limits.max_message_size (" +
                             std::to_string(limits.max_message_size) + ")");
    return false;
  }
  if (content.empty()) return p.reject("content: must not be empty");
  if (auto problem = content_problem(content)) return p.reject(*problem);
  request.content = content;
  return true;
}

bool parse_built(const json& body, Parser& p, const InjectionLimits& limits,
                 mta::InjectionRequest& request) {
  if (body.contains("recipients")) {
    p.error = bad("recipients: not a field of the built form; give to, cc and bcc");
    return false;
  }
  mta::MimeMessageSpec spec;
  auto from = p.string("from", true, kMaxAddress, Text::line);
  if (!from) return false;
  auto from_box = p.mailbox("from", *from);
  if (!from_box) return false;
  spec.from = *from_box;

  auto to = p.mailboxes("to");
  if (!to) return false;
  auto cc = p.mailboxes("cc");
  if (!cc) return false;
  auto bcc = p.mailboxes("bcc");
  if (!bcc) return false;
  Recipients recipients(request.recipients);
  for (const auto* list : {&*to, &*cc, &*bcc})
    for (const mta::Mailbox& m : *list) recipients.add(m.address);
  if (recipients.size() == 0) {
    return p.reject("to: at least one recipient in to, cc or bcc is required");
  }
  if (recipients.size() > limits.max_recipients) return p.reject_too_many(recipients.size());
  spec.to = std::move(*to);
  spec.cc = std::move(*cc);
  // Bcc recipients are in the envelope only.

  if (auto reply_to = p.string("reply_to", false, kMaxAddress, Text::line)) {
    auto box = p.mailbox("reply_to", *reply_to);
    if (!box) return false;
    spec.reply_to = *box;
  } else if (!p.error.body.empty()) {
    return false;
  }

  auto subject = p.string("subject", true, kMaxSubject, Text::line);
  if (!subject) return false;
  spec.subject = *subject;
  // Over the message size they would be refused later anyway; the limit
  // here keeps a hostile body from being encoded first.
  spec.text = p.string("text", false, limits.max_message_size, Text::multiline);
  if (!spec.text && !p.error.body.empty()) return false;
  spec.html = p.string("html", false, limits.max_message_size, Text::multiline);
  if (!spec.html && !p.error.body.empty()) return false;
  if (!spec.text && !spec.html) return p.reject("text: text or html is required");

  if (auto it = body.find("headers"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return p.reject("headers: must be an object of NAME: VALUE");
    if (it->size() > kMaxHeaders) {
      return p.reject("headers: more than " + std::to_string(kMaxHeaders) + " fields");
    }
    for (auto h = it->begin(); h != it->end(); ++h) {
      const std::string field = "headers." + h.key().substr(0, 100);
      if (!is_field_name(h.key())) {
        return p.reject("headers: " + shown(h.key()) + " is not a header field name");
      }
      if (mta::is_reserved_header(h.key())) {
        return p.reject(field + ": set by Ringmail (use the request's own fields)");
      }
      if (!h->is_string()) return p.reject(field + ": must be a string");
      const std::string& value = h->get_ref<const std::string&>();
      if (value.size() > kMaxHeaderValue) {
        return p.reject(field + ": longer than " + std::to_string(kMaxHeaderValue) + " bytes");
      }
      if (!clean(value, Text::line)) {
        return p.reject(field + ": control characters or line breaks");
      }
      spec.headers.emplace_back(h.key(), value);
    }
  }

  auto sender = p.string("envelope_sender", false, kMaxAddress, Text::line);
  if (sender) {
    if (!p.envelope_address("envelope_sender", *sender, /*allow_null=*/true)) return false;
    request.envelope_sender = *sender;
  } else if (!p.error.body.empty()) {
    return false;
  } else {
    request.envelope_sender = spec.from.address;
  }
  request.built = std::move(spec);
  return true;
}

}  // namespace

ParsedInjection parse_injection_request(std::string_view body_text, const InjectionLimits& limits,
                                        const std::string& key_tenant) {
  ParsedInjection out;
  if (body_text.empty()) {
    out.error = json_error(400, "bad request", "a JSON object body is required");
    return out;
  }
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    out.error = json_error(400, "malformed JSON", "the request body is not valid JSON");
    return out;
  }
  if (!body.is_object()) {
    out.error = json_error(400, "bad request", "the request body must be a JSON object");
    return out;
  }
  const bool raw = present(body, "content");
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (!contains(raw ? kRawFields : kBuiltFields, it.key()) &&
        !contains(raw ? kBuiltFields : kRawFields, it.key())) {
      out.error =
          json_error(400, "unknown field", shown(it.key()) + ": not a field of this request");
      return out;
    }
  }
  Parser p(body, limits);
  mta::InjectionRequest request;

  auto tenant = p.string("tenant", false, kMaxTenant, Text::line);
  if (!tenant && !p.error.body.empty()) {
    out.error = p.error;
    return out;
  }
  if (tenant && !is_tenant_name(*tenant)) {
    out.error = bad("tenant: 1 to 255 printable characters without spaces");
    return out;
  }
  if (!key_tenant.empty()) {
    if (tenant && *tenant != key_tenant) {
      out.error = bad("tenant: an API key injects for its own tenant (" + key_tenant + ")");
      return out;
    }
    request.tenant = key_tenant;
  } else {
    request.tenant = tenant ? *tenant : kDefaultInjectionTenant;
  }

  auto campaign = p.string("campaign", false, kMaxCampaign, Text::line);
  if (!campaign && !p.error.body.empty()) {
    out.error = p.error;
    return out;
  }
  if (campaign) {
    // Trailing blanks go, as from the campaign header; nothing left is none.
    std::string c = *campaign;
    for (char& ch : c) ch = ch == '\t' ? ' ' : ch;
    while (!c.empty() && c.back() == ' ') c.pop_back();
    request.campaign = c;
  }

  const bool ok = raw ? parse_raw(body, p, limits, request) : parse_built(body, p, limits, request);
  if (!ok) {
    out.error = p.error;
    return out;
  }
  out.request = std::move(request);
  return out;
}

HttpResponse injection_response(const mta::InjectionResult& result) {
  auto with_retry = [](HttpResponse r) {
    r.headers.emplace_back("Retry-After", std::to_string(kRetryAfterSeconds));
    return r;
  };
  switch (result.status) {
    case Status::queued: {
      HttpResponse r;
      r.body = ordered_json{{"id", result.id}, {"recipients", result.recipients}}.dump(
                   -1, ' ', false, json::error_handler_t::replace) +
               "\n";
      return r;
    }
    case Status::invalid:
      return bad(result.detail);
    case Status::too_large:
      return json_error(413, "message too large", result.detail);
    case Status::refused:
      return json_error(422, "refused by a filter", result.detail);
    case Status::campaign_refused:
      return json_error(409, "campaign cancelled", result.detail);
    case Status::over_limit: {
      HttpResponse r = json_error(429, "over submission limit", result.detail);
      r.headers.emplace_back("Retry-After",
                             std::to_string(std::max<int64_t>(1, result.retry_after_seconds)));
      return r;
    }
    case Status::tempfail:
      return with_retry(json_error(503, "refused for now by a filter", result.detail));
    case Status::spool_full:
      return with_retry(json_error(503, "spool full", result.detail));
    case Status::failed:
      return json_error(500, "not queued", result.detail);
  }
  return json_error(500, "not queued", result.detail);
}

}  // namespace ringmail::admin
