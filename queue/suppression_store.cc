#include "queue/suppression_store.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

namespace ringmail::queue {

namespace {

constexpr std::string_view kSources[] = {"bounce", "complaint", "unsubscribe", "admin"};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  });
  return out;
}

}  // namespace

std::string_view to_string(SuppressionSource source) {
  return kSources[static_cast<size_t>(source)];
}

std::optional<SuppressionSource> parse_suppression_source(std::string_view text) {
  for (size_t i = 0; i < std::size(kSources); ++i) {
    if (kSources[i] == text) return static_cast<SuppressionSource>(i);
  }
  return std::nullopt;
}

bool valid_suppression_address(std::string_view address) {
  if (address.empty() || address.size() > kMaxSuppressionAddress) return false;
  const size_t at = address.rfind('@');
  if (at == 0 || at == std::string_view::npos || at + 1 == address.size()) return false;
  for (unsigned char c : address) {
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>') return false;
  }
  return true;
}

std::optional<std::string> suppression_key(std::string_view tenant, std::string_view address) {
  if (tenant.empty() || address.empty()) return std::nullopt;
  if (tenant.find('\n') != std::string_view::npos || address.find('\n') != std::string_view::npos)
    return std::nullopt;
  std::string key = kSuppressionPrefix;
  key.append(tenant);
  key.push_back('\n');
  key.append(lower(address));
  if (!valid_control_key(key)) return std::nullopt;
  return key;
}

