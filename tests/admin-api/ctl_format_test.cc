// tests/admin-api/ctl_format_test.cc — what ringmailctl prints: the admin
// URL and token it derives, its tables of stats and queue JSON, event
// lines and error lines, compared as an operator sees them.
#include "admin-api/ctl_format.h"

#include <gtest/gtest.h>

namespace ringmail::admin::ctl {
namespace {

using nlohmann::json;

// Two sites as GET /api/v1/queue and /stats answer them (CONTRACT SITE).
const char* const kSites = R"([
  {"site": "gmail", "source": "ip1", "domains": ["gmail.com", "googlemail.com"],
   "queued": 1234, "deferred": 12, "in_flight": 3, "delivered": 98765, "bounced": 7,
   "suspended_until": "2026-12-02T10:00:00.000Z", "backoff": null},
  {"site": "mx.example.test", "source": "default", "domains": [],
   "queued": 0, "deferred": 0, "in_flight": 0, "delivered": 2, "bounced": 0,
   "suspended_until": null,
   "backoff": {"action": "rate_factor", "until": "2026-12-02T11:00:00.000Z",
               "rule": "421 4.7.0 -> rate 0.5 for 1h", "reply": "421 4.7.0 try later"}}
])";

const char* const kSitesTable =
    "SITE             SOURCE   QUEUED  DEFERRED  IN-FLIGHT  DELIVERED  BOUNCED  "
    "SUSPENDED-UNTIL           DOMAINS\n"
    "gmail            ip1        1234        12          3      98765        7  "
    "2026-12-02T10:00:00.000Z  gmail.com,googlemail.com\n"
    "mx.example.test  default       0         0          0          2        0  -"
    "                         -\n"
    "backoff mx.example.test: rate_factor until 2026-12-02T11:00:00.000Z (rule 421 4.7.0 -> "
    "rate 0.5 for 1h; reply 421 4.7.0 try later)\n";

TEST(CtlFormat, ExplainIsTheDestinationThenOneRowPerLimit) {
  const json body = json::parse(R"({
    "domain": "gmail.com", "site": "alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com",
    "provider": "gmail", "source": "ip1",
    "limits": [
      {"name": "max_connections", "value": 5, "set_by": "shipped provider gmail"},
      {"name": "message_rate", "value": "300/m", "set_by": "policy.shaping[1]"},
      {"name": "tls_required", "value": true, "set_by": "shipped provider gmail"},
      {"name": "until", "value": null, "set_by": "backoff \u001b[31mx"}]})");
  EXPECT_EQ(format_human(Output::explain, body),
            "domain    gmail.com\n"
            "site      alt1.gmail-smtp-in.l.google.com,gmail-smtp-in.l.google.com\n"
            "provider  gmail\n"
            "source    ip1\n"
            "\n"
            "LIMIT            VALUE  SET-BY\n"
            "max_connections  5      shipped provider gmail\n"
            "message_rate     300/m  policy.shaping[1]\n"
            "tls_required     true   shipped provider gmail\n"
            "until            -      backoff ?[31mx\n");
  // No provider, no limits: still the four lines and the header.
  const std::string bare = format_human(Output::explain, json::parse(R"({"domain": "a.test",
    "site": "127.0.0.2:25", "provider": null, "source": "default", "limits": []})"));
  EXPECT_NE(bare.find("provider  -\n"), std::string::npos) << bare;
  EXPECT_NE(bare.find("LIMIT  VALUE  SET-BY\n"), std::string::npos) << bare;
}

TEST(CtlFormat, WarmupIsOneRowPerSourceWithAllAndUnlimitedForNulls) {
  const json body = json::parse(R"({"sources": [
    {"source": "ip1", "address": "192.0.2.10", "pool": "default", "provider": null,
     "started": "2026-12-01", "day": 3, "cap": 500, "window": "1h", "sent": 42,
     "state": "warming"},
    {"source": "ip2", "address": "192.0.2.11", "pool": null, "provider": "gmail",
     "started": null, "day": 1, "cap": null, "window": null, "sent": 0, "state": "warm"}]})");
  EXPECT_EQ(format_human(Output::warmup, body),
            "SOURCE  ADDRESS     POOL     PROVIDER  STARTED     DAY        CAP  WINDOW  SENT  "
            "STATE\n"
            "ip1     192.0.2.10  default  all       2026-12-01    3        500  1h        42  "
            "warming\n"
            "ip2     192.0.2.11  -        gmail     -             1  unlimited  -          0  "
            "warm\n");
}

