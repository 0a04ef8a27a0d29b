#include "mail/feedback_report.h"

#include <gmime/gmime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "mail/gmime_init.h"

namespace ringmail::mail {
namespace {

struct GObjectUnref {
  void operator()(void* object) const {
    if (object) g_object_unref(object);
  }
};
template <class T>
using GPtr = std::unique_ptr<T, GObjectUnref>;

struct ParserOptionsFree {
  void operator()(GMimeParserOptions* options) const {
    if (options) g_mime_parser_options_free(options);
  }
};

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The problems of one parse, bounded: the first max entries are kept, the
// rest counted.
class Problems {
 public:
  explicit Problems(std::size_t max) : max_(max) {}
  void add(std::string problem) {
    if (list_.size() < max_)
      list_.push_back(std::move(problem));
    else
      ++dropped_;
  }
  std::vector<std::string> take() {
    if (dropped_ > 0) list_.push_back(std::to_string(dropped_) + " more problems");
    return std::move(list_);
  }

 private:
  std::size_t max_;
  std::size_t dropped_ = 0;
  std::vector<std::string> list_;
};

// The value as Ringmail hands it on: valid UTF-8 (an invalid byte becomes
// U+FFFD), control characters as spaces, runs of white space as one space,
// trimmed, at most max bytes (cut before a character). *cut says whether
// something was cut.
std::string clean(std::string_view in, std::size_t max, bool* cut) {
  std::string out;
  out.reserve(std::min(in.size(), max));
  bool pending_space = false;
  *cut = false;
  std::size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    std::size_t len = 1;
    uint32_t cp = b;
    bool valid = true;
    if (b >= 0x80) {
      if (b >= 0xc2 && b <= 0xdf) {
        len = 2, cp = b & 0x1f;
      } else if (b >= 0xe0 && b <= 0xef) {
        len = 3, cp = b & 0x0f;
      } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4, cp = b & 0x07;
      } else {
        valid = false;
      }
      if (valid && i + len > in.size()) valid = false;
      for (std::size_t k = 1; valid && k < len; ++k) {
        const auto c = static_cast<unsigned char>(in[i + k]);
        if ((c & 0xc0) != 0x80) valid = false;
        cp = (cp << 6) | (c & 0x3f);
      }
      // Overlong forms, surrogates and values past U+10FFFF.
      if (valid && ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff)))
        valid = false;
      if (!valid) len = 1;
    }
    if (!valid) cp = 0xfffd;
    std::string_view piece = valid ? in.substr(i, len) : std::string_view("\xef\xbf\xbd");
    i += len;
    const bool control = valid && (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f));
    if (control || cp == ' ') {
      pending_space = !out.empty();
      continue;
    }
    const std::size_t need = piece.size() + (pending_space ? 1 : 0);
    if (out.size() + need > max) {
      *cut = true;
      break;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.append(piece);
  }
  return out;
}

// The addr-spec of "<User@Example.COM>" or "User@Example.COM": no angle
// brackets, domain lower case.
std::string normalise_address(std::string_view text) {
  text = trim(text);
  if (const auto open = text.find('<'); open != std::string_view::npos) {
    const auto close = text.find('>', open);
    text = trim(text.substr(
        open + 1, close == std::string_view::npos ? std::string_view::npos : close - open - 1));
  }
  std::string out(text);
  if (const auto at = out.rfind('@'); at != std::string::npos)
    std::transform(out.begin() + static_cast<std::ptrdiff_t>(at), out.end(),
                   out.begin() + static_cast<std::ptrdiff_t>(at), ascii_lower);
  return out;
}

TypedAddress typed_value(std::string_view value) {
  TypedAddress typed;
  const auto semi = value.find(';');
  if (semi == std::string_view::npos) {
    typed.address = value.find('@') != std::string_view::npos ? normalise_address(value)
                                                              : std::string(trim(value));
    return typed;
  }
  typed.type = lower(trim(value.substr(0, semi)));
  const std::string_view rest = trim(value.substr(semi + 1));
  if (typed.type == "rfc822" || typed.type == "utf-8")
    typed.address = normalise_address(rest);
  else
    typed.address = std::string(rest);
  return typed;
}

