// conf/config_users.cc — reads and checks the users file.
#include "conf/config_users.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cctype>
#include <fstream>
#include <sstream>

#include "conf/config_reader.h"

namespace ringmail::conf {
namespace {

bool is_user_name(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    // AUTH PLAIN separates fields with NUL; keep names printable and free
    // of spaces so that logs and tenant names stay unambiguous.
    if (u <= 32 || u == 127) return false;
  }
  return true;
}

}  // namespace

bool looks_like_crypt_hash(std::string_view text) {
  static constexpr std::array<std::string_view, 6> kPrefixes = {"$y$", "$gy$", "$6$",
                                                                "$5$", "$2b$", "$2y$"};
  bool known = false;
  for (std::string_view prefix : kPrefixes) known = known || text.starts_with(prefix);
  if (!known || text.size() < 20) return false;
  size_t dollars = 0;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '$') ++dollars;
    if (!(std::isalnum(u) || c == '.' || c == '/' || c == '$' || c == '=' || c == ',')) {
      return false;
    }
  }
  // "$id$salt$hash" at the least; the last part (the hash) is not empty.
  return dollars >= 3 && text.back() != '$';
}

UsersFile load_users_file(const std::filesystem::path& file) {
  UsersFile result;
  std::vector<ConfigError> warnings;
  detail::Reader r(file.string(), file.parent_path(), &result.errors, &warnings);
  try {
    std::optional<YAML::Node> loaded = r.load_file(file, "users file");
    if (!loaded) return result;
    YAML::Node root = *loaded;
    detail::Item top{root, "users", 1};
    if (root.IsMap()) {
      r.error(1, "", "expected a list of {name, password} entries");
      return result;
    }
    auto items = r.list(top);
    if (!items) return result;
    for (const detail::Item& item : *items) {
      auto fields = r.map(item, {"name", "password"});
      if (!fields) continue;
      auto name = r.string(*fields, "name", detail::Need::required);
      auto password_item = r.field(*fields, "password", detail::Need::required);
      std::optional<std::string> password;
      if (password_item) password = r.string(*password_item);
      if (name && !is_user_name(*name)) {
        r.error(item.line, detail::child_path(item.path, "name"),
                "user names must be printable and without spaces");
        name.reset();
      }
      if (password && !looks_like_crypt_hash(*password)) {
        r.error(password_item->line, password_item->path,
                "not a crypt(3) hash ($y$, $6$, $5$ or $2b$); make one with "
                "mkpasswd -m yescrypt");
        password.reset();
      }
      if (!name || !password) continue;
      bool duplicate = false;
      for (const UserEntry& seen : result.users) {
        if (seen.name == *name) {
          r.error(item.line, detail::child_path(item.path, "name"),
                  "user \"" + *name + "\" given twice (first at line " + std::to_string(seen.line) +
                      ")");
          duplicate = true;
        }
      }
      if (!duplicate) result.users.push_back(UserEntry{*name, *password, fields->line()});
    }
  } catch (const std::exception& e) {
    r.error(0, "", std::string("cannot load the users file: ") + e.what());
  }
  return result;
}

}  // namespace ringmail::conf
