// Tests for mta/tls_context: a real OpenSSL client (memory BIOs, the test
// moves the bytes) against the server TlsSession, and the client TlsSession
// against the server TlsSession and a plain OpenSSL server, with a
// certificate made at test time. What is checked is what a peer sees:
// completed handshakes, verified certificates, the SNI name, application
// bytes, alerts and close_notify.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "mta/smtp/tls_context.h"

namespace ringmail::mta {
namespace {

namespace fs = std::filesystem;

EVP_PKEY* make_key() { return EVP_EC_gen("P-256"); }

X509* make_certificate(EVP_PKEY* key, const char* common_name) {
  X509* cert = X509_new();
  X509_set_version(cert, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  return cert;
}

void write_pem(const fs::path& path, X509* cert, EVP_PKEY* key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  ASSERT_NE(bio, nullptr);
  if (cert) PEM_write_bio_X509(bio, cert);
  if (key) PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  BIO_free(bio);
}

// An OpenSSL client whose network is two memory BIOs.
class Client {
 public:
  explicit Client(const fs::path& trusted_cert, int max_version = 0,
                  SSL_SESSION* resume = nullptr) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (max_version) {
      SSL_CTX_set_min_proto_version(ctx_, 0);
      SSL_CTX_set_max_proto_version(ctx_, max_version);
      if (max_version < TLS1_2_VERSION) {
        // OpenSSL 3 refuses TLS < 1.2 above security level 0; lower it so
        // that the client really sends an old ClientHello.
        SSL_CTX_set_security_level(ctx_, 0);
        SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
      }
    }
    SSL_CTX_load_verify_locations(ctx_, trusted_cert.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    SSL_set1_host(ssl_, "localhost");
    if (resume) SSL_set_session(ssl_, resume);
    SSL_set_connect_state(ssl_);
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
  }
  SSL* ssl() { return ssl_; }
  std::string take() {
    std::string s(BIO_ctrl_pending(out_), '\0');
    if (!s.empty()) BIO_read(out_, s.data(), static_cast<int>(s.size()));
    return s;
  }
  void give(std::string_view bytes) {
    if (!bytes.empty()) BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }
  // Reads all the application data available; sets *closed on close_notify.
  std::string read_available(bool* closed = nullptr) {
    std::string text;
    char buf[7001];  // odd size on purpose
    for (;;) {
      size_t got = 0;
      int rc = SSL_read_ex(ssl_, buf, sizeof buf, &got);
      if (rc == 1) {
        text.append(buf, got);
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (closed) *closed = err == SSL_ERROR_ZERO_RETURN;
      ERR_clear_error();
      return text;
    }
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

// A plain OpenSSL server on a given SSL_CTX, whose network is two memory
// BIOs; `max_version` caps its protocol for this connection only.
class RawServer {
 public:
  explicit RawServer(SSL_CTX* ctx, int max_version = 0) {
    ssl_ = SSL_new(ctx);
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(in_, -1);
    SSL_set_bio(ssl_, in_, out_);
    if (max_version) SSL_set_max_proto_version(ssl_, max_version);
    SSL_set_accept_state(ssl_);
  }
  ~RawServer() { SSL_free(ssl_); }
  SSL* ssl() { return ssl_; }
  std::string take() {
    std::string s(BIO_ctrl_pending(out_), '\0');
    if (!s.empty()) BIO_read(out_, s.data(), static_cast<int>(s.size()));
    return s;
  }
  void give(std::string_view bytes) {
    if (!bytes.empty()) BIO_write(in_, bytes.data(), static_cast<int>(bytes.size()));
  }

 private:
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ringmail-tls-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    EVP_PKEY* key = make_key();
    X509* cert = make_certificate(key, "localhost");
    write_pem(cert_path(), cert, nullptr);
    write_pem(key_path(), nullptr, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    std::string error;
    context_ = TlsContext::load_server(cert_path(), key_path(), &error);
    ASSERT_NE(context_, nullptr) << error;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path cert_path() const { return dir_ / "cert.pem"; }
  fs::path key_path() const { return dir_ / "key.pem"; }

  // Moves bytes both ways until both sides finish or one fails. Client
  // bytes reach the server in `piece`-sized feeds. Returns true when both
  // handshakes completed.
  static bool handshake(Client& client, TlsSession& server, TlsStatus* server_status,
                        size_t piece = SIZE_MAX) {
    *server_status = TlsStatus::ok;
    for (int round = 0; round < 20; ++round) {
      int rc = SSL_do_handshake(client.ssl());
      bool client_failed = rc != 1 && SSL_get_error(client.ssl(), rc) != SSL_ERROR_WANT_READ;
      ERR_clear_error();
      std::string to_server = client.take();
      std::string plain;
      for (size_t off = 0; off < to_server.size() && *server_status == TlsStatus::ok;
           off += piece) {
        *server_status = server.feed(std::string_view(to_server).substr(off, piece), plain);
      }
      EXPECT_TRUE(plain.empty());
      client.give(server.take_output());
      if (rc == 1 && server.handshake_done()) return true;
      if (client_failed || *server_status != TlsStatus::ok) return false;
    }
    return false;
  }

  // Moves bytes between two TlsSessions, `piece` bytes per feed, until
  // neither has anything to send or one stops being ok. Plaintext that
  // arrives is appended to the strings.
  struct PumpResult {
    TlsStatus client = TlsStatus::ok;
    TlsStatus server = TlsStatus::ok;
  };
  static PumpResult pump(TlsSession& client, TlsSession& server, std::string& client_plain,
                         std::string& server_plain, size_t piece = SIZE_MAX) {
    PumpResult result;
    for (int round = 0; round < 50; ++round) {
      bool moved = false;
      if (client.has_output()) {
        moved = true;
        std::string wire = client.take_output();
        for (size_t off = 0; off < wire.size() && result.server == TlsStatus::ok; off += piece) {
          result.server = server.feed(std::string_view(wire).substr(off, piece), server_plain);
        }
      }
      if (server.has_output()) {
        moved = true;
        std::string wire = server.take_output();
        for (size_t off = 0; off < wire.size() && result.client == TlsStatus::ok; off += piece) {
          result.client = client.feed(std::string_view(wire).substr(off, piece), client_plain);
        }
      }
      if (!moved || result.client != TlsStatus::ok || result.server != TlsStatus::ok) break;
    }
    return result;
  }

  std::shared_ptr<TlsContext> client_context() {
    std::string error;
    auto context = TlsContext::create_client(&error);
    EXPECT_NE(context, nullptr) << error;
    return context;
  }

  // Handshakes a client TlsSession with a RawServer on the server context;
  // returns the SNI name the server saw ("<none>" if none), or "<failed>".
  std::string sni_seen(std::string_view server_name) {
    auto client_ctx = client_context();
    TlsSession client(*client_ctx, TlsSession::ClientMode{}, server_name);
    RawServer server(context_->native());
    std::string plain;
    for (int round = 0; round < 20; ++round) {
      server.give(client.take_output());
      int rc = SSL_do_handshake(server.ssl());
      ERR_clear_error();
      if (client.feed(server.take(), plain) != TlsStatus::ok) return "<failed>";
      if (rc == 1 && client.handshake_done()) {
        const char* name = SSL_get_servername(server.ssl(), TLSEXT_NAMETYPE_host_name);
        return name ? name : "<none>";
      }
    }
    return "<failed>";
  }

  fs::path dir_;
  std::shared_ptr<TlsContext> context_;
};

TEST_F(TlsSessionTest, HandshakeCompletesWithVerifiedCertificate) {
  Client client(cert_path());
  TlsSession server(*context_);
  EXPECT_FALSE(server.handshake_done());
  EXPECT_EQ(server.description(), "");
  TlsStatus status;
  ASSERT_TRUE(handshake(client, server, &status)) << server.error();
  EXPECT_EQ(SSL_get_verify_result(client.ssl()), X509_V_OK);
  EXPECT_EQ(server.description(), std::string("TLSv1.3 ") + SSL_get_cipher_name(client.ssl()));
  EXPECT_TRUE(server.description().starts_with("TLSv1.3 TLS_")) << server.description();
  EXPECT_EQ(server.error(), "");
}

TEST_F(TlsSessionTest, Tls12ClientGetsForwardSecretAead) {
  Client client(cert_path(), TLS1_2_VERSION);
  TlsSession server(*context_);
  TlsStatus status;
  ASSERT_TRUE(handshake(client, server, &status)) << server.error();
  EXPECT_TRUE(server.description().starts_with("TLSv1.2 ECDHE-ECDSA-")) << server.description();
  std::string cipher = SSL_get_cipher_name(client.ssl());
  EXPECT_TRUE(cipher.find("GCM") != std::string::npos ||
              cipher.find("CHACHA20") != std::string::npos)
      << cipher;
}

TEST_F(TlsSessionTest, HandshakeBytesMayArriveOneAtATime) {
  Client client(cert_path());
  TlsSession server(*context_);
  TlsStatus status;
  ASSERT_TRUE(handshake(client, server, &status, 1)) << server.error();
}

TEST_F(TlsSessionTest, ApplicationDataBothWaysInOddPieces) {
  Client client(cert_path());
  TlsSession server(*context_);
  TlsStatus status;
  ASSERT_TRUE(handshake(client, server, &status)) << server.error();

  std::string payload(1 << 20, '\0');
  std::mt19937 rng(7);
  for (char& c : payload) c = static_cast<char>(rng());

  // Client -> server: writes of odd sizes, ciphertext fed in 977-byte pieces.
  const size_t sizes[] = {1, 7, 4093, 16385, 65537, 333};
  std::string received;
  size_t off = 0;
  for (int i = 0; off < payload.size(); ++i) {
    size_t n = std::min(sizes[i % 6], payload.size() - off);
    size_t written = 0;
    ASSERT_EQ(SSL_write_ex(client.ssl(), payload.data() + off, n, &written), 1);
    off += written;
    std::string wire = client.take();
    for (size_t w = 0; w < wire.size(); w += 977) {
      ASSERT_EQ(server.feed(std::string_view(wire).substr(w, 977), received), TlsStatus::ok)
          << server.error();
    }
  }
  EXPECT_EQ(received.size(), payload.size());
  EXPECT_TRUE(received == payload);

  // Server -> client: the same, written through write() in odd pieces.
  std::string echoed;
  off = 0;
  for (int i = 0; off < payload.size(); ++i) {
    size_t n = std::min(sizes[(i + 3) % 6], payload.size() - off);
    ASSERT_EQ(server.write(std::string_view(payload).substr(off, n)), TlsStatus::ok);
    off += n;
    std::string wire = server.take_output();
    for (size_t w = 0; w < wire.size(); w += 1361) {
      client.give(std::string_view(wire).substr(w, 1361));
      echoed += client.read_available();
    }
  }
  EXPECT_FALSE(server.has_output());
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload);
}

TEST_F(TlsSessionTest, CloseNotifyBothWays) {
  {
    Client client(cert_path());
    TlsSession server(*context_);
    TlsStatus status;
    ASSERT_TRUE(handshake(client, server, &status));
    ASSERT_EQ(server.write("221 2.0.0 Bye\r\n"), TlsStatus::ok);
    server.shutdown();
    server.shutdown();  // idempotent
    client.give(server.take_output());
    bool closed = false;
    EXPECT_EQ(client.read_available(&closed), "221 2.0.0 Bye\r\n");
    EXPECT_TRUE(closed);
  }
  {
    Client client(cert_path());
    TlsSession server(*context_);
    TlsStatus status;
    ASSERT_TRUE(handshake(client, server, &status));
    client.read_available();  // session tickets
    SSL_write(client.ssl(), "QUIT\r\n", 6);
    SSL_shutdown(client.ssl());
    std::string plain;
    EXPECT_EQ(server.feed(client.take(), plain), TlsStatus::closed);
    EXPECT_EQ(plain, "QUIT\r\n");
    // The server answers with its own close_notify.
    client.give(server.take_output());
    EXPECT_EQ(SSL_shutdown(client.ssl()), 1);
    EXPECT_EQ(server.feed("more", plain), TlsStatus::closed);
    EXPECT_EQ(server.write("x"), TlsStatus::closed);
  }
}

TEST_F(TlsSessionTest, SessionTicketResumesSession) {
  SSL_SESSION* saved = nullptr;
  {
    Client client(cert_path());
    TlsSession server(*context_);
    TlsStatus status;
    ASSERT_TRUE(handshake(client, server, &status));
    client.read_available();  // TLS 1.3 tickets arrive after the handshake
    saved = SSL_get1_session(client.ssl());
    ASSERT_NE(saved, nullptr);
    EXPECT_EQ(SSL_SESSION_is_resumable(saved), 1);
    SSL_shutdown(client.ssl());  // an unclean end would make the session unusable
  }
  Client client(cert_path(), 0, saved);
  TlsSession server(*context_);
  TlsStatus status;
  ASSERT_TRUE(handshake(client, server, &status)) << server.error();
  EXPECT_EQ(SSL_session_reused(client.ssl()), 1);
  SSL_SESSION_free(saved);
}

TEST_F(TlsSessionTest, OldProtocolClientFailsCleanly) {
  for (int version : {TLS1_1_VERSION, TLS1_VERSION}) {
    Client client(cert_path(), version);
    TlsSession server(*context_);
    SSL_do_handshake(client.ssl());
    ERR_clear_error();
    std::string hello = client.take();
    ASSERT_FALSE(hello.empty()) << "client sent no ClientHello";
    std::string plain;
    EXPECT_EQ(server.feed(hello, plain), TlsStatus::failed);
    EXPECT_FALSE(server.handshake_done());
    EXPECT_NE(server.error().find("unsupported protocol"), std::string::npos) << server.error();
    std::string alert = server.take_output();
    ASSERT_FALSE(alert.empty());
    EXPECT_EQ(alert[0], '\x15');  // an alert record tells the client why
    EXPECT_EQ(server.feed(hello, plain), TlsStatus::failed);  // stays failed
    EXPECT_EQ(server.write("x"), TlsStatus::failed);
    server.shutdown();
  }
}

TEST_F(TlsSessionTest, GarbageFails) {
  {
    TlsSession server(*context_);
    std::string plain;
    EXPECT_EQ(server.feed("GET / HTTP/1.1\r\nHost: mail.example\r\n\r\n", plain),
              TlsStatus::failed);
    EXPECT_NE(server.error().find("http request"), std::string::npos) << server.error();
    EXPECT_TRUE(plain.empty());
  }
  {
    TlsSession server(*context_);
    std::string plain;
    EXPECT_EQ(server.feed("EHLO client.example\r\n", plain), TlsStatus::failed);
  }
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 20; ++trial) {
    std::string noise(4096, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    TlsSession server(*context_);
    std::string plain;
    EXPECT_EQ(server.feed(noise, plain), TlsStatus::failed) << "trial " << trial;
    EXPECT_FALSE(server.error().empty());
    server.take_output();
  }
}

TEST_F(TlsSessionTest, TruncatedHandshakeWaitsAndCanBeDropped) {
  Client client(cert_path());
  SSL_do_handshake(client.ssl());
  std::string hello = client.take();
  ASSERT_GT(hello.size(), 10u);
  {
    TlsSession server(*context_);
    std::string plain;
    EXPECT_EQ(server.feed(std::string_view(hello).substr(0, hello.size() / 2), plain),
              TlsStatus::ok);
    EXPECT_FALSE(server.handshake_done());
    EXPECT_FALSE(server.has_output());
    EXPECT_EQ(server.write("too early"), TlsStatus::failed);
    server.shutdown();  // before the handshake: no-op, no crash
  }                     // dropped mid-handshake
  {
    // The full ClientHello gets the server's flight, then the client vanishes.
    TlsSession server(*context_);
    std::string plain;
    EXPECT_EQ(server.feed(hello, plain), TlsStatus::ok);
    EXPECT_TRUE(server.has_output());
    EXPECT_FALSE(server.handshake_done());
  }
}

TEST_F(TlsSessionTest, LoadServerReportsMissingAndMismatchedFiles) {
  std::string error;
  EXPECT_EQ(TlsContext::load_server(dir_ / "nope.pem", key_path(), &error), nullptr);
  EXPECT_NE(error.find("cannot read certificate"), std::string::npos) << error;
  EXPECT_NE(error.find("nope.pem"), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;

  error.clear();
  EXPECT_EQ(TlsContext::load_server(cert_path(), dir_ / "nokey.pem", &error), nullptr);
  EXPECT_NE(error.find("cannot read private key"), std::string::npos) << error;

  EVP_PKEY* other = make_key();
  write_pem(dir_ / "other-key.pem", nullptr, other);
  EVP_PKEY_free(other);
  error.clear();
  EXPECT_EQ(TlsContext::load_server(cert_path(), dir_ / "other-key.pem", &error), nullptr);
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;

  std::ofstream(dir_ / "junk.pem") << "not a certificate\n";
  error.clear();
  EXPECT_EQ(TlsContext::load_server(dir_ / "junk.pem", key_path(), &error), nullptr);
  EXPECT_NE(error.find("cannot load certificate"), std::string::npos) << error;
  error.clear();
  EXPECT_EQ(TlsContext::load_server(cert_path(), dir_ / "junk.pem", &error), nullptr);
  EXPECT_NE(error.find("cannot load private key"), std::string::npos) << error;

  // Certificate and key in one file load too.
  std::ofstream both(dir_ / "both.pem");
  both << std::ifstream(cert_path()).rdbuf() << std::ifstream(key_path()).rdbuf();
  both.close();
  EXPECT_NE(TlsContext::load_server(dir_ / "both.pem", dir_ / "both.pem", &error), nullptr)
      << error;
}

TEST_F(TlsSessionTest, ClientSessionHandshakesWithServerSession) {
  auto client_ctx = client_context();
  ASSERT_NE(client_ctx, nullptr);
  EXPECT_TRUE(client_ctx->is_client());
  EXPECT_FALSE(context_->is_client());
  TlsSession client(*client_ctx, TlsSession::ClientMode{}, "localhost");
  TlsSession server(*context_);
  // The constructor started the handshake: a ClientHello is ready to send.
  ASSERT_TRUE(client.has_output()) << client.error();
  EXPECT_FALSE(client.handshake_done());
  EXPECT_EQ(client.description(), "");
  EXPECT_EQ(client.write("too early"), TlsStatus::failed);

  std::string client_plain, server_plain;
  PumpResult result = pump(client, server, client_plain, server_plain);
  ASSERT_EQ(result.client, TlsStatus::ok) << client.error();
  ASSERT_EQ(result.server, TlsStatus::ok) << server.error();
  ASSERT_TRUE(client.handshake_done());
  ASSERT_TRUE(server.handshake_done());
  EXPECT_TRUE(client_plain.empty());
  EXPECT_TRUE(server_plain.empty());
  EXPECT_TRUE(client.description().starts_with("TLSv1.3 TLS_")) << client.description();
  EXPECT_EQ(client.description(), server.description());
  EXPECT_EQ(server.error(), "");

  // SMTP after STARTTLS, both ways.
  ASSERT_EQ(client.write("EHLO relay.example\r\n"), TlsStatus::ok);
  pump(client, server, client_plain, server_plain);
  EXPECT_EQ(server_plain, "EHLO relay.example\r\n");
  ASSERT_EQ(server.write("250-mx.example\r\n250 8BITMIME\r\n"), TlsStatus::ok);
  pump(client, server, client_plain, server_plain);
  EXPECT_EQ(client_plain, "250-mx.example\r\n250 8BITMIME\r\n");

  // A message body larger than a record, fed in odd pieces, both ways.
  std::string payload(200000, '\0');
  std::mt19937 rng(99);
  for (char& c : payload) c = static_cast<char>(rng());
  client_plain.clear();
  server_plain.clear();
  ASSERT_EQ(client.write(payload), TlsStatus::ok);
  ASSERT_EQ(server.write(payload), TlsStatus::ok);
  result = pump(client, server, client_plain, server_plain, 1361);
  ASSERT_EQ(result.client, TlsStatus::ok) << client.error();
  ASSERT_EQ(result.server, TlsStatus::ok) << server.error();
  EXPECT_TRUE(server_plain == payload);
  EXPECT_TRUE(client_plain == payload);

  // QUIT, then close_notify from the client; the server answers with its own.
  client.shutdown();
  result = pump(client, server, client_plain, server_plain);
  EXPECT_EQ(result.server, TlsStatus::closed);
  EXPECT_EQ(result.client, TlsStatus::closed);
}

TEST_F(TlsSessionTest, ClientHandshakeBytesMayArriveOneAtATime) {
  auto client_ctx = client_context();
  TlsSession client(*client_ctx, TlsSession::ClientMode{}, "localhost");
  TlsSession server(*context_);
  std::string client_plain, server_plain;
  PumpResult result = pump(client, server, client_plain, server_plain, 1);
  ASSERT_EQ(result.client, TlsStatus::ok) << client.error();
  ASSERT_EQ(result.server, TlsStatus::ok) << server.error();
  EXPECT_TRUE(client.handshake_done());
  EXPECT_TRUE(server.handshake_done());
}

TEST_F(TlsSessionTest, ClientAcceptsAnyCertificateAndSpeaksTls12) {
  // Opportunistic TLS: the self-signed "localhost" certificate is fine for a
  // client that asked for another name.
  auto client_ctx = client_context();
  TlsSession client(*client_ctx, TlsSession::ClientMode{}, "mx.elsewhere.test");
  RawServer server(context_->native(), TLS1_2_VERSION);
  std::string plain;
  for (int round = 0; round < 20 && !client.handshake_done(); ++round) {
    server.give(client.take_output());
    SSL_do_handshake(server.ssl());
    ERR_clear_error();
    ASSERT_EQ(client.feed(server.take(), plain), TlsStatus::ok) << client.error();
  }
  ASSERT_TRUE(client.handshake_done()) << client.error();
  EXPECT_TRUE(client.description().starts_with("TLSv1.2 ECDHE-")) << client.description();
  server.give(client.take_output());  // the client's Finished
  EXPECT_EQ(SSL_do_handshake(server.ssl()), 1);
  ASSERT_EQ(client.write("MAIL FROM:<>\r\n"), TlsStatus::ok);
  server.give(client.take_output());
  char buf[64];
  size_t got = 0;
  ASSERT_EQ(SSL_read_ex(server.ssl(), buf, sizeof buf, &got), 1);
  EXPECT_EQ(std::string(buf, got), "MAIL FROM:<>\r\n");
}

TEST_F(TlsSessionTest, ClientSendsSniForHostNamesOnly) {
  EXPECT_EQ(sni_seen("localhost"), "localhost");
  EXPECT_EQ(sni_seen("mx1.Example.TEST."), "mx1.Example.TEST");
  EXPECT_EQ(sni_seen("192.0.2.25"), "<none>");
  EXPECT_EQ(sni_seen("[192.0.2.25]"), "<none>");
  EXPECT_EQ(sni_seen("2001:db8::25"), "<none>");
  EXPECT_EQ(sni_seen("[IPv6:2001:db8::25]"), "<none>");
  EXPECT_EQ(sni_seen(""), "<none>");
}

TEST_F(TlsSessionTest, ClientAgainstGarbageFails) {
  auto client_ctx = client_context();
  {
    // A server that does not speak TLS after all answers in plain text.
    TlsSession client(*client_ctx, TlsSession::ClientMode{}, "mx.example.test");
    client.take_output();
    std::string plain;
    EXPECT_EQ(client.feed("454 4.7.0 TLS not available due to local problem\r\n", plain),
              TlsStatus::failed);
    EXPECT_FALSE(client.handshake_done());
    EXPECT_FALSE(client.error().empty());
    EXPECT_TRUE(plain.empty());
    EXPECT_EQ(client.description(), "");
    EXPECT_EQ(client.feed("more", plain), TlsStatus::failed);  // stays failed
    EXPECT_EQ(client.write("x"), TlsStatus::failed);
    client.shutdown();
  }
  std::mt19937 rng(4242);
  for (int trial = 0; trial < 20; ++trial) {
    TlsSession client(*client_ctx, TlsSession::ClientMode{}, "mx.example.test");
    client.take_output();
    std::string noise(4096, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    std::string plain;
    EXPECT_EQ(client.feed(noise, plain), TlsStatus::failed) << "trial " << trial;
    EXPECT_FALSE(client.error().empty());
    EXPECT_FALSE(client.handshake_done());
  }
}

TEST_F(TlsSessionTest, ClientModeNeedsAClientContext) {
  TlsSession client(*context_, TlsSession::ClientMode{}, "localhost");
  EXPECT_FALSE(client.has_output());
  EXPECT_FALSE(client.error().empty());
  std::string plain;
  EXPECT_EQ(client.feed("anything", plain), TlsStatus::failed);
  EXPECT_EQ(client.write("x"), TlsStatus::failed);
  client.shutdown();
  EXPECT_EQ(client.take_output(), "");
}

}  // namespace
}  // namespace ringmail::mta
