// mta/inbound/inbound_client_counter.h — connections held per client address, for
// limits.max_connections_per_ip, across all inbound shards.
//
// Owns: a count per client key (an IPv4 address, or the /64 of an IPv6
// address: one IPv6 client usually holds a whole /64). Any thread may call
// it; a mutex guards the table. It is used at accept and close only, never
// on the per-message path.
//
// SECURITY: keys come from the kernel (getpeername), never from what a
// client says; the table holds one entry per address that has a connection
// open, so it is bounded by the connections themselves.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ringmail::mta {

// The unit a limit counts: family and the address bytes that matter.
struct ClientKey {
  std::string bytes;  // 4 octets (IPv4, also IPv4-mapped IPv6) or 8 (IPv6 /64)
  bool operator==(const ClientKey&) const = default;
};

// family: AF_INET (bytes[0..3]) or AF_INET6 (bytes[0..15]); network order.
ClientKey client_key_of(int family, const uint8_t bytes[16]);

class ClientConnectionCounter {
 public:
  // Counts one more connection for key unless it already holds `limit`
  // (0: unlimited). True when counted; the caller then owes a release().
  bool try_acquire(const ClientKey& key, uint32_t limit);
  void release(const ClientKey& key);
  uint32_t count(const ClientKey& key) const;

 private:
  struct Hash {
    size_t operator()(const ClientKey& k) const { return std::hash<std::string>()(k.bytes); }
  };
  mutable std::mutex mutex_;
  std::unordered_map<ClientKey, uint32_t, Hash> counts_;
};

}  // namespace ringmail::mta
