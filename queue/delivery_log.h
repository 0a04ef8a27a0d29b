// queue/delivery_log.h — the JSON-lines delivery log (CONTRACT.md
// "Delivery log"): one object per event, appended and flushed in order.
//
// Owns: the open log file. Any thread may write; a mutex keeps lines whole
// and in order. reopen() (SIGHUP, after logrotate moved the file) swaps in
// a new file without losing or splitting lines.
//
// Durability: each write is flushed to the kernel (fflush), not fsynced: the
// log is an account of events, the spool is the durable record. A Reception
// line is written only after the message's spool commit.
//
// Trust: record fields come from the network (addresses, HELO); they are
// written as JSON strings, invalid UTF-8 replaced, so a line is always one
// valid JSON object.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "runtime/event_hub.h"

namespace ringmail::queue {

struct SpoolMessage;

class DeliveryLog {
 public:
  // Opens `path` for appending (creating it 0640). Null with *error on failure.
  static std::unique_ptr<DeliveryLog> open(const std::filesystem::path& path, std::string* error);
  ~DeliveryLog();
  DeliveryLog(const DeliveryLog&) = delete;
  DeliveryLog& operator=(const DeliveryLog&) = delete;

  // Appends one line and flushes. False when the write failed (logged once
  // per failure streak through spdlog). write_ordered() keeps the fields in
  // the order given ("type" and "time" first, as in CONTRACT.md); json
  // objects come out with sorted keys.
  bool write(const nlohmann::json& record);
  bool write_ordered(const nlohmann::ordered_json& record);
  // Appends several lines with one flush, in order and contiguous.
  bool write_all(std::span<const nlohmann::ordered_json> records);
  // Closes and reopens the same path; on failure keeps the old file.
  bool reopen(std::string* error);

  const std::filesystem::path& path() const { return path_; }
  // Every line written, as it is written, for live subscribers (the admin
  // API's event stream); costs nothing while nobody subscribes.
  runtime::EventHub& events() { return events_; }

 private:
  DeliveryLog(std::filesystem::path path, std::FILE* file);
  bool append(const std::string& lines);

  std::filesystem::path path_;
  std::mutex mutex_;
  std::FILE* file_;
  bool failing_ = false;
  runtime::EventHub events_;
};

// "2026-01-02T03:04:05.678Z" (RFC 3339, UTC, milliseconds).
std::string format_rfc3339_ms(int64_t unix_ms);

// The Reception record for one recipient of a committed message.
nlohmann::ordered_json reception_record(const SpoolMessage& message, size_t recipient_index,
                                        int64_t now_unix_ms);

// One attempt's outcome for one recipient: Delivery, TransientFailure,
// Bounce or Expiration (CONTRACT.md "Delivery log"), with the fields in
// the contract's order and the Ringmail extensions (tls, next_attempt).
struct AttemptRecord {
  const char* type = "Delivery";
  int64_t now_unix_ms = 0;
  const SpoolMessage* message = nullptr;  // envelope and metadata; content not needed
  size_t recipient_index = 0;
  std::string_view site;
  std::string_view mx;
  std::string_view source;
  int code = 0;
  std::string_view enhanced;
  std::string_view text;
  uint32_t attempt = 1;
  std::string_view category;         // "" on Delivery
  std::string_view tls;              // "" in clear text
  int64_t next_attempt_unix_ms = 0;  // TransientFailure only
};
nlohmann::ordered_json attempt_record(const AttemptRecord& attempt);

// What came back about one sent recipient (CONTRACT.md "Feedback"): a
// bounce, delay, complaint, auto-reply or unsubscribe, with what the
// report said as the "report" object, its fields in the order given.
struct FeedbackRecord {
  int64_t now_unix_ms = 0;
  std::string_view feedback_type;
  std::string_view id;         // the sent message's
  std::string_view recipient;  // "" when unknown (a complaint about a forgotten message)
  std::string_view campaign;
  std::string_view tenant;
  std::string_view category;  // bounce category name, "" for none
  std::span<const std::pair<std::string, std::string>> report;
};
nlohmann::ordered_json feedback_record(const FeedbackRecord& feedback);

}  // namespace ringmail::queue
