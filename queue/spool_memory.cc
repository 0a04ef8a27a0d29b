#include "queue/spool_memory.h"

#include <set>

#include "queue/campaign_records.h"
#include "queue/spool_codec.h"
#include "queue/spool_retention.h"

namespace ringmail::queue {

namespace {

// The control map as the retention rules see it (queue/spool_retention.h).
class MapControlAccess final : public ControlTableAccess {
 public:
  explicit MapControlAccess(std::map<std::string, std::string>& map) : map_(map) {}
  StoreOutcome get(const std::string& key, std::optional<std::string>* value) override {
    auto it = map_.find(key);
    if (it == map_.end()) {
      value->reset();
    } else {
      *value = it->second;
    }
    return {StoreStatus::ok, {}};
  }
  StoreOutcome put(const std::string& key, std::string_view value) override {
    map_[key] = std::string(value);
    return {StoreStatus::ok, {}};
  }
  StoreOutcome remove(const std::string& key) override {
    map_.erase(key);
    return {StoreStatus::ok, {}};
  }
  StoreOutcome keys(const std::string& first, const std::string& below, size_t limit,
                    std::vector<std::string>* out) override {
    for (auto it = map_.lower_bound(first);
         it != map_.end() && it->first < below && out->size() < limit; ++it) {
      out->push_back(it->first);
    }
    return {StoreStatus::ok, {}};
  }

