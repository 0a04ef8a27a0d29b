// mta/dkim/dkim_signer.h — DKIM signatures (RFC 6376) with rsa-sha256 and
// ed25519-sha256 (RFC 8463).
//
// Owns: DkimSigner, one configured key (a `dkim:` entry) parsed once from
// its PEM file at load or reload, and DkimSignerSet, every key of a Config
// with the rule that picks the keys for a message. Signing is pure code:
// bytes in, one `DKIM-Signature:` header field out, no sockets, no files
// after load, no clock (the caller passes the time).
//
// What a signature covers: h= is the configured header list with From
// always first and over-signed (listed once more than the message has From
// fields, so a From cannot be added later without breaking it); every other
// configured name is listed once per instance present in the message, so
// all instances are signed, bottom-most first (RFC 6376 5.4.2), and absent
// ones are left out; List-Unsubscribe and List-Unsubscribe-Post are always
// among the configured names (RFC 8058 §4). t= is the signing time, x= (optional) t= plus
// DkimSignerOptions::expire_after. bh= is computed by DkimBodyHasher, which
// the session may feed while the body streams in (body_hasher() +
// sign_with_body_hash()) instead of handing over the whole message (sign()).
//
// Usage, once per message, after milters and before the spool commit:
//   for (auto& s : signers->sign(message, now_unix))       // DkimSignerSet
//     prefix += s.header_field;   // and count dkim_signatures_total
//                                 // {domain=s.signer->domain(),
//                                 //  algorithm=s.signer->algorithm_name()}
//
// Threads: a loaded DkimSigner/DkimSignerSet is immutable; any number of
// shard threads may call the const members concurrently (each call uses
// its own OpenSSL contexts; the EVP_PKEY is only read). load() reads a file
// and belongs on the config (re)load path, not on a shard.
//
// SECURITY: the message is untrusted, the key file is operator input.
// load() refuses anything but an unencrypted PEM RSA (1024..4096 bits) or
// Ed25519 private key and never prompts for a pass phrase. The private key
// never leaves the EVP_PKEY. Errors are values: sign() returns an empty
// string only if OpenSSL itself fails (e.g. out of memory).
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "mta/smtp/dkim_canonical.h"

namespace ringmail::mta {

using DkimKeyConfig = conf::DkimKey;

enum class DkimAlgorithm { rsa_sha256, ed25519_sha256 };

// "rsa-sha256" or "ed25519-sha256": the a= value and the metric label.
std::string_view dkim_algorithm_name(DkimAlgorithm algorithm);

struct DkimSignerOptions {
  DkimCanonicalization header_canonicalization = DkimCanonicalization::relaxed;
  DkimCanonicalization body_canonicalization = DkimCanonicalization::relaxed;
  std::optional<std::chrono::seconds> expire_after;  // adds x= = t= + this
  bool match_subdomains = false;                     // also sign for any subdomain of domain
};

class DkimSigner {
 public:
  // Reads and parses key.private_key. On failure returns null and sets
  // *error; a usable but weak key (RSA < 2048 bits) sets *warning.
  // error/warning may be null.
  static std::unique_ptr<DkimSigner> load(const DkimKeyConfig& key, std::string* error,
                                          std::string* warning);
  static std::unique_ptr<DkimSigner> load(const DkimKeyConfig& key,
                                          const DkimSignerOptions& options, std::string* error,
                                          std::string* warning);
  // The same from PEM text already in memory (key.private_key is only used
  // in messages).
  static std::unique_ptr<DkimSigner> from_pem(std::string_view pem, const DkimKeyConfig& key,
                                              const DkimSignerOptions& options, std::string* error,
                                              std::string* warning);
  ~DkimSigner();
  DkimSigner(const DkimSigner&) = delete;
  DkimSigner& operator=(const DkimSigner&) = delete;

  // `message`: a whole RFC 5322 message with CRLF line endings. Returns the
  // complete "DKIM-Signature: ...\r\n" field (lines of at most 78
  // characters, b= last) to prepend to the message.
  std::string sign(std::string_view message, int64_t now_unix) const;

