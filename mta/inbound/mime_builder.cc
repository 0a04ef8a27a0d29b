#include "mta/inbound/mime_builder.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "mail/gmime_init.h"
#include "mta/smtp/smtp_command.h"

namespace ringmail::mta {
namespace {

// GMime keeps global tables (charsets, iconv); they are set up once, for
// every thread and every GMime user, before the first use.
void init_gmime() { mail::ensure_gmime_initialized(); }

struct GObjectUnref {
  void operator()(void* object) const {
    if (object) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

// Address parsing that refuses what RFC 5322 does not allow, instead of
// guessing at it; made once, read by every thread.
GMimeParserOptions* strict_options() {
  static GMimeParserOptions* const options = [] {
    init_gmime();
    GMimeParserOptions* o = g_mime_parser_options_new();
    g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_STRICT);
    g_mime_parser_options_set_allow_addresses_without_domain(o, FALSE);
    return o;
  }();
  return options;
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

InternetAddress* new_mailbox(const Mailbox& m) {
  InternetAddress* address = internet_address_mailbox_new(
      m.display_name.empty() ? nullptr : m.display_name.c_str(), m.address.c_str());
  // Display names are encoded as UTF-8 encoded-words, not in the
  // "smallest" charset GMime would pick (ISO-8859-1 for Latin text).
  internet_address_set_charset(address, "utf-8");
  return address;
}

void add_mailboxes(GMimeMessage* message, GMimeAddressType type, const std::vector<Mailbox>& list) {
  InternetAddressList* field = g_mime_message_get_addresses(message, type);
  for (const Mailbox& m : list) {
    GPtr<InternetAddress> address(new_mailbox(m));
    internet_address_list_add(field, address.get());
  }
}

GMimePart* new_text_part(const char* subtype, const std::string& text) {
  const std::string canonical = to_crlf_lines(text);
  GMimePart* part = g_mime_part_new_with_type("text", subtype);
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(canonical.data(), canonical.size()));
  GPtr<GMimeDataWrapper> content(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, content.get());
  g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
  // 7bit when the text is ASCII in short lines; otherwise quoted-printable
  // for mostly-ASCII text and base64 for the rest, as GMime's best filter
  // measures it.
  g_mime_part_set_content_encoding(
      part, g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT));
  return part;
}

}  // namespace

std::string to_crlf_lines(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r') {
      out += "\r\n";
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<Mailbox> parse_mailbox(std::string_view text) {
  if (text.empty() || text.size() > 2048 || has_control(text)) return std::nullopt;
  // The addr-spec is found here, not taken from GMime: its parser drops
  // what it does not understand ("a@b@c" would become a@b, "a@b;" a@b),
  // and mail must never go to an address other than the one written.
  std::string_view trimmed = text;
  while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t'))
    trimmed.remove_prefix(1);
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t'))
    trimmed.remove_suffix(1);
  std::string_view spec = trimmed;
  if (trimmed.ends_with('>')) {
    const size_t open = trimmed.rfind('<');
    if (open == std::string_view::npos) return std::nullopt;
    spec = trimmed.substr(open + 1, trimmed.size() - open - 2);
  } else if (trimmed.find_first_of("<>") != std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view domain;
  if (!is_valid_mailbox(spec, /*allow_utf8=*/true, &domain)) return std::nullopt;
  // GMime for the display name: quoted strings, encoded-words, comments.
  const std::string copy(text);
  GPtr<InternetAddressList> list(internet_address_list_parse(strict_options(), copy.c_str()));
  if (!list || internet_address_list_length(list.get()) != 1) return std::nullopt;
  InternetAddress* address = internet_address_list_get_address(list.get(), 0);
  if (!INTERNET_ADDRESS_IS_MAILBOX(address)) return std::nullopt;  // a group
  const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address));
  if (!addr || spec != addr) return std::nullopt;
  const char* name = internet_address_get_name(address);
  Mailbox m;
  m.address = std::string(spec);
  m.display_name = name ? name : "";
  if (has_control(m.display_name) || !is_valid_utf8(m.display_name)) return std::nullopt;
  return m;
}

bool is_reserved_header(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "from", "to",         "cc",           "bcc",      "reply-to",    "subject",
      "date", "message-id", "mime-version", "received", "return-path", "dkim-signature"};
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.starts_with("content-")) return true;
  return std::find(std::begin(kReserved), std::end(kReserved), lower) != std::end(kReserved);
}

std::string build_mime_message(const MimeMessageSpec& spec) {
  init_gmime();
  GPtr<GMimeMessage> message(g_mime_message_new(/*pretty_headers=*/TRUE));
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_FROM, {spec.from});
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_TO, spec.to);
  add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_CC, spec.cc);
  if (spec.reply_to) add_mailboxes(message.get(), GMIME_ADDRESS_TYPE_REPLY_TO, {*spec.reply_to});
  g_mime_message_set_subject(message.get(), spec.subject.c_str(), "utf-8");
  GDateTime* date = g_date_time_new_from_unix_utc(spec.date_unix_ms / 1000);
  g_mime_message_set_date(message.get(), date);
  g_date_time_unref(date);
  g_mime_message_set_message_id(message.get(), spec.message_id.c_str());
  for (const auto& [name, value] : spec.headers)
    g_mime_object_append_header(GMIME_OBJECT(message.get()), name.c_str(), value.c_str(), "utf-8");

  GPtr<GMimeObject> body;
  if (spec.text && spec.html) {
    // Plainest first, the preferred (richest) last (RFC 2046 §5.1.4).
    GMimeMultipart* alternative = g_mime_multipart_new_with_subtype("alternative");
    GPtr<GMimePart> text(new_text_part("plain", *spec.text));
    GPtr<GMimePart> html(new_text_part("html", *spec.html));
    g_mime_multipart_add(alternative, GMIME_OBJECT(text.get()));
    g_mime_multipart_add(alternative, GMIME_OBJECT(html.get()));
    body.reset(GMIME_OBJECT(alternative));
  } else if (spec.html) {
    body.reset(GMIME_OBJECT(new_text_part("html", *spec.html)));
  } else {
    body.reset(GMIME_OBJECT(new_text_part("plain", spec.text ? *spec.text : std::string())));
  }
  g_mime_message_set_mime_part(message.get(), body.get());

  GMimeFormatOptions* format = g_mime_format_options_clone(nullptr);
  g_mime_format_options_set_newline_format(format, GMIME_NEWLINE_FORMAT_DOS);
  char* text = g_mime_object_to_string(GMIME_OBJECT(message.get()), format);
  g_mime_format_options_free(format);
  std::string out = text ? text : "";
  g_free(text);
  if (!out.ends_with("\r\n")) out += "\r\n";
  return out;
}

}  // namespace ringmail::mta