 private:
  std::map<std::string, std::string>& map_;
};

}  // namespace

MemorySpool::MemorySpool(uint64_t capacity_bytes, SpoolOptions options)
    : capacity_(capacity_bytes), options_(options) {}

StoreOutcome MemorySpool::store_batch(std::span<SpoolMessage* const> messages) {
  std::lock_guard lock(mutex_);
  ++store_calls_;
  if (StoreOutcome injected = injected_failure_locked(); !injected.ok()) return injected;
  return store_locked(messages);
}

StoreOutcome MemorySpool::injected_failure_locked() {
  if (injected_failures_.empty()) return {StoreStatus::ok, {}};
  const StoreStatus status = injected_failures_.front();
  injected_failures_.pop_front();
  return {status, "injected failure"};
}

StoreOutcome MemorySpool::store_locked(std::span<SpoolMessage* const> messages) {
  uint64_t added = 0;
  std::set<std::string_view> batch_ids;
  for (const SpoolMessage* m : messages) {
    if (m->id.value.empty() || m->id.value.find('\0') != std::string::npos) {
      return {StoreStatus::failed, "message id is empty or contains NUL"};
    }
    if (m->envelope.recipients.empty()) {
      return {StoreStatus::failed, "message " + m->id.value + " has no recipients"};
    }
    if (messages_.contains(m->id.value) || !batch_ids.insert(m->id.value).second) {
      return {StoreStatus::failed, "duplicate message id " + m->id.value};
    }
    added += m->content.size();
  }
  if (added > capacity_ - used_) {
    return {StoreStatus::spool_full, "memory spool capacity reached"};
  }
  for (const SpoolMessage* m : messages) {
    // The origin is how it came, not what is stored (as in LMDB).
    messages_.emplace(m->id.value, *m).first->second.origin = MessageOrigin::received;
  }
  used_ += added;
  return {StoreStatus::ok, {}};
}

StoreOutcome MemorySpool::commit(std::span<SpoolMessage* const> messages,
                                 std::span<const RecipientUpdate> updates,
                                 std::span<const MessageId> finished,
                                 std::span<const ControlWrite> writes,
                                 std::span<const StatsAddition> additions) {
  for (const ControlWrite& w : writes) {
    if (!valid_control_key(w.key)) return {StoreStatus::failed, "bad control key"};
  }
  std::lock_guard lock(mutex_);
  ++store_calls_;
  // A commit of updates alone can fail too.
  if (StoreOutcome injected = injected_failure_locked(); !injected.ok()) return injected;
  const int64_t now = (options_.clock ? *options_.clock : runtime::system_clock()).unix_ms();
  // All or nothing, as in LMDB: retried messages are checked, and every
  // change is made on copies, before anything is stored.
  std::map<std::string, std::string> controls = controls_;
  MapControlAccess control(controls);
  StatsBatch stats;
  for (const SpoolMessage* m : messages) {
    if (m->origin != MessageOrigin::dead_letter_retry) continue;
    StoreOutcome taken = take_back_dead_letter(control, *m, &stats);
    if (!taken.ok()) return taken;
  }
  if (!messages.empty()) {
    StoreOutcome stored = store_locked(messages);
    if (!stored.ok()) return stored;
  }
  for (const SpoolMessage* m : messages) {
    if (m->origin == MessageOrigin::received) stats.count_new(*m);
  }
  for (const RecipientUpdate& u : updates) {  // stale updates are skipped, as in LMDB
    auto it = messages_.find(u.id.value);
    if (it == messages_.end() || u.index >= it->second.envelope.recipients.size()) continue;
    Recipient& r = it->second.envelope.recipients[u.index];
    stats.count_transition(it->second.meta, r.state, u.state, u.category);
    if (u.response.code != 0 || !u.response.text.empty()) r.last_response = u.response;
    r.category = u.category ? std::string(mail::bounce_category_name(*u.category)) : "";
    r.state = u.state;
    r.attempts = u.attempts;
    r.next_attempt_unix_ms = u.next_attempt_unix_ms;
  }
  for (const StatsAddition& a : additions) stats.count_addition(a);
  for (const MessageId& id : finished) {
    auto it = messages_.find(id.value);
    if (it == messages_.end()) continue;
    bool done = true;
    for (const Recipient& r : it->second.envelope.recipients) {
      done = done && is_final(r.state);
    }
    if (!done) continue;
    const SpoolMessage& m = it->second;
    std::string record;
    encode_message_record(m, &record);
    auto body = [&]() -> std::optional<std::string> {
      std::string value(body_value_size(m.content), '\0');
      encode_body_into(m.content, value.data());
      return value;
    };
    (void)retain_finished(control, m, record, body, options_.retention, now);
    used_ -= it->second.content.size();
    messages_.erase(it);
  }
  std::string scratch;
  for (const auto& [key, record] : stats.new_campaigns()) {
    if (controls.contains(key)) continue;
    scratch.clear();
    encode_campaign(record, &scratch);
    controls[key] = scratch;
  }
  for (const auto& [key, delta] : stats.deltas()) {
    DeliveryStats stored;
    if (auto it = controls.find(key); it != controls.end()) {
      if (!decode_stats(it->second, &stored)) stored = DeliveryStats{};
    }
    stored.add(delta);
    scratch.clear();
    encode_stats(stored, &scratch);
    controls[key] = scratch;
  }
  size_t expired = 0;
  (void)expire_retained(control, now, options_.expire_per_commit + 2 * finished.size(), &expired);
  for (const ControlWrite& w : writes) {
    if (w.value) {
      controls[w.key] = *w.value;
    } else {
      controls.erase(w.key);
    }
  }
  controls_ = std::move(controls);
  return {StoreStatus::ok, {}};
}

void MemorySpool::set_retention(const RetentionPolicy& policy) {
  std::lock_guard lock(mutex_);
  options_.retention = policy;
}

StoreOutcome MemorySpool::drop_dead_letter(const MessageId& id, bool* found) {
  std::lock_guard lock(mutex_);
  MapControlAccess control(controls_);
  return queue::drop_dead_letter(control, id.value, found);
}

StoreOutcome MemorySpool::update_recipients(std::span<const RecipientUpdate> updates) {
  std::lock_guard lock(mutex_);
  for (const RecipientUpdate& u : updates) {  // all or nothing, like LMDB
    auto it = messages_.find(u.id.value);
    if (it == messages_.end() || u.index >= it->second.envelope.recipients.size())
      return {StoreStatus::failed, "no recipient " + std::to_string(u.index) + " in " + u.id.value};
  }
  for (const RecipientUpdate& u : updates) {
    Recipient& r = messages_.at(u.id.value).envelope.recipients[u.index];
    r.state = u.state;
    r.attempts = u.attempts;
    r.next_attempt_unix_ms = u.next_attempt_unix_ms;
  }
  return {StoreStatus::ok, {}};
}

std::optional<SpoolMessage> MemorySpool::load_message(const MessageId& id,
                                                      bool with_content) const {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(id.value);
  if (it == messages_.end()) return std::nullopt;
  SpoolMessage copy = it->second;
  if (!with_content) copy.content.clear();
  return copy;
}

void MemorySpool::for_each_recipient(const RecipientVisitor& visit) const {
  std::vector<SpoolMessage> snapshot;
  {
    std::lock_guard lock(mutex_);
    snapshot.reserve(messages_.size());
    for (const auto& [id, m] : messages_) {
      snapshot.push_back(m);
      snapshot.back().content.clear();
    }
  }
  for (const SpoolMessage& m : snapshot) {
    for (size_t i = 0; i < m.envelope.recipients.size(); ++i) visit(m, i);
  }
}

RecoverySummary MemorySpool::recover() {
  std::lock_guard lock(mutex_);
  RecoverySummary summary;
  summary.format_version = 1;
  summary.messages = messages_.size();
  for (const auto& [id, m] : messages_) {
    for (const Recipient& r : m.envelope.recipients) {
      ++summary.recipients;
      ++summary.recipients_by_state[static_cast<size_t>(r.state)];
      if (is_active(r.state)) ++summary.scheduled;
    }
  }
  return summary;
}

SpoolStats MemorySpool::stats() const {
  std::lock_guard lock(mutex_);
  SpoolStats stats;
  stats.map_size_bytes = capacity_;
  stats.used_bytes = used_;
  stats.messages = messages_.size();
  for (const auto& [id, m] : messages_) stats.recipients += m.envelope.recipients.size();
  return stats;
}

SpoolSpace MemorySpool::space(CountFreePages count) const {
  std::lock_guard lock(mutex_);
  SpoolSpace space;
  space.map_size_bytes = capacity_;
  space.map_used_bytes = used_;
  space.filesystem_free_bytes = std::numeric_limits<uint64_t>::max();
  space.free_pages_counted = count == CountFreePages::yes;
  return space;
}

StoreOutcome MemorySpool::put_control(const std::string& key,
                                      const std::optional<std::string>& value) {
  // As the LMDB spool, whose keys are bounded by LMDB's key size.
  if (!valid_control_key(key)) return {StoreStatus::failed, "bad control key"};
  std::lock_guard lock(mutex_);
  if (value) {
    controls_[key] = *value;
  } else {
    controls_.erase(key);
  }
  return {StoreStatus::ok, {}};
}

StoreOutcome MemorySpool::put_controls(std::span<const ControlWrite> writes) {
  for (const ControlWrite& w : writes) {  // all or nothing, like LMDB
    if (!valid_control_key(w.key)) return {StoreStatus::failed, "bad control key"};
  }
  std::lock_guard lock(mutex_);
  for (const ControlWrite& w : writes) {
    if (w.value) {
      controls_[w.key] = *w.value;
    } else {
      controls_.erase(w.key);
    }
  }
  return {StoreStatus::ok, {}};
}

void MemorySpool::for_each_control(const std::string& prefix, const ControlVisitor& visit) const {
  std::lock_guard lock(mutex_);
  for (auto it = controls_.lower_bound(prefix);
       it != controls_.end() && it->first.starts_with(prefix); ++it) {
    if (!visit(it->first, it->second)) return;
  }
}

std::vector<std::pair<std::string, std::string>> MemorySpool::controls(
    const std::string& prefix) const {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = controls_.lower_bound(prefix);
       it != controls_.end() && it->first.starts_with(prefix); ++it) {
    out.push_back(*it);
  }
  return out;
}

std::optional<std::string> MemorySpool::control(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = controls_.find(key);
  if (it == controls_.end()) return std::nullopt;
  return it->second;
}

StatsDeltas MemorySpool::delivery_stats(const std::string& prefix) const {
  std::lock_guard lock(mutex_);
  StatsDeltas out;
  for (auto it = controls_.lower_bound(prefix);
       it != controls_.end() && it->first.starts_with(prefix); ++it) {
    DeliveryStats stats;
    if (decode_stats(it->second, &stats)) out.emplace(it->first, stats);
  }
  return out;
}

void MemorySpool::fail_next_stores(StoreStatus status, int count) {
  std::lock_guard lock(mutex_);
  for (int i = 0; i < count; ++i) injected_failures_.push_back(status);
}

uint64_t MemorySpool::store_calls() const {
  std::lock_guard lock(mutex_);
  return store_calls_;
}

}  // namespace ringmail::queue
