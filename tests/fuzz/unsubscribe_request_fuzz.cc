// libFuzzer target for the one-click unsubscribe endpoint's decision
// (policy/unsubscribe_request.h): method, path and body of any request
// from the Internet.
//
// Input: octet 0 picks the method (GET, HEAD, POST, or the text up to the
// first '\n' after it) and whether the path starts with "/u/" and a token
// made with the unit tests' key (so that the fuzzer reaches the POST body
// checks); then the path up to the next '\n'; the rest is the body.
//
// Besides ASan/UBSan findings, the target aborts when a promise is broken:
// a status other than 200, 400, 404, 405; an unsubscribe from anything
// but a POST with the one-click body and a token that verifies; a GET or
// HEAD that unsubscribes; a 404 without a problem for the log; an answer
// without a page (but the one that asks for the unsubscribe first).
//
// Built only with clang and -DRINGMAIL_FUZZ=ON. Seed corpus in
// tests/fuzz/corpus/unsubscribe_request/.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/unsubscribe_request.h"

namespace {

namespace policy = ringmail::policy;

const std::vector<std::string> kKeys = {"0123456789abcdef0123456789abcdef"};

void broken(const char* promise) {
  std::fprintf(stderr, "unsubscribe_request_fuzz: broken promise: %s\n", promise);
  std::abort();
}

std::string_view take_line(std::string_view& input) {
  const size_t nl = input.find('\n');
  const std::string_view line = input.substr(0, nl);
  input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const uint8_t selector = data[0];
  std::string method;
  switch (selector & 3) {
    case 0:
      method = "GET";
      break;
    case 1:
      method = "HEAD";
      break;
    case 2:
      method = "POST";
      break;
    default:
      method = std::string(take_line(input));
  }
  std::string path;
  if (selector & 4) {
    const policy::UnsubscribeToken token{ringmail::queue::MessageId{"0190f3a2b4c5d6e7f809"},
                                         selector, "app1", "ann@example.test"};
    path = "/u/" + *policy::encode_unsubscribe_token(token, kKeys[0]);
  }
  path += take_line(input);
  const std::string body(input);

  const policy::UnsubscribeHttpAnswer a =
      policy::decide_unsubscribe_request({method, path, body}, "/u", kKeys);
  if (a.status != 200 && a.status != 400 && a.status != 404 && a.status != 405)
    broken("status outside 200, 400, 404, 405");
  if (a.unsubscribe) {
    if (method != "POST") broken("an unsubscribe without a POST");
    if (a.status != 200) broken("an unsubscribe with a status other than 200");
    if (!policy::is_one_click_body(body)) broken("an unsubscribe without the one-click body");
    const size_t slash = path.rfind('/');
    if (!policy::decode_unsubscribe_token(std::string_view(path).substr(slash + 1), kKeys).token)
      broken("an unsubscribe whose token does not verify");
  }
  if (a.status == 404 && a.problem.empty()) broken("a 404 without a problem");
  if (!a.unsubscribe && a.body.empty()) broken("an answer without a page");
  return 0;
}