TEST(CtlFormat, CampaignsAndTenantsAsTables) {
  const json campaigns = json::parse(R"({"campaigns": [
    {"id": "spring", "name": "Spring sale", "tenant": "app1", "pool": null,
     "message_rate": "300/m", "state": "paused", "created": "2026-12-01T08:00:00.000Z",
     "stats": {"received": 1200, "delivered": 1100, "deferred": 40, "bounced": 3,
               "bounced_by_category": {"InvalidRecipient": 3}, "complaints": 0,
               "unsubscribes": 0, "suppressed": 0, "expired": 0, "cancelled": 0,
               "queued": 97}},
    {"id": "x", "name": "x", "tenant": null, "pool": null, "message_rate": null,
     "state": "cancelled", "created": "2026-12-01T09:00:00.000Z", "stats": {}}]})");
  EXPECT_EQ(format_human(Output::campaigns, campaigns),
            "ID      STATE      TENANT  RECEIVED  DELIVERED  DEFERRED  BOUNCED  QUEUED  NAME\n"
            "spring  paused     app1        1200       1100        40        3      97  "
            "Spring sale\n"
            "x       cancelled  -              -          -         -        -       -  x\n");
  const std::string one = format_human(Output::campaign, campaigns["campaigns"][0]);
  EXPECT_EQ(one.substr(0, one.find("\n\n") + 2),
            "id            spring\n"
            "name          Spring sale\n"
            "state         paused\n"
            "tenant        app1\n"
            "pool          -\n"
            "message_rate  300/m\n"
            "created       2026-12-01T08:00:00.000Z\n\n");
  EXPECT_NE(one.find("received      1200\n"), std::string::npos) << one;
  EXPECT_NE(one.find("bounced by category:\n  InvalidRecipient  3\n"), std::string::npos) << one;
  EXPECT_EQ(one.find("SITE"), std::string::npos) << "a campaign has no sites table";

  const json tenants = json::parse(R"({"tenants": [
    {"name": "127.0.0.0/8", "state": "paused",
     "stats": {"received": 5, "delivered": 4, "deferred": 0, "bounced": 1, "queued": 0}}]})");
  EXPECT_EQ(format_human(Output::tenants, tenants),
            "TENANT       STATE   RECEIVED  DELIVERED  DEFERRED  BOUNCED  QUEUED\n"
            "127.0.0.0/8  paused         5          4         0        1       0\n");
}

TEST(CtlFormat, AdminUrlFromAddress) {
  struct Case {
    std::string host;
    uint16_t port;
    std::string url;
  };
  const Case cases[] = {
      {"127.0.0.1", 8025, "http://127.0.0.1:8025"},
      {"10.1.2.3", 80, "http://10.1.2.3:80"},
      {"::1", 8025, "http://[::1]:8025"},
      {"2001:db8::7", 65535, "http://[2001:db8::7]:65535"},
      {"0.0.0.0", 8025, "http://127.0.0.1:8025"},  // listens everywhere: ask the loopback
      {"::", 9000, "http://[::1]:9000"},
  };
  for (const Case& c : cases) EXPECT_EQ(admin_url_from_address(c.host, c.port), c.url) << c.host;
}

TEST(CtlFormat, AdminUrlAsTyped) {
  std::string problem;
  EXPECT_EQ(normalize_admin_url("http://127.0.0.1:8025", &problem), "http://127.0.0.1:8025");
  EXPECT_EQ(normalize_admin_url("http://[::1]:8025/", &problem), "http://[::1]:8025");
  EXPECT_EQ(normalize_admin_url("127.0.0.1:8025", &problem), "http://127.0.0.1:8025");
  EXPECT_EQ(normalize_admin_url("https://admin.example:443", &problem),
            "https://admin.example:443");
  EXPECT_FALSE(normalize_admin_url("", &problem));
  EXPECT_EQ(problem, "--admin: empty URL");
  EXPECT_FALSE(normalize_admin_url("ftp://h:21", &problem));
  EXPECT_EQ(problem, "--admin: \"ftp\" is not http or https");
  EXPECT_FALSE(normalize_admin_url("http://", &problem));
}

