// conf/config_api_keys.cc — reads and checks the tenant API keys file.
#include "conf/config_api_keys.h"

#include <yaml-cpp/yaml.h>

#include <cctype>

#include "conf/config_reader.h"

namespace ringmail::conf {
namespace {

constexpr size_t kMaxTenant = 255;

// The same rule as user names (conf/config_users.cc): tenants appear in
// logs, metrics labels and the API, so they stay printable and unspaced.
bool is_tenant_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxTenant) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u == 127) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_sha256(std::string_view hex, std::array<unsigned char, 32>* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    const int high = hex_value(hex[2 * i]);
    const int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*out)[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

}  // namespace

ApiKeysFile load_api_keys_file(const std::filesystem::path& file) {
  ApiKeysFile result;
  std::vector<ConfigError> warnings;
  detail::Reader r(file.string(), file.parent_path(), &result.errors, &warnings);
  try {
    std::optional<YAML::Node> loaded = r.load_file(file, "API keys file");
    if (!loaded) return result;
    detail::Item top{*loaded, "api_keys", 1};
    if (loaded->IsMap() || loaded->IsScalar()) {
      r.error(1, "", "expected a list of {tenant, sha256} entries");
      return result;
    }
    auto items = r.list(top);
    if (!items) return result;
    for (const detail::Item& item : *items) {
      auto fields = r.map(item, {"tenant", "sha256"});
      if (!fields) continue;
      auto tenant = r.string(*fields, "tenant", detail::Need::required);
      auto hash_item = r.field(*fields, "sha256", detail::Need::required);
      std::optional<std::string> hash_text;
      if (hash_item) hash_text = r.string(*hash_item);
      if (tenant && !is_tenant_name(*tenant)) {
        r.error(item.line, detail::child_path(item.path, "tenant"),
                "tenant names must be 1 to 255 printable characters without spaces");
        tenant.reset();
      }
      ApiKey key;
      if (hash_text && !parse_sha256(*hash_text, &key.sha256)) {
        r.error(hash_item->line, hash_item->path,
                "not a SHA-256 in hex (64 digits); make one with printf %s KEY | sha256sum");
        hash_text.reset();
      }
      if (!tenant || !hash_text) continue;
      bool duplicate = false;
      for (const ApiKey& seen : result.keys) {
        if (seen.sha256 == key.sha256) {
          // One key for two tenants could not say whose mail it is.
          r.error(hash_item->line, hash_item->path,
                  "the same key hash is given at line " + std::to_string(seen.line) + " (tenant " +
                      seen.tenant + ")");
          duplicate = true;
        }
      }
      if (duplicate) continue;
      key.tenant = *tenant;
      key.line = fields->line();
      result.keys.push_back(std::move(key));
    }
  } catch (const std::exception& e) {
    r.error(0, "", std::string("cannot load the API keys file: ") + e.what());
  }
  return result;
}

}  // namespace ringmail::conf
