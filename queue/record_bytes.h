// queue/record_bytes.h — the byte-level pieces every versioned spool
// record is written and read with: little/big-endian integers, strings as
// a u32 length then bytes, a bounds-checked Reader over untrusted bytes,
// and the version byte + CRC-32 trailer frame. Internal to queue/ (the
// spool codec and the control-table records); pure, any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "queue/spool_codec.h"

namespace ringmail::queue {

inline void put_u8(std::string* out, uint8_t v) { out->push_back(static_cast<char>(v)); }

inline void put_u32le(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 4);
}

inline void put_u64le(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}

inline void put_u32be(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * (3 - i))) & 0xff);
  out->append(b, 4);
}

inline void put_u64be(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  out->append(b, 8);
}

inline void put_str(std::string* out, std::string_view s) {
  put_u32le(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

inline uint32_t get_u32be(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

inline uint64_t get_u64be(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// Bounds-checked reader over an untrusted record. The first failure sticks;
// later reads return zero values, so decoders check ok() once per field
// group rather than after every read.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  uint8_t u8(const char* field) {
    if (!need(1, field)) return 0;
    return static_cast<uint8_t>(bytes_[pos_++]);
  }
  uint32_t u32le(const char* field) {
    if (!need(4, field)) return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(bytes_[pos_ + i])} << (8 * i);
    pos_ += 4;
    return v;
  }
  uint64_t u64le(const char* field) {
    if (!need(8, field)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(bytes_[pos_ + i])} << (8 * i);
    pos_ += 8;
    return v;
  }
  void str(const char* field, std::string* out) {
    const uint32_t len = u32le(field);
    if (!need(len, field)) return;
    out->assign(bytes_.data() + pos_, len);
    pos_ += len;
  }
  bool flag(const char* field) {
    const uint8_t v = u8(field);
    if (ok() && v > 1) fail(std::string(field) + ": not a boolean (" + std::to_string(v) + ")");
    return v == 1;
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t position() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

 private:
  bool need(size_t n, const char* field) {
    if (!ok()) return false;
    if (remaining() < n) {
      fail(std::string("truncated at ") + field + " (offset " + std::to_string(pos_) + ", need " +
           std::to_string(n) + ", have " + std::to_string(remaining()) + ")");
      return false;
    }
    return true;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  std::string error_;
};

// Checks the version byte and the CRC trailer; on success *payload is the
// bytes between them.
inline DecodeResult open_checked_record(std::string_view bytes, const char* kind,
                                        std::string_view* payload,
                                        uint8_t version_wanted = kRecordVersion) {
  if (bytes.size() < 5) {
    return DecodeResult::failure(std::string(kind) + " record truncated (" +
                                 std::to_string(bytes.size()) + " bytes)");
  }
  const uint8_t version = static_cast<uint8_t>(bytes[0]);
  if (version != version_wanted) {
    return DecodeResult::failure(std::string(kind) + " record has unknown version " +
                                 std::to_string(version));
  }
  const std::string_view covered = bytes.substr(0, bytes.size() - 4);
  Reader trailer(bytes.substr(bytes.size() - 4));
  const uint32_t stored = trailer.u32le("crc");
  if (stored != crc32(covered)) {
    return DecodeResult::failure(std::string(kind) + " record checksum mismatch (" +
                                 std::to_string(bytes.size()) + " bytes)");
  }
  *payload = covered.substr(1);
  return {};
}

inline void append_crc(std::string* out, size_t record_start) {
  const uint32_t crc = crc32(std::string_view(*out).substr(record_start));
  put_u32le(out, crc);
}

}  // namespace ringmail::queue