TEST(CtlFormat, TokenLosesTrailingWhitespaceOnly) {
  EXPECT_EQ(trim_token("0123456789abcdef\n"), "0123456789abcdef");
  EXPECT_EQ(trim_token("tok\r\n"), "tok");
  EXPECT_EQ(trim_token("tok \t\n\n"), "tok");
  EXPECT_EQ(trim_token("tok"), "tok");
  EXPECT_EQ(trim_token("a b\n"), "a b");
  EXPECT_EQ(trim_token(" lead\n"), " lead");  // as the file says, but for the line end
  EXPECT_EQ(trim_token("\n\n"), "");
  EXPECT_EQ(trim_token(""), "");
}

TEST(CtlFormat, CellText) {
  EXPECT_EQ(cell_text(json(nullptr)), "-");
  EXPECT_EQ(cell_text(json()), "-");
  EXPECT_EQ(cell_text(json(42)), "42");
  EXPECT_EQ(cell_text(json("x")), "x");
  EXPECT_EQ(cell_text(json::parse(R"(["a","b"])")), "a,b");
  EXPECT_EQ(cell_text(json::array()), "-");
  EXPECT_EQ(cell_text(json(true)), "true");
  EXPECT_EQ(cell_text(json("evil\x1b[2Jtext\n")), "evil?[2Jtext?");  // no terminal control
}

TEST(CtlFormat, TableAlignsColumnsAndTrimsLineEnds) {
  std::string table = format_table({{"NAME", Align::left}, {"N", Align::right}, {"X"}},
                                   {{"a", "1", ""}, {"longer", "12345", "z"}, {"b"}});
  EXPECT_EQ(table,
            "NAME        N  X\n"
            "a           1\n"
            "longer  12345  z\n"
            "b\n");
}

TEST(CtlFormat, QueueTable) {
  json queue = {{"total", 1234}, {"sites", json::parse(kSites)}};
  EXPECT_EQ(format_queue(queue), std::string(kSitesTable) + "total: 1234\n");
  EXPECT_EQ(format_human(Output::queue, queue), format_queue(queue));
}

TEST(CtlFormat, EmptyQueueIsTheHeaderAndTotal) {
  EXPECT_EQ(format_queue(json::parse(R"({"total": 0, "sites": []})")),
            "SITE  SOURCE  QUEUED  DEFERRED  IN-FLIGHT  DELIVERED  BOUNCED  SUSPENDED-UNTIL  "
            "DOMAINS\n"
            "total: 0\n");
}

TEST(CtlFormat, StatsTotalsCategoriesThenSites) {
  json stats = json::parse(R"({
    "received": 100500, "delivered": 98767, "deferred": 12, "bounced": 9,
    "bounced_by_category": {"InvalidRecipient": 7, "SpamBlock": 2},
    "expired": 1, "suppressed": 3, "cancelled": 0, "complaints": 1, "queued": 1234,
    "admin_bounced": 4, "sites": )" +
                           std::string(kSites) + "}");
  EXPECT_EQ(format_stats(stats),
            "received       100500\n"
            "delivered      98767\n"
            "deferred       12\n"
            "bounced        9\n"
            "expired        1\n"
            "suppressed     3\n"
            "cancelled      0\n"
            "complaints     1\n"
            "admin_bounced  4\n"
            "queued         1234\n"
            "\n"
            "bounced by category:\n"
            "  InvalidRecipient  7\n"
            "  SpamBlock         2\n"
            "\n" +
                std::string(kSitesTable));
}

TEST(CtlFormat, StatsShowsCountsANewerDaemonAdds) {
  json stats = json::parse(R"({"received": 1, "bounced_by_category": {}, "unsubscribes": 5,
                               "sites": []})");
  std::string text = format_stats(stats);
  EXPECT_TRUE(text.starts_with("received      1\nunsubscribes  5\n\nSITE")) << text;
}

