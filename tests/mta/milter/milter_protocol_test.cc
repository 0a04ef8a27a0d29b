// Milter codec and MilterSession against scripted milter replies.
#include "mta/milter/milter_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ringmail::mta {
namespace {

std::string packet(char command, std::string_view data = {}) {
  std::string out;
  append_milter_packet(out, command, data);
  return out;
}

std::string u32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string strings(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto p : parts) {
    out.append(p);
    out.push_back('\0');
  }
  return out;
}

std::string optneg(uint32_t actions, uint32_t protocol, std::string extra = {}) {
  return packet('O', u32(6) + u32(actions) + u32(protocol) + extra);
}

// Everything the session wants to write, decoded, and marked as written.
std::vector<MilterPacket> drain(MilterSession& session) {
  MilterPacketReader reader;
  reader.feed(session.output());
  session.consume_output(session.output().size());
  std::vector<MilterPacket> out;
  MilterPacket p;
  while (reader.next(p) == MilterPacketReader::Status::packet) out.push_back(p);
  EXPECT_EQ(reader.buffered(), 0u);
  return out;
}

std::string commands(const std::vector<MilterPacket>& packets) {
  std::string out;
  for (const auto& p : packets) out.push_back(p.command);
  return out;
}

MilterMessage sample_message() {
  MilterMessage m;
  m.client_ip = "192.0.2.1";
  m.client_family = '4';
  m.client_port = 4321;
  m.client_hostname = "client.example";
  m.helo = "client.example";
  m.sender = "alice@example.test";
  m.mail_args = {"BODY=8BITMIME"};
  m.recipients = {{"bob@example.net", {"NOTIFY=NEVER"}}, {"carol@example.net", {}}};
  m.headers = {{"From", " alice@example.test"}, {"Subject", " hello\r\n\tworld"}};
  m.body = "line one\r\nline two\r\n";
  m.macros.hostname = "mx.example.test";
  m.macros.daemon_name = "submission";
  m.macros.client_addr = "192.0.2.1";
  m.macros.queue_id = "0123456789abcdef0123";
  m.macros.auth_authen = "alice";
  return m;
}

// Answers every awaited event with `reply` until end of message, returning
// the commands the session sent (macros excluded).
std::string run_to_eom(MilterSession& session, char reply = 'c') {
  std::string sent;
  while (session.stage() != MilterStage::eom && !session.finished()) {
    for (const auto& p : drain(session)) {
      if (p.command != 'D') sent.push_back(p.command);
    }
    if (session.stage() == MilterStage::eom) break;
    session.receive(packet(reply));
  }
  for (const auto& p : drain(session)) {
    if (p.command != 'D') sent.push_back(p.command);
  }
  return sent;
}

TEST(MilterCodec, RoundTripsPacketsFedByteByByte) {
  std::string stream =
      packet('c') + packet('h', strings({"X-A", "b"})) + packet('b', std::string(70000, 'x'));
  MilterPacketReader reader;
  std::vector<MilterPacket> got;
  for (char c : stream) {
    reader.feed(std::string_view(&c, 1));
    MilterPacket p;
    while (reader.next(p) == MilterPacketReader::Status::packet) got.push_back(p);
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].command, 'c');
  EXPECT_EQ(got[0].data, "");
  EXPECT_EQ(got[1].data, std::string("X-A\0b\0", 6));
  EXPECT_EQ(got[2].data.size(), 70000u);
  EXPECT_EQ(packet('c'), std::string("\0\0\0\1c", 5));
}

TEST(MilterCodec, RejectsMalformedFraming) {
  MilterPacketReader zero;
  zero.feed(std::string("\0\0\0\0", 4));
  MilterPacket p;
  EXPECT_EQ(zero.next(p), MilterPacketReader::Status::error);

  MilterPacketReader huge;
  huge.feed(u32(64u * 1024 * 1024 + 1) + "c");
  EXPECT_EQ(huge.next(p), MilterPacketReader::Status::error);
  EXPECT_NE(huge.error().find("64 MiB"), std::string::npos);

  MilterPacketReader truncated;
  truncated.feed(u32(10) + "h");
  EXPECT_EQ(truncated.next(p), MilterPacketReader::Status::need_more);

  EXPECT_FALSE(split_milter_strings(std::string("a\0b", 3)).has_value());
  EXPECT_EQ(split_milter_strings(std::string("a\0\0", 3))->size(), 2u);
  EXPECT_FALSE(read_milter_u32("abc", 0).has_value());
  EXPECT_FALSE(read_milter_u32("abcd", 1).has_value());
}

