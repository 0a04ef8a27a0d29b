// Tests for mta/dkim_signer: key loading rules, the shape of the
// DKIM-Signature field, key selection by From domain, and — the part that
// matters — independent verification of every edge case, both algorithms
// and both canonicalizations, by dkimpy (tests/dkim/verify_dkimpy.py) and
// by OpenDKIM (tests/dkim/verify_opendkim.py, `opendkim -t`). Keys are made
// at test time with the openssl CLI; the public keys the verifiers use are
// derived by the openssl CLI too, not by the code under test.
#include "mta/dkim/dkim_signer.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_dir.h"

namespace ringmail::mta {
namespace {

namespace fs = std::filesystem;
using C = DkimCanonicalization;

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

void write_file(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Test keys, each made on first use (one process per test under ctest) in
// a temporary directory that is removed at exit.
class TestKeys {
 public:
  test_support::TempDir temp{"ringmail-dkim-test"};
  const fs::path dir = temp.path();

  fs::path rsa2048() { return make("rsa2048.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"); }
  fs::path ed25519() { return make("ed25519.pem", "-algorithm ED25519"); }
  fs::path rsa1024() { return make("rsa1024.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:1024"); }
  fs::path rsa512() { return make("rsa512.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:512"); }
  fs::path ec() { return make("ec.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"); }
  fs::path encrypted() {
    return make("encrypted.pem",
                "-algorithm RSA -pkeyopt rsa_keygen_bits:1024 -aes256 -pass pass:secret");
  }
  fs::path garbage() {
    fs::path path = dir / "garbage.pem";
    write_file(path, "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n");
    return path;
  }
  // Public keys as DNS TXT p= values, derived by the openssl CLI.
  std::string rsa2048_public() {
    return trim(run("openssl pkey -in " + rsa2048().string() + " -pubout -outform DER | base64 -w0")
                    .output);
  }
  std::string ed25519_public() {
    // An Ed25519 SubjectPublicKeyInfo ends with the raw 32-byte key (RFC 8463).
    return trim(run("openssl pkey -in " + ed25519().string() +
                    " -pubout -outform DER | tail -c 32 | base64 -w0")
                    .output);
  }

 private:
  fs::path make(const char* name, const std::string& options) {
    fs::path path = dir / name;
    if (fs::exists(path)) return path;
    CommandResult r = run("openssl genpkey " + options + " -out " + path.string());
    if (r.exit_code != 0) ADD_FAILURE() << "openssl genpkey " << options << ": " << r.output;
    return path;
  }
};

TestKeys& keys() {
  static TestKeys* instance = new TestKeys();  // removed by the atexit below
  static bool registered = [] { return std::atexit([] { delete instance; }) == 0; }();
  (void)registered;
  return *instance;
}

conf::DkimKey key_config(const fs::path& key, std::string domain = "example.test",
                         std::string selector = "sel") {
  conf::DkimKey k;
  k.domain = std::move(domain);
  k.selector = std::move(selector);
  k.private_key = key;
  k.headers = {"from",         "to",          "cc",       "subject",
               "date",         "message-id",  "received", "list-unsubscribe",
               "mime-version", "content-type"};
  return k;
}

std::unique_ptr<DkimSigner> load_ok(const conf::DkimKey& k, const DkimSignerOptions& o = {}) {
  std::string error, warning;
  auto signer = DkimSigner::load(k, o, &error, &warning);
  EXPECT_TRUE(signer) << error;
  return signer;
}

// Tags of a DKIM-Signature field, unfolded, whitespace removed from values.
std::map<std::string, std::string> tags_of(std::string_view field) {
  std::string value(field.substr(field.find(':') + 1));
  std::string flat;
  for (char c : value) {
    if (c != '\r' && c != '\n' && c != ' ' && c != '\t') flat += c;
  }
  std::map<std::string, std::string> tags;
  std::stringstream in(flat);
  std::string part;
  while (std::getline(in, part, ';')) {
    size_t eq = part.find('=');
    if (eq != std::string::npos) tags[part.substr(0, eq)] = part.substr(eq + 1);
  }
  return tags;
}

const std::string kMessage =
    "Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "From: Alice <alice@example.test>\r\n"
    "To: bob@example.org\r\n"
    "Subject: hello\r\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "Message-ID: <1@example.test>\r\n"
    "\r\n"
    "Hello Bob.\r\n";

TEST(DkimSigner, LoadsRsaAndEd25519AndDescribesThem) {
  auto rsa = load_ok(key_config(keys().rsa2048()));
  ASSERT_TRUE(rsa);
  EXPECT_EQ(rsa->algorithm_name(), "rsa-sha256");
  EXPECT_EQ(rsa->key_bits(), 2048);
  EXPECT_EQ(rsa->public_key_record(), "v=DKIM1; k=rsa; p=" + keys().rsa2048_public());
  auto ed = load_ok(key_config(keys().ed25519()));
  ASSERT_TRUE(ed);
  EXPECT_EQ(ed->algorithm_name(), "ed25519-sha256");
  EXPECT_EQ(ed->public_key_record(), "v=DKIM1; k=ed25519; p=" + keys().ed25519_public());
}

TEST(DkimSigner, WarnsUnder2048AndRefusesUnder1024AndOtherKeys) {
  std::string error, warning;
  EXPECT_TRUE(DkimSigner::load(key_config(keys().rsa1024()), &error, &warning));
  EXPECT_NE(warning.find("1024 bits; 2048 is recommended"), std::string::npos) << warning;
  warning.clear();
  EXPECT_TRUE(DkimSigner::load(key_config(keys().rsa2048()), &error, &warning));
  EXPECT_EQ(warning, "");

  struct Bad {
    fs::path key;
    const char* message;
  };
  for (const Bad& bad : {Bad{keys().rsa512(), "has 512 bits; DKIM needs 1024 to 4096"},
                         Bad{keys().ec(), "is neither an RSA nor an Ed25519 key"},
                         Bad{keys().encrypted(), "holds no PEM private key (or it is encrypted)"},
                         Bad{keys().garbage(), "holds no PEM private key"},
                         Bad{keys().dir / "missing.pem", "cannot read DKIM key"}}) {
    error.clear();
    EXPECT_FALSE(DkimSigner::load(key_config(bad.key), &error, nullptr)) << bad.key;
    EXPECT_NE(error.find(bad.message), std::string::npos) << error;
  }
}

TEST(DkimSigner, SignatureFieldShape) {
  DkimSignerOptions options;
  options.expire_after = std::chrono::hours(24);
  auto signer = load_ok(key_config(keys().rsa2048()), options);
  ASSERT_TRUE(signer);
  const std::string field = signer->sign(kMessage, 1700000000);
  ASSERT_FALSE(field.empty());
  EXPECT_EQ(field.rfind("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;"
                        " s=sel;",
                        0),
            0u)
      << field;
  ASSERT_EQ(field.substr(field.size() - 2), "\r\n");
  // Every line at most 78 characters, continuation lines start with SP.
  size_t start = 0;
  int lines = 0;
  while (start < field.size()) {
    size_t end = field.find("\r\n", start);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end - start, 78u) << field.substr(start, end - start);
    if (lines++ > 0) {
      EXPECT_EQ(field[start], ' ');
    }
    start = end + 2;
  }
  auto tags = tags_of(field);
  EXPECT_EQ(tags["t"], "1700000000");
  EXPECT_EQ(tags["x"], "1700086400");
  // From over-signed; other configured names once per instance; absent
  // ones (cc, list-unsubscribe, ...) left out.
  EXPECT_EQ(tags["h"], "from:from:to:subject:date:message-id:received");
  EXPECT_EQ(tags["bh"], "DD3L33E64/RV0CUJdfGTtPGKU7OPJpo/2LxOdf3k0RI=");
  EXPECT_EQ(tags["b"].size(), 344u);  // 256 bytes of RSA-2048 signature
  // b= is the last tag.
  size_t b = field.rfind(" b=");
  ASSERT_NE(b, std::string::npos);
  EXPECT_GT(b, field.find("bh="));
  EXPECT_EQ(field.find(';', b), std::string::npos);
}

TEST(DkimSigner, SimpleCanonicalizationAndNoExpiryByDefault) {
  DkimSignerOptions options;
  options.header_canonicalization = C::simple;
  options.body_canonicalization = C::simple;
  auto signer = load_ok(key_config(keys().ed25519()), options);
  ASSERT_TRUE(signer);
  const std::string field = signer->sign(kMessage, 1700000000);
  auto tags = tags_of(field);
  EXPECT_EQ(tags["a"], "ed25519-sha256");
  EXPECT_EQ(tags["c"], "simple/simple");
  EXPECT_EQ(tags.count("x"), 0u);
  EXPECT_EQ(tags["b"].size(), 88u);  // 64 bytes
  // Both algorithms are deterministic: same input, same field.
  EXPECT_EQ(signer->sign(kMessage, 1700000000), field);
  EXPECT_NE(signer->sign(kMessage, 1700000001), field);
}

TEST(DkimSigner, StreamingBodyHashGivesTheSameSignature) {
  auto signer = load_ok(key_config(keys().ed25519()));
  ASSERT_TRUE(signer);
  DkimMessageParts parts = split_message(kMessage);
  DkimBodyHasher hasher = signer->body_hasher();
  for (char c : parts.body) hasher.update(std::string_view(&c, 1));
  EXPECT_EQ(signer->sign_with_body_hash(parts.header_block, hasher.finish(), 1700000000),
            signer->sign(kMessage, 1700000000));
}

TEST(DkimSigner, ConcurrentSigningFromSeveralThreads) {
  auto rsa = load_ok(key_config(keys().rsa2048()));
  auto ed = load_ok(key_config(keys().ed25519()));
  ASSERT_TRUE(rsa && ed);
  const std::string rsa_expected = rsa->sign(kMessage, 1700000000);
  const std::string ed_expected = ed->sign(kMessage, 1700000000);
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if (rsa->sign(kMessage, 1700000000) != rsa_expected) ++mismatches[t];
        if (ed->sign(kMessage, 1700000000) != ed_expected) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(DkimSignerSet, SelectsByFromDomainWithOptionalSubdomains) {
  DkimSignerSet set;
  DkimSignerOptions subdomains;
  subdomains.match_subdomains = true;
  set.add(load_ok(key_config(keys().rsa2048(), "example.test", "rsa")));
  set.add(load_ok(key_config(keys().ed25519(), "Example.TEST", "ed")));
  set.add(load_ok(key_config(keys().ed25519(), "parent.test", "sub"), subdomains));
  set.add(load_ok(key_config(keys().ed25519(), "exact.test", "x")));
  ASSERT_EQ(set.size(), 4u);
  auto selectors = [&](std::string_view domain) {
    std::vector<std::string> out;
    for (const DkimSigner* s : set.select(domain)) out.push_back(s->selector());
    return out;
  };
  EXPECT_EQ(selectors("example.test"), (std::vector<std::string>{"rsa", "ed"}));
  EXPECT_EQ(selectors("EXAMPLE.test"), (std::vector<std::string>{"rsa", "ed"}));
  EXPECT_EQ(selectors("mail.example.test"), std::vector<std::string>{});
  EXPECT_EQ(selectors("parent.test"), std::vector<std::string>{"sub"});
  EXPECT_EQ(selectors("a.b.parent.test"), std::vector<std::string>{"sub"});
  EXPECT_EQ(selectors("notparent.test"), std::vector<std::string>{});
  EXPECT_EQ(selectors("sub.exact.test"), std::vector<std::string>{});
  EXPECT_EQ(selectors(""), std::vector<std::string>{});

  auto signatures = set.sign(kMessage, 1700000000);
  ASSERT_EQ(signatures.size(), 2u);
  EXPECT_EQ(signatures[0].signer->algorithm_name(), "rsa-sha256");
  EXPECT_EQ(signatures[1].signer->algorithm_name(), "ed25519-sha256");
  EXPECT_EQ(tags_of(signatures[1].header_field)["s"], "ed");
  EXPECT_TRUE(set.sign("From: a@other.test\r\n\r\nx\r\n", 1700000000).empty());
  EXPECT_TRUE(set.sign("To: a@example.test\r\n\r\nx\r\n", 1700000000).empty());
}

TEST(DkimSignerSet, LoadReportsEveryBadKey) {
  std::vector<std::string> errors, warnings;
  EXPECT_TRUE(DkimSignerSet::load({key_config(keys().rsa2048()), key_config(keys().rsa1024())},
                                  &errors, &warnings));
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].rfind("dkim example.test/sel: the RSA key in", 0), 0u) << warnings[0];
  EXPECT_FALSE(DkimSignerSet::load(
      {key_config(keys().ec(), "a.test"), key_config(keys().rsa512(), "b.test")}, &errors,
      nullptr));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[1].rfind("dkim b.test/sel: ", 0), 0u) << errors[1];
}

