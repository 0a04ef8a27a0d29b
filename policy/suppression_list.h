// policy/suppression_list.h — addresses that must not be mailed again, per
// tenant ("*": every tenant), compared case-insensitively.
//
// Owns: the list in memory and the lookup the delivery planner makes
// before each attempt (a suppressed recipient is not attempted: it ends
// `suppressed`, logged `Suppressed`). Today nothing adds to it (the
// feedback issue adds bounces, complaints, the API and persistence in the
// spool), so it is empty and every recipient is attempted. Pure; one
// thread (the planner's).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ringmail::policy {

class SuppressionList {
 public:
  // Adds or replaces the entry; `reason` is logged with each suppression.
  void add(std::string_view tenant, std::string_view address, std::string reason);
  bool remove(std::string_view tenant, std::string_view address);
  // The reason, when `address` is suppressed for `tenant` or for every tenant.
  std::optional<std::string> find(std::string_view tenant, std::string_view address) const;
  size_t size() const { return entries_.size(); }

 private:
  static std::string key(std::string_view tenant, std::string_view address);
  std::unordered_map<std::string, std::string> entries_;  // "tenant\0address" -> reason
};

}  // namespace ringmail::policy
