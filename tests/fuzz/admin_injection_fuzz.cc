// libFuzzer target for the injection API's request (POST /api/v1/messages,
// admin-api/admin_injection.h) and what the daemon makes of a request it
// accepts: the built form's MIME message (mta/inbound/mime_builder.h) and
// the spool message (mta/inbound/message_injector.h prepare_injected_message).
//
// Input: a first line of flags, one letter each (k: authenticated with an
// API key of tenant "app1", not the admin token), then the request body.
// Limits: limits.max_message_size 2048, limits.max_recipients 5. Every input
// replays identically (fixed id and time).
//
// Besides ASan/UBSan findings, the target aborts when a promise is broken:
// a refusal that is not 400/413 with exactly {"error", "detail"} (a 400's
// detail starting with a field name or the body's fault); an accepted
// request with no recipient, more than 5, a duplicate, an invalid address,
// a bad tenant, or not exactly one form; raw content with NUL, a line over
// 998 octets or over the size limit; a built message that is not CRLF-only
// with lines of at most 998 octets, has 8-bit bytes though no address needs
// them, has a Bcc field, or does not parse back with one From mailbox of the
// requested address; a spool message whose content is not CRLF-only and
// CRLF-terminated, starts with anything but Received, has a size other than
// its content's, or a listener other than "api".
//
// Built only with clang and -DRINGMAIL_FUZZ=ON. Seed corpus in
// tests/fuzz/corpus/admin_injection/.
#include <gmime/gmime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "admin-api/admin_injection.h"
#include "mta/inbound/message_injector.h"
#include "mta/inbound/mime_builder.h"
#include "mta/smtp/smtp_command.h"

namespace {

namespace admin = ringmail::admin;
namespace mta = ringmail::mta;
using nlohmann::json;

constexpr int64_t kNowMs = 1767225600000;

[[noreturn]] void broken(const char* what, std::string_view detail) {
  std::fprintf(stderr, "admin_injection_fuzz: %s: %.*s\n", what,
               static_cast<int>(std::min<size_t>(detail.size(), 400)), detail.data());
  std::abort();
}

void check_error(const admin::HttpResponse& r) {
  if (r.status != 400 && r.status != 413) broken("refusal status", std::to_string(r.status));
  const json body = json::parse(r.body, nullptr, false);
  if (!body.is_object() || body.size() != 2 || !body.contains("error") ||
      !body["error"].is_string() || !body.contains("detail") || !body["detail"].is_string()) {
    broken("error body is not exactly {error, detail}", r.body);
  }
  const std::string& detail = body["detail"].get_ref<const std::string&>();
  if (detail.empty()) broken("empty detail", r.body);
}

// CRLF only, every line at most 998 octets, no NUL; 7-bit unless allowed.
void check_lines(std::string_view text, bool eight_bit_allowed, const char* what) {
  if (!text.ends_with("\r\n")) broken(what, "does not end with CRLF");
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find("\r\n", start);
    if (end == std::string_view::npos) broken(what, "a line without CRLF");
    const std::string_view line = text.substr(start, end - start);
    if (line.size() > 998) broken(what, "a line over 998 octets");
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\r' || c == '\n' || c == '\0') broken(what, line);
      if (u >= 0x80 && !eight_bit_allowed) broken(what, "an 8-bit byte");
    }
    start = end + 2;
  }
}

void check_built(const mta::MimeMessageSpec& requested) {
  mta::MimeMessageSpec spec = requested;
  spec.message_id = "0123456789abcdef0123@mx.fuzz.test";
  spec.date_unix_ms = kNowMs;
  const std::string out = mta::build_mime_message(spec);
  bool utf8_address = mta::has_non_ascii(spec.from.address);
  for (const auto* list : {&spec.to, &spec.cc})
    for (const mta::Mailbox& m : *list) utf8_address |= mta::has_non_ascii(m.address);
  if (spec.reply_to) utf8_address |= mta::has_non_ascii(spec.reply_to->address);
  check_lines(out, utf8_address, "built message");

  const size_t head_end = out.find("\r\n\r\n");
  if (head_end == std::string::npos) broken("built message", "no header section");
  const std::string head = "\r\n" + out.substr(0, head_end + 2);
  std::string lower = head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("\r\nbcc:") != std::string::npos) broken("a Bcc field", head);
  size_t froms = 0;
  for (size_t at = lower.find("\r\nfrom:"); at != std::string::npos;
       at = lower.find("\r\nfrom:", at + 1))
    ++froms;
  if (froms != 1) broken("not one From field", head);

  GMimeStream* stream = g_mime_stream_mem_new_with_buffer(out.data(), out.size());
  GMimeParser* parser = g_mime_parser_new_with_stream(stream);
  GMimeMessage* message = g_mime_parser_construct_message(parser, nullptr);
  if (!message) broken("built message does not parse", out);
  InternetAddressList* from = g_mime_message_get_from(message);
  if (internet_address_list_length(from) != 1) broken("From does not parse to one", head);
  InternetAddress* sender = internet_address_list_get_address(from, 0);
  const char* addr = INTERNET_ADDRESS_IS_MAILBOX(sender)
                         ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(sender))
                         : nullptr;
  if (!addr || spec.from.address != addr) broken("From is another address", head);
  g_object_unref(message);
  g_object_unref(parser);
  g_object_unref(stream);
}

