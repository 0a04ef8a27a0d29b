// admin-api/admin_server.h — the admin HTTP server on `admin.address`:
// libmicrohttpd moves the bytes, AdminRouter decides each request.
//
// Owns: the listening socket (bound here, so that a port in use is a
// start-up error with its reason), the libmicrohttpd daemon and its
// threads (one per connection, capped), the admin token (read from
// admin.token_file at start and at every reload), and the Server-Sent
// Events streams of GET /api/v1/events.
//
// Threads: its own. It never takes a lock that a shard or the delivery
// thread waits for: answers from delivery come through its mailbox
// (DaemonControl), metrics are read lock-free, events come from a bounded
// per-stream buffer that drops a slow consumer.
// Limits (a slow or hostile client cannot hold SMTP up, only its own
// connection): kMaxConnections connections, kIdleTimeout without a byte
// closes one, request headers within kMaxHeaderBytes, bodies over 1 MiB
// (limits.max_message_size for POST /api/v1/messages) get 413 (at once when
// Content-Length says so) and the connection is closed. An injection
// without valid credentials gets its 401 before its body is read.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "admin-api/admin_probe.h"
#include "admin-api/admin_router.h"
#include "mta/daemon.h"

struct MHD_Daemon;

namespace ringmail::runtime {
class MetricsRegistry;
}

namespace ringmail::admin {

class AdminServer final : public mta::ControlPlane {
 public:
  static constexpr unsigned kMaxConnections = 512;
  static constexpr unsigned kIdleTimeoutSeconds = 30;
  static constexpr size_t kMaxHeaderBytes = 32 * 1024;
  static constexpr size_t kEventBufferBytes = 1 << 20;  // per stream, then it is dropped

  explicit AdminServer(mta::DaemonControl& daemon);
  ~AdminServer() override;

  bool start(std::string* error) override;
  void reload(std::shared_ptr<const conf::Config> config) override;
  void stop() override;

  // The address it listens on (the actual port when configured as 0).
  std::string address() const { return bound_address_; }

  // libmicrohttpd's callbacks (C linkage helpers in the .cc).
  struct Request;
  int on_request(void* connection, const char* url, const char* method, const char* upload_data,
                 size_t* upload_data_size, void** state);
  void on_completed(void** state);

 private:
  bool read_token(const conf::Config& config, std::string* error);
  std::string token() const;
  void count(int status);

  mta::DaemonControl& daemon_;
  DnsDestinationFinder destinations_;
  SmtpProber prober_;
  AdminRouter router_;
  MHD_Daemon* mhd_ = nullptr;
  int listen_fd_ = -1;
  std::string bound_address_;
  mutable std::mutex token_mutex_;  // the token against a reload
  std::string token_;
  std::atomic<bool> metrics_auth_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace ringmail::admin
