// tests/admin-api/ctl_args_test.cc — ringmailctl's command line: each verb
// to the request it sends, and every bad usage to its exit-2 message.
#include "admin-api/ctl_args.h"

#include <gtest/gtest.h>

#include <sstream>

namespace ringmail::admin::ctl {
namespace {

using nlohmann::ordered_json;

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// method, path, query as "k=v&k=v" (unescaped) and the body, in one string.
std::string describe(const ApiRequest& r) {
  std::string out = r.method + " " + r.path();
  char separator = '?';
  for (const auto& [k, v] : r.query) {
    out += separator + k + "=" + v;
    separator = '&';
  }
  if (r.body) out += " " + r.body->dump();
  return out;
}

TEST(CtlArgs, EveryVerbMapsToItsRoute) {
  struct Case {
    std::string line;
    std::string request;
    Output output;
  };
  const Case cases[] = {
      {"status", "GET /api/v1/stats", Output::stats},
      {"queue", "GET /api/v1/queue", Output::queue},
      {"queue --site gmail --domain Example.COM --campaign c1 --tenant t1",
       "GET /api/v1/queue?site=gmail&domain=Example.COM&campaign=c1&tenant=t1", Output::queue},
      {"queue --site=gmail", "GET /api/v1/queue?site=gmail", Output::queue},
      {"suspend gmail", R"(POST /api/v1/queue/suspend {"site":"gmail","duration":"1h"})",
       Output::suspended},
      {"suspend gmail 15m", R"(POST /api/v1/queue/suspend {"site":"gmail","duration":"15m"})",
       Output::suspended},
      {"suspend --domain example.com 1h",
       R"(POST /api/v1/queue/suspend {"domain":"example.com","duration":"1h"})", Output::suspended},
      {"suspend example.com 2d --domain",
       R"(POST /api/v1/queue/suspend {"domain":"example.com","duration":"2d"})", Output::suspended},
      {"suspend --domain=example.com",
       R"(POST /api/v1/queue/suspend {"domain":"example.com","duration":"1h"})", Output::suspended},
      {"suspend --site gmail", R"(POST /api/v1/queue/suspend {"site":"gmail","duration":"1h"})",
       Output::suspended},
      {"resume gmail", R"(POST /api/v1/queue/resume {"site":"gmail"})", Output::resumed},
      {"resume --domain example.com", R"(POST /api/v1/queue/resume {"domain":"example.com"})",
       Output::resumed},
      {"bounce --site gmail", R"(POST /api/v1/queue/bounce {"site":"gmail"})", Output::bounced},
      {"bounce --campaign c1 --reason spam",
       R"(POST /api/v1/queue/bounce {"campaign":"c1","reason":"spam"})", Output::bounced},
      {"bounce --reason=gone --tenant t1",
       R"(POST /api/v1/queue/bounce {"tenant":"t1","reason":"gone"})", Output::bounced},
      {"bounce --domain example.com", R"(POST /api/v1/queue/bounce {"domain":"example.com"})",
       Output::bounced},
      {"reload", "POST /api/v1/reload", Output::reloaded},
      {"events", "GET /api/v1/events", Output::events},
      {"events --types Delivery,Bounce", "GET /api/v1/events?types=Delivery,Bounce",
       Output::events},
      {"tail --types Bounce", "GET /api/v1/events?types=Bounce", Output::events},
      {"probe example.com", R"(POST /api/v1/probe {"domain":"example.com"})", Output::pretty},
      {"explain example.com", "GET /api/v1/explain?domain=example.com", Output::explain},
      {"explain example.com --source ip1", "GET /api/v1/explain?domain=example.com&source=ip1",
       Output::explain},
      {"explain --source=ip2 example.com", "GET /api/v1/explain?domain=example.com&source=ip2",
       Output::explain},
      {"message 01HX-abc", "GET /api/v1/messages/01HX-abc", Output::message},
      {"dead", "GET /api/v1/dead", Output::dead_list},
      {"dead list", "GET /api/v1/dead", Output::dead_list},
      {"dead list --tenant t1 --campaign c1 --category InvalidRecipient",
       "GET /api/v1/dead?tenant=t1&campaign=c1&category=InvalidRecipient", Output::dead_list},
      {"dead --category=BadDomain", "GET /api/v1/dead?category=BadDomain", Output::dead_list},
      {"dead show 0190abc", "GET /api/v1/dead/0190abc", Output::message},
      {"dead retry 0190abc", "POST /api/v1/dead/0190abc/retry", Output::dead_retry},
      {"dead delete 0190abc", "DELETE /api/v1/dead/0190abc", Output::dead_delete},
      {"campaigns", "GET /api/v1/campaigns", Output::campaigns},
      {"campaigns --tenant t1", "GET /api/v1/campaigns?tenant=t1", Output::campaigns},
      {"campaign show c1", "GET /api/v1/campaigns/c1", Output::campaign},
      {"campaign pause c1", "POST /api/v1/campaigns/c1/pause", Output::campaign},
      {"campaign resume c1", "POST /api/v1/campaigns/c1/resume", Output::campaign},
      {"campaign cancel c1", "POST /api/v1/campaigns/c1/cancel", Output::campaign},
      {"tenants", "GET /api/v1/tenants", Output::tenants},
      {"tenant show t1", "GET /api/v1/tenants/t1", Output::tenant},
      {"tenant pause t1", "POST /api/v1/tenants/t1/pause", Output::tenant},
      {"warmup", "GET /api/v1/warmup", Output::warmup},
      {"suppressions", "GET /api/v1/suppressions", Output::pretty},
      {"suppressions list --tenant t1 --address a@x",
       "GET /api/v1/suppressions?tenant=t1&address=a@x", Output::pretty},
      {"suppressions add --tenant t1 a@x",
       R"(POST /api/v1/suppressions {"tenant":"t1","address":"a@x"})", Output::pretty},
      {"suppressions add --tenant * a@x b@y --reason asked",
       R"(POST /api/v1/suppressions {"tenant":"*","addresses":["a@x","b@y"],"reason":"asked"})",
       Output::pretty},
      {"suppressions remove --tenant t1 a@x", "DELETE /api/v1/suppressions?tenant=t1&address=a@x",
       Output::pretty},
      {"suppressions import --tenant t1 list.txt",
       R"(POST /api/v1/suppressions {"tenant":"t1","addresses":[]})", Output::pretty},
      {"suppressions export --tenant t1", "GET /api/v1/suppressions?tenant=t1", Output::addresses},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    ParseResult r = parse_command_line(split(c.line));
    ASSERT_TRUE(r.command) << r.usage_error;
    EXPECT_EQ(describe(r.command->request), c.request);
    EXPECT_EQ(r.command->output, c.output);
    EXPECT_EQ(r.command->streaming, c.output == Output::events);
    EXPECT_EQ(r.command->timeout_seconds, c.output == Output::events     ? 0
                                          : r.command->verb == "probe"   ? 90
                                          : r.command->verb == "explain" ? 45
                                                                         : 30);
    EXPECT_FALSE(r.command->json);
    EXPECT_EQ(r.command->config, kDefaultConfig);
  }
}

TEST(CtlArgs, ValuesAreKeptAsTypedForTheHttpLayerToEscape) {
  ParseResult r = parse_command_line({"bounce", "--site", "a b&c", "--reason", "mailbox gone"});
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->request.body->dump(), R"({"site":"a b&c","reason":"mailbox gone"})");
  r = parse_command_line({"message", "id/with/slashes"});
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->request.path_segments,
            (std::vector<std::string>{"api", "v1", "messages", "id/with/slashes"}));
}