std::string normalise_message_id(std::string_view value) {
  value = trim(value);
  const auto open = value.find('<');
  const auto close =
      open == std::string_view::npos ? std::string_view::npos : value.find('>', open);
  if (close != std::string_view::npos)
    return std::string(trim(value.substr(open + 1, close - open - 1)));
  return std::string(value);
}

// "5.1.1": class 2, 4 or 5, subject and detail of 1 to 3 digits.
bool is_status_code(std::string_view code) {
  if (code.size() < 5 || (code[0] != '2' && code[0] != '4' && code[0] != '5') || code[1] != '.')
    return false;
  std::size_t i = 2;
  for (int field = 0; field < 2; ++field) {
    std::size_t digits = 0;
    while (i < code.size() && is_digit(code[i]) && digits < 4) ++i, ++digits;
    if (digits == 0 || digits > 3) return false;
    if (field == 0) {
      if (i >= code.size() || code[i] != '.') return false;
      ++i;
    }
  }
  return i == code.size();
}

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

DiagnosticCode diagnostic_code(std::string_view value) {
  DiagnosticCode diag;
  const auto semi = value.find(';');
  if (semi != std::string_view::npos) {
    diag.type = lower(trim(value.substr(0, semi)));
    diag.text = std::string(trim(value.substr(semi + 1)));
  } else {
    diag.text = std::string(trim(value));
  }
  const std::vector<std::string_view> w = words(diag.text);
  diag.reply_text = diag.text;
  if (w.empty() || w[0].size() < 3 || !(w[0][0] >= '2' && w[0][0] <= '5') || !is_digit(w[0][1]) ||
      !is_digit(w[0][2]) || (w[0].size() > 3 && w[0][3] != '-'))
    return diag;
  const std::string code(w[0].substr(0, 3));
  diag.smtp_code = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  // The enhanced code: "550 5.1.1" or "550-5.1.1".
  if (w[0].size() > 4 && is_status_code(w[0].substr(4)) && w[0][4] == code[0])
    diag.enhanced = std::string(w[0].substr(4));
  else if (w[0].size() == 3 && w.size() > 1 && is_status_code(w[1]) && w[1][0] == code[0])
    diag.enhanced = std::string(w[1]);
  // The text without the code of each line of a multi-line reply.
  std::string text;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const std::string_view word = w[i];
    if (word == code || word == code + "-") {
      if (!diag.enhanced.empty() && i + 1 < w.size() && w[i + 1] == diag.enhanced) ++i;
      continue;
    }
    if (!diag.enhanced.empty() &&
        (word == code + "-" + diag.enhanced || word == code + " " + diag.enhanced))
      continue;
    if (!text.empty()) text.push_back(' ');
    text.append(word);
  }
  diag.reply_text = std::move(text);
  return diag;
}

DsnAction dsn_action(std::string_view value) {
  const std::vector<std::string_view> w = words(value);
  const std::string first = w.empty() ? std::string() : lower(w[0]);
  if (first == "failed") return DsnAction::Failed;
  if (first == "delayed") return DsnAction::Delayed;
  if (first == "delivered") return DsnAction::Delivered;
  if (first == "relayed") return DsnAction::Relayed;
  if (first == "expanded") return DsnAction::Expanded;
  return DsnAction::Unknown;
}

ArfFeedbackType arf_feedback_type(std::string_view lower_value) {
  if (lower_value == "abuse") return ArfFeedbackType::Abuse;
  if (lower_value == "fraud") return ArfFeedbackType::Fraud;
  if (lower_value == "virus") return ArfFeedbackType::Virus;
  if (lower_value == "other") return ArfFeedbackType::Other;
  if (lower_value == "not-spam") return ArfFeedbackType::NotSpam;
  if (lower_value == "auth-failure") return ArfFeedbackType::AuthFailure;
  return ArfFeedbackType::Unknown;
}