TEST(CtlFormat, ResultsOfCommands) {
  EXPECT_EQ(format_human(Output::suspended, json::parse(R"({"suspended": {"site": "gmail",
                                         "until": "2026-12-02T10:00:00.000Z"}})")),
            "suspended gmail until 2026-12-02T10:00:00.000Z\n");
  EXPECT_EQ(format_human(Output::suspended, json::parse(R"({"suspended": {"domain": "example.com",
                                         "until": "2026-12-02T10:00:00.000Z"}})")),
            "suspended example.com until 2026-12-02T10:00:00.000Z\n");
  EXPECT_EQ(format_human(Output::resumed, json::parse(R"({"resumed": {"site": "gmail"}})")),
            "resumed gmail\n");
  EXPECT_EQ(format_human(Output::resumed, json::parse(R"({"resumed": {"domain": "x.test"}})")),
            "resumed x.test\n");
  EXPECT_EQ(format_human(Output::bounced, json::parse(R"({"bounced": 3})")),
            "bounced 3 recipients\n");
  EXPECT_EQ(format_human(Output::bounced, json::parse(R"({"bounced": 1})")),
            "bounced 1 recipient\n");
  EXPECT_EQ(format_human(Output::bounced, json::parse(R"({"bounced": 0})")),
            "bounced 0 recipients\n");
  EXPECT_EQ(format_human(Output::reloaded, json::parse(R"({"status": "reloaded"})")), "reloaded\n");
  EXPECT_EQ(format_human(Output::pretty, json::parse(R"({"a": [1]})")),
            "{\n  \"a\": [\n    1\n  ]\n}\n");
  EXPECT_EQ(
      format_human(Output::addresses,
                   json::parse(R"({"suppressions": [{"address": "a@x"}, {"address": "b@y"}]})")),
      "a@x\nb@y\n");
}

TEST(CtlFormat, MessageFieldsThenRecipients) {
  const json message = json::parse(R"({"id": "0190abc", "sender": "", "tenant": "app1",
    "campaign": null, "received": "2026-12-02T10:00:00.000Z", "size": 4096,
    "recipients": [
      {"recipient": "a@x.test", "state": "delivered", "attempts": 1, "next_attempt": null,
       "response": {"code": 250, "enhanced": "2.0.0", "text": "Ok: queued"}, "category": null},
      {"recipient": "b@y.test", "state": "deferred", "attempts": 2,
       "next_attempt": "2026-12-02T10:05:00.000Z",
       "response": {"code": 451, "enhanced": "4.3.0", "text": "try\r\nlater"}, "category": null},
      {"recipient": "c@z.test", "state": "queued", "attempts": 0, "next_attempt": null,
       "response": null, "category": null},
      {"recipient": "d@z.test", "state": "bounced", "attempts": 1, "next_attempt": null,
       "response": {"code": 550, "enhanced": "5.1.1", "text": "no such user"},
       "category": "InvalidRecipient"}],
    "finished": null, "kept_until": null})");
  EXPECT_EQ(format_human(Output::message, message),
            "id          0190abc\n"
            "sender      <>\n"
            "tenant      app1\n"
            "campaign    -\n"
            "received    2026-12-02T10:00:00.000Z\n"
            "size        4096\n"
            "finished    -\n"
            "kept_until  -\n"
            "\n"
            "RECIPIENT  STATE      ATTEMPTS  NEXT-ATTEMPT              CODE  ENHANCED  "
            "CATEGORY          RESPONSE\n"
            "a@x.test   delivered         1  -                          250  2.0.0     "
            "-                 Ok: queued\n"
            "b@y.test   deferred          2  2026-12-02T10:05:00.000Z   451  4.3.0     "
            "-                 try??later\n"
            "c@z.test   queued            0  -                            -  -         "
            "-                 -\n"
            "d@z.test   bounced           1  -                          550  5.1.1     "
            "InvalidRecipient  no such user\n");
}

