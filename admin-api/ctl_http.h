// admin-api/ctl_http.h — ringmailctl's one HTTP request to the admin API,
// over libcurl.
//
// Owns: the URL (each path segment and query value escaped with
// curl_easy_escape), the bearer token header, the timeouts (connect 5 s,
// the whole request as the command says), and the event stream: while the
// answer is a 200 event stream its bytes go to on_stream as they arrive;
// any other answer is collected whole.
// Threads: one call at a time per process (curl_global_init is the
// caller's). Network: talks to the admin API the operator named; its
// answer is untrusted text handed to ctl_format.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "admin-api/ctl_args.h"

namespace ringmail::admin::ctl {

struct HttpAnswer {
  bool reached = false;  // false: failure says why (connect, timeout, ...)
  std::string failure;
  long status = 0;
  std::string body;  // empty for a stream that went to on_stream
  bool streamed = false;
};

// base_url like "http://127.0.0.1:8025"; timeout_seconds 0 for none;
// on_stream only for streaming requests (may be empty otherwise).
HttpAnswer perform_request(const std::string& base_url, const std::string& token,
                           const ApiRequest& request, bool streaming, int timeout_seconds,
                           const std::function<void(std::string_view)>& on_stream);

}  // namespace ringmail::admin::ctl