// --- independent verification -----------------------------------------------

struct EdgeCase {
  const char* name;
  std::string message;
  // Header whitespace after the colon other than exactly one SP. OpenDKIM
  // sees headers through the milter interface (name and value apart) and
  // rebuilds "name: value", so its simple header canonicalization cannot
  // verify these; dkimpy-made signatures fail there the same way.
  bool unusual_colon_whitespace = false;
};

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::vector<EdgeCase> edge_cases() {
  const std::string common =
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "Message-ID: <edge@example.test>\r\n"
      "From: Alice Example <alice@example.test>\r\n"
      "To: bob@example.org\r\n";
  std::string long_to = "To: ";
  for (int i = 0; i < 40; ++i) {
    long_to += (i ? ",\r\n    " : "") + std::string("Recipient Number ") + std::to_string(i) +
               " <r" + std::to_string(i) + "@example.org>";
  }
  return {
      {"basic", common + "Subject: basic\r\n\r\nHello.\r\n"},
      {"folded_and_very_long_headers",
       "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: \"A very long display name\"\r\n"
       "\t<alice@example.test>\r\n" +
           long_to + "\r\nSubject: " + repeat("folded words   ", 12) + "\r\n " +
           repeat("more\tfolded\t ", 12) + "\r\n\t" + repeat("x", 900) +
           "\r\nX-Unfolded: " + repeat("y", 950) + "\r\n\r\nBody.\r\n"},
      {"repeated_header_names",
       "Received: from top.example by mx.example; Mon, 1 Jan 2024 00:00:02 +0000\r\n"
       "Received: from bottom.example by top.example; Mon, 1 Jan 2024 00:00:01 +0000\r\n" +
           common +
           "Cc: one@example.org\r\nCc: two@example.org\r\nSubject: repeated\r\n\r\n"
           "Two Received and two Cc.\r\n"},
      {"utf8_body_and_smtputf8_headers",
       "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
       "From: J\xc3\xb6ran <j\xc3\xb6ran@example.test>\r\n"
       "To: \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example\r\n"
       "Subject: Gr\xc3\xbc\xc3\x9f"
       "e  \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x93\xa7\r\n"
       "MIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=utf-8\r\n"
       "Content-Transfer-Encoding: 8bit\r\n\r\n"
       "Gr\xc3\xbc\xc3\x9f"
       "e aus K\xc3\xb6ln  \r\n\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95"
       "\x8c\r\n\xff\xfe raw 8-bit bytes\r\n"},
      {"empty_body", common + "Subject: empty\r\n\r\n"},
      {"trailing_empty_lines", common + "Subject: trailing\r\n\r\ntext\r\n\r\n\r\n\r\n"},
      {"only_empty_lines", common + "Subject: only empty\r\n\r\n\r\n\r\n\r\n"},
      {"trailing_whitespace_lines",
       common + "Subject: whitespace   \r\n\r\nline one   \r\nline\t two \t\r\n \r\n\t\r\n"
                "\tindented  and   spaced\r\n.\r\nFrom the start\r\n  \r\n"},
      {"body_without_final_crlf", common + "Subject: no crlf\r\n\r\nfirst\r\nlast line"},
      {"body_without_final_crlf_trailing_space",
       common + "Subject: no crlf\r\n\r\nfirst\r\nlast line \t "},
      {"header_whitespace_variants",
       "From:alice@example.test\r\nTO:   bob@example.org   \r\nSubject:\tx  \t y\r\n"
       "Date:\r\n Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n",
       /*unusual_colon_whitespace=*/true},
  };
}

