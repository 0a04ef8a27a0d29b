// tests/conf/conf_test_support.h — temp directories, generated keys and
// certificates, and error assertions for the conf/ tests. Keys are made at
// test time with OpenSSL; no private key is committed.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "tests/support/temp_dir.h"

namespace ringmail::conf::testing {

using TempDir = ringmail::test_support::TempDir;

inline EVP_PKEY* make_rsa_key(unsigned bits) { return EVP_RSA_gen(bits); }
inline EVP_PKEY* make_ed25519_key() { return EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); }

inline void write_private_key(EVP_PKEY* key, const std::filesystem::path& file) {
  std::filesystem::create_directories(file.parent_path());
  FILE* out = std::fopen(file.c_str(), "w");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(PEM_write_PrivateKey(out, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  std::fclose(out);
}

// A self-signed certificate for CN=localhost over key, valid for a day.
inline void write_self_signed_certificate(EVP_PKEY* key, const std::filesystem::path& file) {
  std::filesystem::create_directories(file.parent_path());
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  FILE* out = std::fopen(file.c_str(), "w");
  ASSERT_NE(out, nullptr);
  PEM_write_X509(out, cert);
  std::fclose(out);
  X509_free(cert);
}

// Passes when one error (or warning) printed as the user sees it starts with
// prefix; on failure lists what was reported.
inline ::testing::AssertionResult has_problem(const std::vector<ConfigError>& problems,
                                              std::string_view prefix) {
  std::string all;
  for (const auto& problem : problems) {
    std::string text = problem.to_string();
    if (text.starts_with(prefix)) return ::testing::AssertionSuccess();
    all += "\n  " + text;
  }
  return ::testing::AssertionFailure() << "no problem starts with \"" << prefix
                                       << "\"; reported:" << (all.empty() ? " (none)" : all);
}

inline std::string describe(const std::vector<ConfigError>& problems) {
  std::string all;
  for (const auto& problem : problems) all += "\n  " + problem.to_string();
  return all;
}

}  // namespace ringmail::conf::testing
