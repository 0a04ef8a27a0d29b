#include "policy/compliance_check.h"

#include <algorithm>

#include "conf/config_policy.h"
#include "conf/config_reader.h"
#include "policy/sender_auth_records.h"

namespace ringmail::policy {

namespace {

using enum ComplianceStatus;

constexpr size_t kQuoteLength = 120;

std::string dkim_name(const conf::DkimKey& key) {
  return key.selector + "._domainkey." + key.domain;
}

std::string lower(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

// _dmarc.DOMAIN, then _dmarc. of every parent down to two labels.
std::vector<std::string> dmarc_names(std::string_view domain) {
  std::vector<std::string> names;
  while (true) {
    names.push_back("_dmarc." + std::string(domain));
    size_t dot = domain.find('.');
    if (dot == std::string_view::npos || domain.find('.', dot + 1) == std::string_view::npos) break;
    domain.remove_prefix(dot + 1);
  }
  return names;
}

const TxtAnswer& answer_for(const TxtAnswers& txt, const std::string& name) {
  static const TxtAnswer kNotAsked{TxtAnswer::Kind::failed, {}, "not looked up"};
  auto it = txt.find(name);
  return it == txt.end() ? kNotAsked : it->second;
}

// "lookup of NAME failed: ERROR" for a failed answer, "" otherwise.
std::string lookup_failure(const std::string& name, const TxtAnswer& answer) {
  if (answer.kind != TxtAnswer::Kind::failed) return "";
  return "TXT lookup of " + name + " failed (" + printable_excerpt(answer.error, kQuoteLength) +
         "): cannot tell";
}

std::string quoted(std::string_view record) {
  return "\"" + printable_excerpt(record, kQuoteLength) + "\"";
}

// Why `record` does not publish `facts`' key, or "" when it does.
std::string dkim_record_problem(const DkimKeyFacts& facts, std::string_view record) {
  DkimKeyRecordResult parsed = parse_dkim_key_record(record);
  if (!parsed.record) return "not a DKIM key record (" + parsed.error + ")";
  const DkimKeyRecord& key = *parsed.record;
  if (key.public_key.empty()) return "the key is revoked (empty p=)";
  if (key.key_type != facts.key_type) {
    return "k=" + printable_excerpt(key.key_type, 24) + " but the private key is " + facts.key_type;
  }
  if (!dkim_key_record_allows_email_sha256(key)) return "h= or s= rule out sha256 email signatures";
  if (std::find(facts.public_keys.begin(), facts.public_keys.end(), key.public_key) ==
      facts.public_keys.end()) {
    return "p= is not the public key of the configured private key";
  }
  return "";
}

void check_dkim_key(const conf::Config& config, const DkimKeyFacts& facts, const TxtAnswers& txt,
                    ComplianceReport& report) {
  const conf::DkimKey& key = config.dkim[facts.index];
  const std::string name = lower(dkim_name(key));
  const std::string entry =
      "dkim[" + std::to_string(facts.index) + "] (" + key.domain + ", " + key.selector + ")";
  auto add = [&](ComplianceStatus status, std::string reason) {
    report.lines.push_back({"dkim", status, entry + ": " + std::move(reason)});
  };
  if (!facts.load_error.empty()) {
    add(missing, "private key " + key.private_key.string() +
                     " does not load: " + printable_excerpt(facts.load_error, kQuoteLength));
    return;
  }
  const std::string publish =
      facts.public_keys.empty()
          ? std::string()
          : "; publish \"v=DKIM1; k=" + facts.key_type + "; p=" + facts.public_keys.front() + "\"";
  const TxtAnswer& answer = answer_for(txt, name);
  if (std::string failure = lookup_failure(name, answer); !failure.empty()) {
    add(missing, failure);
    return;
  }
  if (answer.kind != TxtAnswer::Kind::records || answer.records.empty()) {
    add(missing, "no TXT record at " + name + publish);
    return;
  }
  size_t matching = 0;
  std::string first_problem;
  bool testing = false;
  for (const std::string& record : answer.records) {
    std::string problem = dkim_record_problem(facts, record);
    if (problem.empty()) {
      ++matching;
      testing = testing || parse_dkim_key_record(record).record->testing;
    } else if (first_problem.empty()) {
      first_problem = problem;
    }
  }
  if (matching == 0) {
    add(missing, name + " " + first_problem + publish);
    return;
  }
  if (matching < answer.records.size()) {
    add(warn, name + " has " + std::to_string(answer.records.size()) +
                  " TXT records and verifiers may use any; one is wrong: " + first_problem);
    return;
  }
  if (testing) {
    add(warn, name + " has t=y (testing): verifiers may treat failed signatures as unsigned");
    return;
  }
  if (!facts.load_warning.empty()) {
    add(warn, "published key matches, but " + printable_excerpt(facts.load_warning, kQuoteLength));
    return;
  }
  add(ok, name + " publishes the " + facts.key_type + " key of " + key.private_key.string());
}

void check_dkim(const conf::Config& config, std::string_view domain,
                const std::vector<DkimKeyFacts>& keys, const TxtAnswers& txt,
                ComplianceReport& report) {
  bool any = false;
  bool any_ok = false;
  bool rsa_ok = false;
  for (size_t i = 0; i < config.dkim.size(); ++i) {
    if (!dkim_key_signs_for(config.dkim[i], domain)) continue;
    any = true;
    auto facts =
        std::find_if(keys.begin(), keys.end(), [&](const DkimKeyFacts& f) { return f.index == i; });
    DkimKeyFacts unloaded;
    unloaded.index = i;
    unloaded.load_error = "not loaded";
    const DkimKeyFacts& used = facts == keys.end() ? unloaded : *facts;
    check_dkim_key(config, used, txt, report);
    bool usable = report.lines.back().status != missing;
    any_ok = any_ok || usable;
    rsa_ok = rsa_ok || (usable && used.key_type == "rsa");
  }
  if (!any) {
    report.lines.push_back({"dkim", missing,
                            "no dkim[] entry signs mail from " + std::string(domain) +
                                " (add one with domain: " + std::string(domain) +
                                ", or a parent domain with subdomains: true)"});
  } else if (any_ok && !rsa_ok) {
    report.lines.push_back({"dkim", warn,
                            "no rsa-sha256 key: rsa-sha256 is the one algorithm every verifier "
                            "implements (RFC 6376 3.3); add an RSA key beside the ed25519 one"});
  }
}

void check_spf(std::string_view domain, std::string_view purpose, const TxtAnswers& txt,
               ComplianceReport& report) {
  const std::string name(domain);
  auto add = [&](ComplianceStatus status, std::string reason) {
    report.lines.push_back({"spf", status, name + std::string(purpose) + ": " + std::move(reason)});
  };
  const TxtAnswer& answer = answer_for(txt, name);
  if (std::string failure = lookup_failure(name, answer); !failure.empty()) {
    add(missing, failure);
    return;
  }
  std::vector<std::string_view> spf;
  for (const std::string& record : answer.records)
    if (is_spf_record(record)) spf.push_back(record);
  if (spf.empty()) {
    add(missing, answer.kind == TxtAnswer::Kind::no_domain
                     ? "the domain does not exist (NXDOMAIN)"
                     : "no TXT record starting v=spf1 (publish e.g. \"v=spf1 ip4:ADDR -all\")");
    return;
  }
  if (spf.size() > 1) {
    add(missing, std::to_string(spf.size()) +
                     " v=spf1 records: receivers treat that as a permanent error (RFC 7208 4.5); "
                     "merge them into one");
    return;
  }
  switch (spf_all_term(spf.front())) {
    case SpfAll::pass:
      add(warn, quoted(spf.front()) + " ends in +all: it lets anyone send as the domain");
      return;
    case SpfAll::none:
    case SpfAll::neutral:
    case SpfAll::softfail:
    case SpfAll::fail:
      break;
  }
  add(ok, quoted(spf.front()));
}

void check_dmarc(std::string_view domain, const TxtAnswers& txt, ComplianceReport& report) {
  auto add = [&](ComplianceStatus status, std::string reason) {
    report.lines.push_back({"dmarc", status, std::move(reason)});
  };
  const std::vector<std::string> names = dmarc_names(domain);
  for (size_t n = 0; n < names.size(); ++n) {
    const std::string& name = names[n];
    const TxtAnswer& answer = answer_for(txt, name);
    if (std::string failure = lookup_failure(name, answer); !failure.empty()) {
      add(missing, failure);
      return;
    }
    std::vector<std::string_view> dmarc;
    for (const std::string& record : answer.records)
      if (is_dmarc_record(record)) dmarc.push_back(record);
    if (dmarc.empty()) continue;
    if (dmarc.size() > 1) {
      add(missing, name + " has " + std::to_string(dmarc.size()) +
                       " v=DMARC1 records: receivers then apply none (RFC 7489 6.6.3)");
      return;
    }
    DmarcRecordResult parsed = parse_dmarc_record(dmarc.front());
    if (!parsed.record) {
      add(missing, name + " " + quoted(dmarc.front()) + " is not a valid DMARC record (" +
                       parsed.error + ")");
      return;
    }
    const DmarcRecord& record = *parsed.record;
    std::string reason = name + " p=" + std::string(dmarc_policy_name(record.policy));
    DmarcPolicy applied = record.policy;
    if (n > 0) {
      if (record.subdomain_policy) {
        applied = *record.subdomain_policy;
        reason += " sp=" + std::string(dmarc_policy_name(applied));
      }
      reason += " (inherited by " + std::string(domain) + ")";
    }
    if (record.percent < 100) reason += ", pct=" + std::to_string(record.percent);
    if (applied == DmarcPolicy::none) reason += ": monitoring only, enough for bulk-sender rules";
    if (record.aggregate_reports.empty()) reason += "; no rua=, so no aggregate reports";
    add(ok, reason);
    return;
  }
  add(missing, "no v=DMARC1 record at " + names.front() +
                   (names.size() > 1 ? " or its parent domains" : "") +
                   " (Gmail and Yahoo require at least \"v=DMARC1; p=none\" of bulk senders)");
}

void check_configuration(const conf::Config& config, ComplianceReport& report) {
  const conf::PolicyConfig* policy = config.policy.get();
  if (policy != nullptr && policy->list_unsubscribe) {
    const conf::ListUnsubscribeConfig& u = *policy->list_unsubscribe;
    std::string reason =
        "policy.list_unsubscribe: one-click List-Unsubscribe (RFC 8058) at " + u.url;
    if (!u.mailto_domain.empty()) reason += " and mailto u-TOKEN@" + u.mailto_domain;
    report.lines.push_back({"unsubscribe", ok, reason});
  } else {
    report.lines.push_back({"unsubscribe", missing,
                            "policy.list_unsubscribe is not set: Gmail and Yahoo require one-click "
                            "unsubscribe (RFC 8058) on bulk mail"});
  }
  switch (config.delivery.tls) {
    case conf::OutboundTls::required:
      report.lines.push_back({"tls", ok, "delivery.tls: required"});
      break;
    case conf::OutboundTls::opportunistic:
      report.lines.push_back(
          {"tls", ok, "delivery.tls: opportunistic (STARTTLS whenever the receiver offers it)"});
      break;
    case conf::OutboundTls::none:
      report.lines.push_back({"tls", missing,
                              "delivery.tls: none: Gmail requires TLS of bulk senders; set "
                              "opportunistic or required"});
      break;
  }
  if (policy != nullptr && policy->return_path) {
    const conf::ReturnPathConfig& r = *policy->return_path;
    report.lines.push_back({"return_path", ok,
                            "policy.return_path: " + std::string(r.verp ? "b-TOKEN@" : "") +
                                r.domain +
                                (r.verp ? " (VERP: bounces name message and recipient)" : "")});
  } else {
    report.lines.push_back({"return_path", warn,
                            "policy.return_path is not set: bounces and complaints go to each "
                            "message's own sender, and Ringmail cannot suppress those addresses"});
  }
}

std::string return_path_domain(const conf::Config& config, std::string_view domain) {
  if (config.policy == nullptr || !config.policy->return_path) return "";
  const std::string& rp = config.policy->return_path->domain;
  return rp == domain ? "" : rp;
}

}  // namespace

std::string_view compliance_status_name(ComplianceStatus status) {
  switch (status) {
    case ok:
      return "ok";
    case warn:
      return "warn";
    case missing:
      return "missing";
  }
  return "missing";
}

bool ComplianceReport::passed() const {
  return std::none_of(lines.begin(), lines.end(),
                      [](const ComplianceLine& line) { return line.status == missing; });
}

std::optional<std::string> compliance_domain(std::string_view argument) {
  std::string domain = lower(std::string(argument));
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (!conf::detail::is_host_name(domain)) return std::nullopt;
  return domain;
}

bool dkim_key_signs_for(const conf::DkimKey& key, std::string_view domain) {
  if (domain == key.domain) return true;
  return key.match_subdomains && domain.size() > key.domain.size() + 1 &&
         domain.ends_with(key.domain) && domain[domain.size() - key.domain.size() - 1] == '.';
}

std::vector<std::string> compliance_txt_names(const conf::Config& config, std::string_view domain) {
  std::vector<std::string> names;
  auto add = [&](std::string name) {
    name = lower(std::move(name));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  };
  for (const conf::DkimKey& key : config.dkim)
    if (dkim_key_signs_for(key, domain)) add(dkim_name(key));
  add(std::string(domain));
  if (std::string rp = return_path_domain(config, domain); !rp.empty()) add(rp);
  for (std::string& name : dmarc_names(domain)) add(std::move(name));
  return names;
}

ComplianceReport check_compliance(const conf::Config& config, std::string_view domain,
                                  const std::vector<DkimKeyFacts>& keys, const TxtAnswers& txt) {
  ComplianceReport report;
  check_dkim(config, domain, keys, txt, report);
  check_spf(domain, "", txt, report);
  if (std::string rp = return_path_domain(config, domain); !rp.empty())
    check_spf(rp, " (policy.return_path, the envelope sender's domain)", txt, report);
  check_dmarc(domain, txt, report);
  check_configuration(config, report);
  return report;
}

}  // namespace ringmail::policy
