// tests/mta/inbound/mime_builder_test.cc — the built form's MIME as a mail
// reader sees it: the output is parsed back with GMime's parser (not
// compared with GMime's own writer's bytes), and checked for what a
// recipient's MUA and an SMTP relay need: structure, charsets and transfer
// encodings, decoded text, RFC 2047 header words, Date and Message-ID, no
// Bcc, CRLF-only 7-bit lines within 998 octets.
#include "mta/inbound/mime_builder.h"

#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

struct Unref {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, Unref>;

// 2026-01-01T00:00:00Z
constexpr int64_t kDateMs = 1767225600000;

MimeMessageSpec base_spec() {
  MimeMessageSpec spec;
  spec.from = {"Élodie Ünicöde", "elodie@example.test"};
  spec.to = {{"Bob Example", "bob@example.net"}, {"", "plain@example.net"}};
  spec.cc = {{"Doe, Carol", "carol@example.net"}};
  spec.subject = "Résumé of the café ☃";
  spec.message_id = "0123456789abcdef0123@mx.example.test";
  spec.date_unix_ms = kDateMs;
  return spec;
}

GPtr<GMimeMessage> parse(const std::string& text) {
  GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
  GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  return GPtr<GMimeMessage>(g_mime_parser_construct_message(parser.get(), nullptr));
}

// A part's content, decoded from its transfer encoding.
std::string decoded(GMimeObject* object) {
  GMimeDataWrapper* content = g_mime_part_get_content(GMIME_PART(object));
  GPtr<GMimeStream> out(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(content, out.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));
  return std::string(reinterpret_cast<const char*>(bytes->data), bytes->len);
}

std::string header(GMimeObject* object, const char* name) {
  const char* value = g_mime_object_get_header(object, name);
  return value ? value : "";
}

std::string encoding(GMimeObject* part) {
  const char* name =
      g_mime_content_encoding_to_string(g_mime_part_get_content_encoding(GMIME_PART(part)));
  return name ? name : "7bit";  // GMIME_CONTENT_ENCODING_DEFAULT: no header, 7bit
}

std::string content_type(GMimeObject* object) {
  GMimeContentType* type = g_mime_object_get_content_type(object);
  return std::string(g_mime_content_type_get_media_type(type)) + "/" +
         g_mime_content_type_get_media_subtype(type);
}

std::string charset(GMimeObject* object) {
  const char* c = g_mime_object_get_content_type_parameter(object, "charset");
  return c ? c : "";
}

// What every built message must be, whatever it holds.
void expect_wire_safe(const std::string& text) {
  ASSERT_TRUE(text.ends_with("\r\n"));
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find("\r\n", start);
    ASSERT_NE(end, std::string::npos) << "a line without CRLF at " << start;
    const std::string_view line(text.data() + start, end - start);
    EXPECT_LE(line.size(), 998u) << line.substr(0, 80);
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      ASSERT_TRUE(u < 0x80 && u != 0 && c != '\r' && c != '\n')
          << "byte " << int(u) << " in " << line.substr(0, 80);
    }
    start = end + 2;
  }
}

TEST(MimeBuilder, TextAndHtmlMakeMultipartAlternativeWithTheRightEncodings) {
  MimeMessageSpec spec = base_spec();
  spec.text = "Greetings from Köln, in a text that is mostly plain ASCII.\nSecond line.\n";
  spec.html = "<p>日本語のテキスト</p>\n<p>二行目</p>\n";
  const std::string out = build_mime_message(spec);
  expect_wire_safe(out);
  GPtr<GMimeMessage> m = parse(out);
  ASSERT_TRUE(m);
  GMimeObject* body = g_mime_message_get_mime_part(m.get());
  ASSERT_TRUE(GMIME_IS_MULTIPART(body));
  EXPECT_EQ(content_type(body), "multipart/alternative");
  GMimeMultipart* alternative = GMIME_MULTIPART(body);
  ASSERT_EQ(g_mime_multipart_get_count(alternative), 2);
  GMimeObject* text = g_mime_multipart_get_part(alternative, 0);
  GMimeObject* html = g_mime_multipart_get_part(alternative, 1);
  // Plainest first, the preferred last (RFC 2046 §5.1.4).
  EXPECT_EQ(content_type(text), "text/plain");
  EXPECT_EQ(content_type(html), "text/html");
  EXPECT_EQ(charset(text), "utf-8");
  EXPECT_EQ(charset(html), "utf-8");
  // Mostly ASCII: quoted-printable; mostly not: base64.
  EXPECT_EQ(encoding(text), "quoted-printable");
  EXPECT_EQ(encoding(html), "base64");
  // The text in its canonical form: UTF-8 with CRLF line ends.
  EXPECT_EQ(decoded(text),
            "Greetings from Köln, in a text that is mostly plain ASCII.\r\nSecond line.\r\n");
  EXPECT_EQ(decoded(html), "<p>日本語のテキスト</p>\r\n<p>二行目</p>\r\n");
  EXPECT_EQ(header(GMIME_OBJECT(m.get()), "MIME-Version"), "1.0");
}