std::string encode_suppression(const SuppressionEntry& entry) {
  nlohmann::json j = {{"v", 1},
                      {"reason", entry.reason},
                      {"source", to_string(entry.source)},
                      {"category", entry.category},
                      {"campaign", entry.campaign},
                      {"created", entry.created_unix_ms}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<SuppressionEntry> decode_suppression(std::string_view key, std::string_view bytes) {
  if (!key.starts_with(kSuppressionPrefix)) return std::nullopt;
  key.remove_prefix(std::size(kSuppressionPrefix) - 1);
  const size_t nl = key.find('\n');
  if (nl == std::string_view::npos || nl == 0 || nl + 1 == key.size()) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto text = [&](const char* name) -> const std::string* {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto v = j.find("v");
  auto created = j.find("created");
  const std::string* reason = text("reason");
  const std::string* source = text("source");
  const std::string* category = text("category");
  const std::string* campaign = text("campaign");
  if (v == j.end() || !v->is_number_unsigned() || v->get<uint64_t>() != 1) return std::nullopt;
  if (created == j.end() || !created->is_number_integer()) return std::nullopt;
  if (!reason || !source || !category || !campaign) return std::nullopt;
  std::optional<SuppressionSource> parsed = parse_suppression_source(*source);
  if (!parsed) return std::nullopt;
  SuppressionEntry e;
  e.tenant = std::string(key.substr(0, nl));
  e.address = std::string(key.substr(nl + 1));
  e.reason = *reason;
  e.source = *parsed;
  e.category = *category;
  e.campaign = *campaign;
  e.created_unix_ms = created->get<int64_t>();
  return e;
}

uint64_t SuppressionStore::hash_of(std::string_view key) {
  return std::hash<std::string_view>{}(key);
}

size_t SuppressionStore::load(uint64_t* corrupt) {
  std::unordered_set<uint64_t> index;
  size_t entries = 0;
  uint64_t bad = 0;
  spool_.for_each_control(kSuppressionPrefix, [&](std::string_view key, std::string_view value) {
    if (decode_suppression(key, value)) {
      index.insert(hash_of(key));
      ++entries;
    } else {
      ++bad;
    }
    return true;
  });
  std::unique_lock lock(mutex_);
  index_ = std::move(index);
  if (corrupt) *corrupt = bad;
  return entries;
}

StoreOutcome SuppressionStore::add(std::span<const SuppressionEntry> entries, size_t* added) {
  *added = 0;
  std::vector<ControlWrite> writes;
  std::vector<uint64_t> hashes;
  writes.reserve(entries.size());
  for (const SuppressionEntry& e : entries) {
    std::optional<std::string> key = suppression_key(e.tenant, e.address);
    if (!key) return {StoreStatus::failed, "not a suppression: '" + e.address + "'"};
    SuppressionEntry stored = e;
    stored.address = lower(e.address);
    if (stored.reason.size() > kMaxSuppressionReason) stored.reason.resize(kMaxSuppressionReason);
    hashes.push_back(hash_of(*key));
    writes.push_back(ControlWrite{std::move(*key), encode_suppression(stored)});
  }
  // Count what is new before writing: an entry that is there already is
  // replaced (its reason updated), not added.
  size_t fresh = 0;
  for (const ControlWrite& w : writes) {
    if (!contains_key(w.key)) ++fresh;
  }
  StoreOutcome written = spool_.put_controls(writes);
  if (!written.ok()) return written;
  {
    std::unique_lock lock(mutex_);
    index_.insert(hashes.begin(), hashes.end());
  }
  *added = fresh;
  return written;
}

StoreOutcome SuppressionStore::remove(std::string_view tenant, std::string_view address,
                                      bool* found) {
  *found = false;
  std::optional<std::string> key = suppression_key(tenant, address);
  if (!key || !contains_key(*key)) return {StoreStatus::ok, {}};
  ControlWrite erase{*key, std::nullopt};
  StoreOutcome written = spool_.put_controls(std::span(&erase, 1));
  if (!written.ok()) return written;
  *found = true;
  // Another key with the same hash keeps it in the index (a collision):
  // the index may say yes where the records say no, never the other way.
  std::unique_lock lock(mutex_);
  index_.erase(hash_of(*key));
  return written;
}

std::optional<ControlWrite> SuppressionStore::stage(const SuppressionEntry& entry) {
  std::optional<std::string> key = suppression_key(entry.tenant, entry.address);
  if (!key) return std::nullopt;
  SuppressionEntry stored = entry;
  stored.address = lower(entry.address);
  {
    std::unique_lock lock(mutex_);
    index_.insert(hash_of(*key));
  }
  return ControlWrite{std::move(*key), encode_suppression(stored)};
}

bool SuppressionStore::contains_key(const std::string& key) const {
  {
    std::shared_lock lock(mutex_);
    if (!index_.contains(hash_of(key))) return false;
  }
  return spool_.control(key).has_value();
}

std::optional<SuppressionEntry> SuppressionStore::find(std::string_view tenant,
                                                       std::string_view address) const {
  for (std::string_view who : {tenant, kEveryTenant}) {
    if (who.empty()) continue;
    std::optional<std::string> key = suppression_key(who, address);
    if (!key) continue;
    {
      std::shared_lock lock(mutex_);
      if (index_.empty() || !index_.contains(hash_of(*key))) continue;
    }
    // A hit is confirmed against the record: a hash collision, or a staged
    // entry whose commit failed, suppresses nobody.
    std::optional<std::string> value = spool_.control(*key);
    if (!value) continue;
    if (std::optional<SuppressionEntry> e = decode_suppression(*key, *value)) return e;
  }
  return std::nullopt;
}

std::vector<SuppressionEntry> SuppressionStore::list(std::string_view tenant,
                                                     std::string_view address, size_t limit) const {
  std::vector<SuppressionEntry> out;
  if (!tenant.empty() && !address.empty()) {
    std::optional<std::string> key = suppression_key(tenant, address);
    if (!key) return out;
    std::optional<std::string> value = spool_.control(*key);
    if (value) {
      if (std::optional<SuppressionEntry> e = decode_suppression(*key, *value))
        out.push_back(std::move(*e));
    }
    return out;
  }
  std::string prefix = kSuppressionPrefix;
  if (!tenant.empty()) {
    prefix.append(tenant);
    prefix.push_back('\n');
  }
  const std::string wanted = lower(address);
  spool_.for_each_control(prefix, [&](std::string_view key, std::string_view value) {
    if (out.size() >= limit) return false;
    std::optional<SuppressionEntry> e = decode_suppression(key, value);
    if (e && (wanted.empty() || e->address == wanted)) out.push_back(std::move(*e));
    return true;
  });
  return out;
}

size_t SuppressionStore::size() const {
  std::shared_lock lock(mutex_);
  return index_.size();
}

}  // namespace ringmail::queue
