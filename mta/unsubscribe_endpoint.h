// mta/unsubscribe_endpoint.h — the one-click unsubscribe endpoint on
// policy.list_unsubscribe.listen (CONTRACT.md "Feedback, suppression and
// compliance in detail"): libmicrohttpd moves the bytes,
// policy/unsubscribe_request.h decides each request, the feedback
// processor (mta/feedback_processor.h) carries out an unsubscribe, in
// order with the reports, and the answer waits until it is on disk.
//
// Owns: the listening socket (bound at start, so that a port in use is a
// start-up error), the libmicrohttpd daemon and its threads (one per
// connection, at most kMaxConnections).
// Threads: libmicrohttpd's; reload() and stop() from the daemon's main
// thread. Limits: bodies over kMaxBody get 413 and the connection closes;
// kIdleTimeoutSeconds without a byte closes one. It is plain HTTP: a TLS
// reverse proxy is expected in front of it (the URL is https://).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "conf/config.h"

struct MHD_Daemon;

namespace ringmail::runtime {
class MetricsRegistry;
}

namespace ringmail::mta {

class FeedbackProcessor;

class UnsubscribeEndpoint {
 public:
  static constexpr unsigned kMaxConnections = 256;
  static constexpr unsigned kIdleTimeoutSeconds = 15;
  static constexpr size_t kMaxBody = 4096;

  // feedback and metrics must outlive the endpoint.
  UnsubscribeEndpoint(FeedbackProcessor& feedback, runtime::MetricsRegistry& metrics)
      : feedback_(feedback), metrics_(metrics) {}
  ~UnsubscribeEndpoint();  // stop()
  UnsubscribeEndpoint(const UnsubscribeEndpoint&) = delete;
  UnsubscribeEndpoint& operator=(const UnsubscribeEndpoint&) = delete;

  // Listens on config->policy->list_unsubscribe->listen (which must be
  // set); false with the reason when it cannot.
  bool start(std::shared_ptr<const conf::Config> config, std::string* error);
  // The key and URL path from now on (the address changes with a restart).
  void reload(std::shared_ptr<const conf::Config> config);
  void stop();
  std::string address() const { return bound_address_; }

  struct Request;  // one request's state, for libmicrohttpd's callbacks
  int on_request(void* connection, const char* url, const char* method, const char* upload_data,
                 size_t* upload_data_size, void** state);
  void on_completed(void** state);

 private:
  std::shared_ptr<const conf::Config> config() const;

  FeedbackProcessor& feedback_;
  runtime::MetricsRegistry& metrics_;
  mutable std::mutex config_mutex_;
  std::shared_ptr<const conf::Config> config_;  // guarded by config_mutex_
  MHD_Daemon* mhd_ = nullptr;
  int listen_fd_ = -1;
  std::string bound_address_;
};

}  // namespace ringmail::mta
