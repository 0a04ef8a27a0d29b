// libFuzzer target for the TXT record parsers of policy/sender_auth_records.h
// (DKIM key record, DMARC record, SPF version and all term) and for the
// compliance decision that reads them (policy/compliance_check.h), since
// anyone who controls a zone writes those records.
//
// The input is one TXT record; it is also split at NUL octets into up to
// eight records of one answer, which the compliance check gets for every
// name it reads (key record, SPF, DMARC).
//
// Besides ASan/UBSan findings, the target aborts when a promise is broken:
// a parser returns both a value and an error or neither; a tag-list has an
// empty, duplicate or non-letter-initial name, or a name or value outside
// the input; a parsed DKIM p= holds anything but base64; is_dmarc_record()
// refuses what parse_dmarc_record() accepts; printable_excerpt() or any
// report line holds a byte outside printable ASCII.
//
// Built only with clang and -DRINGMAIL_FUZZ=ON. Seed corpus in
// tests/fuzz/corpus/sender_auth_records/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config_policy.h"
#include "policy/compliance_check.h"
#include "policy/sender_auth_records.h"

namespace {

namespace policy = ringmail::policy;
namespace conf = ringmail::conf;

void check(bool promise, const char* what) {
  if (!promise) {
    std::fprintf(stderr, "broken promise: %s\n", what);
    std::abort();
  }
}

bool printable(std::string_view text) {
  for (char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_tag_list(std::string_view text) {
  policy::TagList list = policy::parse_tag_list(text);
  if (!list.error.empty()) {
    check(list.tags.empty(), "a tag-list with an error has no tags");
    return;
  }
  std::set<std::string_view> names;
  for (const policy::Tag& tag : list.tags) {
    check(!tag.name.empty(), "tag names are not empty");
    char first = tag.name[0];
    check((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'),
          "tag names start with a letter");
    check(names.insert(tag.name).second, "tag names are unique");
    check(inside(tag.name, text) && inside(tag.value, text), "tags point into the input");
  }
}

void check_records(std::string_view text) {
  check_tag_list(text);

  policy::DkimKeyRecordResult key = policy::parse_dkim_key_record(text);
  check(key.record.has_value() == key.error.empty(), "a key record or an error");
  if (key.record) {
    for (char c : key.record->public_key) {
      bool base64 = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
      check(base64, "p= is base64");
    }
    check(key.record->public_key.size() % 4 == 0, "p= is padded base64");
  }

  policy::DmarcRecordResult dmarc = policy::parse_dmarc_record(text);
  check(dmarc.record.has_value() == dmarc.error.empty(), "a DMARC record or an error");
  if (dmarc.record) {
    check(policy::is_dmarc_record(text), "a parsed DMARC record is a DMARC record");
    check(dmarc.record->percent >= 0 && dmarc.record->percent <= 100, "pct is 0..100");
  }

  (void)policy::is_spf_record(text);
  (void)policy::spf_all_term(text);

  std::string excerpt = policy::printable_excerpt(text, 40);
  check(printable(excerpt), "excerpts are printable");
  check(excerpt.size() <= 40 * 4 + 3, "excerpts are bounded");
}

// A sender with one RSA key at s1._domainkey.example.com, whose published
// forms are fixed; every TXT name answers with the input.
void check_report(const std::vector<std::string>& records) {
  conf::Config config;
  conf::DkimKey key;
  key.domain = "example.com";
  key.selector = "s1";
  key.private_key = "s1.pem";
  key.match_subdomains = true;
  config.dkim.push_back(key);
  auto policy_config = std::make_shared<conf::PolicyConfig>();
  conf::ReturnPathConfig return_path;
  return_path.domain = "bounces.example.com";
  policy_config->return_path = return_path;
  config.policy = policy_config;

  policy::DkimKeyFacts facts;
  facts.index = 0;
  facts.key_type = "rsa";
  facts.public_keys = {"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu4Q0xw=="};
  policy::TxtAnswers answers;
  const std::string domain = "news.example.com";
  for (const std::string& name : policy::compliance_txt_names(config, domain))
    answers[name] = policy::TxtAnswer{policy::TxtAnswer::Kind::records, records, ""};
  policy::ComplianceReport report = policy::check_compliance(config, domain, {facts}, answers);
  check(!report.lines.empty(), "a report has lines");
  for (const policy::ComplianceLine& line : report.lines)
    check(printable(line.reason) && printable(line.check), "report lines are printable");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  check_records(input);

  std::vector<std::string> records;
  size_t start = 0;
  while (records.size() < 8) {
    size_t nul = input.find('\0', start);
    records.emplace_back(input.substr(start, nul == std::string_view::npos ? nul : nul - start));
    if (nul == std::string_view::npos) break;
    start = nul + 1;
  }
  for (const std::string& record : records) check_records(record);
  check_report(records);
  return 0;
}