  // Streaming form: feed the body to body_hasher() as it arrives, then
  // sign the header block (every field up to, not including, the empty
  // line) with the hasher's finish() value.
  DkimBodyHasher body_hasher() const { return DkimBodyHasher(options_.body_canonicalization); }
  std::string sign_with_body_hash(std::string_view header_block, std::string_view body_hash,
                                  int64_t now_unix) const;

  // The h= list this signer uses for a message with these header fields.
  std::vector<std::string> signed_header_names(const std::vector<DkimHeaderField>& fields) const;

  // True when from_domain (lower-case) is domain(), or a subdomain of it
  // and the options allow subdomains.
  bool matches(std::string_view from_domain) const;

  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }
  DkimAlgorithm algorithm() const { return algorithm_; }
  std::string_view algorithm_name() const { return dkim_algorithm_name(algorithm_); }
  int key_bits() const { return key_bits_; }
  const DkimSignerOptions& options() const { return options_; }

  // The TXT record value to publish at <selector>._domainkey.<domain>:
  // "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" or
  // "v=DKIM1; k=ed25519; p=<base64 raw 32-byte key>".
  std::string public_key_record() const;

 private:
  DkimSigner() = default;
  // Signs the SHA-256 digest of the canonical header data; base64 result,
  // empty on an OpenSSL failure.
  std::string sign_digest(const unsigned char* digest, size_t size) const;

  // An RSA signing context set up for this key (padding, digest), from the
  // pool or new; give it back after one signature. Any thread.
  EVP_PKEY_CTX* take_rsa_context() const;
  void give_back_rsa_context(EVP_PKEY_CTX* ctx) const;

  EVP_PKEY* pkey_ = nullptr;
  // Initialized contexts not in use (at most one per thread that signs at
  // once), freed with the signer.
  mutable std::mutex contexts_mutex_;
  mutable std::vector<EVP_PKEY_CTX*> idle_contexts_;
  DkimAlgorithm algorithm_ = DkimAlgorithm::rsa_sha256;
  int key_bits_ = 0;
  std::string domain_;
  std::string selector_;
  std::vector<std::string> headers_;  // lower-case, unique, without "from"
  DkimSignerOptions options_;
};

// bh= values of one message's body, computed as it streamed in; "" = absent.
struct DkimBodyHashes {
  std::string relaxed;
  std::string simple;
};

// Every configured key, and the choice of keys for a message.
class DkimSignerSet {
 public:
  // Loads every entry with the options its config names (canonicalization,
  // expire_after, subdomains). On any error returns null and
  // appends "dkim <domain>/<selector>: problem" lines to *errors; weak keys
  // append to *warnings. errors/warnings may be null.
  static std::unique_ptr<DkimSignerSet> load(const std::vector<DkimKeyConfig>& keys,
                                             std::vector<std::string>* errors,
                                             std::vector<std::string>* warnings);

  void add(std::unique_ptr<DkimSigner> signer);

  // Every signer for an author domain, in configuration order: same domain
  // (case-insensitive), or a parent domain on entries with subdomain
  // matching. Empty when none applies.
  std::vector<const DkimSigner*> select(std::string_view from_domain) const;

  struct Signature {
    std::string header_field;  // "DKIM-Signature: ...\r\n"
    const DkimSigner* signer = nullptr;
  };
  // Signs `message` with every signer select() picks for its From domain,
  // hashing the body once per body canonicalization. Empty when the
  // message has no From domain or no key matches it. Prepend every
  // header_field to the message (order does not matter).
  // `streamed` carries bh= values computed while the body arrived (see
  // SmtpDataReader); a non-empty one is used instead of hashing again.
  std::vector<Signature> sign(std::string_view message, int64_t now_unix,
                              const DkimBodyHashes* streamed = nullptr) const;

  size_t size() const { return signers_.size(); }
  bool empty() const { return signers_.empty(); }
  // True when some key signs with this body canonicalization (so the
  // session should hash bodies that way as they stream in).
  bool uses_body_canonicalization(DkimCanonicalization c) const {
    for (const auto& s : signers_)
      if (s->options().body_canonicalization == c) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<DkimSigner>> signers_;
};

}  // namespace ringmail::mta
