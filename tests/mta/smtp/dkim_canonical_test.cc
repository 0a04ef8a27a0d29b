// Tests for mta/dkim_canonical: RFC 6376 3.4 canonicalization (the RFC's own
// example and the edge cases of the issue), streaming body hashing at every
// chunk split, header selection (5.4.2) and the From domain.
#include "mta/smtp/dkim_canonical.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

using C = DkimCanonicalization;

std::string canon_header(C c, std::string_view raw) {
  std::string out;
  canonicalize_header(c, raw, &out);
  return out;
}

std::string canon_headers(C c, std::string_view block) {
  std::string out;
  for (const DkimHeaderField& f : split_header_fields(block)) canonicalize_header(c, f.raw, &out);
  return out;
}

TEST(DkimCanonical, Rfc6376Section345ExampleHeaders) {
  const std::string block = "A: X\r\nB : Y\t\r\n\tZ  \r\n";
  EXPECT_EQ(canon_headers(C::relaxed, block), "a:X\r\nb:Y Z\r\n");
  EXPECT_EQ(canon_headers(C::simple, block), block);
}

TEST(DkimCanonical, Rfc6376Section345ExampleBody) {
  const std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  EXPECT_EQ(canonicalize_body(C::relaxed, body), " C\r\nD E\r\n");
  EXPECT_EQ(canonicalize_body(C::simple, body), " C \r\nD \t E\r\n");
}

struct BodyCase {
  const char* name;
  std::string body;
  std::string simple;
  std::string relaxed;
};

