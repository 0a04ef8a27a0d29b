// conf/config_reader.cc — typed, error-collecting access to a YAML tree.
#include "conf/config_reader.h"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

namespace ringmail::conf::detail {
namespace {

const char* type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing";
  }
  return "something else";
}

}  // namespace

std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

int line_of(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

std::optional<Item> Fields::get(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) {
      Item item;
      item.node = entry.value;
      item.path = child_path(path_, key);
      // A single value is reported where it is written; a mapping, a list
      // or an empty value at its key (yaml-cpp marks those at their first
      // entry or at the next token, often lines further down).
      int value_line = entry.value.IsScalar() ? line_of(entry.value) : 0;
      item.line = value_line > 0 ? value_line : entry.key_line;
      return item;
    }
  }
  return std::nullopt;
}

Reader::Reader(std::string file_label, std::filesystem::path base_dir,
               std::vector<ConfigError>* errors, std::vector<ConfigError>* warnings)
    : file_label_(std::move(file_label)),
      base_dir_(std::move(base_dir)),
      errors_(errors),
      warnings_(warnings) {}

std::optional<YAML::Node> Reader::load_file(const std::filesystem::path& file,
                                            std::string_view what) {
  std::ifstream stream(file, std::ios::binary);
  if (!stream) {
    error(0, "", "cannot read the " + std::string(what) + ": " + std::strerror(errno));
    return std::nullopt;
  }
  std::stringstream text;
  text << stream.rdbuf();
  try {
    return YAML::Load(text.str());
  } catch (const YAML::ParserException& e) {
    error(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "YAML syntax error: " + e.msg);
    return std::nullopt;
  }
}

void Reader::error(int line, std::string key_path, std::string problem) {
  errors_->push_back(ConfigError{file_label_, line, std::move(key_path), std::move(problem)});
}

void Reader::warning(int line, std::string key_path, std::string problem) {
  warnings_->push_back(ConfigError{file_label_, line, std::move(key_path), std::move(problem)});
}

std::optional<Fields> Reader::map(const Item& item,
                                  std::initializer_list<std::string_view> allowed) {
  Fields fields;
  fields.path_ = item.path;
  fields.line_ = item.line;
  if (item.node.IsNull()) return fields;
  if (!item.node.IsMap()) {
    error(item.line, item.path,
          std::string("expected a mapping (key: value), got ") + type_name(item.node));
    return std::nullopt;
  }
  // Range-for keeps each key/value pair alive; yaml-cpp's it->first refers
  // to a temporary.
  for (const auto& pair : item.node) {
    const YAML::Node& key_node = pair.first;
    int key_line = line_of(key_node);
    if (!key_node.IsScalar()) {
      error(key_line, item.path, "keys must be plain names");
      continue;
    }
    const std::string& key = key_node.Scalar();
    std::string key_path = child_path(item.path, key);
    bool known = false;
    for (std::string_view name : allowed) known = known || name == key;
    if (!known) {
      std::string names;
      for (std::string_view name : allowed) {
        names += names.empty() ? "" : ", ";
        names += name;
      }
      error(key_line, key_path, "unknown key (expected one of: " + names + ")");
      continue;
    }
    bool repeated = false;
    for (const Fields::Entry& seen : fields.entries_) {
      if (seen.key == key) {
        error(key_line, key_path,
              "key given twice (first at line " + std::to_string(seen.key_line) + ")");
        repeated = true;
      }
    }
    if (!repeated) fields.entries_.push_back(Fields::Entry{key, key_line, pair.second});
  }
  return fields;
}

std::optional<std::vector<Item>> Reader::list(const Item& item) {
  std::vector<Item> items;
  if (item.node.IsNull()) return items;
  if (!item.node.IsSequence()) {
    error(item.line, item.path, std::string("expected a list, got ") + type_name(item.node));
    return std::nullopt;
  }
  size_t index = 0;
  for (const YAML::Node& element : item.node) {
    int line = element.IsNull() ? 0 : line_of(element);
    items.push_back(Item{element, index_path(item.path, index), line > 0 ? line : item.line});
    ++index;
  }
  return items;
}

std::optional<Item> Reader::field(const Fields& fields, std::string_view key, Need need) {
  auto item = fields.get(key);
  if (!item && need == Need::required) {
    error(fields.line(), child_path(fields.path(), key), "required key missing");
  }
  return item;
}

bool Reader::expect_scalar(const Item& item, const char* what) {
  if (item.node.IsScalar()) return true;
  if (item.node.IsNull()) {
    error(item.line, item.path, std::string("missing value (expected ") + what + ")");
  } else {
    error(item.line, item.path, std::string("expected ") + what + ", got " + type_name(item.node));
  }
  return false;
}

std::optional<std::string> Reader::string(const Item& item) {
  if (!expect_scalar(item, "a string")) return std::nullopt;
  return item.node.Scalar();
}

std::optional<bool> Reader::boolean(const Item& item) {
  if (!expect_scalar(item, "true or false")) return std::nullopt;
  bool value = false;
  if (YAML::convert<bool>::decode(item.node, value)) return value;
  error(item.line, item.path, "expected true or false, got \"" + item.node.Scalar() + "\"");
  return std::nullopt;
}