std::string_view warning_text(GMimeParserWarning code) {
  switch (code) {
    case GMIME_WARN_DUPLICATED_HEADER:
      return "duplicated header field";
    case GMIME_WARN_DUPLICATED_PARAMETER:
      return "duplicated parameter";
    case GMIME_WARN_UNENCODED_8BIT_HEADER:
      return "unencoded 8-bit header";
    case GMIME_WARN_INVALID_CONTENT_TYPE:
      return "invalid Content-Type";
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
      return "invalid RFC 2047 encoded word";
    case GMIME_WARN_MALFORMED_MULTIPART:
      return "multipart without parts";
    case GMIME_WARN_TRUNCATED_MESSAGE:
      return "truncated message";
    case GMIME_WARN_MALFORMED_MESSAGE:
      return "malformed message";
    case GMIME_CRIT_INVALID_HEADER_NAME:
      return "invalid header field name";
    case GMIME_CRIT_CONFLICTING_HEADER:
      return "conflicting header fields";
    case GMIME_CRIT_CONFLICTING_PARAMETER:
      return "conflicting parameters";
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
      return "multipart without boundary";
    case GMIME_WARN_INVALID_PARAMETER:
      return "invalid parameter";
    case GMIME_WARN_INVALID_ADDRESS_LIST:
      return "invalid address list";
    case GMIME_CRIT_NESTING_OVERFLOW:
      return "MIME nesting too deep";
    case GMIME_WARN_PART_WITHOUT_CONTENT:
      return "part without content";
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      return "part without header or content";
  }
  return "parser warning";
}

// One parse: the limits, the problems, and the GMime parser options whose
// warning callback reports into them (once per kind of warning). The
// options must outlive every GMime object made with them: header values
// are decoded lazily with the options they were parsed with.
class Parse {
 public:
  explicit Parse(const FeedbackLimits& limits) : limits(limits), problems(limits.max_problems) {
    ensure_gmime_initialized();
    options_.reset(g_mime_parser_options_new());
    g_mime_parser_options_set_warning_callback(options_.get(), &Parse::on_warning, this);
  }

  GMimeParserOptions* options() { return options_.get(); }

  // Values as handed back; a cut is a problem of `where`.
  std::string value(std::string_view raw, std::string_view where) {
    bool cut = false;
    std::string out = clean(raw, limits.max_value_bytes, &cut);
    if (cut)
      problems.add(std::string(where) + ": value cut to " + std::to_string(limits.max_value_bytes) +
                   " bytes");
    return out;
  }

  // The fields of one GMime header list, at most max_headers.
  std::vector<HeaderField> fields(GMimeHeaderList* list, std::string_view where) {
    std::vector<HeaderField> out;
    if (!list) return out;
    const int count = g_mime_header_list_get_count(list);
    for (int i = 0; i < count; ++i) {
      if (out.size() >= limits.max_headers) {
        problems.add(std::string(where) + ": " + std::to_string(count - i) +
                     " header fields past the first " + std::to_string(limits.max_headers) +
                     " ignored");
        break;
      }
      GMimeHeader* header = g_mime_header_list_get_header_at(list, i);
      const char* name = header ? g_mime_header_get_name(header) : nullptr;
      if (!name) continue;
      const char* raw = g_mime_header_get_value(header);
      HeaderField field;
      field.name = value(name, where);
      field.value = value(raw ? raw : "", std::string(where) + " " + field.name);
      out.push_back(std::move(field));
    }
    return out;
  }

  // A GMime object parsed from bytes of our own (a field group, a header
  // block); nullptr when GMime found nothing.
  GPtr<GMimeObject> parse_part(std::string_view bytes) {
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    return GPtr<GMimeObject>(g_mime_parser_construct_part(parser.get(), options()));
  }
  GPtr<GMimeMessage> parse_message(std::string_view bytes) {
    GPtr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(bytes.data(), bytes.size()));
    GPtr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
    return GPtr<GMimeMessage>(g_mime_parser_construct_message(parser.get(), options()));
  }

  const FeedbackLimits& limits;
  Problems problems;

 private:
  // GMime warns about every repeated field (each Received after the
  // first); only repeats of the fields read here are worth a problem.
  static bool repeat_matters(const gchar* name) {
    if (!name) return false;
    for (std::string_view field : {"Content-Type", "Content-Transfer-Encoding", "Message-ID",
                                   "Final-Recipient", "Action", "Status", "Feedback-Type"})
      if (iequals(name, field)) return true;
    return false;
  }

  static void on_warning(gint64, GMimeParserWarning code, const gchar* item, gpointer self) {
    auto* parse = static_cast<Parse*>(self);
    const bool repeat =
        code == GMIME_WARN_DUPLICATED_HEADER || code == GMIME_CRIT_CONFLICTING_HEADER;
    if (repeat && !repeat_matters(item)) return;
    const auto index = static_cast<std::size_t>(code);
    if (index < parse->seen_.size()) {
      if (parse->seen_[index]) return;
      parse->seen_[index] = true;
    }
    std::string problem = "MIME: " + std::string(warning_text(code));
    if (repeat) problem += std::string(" (") + item + ")";
    parse->problems.add(std::move(problem));
  }

  std::unique_ptr<GMimeParserOptions, ParserOptionsFree> options_;
  std::array<bool, 32> seen_{};
};

