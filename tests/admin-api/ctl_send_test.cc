// tests/admin-api/ctl_send_test.cc — ringmailctl send: a file as it is (the
// raw form) or a message the daemon builds (the built form), every bad
// usage as its exit-2 message, and the line it prints.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "admin-api/ctl_args.h"
#include "admin-api/ctl_format.h"

namespace ringmail::admin::ctl {
namespace {

using nlohmann::json;

Command parsed(const std::vector<std::string>& args) {
  ParseResult r = parse_command_line(args);
  EXPECT_TRUE(r.command) << r.usage_error;
  return r.command ? *r.command : Command{};
}

TEST(CtlSend, AFileIsSentAsItIs) {
  const Command c = parsed({"send", "--from", "app@example.test", "--to", "a@example.net",
                            "--to=b@example.net", "--campaign", "spring", "message.eml"});
  EXPECT_EQ(c.request.method, "POST");
  EXPECT_EQ(c.request.path(), "/api/v1/messages");
  EXPECT_EQ(c.output, Output::queued);
  EXPECT_EQ(c.content_file, "message.eml");
  ASSERT_TRUE(c.request.body);
  // "content" is the file's, added by main().
  EXPECT_EQ(c.request.body->dump(),
            R"({"envelope_sender":"app@example.test","recipients":["a@example.net",)"
            R"("b@example.net"],"campaign":"spring"})");
  EXPECT_EQ(parsed({"send", "--from", "a@x.test", "--to", "b@x.test", "-"}).content_file, "-");
}

TEST(CtlSend, FieldsMakeABuiltMessage) {
  const Command c = parsed({"--json",     "send",
                            "--from",     "App <app@example.test>",
                            "--to",       "a@example.net",
                            "--cc",       "c@example.net",
                            "--bcc",      "d@example.net",
                            "--bcc",      "e@example.net",
                            "--reply-to", "r@example.test",
                            "--subject",  "Grüße",
                            "--text",     "hello",
                            "--html",     "<p>hello</p>",
                            "--tenant",   "t1"});
  EXPECT_TRUE(c.json);
  EXPECT_TRUE(c.content_file.empty());
  ASSERT_TRUE(c.request.body);
  EXPECT_EQ(json::parse(c.request.body->dump()), json::parse(R"({
      "from": "App <app@example.test>", "to": ["a@example.net"], "cc": ["c@example.net"],
      "bcc": ["d@example.net", "e@example.net"], "reply_to": "r@example.test",
      "subject": "Grüße", "text": "hello", "html": "<p>hello</p>", "tenant": "t1"})"));
  // Without --subject the subject is empty, not missing.
  const Command html =
      parsed({"send", "--from", "a@x.test", "--bcc", "b@x.test", "--html", "<p>x</p>"});
  EXPECT_EQ((*html.request.body)["subject"], "");
  EXPECT_FALSE(html.request.body->contains("to"));
}

TEST(CtlSend, BadUsageSaysWhat) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{"send", "--to", "a@x.test", "m.eml"}, "send needs --from ADDRESS"},
      {{"send", "--from", "a@x.test", "m.eml"}, "send needs --to ADDRESS"},
      {{"send", "--from", "a@x.test", "--to", "b@x.test"}, "send takes one FILE"},
      {{"send", "--from", "a@x.test", "--to", "b@x.test", "one", "two"}, "send takes one FILE"},
      {{"send", "--from", "a@x.test", "--to", "b@x.test", "--cc", "c@x.test", "m.eml"},
       "send FILE: every recipient is a --to"},
      {{"send", "--from", "a@x.test", "--to", "b@x.test", "--subject", "s", "m.eml"},
       "send: give a FILE, or --subject, --text and --html; not both"},
      {{"send", "--from", "a@x.test", "--to", "b@x.test", "--subject", "s"},
       "send needs --text TEXT or --html HTML"},
      {{"send", "--from", "a@x.test", "--subject", "s", "--text", "t"}, "send needs --to ADDRESS"},
      {{"send", "--from", "a@x.test", "--from", "b@x.test", "--to", "c@x.test", "m.eml"},
       "send: --from given twice"},
      {{"send", "--from", "a@x.test", "--to", "c@x.test", "--colour", "red", "m.eml"},
       "send: unknown option --colour"},
  };
  for (const Case& c : cases) {
    ParseResult r = parse_command_line(c.args);
    EXPECT_FALSE(r.command) << c.error;
    EXPECT_TRUE(r.usage_error.starts_with(c.error)) << r.usage_error;
  }
}

TEST(CtlSend, ItPrintsTheQueueIdAndTheCount) {
  EXPECT_EQ(format_human(Output::queued,
                         json::parse(R"({"id": "0123456789abcdef0123", "recipients": 2})")),
            "queued as 0123456789abcdef0123 (2 recipients)\n");
  EXPECT_EQ(format_human(Output::queued, json::parse(R"({"id": "x", "recipients": 1})")),
            "queued as x (1 recipient)\n");
}

}  // namespace
}  // namespace ringmail::admin::ctl
