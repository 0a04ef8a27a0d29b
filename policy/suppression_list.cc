#include "policy/suppression_list.h"

#include <cctype>

namespace ringmail::policy {

std::string SuppressionList::key(std::string_view tenant, std::string_view address) {
  std::string k(tenant);
  k.push_back('\0');
  for (char c : address)
    k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return k;
}

void SuppressionList::add(std::string_view tenant, std::string_view address, std::string reason) {
  entries_[key(tenant, address)] = std::move(reason);
}

bool SuppressionList::remove(std::string_view tenant, std::string_view address) {
  return entries_.erase(key(tenant, address)) > 0;
}

std::optional<std::string> SuppressionList::find(std::string_view tenant,
                                                 std::string_view address) const {
  if (entries_.empty()) return std::nullopt;
  for (std::string_view who : {tenant, std::string_view("*")}) {
    auto it = entries_.find(key(who, address));
    if (it != entries_.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace ringmail::policy
