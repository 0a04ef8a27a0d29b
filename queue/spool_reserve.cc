#include "queue/spool_reserve.h"

#include <algorithm>

namespace ringmail::queue {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kPage = 4096;
// Per message: its record (envelope, metadata) and the body's key. Per
// recipient: its record and three index keys (next attempt, site,
// campaign). Both rounded well up from what spool_codec writes.
constexpr uint64_t kMessageOverhead = 1024;
constexpr uint64_t kRecipientOverhead = 512;

uint64_t round_up_to_page(uint64_t bytes) { return (bytes + kPage - 1) / kPage * kPage; }

}  // namespace

uint64_t default_spool_reserve(uint64_t map_size) {
  const uint64_t scaled = std::clamp<uint64_t>(map_size / 64, 4 * kMiB, 256 * kMiB);
  return std::min(scaled, map_size / 4);
}

uint64_t spool_footprint(uint64_t content_bytes, size_t recipients) {
  return round_up_to_page(content_bytes + 64) + kMessageOverhead +
         kRecipientOverhead * uint64_t(recipients);
}

SpoolReserve::SpoolReserve(uint64_t reserve_bytes)
    : reserve_(reserve_bytes), margin_(reserve_bytes / 4) {}

uint64_t SpoolReserve::line() const { return refusing_ ? reserve_ + margin_ : reserve_; }

bool SpoolReserve::clearly_fits(const SpoolSpace& space, uint64_t bytes) const {
  if (reserve_ == 0) return true;
  return space.available_bytes() >= line() + bytes;
}

bool SpoolReserve::admit(uint64_t available, uint64_t bytes) {
  if (reserve_ == 0) return true;
  refusing_ = available < line() + bytes;
  return !refusing_;
}

void SpoolReserve::spool_reported_full() {
  if (reserve_ != 0) refusing_ = true;
}

}  // namespace ringmail::queue
