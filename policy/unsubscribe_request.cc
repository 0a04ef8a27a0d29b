// policy/unsubscribe_request.cc — the one-click endpoint's decisions.
#include "policy/unsubscribe_request.h"

#include "policy/list_unsubscribe.h"

namespace ringmail::policy {
namespace {

// Pages without any request data in them: nothing to escape.
std::string page(std::string_view title, std::string_view text, std::string_view form = {}) {
  std::string html;
  html.append(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"robots\" content=\"noindex\"><title>");
  html.append(title).append(
      "</title></head>\n<body style=\"font-family:sans-serif;max-width:32em;");
  html.append("margin:3em auto;padding:0 1em\"><h1>").append(title).append("</h1>\n<p>");
  html.append(text).append("</p>\n").append(form).append("</body></html>\n");
  return html;
}

UnsubscribeHttpAnswer answer(int status, std::string body, std::string problem = {}) {
  UnsubscribeHttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  a.problem = std::move(problem);
  return a;
}

UnsubscribeHttpAnswer not_found(std::string problem) {
  return answer(404,
                page("Link not valid",
                     "This unsubscribe link is not valid. Please use the link in the message "
                     "you received, or ask its sender to remove you."),
                std::move(problem));
}

// The segment after the URL's path: "" when the path is not PATH/SEGMENT
// or /SEGMENT.
std::string_view token_segment(std::string_view path, std::string_view url_path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {};
  const std::string_view prefix = path.substr(0, slash);
  if (!prefix.empty() && prefix != url_path) return {};
  return path.substr(slash + 1);
}

}  // namespace

bool is_one_click_body(std::string_view body) {
  if (body.ends_with("\r\n")) body.remove_suffix(2);
  while (!body.empty()) {
    const size_t amp = body.find('&');
    const std::string_view field = body.substr(0, amp);
    if (field == kOneClickValue) return true;
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return false;
}

std::string url_path_of(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  const size_t slash = url.find('/', scheme + 3);
  if (slash == std::string_view::npos) return {};
  std::string_view path = url.substr(slash);
  while (path.ends_with('/')) path.remove_suffix(1);
  return std::string(path);
}

UnsubscribeHttpAnswer decide_unsubscribe_request(const UnsubscribeHttpRequest& request,
                                                 std::string_view url_path, TokenKeys keys) {
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (!get && request.method != "POST") {
    UnsubscribeHttpAnswer a =
        answer(405, page("Not allowed", "Use the unsubscribe link."), "method not allowed");
    a.headers.emplace_back("Allow", "GET, HEAD, POST");
    return a;
  }
  const std::string_view segment = token_segment(request.path, url_path);
  if (segment.empty()) return not_found("no token in the path");
  Decoded<UnsubscribeToken> decoded = decode_unsubscribe_token(segment, keys);
  if (!decoded.token) return not_found(std::string(token_problem_name(decoded.problem)));
  if (get) {
    // RFC 8058 §3.2: a GET must not unsubscribe; the button sends the
    // same body a mail client's one-click POST does.
    return answer(
        200, page("Unsubscribe", "Do you want to stop receiving these messages at this address?",
                  "<form method=\"post\"><input type=\"hidden\" "
                  "name=\"List-Unsubscribe\" value=\"One-Click\">"
                  "<button type=\"submit\">Unsubscribe</button></form>\n"));
  }
  if (!is_one_click_body(request.body)) {
    return answer(400,
                  page("Bad request",
                       "An unsubscribe request carries List-Unsubscribe=One-Click (RFC 8058)."),
                  "POST without List-Unsubscribe=One-Click");
  }
  UnsubscribeHttpAnswer a = answer(200, {});
  a.unsubscribe = std::move(decoded.token);
  return a;
}

UnsubscribeHttpAnswer unsubscribe_done(bool stored) {
  if (stored) {
    return answer(
        200, page("Unsubscribed", "You will not receive these messages at this address any more."));
  }
  UnsubscribeHttpAnswer a = answer(
      503, page("Please try again", "Your request could not be stored just now."), "not stored");
  a.headers.emplace_back("Retry-After", "60");
  return a;
}

}  // namespace ringmail::policy
