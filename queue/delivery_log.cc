#include "queue/delivery_log.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "mail/mail_time.h"
#include "queue/spool_message.h"

namespace ringmail::queue {
namespace {

std::FILE* open_append(const std::filesystem::path& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = "delivery log " + path.string() + ": " + std::strerror(errno);
    return nullptr;
  }
  std::FILE* file = ::fdopen(fd, "a");
  if (!file) {
    *error = "delivery log " + path.string() + ": " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  return file;
}

// Network input may hold invalid UTF-8: replace it rather than throw.
template <typename Json>
std::string to_line(const Json& record) {
  std::string line = record.dump(-1, ' ', false, Json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

}  // namespace

std::unique_ptr<DeliveryLog> DeliveryLog::open(const std::filesystem::path& path,
                                               std::string* error) {
  std::FILE* file = open_append(path, error);
  if (!file) return nullptr;
  return std::unique_ptr<DeliveryLog>(new DeliveryLog(path, file));
}

DeliveryLog::DeliveryLog(std::filesystem::path path, std::FILE* file)
    : path_(std::move(path)), file_(file) {}

DeliveryLog::~DeliveryLog() {
  if (file_) std::fclose(file_);
}

bool DeliveryLog::append(const std::string& lines) {
  std::lock_guard lock(mutex_);
  bool ok = std::fwrite(lines.data(), 1, lines.size(), file_) == lines.size();
  ok = std::fflush(file_) == 0 && ok;
  if (!ok && !failing_) {
    spdlog::error("delivery log {}: write failed: {}", path_.string(), std::strerror(errno));
  }
  failing_ = !ok;
  // Under the lock, so that subscribers see the lines in the file's order.
  events_.publish(lines);
  return ok;
}

bool DeliveryLog::write(const nlohmann::json& record) { return append(to_line(record)); }

bool DeliveryLog::write_ordered(const nlohmann::ordered_json& record) {
  return append(to_line(record));
}

bool DeliveryLog::write_all(std::span<const nlohmann::ordered_json> records) {
  std::string lines;
  for (const auto& record : records) lines += to_line(record);
  return append(lines);
}

bool DeliveryLog::reopen(std::string* error) {
  std::FILE* fresh = open_append(path_, error);
  if (!fresh) return false;
  std::lock_guard lock(mutex_);
  std::fclose(file_);
  file_ = fresh;
  failing_ = false;
  return true;
}

std::string format_rfc3339_ms(int64_t unix_ms) { return mail::format_rfc3339_ms(unix_ms); }

nlohmann::ordered_json reception_record(const SpoolMessage& message, size_t recipient_index,
                                        int64_t now_unix_ms) {
  return nlohmann::ordered_json{
      {"type", "Reception"},
      {"time", format_rfc3339_ms(now_unix_ms)},
      {"id", message.id.value},
      {"sender", message.envelope.sender},
      {"recipient", message.envelope.recipients[recipient_index].address},
      {"tenant", message.meta.tenant},
      {"campaign", message.meta.campaign},
      {"listener", message.meta.listener},
      {"client_ip", message.meta.client_ip},
      {"size", message.meta.size},
  };
}

nlohmann::ordered_json attempt_record(const AttemptRecord& a) {
  const SpoolMessage& m = *a.message;
  nlohmann::ordered_json record{
      {"type", a.type},
      {"time", format_rfc3339_ms(a.now_unix_ms)},
      {"id", m.id.value},
      {"sender", m.envelope.sender},
      {"recipient", m.envelope.recipients[a.recipient_index].address},
      {"tenant", m.meta.tenant},
      {"campaign", m.meta.campaign},
      {"site", a.site},
      {"mx", a.mx},
      {"source", a.source},
      {"response", {{"code", a.code}, {"enhanced", a.enhanced}, {"text", a.text}}},
      {"attempt", a.attempt},
      {"size", m.meta.size}};
  if (!a.category.empty()) record["category"] = a.category;
  if (!a.tls.empty()) record["tls"] = a.tls;
  if (a.next_attempt_unix_ms != 0)
    record["next_attempt"] = format_rfc3339_ms(a.next_attempt_unix_ms);
  return record;
}

nlohmann::ordered_json feedback_record(const FeedbackRecord& f) {
  nlohmann::ordered_json report = nlohmann::ordered_json::object();
  for (const auto& [name, value] : f.report) report[name] = value;
  return nlohmann::ordered_json{
      {"type", "Feedback"},
      {"time", format_rfc3339_ms(f.now_unix_ms)},
      {"feedback_type", f.feedback_type},
      {"id", f.id},
      {"recipient", f.recipient},
      {"campaign", f.campaign},
      {"tenant", f.tenant},
      {"category", f.category},
      {"report", std::move(report)},
  };
}

}  // namespace ringmail::queue