struct VerifyParam {
  const char* name;
  bool ed25519;
  C canonicalization;
};

void PrintTo(const VerifyParam& p, std::ostream* os) { *os << p.name; }

enum class Verifier { dkimpy, opendkim };

class DkimIndependentVerify : public ::testing::TestWithParam<VerifyParam> {
 protected:
  void SetUp() override {
    temp_ = std::make_unique<test_support::TempDir>("ringmail-dkim-verify");
    dir_ = temp_->path();
    write_file(dir_ / "keys.txt",
               "rsa._domainkey.example.test v=DKIM1; k=rsa; p=" + keys().rsa2048_public() +
                   "\ned._domainkey.example.test v=DKIM1; k=ed25519; p=" + keys().ed25519_public() +
                   "\n");
  }
  void TearDown() override { temp_.reset(); }

  std::unique_ptr<DkimSigner> signer(bool ed25519, C c, bool expiry = false) {
    DkimSignerOptions options;
    options.header_canonicalization = c;
    options.body_canonicalization = c;
    if (expiry) options.expire_after = std::chrono::hours(1);
    return load_ok(key_config(ed25519 ? keys().ed25519() : keys().rsa2048(), "example.test",
                              ed25519 ? "ed" : "rsa"),
                   options);
  }

  // Why `verifier` cannot judge this form of this case (empty: it can).
  // These are the verifiers' own limits and disagreements, checked by
  // hand with signatures made by dkimpy itself; they are listed, not hidden.
  static std::string known_limit(Verifier verifier, C c, const EdgeCase& e, bool as_delivered) {
    const bool relaxed = c == C::relaxed;
    const std::string_view body = split_message(e.message).body;
    const bool unterminated = !body.empty() && body.substr(body.size() - 1) != "\n";
    if (verifier == Verifier::opendkim && !relaxed && e.unusual_colon_whitespace) {
      return "OpenDKIM (milter interface) rebuilds headers as \"name: value\"";
    }
    if (as_delivered) return "";
    if (verifier == Verifier::opendkim && relaxed && unterminated) {
      return "OpenDKIM reports 'message not signed' for a relaxed body without final CRLF";
    }
    if (verifier == Verifier::dkimpy && relaxed && unterminated &&
        (body.back() == ' ' || body.back() == '\t')) {
      return "dkimpy keeps one SP of trailing whitespace on an unterminated last line";
    }
    return "";
  }