TEST(MilterSession, NegotiatesThenSendsEveryEventInOrder) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  auto first = drain(session);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].command, 'O');
  EXPECT_EQ(first[0].data, u32(6) + u32(milter::kAllActions) + u32(milter::kOfferedProtocol));
  EXPECT_EQ(milter::kOfferedProtocol & milter::kRcptRejected, 0u);

  session.receive(optneg(milter::kActAddHeaders, 0));
  auto connect = drain(session);
  ASSERT_EQ(commands(connect), "DC");
  EXPECT_EQ(connect[0].data,
            std::string("C") + strings({"j", "mx.example.test", "{daemon_name}", "submission",
                                        "{client_addr}", "192.0.2.1"}));
  EXPECT_EQ(connect[1].data, strings({"client.example"}) + "4" + std::string("\x10\xe1", 2) +
                                 strings({"192.0.2.1"}));

  session.receive(packet('c'));
  EXPECT_EQ(drain(session)[0].data, strings({"client.example"}));  // HELO, no macros
  session.receive(packet('c'));
  auto mail = drain(session);
  ASSERT_EQ(commands(mail), "DM");
  EXPECT_EQ(mail[0].data,
            std::string("M") + strings({"i", "0123456789abcdef0123", "{auth_authen}", "alice",
                                        "{mail_addr}", "alice@example.test"}));
  EXPECT_EQ(mail[1].data, strings({"<alice@example.test>", "BODY=8BITMIME"}));
  session.receive(packet('c'));
  auto rcpt = drain(session);
  ASSERT_EQ(commands(rcpt), "DR");
  EXPECT_EQ(rcpt[0].data, std::string("R") + strings({"{rcpt_addr}", "bob@example.net"}));
  EXPECT_EQ(rcpt[1].data, strings({"<bob@example.net>", "NOTIFY=NEVER"}));
  session.receive(packet('c'));
  EXPECT_EQ(commands(drain(session)), "DR");
  session.receive(packet('c'));
  EXPECT_EQ(commands(drain(session)), "DT");
  session.receive(packet('c'));
  auto from = drain(session);
  EXPECT_EQ(from[0].data, strings({"From", "alice@example.test"}));
  session.receive(packet('c'));
  // Leading blanks stripped, CRLF folding sent as LF, as sendmail does.
  EXPECT_EQ(drain(session)[0].data, strings({"Subject", "hello\n\tworld"}));
  session.receive(packet('c'));
  EXPECT_EQ(commands(drain(session)), "DN");
  session.receive(packet('c'));
  auto body = drain(session);
  ASSERT_EQ(commands(body), "B");
  EXPECT_EQ(body[0].data, "line one\r\nline two\r\n");
  session.receive(packet('c'));
  EXPECT_EQ(commands(drain(session)), "DE");
  EXPECT_EQ(session.stage(), MilterStage::eom);
  EXPECT_FALSE(session.finished());
  session.receive(packet('c'));
  EXPECT_TRUE(session.finished());
  EXPECT_FALSE(session.failed());
  EXPECT_EQ(session.verdict().action, MilterAction::proceed);
  EXPECT_EQ(commands(drain(session)), "Q");
}