// The input GMime sees: the first max_input_bytes, max_lines lines, and
// max_boundary_lines lines that begin with "--".
std::string_view bounded_input(std::string_view raw, Parse& parse) {
  const FeedbackLimits& limits = parse.limits;
  if (raw.size() > limits.max_input_bytes) {
    parse.problems.add("input cut to its first " + std::to_string(limits.max_input_bytes) +
                       " bytes");
    raw = raw.substr(0, limits.max_input_bytes);
  }
  std::size_t lines = 0;
  std::size_t boundaries = 0;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    if (raw.compare(pos, 2, "--") == 0 && ++boundaries > limits.max_boundary_lines) {
      parse.problems.add("input cut before its line " + std::to_string(lines + 1) + ": more than " +
                         std::to_string(limits.max_boundary_lines) +
                         " lines beginning with \"--\"");
      return raw.substr(0, pos);
    }
    if (++lines > limits.max_lines) {
      parse.problems.add("input cut to its first " + std::to_string(limits.max_lines) + " lines");
      return raw.substr(0, pos);
    }
    const auto end = raw.find('\n', pos);
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return raw;
}

// The decoded content of a leaf part (Content-Transfer-Encoding undone), at
// most max bytes.
std::string part_content(GMimePart* part, std::size_t max, bool* cut) {
  *cut = false;
  GMimeDataWrapper* wrapper = g_mime_part_get_content(part);
  if (!wrapper) return {};
  GPtr<GMimeStream> stream(g_mime_stream_mem_new());
  g_mime_data_wrapper_write_to_stream(wrapper, stream.get());
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream.get()));
  if (!bytes) return {};
  std::size_t size = bytes->len;
  if (size > max) size = max, *cut = true;
  return std::string(reinterpret_cast<const char*>(bytes->data), size);
}

std::string content_type_of(GMimeObject* object) {
  GMimeContentType* type = object ? g_mime_object_get_content_type(object) : nullptr;
  if (!type) return {};
  const char* media = g_mime_content_type_get_media_type(type);
  const char* sub = g_mime_content_type_get_media_subtype(type);
  return lower(std::string(media ? media : "") + "/" + (sub ? sub : ""));
}

bool is_status_type(std::string_view type) {
  return type == "message/delivery-status" || type == "message/global-delivery-status" ||
         type == "message/feedback-report";
}

bool is_original_type(std::string_view type) {
  return type == "message/rfc822" || type == "message/global" || type == "text/rfc822-headers" ||
         type == "message/global-headers" || type == "message/rfc822-headers";
}

// The parts of a report the walk found.
struct ReportParts {
  bool in_report = false;   // inside a multipart/report
  std::string report_type;  // its report-type, lower case
  GMimeObject* status = nullptr;
  std::string status_type;
  GMimeObject* original = nullptr;
  std::string original_type;
};

// Looks through the MIME tree (multiparts only, never into a returned
// message) for the first multipart/report, its machine-readable part and its
// returned original; failing a multipart/report, for a lone machine-readable
// part and an original after it. Bounded by max_parts and max_depth.
class ReportFinder {
 public:
  explicit ReportFinder(Parse& parse) : parse_(parse) {}

  ReportParts find(GMimeObject* top) {
    note(loose_, top);
    visit(top, 0);
    if (!report_.in_report) return loose_;
    return report_;
  }