TEST(DkimCanonical, BodyEdgeCases) {
  const std::vector<BodyCase> cases = {
      {"empty", "", "\r\n", ""},
      {"only empty lines", "\r\n\r\n\r\n", "\r\n", ""},
      {"trailing empty lines", "text\r\n\r\n\r\n", "text\r\n", "text\r\n"},
      {"empty lines inside kept", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n"},
      {"no final CRLF", "last line", "last line\r\n", "last line\r\n"},
      {"no final CRLF, trailing space", "last  \t", "last  \t\r\n", "last\r\n"},
      {"trailing whitespace", "one   \r\ntwo\t \r\n", "one   \r\ntwo\t \r\n", "one\r\ntwo\r\n"},
      {"whitespace-only lines at end", "a\r\n  \r\n\t\r\n", "a\r\n  \r\n\t\r\n", "a\r\n"},
      {"whitespace-only line inside", "a\r\n \t \r\nb\r\n", "a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n"},
      {"leading whitespace kept as one SP", "\t\t x  y\r\n", "\t\t x  y\r\n", " x y\r\n"},
      {"bare CR and LF are data", "a\rb\nc\r\n", "a\rb\nc\r\n", "a\rb\nc\r\n"},
      {"CR at the very end", "a\r", "a\r\r\n", "a\r\r\n"},
      {"8-bit UTF-8",
       "Gr\xc3\xbc\xc3\x9f"
       "e  \xe4\xbd\xa0\xe5\xa5\xbd \r\n",
       "Gr\xc3\xbc\xc3\x9f"
       "e  \xe4\xbd\xa0\xe5\xa5\xbd \r\n",
       "Gr\xc3\xbc\xc3\x9f"
       "e \xe4\xbd\xa0\xe5\xa5\xbd\r\n"},
      {"dot and From lines", ".\r\nFrom here\r\n", ".\r\nFrom here\r\n", ".\r\nFrom here\r\n"},
  };
  for (const BodyCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(canonicalize_body(C::simple, c.body), c.simple);
    EXPECT_EQ(canonicalize_body(C::relaxed, c.body), c.relaxed);
  }
}

TEST(DkimCanonical, EmptyBodyHashesAreTheWellKnownValues) {
  // SHA-256 of "\r\n" (simple) and of "" (relaxed), as in RFC 8463's and
  // every verifier's test vectors.
  DkimBodyHasher simple(C::simple);
  EXPECT_EQ(simple.finish(), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  DkimBodyHasher relaxed(C::relaxed);
  EXPECT_EQ(relaxed.finish(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(DkimCanonical, HasherIsReusableAfterFinish) {
  DkimBodyHasher hasher(C::relaxed);
  hasher.update("abc \r\n\r\n");
  std::string first = hasher.finish();
  hasher.update("abc \r\n\r\n");
  EXPECT_EQ(hasher.finish(), first);
  DkimBodyHasher moved = std::move(hasher);
  moved.update("abc");
  EXPECT_EQ(moved.finish(), first);  // "abc" and "abc \r\n\r\n" are the same canonical body
}

// The body of a message arrives in arbitrary pieces; no split point, not
// even inside a CRLF or a whitespace run, may change bh=.
const std::string kTrickyBody =
    " lead\t \r\n\r\nmid  dle \t\r\n\r\r\n\tx\r\n \r\n\r\nend \t \r\n\r\n  \r\n\r\n";

TEST(DkimCanonical, EveryTwoChunkSplitGivesTheSameHash) {
  for (C c : {C::simple, C::relaxed}) {
    DkimBodyHasher whole(c);
    whole.update(kTrickyBody);
    const std::string expected = whole.finish();
    for (size_t i = 0; i <= kTrickyBody.size(); ++i) {
      DkimBodyHasher split(c);
      split.update(std::string_view(kTrickyBody).substr(0, i));
      split.update(std::string_view(kTrickyBody).substr(i));
      ASSERT_EQ(split.finish(), expected) << canonicalization_name(c) << " split at " << i;
    }
  }
}

TEST(DkimCanonical, EveryThreeChunkSplitAndByteAtATimeGiveTheSameCanonicalBody) {
  const std::string_view body(kTrickyBody);
  for (C c : {C::simple, C::relaxed}) {
    const std::string expected = canonicalize_body(c, body);
    for (size_t i = 0; i <= body.size(); ++i) {
      for (size_t j = i; j <= body.size(); ++j) {
        std::string canonical;
        DkimBodyHasher hasher(c);
        hasher.set_canonical_copy(&canonical);
        hasher.update(body.substr(0, i));
        hasher.update(body.substr(i, j - i));
        hasher.update(body.substr(j));
        hasher.finish();
        ASSERT_EQ(canonical, expected) << canonicalization_name(c) << " splits " << i << "," << j;
      }
    }
    std::string canonical;
    DkimBodyHasher hasher(c);
    hasher.set_canonical_copy(&canonical);
    for (char ch : body) hasher.update(std::string_view(&ch, 1));
    hasher.finish();
    EXPECT_EQ(canonical, expected);
  }
  EXPECT_EQ(canonicalize_body(C::relaxed, body),
            " lead\r\n\r\nmid dle\r\n\r\r\n x\r\n\r\n\r\nend\r\n");
}

TEST(DkimCanonical, LargeBodyCrossesTheInternalBufferUnchanged) {
  std::string body;
  for (int i = 0; i < 5000; ++i) body += "line " + std::to_string(i) + "   \r\n";
  std::string expected;
  for (int i = 0; i < 5000; ++i) expected += "line " + std::to_string(i) + "\r\n";
  EXPECT_EQ(canonicalize_body(C::relaxed, body), expected);
  EXPECT_EQ(canonicalize_body(C::simple, body), body);
}

TEST(DkimCanonical, RelaxedHeaderEdgeCases) {
  EXPECT_EQ(canon_header(C::relaxed, "SUBJECT:no space\r\n"), "subject:no space\r\n");
  EXPECT_EQ(canon_header(C::relaxed, "To:   a  \t b   \r\n"), "to:a b\r\n");
  EXPECT_EQ(canon_header(C::relaxed, "Subject: one\r\n two\r\n\tthree \r\n"),
            "subject:one two three\r\n");
  EXPECT_EQ(canon_header(C::relaxed, "Subject:\r\n folded at once\r\n"),
            "subject:folded at once\r\n");
  EXPECT_EQ(canon_header(C::relaxed, "Empty:\r\n"), "empty:\r\n");
  EXPECT_EQ(canon_header(C::relaxed,
                         "Subject: Gr\xc3\xbc\xc3\x9f"
                         "e  x\r\n"),
            "subject:Gr\xc3\xbc\xc3\x9f"
            "e x\r\n");
  EXPECT_EQ(canon_header(C::simple, "Subject: no crlf"), "Subject: no crlf\r\n");
}

TEST(DkimCanonical, SplitsMessageAndHeaderFields) {
  DkimMessageParts parts = split_message("A: 1\r\nB: 2\r\n 3\r\n\r\nbody\r\n\r\nmore");
  EXPECT_EQ(parts.header_block, "A: 1\r\nB: 2\r\n 3\r\n");
  EXPECT_EQ(parts.body, "body\r\n\r\nmore");
  EXPECT_EQ(split_message("A: 1\r\n").body, "");
  EXPECT_EQ(split_message("A: 1\r\n\r\n").body, "");
  EXPECT_EQ(split_message("\r\nbody").header_block, "");

  auto fields = split_header_fields("A: 1\r\nSubject : x\r\n\ty\r\nnocolon\r\nLast: z");
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0].name, "A");
  EXPECT_EQ(fields[0].raw, "A: 1\r\n");
  EXPECT_EQ(fields[1].name, "Subject");
  EXPECT_EQ(fields[1].raw, "Subject : x\r\n\ty\r\n");
  EXPECT_EQ(fields[2].name, "");
  EXPECT_EQ(fields[3].raw, "Last: z");
}

TEST(DkimCanonical, SelectsBottomMostInstanceFirstAndNullWhenExhausted) {
  const std::string block =
      "Received: from top\r\nFrom: a@b.test\r\nReceived: from bottom\r\nSubject: s\r\n";
  auto fields = split_header_fields(block);
  auto picked = select_signed_headers(
      fields, {"received", "FROM", "received", "received", "from", "x-absent"});
  ASSERT_EQ(picked.size(), 6u);
  ASSERT_NE(picked[0], nullptr);
  EXPECT_EQ(picked[0]->raw, "Received: from bottom\r\n");
  EXPECT_EQ(picked[1]->raw, "From: a@b.test\r\n");
  EXPECT_EQ(picked[2]->raw, "Received: from top\r\n");
  EXPECT_EQ(picked[3], nullptr);
  EXPECT_EQ(picked[4], nullptr);
  EXPECT_EQ(picked[5], nullptr);
}

TEST(DkimCanonical, FromHeaderDomain) {
  struct Case {
    const char* block;
    std::optional<std::string> domain;
  };
  const std::vector<Case> cases = {
      {"From: a@Example.COM\r\n", "example.com"},
      {"FROM:<a@b.test>\r\n", "b.test"},
      {"Subject: x\r\nfrom: \"Doe, John\" <john@example.org>\r\n", "example.org"},
      {"From: Doe, John <john@unquoted.test>\r\n", "unquoted.test"},
      {"From: \"a@evil.test <x@evil.test>\" <real@good.test>\r\n", "good.test"},
      {"From: (comment <c@evil.test> (nested @evil2.test)) user@good.test\r\n", "good.test"},
      {"From: user@good.test (Comment with @evil.test)\r\n", "good.test"},
      {"From: Very Long Display Name\r\n <user@folded.test>\r\n", "folded.test"},
      {"From: user@\r\n folded-domain.test\r\n", "folded-domain.test"},
      {"From: \"quoted local\"@quoted.test\r\n", "quoted.test"},
      {"From: J\xc3\xb6ran <j\xc3\xb6ran@B\xc3\xbc"
       "cher.example>\r\n",
       "b\xc3\xbc"
       "cher.example"},
      {"From: Team: a@team.test, b@other.test;\r\n", "team.test"},
      {"From: first@one.test, second@two.test\r\n", "one.test"},
      {"From: <@route.test:user@real.test>\r\n", "real.test"},
      {"From: a@first.test\r\nFrom: b@second.test\r\n", "first.test"},
      {"X-From: a@evil.test\r\nFrom-Extra: b@evil.test\r\nTo: c@x.test\r\n", std::nullopt},
      {"From: undisclosed\r\n", std::nullopt},
      {"From: user@\r\n", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.block);
    EXPECT_EQ(from_header_domain(c.block), c.domain);
  }
}

}  // namespace
}  // namespace ringmail::mta