TEST(MimeBuilder, HeadersAreEncodedWordsThatDecodeToTheFields) {
  MimeMessageSpec spec = base_spec();
  spec.subject =
      "Résumé of the café ☃ — a subject long enough that it has to be folded "
      "over more than one line of the header";
  spec.reply_to = Mailbox{"Réponses", "replies@example.test"};
  spec.headers = {{"X-Order", "Nº 42"}, {"List-Unsubscribe", "<mailto:u@example.test>"}};
  spec.text = "x";
  const std::string out = build_mime_message(spec);
  expect_wire_safe(out);
  // RFC 2047 words on the wire, in UTF-8.
  EXPECT_NE(out.find("Subject: =?UTF-8?"), std::string::npos) << out;
  EXPECT_NE(out.find("From: =?UTF-8?"), std::string::npos) << out;
  EXPECT_EQ(out.find("iso-8859-1"), std::string::npos) << out;
  EXPECT_NE(out.find("List-Unsubscribe: <mailto:u@example.test>\r\n"), std::string::npos) << out;

  GPtr<GMimeMessage> m = parse(out);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(g_mime_message_get_subject(m.get())), spec.subject);
  InternetAddressList* from = g_mime_message_get_from(m.get());
  ASSERT_EQ(internet_address_list_length(from), 1);
  InternetAddress* sender = internet_address_list_get_address(from, 0);
  EXPECT_EQ(std::string(internet_address_get_name(sender)), "Élodie Ünicöde");
  EXPECT_EQ(std::string(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(sender))),
            "elodie@example.test");
  InternetAddressList* to = g_mime_message_get_addresses(m.get(), GMIME_ADDRESS_TYPE_TO);
  ASSERT_EQ(internet_address_list_length(to), 2);
  EXPECT_EQ(std::string(internet_address_get_name(internet_address_list_get_address(to, 0))),
            "Bob Example");
  InternetAddressList* cc = g_mime_message_get_addresses(m.get(), GMIME_ADDRESS_TYPE_CC);
  ASSERT_EQ(internet_address_list_length(cc), 1);
  EXPECT_EQ(std::string(internet_address_get_name(internet_address_list_get_address(cc, 0))),
            "Doe, Carol");
  InternetAddressList* reply_to =
      g_mime_message_get_addresses(m.get(), GMIME_ADDRESS_TYPE_REPLY_TO);
  ASSERT_EQ(internet_address_list_length(reply_to), 1);
  EXPECT_EQ(std::string(internet_address_get_name(internet_address_list_get_address(reply_to, 0))),
            "Réponses");
  char* order = g_mime_utils_header_decode_text(
      nullptr, g_mime_object_get_header(GMIME_OBJECT(m.get()), "X-Order"));
  EXPECT_EQ(std::string(order), "Nº 42");
  g_free(order);
  // Extra fields in the order given.
  EXPECT_LT(out.find("X-Order:"), out.find("List-Unsubscribe:"));
}

TEST(MimeBuilder, DateAndMessageIdAreSetAndThereIsNoBcc) {
  MimeMessageSpec spec = base_spec();
  spec.text = "x";
  const std::string out = build_mime_message(spec);
  GPtr<GMimeMessage> m = parse(out);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::string(g_mime_message_get_message_id(m.get())),
            "0123456789abcdef0123@mx.example.test");
  EXPECT_NE(out.find("<0123456789abcdef0123@mx.example.test>"), std::string::npos);
  GDateTime* date = g_mime_message_get_date(m.get());
  ASSERT_NE(date, nullptr);
  EXPECT_EQ(g_date_time_to_unix(date), kDateMs / 1000);
  EXPECT_NE(out.find("Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"), std::string::npos) << out;
  for (const char* bcc : {"\r\nBcc:", "\r\nbcc:", "\r\nBCC:"})
    EXPECT_EQ(out.find(bcc), std::string::npos);
  EXPECT_EQ(g_mime_object_get_header(GMIME_OBJECT(m.get()), "Bcc"), nullptr);
}

