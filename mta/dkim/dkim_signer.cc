// mta/dkim/dkim_signer.cc — see dkim_signer.h.
#include "mta/dkim/dkim_signer.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iterator>
#include <unordered_map>

namespace ringmail::mta {
namespace {

constexpr size_t kMaxLine = 78;  // RFC 5322 2.1.1 "SHOULD"

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void set(std::string* target, std::string text) {
  if (target != nullptr) *target = std::move(text);
}

// Never prompt on a terminal for the pass phrase of an encrypted key.
int no_passphrase(char*, int, int, void*) { return 0; }

// Builds a header field value folded at token boundaries so that no line
// is longer than kMaxLine.
class FoldedField {
 public:
  explicit FoldedField(std::string_view name) : text_(name), line_(name.size()) {}

  // Appends `token`, preceded by a space, or by a fold when the line would
  // grow too long. `space` false joins without a space when it fits.
  void add(std::string_view token, bool space = true) {
    size_t need = token.size() + (space ? 1 : 0);
    if (line_ + need > kMaxLine && line_ > 1) {
      text_ += "\r\n ";
      line_ = 1;
    } else if (space) {
      text_ += ' ';
      ++line_;
    }
    text_ += token;
    line_ += token.size();
  }

  // Appends base64 text, folding inside it where the line is full (FWS is
  // allowed anywhere in a base64 tag value).
  void add_base64(std::string_view data) {
    while (!data.empty()) {
      if (line_ >= kMaxLine) {
        text_ += "\r\n ";
        line_ = 1;
      }
      size_t take = std::min(data.size(), kMaxLine - line_);
      text_.append(data.substr(0, take));
      line_ += take;
      data.remove_prefix(take);
    }
  }

  const std::string& text() const { return text_; }

