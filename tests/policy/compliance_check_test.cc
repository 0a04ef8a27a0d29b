// tests/policy/compliance_check_test.cc — the compliance report from facts:
// a compliant sender (every line ok), then one change at a time: each
// check's missing and warning cases, a published key that is not the
// configured one, several SPF or DMARC records, broken DKIM records,
// failed lookups, the DMARC fallback to a parent domain, and the TXT names
// the caller must look up.
#include "policy/compliance_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "conf/config_policy.h"

namespace ringmail::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using enum ComplianceStatus;
using Kind = TxtAnswer::Kind;

// Stand-ins for the two base64 forms of one RSA key, and another key.
const std::string kSpki = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu4Q0xw==";
const std::string kPkcs1 = "MIIBCgKCAQEAu4Q0xw==";
const std::string kOtherKey = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAz9Zzzw==";
const std::string kEd25519 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

TxtAnswer records(std::vector<std::string> texts) { return {Kind::records, std::move(texts), ""}; }
TxtAnswer nothing() { return {Kind::no_records, {}, "no TXT record"}; }
TxtAnswer nxdomain() { return {Kind::no_domain, {}, "NXDOMAIN"}; }
TxtAnswer servfail() { return {Kind::failed, {}, "Server failure"}; }

// Everything a compliant sender of example.com has.
struct World {
  conf::Config config;
  std::shared_ptr<conf::PolicyConfig> policy = std::make_shared<conf::PolicyConfig>();
  std::vector<DkimKeyFacts> keys;
  TxtAnswers txt;

  World() {
    conf::DkimKey key;
    key.domain = "example.com";
    key.selector = "s1";
    key.private_key = "/etc/ringmail/dkim/s1.pem";
    config.dkim.push_back(key);
    DkimKeyFacts facts;
    facts.index = 0;
    facts.key_type = "rsa";
    facts.public_keys = {kSpki, kPkcs1};
    keys.push_back(facts);
    conf::ListUnsubscribeConfig unsubscribe;
    unsubscribe.url = "https://unsubscribe.example.com/u";
    policy->list_unsubscribe = unsubscribe;
    conf::ReturnPathConfig return_path;
    return_path.domain = "bounces.example.com";
    policy->return_path = return_path;
    config.policy = policy;
    config.delivery.tls = conf::OutboundTls::opportunistic;
    txt["s1._domainkey.example.com"] = records({"v=DKIM1; k=rsa; p=" + kSpki});
    txt["example.com"] = records({"google-site-verification=abc", "v=spf1 ip4:192.0.2.1 -all"});
    txt["bounces.example.com"] = records({"v=spf1 ip4:192.0.2.1 -all"});
    txt["_dmarc.example.com"] = records({"v=DMARC1; p=none; rua=mailto:dmarc@example.com"});
  }
  ComplianceReport report(const std::string& domain = "example.com") const {
    return check_compliance(config, domain, keys, txt);
  }
};

std::vector<std::string> checks_of(const ComplianceReport& report) {
  std::vector<std::string> checks;
  for (const ComplianceLine& line : report.lines) checks.push_back(line.check);
  return checks;
}

std::string dump(const ComplianceReport& report) {
  std::string text;
  for (const ComplianceLine& line : report.lines)
    text += line.check + " " + std::string(compliance_status_name(line.status)) + " " +
            line.reason + "\n";
  return text;
}

TEST(ComplianceCheck, CompliantSenderHasEveryLineOk) {
  World world;
  ComplianceReport report = world.report();
  EXPECT_THAT(checks_of(report),
              ElementsAre("dkim", "spf", "spf", "dmarc", "unsubscribe", "tls", "return_path"));
  for (const ComplianceLine& line : report.lines) EXPECT_EQ(line.status, ok) << dump(report);
  EXPECT_TRUE(report.passed());
  EXPECT_THAT(report.lines[0].reason,
              HasSubstr("s1._domainkey.example.com publishes the rsa key of "
                        "/etc/ringmail/dkim/s1.pem"));
  EXPECT_THAT(report.lines[1].reason, HasSubstr("\"v=spf1 ip4:192.0.2.1 -all\""));
  EXPECT_THAT(report.lines[2].reason, HasSubstr("bounces.example.com (policy.return_path"));
  EXPECT_THAT(report.lines[3].reason, HasSubstr("_dmarc.example.com p=none: monitoring only"));
}

struct Case {
  const char* name;
  std::function<void(World&)> change;
  // Expected: a line of this check and status whose reason holds `reason`,
  // and whether the report passes.
  const char* check;
  ComplianceStatus status;
  const char* reason;
  bool passed;
};