 private:
  void visit(GMimeObject* object, std::size_t depth) {
    if (!object || done_) return;
    if (++parts_ > parse_.limits.max_parts) {
      if (!limit_noted_)
        parse_.problems.add("MIME: more than " + std::to_string(parse_.limits.max_parts) +
                            " parts: the rest not looked at");
      limit_noted_ = true;
      done_ = true;
      return;
    }
    if (!GMIME_IS_MULTIPART(object)) return;
    auto* multipart = GMIME_MULTIPART(object);
    const std::string type = content_type_of(object);
    const int count = g_mime_multipart_get_count(multipart);
    if (type == "multipart/report") {
      report_.in_report = true;
      GMimeContentType* ct = g_mime_object_get_content_type(object);
      const char* report_type = ct ? g_mime_content_type_get_parameter(ct, "report-type") : nullptr;
      report_.report_type = lower(trim(report_type ? report_type : ""));
      for (int i = 0; i < count && i < static_cast<int>(parse_.limits.max_parts); ++i)
        note(report_, g_mime_multipart_get_part(multipart, i));
      done_ = true;
      return;
    }
    if (depth + 1 > parse_.limits.max_depth) {
      if (!depth_noted_)
        parse_.problems.add("MIME: multiparts nested deeper than " +
                            std::to_string(parse_.limits.max_depth) + " not looked at");
      depth_noted_ = true;
      return;
    }
    for (int i = 0; i < count && !done_; ++i) {
      GMimeObject* child = g_mime_multipart_get_part(multipart, i);
      note(loose_, child);
      visit(child, depth + 1);
    }
  }

  static void note(ReportParts& parts, GMimeObject* child) {
    const std::string type = content_type_of(child);
    if (!parts.status && is_status_type(type)) {
      parts.status = child;
      parts.status_type = type;
    } else if (parts.status && !parts.original && is_original_type(type)) {
      parts.original = child;
      parts.original_type = type;
    }
  }

  Parse& parse_;
  ReportParts report_;
  ReportParts loose_;
  std::size_t parts_ = 0;
  bool done_ = false;
  bool limit_noted_ = false;
  bool depth_noted_ = false;
};

// The RFC 3464 (and RFC 5965) body: groups of header fields separated by
// blank lines. The split is ours; each group's fields are GMime's
// (unfolding, decoding). Stops after max_groups groups.
std::vector<std::vector<HeaderField>> field_groups(std::string_view body, std::size_t max_groups,
                                                   Parse& parse, std::string_view where) {
  std::vector<std::vector<HeaderField>> groups;
  std::size_t pos = 0;
  while (pos < body.size()) {
    // Blank lines before the group, its lines, the blank line after it.
    std::size_t start = std::string_view::npos;
    std::size_t end = pos;
    while (pos < body.size()) {
      const std::size_t line = pos;
      const auto eol = body.find('\n', pos);
      pos = eol == std::string_view::npos ? body.size() : eol + 1;
      if (trim(body.substr(line, pos - line)).empty()) {
        if (start != std::string_view::npos) break;
      } else {
        if (start == std::string_view::npos) start = line;
        end = pos;
      }
    }
    if (start == std::string_view::npos) break;
    if (groups.size() >= max_groups) {
      parse.problems.add(std::string(where) + ": more than " + std::to_string(max_groups) +
                         " field groups; the rest ignored");
      break;
    }
    std::string group(body.substr(start, end - start));
    group.append("\n\n");
    const std::string label = std::string(where) + " group " + std::to_string(groups.size() + 1);
    GPtr<GMimeObject> object = parse.parse_part(group);
    // GMime skips lines that are no header fields (with a warning).
    std::vector<HeaderField> fields;
    if (object) fields = parse.fields(g_mime_object_get_header_list(object.get()), label);
    if (fields.empty()) parse.problems.add(label + ": no fields");
    groups.push_back(std::move(fields));
  }
  return groups;
}

const std::string* field(const std::vector<HeaderField>& fields, std::string_view name) {
  for (const HeaderField& f : fields)
    if (iequals(f.name, name)) return &f.value;
  return nullptr;
}

std::string field_or_empty(const std::vector<HeaderField>& fields, std::string_view name) {
  const std::string* value = field(fields, name);
  return value ? *value : std::string();
}

std::optional<TypedAddress> typed_field(const std::vector<HeaderField>& fields,
                                        std::string_view name) {
  const std::string* value = field(fields, name);
  if (!value) return std::nullopt;
  return typed_value(*value);
}

std::string last_message_id(const std::vector<HeaderField>& fields) {
  std::string id;
  for (const HeaderField& f : fields)
    if (iequals(f.name, "Message-ID")) id = normalise_message_id(f.value);
  return id;
}