TEST(CtlArgs, SuppressionsImportNamesItsFile) {
  ParseResult r = parse_command_line(split("suppressions import --tenant t1 list.txt"));
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->import_file, "list.txt");
}

TEST(CtlArgs, GlobalOptionsBeforeOrAfterTheVerb) {
  ParseResult r = parse_command_line(split("-c /etc/rm.yaml --json queue --site gmail"));
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->config, "/etc/rm.yaml");
  EXPECT_TRUE(r.command->config_given);
  EXPECT_TRUE(r.command->json);
  EXPECT_EQ(r.command->verb, "queue");

  r = parse_command_line(split("status --json --config=x.yaml"));
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_TRUE(r.command->json);
  EXPECT_EQ(r.command->config, "x.yaml");

  r = parse_command_line(split("--admin http://[::1]:8025 --token-file tok status"));
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->admin_url, "http://[::1]:8025");
  EXPECT_EQ(r.command->token_file, "tok");

  r = parse_command_line(split("--token-file other.token status"));  // token override
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->token_file, "other.token");
  EXPECT_TRUE(r.command->admin_url.empty());
}

TEST(CtlArgs, DoubleDashEndsOptions) {
  ParseResult r = parse_command_line({"bounce", "--site", "s", "--reason", "x"});
  ASSERT_TRUE(r.command);
  r = parse_command_line({"resume", "--", "-odd-site-"});
  ASSERT_TRUE(r.command) << r.usage_error;
  EXPECT_EQ(r.command->request.body->dump(), R"({"site":"-odd-site-"})");
}

