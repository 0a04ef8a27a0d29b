#include "queue/spool_message.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>

namespace ringmail::queue {

MessageId make_message_id() {
  static const uint32_t nonce = [] {
    std::random_device rd;
    return rd() & 0xffffu;
  }();
  static std::atomic<uint32_t> counter{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now).count();
  const uint32_t seq = counter.fetch_add(1, std::memory_order_relaxed) & 0xfffffu;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%011llx%04x%05x",
                static_cast<unsigned long long>(ms) & 0xfffffffffffull, nonce, seq);
  return MessageId{buf};
}

const char* to_string(RecipientState state) {
  switch (state) {
    case RecipientState::queued:
      return "queued";
    case RecipientState::in_flight:
      return "in_flight";
    case RecipientState::deferred:
      return "deferred";
    case RecipientState::delivered:
      return "delivered";
    case RecipientState::bounced:
      return "bounced";
    case RecipientState::expired:
      return "expired";
    case RecipientState::suppressed:
      return "suppressed";
    case RecipientState::cancelled:
      return "cancelled";
    case RecipientState::quarantined:
      return "quarantined";
  }
  return "unknown";
}

}  // namespace ringmail::queue