const Case kCases[] = {
    // DKIM
    {"no dkim entry", [](World& w) { w.config.dkim.clear(); }, "dkim", missing,
     "no dkim[] entry signs mail from example.com", false},
    {"dkim entry for another domain", [](World& w) { w.config.dkim[0].domain = "example.net"; },
     "dkim", missing, "no dkim[] entry signs mail from example.com", false},
    {"private key does not load",
     [](World& w) {
       w.keys[0].load_error = "cannot read DKIM key";
       w.keys[0].public_keys.clear();
     },
     "dkim", missing, "private key /etc/ringmail/dkim/s1.pem does not load: cannot read DKIM key",
     false},
    {"no facts for an entry", [](World& w) { w.keys.clear(); }, "dkim", missing, "not loaded",
     false},
    {"key record not published", [](World& w) { w.txt["s1._domainkey.example.com"] = nxdomain(); },
     "dkim", missing,
     "no TXT record at s1._domainkey.example.com; publish \"v=DKIM1; k=rsa; p=MIIBIjAN", false},
    {"name without TXT", [](World& w) { w.txt["s1._domainkey.example.com"] = nothing(); }, "dkim",
     missing, "no TXT record at s1._domainkey.example.com", false},
    {"published key is another one",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; p=" + kOtherKey}); },
     "dkim", missing,
     "s1._domainkey.example.com p= is not the public key of the configured private key; "
     "publish",
     false},
    {"published as PKCS#1 RSAPublicKey",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"k=rsa; p=" + kPkcs1}); }, "dkim",
     ok, "publishes the rsa key", true},
    {"published key folded with spaces",
     [](World& w) {
       w.txt["s1._domainkey.example.com"] =
           records({"v=DKIM1; k=rsa; p=" + kSpki.substr(0, 20) + " " + kSpki.substr(20)});
     },
     "dkim", ok, "publishes the rsa key", true},
    {"revoked key",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; k=rsa; p="}); }, "dkim",
     missing, "the key is revoked (empty p=)", false},
    {"record of the wrong key type",
     [](World& w) {
       w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; k=ed25519; p=" + kEd25519});
     },
     "dkim", missing, "k=ed25519 but the private key is rsa", false},
    {"bad DKIM TXT: not base64",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; p=not*base64"}); },
     "dkim", missing, "not a DKIM key record (p= is not base64)", false},
    {"bad DKIM TXT: wrong version",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM2; p=" + kSpki}); },
     "dkim", missing, "not a DKIM key record (v=DKIM2 is not DKIM1)", false},
    {"bad DKIM TXT: no p=",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; k=rsa"}); }, "dkim",
     missing, "not a DKIM key record (no p= tag)", false},
    {"bad DKIM TXT: escape bytes are quoted, not printed",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"\x1b[2J=1; p=" + kSpki}); },
     "dkim", missing, "tag name \"\\x1b[2J=1\" does not start with a letter", false},
    {"record only for sha1",
     [](World& w) {
       w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; h=sha1; p=" + kSpki});
     },
     "dkim", missing, "h= or s= rule out sha256 email signatures", false},
    {"two records, one wrong",
     [](World& w) {
       w.txt["s1._domainkey.example.com"] =
           records({"v=DKIM1; p=" + kSpki, "v=DKIM1; p=" + kOtherKey});
     },
     "dkim", warn, "has 2 TXT records and verifiers may use any", true},
    {"testing flag",
     [](World& w) { w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; t=y; p=" + kSpki}); },
     "dkim", warn, "t=y (testing)", true},
    {"weak key",
     [](World& w) { w.keys[0].load_warning = "RSA key of 1024 bits; 2048 is recommended"; }, "dkim",
     warn, "published key matches, but RSA key of 1024 bits", true},
    {"key lookup fails", [](World& w) { w.txt["s1._domainkey.example.com"] = servfail(); }, "dkim",
     missing, "TXT lookup of s1._domainkey.example.com failed (Server failure): cannot tell",
     false},
    {"ed25519 only",
     [](World& w) {
       w.keys[0].key_type = "ed25519";
       w.keys[0].public_keys = {kEd25519};
       w.txt["s1._domainkey.example.com"] = records({"v=DKIM1; k=ed25519; p=" + kEd25519});
     },
     "dkim", warn, "no rsa-sha256 key", true},
    // SPF
    {"no SPF record",
     [](World& w) { w.txt["example.com"] = records({"google-site-verification=abc"}); }, "spf",
     missing, "example.com: no TXT record starting v=spf1", false},
    {"domain without TXT", [](World& w) { w.txt["example.com"] = nothing(); }, "spf", missing,
     "no TXT record starting v=spf1", false},
    {"multiple SPF records",
     [](World& w) {
       w.txt["example.com"] = records({"v=spf1 mx -all", "v=spf1 ip4:192.0.2.1 ~all"});
     },
     "spf", missing, "2 v=spf1 records: receivers treat that as a permanent error", false},
    {"SPF ends in +all", [](World& w) { w.txt["example.com"] = records({"v=spf1 mx +all"}); },
     "spf", warn, "ends in +all", true},
    {"SPF with a bare all", [](World& w) { w.txt["example.com"] = records({"v=spf1 all"}); }, "spf",
     warn, "ends in +all", true},
    {"SPF softfail is fine",
     [](World& w) { w.txt["example.com"] = records({"v=spf1 include:_spf.example.net ~all"}); },
     "spf", ok, "~all", true},
    {"SPF lookup fails", [](World& w) { w.txt["example.com"] = servfail(); }, "spf", missing,
     "TXT lookup of example.com failed", false},
    {"no SPF at the return-path domain",
     [](World& w) { w.txt["bounces.example.com"] = nxdomain(); }, "spf", missing,
     "bounces.example.com (policy.return_path, the envelope sender's domain): the domain does "
     "not exist",
     false},
    // DMARC
    {"no DMARC record", [](World& w) { w.txt["_dmarc.example.com"] = nxdomain(); }, "dmarc",
     missing, "no v=DMARC1 record at _dmarc.example.com", false},
    {"DMARC without p=",
     [](World& w) {
       w.txt["_dmarc.example.com"] = records({"v=DMARC1; rua=mailto:d@example.com"});
     },
     "dmarc", missing, "is not a valid DMARC record (no p= tag)", false},
    {"two DMARC records",
     [](World& w) {
       w.txt["_dmarc.example.com"] = records({"v=DMARC1; p=none", "v=DMARC1; p=reject"});
     },
     "dmarc", missing, "_dmarc.example.com has 2 v=DMARC1 records", false},
    {"other TXT beside DMARC is ignored",
     [](World& w) {
       w.txt["_dmarc.example.com"] = records({"something else", "v=DMARC1; p=reject"});
     },
     "dmarc", ok, "_dmarc.example.com p=reject; no rua=", true},
    {"DMARC lookup fails", [](World& w) { w.txt["_dmarc.example.com"] = servfail(); }, "dmarc",
     missing, "TXT lookup of _dmarc.example.com failed", false},
    {"DMARC pct",
     [](World& w) { w.txt["_dmarc.example.com"] = records({"v=DMARC1; p=quarantine; pct=10"}); },
     "dmarc", ok, "p=quarantine, pct=10", true},
    // Unsubscribe, TLS, return path
    {"no list_unsubscribe", [](World& w) { w.policy->list_unsubscribe.reset(); }, "unsubscribe",
     missing, "policy.list_unsubscribe is not set", false},
    {"list_unsubscribe with mailto",
     [](World& w) { w.policy->list_unsubscribe->mailto_domain = "unsubscribe.example.com"; },
     "unsubscribe", ok, "and mailto u-TOKEN@unsubscribe.example.com", true},
    {"outbound TLS off", [](World& w) { w.config.delivery.tls = conf::OutboundTls::none; }, "tls",
     missing, "delivery.tls: none", false},
    {"outbound TLS required", [](World& w) { w.config.delivery.tls = conf::OutboundTls::required; },
     "tls", ok, "delivery.tls: required", true},
    {"no return path",
     [](World& w) {
       w.policy->return_path.reset();
       w.txt.erase("bounces.example.com");
     },
     "return_path", warn, "policy.return_path is not set", true},
    {"return path without VERP", [](World& w) { w.policy->return_path->verp = false; },
     "return_path", ok, "policy.return_path: bounces.example.com", true},
};

