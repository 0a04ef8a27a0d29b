// policy/unsubscribe_request.h — what the one-click unsubscribe endpoint
// (policy.list_unsubscribe.listen; CONTRACT.md "Feedback, suppression and
// compliance in detail") answers to one HTTP request, without a socket:
//
//   GET|HEAD PATH/TOKEN  -> 200, a short HTML page whose button POSTs the
//                           one-click body; changes nothing (link scanners
//                           and mail security gateways fetch every URL)
//   POST PATH/TOKEN      -> body List-Unsubscribe=One-Click (RFC 8058
//                           §3.2; form-encoded, among other fields or
//                           alone): action unsubscribe, then 200 (or 503
//                           when it could not be stored, so that the
//                           provider tries again)
//                           any other body: 400, nothing changes
//   TOKEN does not verify, or another path -> 404
//   another method       -> 405 with Allow
//
// PATH is the path of policy.list_unsubscribe.url ("" for none); a reverse
// proxy that strips it is served too (the token alone is the path). The
// token is the last segment, matched case-insensitively (base32).
//
// Pure: request in, answer out; the caller (mta/unsubscribe_endpoint.h)
// carries out the action and picks the page with unsubscribe_done().
// SECURITY: everything in the request is untrusted; only a token that
// verifies under one of `keys` names anyone, and nothing from the request
// is echoed into a page.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/feedback_token.h"

namespace ringmail::policy {

struct UnsubscribeHttpRequest {
  std::string_view method;
  std::string_view path;  // without the query string
  std::string_view body;
};

struct UnsubscribeHttpAnswer {
  int status = 404;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // POST with the one-click body and a verified token: unsubscribe this
  // recipient, then answer unsubscribe_done(stored).
  std::optional<UnsubscribeToken> unsubscribe;
  // Why a request named nobody, for the log ("bad_mac", "no token", ...).
  std::string problem;
};

// url_path: the path of policy.list_unsubscribe.url without its trailing
// '/' ("" when the URL has none).
UnsubscribeHttpAnswer decide_unsubscribe_request(const UnsubscribeHttpRequest& request,
                                                 std::string_view url_path, TokenKeys keys);

// The answer after the action: 200 and a confirmation page when the
// unsubscribe was stored, 503 and a "try again" page when not.
UnsubscribeHttpAnswer unsubscribe_done(bool stored);

// The path of an http(s) URL ("https://h:1/a/b" -> "/a/b", "https://h" -> "").
std::string url_path_of(std::string_view url);

// Whether a form-encoded body carries the one-click field
// "List-Unsubscribe=One-Click" (exactly, as one of its '&'-separated
// fields; a trailing CRLF is tolerated).
bool is_one_click_body(std::string_view body);

}  // namespace ringmail::policy
