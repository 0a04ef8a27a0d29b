#include "admin-api/ctl_http.h"

#include <curl/curl.h>

#include <memory>

namespace ringmail::admin::ctl {

namespace {

constexpr long kConnectTimeoutMs = 5'000;

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string escape(CURL* curl, const std::string& text) {
  char* escaped = curl_easy_escape(curl, text.data(), static_cast<int>(text.size()));
  if (!escaped) return text;
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

std::string request_url(CURL* curl, const std::string& base_url, const ApiRequest& request) {
  std::string url = base_url;
  for (const auto& segment : request.path_segments) url += "/" + escape(curl, segment);
  char separator = '?';
  for (const auto& [key, value] : request.query) {
    url += separator + escape(curl, key) + "=" + escape(curl, value);
    separator = '&';
  }
  return url;
}

struct Transfer {
  CURL* curl = nullptr;
  bool streaming = false;
  const std::function<void(std::string_view)>* on_stream = nullptr;
  bool decided = false;  // whether this answer streams, decided on its first bytes
  bool stream_now = false;
  std::string body;
};

size_t on_write(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (!t->decided) {
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    t->stream_now = t->streaming && status == 200 && t->on_stream && *t->on_stream;
    t->decided = true;
  }
  if (t->stream_now) {
    (*t->on_stream)(std::string_view(data, n));
  } else if (t->body.size() < (8u << 20)) {  // an error body, or JSON: bounded
    t->body.append(data, n);
  }
  return n;
}

}  // namespace

HttpAnswer perform_request(const std::string& base_url, const std::string& token,
                           const ApiRequest& request, bool streaming, int timeout_seconds,
                           const std::function<void(std::string_view)>& on_stream) {
  HttpAnswer answer;
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) {
    answer.failure = "curl_easy_init failed";
    return answer;
  }
  CURL* c = curl.get();
  const std::string url = request_url(c, base_url, request);
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add_header = [&](const std::string& line) {
    headers.reset(curl_slist_append(headers.release(), line.c_str()));
  };
  add_header("Authorization: Bearer " + token);
  add_header(streaming ? "Accept: text/event-stream" : "Accept: application/json");
  std::string body;
  if (request.body) {
    body = request.body->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    add_header("Content-Type: application/json");
  }
  char error_buffer[CURL_ERROR_SIZE] = {};
  Transfer transfer;
  transfer.curl = c;
  transfer.streaming = streaming;
  transfer.on_stream = &on_stream;

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  if (timeout_seconds > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_seconds * 1000L);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "ringmailctl");
  // The admin API is one daemon; a proxy from the environment is not the way to it.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (request.body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
  }

  const CURLcode code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer.status);
  answer.streamed = transfer.stream_now;
  answer.body = std::move(transfer.body);
  if (code != CURLE_OK) {
    // A stream the server ends abruptly after a 200 is the end of the
    // stream, not a failure to reach it.
    if (answer.streamed &&
        (code == CURLE_PARTIAL_FILE || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING)) {
      answer.reached = true;
      return answer;
    }
    answer.failure = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    return answer;
  }
  answer.reached = true;
  return answer;
}

}  // namespace ringmail::admin::ctl