std::optional<uint64_t> Reader::integer(const Item& item, uint64_t min, uint64_t max) {
  if (!expect_scalar(item, "a whole number")) return std::nullopt;
  const std::string& text = item.node.Scalar();
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec == std::errc::invalid_argument || end != text.data() + text.size()) {
    error(item.line, item.path, "expected a whole number, got \"" + text + "\"");
    return std::nullopt;
  }
  if (ec == std::errc::result_out_of_range || value < min || value > max) {
    error(
        item.line, item.path,
        "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + text);
    return std::nullopt;
  }
  return value;
}

std::optional<double> Reader::number(const Item& item) {
  if (!expect_scalar(item, "a number")) return std::nullopt;
  const std::string& text = item.node.Scalar();
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    error(item.line, item.path, "expected a number, got \"" + text + "\"");
    return std::nullopt;
  }
  return value;
}

std::optional<Duration> Reader::duration(const Item& item) {
  if (!expect_scalar(item, "a duration like 30s")) return std::nullopt;
  auto value = parse_duration(item.node.Scalar());
  if (!value) {
    error(item.line, item.path,
          "bad duration \"" + item.node.Scalar() +
              "\" (expected a number and ms, s, m, h or d, "
              "like 500ms, 30s, 5m, 4h, 5d)");
  }
  return value;
}

std::optional<uint64_t> Reader::size(const Item& item) {
  if (!expect_scalar(item, "a size like 50MiB")) return std::nullopt;
  auto value = parse_size(item.node.Scalar());
  if (!value) {
    error(item.line, item.path,
          "bad size \"" + item.node.Scalar() +
              "\" (expected bytes or a number and KiB, MiB, GiB or TiB, like 512KiB, 50MiB)");
  }
  return value;
}

std::optional<SocketAddress> Reader::address(const Item& item, const AddressOptions& options) {
  if (!expect_scalar(item, "an address like 127.0.0.1:25")) return std::nullopt;
  std::string problem;
  auto value = parse_socket_address(item.node.Scalar(), options, &problem);
  if (!value) error(item.line, item.path, problem);
  return value;
}

std::optional<Network> Reader::network(const Item& item) {
  if (!expect_scalar(item, "a network like 10.0.0.0/8")) return std::nullopt;
  std::string problem;
  bool host_bits_set = false;
  auto value = parse_network(item.node.Scalar(), &problem, &host_bits_set);
  if (!value) {
    error(item.line, item.path, problem);
  } else if (host_bits_set) {
    warning(item.line, item.path,
            "\"" + item.node.Scalar() +
                "\" has host bits set below the prefix; it means the "
                "whole network");
  }
  return value;
}

std::optional<std::filesystem::path> Reader::path(const Item& item) {
  auto text = string(item);
  if (!text) return std::nullopt;
  if (text->empty()) {
    error(item.line, item.path, "empty file name");
    return std::nullopt;
  }
  std::filesystem::path value(*text);
  if (value.is_relative()) value = base_dir_ / value;
  return value.lexically_normal();
}

std::optional<std::string> Reader::string(const Fields& f, std::string_view key, Need need) {
  auto item = field(f, key, need);
  return item ? string(*item) : std::nullopt;
}

std::optional<bool> Reader::boolean(const Fields& f, std::string_view key, Need need) {
  auto item = field(f, key, need);
  return item ? boolean(*item) : std::nullopt;
}

std::optional<uint64_t> Reader::integer(const Fields& f, std::string_view key, Need need,
                                        uint64_t min, uint64_t max) {
  auto item = field(f, key, need);
  return item ? integer(*item, min, max) : std::nullopt;
}

std::optional<Duration> Reader::duration(const Fields& f, std::string_view key, Need need) {
  auto item = field(f, key, need);
  return item ? duration(*item) : std::nullopt;
}

std::optional<uint64_t> Reader::size(const Fields& f, std::string_view key, Need need) {
  auto item = field(f, key, need);
  return item ? size(*item) : std::nullopt;
}

std::optional<std::filesystem::path> Reader::path(const Fields& f, std::string_view key,
                                                  Need need) {
  auto item = field(f, key, need);
  return item ? path(*item) : std::nullopt;
}

bool Reader::check_readable_file(const Item& item, const std::filesystem::path& file) {
  std::error_code ec;
  auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) {
    error(item.line, item.path, "file " + file.string() + " does not exist");
    return false;
  }
  if (!std::filesystem::is_regular_file(status)) {
    error(item.line, item.path, file.string() + " is not a regular file");
    return false;
  }
  std::ifstream stream(file, std::ios::binary);
  if (!stream) {
    error(item.line, item.path, "cannot read " + file.string() + ": " + std::strerror(errno));
    return false;
  }
  return true;
}

// Labels of letters, digits, '-' and '_', at most 63 octets each.
bool is_host_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

}  // namespace ringmail::conf::detail