bool is_recipient_group(const std::vector<HeaderField>& fields) {
  return field(fields, "Final-Recipient") || field(fields, "Action");
}

void read_dsn(std::string_view body, Parse& parse, DsnReport& dsn) {
  std::vector<std::vector<HeaderField>> groups =
      field_groups(body, parse.limits.max_recipients + 1, parse, "DSN");
  if (groups.empty()) {
    parse.problems.add("DSN: empty delivery-status part");
    return;
  }
  std::size_t first_recipient = 0;
  if (!is_recipient_group(groups[0])) {
    const auto& message = groups[0];
    dsn.reporting_mta = typed_field(message, "Reporting-MTA");
    dsn.original_envelope_id = field_or_empty(message, "Original-Envelope-Id");
    dsn.arrival_date = field_or_empty(message, "Arrival-Date");
    if (!dsn.reporting_mta) parse.problems.add("DSN: no Reporting-MTA");
    first_recipient = 1;
  } else {
    parse.problems.add("DSN: no per-message fields (the first group names a recipient)");
  }
  for (std::size_t i = first_recipient; i < groups.size(); ++i) {
    const auto& fields = groups[i];
    const std::string label = "DSN recipient " + std::to_string(i - first_recipient + 1);
    if (dsn.recipients.size() >= parse.limits.max_recipients) {
      parse.problems.add("DSN: more than " + std::to_string(parse.limits.max_recipients) +
                         " recipients; the rest ignored");
      break;
    }
    DsnRecipient r;
    r.final_recipient = typed_field(fields, "Final-Recipient");
    r.original_recipient = typed_field(fields, "Original-Recipient");
    r.remote_mta = typed_field(fields, "Remote-MTA");
    r.last_attempt_date = field_or_empty(fields, "Last-Attempt-Date");
    r.will_retry_until = field_or_empty(fields, "Will-Retry-Until");
    if (!r.final_recipient) parse.problems.add(label + ": no Final-Recipient");
    if (const std::string* action = field(fields, "Action")) {
      r.action = dsn_action(*action);
      if (r.action == DsnAction::Unknown)
        parse.problems.add(label + ": Action '" + *action + "' is not an RFC 3464 action");
    } else {
      parse.problems.add(label + ": no Action");
    }
    if (const std::string* status = field(fields, "Status")) {
      const std::vector<std::string_view> w = words(*status);
      if (!w.empty() && is_status_code(w[0]))
        r.status = std::string(w[0]);
      else
        parse.problems.add(label + ": Status '" + *status + "' is not a status code");
    } else {
      parse.problems.add(label + ": no Status");
    }
    if (const std::string* diag = field(fields, "Diagnostic-Code"))
      r.diagnostic_code = diagnostic_code(*diag);
    dsn.recipients.push_back(std::move(r));
  }
  if (dsn.recipients.empty()) parse.problems.add("DSN: no per-recipient fields");
}

void read_arf(std::string_view body, Parse& parse, ArfReport& arf) {
  std::vector<std::vector<HeaderField>> groups = field_groups(body, 4, parse, "ARF");
  if (groups.empty()) {
    parse.problems.add("ARF: empty feedback-report part");
    return;
  }
  if (groups.size() > 1)
    parse.problems.add(
        "ARF: feedback-report part has more than one field group; the first is read");
  const auto& fields = groups[0];
  if (const std::string* type = field(fields, "Feedback-Type")) {
    const std::vector<std::string_view> w = words(*type);
    arf.feedback_type_text = w.empty() ? std::string() : lower(w[0]);
    arf.feedback_type = arf_feedback_type(arf.feedback_type_text);
    if (arf.feedback_type == ArfFeedbackType::Unknown)
      parse.problems.add("ARF: Feedback-Type '" + *type + "' is not known");
  } else {
    parse.problems.add("ARF: no Feedback-Type");
  }
  arf.user_agent = field_or_empty(fields, "User-Agent");
  arf.version = field_or_empty(fields, "Version");
  if (arf.user_agent.empty()) parse.problems.add("ARF: no User-Agent");
  if (arf.version.empty()) parse.problems.add("ARF: no Version");
  if (const std::string* from = field(fields, "Original-Mail-From"))
    arf.original_mail_from = normalise_address(*from);
  arf.arrival_date = field_or_empty(fields, "Arrival-Date");
  if (arf.arrival_date.empty()) arf.arrival_date = field_or_empty(fields, "Received-Date");
  arf.source_ip = field_or_empty(fields, "Source-IP");
  arf.reporting_mta = typed_field(fields, "Reporting-MTA");
  for (const HeaderField& f : fields) {
    if (iequals(f.name, "Original-Rcpt-To"))
      arf.original_rcpt_to.push_back(normalise_address(f.value));
    else if (iequals(f.name, "Reported-Domain"))
      arf.reported_domains.push_back(lower(trim(f.value)));
  }
}

