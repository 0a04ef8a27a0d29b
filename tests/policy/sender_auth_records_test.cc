// tests/policy/sender_auth_records_test.cc — DKIM key records, DMARC
// records and SPF terms as published (the forms opendkim-genkey, the
// providers' set-up guides and hand-edited zones write), and broken ones.
#include "policy/sender_auth_records.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::policy {
namespace {

// A 2048-bit RSA SubjectPublicKeyInfo's base64 begins like this; the
// parser checks base64 syntax, not the key.
const std::string kKey = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu4Q0xw==";

TEST(TagList, ReadsTagsWithTheWhitespaceAroundThemRemoved) {
  TagList list = parse_tag_list(" v = DKIM1 ;\tk=rsa;p=abc def ; ");
  ASSERT_EQ(list.error, "");
  ASSERT_EQ(list.tags.size(), 3u);
  EXPECT_EQ(list.tags[0].name, "v");
  EXPECT_EQ(list.tags[0].value, "DKIM1");
  EXPECT_EQ(list.tags[2].value, "abc def");
  EXPECT_EQ(list.find("k")->value, "rsa");
  EXPECT_EQ(list.find("K"), nullptr);  // names are case-sensitive
}

TEST(TagList, EmptyValueIsAllowed) {
  TagList list = parse_tag_list("p=");
  ASSERT_EQ(list.error, "");
  EXPECT_EQ(list.find("p")->value, "");
}

struct BadTagList {
  const char* text;
  const char* error;
};

TEST(TagList, RefusesWhatTheGrammarDoesNotAllow) {
  const BadTagList cases[] = {
      {"", "empty record"},
      {"   ", "empty record"},
      {";", "empty tag between ';'"},
      {"v=DKIM1;;p=x", "empty tag between ';'"},
      {"1p=abc", "tag name \"1p=abc\" does not start with a letter"},
      {"=abc", "tag name \"=abc\" does not start with a letter"},
      {"p abc", "tag \"p\" has no '='"},
      {"p-x=1", "tag \"p\" has no '='"},
      {"p=a;p=b", "tag p= appears twice"},
      {"p=caf\xc3\xa9", "tag p= holds a byte outside printable ASCII"},
  };
  for (const BadTagList& c : cases) {
    EXPECT_EQ(parse_tag_list(c.text).error, c.error) << c.text;
  }
  EXPECT_EQ(parse_tag_list(std::string_view("p=a\0b", 5)).error,
            "tag p= holds a byte outside printable ASCII");
}

struct KeyCase {
  std::string text;
  // Expected: error "" for a record, then its fields.
  std::string error;
  std::string key_type = "rsa";
  std::string public_key = kKey;
  bool allows_email_sha256 = true;
  bool testing = false;
};

TEST(DkimKeyRecord, PublishedFormsAndBrokenOnes) {
  const std::vector<KeyCase> cases = {
      // opendkim-genkey, joined from its two quoted strings.
      {"v=DKIM1; h=sha256; k=rsa; p=" + kKey, ""},
      // No v= and no k=: rsa by default.
      {"p=" + kKey, ""},
      // The base64 folded with spaces, as some DNS panels show it.
      {"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEF AAOCAQ8AMIIBCgKCAQEAu4Q0xw==", ""},
      {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "", "ed25519",
       "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
      {"v=DKIM1; k=RSA; p=" + kKey, "", "rsa"},
      {"v=DKIM1; k=dsa; p=" + kKey, "", "dsa"},
      {"v=DKIM1; p=", "", "rsa", ""},  // revoked
      {"v=DKIM1; h=sha1; p=" + kKey, "", "rsa", kKey, false},
      {"v=DKIM1; h=sha1:sha256; p=" + kKey, "", "rsa", kKey, true},
      {"v=DKIM1; s=email; p=" + kKey, "", "rsa", kKey, true},
      {"v=DKIM1; s=*; p=" + kKey, "", "rsa", kKey, true},
      {"v=DKIM1; s=tlsrpt; p=" + kKey, "", "rsa", kKey, false},
      {"v=DKIM1; t=y; p=" + kKey, "", "rsa", kKey, true, true},
      {"v=DKIM1; t=s:y; p=" + kKey, "", "rsa", kKey, true, true},
      {"v=DKIM1; n=notes here; p=" + kKey + ";", ""},  // unknown tags ignored
      // Broken.
      {"v=DKIM2; p=" + kKey, "v=DKIM2 is not DKIM1"},
      {"k=rsa; v=DKIM1; p=" + kKey, "v= is not the first tag"},
      {"v=DKIM1; k=rsa", "no p= tag"},
      {"v=DKIM1; p=" + kKey.substr(1), "p= is not base64"},
      {"v=DKIM1; p=MIIB=IjA", "p= is not base64"},
      {"v=DKIM1; p=MI===", "p= is not base64"},
      {"v=DKIM1; p=MIIB-Ij_", "p= is not base64"},
      {"v=DKIM1; p=" + kKey + "; p=" + kKey, "tag p= appears twice"},
      {"v=spf1 -all", "v=spf1 -all is not DKIM1"},
  };
  for (const KeyCase& c : cases) {
    DkimKeyRecordResult result = parse_dkim_key_record(c.text);
    EXPECT_EQ(result.error, c.error) << c.text;
    if (!c.error.empty()) {
      EXPECT_FALSE(result.record) << c.text;
      continue;
    }
    ASSERT_TRUE(result.record) << c.text;
    EXPECT_EQ(result.record->key_type, c.key_type) << c.text;
    EXPECT_EQ(result.record->public_key, c.public_key) << c.text;
    EXPECT_EQ(dkim_key_record_allows_email_sha256(*result.record), c.allows_email_sha256) << c.text;
    EXPECT_EQ(result.record->testing, c.testing) << c.text;
  }
}

TEST(DkimKeyRecord, StrictSubdomainFlag) {
  DkimKeyRecordResult result = parse_dkim_key_record("t=s; p=" + kKey);
  ASSERT_TRUE(result.record);
  EXPECT_TRUE(result.record->strict_subdomains);
  EXPECT_FALSE(result.record->testing);
}

TEST(Dmarc, VersionDecidesWhatIsADmarcRecord) {
  EXPECT_TRUE(is_dmarc_record("v=DMARC1; p=none"));
  EXPECT_TRUE(is_dmarc_record("v = DMARC1;p=reject"));
  EXPECT_TRUE(is_dmarc_record("v=DMARC1"));
  EXPECT_TRUE(is_dmarc_record("v=DMARC1 ; p=none"));
  EXPECT_FALSE(is_dmarc_record("v=dmarc1; p=none"));
  EXPECT_FALSE(is_dmarc_record("v=DMARC10; p=none"));
  EXPECT_FALSE(is_dmarc_record("p=none; v=DMARC1"));
  EXPECT_FALSE(is_dmarc_record("v=spf1 -all"));
  EXPECT_FALSE(is_dmarc_record("google-site-verification=abc"));
  EXPECT_FALSE(is_dmarc_record(""));
}

struct DmarcCase {
  const char* text;
  const char* error;
  DmarcPolicy policy = DmarcPolicy::none;
  std::optional<DmarcPolicy> subdomain_policy = std::nullopt;
  int percent = 100;
  const char* rua = "";
};

TEST(Dmarc, PublishedRecordsAndBrokenOnes) {
  const DmarcCase cases[] = {
      {"v=DMARC1; p=none", ""},
      {"v=DMARC1; p=none; rua=mailto:dmarc@example.com", "", DmarcPolicy::none, std::nullopt, 100,
       "mailto:dmarc@example.com"},
      {"v=DMARC1; p=reject; sp=quarantine; pct=25; adkim=s; aspf=r", "", DmarcPolicy::reject,
       DmarcPolicy::quarantine, 25},
      {"v=DMARC1;p=Quarantine;", "", DmarcPolicy::quarantine},
      {"v=DMARC1; p=none; pct=0", "", DmarcPolicy::none, std::nullopt, 0},
      {"v=DMARC1", "no p= tag"},
      {"v=DMARC1; rua=mailto:d@example.com", "no p= tag"},
      {"v=DMARC1; p=block", "p=block is not none, quarantine or reject"},
      {"v=DMARC1; p=none; sp=all", "sp=all is not none, quarantine or reject"},
      {"v=DMARC1; p=none; pct=101", "pct=101 is not 0 to 100"},
      {"v=DMARC1; p=none; pct=-1", "pct=-1 is not 0 to 100"},
      {"v=DMARC1; p=none; pct=", "pct= is not 0 to 100"},
      {"v=DMARC1; p=none; p=reject", "tag p= appears twice"},
      {"v=DMARC1 p=none", "v=DMARC1 p=none is not DMARC1"},
  };
  for (const DmarcCase& c : cases) {
    DmarcRecordResult result = parse_dmarc_record(c.text);
    EXPECT_EQ(result.error, c.error) << c.text;
    if (*c.error != '\0') {
      EXPECT_FALSE(result.record) << c.text;
      continue;
    }
    ASSERT_TRUE(result.record) << c.text;
    EXPECT_EQ(result.record->policy, c.policy) << c.text;
    EXPECT_EQ(result.record->subdomain_policy, c.subdomain_policy) << c.text;
    EXPECT_EQ(result.record->percent, c.percent) << c.text;
    EXPECT_EQ(result.record->aggregate_reports, c.rua) << c.text;
  }
}

TEST(Spf, VersionAndAllTerm) {
  EXPECT_TRUE(is_spf_record("v=spf1 -all"));
  EXPECT_TRUE(is_spf_record("V=SPF1 include:_spf.google.com ~all"));
  EXPECT_TRUE(is_spf_record("v=spf1"));
  EXPECT_FALSE(is_spf_record("v=spf10 -all"));
  EXPECT_FALSE(is_spf_record("v=spf1\t-all"));
  EXPECT_FALSE(is_spf_record(" v=spf1 -all"));
  EXPECT_FALSE(is_spf_record("v=DMARC1; p=none"));

  EXPECT_EQ(spf_all_term("v=spf1 ip4:192.0.2.0/24 -all"), SpfAll::fail);
  EXPECT_EQ(spf_all_term("v=spf1 include:_spf.google.com ~all"), SpfAll::softfail);
  EXPECT_EQ(spf_all_term("v=spf1 mx ?all"), SpfAll::neutral);
  EXPECT_EQ(spf_all_term("v=spf1 mx +all"), SpfAll::pass);
  EXPECT_EQ(spf_all_term("v=spf1 mx all"), SpfAll::pass);
  EXPECT_EQ(spf_all_term("v=spf1 mx  ALL "), SpfAll::pass);
  EXPECT_EQ(spf_all_term("v=spf1 redirect=_spf.example.com"), SpfAll::none);
  EXPECT_EQ(spf_all_term("v=spf1 include:all.example.com -all"), SpfAll::fail);
  EXPECT_EQ(spf_all_term("v=spf1 exists:all"), SpfAll::none);
}

TEST(PrintableExcerpt, EscapesAndCuts) {
  EXPECT_EQ(printable_excerpt("v=spf1 -all"), "v=spf1 -all");
  EXPECT_EQ(printable_excerpt("a\x1b[2Jb\n"), "a\\x1b[2Jb\\x0a");
  EXPECT_EQ(printable_excerpt("abcdef", 3), "abc...");
  EXPECT_EQ(printable_excerpt("abc", 3), "abc");
}

}  // namespace
}  // namespace ringmail::policy