TEST(ComplianceCheck, OneChangeAtATime) {
  for (const Case& c : kCases) {
    World world;
    c.change(world);
    ComplianceReport report = world.report();
    bool found = false;
    for (const ComplianceLine& line : report.lines) {
      found = found || (line.check == c.check && line.status == c.status &&
                        line.reason.find(c.reason) != std::string::npos);
    }
    EXPECT_TRUE(found) << c.name << ":\n" << dump(report);
    EXPECT_EQ(report.passed(), c.passed) << c.name << ":\n" << dump(report);
  }
}

TEST(ComplianceCheck, ReturnPathOfTheDomainItselfIsNotCheckedTwice) {
  World world;
  world.policy->return_path->domain = "example.com";
  EXPECT_THAT(checks_of(world.report()),
              ElementsAre("dkim", "spf", "dmarc", "unsubscribe", "tls", "return_path"));
}

TEST(ComplianceCheck, SubdomainUsesTheParentKeyAndTheParentDmarcRecord) {
  World world;
  world.config.dkim[0].match_subdomains = true;
  world.txt["news.example.com"] = records({"v=spf1 ip4:192.0.2.1 -all"});
  world.txt["_dmarc.news.example.com"] = nxdomain();
  world.txt["_dmarc.example.com"] = records({"v=DMARC1; p=reject; sp=quarantine"});
  ComplianceReport report = world.report("news.example.com");
  EXPECT_TRUE(report.passed()) << dump(report);
  EXPECT_THAT(report.lines[0].reason, HasSubstr("s1._domainkey.example.com publishes"));
  EXPECT_THAT(dump(report), HasSubstr("dmarc ok _dmarc.example.com p=reject sp=quarantine "
                                      "(inherited by news.example.com)"));

  world.config.dkim[0].match_subdomains = false;
  EXPECT_THAT(dump(world.report("news.example.com")),
              HasSubstr("dkim missing no dkim[] entry signs mail from news.example.com"));
}

