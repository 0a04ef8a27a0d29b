// tests/conf/config_api_keys_test.cc — admin.api_keys_file as an operator
// writes it: good entries become (tenant, SHA-256) pairs, every mistake is
// "KEYS_FILE:LINE: api_keys[i].key: problem", and the config names the file
// at its own line when the file has problems.
#include "conf/config_api_keys.h"

#include <gtest/gtest.h>

#include <string>

#include "conf/config.h"
#include "tests/conf/conf_test_support.h"

namespace ringmail::conf {
namespace {

using testing::has_problem;
using testing::TempDir;

// Some SHA-256 in hex (what `printf %s KEY | sha256sum` prints).
constexpr const char* kHash = "b5a6c0d2a5a8f2d6d8a1a0b1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1";

constexpr const char* kMinimal =
    "hostname: mx.example.test\n"      // 1
    "listeners:\n"                     // 2
    "  - name: relay\n"                // 3
    "    address: 127.0.0.1:2525\n"    // 4
    "    mode: relay\n"                // 5
    "relay_networks: [127.0.0.0/8]\n"  // 6
    "spool:\n"                         // 7
    "  path: spool\n";                 // 8

class ApiKeysFileTest : public ::testing::Test {
 protected:
  ApiKeysFile load(std::string_view yaml) {
    file_ = dir_.write("api-keys.yaml", yaml);
    return load_api_keys_file(file_);
  }
  std::string at(int line, std::string_view key_path) const {
    return file_.string() + ":" + std::to_string(line) + ": " + std::string(key_path) + ": ";
  }

  TempDir dir_;
  std::filesystem::path file_;
};

TEST_F(ApiKeysFileTest, EntriesBecomeTenantAndDigest) {
  ApiKeysFile f = load(std::string("# keys\n- {tenant: app1, sha256: ") + kHash +
                       "}\n"
                       "- tenant: app2\n"
                       "  sha256: " +
                       "B5A6C0D2A5A8F2D6D8A1A0B1E2D3F4A5B6C7D8E9F0A1B2C3D4E5F6A7B8C9D0E2\n"
                       "- {tenant: app1, sha256: " +
                       std::string(64, '0') + "}\n");
  ASSERT_TRUE(f.errors.empty()) << testing::describe(f.errors);
  ASSERT_EQ(f.keys.size(), 3u);
  EXPECT_EQ(f.keys[0].tenant, "app1");
  EXPECT_EQ(f.keys[0].line, 2);
  EXPECT_EQ(f.keys[0].sha256[0], 0xb5);
  EXPECT_EQ(f.keys[0].sha256[31], 0xe1);
  // Upper-case hex is the same digest; a tenant may have several keys.
  EXPECT_EQ(f.keys[1].tenant, "app2");
  EXPECT_EQ(f.keys[1].line, 3);
  EXPECT_EQ(f.keys[1].sha256[31], 0xe2);
  EXPECT_EQ(f.keys[2].tenant, "app1");
  EXPECT_EQ(f.keys[2].sha256[5], 0);
}

TEST_F(ApiKeysFileTest, EveryMistakeIsNamedWithItsLine) {
  ApiKeysFile f = load(std::string("- {tenant: app1, sha256: ") + kHash +
                       "}\n"                                     // 1
                       "- {tenant: app2, sha256: s3cret-key}\n"  // 2
                       "- {tenant: \"a b\", sha256: " +
                       kHash +
                       "}\n"  // 3
                       "- {sha256: " +
                       std::string(64, 'a') +
                       "}\n"                 // 4
                       "- {tenant: app3}\n"  // 5
                       "- {tenant: app4, sha256: " +
                       kHash +
                       "}\n"  // 6
                       "- {tenant: app5, key: x, sha256: " +
                       std::string(63, 'a') +
                       "}\n"                  // 7
                       "- just a string\n");  // 8
  EXPECT_TRUE(has_problem(f.errors, at(2, "api_keys[1].sha256") + "not a SHA-256 in hex"));
  EXPECT_TRUE(has_problem(f.errors, at(3, "api_keys[2].tenant") + "tenant names must be"));
  EXPECT_TRUE(has_problem(f.errors, at(4, "api_keys[3].tenant") + "required"));
  EXPECT_TRUE(has_problem(f.errors, at(5, "api_keys[4].sha256") + "required"));
  // The same key for two tenants could not say whose mail it is.
  EXPECT_TRUE(has_problem(f.errors, at(6, "api_keys[5].sha256") +
                                        "the same key hash is given at line 1 (tenant app1)"));
  EXPECT_TRUE(has_problem(f.errors, at(7, "api_keys[6].key") + "unknown key"));
  EXPECT_TRUE(has_problem(f.errors, at(7, "api_keys[6].sha256") + "not a SHA-256"));
  EXPECT_TRUE(has_problem(f.errors, at(8, "api_keys[7]")));
  ASSERT_EQ(f.keys.size(), 1u);  // only the good first entry
  EXPECT_EQ(f.keys[0].tenant, "app1");
}

TEST_F(ApiKeysFileTest, NotAListOrNotYaml) {
  ApiKeysFile map = load("tenant: app1\n");
  EXPECT_TRUE(has_problem(map.errors, file_.string() + ":1: expected a list"));
  EXPECT_TRUE(has_problem(load("- {tenant: [\n").errors, file_.string() + ":"));
  EXPECT_TRUE(load("").errors.empty());  // an empty file: no keys
  EXPECT_TRUE(has_problem(load_api_keys_file(dir_ / "missing.yaml").errors,
                          (dir_ / "missing.yaml").string() + ": cannot read the API keys file"));
}

TEST_F(ApiKeysFileTest, TheConfigReadsAndChecksTheFile) {
  dir_.write("keys.yaml", std::string("- {tenant: app1, sha256: ") + kHash + "}\n");
  const auto config_file = dir_.write("ringmail.yaml", std::string(kMinimal) +
                                                           "admin:\n"                        // 9
                                                           "  api_keys_file: keys.yaml\n");  // 10
  LoadResult good = load_config(config_file);
  ASSERT_NE(good.config, nullptr) << testing::describe(good.errors);
  EXPECT_EQ(good.config->admin.api_keys_file, dir_ / "keys.yaml");
  ASSERT_EQ(good.config->admin.api_keys.size(), 1u);
  EXPECT_EQ(good.config->admin.api_keys[0].tenant, "app1");

  // A bad file fails the whole config, at the config's line and the file's.
  const auto keys = dir_.write("keys.yaml", "- {tenant: app1, sha256: nothex}\n");
  LoadResult bad = load_config(config_file);
  EXPECT_EQ(bad.config, nullptr);
  EXPECT_TRUE(has_problem(bad.errors, config_file.string() +
                                          ":10: admin.api_keys_file: "
                                          "the API keys file " +
                                          keys.string() + " has 1 problem(s)"));
  EXPECT_TRUE(has_problem(bad.errors, keys.string() + ":1: api_keys[0].sha256: not a SHA-256"));

  const auto missing =
      dir_.write("missing.yaml", std::string(kMinimal) + "admin: {api_keys_file: none.yaml}\n");
  EXPECT_TRUE(
      has_problem(load_config(missing).errors, missing.string() + ":9: admin.api_keys_file: "));

  // An empty file is allowed with a warning: only the admin token injects.
  dir_.write("keys.yaml", "[]\n");
  LoadResult empty = load_config(config_file);
  ASSERT_NE(empty.config, nullptr);
  EXPECT_TRUE(has_problem(empty.warnings, config_file.string() + ":10: admin.api_keys_file: "));
}

}  // namespace
}  // namespace ringmail::conf
