#include "mta/compliance_command.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mta/dkim/dkim_signer.h"
#include "mta/dns/dns_resolver.h"
#include "mta/smtp/dkim_canonical.h"
#include "mta/smtp/smtp_command.h"
#include "policy/compliance_check.h"
#include "policy/sender_auth_records.h"

namespace ringmail::mta {

namespace {

constexpr int kExitPassed = 0;
constexpr int kExitMissing = 1;
constexpr int kExitUsage = 2;

// The PKCS#1 RSAPublicKey of an RSA SubjectPublicKeyInfo (both base64):
// RFC 6376 3.6.1 names RSAPublicKey, most tools publish the
// SubjectPublicKeyInfo, and verifiers take either. "" on failure.
std::string rsa_public_key_of(const std::string& spki_base64) {
  std::string der;
  if (!decode_base64(spki_base64, &der)) return "";
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  EVP_PKEY* pkey = d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size()));
  if (pkey == nullptr) return "";
  unsigned char* pkcs1 = nullptr;
  int n = i2d_PublicKey(pkey, &pkcs1);
  std::string out = n > 0 ? dkim_base64(pkcs1, static_cast<size_t>(n)) : std::string();
  OPENSSL_free(pkcs1);
  EVP_PKEY_free(pkey);
  return out;
}

policy::DkimKeyFacts dkim_facts(const conf::Config& config, size_t index) {
  policy::DkimKeyFacts facts;
  facts.index = index;
  std::string error;
  std::unique_ptr<DkimSigner> signer =
      DkimSigner::load(config.dkim[index], &error, &facts.load_warning);
  if (!signer) {
    facts.load_error = error.empty() ? "cannot be loaded" : error;
    return facts;
  }
  // The signer's own record, read back: k= and the p= to publish.
  policy::DkimKeyRecordResult own = policy::parse_dkim_key_record(signer->public_key_record());
  if (!own.record || own.record->public_key.empty()) {
    facts.load_error = "its public key cannot be derived";
    return facts;
  }
  facts.key_type = own.record->key_type;
  facts.public_keys.push_back(own.record->public_key);
  if (signer->algorithm() == DkimAlgorithm::rsa_sha256) {
    std::string pkcs1 = rsa_public_key_of(own.record->public_key);
    if (!pkcs1.empty()) facts.public_keys.push_back(std::move(pkcs1));
  }
  return facts;
}

policy::TxtAnswer answer_of(const TxtResolution& resolution) {
  policy::TxtAnswer answer;
  answer.records = resolution.records;
  answer.error = resolution.error;
  switch (resolution.status) {
    case TxtResolution::Status::ok:
      answer.kind = policy::TxtAnswer::Kind::records;
      break;
    case TxtResolution::Status::no_records:
      answer.kind = policy::TxtAnswer::Kind::no_records;
      break;
    case TxtResolution::Status::no_domain:
      answer.kind = policy::TxtAnswer::Kind::no_domain;
      break;
    case TxtResolution::Status::temporary:
      answer.kind = policy::TxtAnswer::Kind::failed;
      break;
  }
  return answer;
}

// Every name at once; each answer arrives within the resolver's timeout
// and tries, or as a temporary failure when it stops.
bool look_up(const conf::Config& config, const std::vector<std::string>& names,
             policy::TxtAnswers* answers, std::string* error) {
  DnsResolverOptions options;
  options.nameservers = config.delivery.dns.nameservers;
  std::unique_ptr<DnsResolver> resolver = DnsResolver::create(options, error);
  if (!resolver) return false;
  std::vector<std::future<TxtResolution>> pending;
  for (const std::string& name : names) {
    auto promise = std::make_shared<std::promise<TxtResolution>>();
    pending.push_back(promise->get_future());
    resolver->resolve_txt(name, [promise](const TxtResolution& r) { promise->set_value(r); });
  }
  for (size_t i = 0; i < names.size(); ++i) {
    // Bounded by the resolver (query_timeout x tries); stop() below
    // answers anything still outstanding.
    if (pending[i].wait_for(options.query_timeout * (options.tries + 1)) !=
        std::future_status::ready)
      resolver->stop();
    (*answers)[names[i]] = answer_of(pending[i].get());
  }
  resolver->stop();
  return true;
}

}  // namespace

int run_compliance_check(const conf::Config& config, std::string_view argument, std::FILE* out,
                         std::FILE* err) {
  std::optional<std::string> domain = policy::compliance_domain(argument);
  if (!domain) {
    std::fprintf(err, "ringmaild: --check-compliance: \"%s\" is not a domain name\n",
                 policy::printable_excerpt(argument).c_str());
    return kExitUsage;
  }
  std::vector<policy::DkimKeyFacts> keys;
  for (size_t i = 0; i < config.dkim.size(); ++i)
    if (policy::dkim_key_signs_for(config.dkim[i], *domain)) keys.push_back(dkim_facts(config, i));

  policy::TxtAnswers answers;
  std::string error;
  if (!look_up(config, policy::compliance_txt_names(config, *domain), &answers, &error)) {
    std::fprintf(err, "ringmaild: DNS resolver: %s\n", error.c_str());
    return kExitUsage;
  }
  policy::ComplianceReport report = policy::check_compliance(config, *domain, keys, answers);
  for (const policy::ComplianceLine& line : report.lines) {
    std::fprintf(out, "%-12s %-8s %s\n", line.check.c_str(),
                 std::string(policy::compliance_status_name(line.status)).c_str(),
                 line.reason.c_str());
  }
  std::fflush(out);
  return report.passed() ? kExitPassed : kExitMissing;
}

}  // namespace ringmail::mta