  // Signs every edge case and writes the files this verifier can judge:
  // the message as signed, and, when the body does not end in CRLF, also
  // as any SMTP DATA hop delivers it (CRLF added), which the signature must
  // survive. Returns the file names.
  std::vector<std::string> write_signed_cases(Verifier verifier) {
    const VerifyParam& p = GetParam();
    auto plain = signer(p.ed25519, p.canonicalization);
    auto expiring = signer(p.ed25519, p.canonicalization, /*expiry=*/true);
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    std::vector<std::string> files;
    int i = 0;
    for (const EdgeCase& c : edge_cases()) {
      const DkimSigner& s = (i++ % 2) ? *expiring : *plain;
      std::string signed_message = s.sign(c.message, now) + c.message;
      EXPECT_NE(signed_message.size(), c.message.size()) << c.name;
      for (bool as_delivered : {false, true}) {
        std::string name = std::string(c.name) + (as_delivered ? "_as_delivered" : "");
        if (as_delivered) {
          if (signed_message.substr(signed_message.size() - 2) == "\r\n") continue;
          signed_message += "\r\n";
        }
        std::string limit = known_limit(verifier, p.canonicalization, c, as_delivered);
        if (!limit.empty()) {
          std::cout << "[ KNOWN    ] not checked: " << name << ": " << limit << "\n";
          continue;
        }
        fs::path file = dir_ / (name + ".eml");
        write_file(file, signed_message);
        files.push_back(file.string());
      }
    }
    // RSA and Ed25519 on the same message, from one DkimSignerSet.
    DkimSignerSet set;
    set.add(signer(false, p.canonicalization));
    set.add(signer(true, p.canonicalization));
    std::string message = edge_cases()[2].message;
    std::string prefix;
    for (const auto& sig : set.sign(message, now)) prefix += sig.header_field;
    fs::path file = dir_ / "two_signatures_rsa_and_ed25519.eml";
    write_file(file, prefix + message);
    files.push_back(file.string());
    return files;
  }