TEST(MimeBuilder, SinglePartsAndPlainAscii) {
  MimeMessageSpec text_only = base_spec();
  text_only.text = "just ascii\nin two lines\n";
  const std::string plain = build_mime_message(text_only);
  expect_wire_safe(plain);
  GPtr<GMimeMessage> m = parse(plain);
  GMimeObject* body = g_mime_message_get_mime_part(m.get());
  ASSERT_TRUE(GMIME_IS_PART(body));
  EXPECT_EQ(content_type(body), "text/plain");
  EXPECT_EQ(encoding(body), "7bit");  // nothing to encode
  EXPECT_EQ(decoded(body), "just ascii\r\nin two lines\r\n");

  MimeMessageSpec html_only = base_spec();
  html_only.html = "<p>only html</p>";
  GPtr<GMimeMessage> h = parse(build_mime_message(html_only));
  GMimeObject* html = g_mime_message_get_mime_part(h.get());
  ASSERT_TRUE(GMIME_IS_PART(html));
  EXPECT_EQ(content_type(html), "text/html");
  // A message ends with CRLF (SMTP data does); outside a multipart that
  // CRLF is the last line's.
  EXPECT_EQ(decoded(html), "<p>only html</p>\r\n");
}

TEST(MimeBuilder, LongLinesAndEveryLineEndingBecomeWireSafe) {
  MimeMessageSpec spec = base_spec();
  // ASCII, but one line too long for SMTP; bare CR, bare LF and CRLF mixed.
  spec.text = std::string(2500, 'y') + "\rcr\nlf\r\ncrlf\n.leading dot\nFrom here\n";
  const std::string out = build_mime_message(spec);
  expect_wire_safe(out);
  GPtr<GMimeMessage> m = parse(out);
  GMimeObject* body = g_mime_message_get_mime_part(m.get());
  EXPECT_NE(encoding(body), "7bit");
  EXPECT_EQ(decoded(body),
            std::string(2500, 'y') + "\r\ncr\r\nlf\r\ncrlf\r\n.leading dot\r\nFrom here\r\n");
}

TEST(MimeBuilder, ParseMailboxTakesOneMailboxAndNothingElse) {
  struct Row {
    const char* text;
    bool ok;
    const char* name;
    const char* address;
  };
  const Row rows[] = {
      {"a@example.test", true, "", "a@example.test"},
      {"Name <a@example.test>", true, "Name", "a@example.test"},
      {"\"Doe, John\" <john@example.test>", true, "Doe, John", "john@example.test"},
      {"Élodie <élodie@exemple.test>", true, "Élodie", "élodie@exemple.test"},
      {"=?utf-8?q?Caf=C3=A9?= <c@example.test>", true, "Café", "c@example.test"},
      {"<a@example.test>", true, "", "a@example.test"},
      {"", false, "", ""},
      {"no-at-sign", false, "", ""},
      {"a@", false, "", ""},
      {"@example.test", false, "", ""},
      {"Name <not an address>", false, "", ""},
      {"a@example.test, b@example.test", false, "", ""},
      {"group: a@example.test;", false, "", ""},
      {"a@exa mple.test", false, "", ""},
      {"Name\r\nBcc: x@y.test <a@example.test>", false, "", ""},
      {"a@example.test\n", false, "", ""},
      // GMime's parser would drop the rest and leave another address.
      {"a@example.test@other.test", false, "", ""},
      {"a@example.test;", false, "", ""},
      {"a@example.test,", false, "", ""},
      {"Name <a@example.test> <b@example.test>", false, "", ""},
      {"Name <a@example.test@other.test>", false, "", ""},
      {"a@example.test (comment)", false, "", ""},
      {"\"A <b@c.test>\" <d@example.test>", true, "A <b@c.test>", "d@example.test"},
      {"  spaced@example.test  ", true, "", "spaced@example.test"},
  };
  for (const Row& row : rows) {
    std::optional<Mailbox> m = parse_mailbox(row.text);
    EXPECT_EQ(m.has_value(), row.ok) << row.text;
    if (!m || !row.ok) continue;
    EXPECT_EQ(m->display_name, row.name) << row.text;
    EXPECT_EQ(m->address, row.address) << row.text;
  }
}

TEST(MimeBuilder, ReservedHeadersAreTheOnesItWrites) {
  for (const char* name : {"From", "to", "CC", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
                           "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                           "content-disposition", "Received", "DKIM-Signature", "Return-Path"})
    EXPECT_TRUE(is_reserved_header(name)) << name;
  for (const char* name : {"X-Order", "List-Unsubscribe", "In-Reply-To", "References", "Sender",
                           "Contentious", "X-Campaign-ID"})
    EXPECT_FALSE(is_reserved_header(name)) << name;
}

}  // namespace
}  // namespace ringmail::mta
