// tests/admin-api/ctl_events_test.cc — the event-stream framing ringmailctl
// events reads: records split across chunks at any byte, keep-alive
// comments, CRLF, multi-line data.
#include "admin-api/ctl_events.h"

#include <gtest/gtest.h>

namespace ringmail::admin::ctl {
namespace {

using Events = std::vector<std::string>;

TEST(CtlEvents, OneRecordPerBlankLine) {
  SseParser p;
  EXPECT_EQ(p.feed("data: {\"type\":\"Delivery\"}\n\ndata: {\"type\":\"Bounce\"}\n\n"),
            (Events{R"({"type":"Delivery"})", R"({"type":"Bounce"})"}));
}

TEST(CtlEvents, KeepAliveCommentsAndOtherFieldsAreSkipped) {
  SseParser p;
  EXPECT_EQ(p.feed(": keep-alive\n\n: ping\nevent: record\nid: 7\nretry: 100\ndata: x\n\n"),
            (Events{"x"}));
  EXPECT_EQ(p.feed(":\n\n"), Events{});
}

TEST(CtlEvents, EverySplitPointGivesTheSameRecords) {
  const std::string stream =
      ": hello\r\n\r\ndata: {\"a\":1}\r\n\r\ndata:{\"b\":2}\n\ndata: one\ndata: two\r\r";
  const Events expected = {R"({"a":1})", R"({"b":2})", "one\ntwo"};
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    Events got = p.feed(stream.substr(0, cut));
    Events rest = p.feed(stream.substr(cut));
    got.insert(got.end(), rest.begin(), rest.end());
    EXPECT_EQ(got, expected) << "cut at " << cut;
  }
  SseParser bytewise;
  Events got;
  for (char c : stream) {
    Events some = bytewise.feed(std::string(1, c));
    got.insert(got.end(), some.begin(), some.end());
  }
  EXPECT_EQ(got, expected);
}

TEST(CtlEvents, AnUnfinishedRecordWaits) {
  SseParser p;
  EXPECT_EQ(p.feed("data: {\"a\":"), Events{});
  EXPECT_EQ(p.feed("1}\n"), Events{});
  EXPECT_EQ(p.feed("\n"), (Events{R"({"a":1})"}));
}

TEST(CtlEvents, AnOverlongLineDropsItsRecordOnly) {
  SseParser p;
  std::string huge = "data: " + std::string(SseParser::kMaxLine + 10, 'x');
  EXPECT_EQ(p.feed(huge.substr(0, 1000)), Events{});
  EXPECT_EQ(p.feed(huge.substr(1000)), Events{});
  EXPECT_EQ(p.feed("\n\ndata: ok\n\n"), (Events{"ok"}));
}

}  // namespace
}  // namespace ringmail::admin::ctl