void check_request(const mta::InjectionRequest& r, const admin::InjectionLimits& limits,
                   bool with_key) {
  if (with_key && r.tenant != "app1") broken("a key's mail in another tenant", r.tenant);
  if (r.tenant.empty() || r.tenant.size() > 255 ||
      std::any_of(r.tenant.begin(), r.tenant.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 32 || c == 127; })) {
    broken("tenant", r.tenant);
  }
  if (r.recipients.empty() || r.recipients.size() > limits.max_recipients) {
    broken("recipient count", std::to_string(r.recipients.size()));
  }
  std::set<std::string> seen;
  for (const std::string& a : r.recipients) {
    std::string_view domain;
    if (!mta::is_valid_mailbox(a, true, &domain)) broken("an invalid recipient", a);
    std::string key = a;
    const size_t at = key.rfind('@');
    for (size_t i = at; i < key.size(); ++i)
      key[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(key[i])));
    if (!seen.insert(key).second) broken("a duplicate recipient", a);
  }
  std::string_view domain;
  if (!r.envelope_sender.empty() && !mta::is_valid_mailbox(r.envelope_sender, true, &domain)) {
    broken("an invalid envelope sender", r.envelope_sender);
  }
  if (r.content.has_value() == r.built.has_value()) broken("not exactly one form", "");
  if (r.content) {
    const std::string& c = *r.content;
    if (c.empty() || c.size() > limits.max_message_size) broken("content size", c);
    if (c.find('\0') != std::string::npos) broken("NUL in content", c);
    size_t length = 0;
    for (char ch : c) {
      length = (ch == '\r' || ch == '\n') ? 0 : length + 1;
      if (length > 998) broken("a content line over 998 octets", c);
    }
  }
  if (r.built) {
    if (!r.built->text && !r.built->html) broken("no body", "");
    for (const auto& [name, value] : r.built->headers) {
      if (mta::is_reserved_header(name)) broken("a reserved header", name);
      if (value.find_first_of("\r\n") != std::string::npos) broken("a line break", value);
    }
    check_built(*r.built);
  }
}

void check_spool_message(mta::InjectionRequest request) {
  ringmail::conf::Config config;
  config.hostname = "mx.fuzz.test";
  config.limits.max_message_size = 2048;
  request.client_ip = "192.0.2.1";
  mta::InjectionResult failed;
  std::optional<ringmail::queue::SpoolMessage> m = mta::prepare_injected_message(
      request, config, ringmail::queue::MessageId{"0123456789abcdef0123"}, kNowMs, &failed);
  if (!m) {
    using Status = mta::InjectionResult::Status;
    if (failed.status == Status::invalid && request.content) return;  // a malformed head
    if (failed.status == Status::too_large) return;
    broken("prepare refused", failed.detail);
  }
  check_lines(m->content, true, "spool content");
  if (!m->content.starts_with("Received: from api ")) broken("not Received first", m->content);
  if (m->meta.size != m->content.size()) broken("meta.size", m->content);
  if (m->meta.listener != "api") broken("listener", m->meta.listener);
  if (m->envelope.recipients.size() != request.recipients.size()) broken("recipients", "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t eol = in.find('\n');
  const std::string_view flags = in.substr(0, eol);
  const std::string_view body = eol == std::string_view::npos ? "" : in.substr(eol + 1);
  const bool with_key = flags.find('k') != std::string_view::npos;
  admin::InjectionLimits limits;
  limits.max_message_size = 2048;
  limits.max_recipients = 5;
  const admin::ParsedInjection parsed =
      admin::parse_injection_request(body, limits, with_key ? "app1" : "");
  if (!parsed.request) {
    check_error(parsed.error);
    return 0;
  }
  check_request(*parsed.request, limits, with_key);
  check_spool_message(*parsed.request);
  return 0;
}
