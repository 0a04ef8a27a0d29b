// mta/unsubscribe_endpoint.cc — the one-click endpoint's HTTP server.
#include "mta/unsubscribe_endpoint.h"

#include <microhttpd.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <future>

#include "mta/feedback_processor.h"
#include "policy/unsubscribe_request.h"
#include "runtime/listen_socket.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {
namespace {

constexpr auto kStoreTimeout = std::chrono::seconds(30);
constexpr char kRequestsMetric[] = "unsubscribe_requests_total";
constexpr char kRequestsHelp[] = "One-click unsubscribe endpoint requests answered, by status code";

MHD_Result access_handler(void* cls, MHD_Connection* connection, const char* url,
                          const char* method, const char*, const char* upload_data,
                          size_t* upload_data_size, void** state) {
  return static_cast<UnsubscribeEndpoint*>(cls)->on_request(connection, url, method, upload_data,
                                                            upload_data_size, state) != 0
             ? MHD_YES
             : MHD_NO;
}

void completed(void* cls, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  static_cast<UnsubscribeEndpoint*>(cls)->on_completed(state);
}

void log_mhd(void*, const char* format, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, ap);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  spdlog::debug("unsubscribe endpoint: {}", text);
}

}  // namespace

struct UnsubscribeEndpoint::Request {
  std::string method;
  std::string path;
  std::string body;
  bool too_large = false;
  bool answered = false;
};

UnsubscribeEndpoint::~UnsubscribeEndpoint() { stop(); }

std::shared_ptr<const conf::Config> UnsubscribeEndpoint::config() const {
  std::lock_guard lock(config_mutex_);
  return config_;
}

void UnsubscribeEndpoint::reload(std::shared_ptr<const conf::Config> config) {
  std::lock_guard lock(config_mutex_);
  config_ = std::move(config);
}

bool UnsubscribeEndpoint::start(std::shared_ptr<const conf::Config> config, std::string* error) {
  const conf::SocketAddress listen = config->policy->list_unsubscribe->listen;
  reload(std::move(config));
  metrics_.declare(kRequestsMetric, kRequestsHelp, runtime::MetricType::counter);
  std::string why;
  listen_fd_ =
      runtime::listen_tcp(listen.host, listen.port, runtime::ListenOptions{256, false}, &why);
  if (listen_fd_ < 0) {
    *error = "policy.list_unsubscribe.listen: cannot listen on " + listen.text + ": " + why;
    return false;
  }
  bound_address_ = runtime::bound_address(listen.host, listen_fd_);
  mhd_ = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
      nullptr, nullptr, &access_handler, this, MHD_OPTION_LISTEN_SOCKET, listen_fd_,
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections, MHD_OPTION_CONNECTION_TIMEOUT,
      kIdleTimeoutSeconds, MHD_OPTION_CONNECTION_MEMORY_LIMIT, size_t{64 * 1024},
      MHD_OPTION_THREAD_STACK_SIZE, size_t{256 * 1024}, MHD_OPTION_NOTIFY_COMPLETED, &completed,
      this, MHD_OPTION_EXTERNAL_LOGGER, &log_mhd, nullptr, MHD_OPTION_END);
  if (!mhd_) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    *error = "policy.list_unsubscribe.listen " + listen.text + ": libmicrohttpd did not start";
    return false;
  }
  spdlog::info("unsubscribe endpoint listening on http://{}", bound_address_);
  return true;
}

void UnsubscribeEndpoint::stop() {
  if (!mhd_) return;
  MHD_stop_daemon(mhd_);
  mhd_ = nullptr;
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

int UnsubscribeEndpoint::on_request(void* conn, const char* url, const char* method,
                                    const char* upload_data, size_t* upload_data_size,
                                    void** state) {
  auto* connection = static_cast<MHD_Connection*>(conn);
  auto* request = static_cast<Request*>(*state);
  if (!request) {
    request = new Request;
    *state = request;
    request->method = method ? method : "";
    request->path = url ? url : "";
    if (const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH)) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(length, &end, 10);
      if (end == length || *end != '\0' || n > kMaxBody) request->too_large = true;
    }
    if (!request->too_large) return 1;  // wait for the body (if any)
  }
  if (*upload_data_size > 0 && !request->answered) {
    if (request->body.size() + *upload_data_size > kMaxBody) {
      request->too_large = true;
      request->body.clear();
    } else if (!request->too_large) {
      request->body.append(upload_data, *upload_data_size);
    }
    *upload_data_size = 0;
    if (!request->too_large) return 1;
  }
  if (request->answered) {
    *upload_data_size = 0;
    return 1;
  }
  request->answered = true;

  policy::UnsubscribeHttpAnswer answer;
  if (request->too_large) {
    answer.status = 413;
    answer.body = "request body too large\n";
    answer.content_type = "text/plain; charset=utf-8";
  } else {
    const std::shared_ptr<const conf::Config> current = config();
    const conf::ListUnsubscribeConfig* settings =
        current->policy && current->policy->list_unsubscribe ? &*current->policy->list_unsubscribe
                                                             : nullptr;
    const std::string keys[] = {settings ? settings->key.key : std::string()};
    answer = policy::decide_unsubscribe_request({request->method, request->path, request->body},
                                                policy::url_path_of(settings ? settings->url : ""),
                                                keys);
    if (answer.unsubscribe) {
      const policy::UnsubscribeToken token = *answer.unsubscribe;
      auto promise = std::make_shared<std::promise<bool>>();
      std::future<bool> stored = promise->get_future();
      feedback_.unsubscribe(token, policy::UnsubscribeMethod::one_click,
                            [promise](bool ok) { promise->set_value(ok); });
      const bool ok = stored.wait_for(kStoreTimeout) == std::future_status::ready && stored.get();
      answer = policy::unsubscribe_done(ok);
      if (!ok)
        spdlog::error("unsubscribe endpoint: {} recipient {} not stored; answered 503",
                      token.message.value, token.recipient);
    } else if (answer.status != 200) {
      spdlog::info("unsubscribe endpoint: {} {}: {}", answer.status, request->method,
                   answer.problem);
    }
  }
  MHD_Response* response = MHD_create_response_from_buffer(answer.body.size(), answer.body.data(),
                                                           MHD_RESPMEM_MUST_COPY);
  if (!response) return 0;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, answer.content_type.c_str());
  MHD_add_response_header(response, "Cache-Control", "no-store");
  for (const auto& [name, value] : answer.headers)
    MHD_add_response_header(response, name.c_str(), value.c_str());
  if (request->too_large) MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  metrics_.counter(kRequestsMetric, kRequestsHelp, {{"code", std::to_string(answer.status)}}).inc();
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(answer.status), response);
  MHD_destroy_response(response);
  return queued == MHD_YES ? 1 : 0;
}

void UnsubscribeEndpoint::on_completed(void** state) {
  delete static_cast<Request*>(*state);
  *state = nullptr;
}

}  // namespace ringmail::mta
