// bench/dkim_sign_bench.cc — DkimSigner::sign() on a 4 KiB message, RSA-2048
// and Ed25519, relaxed and simple, next to the bare OpenSSL signature of
// one SHA-256 digest with the same key (what `openssl speed rsa2048 ed25519`
// measures), so that the overhead of canonicalization, hashing and
// formatting is visible in one run:
//   build/release/dkim_sign_bench
//   openssl speed -seconds 3 rsa2048 ed25519
// Keys are generated at start into a temporary directory and removed.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "mta/dkim/dkim_signer.h"

namespace {

using ringmail::mta::DkimCanonicalization;
using ringmail::mta::DkimSigner;
using ringmail::mta::DkimSignerOptions;

struct BenchKeys {
  std::filesystem::path dir;
  std::filesystem::path rsa, ed25519;
  EVP_PKEY* rsa_key = nullptr;
  EVP_PKEY* ed_key = nullptr;

  BenchKeys() {
    char tmpl[] = "/tmp/ringmail-dkim-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    rsa_key = EVP_RSA_gen(2048);
    ed_key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    rsa = write(rsa_key, "rsa.pem");
    ed25519 = write(ed_key, "ed25519.pem");
  }
  ~BenchKeys() {
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(ed_key);
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path write(EVP_PKEY* key, const char* name) {
    std::filesystem::path path = dir / name;
    FILE* f = fopen(path.c_str(), "w");
    if (f == nullptr || PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      fprintf(stderr, "cannot write %s\n", path.c_str());
      abort();
    }
    fclose(f);
    return path;
  }
};

BenchKeys& keys() {
  static BenchKeys k;
  return k;
}

std::string message_4k() {
  std::string m =
      "Received: from app1.example.test (app1.example.test [192.0.2.1])\r\n"
      "\tby mta.example.test with ESMTPS; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "From: \"Example Shop\" <news@example.test>\r\n"
      "To: customer@example.org\r\n"
      "Subject: Your weekly summary from Example Shop\r\n"
      "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
      "Message-ID: <20240101000000.12345@example.test>\r\n"
      "List-Unsubscribe: <https://example.test/u/12345>\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "\r\n";
  int line = 0;
  while (m.size() < 4096 - 80) {
    m += "Line " + std::to_string(line++) +
         " of the body, with  some   spacing and trailing blanks   \r\n";
  }
  m.append(4096 - m.size() - 2, 'x');
  m += "\r\n";
  return m;
}

void BM_DkimSign(benchmark::State& state) {
  const bool ed25519 = state.range(0) == 1;
  const auto canon =
      state.range(1) == 1 ? DkimCanonicalization::simple : DkimCanonicalization::relaxed;
  ringmail::conf::DkimKey config;
  config.domain = "example.test";
  config.selector = "bench";
  config.private_key = ed25519 ? keys().ed25519 : keys().rsa;
  DkimSignerOptions options;
  options.header_canonicalization = canon;
  options.body_canonicalization = canon;
  std::string error;
  auto signer = DkimSigner::load(config, options, &error, nullptr);
  if (!signer) {
    state.SkipWithError(error.c_str());
    return;
  }
  const std::string message = message_4k();
  int64_t now = 1700000000;
  for (auto _ : state) {
    std::string field = signer->sign(message, now++);
    benchmark::DoNotOptimize(field);
  }
  state.SetLabel(std::string(signer->algorithm_name()) + " " +
                 std::string(ringmail::mta::canonicalization_name(canon)) + " " +
                 std::to_string(message.size()) + " B");
  state.counters["signs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DkimSign)
    ->ArgNames({"ed25519", "simple"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Unit(benchmark::kMicrosecond);

// The floor: one signature of a 32-byte digest, as `openssl speed` does it.
void BM_OpenSslSignDigest(benchmark::State& state) {
  const bool ed25519 = state.range(0) == 1;
  EVP_PKEY* key = ed25519 ? keys().ed_key : keys().rsa_key;
  unsigned char digest[32] = {1, 2, 3};
  unsigned char sig[512];
  for (auto _ : state) {
    size_t size = sizeof(sig);
    if (ed25519) {
      EVP_MD_CTX* md = EVP_MD_CTX_new();
      EVP_DigestSignInit(md, nullptr, nullptr, nullptr, key);
      EVP_DigestSign(md, sig, &size, digest, sizeof(digest));
      EVP_MD_CTX_free(md);
    } else {
      EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
      EVP_PKEY_sign_init(ctx);
      EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING);
      EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256());
      EVP_PKEY_sign(ctx, sig, &size, digest, sizeof(digest));
      EVP_PKEY_CTX_free(ctx);
    }
    benchmark::DoNotOptimize(sig);
  }
  state.SetLabel(ed25519 ? "ed25519" : "rsa2048");
  state.counters["signs/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_OpenSslSignDigest)
    ->ArgNames({"ed25519"})
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
