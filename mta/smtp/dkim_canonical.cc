// mta/smtp/dkim_canonical.cc — see dkim_canonical.h.
#include "mta/smtp/dkim_canonical.h"

#include <openssl/evp.h>

#include <utility>

namespace ringmail::mta {
namespace {

constexpr std::string_view kCrlf = "\r\n";

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

std::string_view trim_wsp_right(std::string_view s) {
  while (!s.empty() && is_wsp(s.back())) s.remove_suffix(1);
  return s;
}

// The first mailbox's addr-spec text with comments removed and quoted
// strings replaced by a placeholder (so that an '@' or '<' inside quotes
// does not count). Returns the angle-addr content when there is one.
std::string first_address(std::string_view value) {
  std::string plain;  // outside angle brackets
  std::string angle;  // inside the first <...>
  bool in_angle = false;
  bool angle_done = false;
  bool in_quote = false;
  int comment_depth = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\r' || c == '\n') continue;  // folding
    std::string& target = in_angle ? angle : plain;
    if (in_quote) {
      if (c == '\\') {
        ++i;  // quoted-pair: skip the escaped byte
      } else if (c == '"') {
        in_quote = false;
      }
      continue;
    }
    if (comment_depth > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++comment_depth;
      } else if (c == ')') {
        --comment_depth;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        target += 'q';  // a quoted local part is still a local part
        break;
      case '(':
        comment_depth = 1;
        target += ' ';
        break;
      case '<':
        if (!angle_done) {
          in_angle = true;
          angle.clear();
        }
        break;
      case '>':
        if (in_angle) {
          in_angle = false;
          angle_done = true;
        }
        break;
      case ':':
        // "display-name: mailbox-list;" (group) outside brackets, or an
        // obsolete source route "<@a,@b:user@host>" inside them.
        target.clear();
        break;
      case ',':
        // Ends the first mailbox, unless it is an unquoted comma in a
        // display name ("Doe, John <j@example.com>", common if invalid).
        if (in_angle) break;  // part of an obsolete route
        if (angle_done) return angle;
        if (plain.find('@') != std::string::npos) return plain;
        break;
      case ';':
        if (!in_angle) return angle_done ? angle : plain;
        break;
      default:
        target += c;
    }
  }
  return angle_done || in_angle ? angle : plain;
}

}  // namespace

std::string_view canonicalization_name(DkimCanonicalization c) {
  switch (c) {
    case DkimCanonicalization::simple:
      return "simple";
    case DkimCanonicalization::relaxed:
      return "relaxed";
  }
  return "relaxed";
}

DkimMessageParts split_message(std::string_view message) {
  if (message.substr(0, 2) == kCrlf) return {std::string_view(), message.substr(2)};
  size_t end = message.find("\r\n\r\n");
  if (end == std::string_view::npos) return {message, std::string_view()};
  return {message.substr(0, end + 2), message.substr(end + 4)};
}

std::vector<DkimHeaderField> split_header_fields(std::string_view header_block) {
  std::vector<DkimHeaderField> fields;
  size_t field_start = 0;
  size_t pos = 0;
  bool open = false;
  auto close_field = [&](size_t end) {
    if (!open) return;
    std::string_view raw = header_block.substr(field_start, end - field_start);
    size_t colon = raw.find(':');
    std::string_view name =
        colon == std::string_view::npos ? std::string_view() : raw.substr(0, colon);
    fields.push_back({trim_wsp_right(name), raw});
    open = false;
  };
  while (pos < header_block.size()) {
    size_t eol = header_block.find(kCrlf, pos);
    size_t next = eol == std::string_view::npos ? header_block.size() : eol + 2;
    if (!(open && is_wsp(header_block[pos]))) {
      close_field(pos);
      field_start = pos;
      open = true;
    }
    pos = next;
  }
  close_field(header_block.size());
  return fields;
}

void canonicalize_header(DkimCanonicalization c, std::string_view raw, std::string* out) {
  switch (c) {
    case DkimCanonicalization::simple:
      out->append(raw);
      if (raw.size() < 2 || raw.substr(raw.size() - 2) != kCrlf) out->append(kCrlf);
      return;
    case DkimCanonicalization::relaxed:
      break;
  }
  size_t colon = raw.find(':');
  std::string_view name = colon == std::string_view::npos ? raw : raw.substr(0, colon);
  for (char ch : trim_wsp_right(name)) {
    if (ch != '\r' && ch != '\n') out->push_back(ascii_lower(ch));
  }
  out->push_back(':');
  if (colon != std::string_view::npos) {
    bool pending_space = false;
    bool value_started = false;
    for (size_t i = colon + 1; i < raw.size(); ++i) {
      char ch = raw[i];
      if (ch == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') {
        ++i;  // unfold: a CRLF followed by WSP is just the WSP
        continue;
      }
      if (is_wsp(ch)) {
        pending_space = value_started;
        continue;
      }
      if (pending_space) out->push_back(' ');
      pending_space = false;
      value_started = true;
      out->push_back(ch);
    }
  }
  out->append(kCrlf);
}

std::vector<const DkimHeaderField*> select_signed_headers(
    const std::vector<DkimHeaderField>& fields, const std::vector<std::string>& signed_names) {
  std::vector<const DkimHeaderField*> picked;
  picked.reserve(signed_names.size());
  std::vector<bool> used(fields.size(), false);
  for (const std::string& name : signed_names) {
    const DkimHeaderField* found = nullptr;
    for (size_t i = fields.size(); i-- > 0;) {
      if (!used[i] && iequals(fields[i].name, name)) {
        used[i] = true;
        found = &fields[i];
        break;
      }
    }
    picked.push_back(found);
  }
  return picked;
}

