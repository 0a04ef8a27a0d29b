#include "admin-api/ctl_args.h"

#include <algorithm>
#include <functional>
#include <string_view>

#include "conf/config.h"

namespace ringmail::admin::ctl {

namespace {

using nlohmann::ordered_json;

// The command line of one verb after its name, split by the verb's spec.
// Options come as "--name value" or "--name=value"; flags take no value
// (a flag written "--domain=x" counts as the flag and the argument x).
struct VerbArgs {
  std::vector<std::pair<std::string, std::string>> options;  // in the order given
  std::vector<std::string> flags;
  std::vector<std::string> positionals;

  const std::string* option(std::string_view name) const {
    for (const auto& [key, value] : options)
      if (key == name) return &value;
    return nullptr;
  }
  // Every value of an option that may be repeated (send --to A --to B).
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> values;
    for (const auto& [key, value] : options)
      if (key == name) values.push_back(value);
    return values;
  }
  bool flag(std::string_view name) const {
    return std::find(flags.begin(), flags.end(), name) != flags.end();
  }
};

struct VerbSpec {
  std::vector<std::string> options;  // take a value: "--site"
  std::vector<std::string> flags;    // no value: "--domain" of suspend
};

// Options that may be given more than once (send --to A --to B).
const std::vector<std::string> kRepeatableOptions = {"--to", "--cc", "--bcc"};

bool contains(const std::vector<std::string>& list, std::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

std::vector<std::string> segments(std::initializer_list<std::string> tail) {
  std::vector<std::string> s = {"api", "v1"};
  s.insert(s.end(), tail.begin(), tail.end());
  return s;
}

// A verb's arguments are checked by its builder, which fills command and
// returns "" or the usage error.
using Builder = std::function<std::string(const VerbArgs&, Command&)>;

struct VerbEntry {
  const char* name;
  VerbSpec spec;
  Builder build;
};

std::string no_positionals(const VerbArgs& args, const std::string& verb) {
  if (!args.positionals.empty()) {
    return verb + " takes no argument (got \"" + args.positionals.front() + "\")";
  }
  return "";
}

// The filters of a GET (queue, campaigns, suppressions): every option as a
// query parameter, without the leading dashes, in the order given.
void options_as_query(const VerbArgs& args, ApiRequest& request) {
  for (const auto& [key, value] : args.options) request.query.emplace_back(key.substr(2), value);
}

// "--site" or "--domain" as a flag (suspend, resume): which field the
// positional target goes in.
std::string target_field(const VerbArgs& args, const std::string& verb, std::string* field) {
  if (args.flag("--site") && args.flag("--domain")) {
    return verb + ": give --site or --domain, not both";
  }
  *field = args.flag("--domain") ? "domain" : "site";
  return "";
}

std::string build_status(const VerbArgs& args, Command& c) {
  c.output = Output::stats;
  c.request.path_segments = segments({"stats"});
  return no_positionals(args, "status");
}

std::string build_queue(const VerbArgs& args, Command& c) {
  c.output = Output::queue;
  c.request.path_segments = segments({"queue"});
  options_as_query(args, c.request);
  return no_positionals(args, "queue");
}

std::string build_suspend(const VerbArgs& args, Command& c) {
  std::string field;
  if (std::string e = target_field(args, "suspend", &field); !e.empty()) return e;
  if (args.positionals.empty()) return "suspend needs a site (or --domain DOMAIN)";
  if (args.positionals.size() > 2) return "suspend takes SITE|DOMAIN [DURATION]";
  const std::string duration = args.positionals.size() == 2 ? args.positionals[1] : "1h";
  auto parsed = conf::parse_duration(duration);
  if (!parsed || parsed->count() <= 0) {
    return "suspend: \"" + duration + "\" is not a duration like 30m, 4h, 2d";
  }
  c.output = Output::suspended;
  c.request.method = "POST";
  c.request.path_segments = segments({"queue", "suspend"});
  c.request.body = ordered_json{{field, args.positionals[0]}, {"duration", duration}};
  return "";
}

std::string build_resume(const VerbArgs& args, Command& c) {
  std::string field;
  if (std::string e = target_field(args, "resume", &field); !e.empty()) return e;
  if (args.positionals.size() != 1) return "resume takes one SITE (or --domain DOMAIN)";
  c.output = Output::resumed;
  c.request.method = "POST";
  c.request.path_segments = segments({"queue", "resume"});
  c.request.body = ordered_json{{field, args.positionals[0]}};
  return "";
}

std::string build_bounce(const VerbArgs& args, Command& c) {
  if (std::string e = no_positionals(args, "bounce"); !e.empty()) return e;
  ordered_json body = ordered_json::object();
  for (const char* target : {"--site", "--domain", "--campaign", "--tenant"}) {
    if (const std::string* value = args.option(target)) {
      if (!body.empty()) return "bounce takes one of --site, --domain, --campaign, --tenant";
      body[std::string(target).substr(2)] = *value;
    }
  }
  if (body.empty()) return "bounce needs one of --site, --domain, --campaign, --tenant";
  if (const std::string* reason = args.option("--reason")) body["reason"] = *reason;
  c.output = Output::bounced;
  c.request.method = "POST";
  c.request.path_segments = segments({"queue", "bounce"});
  c.request.body = std::move(body);
  return "";
}

std::string build_reload(const VerbArgs& args, Command& c) {
  c.output = Output::reloaded;
  c.request.method = "POST";
  c.request.path_segments = segments({"reload"});
  return no_positionals(args, "reload");
}

std::string build_events(const VerbArgs& args, Command& c) {
  c.output = Output::events;
  c.streaming = true;
  c.timeout_seconds = 0;
  c.request.path_segments = segments({"events"});
  options_as_query(args, c.request);
  return no_positionals(args, c.verb);
}

std::string build_probe(const VerbArgs& args, Command& c) {
  if (args.positionals.size() != 1) return "probe takes one DOMAIN";
  c.timeout_seconds = 90;
  c.request.method = "POST";
  c.request.path_segments = segments({"probe"});
  c.request.body = ordered_json{{"domain", args.positionals[0]}};
  return "";
}

std::string build_explain(const VerbArgs& args, Command& c) {
  if (args.positionals.size() != 1) return "explain takes one DOMAIN";
  c.output = Output::explain;
  c.timeout_seconds = 45;
  c.request.path_segments = segments({"explain"});
  c.request.query.emplace_back("domain", args.positionals[0]);
  options_as_query(args, c.request);
  return "";
}

std::string build_message(const VerbArgs& args, Command& c) {
  if (args.positionals.size() != 1) return "message takes one message ID";
  c.output = Output::message;
  c.request.path_segments = segments({"messages", args.positionals[0]});
  return "";
}

// dead [list] [--tenant T] [--campaign C] [--category X], dead show|retry|delete ID.
std::string build_dead(const VerbArgs& args, Command& c) {
  const std::string action = args.positionals.empty() ? "list" : args.positionals[0];
  if (action == "list") {
    if (args.positionals.size() > 1) return "dead list takes no argument";
    c.output = Output::dead_list;
    c.request.path_segments = segments({"dead"});
    options_as_query(args, c.request);
    return "";
  }
  if (action != "show" && action != "retry" && action != "delete")
    return "dead takes list, show, retry or delete (got \"" + action + "\")";
  if (args.positionals.size() != 2) return "dead " + action + " takes one message ID";
  if (!args.options.empty()) return "dead " + action + " takes no " + args.options.front().first;
  const std::string& id = args.positionals[1];
  if (action == "show") {
    c.output = Output::message;
    c.request.path_segments = segments({"dead", id});
  } else if (action == "retry") {
    c.output = Output::dead_retry;
    c.request.method = "POST";
    c.request.path_segments = segments({"dead", id, "retry"});
  } else {
    c.output = Output::dead_delete;
    c.request.method = "DELETE";
    c.request.path_segments = segments({"dead", id});
  }
  return "";
}

// GET of a list route with its filters as options (campaigns, tenants, warmup).
Builder list_route(std::string verb, std::string route, Output output = Output::pretty) {
  return [verb, route, output](const VerbArgs& args, Command& c) {
    c.output = output;
    c.request.path_segments = segments({route});
    options_as_query(args, c.request);
    return no_positionals(args, verb);
  };
}

// campaign show|pause|resume|cancel ID, tenant show|pause|resume NAME.
Builder object_route(std::string verb, std::string route, std::vector<std::string> actions,
                     Output output = Output::pretty) {
  return [verb, route, actions, output](const VerbArgs& args, Command& c) -> std::string {
    c.output = output;
    std::string list;
    for (const auto& a : actions) list += (list.empty() ? "" : "|") + a;
    if (args.positionals.size() != 2 || !contains(actions, args.positionals[0])) {
      return verb + " takes " + list + " and a name";
    }
    const std::string& action = args.positionals[0];
    const std::string& name = args.positionals[1];
    if (action == "show") {
      c.request.path_segments = segments({route, name});
    } else {
      c.request.method = "POST";
      c.request.path_segments = segments({route, name, action});
    }
    return "";
  };
}

std::string build_suppressions(const VerbArgs& args, Command& c) {
  const std::string action = args.positionals.empty() ? "list" : args.positionals[0];
  const std::vector<std::string> rest(
      args.positionals.begin() + std::min<size_t>(1, args.positionals.size()),
      args.positionals.end());
  const std::string* tenant = args.option("--tenant");
  const std::string* reason = args.option("--reason");
  c.request.path_segments = segments({"suppressions"});
  if (action == "list" || action == "export") {
    if (!rest.empty()) return "suppressions " + action + " takes no argument";
    if (reason) return "suppressions " + action + " takes no --reason";
    if (action == "export") {
      if (args.option("--address")) return "suppressions export takes no --address";
      c.output = Output::addresses;
    }
    options_as_query(args, c.request);
    return "";
  }
  if (action != "add" && action != "import" && action != "remove") {
    return "suppressions takes list, add, remove, import or export (got \"" + action + "\")";
  }
  if (args.option("--address")) {
    return "suppressions " + action + " takes the address as an argument, not --address";
  }
  if (!tenant) return "suppressions " + action + " needs --tenant T (\"*\": every tenant)";
  if (action == "add" || action == "import") {
    if (rest.empty()) {
      return action == "add" ? "suppressions add needs one or more addresses"
                             : "suppressions import needs a FILE of addresses";
    }
    c.request.method = "POST";
    ordered_json body{{"tenant", *tenant}};
    if (action == "import") {
      if (rest.size() != 1) return "suppressions import takes one FILE";
      c.import_file = rest[0];
      body["addresses"] = ordered_json::array();  // filled from the file by main()
    } else if (rest.size() == 1) {
      body["address"] = rest[0];
    } else {
      body["addresses"] = rest;
    }
    if (reason) body["reason"] = *reason;
    c.request.body = std::move(body);
    return "";
  }
  // remove
  if (rest.size() != 1) return "suppressions remove takes one address";
  if (reason) return "suppressions remove takes no --reason";
  c.request.method = "DELETE";
  c.request.query = {{"tenant", *tenant}, {"address", rest[0]}};
  return "";
}

// send: a message file as it is (raw form), or one built from --subject,
// --text and --html (built form) by the daemon.
std::string build_send(const VerbArgs& args, Command& c) {
  const std::string* from = args.option("--from");
  const std::vector<std::string> to = args.all("--to");
  const std::vector<std::string> cc = args.all("--cc");
  const std::vector<std::string> bcc = args.all("--bcc");
  const std::string* subject = args.option("--subject");
  const std::string* text = args.option("--text");
  const std::string* html = args.option("--html");
  const std::string* reply_to = args.option("--reply-to");
  const bool built = subject || text || html || reply_to;
  if (!from) return "send needs --from ADDRESS";
  ordered_json body = ordered_json::object();
  if (built) {
    if (!args.positionals.empty()) {
      return "send: give a FILE, or --subject, --text and --html; not both";
    }
    if (!text && !html) return "send needs --text TEXT or --html HTML (or a FILE)";
    if (to.empty() && cc.empty() && bcc.empty()) return "send needs --to ADDRESS (or --cc, --bcc)";
    body["from"] = *from;
    if (!to.empty()) body["to"] = to;
    if (!cc.empty()) body["cc"] = cc;
    if (!bcc.empty()) body["bcc"] = bcc;
    if (reply_to) body["reply_to"] = *reply_to;
    body["subject"] = subject ? *subject : "";
    if (text) body["text"] = *text;
    if (html) body["html"] = *html;
  } else {
    if (args.positionals.size() != 1) {
      return "send takes one FILE (\"-\": standard input), or --subject, --text and --html";
    }
    if (!cc.empty() || !bcc.empty()) {
      return "send FILE: every recipient is a --to (the file's own header says who sees what)";
    }
    if (to.empty()) return "send needs --to ADDRESS";
    body["envelope_sender"] = *from;
    body["recipients"] = to;
    c.content_file = args.positionals[0];
  }
  if (const std::string* campaign = args.option("--campaign")) body["campaign"] = *campaign;
  if (const std::string* tenant = args.option("--tenant")) body["tenant"] = *tenant;
  c.output = Output::queued;
  c.request.method = "POST";
  c.request.path_segments = segments({"messages"});
  c.request.body = std::move(body);
  return "";
}

const std::vector<VerbEntry>& verb_table() {
  static const std::vector<VerbEntry> table = {
      {"status", {}, build_status},
      {"queue", {{"--site", "--domain", "--campaign", "--tenant"}, {}}, build_queue},
      {"suspend", {{}, {"--site", "--domain"}}, build_suspend},
      {"resume", {{}, {"--site", "--domain"}}, build_resume},
      {"bounce", {{"--site", "--domain", "--campaign", "--tenant", "--reason"}, {}}, build_bounce},
      {"reload", {}, build_reload},
      {"events", {{"--types"}, {}}, build_events},
      {"tail", {{"--types"}, {}}, build_events},
      {"probe", {}, build_probe},
      {"explain", {{"--source"}, {}}, build_explain},
      {"message", {}, build_message},
      {"dead", {{"--tenant", "--campaign", "--category"}, {}}, build_dead},
      {"campaigns", {{"--tenant"}, {}}, list_route("campaigns", "campaigns", Output::campaigns)},
      {"campaign",
       {},
       object_route("campaign", "campaigns", {"show", "pause", "resume", "cancel"},
                    Output::campaign)},
      {"tenants", {}, list_route("tenants", "tenants", Output::tenants)},
      {"tenant",
       {},
       object_route("tenant", "tenants", {"show", "pause", "resume"}, Output::tenant)},
      {"warmup", {}, list_route("warmup", "warmup", Output::warmup)},
      {"suppressions", {{"--tenant", "--address", "--reason"}, {}}, build_suppressions},
      {"send",
       {{"--from", "--to", "--cc", "--bcc", "--reply-to", "--subject", "--text", "--html",
         "--campaign", "--tenant"},
        {}},
       build_send},
  };
  return table;
}

const std::vector<std::string> kGlobalOptions = {"-c", "--config", "--admin", "--token-file"};

// Applies a global option; false when name is not one.
bool global_option(const std::string& name, const std::string& value, Command& c) {
  if (name == "-c" || name == "--config") {
    c.config = value;
    c.config_given = true;
  } else if (name == "--admin") {
    c.admin_url = value;
  } else if (name == "--token-file") {
    c.token_file = value;
  } else {
    return false;
  }
  return true;
}

bool global_flag(const std::string& arg, Command& c) {
  if (arg == "--json") {
    c.json = true;
  } else if (arg == "-h" || arg == "--help") {
    c.help = true;
  } else {
    return false;
  }
  return true;
}

// Walks args from i: global options and flags anywhere (before and after
// the verb), the verb's own options and flags after it; "--" ends options.
std::string split_arguments(const std::vector<std::string>& args, Command& c,
                            const VerbEntry** entry, VerbArgs* verb_args) {
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const bool is_option = !options_done && arg.size() > 1 && arg[0] == '-';
    if (!is_option) {
      if (!*entry) {
        const auto& table = verb_table();
        auto it = std::find_if(table.begin(), table.end(),
                               [&](const VerbEntry& e) { return arg == e.name; });
        if (it == table.end()) return "unknown verb \"" + arg + "\"";
        *entry = &*it;
        c.verb = arg;
      } else {
        verb_args->positionals.push_back(arg);
      }
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (global_flag(arg, c)) continue;
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (size_t eq = arg.find('='); eq != std::string::npos && arg.starts_with("--")) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const bool global = contains(kGlobalOptions, name);
    const bool verb_option = *entry && contains((*entry)->spec.options, name);
    const bool verb_flag = *entry && contains((*entry)->spec.flags, name);
    if (verb_flag) {
      verb_args->flags.push_back(name);
      if (inline_value) verb_args->positionals.push_back(*inline_value);
      continue;
    }
    if (!global && !verb_option) {
      return *entry ? c.verb + ": unknown option " + name : "unknown option " + name;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return name + " needs a value";
    }
    if (global) {
      global_option(name, value, c);
    } else if (verb_args->option(name) && !contains(kRepeatableOptions, name)) {
      return c.verb + ": " + name + " given twice";
    } else {
      verb_args->options.emplace_back(name, value);
    }
  }
  return "";
}

}  // namespace

std::string ApiRequest::path() const {
  std::string p;
  for (const auto& s : path_segments) p += "/" + s;
  return p;
}

ParseResult parse_command_line(const std::vector<std::string>& args) {
  ParseResult result;
  Command c;
  const VerbEntry* entry = nullptr;
  VerbArgs verb_args;
  std::string error = split_arguments(args, c, &entry, &verb_args);
  if (error.empty() && c.help) {
    result.command = std::move(c);
    return result;
  }
  if (error.empty() && !entry) error = "no verb given";
  if (error.empty() && !c.admin_url.empty() && c.config_given) {
    error = "-c and --admin exclude each other";
  }
  if (error.empty() && !c.admin_url.empty() && c.token_file.empty()) {
    error = "--admin needs --token-file";
  }
  if (error.empty()) error = entry->build(verb_args, c);
  if (!error.empty()) {
    result.usage_error = std::move(error);
    return result;
  }
  result.command = std::move(c);
  return result;
}

std::string usage_text() {
  return "usage: ringmailctl [-c CONFIG | --admin URL --token-file FILE] [--json] VERB ...\n"
         "\n"
         "  -c, --config FILE   read admin.address and admin.token_file from FILE\n"
         "                      (default " +
         std::string(kDefaultConfig) +
         ")\n"
         "  --admin URL         the admin API, e.g. http://127.0.0.1:8025 (needs --token-file)\n"
         "  --token-file FILE   the admin token\n"
         "  --json              print the API's JSON instead of tables\n"
         "\n"
         "verbs:\n"
         "  status                                   totals and per-site counts\n"
         "  queue [--site S] [--domain D] [--campaign C] [--tenant T]\n"
         "                                           what is queued now, per site\n"
         "  suspend [--domain] SITE|DOMAIN [DURATION]\n"
         "                                           no new attempt until then (default 1h)\n"
         "  resume [--domain] SITE|DOMAIN            release a suspension\n"
         "  bounce (--site S | --domain D | --campaign C | --tenant T) [--reason TEXT]\n"
         "                                           bounce what is queued there\n"
         "  reload                                   reload the config\n"
         "  events [--types Delivery,Bounce]         follow the delivery log (alias: tail)\n"
         "  probe DOMAIN                             connect, EHLO, STARTTLS, QUIT; no mail\n"
         "  explain DOMAIN [--source S]              the limits in force and who set them\n"
         "  message ID                               one message and its recipients\n"
         "  dead [list] [--tenant T] [--campaign C] [--category X]\n"
         "                                           messages kept after a bounce or expiry\n"
         "  dead show|retry|delete ID                one dead letter; queue its failed\n"
         "                                           recipients again; drop it\n"
         "  campaigns [--tenant T]\n"
         "  campaign show|pause|resume|cancel ID\n"
         "  tenants\n"
         "  tenant show|pause|resume NAME\n"
         "  warmup                                   per source: day, cap, sent\n"
         "  suppressions [list] [--tenant T] [--address A]\n"
         "  suppressions add --tenant T ADDRESS... [--reason TEXT]\n"
         "  suppressions remove --tenant T ADDRESS\n"
         "  suppressions import --tenant T FILE [--reason TEXT]   one address per line\n"
         "  suppressions export [--tenant T]                      one address per line\n"
         "  send --from A --to B [--to C ...] [--campaign C] [--tenant T] FILE\n"
         "                                           inject FILE (\"-\": stdin) as it is\n"
         "  send --from \"Name <A>\" --to B [--cc C] [--bcc D] [--reply-to R] --subject S\n"
         "       (--text T | --html H | both) [--campaign C] [--tenant T]\n"
         "                                           inject a message built by the daemon\n"
         "\n"
         "exit status: 0 done, 1 API error or admin API unreachable, 2 bad usage\n";
}

}  // namespace ringmail::admin::ctl
