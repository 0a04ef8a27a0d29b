// conf/config_reader.h — internal to conf/: walks a yaml-cpp tree, checks
// types, units and allowed keys, and collects every problem as a
// ConfigError ("FILE:LINE: key.path: problem") instead of stopping at the
// first one. Used by the config loader, the policy section and the users
// file reader; nothing outside conf/ should include it.
//
// Threads: a Reader belongs to one load on one thread. Network: operator
// input only. Never throws for bad input: every accessor reports and
// returns nullopt, and callers keep going to find the next problem.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "conf/config_units.h"

namespace ringmail::conf {

struct PolicyConfig;

namespace detail {

std::string child_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, size_t index);

// A DNS name of letters, digits, '-' and '_' (hostname, DKIM and
// return-path domains); no trailing dot.
bool is_host_name(std::string_view name);

// 1-based line of a node's first character; 0 when yaml-cpp has no mark.
int line_of(const YAML::Node& node);

// One value in the tree with where a user finds it. For an empty value
// ("key:" with nothing after it) the line is the key's line, not the next.
struct Item {
  YAML::Node node;
  std::string path;
  int line = 0;
};

// The entries of a mapping whose keys were checked against an allowed list.
class Fields {
 public:
  std::optional<Item> get(std::string_view key) const;
  bool has(std::string_view key) const { return get(key).has_value(); }
  const std::string& path() const { return path_; }
  int line() const { return line_; }

 private:
  friend class Reader;
  struct Entry {
    std::string key;
    int key_line = 0;
    YAML::Node value;
  };
  std::vector<Entry> entries_;
  std::string path_;
  int line_ = 0;
};

enum class Need { optional, required };

class Reader {
 public:
  Reader(std::string file_label, std::filesystem::path base_dir, std::vector<ConfigError>* errors,
         std::vector<ConfigError>* warnings);

  const std::string& file_label() const { return file_label_; }
  const std::filesystem::path& base_dir() const { return base_dir_; }
  size_t error_count() const { return errors_->size(); }

  void error(int line, std::string key_path, std::string problem);
  // Reads and parses a whole YAML file; on failure reports one error
  // (unreadable file, or the syntax error with its line) and returns nullopt.
  // `what` names the file in messages ("config file", "users file").
  std::optional<YAML::Node> load_file(const std::filesystem::path& file, std::string_view what);
  void warning(int line, std::string key_path, std::string problem);

  // A mapping with only the allowed keys; unknown and repeated keys are
  // reported and skipped. An empty value counts as an empty mapping.
  std::optional<Fields> map(const Item& item, std::initializer_list<std::string_view> allowed);
  // The elements of a sequence; an empty value counts as an empty list.
  std::optional<std::vector<Item>> list(const Item& item);

  // Field lookup: nullopt when absent, and then reported if required.
  std::optional<Item> field(const Fields& fields, std::string_view key, Need need);

  std::optional<std::string> string(const Item& item);
  std::optional<bool> boolean(const Item& item);
  std::optional<uint64_t> integer(const Item& item, uint64_t min, uint64_t max);
  std::optional<double> number(const Item& item);
  std::optional<Duration> duration(const Item& item);
  std::optional<uint64_t> size(const Item& item);
  std::optional<SocketAddress> address(const Item& item, const AddressOptions& options);
  std::optional<Network> network(const Item& item);
  // A file name, resolved against the config file's directory.
  std::optional<std::filesystem::path> path(const Item& item);

  template <class E>
  std::optional<E> choice(const Item& item,
                          std::initializer_list<std::pair<std::string_view, E>> choices) {
    auto text = string(item);
    if (!text) return std::nullopt;
    std::string names;
    for (const auto& [name, value] : choices) {
      if (*text == name) return value;
      names += names.empty() ? "" : ", ";
      names += name;
    }
    error(item.line, item.path, "expected one of " + names + "; got \"" + *text + "\"");
    return std::nullopt;
  }

  // Shorthands: look the key up in fields, then parse it as above.
  std::optional<std::string> string(const Fields& f, std::string_view key, Need need);
  std::optional<bool> boolean(const Fields& f, std::string_view key, Need need);
  std::optional<uint64_t> integer(const Fields& f, std::string_view key, Need need, uint64_t min,
                                  uint64_t max);
  std::optional<Duration> duration(const Fields& f, std::string_view key, Need need);
  std::optional<uint64_t> size(const Fields& f, std::string_view key, Need need);
  std::optional<std::filesystem::path> path(const Fields& f, std::string_view key, Need need);

  // Checks that a named file exists, is a regular file and can be opened;
  // reports "cannot read FILE: reason" at the item otherwise.
  bool check_readable_file(const Item& item, const std::filesystem::path& file);

 private:
  bool expect_scalar(const Item& item, const char* what);

  std::string file_label_;
  std::filesystem::path base_dir_;
  std::vector<ConfigError>* errors_;
  std::vector<ConfigError>* warnings_;
};

// The feedback loop's keys (conf/config_feedback.cc). Each reports its
// problems and leaves its target unset (or at its defaults) when the entry
// has any.
std::optional<HmacKey> read_key_file(Reader& reader, const Fields& fields, std::string_view key);
void read_return_path(Reader& reader, const Item& item, PolicyConfig& policy);
void read_list_unsubscribe(Reader& reader, const Item& item, PolicyConfig& policy);
void read_complaints(Reader& reader, const Item& item, PolicyConfig& policy);
void read_webhooks(Reader& reader, const Item& item, std::vector<Webhook>& webhooks);

// The policy: section (conf/config_policy.cc). item may be absent (nullopt):
// the result then holds the defaults.
std::shared_ptr<const PolicyConfig> read_policy(Reader& reader, const std::optional<Item>& item);

}  // namespace detail
}  // namespace ringmail::conf