TEST(CtlFormat, DeadLettersTable) {
  const json list = json::parse(R"({"dead": [
    {"id": "0190abc", "sender": "a@s.test", "tenant": "app1", "campaign": "spring",
     "received": "R1", "size": 10, "finished": "F1", "kept_until": "K1",
     "recipients": [
       {"recipient": "x@y", "state": "bounced", "category": "InvalidRecipient"},
       {"recipient": "z@y", "state": "delivered", "category": null},
       {"recipient": "w@y", "state": "expired", "category": "MessageExpired"}]}]})");
  EXPECT_EQ(format_human(Output::dead_list, list),
            "ID       RECEIVED  FAILED  KEPT-UNTIL  TENANT  CAMPAIGN  SENDER    FAILED-RCPTS  "
            "CATEGORIES\n"
            "0190abc  R1        F1      K1          app1    spring    a@s.test           2/3  "
            "InvalidRecipient,MessageExpired\n"
            "total: 1\n");
  EXPECT_EQ(format_human(Output::dead_list, json::parse(R"({"dead": []})")),
            "ID  RECEIVED  FAILED  KEPT-UNTIL  TENANT  CAMPAIGN  SENDER  FAILED-RCPTS  CATEGORIES\n"
            "total: 0\n");
  EXPECT_EQ(format_human(Output::dead_retry, json::parse(R"({"id": "m1", "requeued": 2})")),
            "m1: 2 recipients queued again\n");
  EXPECT_EQ(format_human(Output::dead_delete, json::parse(R"({"id": "m1", "deleted": true})")),
            "deleted dead letter m1\n");
}

TEST(CtlFormat, EventLine) {
  EXPECT_EQ(format_event(json::parse(R"({"type": "Delivery", "time": "2026-12-02T10:00:00.123Z",
      "id": "m1", "recipient": "bob@example.com", "site": "gmail",
      "response": {"code": 250, "enhanced": "2.0.0", "text": "ok queued"}})")),
            "2026-12-02T10:00:00.123Z Delivery bob@example.com gmail 250 ok queued");
  EXPECT_EQ(format_event(json::parse(R"({"type": "AdminBounce", "time": "T",
      "recipient": "a@x", "site": "s", "reason": "operator said so"})")),
            "T AdminBounce a@x s - operator said so");
  EXPECT_EQ(format_event(json::parse(R"({"type": "Reception", "time": "T",
      "recipients": ["a@x", "b@y"]})")),
            "T Reception a@x,b@y - - -");
  EXPECT_EQ(format_event(json::parse(R"({"type": "Bounce", "time": "T", "recipient": "a@x",
      "response": {"code": 550, "text": "no such\r\nuser"}})")),
            "T Bounce a@x - 550 no such??user");
}

TEST(CtlFormat, ApiErrorText) {
  EXPECT_EQ(
      api_error_text(
          401, R"({"error": "unauthorized", "detail": "the bearer token is not the admin token"})"),
      "unauthorized: the bearer token is not the admin token");
  EXPECT_EQ(api_error_text(404, R"({"error": "not found", "detail": ""})"), "not found");
  EXPECT_EQ(api_error_text(400, R"({"error": "config invalid", "detail": "f:1: a: x\nf:2: b: y"})"),
            "config invalid: f:1: a: x\nf:2: b: y");
  EXPECT_EQ(api_error_text(502, "<html>Bad gateway</html>\nmore"),
            "HTTP 502: <html>Bad gateway</html>");
  EXPECT_EQ(api_error_text(500, ""), "HTTP 500");
}

TEST(CtlFormat, UnexpectedShapesDoNotThrow) {
  for (const char* body :
       {"[]", "3", "null", R"({"sites": 5, "total": "x"})", R"({"sites": [1, "x", null]})",
        R"({"suspended": 7})", R"({"recipients": [1, {"response": 3}], "dead": [2, {}]})",
        R"({"dead": {"recipients": null}})"}) {
    json value = json::parse(body);
    for (Output o : {Output::stats, Output::queue, Output::suspended, Output::resumed,
                     Output::bounced, Output::events, Output::addresses, Output::message,
                     Output::dead_list, Output::dead_retry, Output::dead_delete, Output::pretty}) {
      EXPECT_NO_THROW(format_human(o, value)) << body;
    }
  }
}

}  // namespace
}  // namespace ringmail::admin::ctl