TEST(MilterSession, SkipsStepsTheMilterDeclinedAndDoesNotWaitForNoReplySteps) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  drain(session);
  session.receive(
      optneg(0, milter::kNoHelo | milter::kNoBody | milter::kNoData | milter::kNoConnect));
  EXPECT_EQ(run_to_eom(session), "MRRLLNE");

  MilterSession no_reply(m);
  drain(no_reply);
  no_reply.receive(optneg(0, milter::kNoReplyConnect | milter::kNoReplyHelo | milter::kNoReplyMail |
                                 milter::kNoReplyRcpt | milter::kNoReplyHeader |
                                 milter::kNoReplyData | milter::kNoReplyEndOfHeaders |
                                 milter::kNoReplyBody));
  auto all = drain(no_reply);
  EXPECT_EQ(commands(all), "DCHDMDRDRDTLLDNBDE");
  EXPECT_EQ(no_reply.stage(), MilterStage::eom);

  MilterSession leading_space(m);
  drain(leading_space);
  leading_space.receive(optneg(0, milter::kNoReplyHeader | milter::kHeaderLeadingSpace |
                                      milter::kNoConnect | milter::kNoHelo | milter::kNoMail |
                                      milter::kNoRcpt | milter::kNoData));
  auto headers = drain(leading_space);
  ASSERT_EQ(commands(headers), "LLDN");
  EXPECT_EQ(headers[1].data, strings({"Subject", " hello\n\tworld"}));
}

TEST(MilterSession, RefusesProtocolFlagsAndActionsNotOffered) {
  MilterMessage m = sample_message();
  MilterSession flags(m);
  flags.receive(optneg(0, milter::kRcptRejected));
  EXPECT_TRUE(flags.failed());
  MilterSession actions(m);
  actions.receive(optneg(0x200, 0));
  EXPECT_TRUE(actions.failed());
  MilterSession version(m);
  version.receive(packet('O', u32(7) + u32(0) + u32(0)));
  EXPECT_TRUE(version.failed());
  MilterSession short_reply(m);
  short_reply.receive(packet('O', u32(6)));
  EXPECT_TRUE(short_reply.failed());
  MilterSession symlist_without_action(m);
  symlist_without_action.receive(optneg(0, 0, u32(0) + strings({"j"})));
  EXPECT_TRUE(symlist_without_action.failed());
}

TEST(MilterSession, MacroListsRestrictWhatIsSent) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  drain(session);
  session.receive(optneg(milter::kActSetSymList, 0,
                         u32(0) + strings({"{client_addr} j"}) + u32(2) + strings({"i"})));
  auto connect = drain(session);
  EXPECT_EQ(connect[0].data,
            std::string("C") + strings({"j", "mx.example.test", "{client_addr}", "192.0.2.1"}));
  session.receive(packet('c'));
  drain(session);
  session.receive(packet('c'));
  auto mail = drain(session);
  EXPECT_EQ(mail[0].data, std::string("M") + strings({"i", "0123456789abcdef0123"}));
}

TEST(MilterSession, CollectsModificationsAtEndOfMessage) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  drain(session);
  session.receive(optneg(milter::kAllActions & ~milter::kActSetSymList, 0));
  run_to_eom(session);
  session.receive(packet('p') + packet('h', strings({"X-Added", "yes"})) +
                  packet('i', u32(0) + strings({"X-First", "one\ntwo"})) +
                  packet('m', u32(2) + strings({"Received", ""})) +
                  packet('+', strings({"<new@example.net>"})) +
                  packet('2', strings({"<par@example.net>", "NOTIFY=NEVER"})) +
                  packet('-', strings({"<bob@example.net>"})) + packet('b', "new ") +
                  packet('b', "body\r\n") + packet('e', strings({"<>"})) +
                  packet('q', strings({"suspicious"})) + packet('a'));
  ASSERT_TRUE(session.finished());
  ASSERT_FALSE(session.failed()) << session.failure();
  const MilterVerdict& v = session.verdict();
  EXPECT_EQ(v.action, MilterAction::quarantine);
  EXPECT_EQ(v.quarantine_reason, "suspicious");
  EXPECT_EQ(v.progress_reports, 1u);
  using Kind = MilterModification::Kind;
  ASSERT_EQ(v.modifications.size(), 8u);
  EXPECT_EQ(v.modifications[0].kind, Kind::add_header);
  EXPECT_EQ(v.modifications[0].value, " yes");  // sendmail's ": " separator
  EXPECT_EQ(v.modifications[1].kind, Kind::insert_header);
  EXPECT_EQ(v.modifications[1].index, 0u);
  EXPECT_EQ(v.modifications[2].kind, Kind::change_header);
  EXPECT_EQ(v.modifications[2].index, 2u);
  EXPECT_EQ(v.modifications[2].value, "");
  EXPECT_EQ(v.modifications[3].value, "new@example.net");
  EXPECT_EQ(v.modifications[4].args, "NOTIFY=NEVER");
  EXPECT_EQ(v.modifications[5].kind, Kind::delete_recipient);
  EXPECT_EQ(v.modifications[6].kind, Kind::replace_body);
  EXPECT_EQ(v.modifications[6].value, "new body\r\n");
  EXPECT_EQ(v.modifications[7].kind, Kind::change_sender);
  EXPECT_EQ(v.modifications[7].value, "");
}

