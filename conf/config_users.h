// conf/config_users.h — the users file named by auth.users_file: a YAML
// list of {name, password} where password is a crypt(3) hash as made by
// mkpasswd ("$y$…" yescrypt, "$6$…" sha512-crypt, "$5$…" sha256-crypt,
// "$2b$…" bcrypt). Clear-text passwords are refused.
//
// Threads: load_users_file() reads the file on the calling thread (startup
// and reload, never a shard). Network: operator input only; the hashes are
// checked for shape here and verified by the auth module with crypt_r.
// Never throws.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "conf/config.h"

namespace ringmail::conf {

struct UserEntry {
  std::string name;
  std::string password_hash;
  int line = 0;  // 1-based line of the entry in the users file
};

struct UsersFile {
  std::vector<UserEntry> users;     // only valid entries, in file order
  std::vector<ConfigError> errors;  // "USERS_FILE:LINE: users[i].key: problem"
};

UsersFile load_users_file(const std::filesystem::path& file);

// True when text has the shape of a crypt(3) hash of a supported method.
bool looks_like_crypt_hash(std::string_view text);

}  // namespace ringmail::conf
