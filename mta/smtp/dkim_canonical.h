// mta/smtp/dkim_canonical.h — DKIM canonicalization (RFC 6376 section 3.4) and
// the header-block helpers a signer needs.
//
// Owns: the "simple" and "relaxed" header and body canonicalization
// algorithms; DkimBodyHasher, which computes the bh= value (SHA-256 of the
// canonicalized body) from a body fed in chunks of any size, so that a
// session can hash the body while it streams in instead of re-reading it;
// splitting a header block into fields; choosing which header instances a
// signature covers (bottom-most first, RFC 6376 5.4.2); and finding the
// author domain in the From header.
//
// Input convention: messages use CRLF line endings, as they are after SMTP
// DATA/BDAT (dot-unstuffed). A bare CR or LF is kept as an ordinary byte,
// which is what RFC 6376 canonicalization does with it as well.
//
// Threads: everything here is a pure function or an object owned by one
// caller; any thread may use it. No sockets, no files, no durability.
//
// SECURITY: message bytes are untrusted. Nothing here allocates more than a
// small constant times the input it is given, and malformed header blocks
// (no colon, no final empty line, NUL bytes) are handled as ordinary data.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ringmail::mta {

enum class DkimCanonicalization { simple, relaxed };

// "simple" or "relaxed".
std::string_view canonicalization_name(DkimCanonicalization c);

// One header field as it appears in a header block: `raw` is the whole
// field including its continuation lines and the final CRLF (when there is
// one); `name` is the text before the colon (empty when there is no colon).
struct DkimHeaderField {
  std::string_view name;
  std::string_view raw;
};

// Splits a message into its header block (every header field, each ending
// in CRLF, without the empty separator line) and its body (after the empty
// line). A message without an empty line is all header block, empty body.
struct DkimMessageParts {
  std::string_view header_block;
  std::string_view body;
};
DkimMessageParts split_message(std::string_view message);

// Splits a header block into fields, top to bottom. A line that starts with
// SP or HTAB continues the previous field.
std::vector<DkimHeaderField> split_header_fields(std::string_view header_block);

// Canonicalizes one header field (raw form, as in DkimHeaderField::raw) and
// appends it to `out`, ending in CRLF. simple: unchanged (a CRLF is added
// if the field had none). relaxed: name lower-cased, continuation lines
// unfolded, runs of SP/HTAB made one SP, whitespace around the colon and at
// the end removed.
void canonicalize_header(DkimCanonicalization c, std::string_view raw_field, std::string* out);

// For each name in `signed_names` (case-insensitive), in order, picks the
// bottom-most instance of that header not yet picked, per RFC 6376 5.4.2.
// A name with no instance left contributes nothing (nullptr in the result),
// which is what makes over-signing work. Result has one entry per name.
std::vector<const DkimHeaderField*> select_signed_headers(
    const std::vector<DkimHeaderField>& fields, const std::vector<std::string>& signed_names);

// The domain of the (first) author address in the first From header field,
// lower-cased (ASCII letters only; UTF-8 domains are returned as written).
// Handles folding, display names (also quoted ones containing '@' or '<'),
// angle brackets and comments. nullopt when there is no From field or no
// address with a domain in it.
std::optional<std::string> from_header_domain(std::string_view header_block);

// Canonicalizes a body fed in chunks and hashes it with SHA-256. Chunk
// boundaries never change the result. Move-only; one owner at a time.
class DkimBodyHasher {
 public:
  explicit DkimBodyHasher(DkimCanonicalization c);
  ~DkimBodyHasher();
  DkimBodyHasher(DkimBodyHasher&&) noexcept;
  DkimBodyHasher& operator=(DkimBodyHasher&&) noexcept;
  DkimBodyHasher(const DkimBodyHasher&) = delete;
  DkimBodyHasher& operator=(const DkimBodyHasher&) = delete;

  void update(std::string_view chunk);
  // The base64 SHA-256 of the canonical body: the bh= value. After
  // finish() the hasher is spent; update()/finish() again start over.
  std::string finish();

  // The canonical body instead of its hash (for tests and debugging):
  // when set, every canonical byte is also appended to *copy.
  void set_canonical_copy(std::string* copy) { copy_ = copy; }

  DkimCanonicalization canonicalization() const { return canon_; }

 private:
  void emit(std::string_view bytes);
  void content_run(const char* bytes, size_t size);
  void end_of_line();
  void flush();
  void reset();

  DkimCanonicalization canon_;
  EVP_MD_CTX* md_ = nullptr;
  std::string* copy_ = nullptr;
  std::string out_;             // canonical bytes not yet hashed
  uint64_t empty_lines_ = 0;    // CRLFs held back: maybe trailing empty lines
  bool pending_cr_ = false;     // a CR seen, LF not yet
  bool pending_space_ = false;  // relaxed: SP/HTAB run seen in this line
  bool line_has_content_ = false;
  bool body_has_content_ = false;
};

// Canonicalized body in one piece (convenience for tests).
std::string canonicalize_body(DkimCanonicalization c, std::string_view body);

// Base64 without line breaks.
std::string dkim_base64(const unsigned char* data, size_t size);

// SHA-256, fetched from the default provider once per process.
const EVP_MD* dkim_sha256();

}  // namespace ringmail::mta