std::optional<std::string> from_header_domain(std::string_view header_block) {
  for (const DkimHeaderField& field : split_header_fields(header_block)) {
    if (!iequals(field.name, "from")) continue;
    std::string_view value = field.raw.substr(field.raw.find(':') + 1);
    std::string address = first_address(value);
    size_t at = address.rfind('@');
    if (at == std::string::npos) return std::nullopt;
    std::string domain;
    for (char ch : std::string_view(address).substr(at + 1)) {
      if (!is_wsp(ch)) domain.push_back(ascii_lower(ch));
    }
    if (domain.empty()) return std::nullopt;
    return domain;
  }
  return std::nullopt;
}

// --- DkimBodyHasher ---------------------------------------------------------

DkimBodyHasher::DkimBodyHasher(DkimCanonicalization c) : canon_(c) {
  md_ = EVP_MD_CTX_new();
  reset();
}

DkimBodyHasher::~DkimBodyHasher() { EVP_MD_CTX_free(md_); }

DkimBodyHasher::DkimBodyHasher(DkimBodyHasher&& other) noexcept
    : canon_(other.canon_),
      md_(std::exchange(other.md_, nullptr)),
      copy_(other.copy_),
      out_(std::move(other.out_)),
      empty_lines_(other.empty_lines_),
      pending_cr_(other.pending_cr_),
      pending_space_(other.pending_space_),
      line_has_content_(other.line_has_content_),
      body_has_content_(other.body_has_content_) {}

DkimBodyHasher& DkimBodyHasher::operator=(DkimBodyHasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(md_);
    canon_ = other.canon_;
    md_ = std::exchange(other.md_, nullptr);
    copy_ = other.copy_;
    out_ = std::move(other.out_);
    empty_lines_ = other.empty_lines_;
    pending_cr_ = other.pending_cr_;
    pending_space_ = other.pending_space_;
    line_has_content_ = other.line_has_content_;
    body_has_content_ = other.body_has_content_;
  }
  return *this;
}

void DkimBodyHasher::reset() {
  if (md_ != nullptr) EVP_DigestInit_ex(md_, dkim_sha256(), nullptr);
  out_.clear();
  empty_lines_ = 0;
  pending_cr_ = false;
  pending_space_ = false;
  line_has_content_ = false;
  body_has_content_ = false;
}

void DkimBodyHasher::flush() {
  if (out_.empty()) return;
  if (md_ != nullptr) EVP_DigestUpdate(md_, out_.data(), out_.size());
  if (copy_ != nullptr) copy_->append(out_);
  out_.clear();
}

void DkimBodyHasher::emit(std::string_view bytes) {
  out_.append(bytes);
  if (out_.size() >= 16 * 1024) flush();
}

void DkimBodyHasher::content_run(const char* bytes, size_t size) {
  // Empty lines count only when content follows them; a body's trailing
  // empty lines are ignored by both canonicalizations.
  for (; empty_lines_ > 0; --empty_lines_) out_.append(kCrlf);
  if (pending_space_) out_.push_back(' ');
  pending_space_ = false;
  out_.append(bytes, size);
  line_has_content_ = true;
  body_has_content_ = true;
  if (out_.size() >= 16 * 1024) flush();
}

void DkimBodyHasher::end_of_line() {
  pending_space_ = false;  // relaxed: whitespace at the end of a line goes
  if (line_has_content_) {
    emit(kCrlf);
    line_has_content_ = false;
  } else {
    ++empty_lines_;
  }
}

void DkimBodyHasher::update(std::string_view chunk) {
  const bool relaxed = canon_ == DkimCanonicalization::relaxed;
  const char* p = chunk.data();
  const char* const end = p + chunk.size();
  while (p < end) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (*p == '\n') {
        end_of_line();
        ++p;
        continue;
      }
      content_run("\r", 1);  // a bare CR is data
    }
    // The common case: a run of ordinary bytes, copied in one go.
    const char* run = p;
    while (p < end && *p != '\r' && !(relaxed && is_wsp(*p))) ++p;
    if (p > run) content_run(run, static_cast<size_t>(p - run));
    if (p == end) break;
    if (*p == '\r') {
      pending_cr_ = true;
    } else {
      pending_space_ = true;  // relaxed: SP/HTAB
    }
    ++p;
  }
}

std::string DkimBodyHasher::finish() {
  if (pending_cr_) {
    pending_cr_ = false;
    content_run("\r", 1);
  }
  pending_space_ = false;
  // A last line without CRLF gets one (both algorithms); an empty body is
  // one CRLF under simple and nothing under relaxed.
  if (line_has_content_) {
    emit(kCrlf);
  } else if (!body_has_content_ && canon_ == DkimCanonicalization::simple) {
    emit(kCrlf);
  }
  flush();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  std::string result;
  if (md_ != nullptr && EVP_DigestFinal_ex(md_, digest, &size) == 1) {
    result = dkim_base64(digest, size);
  }
  reset();
  return result;
}

std::string canonicalize_body(DkimCanonicalization c, std::string_view body) {
  std::string canonical;
  DkimBodyHasher hasher(c);
  hasher.set_canonical_copy(&canonical);
  hasher.update(body);
  hasher.finish();
  return canonical;
}

// Fetched once: EVP_sha256() makes every EVP_DigestInit_ex() look the
// algorithm up again in OpenSSL 3.
const EVP_MD* dkim_sha256() {
  static const EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

std::string dkim_base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

}  // namespace ringmail::mta