TEST(MilterSession, ModificationsNeedTheirActionAndEndOfMessage) {
  MilterMessage m = sample_message();
  MilterSession unrequested(m);
  drain(unrequested);
  unrequested.receive(optneg(milter::kActAddHeaders, 0));
  run_to_eom(unrequested);
  unrequested.receive(packet('b', "evil"));
  EXPECT_TRUE(unrequested.failed());
  EXPECT_NE(unrequested.failure().find("not negotiated"), std::string::npos);

  MilterSession early(m);
  drain(early);
  early.receive(optneg(milter::kActAddHeaders, 0));
  early.receive(packet('h', strings({"X-A", "b"})));
  EXPECT_TRUE(early.failed());

  MilterSession bad_name(m);
  drain(bad_name);
  bad_name.receive(optneg(milter::kActAddHeaders, 0));
  run_to_eom(bad_name);
  bad_name.receive(packet('h', strings({"X-A:\r\nBcc", "x"})));
  EXPECT_TRUE(bad_name.failed());
}

TEST(MilterSession, RejectAtEnvelopeAbortsAndQuits) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  drain(session);
  session.receive(optneg(0, 0));
  drain(session);
  session.receive(packet('c'));  // connect
  drain(session);
  session.receive(packet('c'));  // helo
  drain(session);
  session.receive(packet('r'));  // mail
  ASSERT_TRUE(session.finished());
  EXPECT_EQ(session.verdict().action, MilterAction::reject);
  EXPECT_EQ(session.verdict().reply, "550 5.7.1 Command rejected");
  EXPECT_EQ(commands(drain(session)), "AQ");

  MilterSession tempfail(m);
  drain(tempfail);
  tempfail.receive(optneg(0, 0));
  drain(tempfail);
  tempfail.receive(packet('t'));  // connect: no transaction yet
  EXPECT_EQ(tempfail.verdict().action, MilterAction::tempfail);
  EXPECT_EQ(tempfail.verdict().reply, "451 4.7.1 Service unavailable - try again later");
  EXPECT_EQ(commands(drain(tempfail)), "Q");
}

TEST(MilterSession, ReplyCodesAndDiscardEndTheMessage) {
  MilterMessage m = sample_message();
  MilterSession session(m);
  drain(session);
  session.receive(optneg(milter::kActAddHeaders, 0));
  run_to_eom(session);
  session.receive(packet('h', strings({"X-A", "b"})) +
                  packet('y', strings({"554 5.7.1 no thanks"})));
  EXPECT_EQ(session.verdict().action, MilterAction::replycode);
  EXPECT_EQ(session.verdict().reply, "554 5.7.1 no thanks");
  EXPECT_TRUE(session.verdict().modifications.empty());

  MilterSession bad_code(m);
  drain(bad_code);
  bad_code.receive(optneg(0, 0));
  bad_code.receive(packet('y', strings({"250 ok"})));
  EXPECT_TRUE(bad_code.failed());

  MilterSession discard(m);
  drain(discard);
  discard.receive(optneg(0, 0));
  run_to_eom(discard);
  discard.receive(packet('d'));
  EXPECT_EQ(discard.verdict().action, MilterAction::discard);
}