 private:
  std::string text_;
  size_t line_;
};

struct EvpMdCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~EvpMdCtx() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::string_view dkim_algorithm_name(DkimAlgorithm algorithm) {
  switch (algorithm) {
    case DkimAlgorithm::rsa_sha256:
      return "rsa-sha256";
    case DkimAlgorithm::ed25519_sha256:
      return "ed25519-sha256";
  }
  return "rsa-sha256";
}

DkimSigner::~DkimSigner() {
  for (EVP_PKEY_CTX* ctx : idle_contexts_) EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(pkey_);
}

std::unique_ptr<DkimSigner> DkimSigner::load(const DkimKeyConfig& key, std::string* error,
                                             std::string* warning) {
  return load(key, DkimSignerOptions{}, error, warning);
}

std::unique_ptr<DkimSigner> DkimSigner::load(const DkimKeyConfig& key,
                                             const DkimSignerOptions& options, std::string* error,
                                             std::string* warning) {
  std::ifstream in(key.private_key, std::ios::binary);
  if (!in) {
    set(error, "cannot read DKIM key " + key.private_key.string());
    return nullptr;
  }
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return from_pem(pem, key, options, error, warning);
}

std::unique_ptr<DkimSigner> DkimSigner::from_pem(std::string_view pem, const DkimKeyConfig& key,
                                                 const DkimSignerOptions& options,
                                                 std::string* error, std::string* warning) {
  const std::string where = key.private_key.empty() ? "the DKIM key" : key.private_key.string();
  if (key.domain.empty() || key.selector.empty()) {
    set(error, "a DKIM key needs a domain and a selector");
    return nullptr;
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* pkey = bio ? PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr) : nullptr;
  BIO_free(bio);
  ERR_clear_error();
  if (pkey == nullptr) {
    set(error, where + " holds no PEM private key (or it is encrypted)");
    return nullptr;
  }
  std::unique_ptr<DkimSigner> signer(new DkimSigner());
  signer->pkey_ = pkey;  // owned from here on
  signer->key_bits_ = EVP_PKEY_get_bits(pkey);
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
      signer->algorithm_ = DkimAlgorithm::rsa_sha256;
      if (signer->key_bits_ < 1024 || signer->key_bits_ > 4096) {
        set(error, "the RSA key in " + where + " has " + std::to_string(signer->key_bits_) +
                       " bits; DKIM needs 1024 to 4096 (use 2048)");
        return nullptr;
      }
      if (signer->key_bits_ < 2048) {
        set(warning, "the RSA key in " + where + " has " + std::to_string(signer->key_bits_) +
                         " bits; 2048 is recommended");
      }
      break;
    case EVP_PKEY_ED25519:
      signer->algorithm_ = DkimAlgorithm::ed25519_sha256;
      break;
    default:
      set(error, where + " is neither an RSA nor an Ed25519 key (DKIM signs with those only)");
      return nullptr;
  }
  signer->domain_ = lower(key.domain);
  signer->selector_ = key.selector;
  for (const std::string& name : key.headers) {
    std::string h = lower(name);
    if (h.empty() || h == "from") continue;
    if (h.find_first_of(": \t\r\n;") != std::string::npos) {
      set(error, "\"" + name + "\" is not a header field name");
      return nullptr;
    }
    if (std::find(signer->headers_.begin(), signer->headers_.end(), h) == signer->headers_.end()) {
      signer->headers_.push_back(std::move(h));
    }
  }
  // RFC 8058 §4: a one-click unsubscribe must be covered by a valid
  // signature, so every signature has both fields in h= when the message
  // has them, whether or not the key's `headers` names them.
  for (const char* h : {"list-unsubscribe", "list-unsubscribe-post"}) {
    if (std::find(signer->headers_.begin(), signer->headers_.end(), h) == signer->headers_.end()) {
      signer->headers_.emplace_back(h);
    }
  }
  signer->options_ = options;
  return signer;
}

bool DkimSigner::matches(std::string_view from_domain) const {
  std::string d = lower(from_domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  if (d == domain_) return true;
  return options_.match_subdomains && d.size() > domain_.size() + 1 &&
         d.compare(d.size() - domain_.size(), domain_.size(), domain_) == 0 &&
         d[d.size() - domain_.size() - 1] == '.';
}

std::vector<std::string> DkimSigner::signed_header_names(
    const std::vector<DkimHeaderField>& fields) const {
  auto count = [&](std::string_view name) {
    size_t n = 0;
    for (const DkimHeaderField& f : fields) {
      if (f.name.size() == name.size() &&
          std::equal(f.name.begin(), f.name.end(), name.begin(), [](char a, char b) {
            return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
          })) {
        ++n;
      }
    }
    return n;
  };
  std::vector<std::string> names(count("from") + 1, "from");
  for (const std::string& h : headers_) {
    for (size_t n = count(h); n > 0; --n) names.push_back(h);
  }
  return names;
}

std::string DkimSigner::sign(std::string_view message, int64_t now_unix) const {
  DkimMessageParts parts = split_message(message);
  DkimBodyHasher hasher = body_hasher();
  hasher.update(parts.body);
  return sign_with_body_hash(parts.header_block, hasher.finish(), now_unix);
}

std::string DkimSigner::sign_with_body_hash(std::string_view header_block,
                                            std::string_view body_hash, int64_t now_unix) const {
  if (body_hash.empty()) return std::string();
  const std::vector<DkimHeaderField> fields = split_header_fields(header_block);
  const std::vector<std::string> names = signed_header_names(fields);

  FoldedField field("DKIM-Signature:");
  field.add("v=1;");
  field.add("a=" + std::string(algorithm_name()) + ";");
  field.add("c=" + std::string(canonicalization_name(options_.header_canonicalization)) + "/" +
            std::string(canonicalization_name(options_.body_canonicalization)) + ";");
  field.add("d=" + domain_ + ";");
  field.add("s=" + selector_ + ";");
  field.add("t=" + std::to_string(now_unix) + ";");
  if (options_.expire_after) {
    field.add("x=" + std::to_string(now_unix + options_.expire_after->count()) + ";");
  }
  for (size_t i = 0; i < names.size(); ++i) {
    std::string token = (i == 0 ? "h=" : "") + names[i] + (i + 1 == names.size() ? ";" : ":");
    field.add(token, /*space=*/i == 0);
  }
  field.add("bh=" + std::string(body_hash) + ";");
  field.add("b=");

  // The data signed: the selected header fields, canonicalized, then this
  // field with an empty b= and without its final CRLF (RFC 6376 3.7).
  std::string data;
  data.reserve(header_block.size() + field.text().size() + 64);
  for (const DkimHeaderField* picked : select_signed_headers(fields, names)) {
    if (picked != nullptr)
      canonicalize_header(options_.header_canonicalization, picked->raw, &data);
  }
  canonicalize_header(options_.header_canonicalization, field.text(), &data);
  data.resize(data.size() - 2);  // canonicalize_header() ended it with CRLF

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &digest_size, dkim_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return std::string();
  }
  std::string b = sign_digest(digest, digest_size);
  if (b.empty()) return std::string();
  field.add_base64(b);
  return field.text() + "\r\n";
}

EVP_PKEY_CTX* DkimSigner::take_rsa_context() const {
  {
    std::lock_guard lock(contexts_mutex_);
    if (!idle_contexts_.empty()) {
      EVP_PKEY_CTX* ctx = idle_contexts_.back();
      idle_contexts_.pop_back();
      return ctx;
    }
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pkey_, nullptr);
  if (ctx == nullptr || EVP_PKEY_sign_init(ctx) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx, dkim_sha256()) != 1) {
    EVP_PKEY_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

void DkimSigner::give_back_rsa_context(EVP_PKEY_CTX* ctx) const {
  std::lock_guard lock(contexts_mutex_);
  idle_contexts_.push_back(ctx);
}

std::string DkimSigner::sign_digest(const unsigned char* digest, size_t size) const {
  std::string result;
  switch (algorithm_) {
    case DkimAlgorithm::rsa_sha256: {
      // RSASSA-PKCS1-v1_5 over the SHA-256 digest (RFC 6376 3.3.1), with an
      // initialized context from the signer's pool: setting one up costs
      // about a seventh of an RSA-2048 signature.
      EVP_PKEY_CTX* ctx = take_rsa_context();
      size_t sig_size = static_cast<size_t>(EVP_PKEY_get_size(pkey_));
      std::string sig(sig_size, '\0');
      if (ctx != nullptr && EVP_PKEY_sign(ctx, reinterpret_cast<unsigned char*>(sig.data()),
                                          &sig_size, digest, size) == 1) {
        result = dkim_base64(reinterpret_cast<const unsigned char*>(sig.data()), sig_size);
      }
      if (ctx != nullptr) give_back_rsa_context(ctx);
      break;
    }
    case DkimAlgorithm::ed25519_sha256: {
      // PureEdDSA over the SHA-256 digest of the data (RFC 8463 3).
      EvpMdCtx md;
      unsigned char sig[64];
      size_t sig_size = sizeof(sig);
      if (md.ctx != nullptr && EVP_DigestSignInit(md.ctx, nullptr, nullptr, nullptr, pkey_) == 1 &&
          EVP_DigestSign(md.ctx, sig, &sig_size, digest, size) == 1) {
        result = dkim_base64(sig, sig_size);
      }
      break;
    }
  }
  ERR_clear_error();
  return result;
}

std::string DkimSigner::public_key_record() const {
  std::string record = "v=DKIM1; k=";
  switch (algorithm_) {
    case DkimAlgorithm::rsa_sha256: {
      unsigned char* der = nullptr;
      int n = i2d_PUBKEY(pkey_, &der);
      record += "rsa; p=";
      if (n > 0) record += dkim_base64(der, static_cast<size_t>(n));
      OPENSSL_free(der);
      break;
    }
    case DkimAlgorithm::ed25519_sha256: {
      unsigned char raw[32];
      size_t n = sizeof(raw);
      record += "ed25519; p=";
      if (EVP_PKEY_get_raw_public_key(pkey_, raw, &n) == 1) record += dkim_base64(raw, n);
      break;
    }
  }
  ERR_clear_error();
  return record;
}

// --- DkimSignerSet ----------------------------------------------------------

std::unique_ptr<DkimSignerSet> DkimSignerSet::load(const std::vector<DkimKeyConfig>& keys,
                                                   std::vector<std::string>* errors,
                                                   std::vector<std::string>* warnings) {
  auto set_of_keys = std::make_unique<DkimSignerSet>();
  bool ok = true;
  for (const DkimKeyConfig& key : keys) {
    std::string error;
    std::string warning;
    DkimSignerOptions options;
    options.header_canonicalization = key.simple_header_canonicalization
                                          ? DkimCanonicalization::simple
                                          : DkimCanonicalization::relaxed;
    options.body_canonicalization = key.simple_body_canonicalization
                                        ? DkimCanonicalization::simple
                                        : DkimCanonicalization::relaxed;
    if (key.expire_after)
      options.expire_after = std::chrono::duration_cast<std::chrono::seconds>(*key.expire_after);
    options.match_subdomains = key.match_subdomains;
    std::unique_ptr<DkimSigner> signer = DkimSigner::load(key, options, &error, &warning);
    const std::string label = "dkim " + key.domain + "/" + key.selector + ": ";
    if (!warning.empty() && warnings != nullptr) warnings->push_back(label + warning);
    if (!signer) {
      ok = false;
      if (errors != nullptr) errors->push_back(label + error);
      continue;
    }
    set_of_keys->add(std::move(signer));
  }
  if (!ok) return nullptr;
  return set_of_keys;
}

void DkimSignerSet::add(std::unique_ptr<DkimSigner> signer) {
  if (signer) signers_.push_back(std::move(signer));
}

std::vector<const DkimSigner*> DkimSignerSet::select(std::string_view from_domain) const {
  std::vector<const DkimSigner*> picked;
  if (from_domain.empty()) return picked;
  for (const auto& signer : signers_) {
    if (signer->matches(from_domain)) picked.push_back(signer.get());
  }
  return picked;
}

std::vector<DkimSignerSet::Signature> DkimSignerSet::sign(std::string_view message,
                                                          int64_t now_unix,
                                                          const DkimBodyHashes* streamed) const {
  std::vector<Signature> signatures;
  if (signers_.empty()) return signatures;
  DkimMessageParts parts = split_message(message);
  std::optional<std::string> from_domain = from_header_domain(parts.header_block);
  if (!from_domain) return signatures;
  std::vector<const DkimSigner*> picked = select(*from_domain);
  std::optional<std::string> body_hash[2];  // by DkimCanonicalization
  for (const DkimSigner* signer : picked) {
    DkimCanonicalization c = signer->options().body_canonicalization;
    std::optional<std::string>& bh = body_hash[c == DkimCanonicalization::simple ? 0 : 1];
    if (!bh && streamed) {
      const std::string& given =
          c == DkimCanonicalization::simple ? streamed->simple : streamed->relaxed;
      if (!given.empty()) bh = given;
    }
    if (!bh) {
      DkimBodyHasher hasher = signer->body_hasher();
      hasher.update(parts.body);
      bh = hasher.finish();
    }
    std::string field = signer->sign_with_body_hash(parts.header_block, *bh, now_unix);
    if (!field.empty()) signatures.push_back({std::move(field), signer});
  }
  return signatures;
}

}  // namespace ringmail::mta
