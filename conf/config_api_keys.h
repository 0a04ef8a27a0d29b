// conf/config_api_keys.h — the tenant API keys file named by
// admin.api_keys_file: a YAML list of {tenant, sha256} where sha256 is the
// hex SHA-256 of the key (`printf %s KEY | sha256sum`). The keys themselves
// are never written anywhere; a key presented as `Authorization: Bearer
// KEY` is hashed and compared with these (admin-api/admin_router.h).
//
// Threads: load_api_keys_file() reads the file on the calling thread (config
// load and reload, never a shard). Trust: operator input; every entry is
// checked for shape, and problems carry the keys file's own FILE:LINE.
// Never throws.
#pragma once

#include <filesystem>
#include <vector>

#include "conf/config.h"

namespace ringmail::conf {

struct ApiKeysFile {
  std::vector<ApiKey> keys;         // only valid entries, in file order
  std::vector<ConfigError> errors;  // "KEYS_FILE:LINE: api_keys[i].key: problem"
};

ApiKeysFile load_api_keys_file(const std::filesystem::path& file);

}  // namespace ringmail::conf
