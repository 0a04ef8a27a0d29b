#include "mta/inbound/inbound_client_counter.h"

#include <sys/socket.h>

#include <cstring>

namespace ringmail::mta {

ClientKey client_key_of(int family, const uint8_t bytes[16]) {
  static constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET) return {std::string(reinterpret_cast<const char*>(bytes), 4)};
  if (std::memcmp(bytes, kV4Mapped, sizeof kV4Mapped) == 0) {
    return {std::string(reinterpret_cast<const char*>(bytes) + 12, 4)};
  }
  return {std::string(reinterpret_cast<const char*>(bytes), 8)};
}

bool ClientConnectionCounter::try_acquire(const ClientKey& key, uint32_t limit) {
  std::lock_guard lock(mutex_);
  uint32_t& held = counts_[key];  // a new entry starts at 0, below any limit
  if (limit != 0 && held >= limit) return false;
  ++held;
  return true;
}

void ClientConnectionCounter::release(const ClientKey& key) {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(key);
  if (it == counts_.end()) return;
  if (--it->second == 0) counts_.erase(it);
}

uint32_t ClientConnectionCounter::count(const ClientKey& key) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace ringmail::mta