std::optional<ReturnedOriginal> read_original(GMimeObject* object, const std::string& type,
                                              Parse& parse) {
  ReturnedOriginal original;
  original.headers_only = type.find("headers") != std::string::npos;
  if (GMIME_IS_MESSAGE_PART(object)) {
    GMimeMessage* message = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
    if (!message) {
      parse.problems.add("returned original: empty " + type + " part");
      return std::nullopt;
    }
    original.headers =
        parse.fields(g_mime_object_get_header_list(GMIME_OBJECT(message)), "returned original");
  } else if (GMIME_IS_PART(object)) {
    // text/rfc822-headers, or a message/rfc822 part with a transfer
    // encoding (GMime leaves those undecoded): decode, then parse the
    // header block.
    bool cut = false;
    std::string bytes = part_content(GMIME_PART(object), parse.limits.max_input_bytes, &cut);
    // A header block alone ends without the blank line a message has.
    if (original.headers_only) bytes.append("\n\n");
    GPtr<GMimeMessage> message = parse.parse_message(bytes);
    if (!message) {
      parse.problems.add("returned original: " + type + " part is not a header block");
      return std::nullopt;
    }
    original.headers = parse.fields(g_mime_object_get_header_list(GMIME_OBJECT(message.get())),
                                    "returned original");
  } else {
    parse.problems.add("returned original: " + type + " part is a multipart");
    return std::nullopt;
  }
  if (original.headers.empty()) parse.problems.add("returned original: no header fields");
  original.message_id = last_message_id(original.headers);
  return original;
}

// The first matching rule of auto_reply_rules() as "Header: value", or "".
std::string auto_reply_rule_for(const std::vector<HeaderField>& headers) {
  for (const AutoReplyRule& rule : auto_reply_rules()) {
    const std::string* raw = field(headers, rule.header);
    if (!raw) continue;
    const std::string value = lower(trim(*raw));
    bool match = false;
    switch (rule.match) {
      case AutoReplyRule::Match::AnyBut:
        match = !value.empty() && value != rule.value;
        break;
      case AutoReplyRule::Match::Present:
        match = true;
        break;
      case AutoReplyRule::Match::Equals:
        match = value == rule.value;
        break;
      case AutoReplyRule::Match::Prefix:
        match = value.starts_with(rule.value);
        break;
    }
    if (match)
      return std::string(rule.header) + ": " +
             (rule.match == AutoReplyRule::Match::Prefix ? std::string(rule.value) : value);
  }
  return {};
}

}  // namespace

std::string_view feedback_kind_name(FeedbackKind kind) {
  switch (kind) {
    case FeedbackKind::Dsn:
      return "dsn";
    case FeedbackKind::Arf:
      return "arf";
    case FeedbackKind::AutoReply:
      return "auto_reply";
    case FeedbackKind::Other:
      return "other";
  }
  return "other";
}