TEST(CtlArgs, HelpNeedsNoVerb) {
  for (const char* line : {"--help", "-h", "status --help"}) {
    ParseResult r = parse_command_line(split(line));
    ASSERT_TRUE(r.command) << line << ": " << r.usage_error;
    EXPECT_TRUE(r.command->help);
  }
  EXPECT_NE(usage_text().find("usage: ringmailctl"), std::string::npos);
}

TEST(CtlArgs, BadUsageIsAnErrorThatSaysWhy) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{}, "no verb given"},
      {{"--json"}, "no verb given"},
      {{"frobnicate"}, "unknown verb \"frobnicate\""},
      {{"--frob", "status"}, "unknown option --frob"},
      {{"status", "--site", "x"}, "status: unknown option --site"},
      {{"status", "extra"}, "status takes no argument (got \"extra\")"},
      {{"-c"}, "-c needs a value"},
      {{"queue", "--site"}, "--site needs a value"},
      {{"queue", "--site", "a", "--site", "b"}, "queue: --site given twice"},
      {{"queue", "gmail"}, "queue takes no argument (got \"gmail\")"},
      {{"suspend"}, "suspend needs a site (or --domain DOMAIN)"},
      {{"suspend", "a", "1h", "x"}, "suspend takes SITE|DOMAIN [DURATION]"},
      {{"suspend", "a", "soon"}, "suspend: \"soon\" is not a duration like 30m, 4h, 2d"},
      {{"suspend", "a", "0s"}, "suspend: \"0s\" is not a duration like 30m, 4h, 2d"},
      {{"suspend", "--site", "--domain", "a"}, "suspend: give --site or --domain, not both"},
      {{"resume"}, "resume takes one SITE (or --domain DOMAIN)"},
      {{"resume", "a", "b"}, "resume takes one SITE (or --domain DOMAIN)"},
      {{"bounce"}, "bounce needs one of --site, --domain, --campaign, --tenant"},
      {{"bounce", "--reason", "x"}, "bounce needs one of --site, --domain, --campaign, --tenant"},
      {{"bounce", "--site", "a", "--domain", "b"},
       "bounce takes one of --site, --domain, --campaign, --tenant"},
      {{"bounce", "gmail"}, "bounce takes no argument (got \"gmail\")"},
      {{"reload", "now"}, "reload takes no argument (got \"now\")"},
      {{"events", "--types"}, "--types needs a value"},
      {{"events", "Bounce"}, "events takes no argument (got \"Bounce\")"},
      {{"tail", "x"}, "tail takes no argument (got \"x\")"},
      {{"probe"}, "probe takes one DOMAIN"},
      {{"explain"}, "explain takes one DOMAIN"},
      {{"message"}, "message takes one message ID"},
      {{"dead", "retry"}, "dead retry takes one message ID"},
      {{"dead", "delete", "a", "b"}, "dead delete takes one message ID"},
      {{"dead", "list", "x"}, "dead list takes no argument"},
      {{"dead", "retry", "a", "--tenant", "t"}, "dead retry takes no --tenant"},
      {{"dead", "purge"}, "dead takes list, show, retry or delete (got \"purge\")"},
      {{"dead", "--site", "x"}, "dead: unknown option --site"},
      {{"campaign"}, "campaign takes show|pause|resume|cancel and a name"},
      {{"campaign", "delete", "c1"}, "campaign takes show|pause|resume|cancel and a name"},
      {{"tenant", "cancel", "t1"}, "tenant takes show|pause|resume and a name"},
      {{"suppressions", "add", "a@x"}, "suppressions add needs --tenant T (\"*\": every tenant)"},
      {{"suppressions", "add", "--tenant", "t"}, "suppressions add needs one or more addresses"},
      {{"suppressions", "remove", "--tenant", "t"}, "suppressions remove takes one address"},
      {{"suppressions", "import", "--tenant", "t"},
       "suppressions import needs a FILE of addresses"},
      {{"suppressions", "purge"},
       "suppressions takes list, add, remove, import or export (got \"purge\")"},
      {{"--admin", "http://h:1", "status"}, "--admin needs --token-file"},
      {{"-c", "f", "--admin", "http://h:1", "--token-file", "t", "status"},
       "-c and --admin exclude each other"},
  };
  for (const Case& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    SCOPED_TRACE(line);
    ParseResult r = parse_command_line(c.args);
    EXPECT_FALSE(r.command);
    EXPECT_EQ(r.usage_error, c.error);
  }
}

}  // namespace
}  // namespace ringmail::admin::ctl
