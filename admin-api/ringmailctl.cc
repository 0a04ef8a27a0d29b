// ringmailctl — the admin API's command-line client (CONTRACT.md
// "Commands"): one verb, one request, a table or the API's JSON.
//
// Reads admin.address and admin.token_file from the daemon's config (or
// takes --admin URL --token-file F), sends the request with the bearer
// token, and maps the outcome to the exit status: 0 done, 1 an API error
// or an unreachable API, 2 a bad command line.
// Trust: the operator's tool; the daemon's answers are shown through
// ctl_format, which replaces control characters, so a reply text from a
// remote MX cannot drive the terminal.
#include <curl/curl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "admin-api/ctl_args.h"
#include "admin-api/ctl_events.h"
#include "admin-api/ctl_format.h"
#include "admin-api/ctl_http.h"
#include "conf/config.h"

namespace {

using namespace ringmail::admin::ctl;
using nlohmann::json;
using nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int fail(const std::string& message) {
  std::fprintf(stderr, "ringmailctl: %s\n", message.c_str());
  return kExitFailure;
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

bool read_file(const std::string& path, std::string* contents, std::string* problem) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *problem = std::strerror(errno);
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  *contents = text.str();
  return true;
}

// Where the API is and its token, from the command line or the config.
struct Target {
  std::string base_url;
  std::string token;
};

int resolve_target(const Command& command, Target* target) {
  std::string token_file = command.token_file;
  if (!command.admin_url.empty()) {
    std::string problem;
    auto url = normalize_admin_url(command.admin_url, &problem);
    if (!url) {
      std::fprintf(stderr, "ringmailctl: %s\n%s", problem.c_str(), usage_text().c_str());
      return kExitUsage;
    }
    target->base_url = *url;
  } else {
    ringmail::conf::LoadResult loaded = ringmail::conf::load_config(command.config);
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (!loaded.config) return kExitFailure;
    const ringmail::conf::AdminConfig& admin = loaded.config->admin;
    if (!admin.address) return fail("admin API not configured (admin.address)");
    if (admin.address->port == 0) {
      return fail("admin.address " + admin.address->text +
                  " has port 0, chosen at startup; use --admin URL --token-file F");
    }
    target->base_url = admin_url_from_address(admin.address->host, admin.address->port);
    if (token_file.empty()) token_file = admin.token_file.string();
  }
  std::string contents, problem;
  if (!read_file(token_file, &contents, &problem)) {
    return fail("cannot read token file " + token_file + ": " + problem);
  }
  target->token = trim_token(contents);
  if (target->token.empty()) return fail("token file " + token_file + " is empty");
  return kExitOk;
}

// suppressions import FILE: one address a line; blank lines and # comments skipped.
int read_import_file(Command& command) {
  std::string contents, problem;
  if (!read_file(command.import_file, &contents, &problem)) {
    return fail("cannot read " + command.import_file + ": " + problem);
  }
  json addresses = json::array();
  std::istringstream lines(contents);
  for (std::string line; std::getline(lines, line);) {
    if (size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    const size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos) continue;
    const size_t end = line.find_last_not_of(" \t\r");
    addresses.push_back(line.substr(start, end - start + 1));
  }
  if (addresses.empty()) return fail("no addresses in " + command.import_file);
  (*command.request.body)["addresses"] = std::move(addresses);
  return kExitOk;
}

// send FILE: the message as it is, into the body's "content". The API
// takes it as a JSON string, so it must be UTF-8 (7-bit or UTF-8 text).
int read_content_file(Command& command) {
  std::string contents, problem;
  if (command.content_file == "-") {
    std::stringstream text;
    text << std::cin.rdbuf();
    contents = text.str();
  } else if (!read_file(command.content_file, &contents, &problem)) {
    return fail("cannot read " + command.content_file + ": " + problem);
  }
  try {
    (void)json(contents).dump();  // throws on bytes that are not UTF-8
  } catch (const json::exception&) {
    return fail(command.content_file + ": not UTF-8 text (the API takes the message as a string)");
  }
  (*command.request.body)["content"] = std::move(contents);
  return kExitOk;
}

// One event's data as it arrives: compact JSON (one record a line, for jq)
// or the one-line summary.
void print_event(const std::string& data, bool as_json) {
  if (as_json) {
    // As the daemon wrote it: the delivery log's field order.
    ordered_json record = ordered_json::parse(data, nullptr, /*allow_exceptions=*/false);
    print(record.is_discarded()
              ? data + "\n"
              : record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    return;
  }
  json record = json::parse(data, nullptr, /*allow_exceptions=*/false);
  print(record.is_discarded() ? data + "\n" : format_event(record) + "\n");
}

int run(const std::vector<std::string>& args) {
  ParseResult parsed = parse_command_line(args);
  if (!parsed.command) {
    std::fprintf(stderr, "ringmailctl: %s\n%s", parsed.usage_error.c_str(), usage_text().c_str());
    return kExitUsage;
  }
  Command& command = *parsed.command;
  if (command.help) {
    print(usage_text());
    return kExitOk;
  }
  Target target;
  if (int rc = resolve_target(command, &target); rc != kExitOk) return rc;
  if (!command.import_file.empty()) {
    if (int rc = read_import_file(command); rc != kExitOk) return rc;
  }
  if (!command.content_file.empty()) {
    if (int rc = read_content_file(command); rc != kExitOk) return rc;
  }

  SseParser events;
  const bool as_json = command.json;
  std::function<void(std::string_view)> on_stream = [&](std::string_view chunk) {
    for (const std::string& data : events.feed(chunk)) print_event(data, as_json);
  };
  HttpAnswer answer = perform_request(
      target.base_url, target.token, command.request, command.streaming, command.timeout_seconds,
      command.streaming ? on_stream : std::function<void(std::string_view)>());
  if (!answer.reached) return fail("cannot reach " + target.base_url + ": " + answer.failure);
  if (answer.status < 200 || answer.status > 299) {
    return fail(api_error_text(answer.status, answer.body));
  }
  if (answer.streamed) return kExitOk;  // the server closed the stream

  if (command.json || command.output == Output::pretty) {  // in the daemon's field order
    ordered_json body = ordered_json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
    print(body.is_discarded() ? answer.body
                              : body.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    return kExitOk;
  }
  json body = json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
  print(body.is_discarded() ? answer.body : format_human(command.output, body));
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "ringmailctl: curl_global_init failed\n");
    return kExitFailure;
  }
  int rc = run(std::vector<std::string>(argv + 1, argv + argc));
  curl_global_cleanup();
  return rc;
}