std::string_view dsn_action_name(DsnAction action) {
  switch (action) {
    case DsnAction::Failed:
      return "failed";
    case DsnAction::Delayed:
      return "delayed";
    case DsnAction::Delivered:
      return "delivered";
    case DsnAction::Relayed:
      return "relayed";
    case DsnAction::Expanded:
      return "expanded";
    case DsnAction::Unknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view arf_feedback_type_name(ArfFeedbackType type) {
  switch (type) {
    case ArfFeedbackType::Abuse:
      return "abuse";
    case ArfFeedbackType::Fraud:
      return "fraud";
    case ArfFeedbackType::Virus:
      return "virus";
    case ArfFeedbackType::Other:
      return "other";
    case ArfFeedbackType::NotSpam:
      return "not-spam";
    case ArfFeedbackType::AuthFailure:
      return "auth-failure";
    case ArfFeedbackType::Unknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<std::string> ReturnedOriginal::header(std::string_view name) const {
  if (const std::string* value = field(headers, name)) return *value;
  return std::nullopt;
}

const std::vector<AutoReplyRule>& auto_reply_rules() {
  using M = AutoReplyRule::Match;
  static const std::vector<AutoReplyRule> rules = {
      {"Auto-Submitted", M::AnyBut, "no"},
      {"X-Autoreply", M::Present, ""},
      {"X-Autorespond", M::Present, ""},
      {"Precedence", M::Equals, "auto_reply"},
      {"Subject", M::Prefix, "out of office"},
      {"Subject", M::Prefix, "automatic reply"},
      {"Subject", M::Prefix, "auto-reply"},
      {"Subject", M::Prefix, "autoreply"},
      {"Subject", M::Prefix, "abwesenheitsnotiz"},
      {"Subject", M::Prefix, "automatische antwort"},
      {"Subject", M::Prefix, "r\xc3\xa9ponse automatique"},
  };
  return rules;
}

FeedbackReport parse_feedback_report(std::string_view raw, const FeedbackLimits& limits) {
  FeedbackReport report;
  Parse parse(limits);
  const std::string_view input = bounded_input(raw, parse);
  GPtr<GMimeMessage> message = parse.parse_message(input);
  if (!message) {
    parse.problems.add("not a message: no header block");
    report.problems = parse.problems.take();
    return report;
  }
  report.headers =
      parse.fields(g_mime_object_get_header_list(GMIME_OBJECT(message.get())), "header");
  report.subject = field_or_empty(report.headers, "Subject");
  report.message_id = normalise_message_id(field_or_empty(report.headers, "Message-ID"));

  ReportParts parts = ReportFinder(parse).find(g_mime_message_get_mime_part(message.get()));
  const bool dsn_type =
      parts.report_type == "delivery-status" || parts.report_type == "global-delivery-status";
  const bool arf_type = parts.report_type == "feedback-report";
  if (parts.in_report && !dsn_type && !arf_type)
    parse.problems.add("multipart/report with report-type '" + parts.report_type + "'");
  if (!parts.in_report && parts.status)
    parse.problems.add(parts.status_type + " part outside a multipart/report");
  if (dsn_type || (!arf_type && parts.status_type.ends_with("delivery-status"))) {
    report.kind = FeedbackKind::Dsn;
    if (!parts.status_type.ends_with("delivery-status"))
      parse.problems.add("DSN: no message/delivery-status part");
  } else if (arf_type || parts.status_type == "message/feedback-report") {
    report.kind = FeedbackKind::Arf;
    if (parts.status_type != "message/feedback-report")
      parse.problems.add("ARF: no message/feedback-report part");
  } else {
    report.auto_reply_rule = auto_reply_rule_for(report.headers);
    report.kind = report.auto_reply_rule.empty() ? FeedbackKind::Other : FeedbackKind::AutoReply;
    report.problems = parse.problems.take();
    return report;
  }

  // The machine-readable part of the kind found (a DSN whose only status
  // part is a feedback report, or the reverse, reads nothing).
  const bool status_fits = report.kind == FeedbackKind::Dsn
                               ? parts.status_type.ends_with("delivery-status")
                               : parts.status_type == "message/feedback-report";
  if (parts.status && status_fits && GMIME_IS_PART(parts.status)) {
    bool cut = false;
    const std::string body =
        part_content(GMIME_PART(parts.status), limits.max_report_part_bytes, &cut);
    if (cut)
      parse.problems.add(parts.status_type + " part cut to " +
                         std::to_string(limits.max_report_part_bytes) + " bytes");
    if (report.kind == FeedbackKind::Dsn)
      read_dsn(body, parse, report.dsn);
    else
      read_arf(body, parse, report.arf);
  }
  if (parts.original) {
    report.original = read_original(parts.original, parts.original_type, parse);
    if (report.original) report.reported_message_id = report.original->message_id;
  } else {
    parse.problems.add("no returned original (message/rfc822 or text/rfc822-headers part)");
  }
  report.problems = parse.problems.take();
  return report;
}

}  // namespace ringmail::mail