  CommandResult run_verifier(Verifier verifier, const std::vector<std::string>& files) {
    std::string command =
        "/usr/bin/python3 " + std::string(RINGMAIL_SOURCE_DIR) + "/tests/dkim/" +
        (verifier == Verifier::dkimpy ? "verify_dkimpy.py" : "verify_opendkim.py") + " " +
        (dir_ / "keys.txt").string();
    for (const std::string& f : files) command += " " + f;
    return run(command);
  }

  void verify_with(Verifier verifier) {
    std::vector<std::string> files = write_signed_cases(verifier);
    CommandResult r = run_verifier(verifier, files);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const std::string& f : files) {
      EXPECT_NE(r.output.find("PASS " + f + " "), std::string::npos)
          << fs::path(f).filename() << " did not pass:\n"
          << r.output;
    }
    EXPECT_NE(r.output.find("PASS " + files.back() + " 2 signature(s)"), std::string::npos);
  }

  std::unique_ptr<test_support::TempDir> temp_;
  fs::path dir_;
};

TEST_P(DkimIndependentVerify, Dkimpy) { verify_with(Verifier::dkimpy); }

TEST_P(DkimIndependentVerify, OpenDkim) { verify_with(Verifier::opendkim); }

TEST_P(DkimIndependentVerify, TamperedMessageFailsBothVerifiers) {
  // Guards the guards: a verifier that passes everything proves nothing.
  auto s = signer(GetParam().ed25519, GetParam().canonicalization);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::string signed_message = s->sign(kMessage, now) + kMessage;
  std::string body_changed = signed_message;
  body_changed.replace(body_changed.find("Hello Bob."), 10, "Hello Eve.");
  std::string from_added = "From: mallory@evil.test\r\n" + signed_message;
  write_file(dir_ / "body.eml", body_changed);
  write_file(dir_ / "from.eml", from_added);
  for (Verifier verifier : {Verifier::dkimpy, Verifier::opendkim}) {
    for (const char* file : {"body.eml", "from.eml"}) {
      CommandResult r = run_verifier(verifier, {(dir_ / file).string()});
      EXPECT_EQ(r.exit_code, 1) << file << "\n" << r.output;
      EXPECT_NE(r.output.find("FAIL "), std::string::npos) << r.output;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dkim, DkimIndependentVerify,
                         ::testing::Values(VerifyParam{"rsa_relaxed", false, C::relaxed},
                                           VerifyParam{"rsa_simple", false, C::simple},
                                           VerifyParam{"ed25519_relaxed", true, C::relaxed},
                                           VerifyParam{"ed25519_simple", true, C::simple}),
                         [](const ::testing::TestParamInfo<VerifyParam>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace ringmail::mta
