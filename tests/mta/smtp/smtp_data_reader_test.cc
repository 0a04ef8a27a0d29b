// The DKIM body hashes the DATA/BDAT reader computes while the body
// streams in must equal a fresh hash of the body it stored, whatever the
// framing, the line endings and the way the stream is split.
#include "mta/smtp/smtp_data_reader.h"

#include <gtest/gtest.h>

#include "mta/smtp/dkim_canonical.h"
#include "mta/smtp/smtp_server_session.h"

namespace ringmail::mta {
namespace {

std::string hash_of(std::string_view body, DkimCanonicalization c) {
  DkimBodyHasher hasher(c);
  hasher.update(body);
  return hasher.finish();
}

std::string body_of(const std::string& content) {
  size_t sep = content.find("\r\n\r\n");
  return sep == std::string::npos ? std::string() : content.substr(sep + 4);
}

// Feeds `wire` in pieces of `step` octets (0: all at once).
SmtpDataReader::BodyHashes read(SmtpDataReader& reader, std::string_view wire, size_t step,
                                SmtpDataReader::Framing framing) {
  reader.begin(framing, 1 << 20, true, true);
  if (step == 0) step = wire.size();
  for (size_t pos = 0; pos < wire.size(); pos += step) reader.feed(wire.substr(pos, step));
  if (framing == SmtpDataReader::Framing::chunked) reader.finish_chunked();
  return reader.body_hashes();
}

TEST(SmtpDataReaderBodyHash, StreamedHashesMatchTheStoredBodyForEverySplit) {
  // Dot-stuffing, trailing spaces, empty lines at the end, a bare LF line.
  const std::string wire =
      "From: a@example.test\r\nSubject: x\r\n\r\n..stuffed\r\nline  with \t spaces  \r\n"
      "bare lf line\nlast\r\n\r\n\r\n.\r\n";
  for (size_t step = 0; step <= wire.size(); ++step) {
    SmtpDataReader reader;
    SmtpDataReader::BodyHashes h =
        read(reader, wire, step, SmtpDataReader::Framing::dot_terminated);
    ASSERT_TRUE(reader.finished());
    const std::string body = body_of(reader.content());
    ASSERT_NE(body.find(".stuffed\r\n"), std::string::npos);
    EXPECT_EQ(h.relaxed, hash_of(body, DkimCanonicalization::relaxed)) << "step " << step;
    EXPECT_EQ(h.simple, hash_of(body, DkimCanonicalization::simple)) << "step " << step;
  }
}

TEST(SmtpDataReaderBodyHash, ChunkedBodyWithoutFinalCrlf) {
  SmtpDataReader reader;
  SmtpDataReader::BodyHashes h =
      read(reader, "Subject: b\r\n\r\nno final crlf", 3, SmtpDataReader::Framing::chunked);
  const std::string body = body_of(reader.content());
  EXPECT_EQ(body, "no final crlf\r\n");
  EXPECT_EQ(h.relaxed, hash_of(body, DkimCanonicalization::relaxed));
  EXPECT_EQ(h.simple, hash_of(body, DkimCanonicalization::simple));
}

TEST(SmtpDataReaderBodyHash, NothingWhenThereIsNoBodyOrTheMessageIsTooBig) {
  SmtpDataReader reader;
  SmtpDataReader::BodyHashes none =
      read(reader, "Subject: only headers\r\n.\r\n", 0, SmtpDataReader::Framing::dot_terminated);
  EXPECT_EQ(none.relaxed, "");
  reader.begin(SmtpDataReader::Framing::dot_terminated, 16, true, true);
  reader.feed("Subject: big\r\n\r\n" + std::string(100, 'x') + "\r\n.\r\n");
  ASSERT_TRUE(reader.too_big());
  EXPECT_EQ(reader.body_hashes().relaxed, "");
  // Not asked for: not computed.
  reader.begin(SmtpDataReader::Framing::dot_terminated, 1 << 20);
  reader.feed("Subject: s\r\n\r\nbody\r\n.\r\n");
  EXPECT_EQ(reader.body_hashes().simple, "");
}

// Through the session: the hashes it hands out belong to the body of the
// message it commits, and none are handed out when the header rewrite
// changed what the body is (a message without a header section).
TEST(SmtpDataReaderBodyHash, SessionHandsOutHashesOfTheCommittedBody) {
  SessionSettings settings;
  settings.hostname = "mx.test";
  settings.dkim_hash_relaxed_body = true;
  settings.dkim_hash_simple_body = true;
  ConnectionInfo info;
  info.peer_ip = "127.0.0.1";
  info.relay_network = "127.0.0.0/8";
  SmtpServerSession session(settings, info);
  session.start();
  session.receive("EHLO c\r\n");
  auto transaction = [&](const std::string& data) {
    SessionOutput out =
        session.receive("MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + data);
    EXPECT_TRUE(out.commit);
    session.commit_finished({CommitResult::Status::committed, "", ""});
    return out;
  };
  SessionOutput with_headers = transaction("From: a@example.test\r\n\r\nhello  \r\n\r\n.\r\n");
  const std::string body = body_of(with_headers.commit->content);
  EXPECT_EQ(body, "hello  \r\n\r\n");
  EXPECT_EQ(with_headers.dkim_body_hash_relaxed, hash_of(body, DkimCanonicalization::relaxed));
  EXPECT_EQ(with_headers.dkim_body_hash_simple, hash_of(body, DkimCanonicalization::simple));

  SessionOutput headerless = transaction("not a header line\r\n\r\nrest\r\n.\r\n");
  EXPECT_EQ(headerless.dkim_body_hash_relaxed, "");
  EXPECT_EQ(headerless.dkim_body_hash_simple, "");
}

}  // namespace
}  // namespace ringmail::mta
