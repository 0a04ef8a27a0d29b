#include "admin-api/admin_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <iterator>

#include "runtime/event_hub.h"
#include "runtime/listen_socket.h"
#include "runtime/metrics_registry.h"

namespace ringmail::admin {

namespace {

constexpr auto kEventWait = std::chrono::milliseconds(500);
constexpr int kKeepAliveRounds = 20;  // a comment line every 10 s keeps proxies and timeouts happy

int bind_listener(const conf::SocketAddress& address, std::string* error, std::string* bound) {
  std::string why;
  // No SO_REUSEPORT: a second daemon on the same port is an error here.
  const int fd =
      runtime::listen_tcp(address.host, address.port, runtime::ListenOptions{256, false}, &why);
  if (fd < 0) {
    *error = "admin API cannot listen on " + address.text + ": " + why;
    return -1;
  }
  *bound = runtime::bound_address(address.host, fd);
  return fd;
}

void log_mhd(void*, const char* format, va_list ap) {
  char line[512];
  std::vsnprintf(line, sizeof line, format, ap);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  spdlog::debug("admin API: {}", text);
}

// One event stream: records from the delivery log's hub, framed as SSE.
struct EventStream {
  runtime::EventHub* hub = nullptr;
  std::shared_ptr<runtime::Subscription> subscription;
  const std::atomic<bool>* stopping = nullptr;
  std::string pending;  // framed bytes not yet handed to libmicrohttpd
  int idle_rounds = 0;
  bool ended = false;
};

ssize_t read_events(void* cls, uint64_t, char* buf, size_t max) {
  auto* s = static_cast<EventStream*>(cls);
  while (s->pending.empty()) {
    if (s->ended || s->stopping->load()) return MHD_CONTENT_READER_END_OF_STREAM;
    std::string record;
    switch (s->subscription->next(&record, kEventWait)) {
      case runtime::Subscription::Next::record:
        s->pending = "data: " + record + "\n\n";
        s->idle_rounds = 0;
        break;
      case runtime::Subscription::Next::timeout:
        if (++s->idle_rounds >= kKeepAliveRounds) {
          s->pending = ": keep-alive\n\n";
          s->idle_rounds = 0;
        }
        break;
      case runtime::Subscription::Next::closed:
        if (s->subscription->dropped()) {
          // Said once, so that a client can tell a drop from a shutdown.
          s->pending = "event: dropped\ndata: {\"error\":\"too slow: the stream fell behind\"}\n\n";
          spdlog::warn("admin API: an event stream fell behind and was dropped");
        }
        s->ended = true;
        break;
    }
  }
  const size_t n = std::min(max, s->pending.size());
  std::memcpy(buf, s->pending.data(), n);
  s->pending.erase(0, n);
  return static_cast<ssize_t>(n);
}

void free_events(void* cls) {
  auto* s = static_cast<EventStream*>(cls);
  if (s->hub) s->hub->unsubscribe(s->subscription);
  delete s;
}

MHD_Result collect_query(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* query = static_cast<std::vector<std::pair<std::string, std::string>>*>(cls);
  if (query->size() < 64) query->emplace_back(key ? key : "", value ? value : "");
  return MHD_YES;
}

MHD_Result access_handler(void* cls, MHD_Connection* connection, const char* url,
                          const char* method, const char*, const char* upload_data,
                          size_t* upload_data_size, void** state) {
  auto* server = static_cast<AdminServer*>(cls);
  return server->on_request(connection, url, method, upload_data, upload_data_size, state) != 0
             ? MHD_YES
             : MHD_NO;
}

void completed(void* cls, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
  static_cast<AdminServer*>(cls)->on_completed(state);
}

}  // namespace

struct AdminServer::Request {
  HttpRequest http;
  std::string peer_ip;
  size_t body_limit = kMaxRequestBody;
  bool answered = false;
  // Answered before its body was read (an injection without credentials):
  // the connection closes after the answer.
  bool refused_early = false;
};

namespace {

std::string peer_address(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!info || !info->client_addr) return "";
  char text[INET6_ADDRSTRLEN] = {};
  const sockaddr* address = info->client_addr;
  if (address->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, text, sizeof text);
  } else if (address->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, text,
              sizeof text);
  }
  return text;
}

}  // namespace

AdminServer::AdminServer(mta::DaemonControl& daemon)
    : daemon_(daemon), prober_(daemon, destinations_), router_(daemon, runtime::system_clock()) {
  router_.set_prober(&prober_);
  router_.set_destinations(&destinations_);
}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::read_token(const conf::Config& config, std::string* error) {
  std::ifstream in(config.admin.token_file, std::ios::binary);
  if (!in) {
    *error = "admin.token_file " + config.admin.token_file.string() + ": cannot be read";
    return false;
  }
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  token = conf::trim_token(token);
  if (token.empty()) {
    *error = "admin.token_file " + config.admin.token_file.string() + ": empty";
    return false;
  }
  std::lock_guard lock(token_mutex_);
  token_ = std::move(token);
  return true;
}

std::string AdminServer::token() const {
  std::lock_guard lock(token_mutex_);
  return token_;
}