TEST(MilterSession, RecipientRefusalsDropRecipientsUntilNoneIsLeft) {
  MilterMessage m = sample_message();
  MilterSession one(m);
  drain(one);
  one.receive(optneg(0, milter::kNoConnect | milter::kNoHelo | milter::kNoMail));
  drain(one);
  one.receive(packet('y', strings({"550 5.1.1 unknown"})));  // bob
  EXPECT_EQ(commands(drain(one)), "DR");
  one.receive(packet('c'));  // carol
  run_to_eom(one);
  one.receive(packet('c'));
  ASSERT_FALSE(one.failed());
  EXPECT_EQ(one.verdict().action, MilterAction::proceed);
  ASSERT_EQ(one.verdict().rejected_recipients.size(), 1u);
  EXPECT_EQ(one.verdict().rejected_recipients[0].address, "bob@example.net");
  EXPECT_EQ(one.verdict().rejected_recipients[0].reply, "550 5.1.1 unknown");

  MilterSession all(m);
  drain(all);
  all.receive(optneg(0, milter::kNoConnect | milter::kNoHelo | milter::kNoMail));
  drain(all);
  all.receive(packet('r'));
  drain(all);
  all.receive(packet('t'));
  ASSERT_TRUE(all.finished());
  EXPECT_EQ(all.verdict().action, MilterAction::tempfail);
  EXPECT_EQ(all.verdict().reply, "451 4.7.1 Service unavailable - try again later");
  EXPECT_EQ(commands(drain(all)), "AQ");
}

TEST(MilterSession, BodyGoesInChunksOfAtMost65535AndSkipJumpsToEndOfMessage) {
  MilterMessage m = sample_message();
  std::string body(150000, 'a');
  m.body = body;
  MilterSession session(m);
  drain(session);
  session.receive(optneg(0, milter::kNoReplyBody | milter::kNoReplyEndOfHeaders |
                                milter::kNoHeaders | milter::kNoConnect | milter::kNoHelo |
                                milter::kNoMail | milter::kNoRcpt | milter::kNoData));
  auto packets = drain(session);
  ASSERT_EQ(commands(packets), "DNBBBDE");
  EXPECT_EQ(packets[2].data.size(), 65535u);
  EXPECT_EQ(packets[3].data.size(), 65535u);
  EXPECT_EQ(packets[4].data.size(), 150000u - 2 * 65535u);

  MilterSession skip(m);
  drain(skip);
  skip.receive(optneg(0, milter::kNoHeaders | milter::kNoConnect | milter::kNoHelo |
                             milter::kNoMail | milter::kNoRcpt | milter::kNoData |
                             milter::kNoEndOfHeaders));
  EXPECT_EQ(commands(drain(skip)), "B");
  skip.receive(packet('s'));
  EXPECT_EQ(commands(drain(skip)), "DE");
}

TEST(MilterSession, GarbageAndEarlyCloseAreFailuresNotCrashes) {
  MilterMessage m = sample_message();
  MilterSession garbage(m);
  garbage.receive("HTTP/1.1 400 Bad Request\r\n\r\n");
  EXPECT_TRUE(garbage.failed());

  MilterSession unknown(m);
  unknown.receive(optneg(0, 0));
  unknown.receive(packet('Z'));
  EXPECT_TRUE(unknown.failed());

  MilterSession closed(m);
  closed.receive(optneg(0, 0));
  closed.connection_closed();
  EXPECT_TRUE(closed.failed());
  EXPECT_NE(closed.failure().find("connect"), std::string::npos);

  // Truncated fields inside well-framed packets.
  for (const std::string& bad :
       {packet('i', "ab"), packet('m', u32(1) + "X"), packet('h', strings({"only"})),
        packet('q', "no-nul"), packet('+', "")}) {
    MilterSession s(m);
    drain(s);
    s.receive(optneg(milter::kAllActions, 0));
    run_to_eom(s);
    s.receive(bad);
    EXPECT_TRUE(s.failed()) << bad;
  }
}

}  // namespace
}  // namespace ringmail::mta
