// admin-api/ctl_args.h — ringmailctl's command line, parsed into the one
// admin API request it stands for (CONTRACT.md "Commands", ringmailctl row).
//
// Owns: the verb table (verb, its arguments, the route it maps to) and the
// check of a command line against it. Pure: no socket, no file, no curl;
// values stay unencoded here and the HTTP layer escapes them, so that the
// unit tests compare what the user typed with what is sent.
//
// Threads: any. Trust: argv is the operator's; a bad command line is a
// usage error (exit 2), never a request.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ringmail::admin::ctl {

inline constexpr const char* kDefaultConfig = "/etc/ringmail/ringmail.yaml";

// How the answer is shown in human form; --json prints the body instead.
enum class Output {
  stats,        // totals, bounced_by_category, then the sites table
  queue,        // the sites table, then "total: n"
  suspended,    // "suspended X until TIME"
  resumed,      // "resumed X"
  bounced,      // "bounced n recipients"
  reloaded,     // "reloaded"
  events,       // one line per Server-Sent Event as it arrives
  addresses,    // suppressions export: one address per line
  campaigns,    // the campaigns table
  campaign,     // one campaign: its fields, then its stats
  tenants,      // the tenants table
  tenant,       // one tenant: state, then its stats
  queued,       // send: "queued as ID (n recipients)"
  message,      // message ID: its fields, then one row per recipient
  dead_list,    // dead list: one row per dead letter
  dead_retry,   // "ID: n recipients queued again"
  dead_delete,  // "deleted dead letter ID"
  explain,      // domain, site, provider, source, then the limits table
  warmup,       // the warm-up table: one row per source (and provider)
  pretty,       // the JSON pretty-printed (routes without a table yet)
};

// One admin API request. path_segments are joined with '/' after escaping
// each ({"api", "v1", "messages", ID}), query values likewise.
struct ApiRequest {
  std::string method = "GET";
  std::vector<std::string> path_segments;
  std::vector<std::pair<std::string, std::string>> query;
  std::optional<nlohmann::ordered_json> body;

  std::string path() const;  // unescaped, for messages and tests
};

struct Command {
  std::string config = kDefaultConfig;  // -c
  bool config_given = false;
  std::string admin_url;   // --admin, "" to take admin.address from the config
  std::string token_file;  // --token-file, "" to take admin.token_file
  bool json = false;       // --json
  std::string verb;        // as typed ("tail" stays "tail")
  Output output = Output::pretty;
  ApiRequest request;
  bool streaming = false;  // events: the answer is a stream, read until it ends
  // The whole request's limit, 0 for none (events). A probe is up to seven
  // steps of 10 s each on the server, so it gets longer than the rest; an
  // explain's DNS look-up may take 30 s.
  int timeout_seconds = 30;
  // suppressions import: the file of addresses main() reads into the body.
  std::string import_file;
  // send FILE: the message main() reads into the body's "content" ("-":
  // standard input).
  std::string content_file;
  bool help = false;  // -h/--help: usage on stdout, exit 0
};

struct ParseResult {
  std::optional<Command> command;
  std::string usage_error;  // set when command is empty: "unknown verb \"x\"", ...
};

// argv without the program name.
ParseResult parse_command_line(const std::vector<std::string>& args);

// The usage text (for stderr on a usage error, stdout on --help).
std::string usage_text();

}  // namespace ringmail::admin::ctl