bool AdminServer::start(std::string* error) {
  std::shared_ptr<const conf::Config> config = daemon_.config();
  if (!config->admin.address) return true;  // no admin API configured
  if (!read_token(*config, error)) return false;
  metrics_auth_.store(config->admin.metrics_auth);
  daemon_.metrics().declare("admin_requests_total", "Admin API requests answered, by status code",
                            runtime::MetricType::counter);
  listen_fd_ = bind_listener(*config->admin.address, error, &bound_address_);
  if (listen_fd_ < 0) return false;
  // One thread per connection: an event stream may wait for records
  // without holding anybody else up; the cap and the idle timeout bound
  // what a flood of connections costs.
  mhd_ = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
      nullptr, nullptr, &access_handler, this, MHD_OPTION_LISTEN_SOCKET, listen_fd_,
      MHD_OPTION_CONNECTION_LIMIT, kMaxConnections, MHD_OPTION_CONNECTION_TIMEOUT,
      kIdleTimeoutSeconds, MHD_OPTION_CONNECTION_MEMORY_LIMIT, kMaxHeaderBytes * 2,
      MHD_OPTION_THREAD_STACK_SIZE, size_t{256 * 1024}, MHD_OPTION_NOTIFY_COMPLETED, &completed,
      this, MHD_OPTION_EXTERNAL_LOGGER, &log_mhd, nullptr, MHD_OPTION_END);
  if (!mhd_) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    *error = "admin API on " + config->admin.address->text + ": libmicrohttpd did not start";
    return false;
  }
  spdlog::info("admin API listening on http://{}", bound_address_);
  return true;
}

void AdminServer::reload(std::shared_ptr<const conf::Config> config) {
  if (!mhd_) return;
  std::string error;
  if (!config->admin.token_file.empty() && !read_token(*config, &error))
    spdlog::error("admin API: {}; the old token stays in force", error);
  metrics_auth_.store(config->admin.metrics_auth);
}

void AdminServer::stop() {
  if (!mhd_) return;
  stopping_.store(true);  // event streams end within kEventWait
  MHD_stop_daemon(mhd_);
  mhd_ = nullptr;
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void AdminServer::count(int status) {
  daemon_.metrics()
      .counter("admin_requests_total", "Admin API requests answered, by status code",
               {{"code", std::to_string(status)}})
      .inc();
}

int AdminServer::on_request(void* conn, const char* url, const char* method,
                            const char* upload_data, size_t* upload_data_size, void** state) {
  auto* connection = static_cast<MHD_Connection*>(conn);
  auto* request = static_cast<Request*>(*state);
  if (!request) {
    request = new Request;
    *state = request;
    request->http.method = method ? method : "";
    request->http.path = url ? url : "";
    if (const char* auth =
            MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))
      request->http.authorization = auth;
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &collect_query,
                              &request->http.query);
    request->peer_ip = peer_address(connection);
    request->body_limit = request_body_limit(request->http.path, *daemon_.config());
    // A declared body over the limit is refused before a byte of it is read.
    if (const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH)) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(length, &end, 10);
      if (end == length || *end != '\0' || n > request->body_limit)
        request->http.body_too_large = true;
    }
    // A message-sized body is not read for a client that may not send one.
    if (request->http.path == kInjectionPath &&
        !router_.authenticate(request->http.authorization, token()).known())
      request->refused_early = true;
    if (!request->http.body_too_large && !request->refused_early) {
      return 1;  // wait for the body (if any)
    }
  }
  if (*upload_data_size > 0 && !request->answered) {
    if (request->http.body.size() + *upload_data_size > request->body_limit) {
      request->http.body_too_large = true;
      request->http.body.clear();
    } else if (!request->http.body_too_large) {
      request->http.body.append(upload_data, *upload_data_size);
    }
    *upload_data_size = 0;
    if (!request->http.body_too_large) return 1;
  }
  if (request->answered) {
    *upload_data_size = 0;
    return 1;
  }
  request->answered = true;

  HttpResponse response =
      router_.handle(request->http, token(), metrics_auth_.load(), request->peer_ip);
  MHD_Response* mhd_response = nullptr;
  if (response.event_stream) {
    auto* stream = new EventStream;
    stream->hub = daemon_.events();
    stream->subscription = stream->hub->subscribe(response.event_types, kEventBufferBytes);
    stream->stopping = &stopping_;
    stream->pending = ": ringmail delivery-log events\n\n";
    mhd_response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, &read_events,
                                                     stream, &free_events);
    if (mhd_response) MHD_add_response_header(mhd_response, "Cache-Control", "no-cache");
  } else {
    mhd_response = MHD_create_response_from_buffer(response.body.size(), response.body.data(),
                                                   MHD_RESPMEM_MUST_COPY);
  }
  if (!mhd_response) return 0;
  MHD_add_response_header(mhd_response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          response.content_type.c_str());
  for (const auto& [name, value] : response.headers)
    MHD_add_response_header(mhd_response, name.c_str(), value.c_str());
  if (request->http.body_too_large || request->refused_early)
    MHD_add_response_header(mhd_response, MHD_HTTP_HEADER_CONNECTION, "close");
  count(response.status);
  const MHD_Result queued =
      MHD_queue_response(connection, static_cast<unsigned>(response.status), mhd_response);
  MHD_destroy_response(mhd_response);
  return queued == MHD_YES ? 1 : 0;
}

void AdminServer::on_completed(void** state) {
  delete static_cast<Request*>(*state);
  *state = nullptr;
}

}  // namespace ringmail::admin