TEST(ComplianceCheck, DmarcFallbackStopsAtAFailedLookup) {
  World world;
  world.txt["news.example.com"] = records({"v=spf1 -all"});
  world.config.dkim[0].domain = "news.example.com";
  world.txt["s1._domainkey.news.example.com"] = records({"p=" + kSpki});
  world.txt["_dmarc.news.example.com"] = servfail();
  EXPECT_THAT(dump(world.report("news.example.com")),
              HasSubstr("dmarc missing TXT lookup of _dmarc.news.example.com failed"));
  world.txt["_dmarc.news.example.com"] = nothing();
  world.txt["_dmarc.example.com"] = nothing();
  EXPECT_THAT(dump(world.report("news.example.com")),
              HasSubstr("dmarc missing no v=DMARC1 record at _dmarc.news.example.com or its "
                        "parent domains"));
}

TEST(ComplianceCheck, EveryEntryThatSignsIsChecked) {
  World world;
  conf::DkimKey second = world.config.dkim[0];
  second.selector = "s2";
  world.config.dkim.push_back(second);
  DkimKeyFacts facts = world.keys[0];
  facts.index = 1;
  world.keys.push_back(facts);
  // s2 is not published yet: rotation done in the wrong order.
  world.txt["s2._domainkey.example.com"] = nxdomain();
  ComplianceReport report = world.report();
  EXPECT_FALSE(report.passed());
  EXPECT_THAT(dump(report), HasSubstr("dkim ok dkim[0] (example.com, s1)"));
  EXPECT_THAT(dump(report), HasSubstr("dkim missing dkim[1] (example.com, s2): no TXT record"));
}

TEST(ComplianceCheck, MissingAnswerCountsAsAFailedLookup) {
  World world;
  world.txt.erase("_dmarc.example.com");
  EXPECT_THAT(dump(world.report()),
              HasSubstr("dmarc missing TXT lookup of _dmarc.example.com failed (not looked up)"));
}

TEST(ComplianceCheck, TxtNamesToLookUp) {
  World world;
  world.config.dkim[0].selector = "Sel1";
  EXPECT_THAT(compliance_txt_names(world.config, "example.com"),
              ElementsAre("sel1._domainkey.example.com", "example.com", "bounces.example.com",
                          "_dmarc.example.com"));
  world.config.dkim[0].match_subdomains = true;
  EXPECT_THAT(
      compliance_txt_names(world.config, "a.news.example.com"),
      ElementsAre("sel1._domainkey.example.com", "a.news.example.com", "bounces.example.com",
                  "_dmarc.a.news.example.com", "_dmarc.news.example.com", "_dmarc.example.com"));
  world.config.dkim.clear();
  world.policy->return_path.reset();
  EXPECT_THAT(compliance_txt_names(world.config, "example"),
              ElementsAre("example", "_dmarc.example"));
}

TEST(ComplianceCheck, DomainArgument) {
  EXPECT_EQ(compliance_domain("Example.COM."), "example.com");
  EXPECT_EQ(compliance_domain("news.example.com"), "news.example.com");
  EXPECT_EQ(compliance_domain(""), std::nullopt);
  EXPECT_EQ(compliance_domain("."), std::nullopt);
  EXPECT_EQ(compliance_domain("a..b"), std::nullopt);
  EXPECT_EQ(compliance_domain("user@example.com"), std::nullopt);
  EXPECT_EQ(compliance_domain("exa mple.com"), std::nullopt);
}

TEST(ComplianceCheck, DkimEntryMatching) {
  conf::DkimKey key;
  key.domain = "example.com";
  EXPECT_TRUE(dkim_key_signs_for(key, "example.com"));
  EXPECT_FALSE(dkim_key_signs_for(key, "news.example.com"));
  key.match_subdomains = true;
  EXPECT_TRUE(dkim_key_signs_for(key, "news.example.com"));
  EXPECT_FALSE(dkim_key_signs_for(key, "badexample.com"));
  EXPECT_FALSE(dkim_key_signs_for(key, "example.com.evil"));
  EXPECT_FALSE(dkim_key_signs_for(key, "com"));
}

}  // namespace
}  // namespace ringmail::policy
