// conf/config_secret.cc — read_hmac_key_file().
#include "conf/config_secret.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace ringmail::conf {

std::optional<std::string> read_hmac_key_file(const std::filesystem::path& file,
                                              std::string* problem) {
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) {
    *problem = "file " + file.string() + " does not exist";
    return std::nullopt;
  }
  if (!std::filesystem::is_regular_file(status)) {
    *problem = file.string() + " is not a regular file";
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    *problem = "cannot read " + file.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string key(kMaxHmacKeyFileOctets + 1, '\0');
  in.read(key.data(), static_cast<std::streamsize>(key.size()));
  key.resize(static_cast<size_t>(in.gcount()));
  if (key.size() > kMaxHmacKeyFileOctets) {
    *problem = file.string() + " is larger than " + std::to_string(kMaxHmacKeyFileOctets) +
               " octets; a key file holds one key";
    return std::nullopt;
  }
  if (!key.empty() && key.back() == '\n') key.pop_back();
  if (key.size() < kMinHmacKeyOctets) {
    *problem = "the key in " + file.string() + " has " + std::to_string(key.size()) +
               " octets; at least " + std::to_string(kMinHmacKeyOctets) +
               " are needed (make one with: openssl rand -hex 32 > FILE)";
    return std::nullopt;
  }
  return key;
}

}  // namespace ringmail::conf
