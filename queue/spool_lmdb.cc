#include "queue/spool_lmdb.h"

#include <fcntl.h>
#include <lmdb.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <unordered_set>

#include "queue/campaign_records.h"
#include "queue/spool_codec.h"
#include "queue/spool_retention.h"

namespace ringmail::queue {
namespace {

constexpr std::string_view kFormatKey = "format_version";
constexpr std::string_view kCreatedKey = "created_unix_ms";

MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string_view as_view(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

std::string lmdb_error(const char* what, int rc) {
  return std::string(what) + ": " + mdb_strerror(rc);
}

// Keys come from disk and may be garbage: print them safely.
std::string printable(std::string_view bytes) {
  std::string out;
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(ch);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

StoreOutcome failure(const char* what, int rc) {
  const bool full = rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT;
  return {full ? StoreStatus::spool_full : StoreStatus::failed, lmdb_error(what, rc)};
}

uint64_t filesystem_free_bytes(const std::filesystem::path& dir) {
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) return UINT64_MAX;  // unknown: the map decides
  return uint64_t{vfs.f_bavail} * vfs.f_frsize;
}

// LMDB reports a short write while flushing pages as EIO ("short write,
// filesystem full?"), so EIO at commit on a filesystem with no room left is
// a full spool, not a broken disk.
constexpr uint64_t kFullFilesystemSlack = 4ull << 20;

// Read-only transaction that aborts itself.
class ReadTxn {
 public:
  explicit ReadTxn(MDB_env* env) { rc_ = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn_); }
  ~ReadTxn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  ReadTxn(const ReadTxn&) = delete;
  ReadTxn& operator=(const ReadTxn&) = delete;
  int rc() const { return rc_; }
  MDB_txn* get() const { return txn_; }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &cursor_); }
  ~Cursor() {
    if (cursor_) mdb_cursor_close(cursor_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  int rc() const { return rc_; }
  // Positions the cursor; returns false at the end or on error.
  bool get(MDB_cursor_op op) {
    if (!cursor_) return false;
    rc_ = mdb_cursor_get(cursor_, &key_, &value_, op);
    return rc_ == MDB_SUCCESS;
  }
  bool seek(std::string_view key) {
    key_ = as_val(key);
    return get(MDB_SET_RANGE);
  }
  std::string_view key() const { return as_view(key_); }
  std::string_view value() const { return as_view(value_); }

 private:
  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{};
  MDB_val value_{};
  int rc_ = 0;
};

// The control table inside one write transaction, for the retention rules
// (queue/spool_retention.h).
class LmdbControlAccess final : public ControlTableAccess {
 public:
  LmdbControlAccess(MDB_txn* txn, MDB_dbi dbi) : txn_(txn), dbi_(dbi) {}
  StoreOutcome get(const std::string& key, std::optional<std::string>* value) override {
    MDB_val k = as_val(key);
    MDB_val v{};
    const int rc = mdb_get(txn_, dbi_, &k, &v);
    if (rc == MDB_NOTFOUND) {
      value->reset();
      return {StoreStatus::ok, {}};
    }
    if (rc != MDB_SUCCESS) return failure("mdb_get(control)", rc);
    *value = std::string(as_view(v));
    return {StoreStatus::ok, {}};
  }
  StoreOutcome put(const std::string& key, std::string_view value) override {
    MDB_val k = as_val(key);
    MDB_val v = as_val(value);
    const int rc = mdb_put(txn_, dbi_, &k, &v, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(control)", rc);
    return {StoreStatus::ok, {}};
  }
  StoreOutcome remove(const std::string& key) override {
    MDB_val k = as_val(key);
    const int rc = mdb_del(txn_, dbi_, &k, nullptr);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(control)", rc);
    return {StoreStatus::ok, {}};
  }
  StoreOutcome keys(const std::string& first, const std::string& below, size_t limit,
                    std::vector<std::string>* out) override {
    Cursor cursor(txn_, dbi_);
    if (cursor.rc() != MDB_SUCCESS) return failure("mdb_cursor_open(control)", cursor.rc());
    for (bool have = cursor.seek(first); have && out->size() < limit && cursor.key() < below;
         have = cursor.get(MDB_NEXT)) {
      out->emplace_back(cursor.key());
    }
    if (cursor.rc() != MDB_SUCCESS && cursor.rc() != MDB_NOTFOUND)
      return failure("mdb_cursor_get(control)", cursor.rc());
    return {StoreStatus::ok, {}};
  }

 private:
  MDB_txn* txn_;
  MDB_dbi dbi_;
};

// One message as found by a walk over "messages" and "recipients".
struct WalkedMessage {
  bool usable = false;             // the message record decoded
  SpoolMessage message;            // recipients sized to recipient_count
  std::vector<bool> recipient_ok;  // per index: its record exists and decoded
  MessageRecordInfo info;
};

class LmdbSpool final : public Spool {
 public:
  LmdbSpool(MDB_env* env, std::filesystem::path dir, const SpoolOptions& options)
      : env_(env),
        dir_(std::move(dir)),
        clock_(options.clock ? *options.clock : runtime::system_clock()),
        expire_per_commit_(options.expire_per_commit),
        keep_status_ms_(options.retention.keep_status_ms),
        keep_failed_ms_(options.retention.keep_failed_ms) {}
  ~LmdbSpool() override { mdb_env_close(env_); }

  bool open_databases(std::string* error);

  StoreOutcome store_batch(std::span<SpoolMessage* const> messages) override;
  std::optional<SpoolMessage> load_message(const MessageId& id, bool with_content) const override;
  void for_each_recipient(const RecipientVisitor& visit) const override;
  RecoverySummary recover() override;
  SpoolStats stats() const override;
  SpoolSpace space(CountFreePages count) const override;
  StoreOutcome update_recipients(std::span<const RecipientUpdate> updates) override;
  StoreOutcome commit(std::span<SpoolMessage* const> messages,
                      std::span<const RecipientUpdate> updates, std::span<const MessageId> finished,
                      std::span<const ControlWrite> controls = {},
                      std::span<const StatsAddition> additions = {}) override;
  StoreOutcome put_control(const std::string& key,
                           const std::optional<std::string>& value) override;
  StoreOutcome put_controls(std::span<const ControlWrite> writes) override;
  void for_each_control(const std::string& prefix, const ControlVisitor& visit) const override;
  std::vector<std::pair<std::string, std::string>> controls(
      const std::string& prefix) const override;
  std::optional<std::string> control(const std::string& key) const override;
  StatsDeltas delivery_stats(const std::string& prefix) const override;

  // Reads the statistics journal left by earlier runs (after open_databases).
  void load_stats_journal();
  void set_retention(const RetentionPolicy& policy) override {
    keep_status_ms_.store(policy.keep_status_ms, std::memory_order_relaxed);
    keep_failed_ms_.store(policy.keep_failed_ms, std::memory_order_relaxed);
  }
  StoreOutcome drop_dead_letter(const MessageId& id, bool* found) override;

 private:
  RetentionPolicy retention() const {
    return {keep_status_ms_.load(std::memory_order_relaxed),
            keep_failed_ms_.load(std::memory_order_relaxed)};
  }
  // True when the expiry index has an entry due at now_ms (a read).
  bool retained_expired(int64_t now_ms) const;
  // missing (when not null) is set instead of failing when the message or
  // recipient does not exist.
  // stats (when not null) counts the recipient's transition.
  StoreOutcome update_one(MDB_txn* txn, const RecipientUpdate& u, std::string* scratch,
                          bool* missing = nullptr, StatsBatch* stats = nullptr);
  // Creates the batch's new campaign records and writes its deltas: as a
  // journal entry, or, every kFoldEvery commits, folded with the journal's
  // into the records (the journal then deleted). *fold says which.
  StoreOutcome apply_stats(MDB_txn* txn, const StatsBatch& stats, std::string* scratch, bool* fold);
  // After a commit that wrote `stats`: the in-memory side of the journal.
  void stats_committed(const StatsBatch& stats, bool fold);
  // Puts `key` (value), or deletes it (nullopt; absent is fine): an LMDB code.
  int write_control(MDB_txn* txn, const std::string& key, const std::optional<std::string>& value);
  StoreOutcome remove_if_final(MDB_txn* txn, const MessageId& id, const RetentionPolicy& policy,
                               int64_t now_ms);
  static StoreOutcome check_messages(std::span<SpoolMessage* const> messages);
  StoreOutcome put_message(MDB_txn* txn, const SpoolMessage& m, std::string* scratch);
  // Merge-walks messages and their recipients in id order (both databases
  // sort by id first), calling on_message for each message record and
  // on_problem for each inconsistency. Never reads bodies.
  void walk(MDB_txn* txn, const std::function<void(WalkedMessage&)>& on_message,
            const std::function<void(std::string)>& on_problem) const;

  MDB_env* env_;
  std::filesystem::path dir_;
  MDB_dbi meta_ = 0, messages_ = 0, bodies_ = 0, recipients_ = 0;
  MDB_dbi idx_next_ = 0, idx_site_ = 0, idx_campaign_ = 0;
  MDB_dbi control_ = 0;  // control-plane state; added without a format change
  uint32_t format_version_ = 0;
  const runtime::Clock& clock_;
  const size_t expire_per_commit_;
  std::atomic<int64_t> keep_status_ms_;
  std::atomic<int64_t> keep_failed_ms_;

  // The statistics journal (queue/campaign_records.h): entries on disk
  // since the last fold, their sum (what delivery_stats() adds to the
  // records), the next entry's sequence. The writer changes them after a
  // commit; readers take stats_mutex_, which the writer holds across the
  // commit of a transaction that writes statistics, so that a reader sees
  // the records and the sum of one state.
  static constexpr uint32_t kFoldEvery = 64;
  mutable std::mutex stats_mutex_;
  StatsDeltas unfolded_;
  uint32_t journal_entries_ = 0;
  uint64_t journal_next_ = 0;
  // Campaign records known to exist (they are never deleted): no lookup
  // per message. Writer only; bounded.
  std::unordered_set<std::string> known_campaigns_;
  static constexpr size_t kMaxKnownCampaigns = 100000;
};

bool LmdbSpool::open_databases(std::string* error) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) {
    *error = lmdb_error("mdb_txn_begin", rc);
    return false;
  }
  const struct {
    const char* name;
    MDB_dbi* dbi;
  } dbs[] = {{"meta", &meta_},
             {"messages", &messages_},
             {"bodies", &bodies_},
             {"recipients", &recipients_},
             {"idx_next", &idx_next_},
             {"idx_site", &idx_site_},
             {"idx_campaign", &idx_campaign_},
             {"control", &control_}};
  for (const auto& db : dbs) {
    rc = mdb_dbi_open(txn, db.name, MDB_CREATE, db.dbi);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      *error = lmdb_error((std::string("opening database ") + db.name).c_str(), rc);
      return false;
    }
  }

  MDB_val key = as_val(kFormatKey);
  MDB_val value;
  rc = mdb_get(txn, meta_, &key, &value);
  if (rc == MDB_NOTFOUND) {
    MDB_stat st;
    mdb_stat(txn, messages_, &st);
    if (st.ms_entries != 0) {
      mdb_txn_abort(txn);
      *error = "spool has messages but no format marker; refusing to guess its layout";
      return false;
    }
    char be[4];
    for (int i = 0; i < 4; ++i) be[i] = static_cast<char>(kSpoolFormatVersion >> (8 * (3 - i)));
    MDB_val version{4, be};
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const std::string created = std::to_string(now);
    MDB_val created_key = as_val(kCreatedKey);
    MDB_val created_val = as_val(created);
    rc = mdb_put(txn, meta_, &key, &version, 0);
    if (rc == MDB_SUCCESS) rc = mdb_put(txn, meta_, &created_key, &created_val, 0);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      *error = lmdb_error("writing the format marker", rc);
      return false;
    }
    format_version_ = kSpoolFormatVersion;
  } else if (rc == MDB_SUCCESS) {
    if (value.mv_size != 4) {
      mdb_txn_abort(txn);
      *error = "format marker is corrupt (" + std::to_string(value.mv_size) + " bytes)";
      return false;
    }
    const auto* p = static_cast<const unsigned char*>(value.mv_data);
    format_version_ =
        (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    if (format_version_ > kSpoolFormatVersion || format_version_ == 0) {
      mdb_txn_abort(txn);
      *error = "spool format " + std::to_string(format_version_) +
               " is not supported by this ringmaild (it knows format " +
               std::to_string(kSpoolFormatVersion) +
               "); run the ringmaild that wrote it, or move the spool away";
      return false;
    }
  } else {
    mdb_txn_abort(txn);
    *error = lmdb_error("reading the format marker", rc);
    return false;
  }
  // idx_campaign is no longer kept up (queue/spool_codec.h): what an
  // earlier build left there goes, in this one transaction.
  MDB_stat campaign_index{};
  if (mdb_stat(txn, idx_campaign_, &campaign_index) == MDB_SUCCESS &&
      campaign_index.ms_entries > 0) {
    rc = mdb_drop(txn, idx_campaign_, 0);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      *error = lmdb_error("emptying idx_campaign", rc);
      return false;
    }
    spdlog::info("spool: {} entries of the unused campaign index removed",
                 campaign_index.ms_entries);
  }
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) {
    *error = lmdb_error("committing the database handles", rc);
    return false;
  }
  return true;
}

StoreOutcome LmdbSpool::put_message(MDB_txn* txn, const SpoolMessage& m, std::string* scratch) {
  const std::string& id = m.id.value;
  MDB_val key = as_val(id);

  scratch->clear();
  encode_message_record(m, scratch);
  MDB_val value = as_val(*scratch);
  int rc = mdb_put(txn, messages_, &key, &value, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) return {StoreStatus::failed, "duplicate message id " + id};
  if (rc != MDB_SUCCESS) return failure("mdb_put(messages)", rc);

  // Reserve the body in place: one copy, straight into the page.
  MDB_val body{body_value_size(m.content), nullptr};
  rc = mdb_put(txn, bodies_, &key, &body, MDB_RESERVE);
  if (rc != MDB_SUCCESS) return failure("mdb_put(bodies)", rc);
  encode_body_into(m.content, static_cast<char*>(body.mv_data));

  MDB_val empty{0, nullptr};
  for (uint32_t i = 0; i < m.envelope.recipients.size(); ++i) {
    const Recipient& rcpt = m.envelope.recipients[i];
    const std::string rkey = recipient_key(id, i);
    scratch->clear();
    encode_recipient_record(rcpt, scratch);
    MDB_val k = as_val(rkey);
    MDB_val v = as_val(*scratch);
    rc = mdb_put(txn, recipients_, &k, &v, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(recipients)", rc);
    if (!is_active(rcpt.state)) continue;

    const std::string next = next_attempt_key(rcpt.next_attempt_unix_ms, id, i);
    k = as_val(next);
    rc = mdb_put(txn, idx_next_, &k, &empty, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(idx_next)", rc);
    const std::string site = site_key(rcpt.domain, id, i);
    k = as_val(site);
    rc = mdb_put(txn, idx_site_, &k, &empty, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(idx_site)", rc);
  }
  return {StoreStatus::ok, {}};
}

StoreOutcome LmdbSpool::store_batch(std::span<SpoolMessage* const> messages) {
  return commit(messages, {}, {});
}

StoreOutcome LmdbSpool::check_messages(std::span<SpoolMessage* const> messages) {
  for (const SpoolMessage* m : messages) {
    if (m->id.value.empty() || m->id.value.find('\0') != std::string::npos) {
      return {StoreStatus::failed, "message id is empty or contains NUL"};
    }
    if (m->envelope.recipients.empty() || m->envelope.recipients.size() > kMaxRecipientsPerRecord) {
      return {StoreStatus::failed, "message " + m->id.value + " has " +
                                       std::to_string(m->envelope.recipients.size()) +
                                       " recipients"};
    }
  }
  return {StoreStatus::ok, {}};
}

StoreOutcome LmdbSpool::commit(std::span<SpoolMessage* const> messages,
                               std::span<const RecipientUpdate> updates,
                               std::span<const MessageId> finished,
                               std::span<const ControlWrite> controls,
                               std::span<const StatsAddition> additions) {
  if (StoreOutcome checked = check_messages(messages); !checked.ok()) return checked;
  for (const ControlWrite& w : controls) {
    if (!valid_control_key(w.key)) return {StoreStatus::failed, "bad control key"};
  }
  const int64_t now = clock_.unix_ms();
  if (messages.empty() && updates.empty() && finished.empty() && controls.empty() &&
      additions.empty() && !retained_expired(now))
    return {StoreStatus::ok, {}};

  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_begin", rc);
  std::string scratch;
  scratch.reserve(512);
  auto abort_with = [&](StoreOutcome outcome) {
    mdb_txn_abort(txn);
    return outcome;
  };
  LmdbControlAccess control(txn, control_);
  StatsBatch stats;
  for (const SpoolMessage* m : messages) {
    if (m->origin == MessageOrigin::dead_letter_retry) {
      // Before the message: with no dead letter left, nothing is stored.
      StoreOutcome taken = take_back_dead_letter(control, *m, &stats);
      if (!taken.ok()) return abort_with(std::move(taken));
    }
    StoreOutcome outcome = put_message(txn, *m, &scratch);
    if (!outcome.ok()) return abort_with(std::move(outcome));
    if (m->origin == MessageOrigin::received) stats.count_new(*m);
  }
  for (const RecipientUpdate& u : updates) {
    bool missing = false;
    StoreOutcome outcome = update_one(txn, u, &scratch, &missing, &stats);
    if (!outcome.ok()) return abort_with(std::move(outcome));
    if (missing) {
      spdlog::warn("spool: update of recipient {} of {} skipped: it no longer exists or is corrupt",
                   u.index, printable(u.id.value));
    }
  }
  for (const StatsAddition& a : additions) stats.count_addition(a);
  const RetentionPolicy policy = retention();
  for (const MessageId& id : finished) {
    StoreOutcome outcome = remove_if_final(txn, id, policy, now);
    if (!outcome.ok()) return abort_with(std::move(outcome));
  }
  bool fold = false;
  if (!stats.empty()) {
    StoreOutcome outcome = apply_stats(txn, stats, &scratch, &fold);
    if (!outcome.ok()) return abort_with(std::move(outcome));
  }
  size_t expired = 0;
  // In step with what this commit adds, so that a busy spool keeps up.
  const size_t expire_limit = expire_per_commit_ + 2 * finished.size();
  if (StoreOutcome outcome = expire_retained(control, now, expire_limit, &expired); !outcome.ok())
    return abort_with(std::move(outcome));
  for (const ControlWrite& w : controls) {
    rc = write_control(txn, w.key, w.value);
    if (rc != MDB_SUCCESS) return abort_with(failure("writing control state", rc));
  }
  std::unique_lock stats_lock(stats_mutex_, std::defer_lock);
  if (!stats.deltas().empty()) stats_lock.lock();
  rc = mdb_txn_commit(txn);  // frees txn whatever happens; syncs data then meta page
  if (rc == MDB_SUCCESS) stats_committed(stats, fold);
  if (stats_lock.owns_lock()) stats_lock.unlock();
  if (rc == EIO) {
    uint64_t content = 0;
    for (const SpoolMessage* m : messages) content += m->content.size();
    if (filesystem_free_bytes(dir_) < content + kFullFilesystemSlack) {
      return {StoreStatus::spool_full, lmdb_error("mdb_txn_commit", rc) + " (filesystem full)"};
    }
  }
  if (rc != MDB_SUCCESS) return failure("mdb_txn_commit", rc);
  if (expired > 0)
    spdlog::debug("spool: {} expired status records and dead letters removed", expired);
  return {StoreStatus::ok, {}};
}

bool LmdbSpool::retained_expired(int64_t now_ms) const {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) return false;
  Cursor cursor(txn.get(), control_);
  return cursor.seek(kExpiryPrefix) && cursor.key() < expiry_key_bound(now_ms);
}

StoreOutcome LmdbSpool::drop_dead_letter(const MessageId& id, bool* found) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_begin", rc);
  LmdbControlAccess control(txn, control_);
  StoreOutcome outcome = queue::drop_dead_letter(control, id.value, found);
  if (!outcome.ok() || !*found) {
    mdb_txn_abort(txn);
    return outcome;
  }
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_commit", rc);
  return {StoreStatus::ok, {}};
}

StoreOutcome LmdbSpool::remove_if_final(MDB_txn* txn, const MessageId& id,
                                        const RetentionPolicy& policy, int64_t now_ms) {
  MDB_val mkey = as_val(id.value);
  MDB_val mvalue{};
  int rc = mdb_get(txn, messages_, &mkey, &mvalue);
  if (rc == MDB_NOTFOUND) return {StoreStatus::ok, {}};
  if (rc != MDB_SUCCESS) return failure("mdb_get(messages)", rc);
  const bool retain = policy.keep_status_ms > 0 || policy.keep_failed_ms > 0;
  // Copied: the value lives in a page this transaction is about to change.
  const std::string message_record = retain ? std::string(as_view(mvalue)) : std::string();
  SpoolMessage message;
  MessageRecordInfo info;
  const bool message_ok =
      retain && decode_message_record(message_record, &message, &info) && message.id == id;
  const std::string prefix = recipient_key_prefix(id.value);
  std::vector<std::string> keys;
  {
    Cursor cursor(txn, recipients_);
    for (bool have = cursor.seek(prefix); have && cursor.key().starts_with(prefix);
         have = cursor.get(MDB_NEXT)) {
      Recipient rcpt;
      if (!decode_recipient_record(cursor.value(), &rcpt)) return {StoreStatus::ok, {}};
      if (!is_final(rcpt.state)) {
        return {StoreStatus::ok, {}};  // still has work: keep it
      }
      keys.emplace_back(cursor.key());
      if (message_ok) message.envelope.recipients.push_back(std::move(rcpt));
    }
  }
  if (message_ok && message.envelope.recipients.size() == info.recipient_count) {
    LmdbControlAccess control(txn, control_);
    auto body = [&]() -> std::optional<std::string> {
      MDB_val value{};
      if (mdb_get(txn, bodies_, &mkey, &value) != MDB_SUCCESS) return std::nullopt;
      return std::string(as_view(value));
    };
    StoreOutcome kept = retain_finished(control, message, message_record, body, policy, now_ms);
    if (!kept.ok()) return kept;
  }
  for (const std::string& key : keys) {
    MDB_val k = as_val(key);
    rc = mdb_del(txn, recipients_, &k, nullptr);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(recipients)", rc);
  }
  rc = mdb_del(txn, bodies_, &mkey, nullptr);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(bodies)", rc);
  rc = mdb_del(txn, messages_, &mkey, nullptr);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(messages)", rc);
  return {StoreStatus::ok, {}};
}

// The indexes hold only active recipients (queued, in flight, deferred):
// the old entries go, the new ones come, with the record in one transaction.
StoreOutcome LmdbSpool::apply_stats(MDB_txn* txn, const StatsBatch& stats, std::string* scratch,
                                    bool* fold) {
  for (const auto& [key, record] : stats.new_campaigns()) {
    if (known_campaigns_.contains(key)) continue;
    scratch->clear();
    encode_campaign(record, scratch);
    MDB_val k = as_val(key);
    MDB_val v = as_val(*scratch);
    const int rc = mdb_put(txn, control_, &k, &v, MDB_NOOVERWRITE);
    if (rc != MDB_SUCCESS && rc != MDB_KEYEXIST) return failure("mdb_put(campaign)", rc);
  }
  if (stats.deltas().empty()) return {StoreStatus::ok, {}};
  *fold = journal_entries_ + 1 >= kFoldEvery;
  if (!*fold) {
    scratch->clear();
    encode_stats_journal(stats.deltas(), scratch);
    const std::string key = stats_journal_key(journal_next_);
    MDB_val k = as_val(key);
    MDB_val v = as_val(*scratch);
    const int rc = mdb_put(txn, control_, &k, &v, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(stats journal)", rc);
    return {StoreStatus::ok, {}};
  }
  // Fold: the journal's sum and this commit's deltas into the records.
  StatsDeltas merged = unfolded_;
  add_deltas(stats.deltas(), &merged);
  for (const auto& [key, delta] : merged) {
    MDB_val k = as_val(key);
    MDB_val v{};
    DeliveryStats stored;
    int rc = mdb_get(txn, control_, &k, &v);
    if (rc == MDB_SUCCESS) {
      if (DecodeResult decoded = decode_stats(as_view(v), &stored); !decoded) {
        // Counting on from zero beats losing every later count.
        spdlog::error("spool: {} does not decode ({}); its counts start again", printable(key),
                      decoded.error);
        stored = DeliveryStats{};
      }
    } else if (rc != MDB_NOTFOUND) {
      return failure("mdb_get(stats)", rc);
    }
    stored.add(delta);
    scratch->clear();
    encode_stats(stored, scratch);
    v = as_val(*scratch);
    rc = mdb_put(txn, control_, &k, &v, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(stats)", rc);
  }
  std::vector<std::string> journal;
  {
    Cursor cursor(txn, control_);
    const std::string prefix = kStatsJournalPrefix;
    for (bool have = cursor.seek(prefix); have && cursor.key().starts_with(prefix);
         have = cursor.get(MDB_NEXT)) {
      journal.emplace_back(cursor.key());
    }
  }
  for (const std::string& key : journal) {
    MDB_val k = as_val(key);
    const int rc = mdb_del(txn, control_, &k, nullptr);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(stats journal)", rc);
  }
  return {StoreStatus::ok, {}};
}

void LmdbSpool::stats_committed(const StatsBatch& stats, bool fold) {
  for (const auto& [key, record] : stats.new_campaigns()) {
    if (known_campaigns_.size() >= kMaxKnownCampaigns) known_campaigns_.clear();
    known_campaigns_.insert(key);
  }
  if (stats.deltas().empty()) return;
  if (fold) {
    unfolded_.clear();
    journal_entries_ = 0;
  } else {
    add_deltas(stats.deltas(), &unfolded_);
    ++journal_entries_;
  }
  ++journal_next_;
}

void LmdbSpool::load_stats_journal() {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) return;
  Cursor cursor(txn.get(), control_);
  const std::string prefix = kStatsJournalPrefix;
  std::lock_guard lock(stats_mutex_);
  for (bool have = cursor.seek(prefix); have && cursor.key().starts_with(prefix);
       have = cursor.get(MDB_NEXT)) {
    const std::optional<uint64_t> sequence = stats_journal_sequence(cursor.key());
    StatsDeltas deltas;
    const DecodeResult decoded = decode_stats_journal(cursor.value(), &deltas);
    if (!sequence || !decoded) {
      spdlog::error("spool: statistics journal entry {} is unreadable ({}); its counts are lost",
                    printable(cursor.key()), decoded ? "bad key" : decoded.error);
    } else {
      add_deltas(deltas, &unfolded_);
      journal_next_ = std::max(journal_next_, *sequence + 1);
    }
    ++journal_entries_;  // folded (and deleted) with the rest all the same
  }
}

StatsDeltas LmdbSpool::delivery_stats(const std::string& prefix) const {
  StatsDeltas out;
  std::lock_guard lock(stats_mutex_);
  {
    ReadTxn txn(env_);
    if (txn.rc() != MDB_SUCCESS) return out;
    Cursor cursor(txn.get(), control_);
    for (bool have = cursor.seek(prefix); have && cursor.key().starts_with(prefix);
         have = cursor.get(MDB_NEXT)) {
      DeliveryStats stats;
      if (decode_stats(cursor.value(), &stats)) out.emplace(cursor.key(), stats);
    }
  }
  for (auto it = unfolded_.lower_bound(prefix);
       it != unfolded_.end() && it->first.starts_with(prefix); ++it) {
    out[it->first].add(it->second);
  }
  return out;
}

StoreOutcome LmdbSpool::update_one(MDB_txn* txn, const RecipientUpdate& u, std::string* scratch,
                                   bool* missing, StatsBatch* stats) {
  const std::string& id = u.id.value;
  MDB_val mkey = as_val(id);
  MDB_val mvalue{};
  int rc = mdb_get(txn, messages_, &mkey, &mvalue);
  if (rc == MDB_NOTFOUND && missing) {
    *missing = true;
    return {StoreStatus::ok, {}};
  }
  if (rc == MDB_NOTFOUND) return {StoreStatus::failed, "no message " + id};
  if (rc != MDB_SUCCESS) return failure("mdb_get(messages)", rc);
  SpoolMessage message;
  MessageRecordInfo info;
  if (!decode_message_record(as_view(mvalue), &message, &info)) {
    if (missing) {  // a corrupt record must not sink the batch; recovery reports it
      *missing = true;
      return {StoreStatus::ok, {}};
    }
    return {StoreStatus::failed, "message " + id + " does not decode"};
  }
  const std::string rkey = recipient_key(id, u.index);
  MDB_val k = as_val(rkey);
  MDB_val v{};
  rc = mdb_get(txn, recipients_, &k, &v);
  if (rc == MDB_NOTFOUND && missing) {
    *missing = true;
    return {StoreStatus::ok, {}};
  }
  if (rc == MDB_NOTFOUND)
    return {StoreStatus::failed, "no recipient " + std::to_string(u.index) + " in " + id};
  if (rc != MDB_SUCCESS) return failure("mdb_get(recipients)", rc);
  Recipient rcpt;
  if (!decode_recipient_record(as_view(v), &rcpt)) {
    if (missing) {
      *missing = true;
      return {StoreStatus::ok, {}};
    }
    return {StoreStatus::failed,
            "recipient " + std::to_string(u.index) + " of " + id + " does not decode"};
  }

  auto index_keys = [&](const Recipient& r) {
    std::vector<std::pair<MDB_dbi, std::string>> keys;
    if (!is_active(r.state)) return keys;
    keys.emplace_back(idx_next_, next_attempt_key(r.next_attempt_unix_ms, id, u.index));
    keys.emplace_back(idx_site_, site_key(r.domain, id, u.index));
    return keys;
  };
  for (const auto& [dbi, key] : index_keys(rcpt)) {
    MDB_val ik = as_val(key);
    rc = mdb_del(txn, dbi, &ik, nullptr);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return failure("mdb_del(index)", rc);
  }
  if (stats) stats->count_transition(message.meta, rcpt.state, u.state, u.category);
  rcpt.state = u.state;
  rcpt.attempts = u.attempts;
  rcpt.next_attempt_unix_ms = u.next_attempt_unix_ms;
  if (u.response.code != 0 || !u.response.text.empty()) rcpt.last_response = u.response;
  rcpt.category = u.category ? std::string(mail::bounce_category_name(*u.category)) : "";
  scratch->clear();
  encode_recipient_record(rcpt, scratch);
  v = as_val(*scratch);
  rc = mdb_put(txn, recipients_, &k, &v, 0);
  if (rc != MDB_SUCCESS) return failure("mdb_put(recipients)", rc);
  MDB_val empty{0, nullptr};
  for (const auto& [dbi, key] : index_keys(rcpt)) {
    MDB_val ik = as_val(key);
    rc = mdb_put(txn, dbi, &ik, &empty, 0);
    if (rc != MDB_SUCCESS) return failure("mdb_put(index)", rc);
  }
  return {StoreStatus::ok, {}};
}

StoreOutcome LmdbSpool::update_recipients(std::span<const RecipientUpdate> updates) {
  if (updates.empty()) return {StoreStatus::ok, {}};
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_begin", rc);
  std::string scratch;
  for (const RecipientUpdate& u : updates) {
    StoreOutcome outcome = update_one(txn, u, &scratch);
    if (!outcome.ok()) {
      mdb_txn_abort(txn);
      return outcome;
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_commit", rc);
  return {StoreStatus::ok, {}};
}

int LmdbSpool::write_control(MDB_txn* txn, const std::string& key,
                             const std::optional<std::string>& value) {
  MDB_val k = as_val(key);
  if (value) {
    MDB_val v = as_val(*value);
    return mdb_put(txn, control_, &k, &v, 0);
  }
  const int rc = mdb_del(txn, control_, &k, nullptr);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

StoreOutcome LmdbSpool::put_control(const std::string& key,
                                    const std::optional<std::string>& value) {
  const ControlWrite write{key, value};
  return put_controls(std::span(&write, 1));
}

StoreOutcome LmdbSpool::put_controls(std::span<const ControlWrite> writes) {
  for (const ControlWrite& w : writes) {
    if (!valid_control_key(w.key)) return {StoreStatus::failed, "bad control key"};
  }
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_begin", rc);
  for (const ControlWrite& w : writes) {
    rc = write_control(txn, w.key, w.value);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      return failure("writing control state", rc);
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) return failure("mdb_txn_commit", rc);
  return {StoreStatus::ok, {}};
}

void LmdbSpool::for_each_control(const std::string& prefix, const ControlVisitor& visit) const {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) return;
  Cursor cursor(txn.get(), control_);
  bool ok = prefix.empty() ? cursor.get(MDB_FIRST) : cursor.seek(prefix);
  for (; ok && cursor.key().starts_with(prefix); ok = cursor.get(MDB_NEXT)) {
    if (!visit(cursor.key(), cursor.value())) return;
  }
}

std::vector<std::pair<std::string, std::string>> LmdbSpool::controls(
    const std::string& prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) return out;
  Cursor cursor(txn.get(), control_);
  bool ok = prefix.empty() ? cursor.get(MDB_FIRST) : cursor.seek(prefix);
  for (; ok && cursor.key().starts_with(prefix); ok = cursor.get(MDB_NEXT)) {
    out.emplace_back(std::string(cursor.key()), std::string(cursor.value()));
  }
  return out;
}

std::optional<std::string> LmdbSpool::control(const std::string& key) const {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS || key.empty()) return std::nullopt;
  MDB_val k = as_val(key);
  MDB_val v{};
  if (mdb_get(txn.get(), control_, &k, &v) != MDB_SUCCESS) return std::nullopt;
  return std::string(as_view(v));
}

void LmdbSpool::walk(MDB_txn* txn, const std::function<void(WalkedMessage&)>& on_message,
                     const std::function<void(std::string)>& on_problem) const {
  Cursor mc(txn, messages_);
  Cursor rc(txn, recipients_);
  if (mc.rc() != MDB_SUCCESS || rc.rc() != MDB_SUCCESS) {
    on_problem(lmdb_error("mdb_cursor_open", mc.rc() != MDB_SUCCESS ? mc.rc() : rc.rc()));
    return;
  }
  bool have_rcpt = rc.get(MDB_FIRST);
  // Recipient records whose message record is gone cannot be delivered.
  auto report_orphan = [&](std::string_view rkey) {
    const auto parsed = parse_recipient_key(rkey);
    if (parsed) {
      on_problem("recipient record " + printable(parsed->id) + "/" + std::to_string(parsed->index) +
                 " has no message record");
    } else {
      on_problem("malformed recipients key '" + printable(rkey) + "'");
    }
  };

  WalkedMessage w;
  std::vector<bool> seen;  // per index: some record was found, even a corrupt one
  for (bool have = mc.get(MDB_FIRST); have; have = mc.get(MDB_NEXT)) {
    const std::string_view id = mc.key();
    w.usable = false;
    w.message = SpoolMessage{};
    w.info = MessageRecordInfo{};
    if (auto decoded = decode_message_record(mc.value(), &w.message, &w.info); !decoded) {
      on_problem("message " + printable(id) + ": " + decoded.error);
    } else if (w.message.id.value != id) {
      on_problem("message " + printable(id) + ": record names id " + printable(w.message.id.value));
    } else {
      w.usable = true;
      w.message.envelope.recipients.assign(w.info.recipient_count, Recipient{});
      w.recipient_ok.assign(w.info.recipient_count, false);
      seen.assign(w.info.recipient_count, false);
    }

    while (have_rcpt) {
      const auto parsed = parse_recipient_key(rc.key());
      if (parsed && parsed->id >= id) break;
      report_orphan(rc.key());
      have_rcpt = rc.get(MDB_NEXT);
    }
    while (have_rcpt) {
      const auto parsed = parse_recipient_key(rc.key());
      if (!parsed || parsed->id != id) break;
      if (w.usable && parsed->index < w.info.recipient_count) seen[parsed->index] = true;
      if (w.usable) {
        if (parsed->index >= w.info.recipient_count) {
          on_problem("recipient " + printable(id) + "/" + std::to_string(parsed->index) +
                     " is beyond the message's " + std::to_string(w.info.recipient_count) +
                     " recipients");
        } else if (auto decoded = decode_recipient_record(
                       rc.value(), &w.message.envelope.recipients[parsed->index]);
                   !decoded) {
          on_problem("recipient " + printable(id) + "/" + std::to_string(parsed->index) + ": " +
                     decoded.error);
        } else {
          w.recipient_ok[parsed->index] = true;
        }
      }
      have_rcpt = rc.get(MDB_NEXT);
    }
    if (w.usable) {
      for (uint32_t i = 0; i < w.info.recipient_count; ++i) {
        if (!seen[i])
          on_problem("recipient " + printable(id) + "/" + std::to_string(i) + " is missing");
      }
    }
    on_message(w);
  }
  while (have_rcpt) {
    report_orphan(rc.key());
    have_rcpt = rc.get(MDB_NEXT);
  }
}

std::optional<SpoolMessage> LmdbSpool::load_message(const MessageId& id, bool with_content) const {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) {
    spdlog::error("spool: {}", lmdb_error("mdb_txn_begin", txn.rc()));
    return std::nullopt;
  }
  MDB_val key = as_val(id.value);
  MDB_val value;
  int rc = mdb_get(txn.get(), messages_, &key, &value);
  if (rc != MDB_SUCCESS) {
    if (rc != MDB_NOTFOUND) spdlog::error("spool: {}", lmdb_error("mdb_get(messages)", rc));
    return std::nullopt;
  }
  SpoolMessage m;
  MessageRecordInfo info;
  if (auto decoded = decode_message_record(as_view(value), &m, &info); !decoded) {
    spdlog::warn("spool: message {}: {}", printable(id.value), decoded.error);
    return std::nullopt;
  }
  if (m.id != id) {
    spdlog::warn("spool: message {}: record names id {}", printable(id.value),
                 printable(m.id.value));
    return std::nullopt;
  }

  m.envelope.recipients.assign(info.recipient_count, Recipient{});
  std::vector<bool> found(info.recipient_count, false);
  const std::string prefix = recipient_key_prefix(id.value);
  Cursor cursor(txn.get(), recipients_);
  for (bool have = cursor.seek(prefix); have && cursor.key().starts_with(prefix);
       have = cursor.get(MDB_NEXT)) {
    const auto parsed = parse_recipient_key(cursor.key());
    if (!parsed || parsed->id != id.value || parsed->index >= info.recipient_count) {
      spdlog::warn("spool: message {}: stray recipients key '{}'", printable(id.value),
                   printable(cursor.key()));
      return std::nullopt;
    }
    auto decoded = decode_recipient_record(cursor.value(), &m.envelope.recipients[parsed->index]);
    if (!decoded) {
      spdlog::warn("spool: recipient {}/{}: {}", printable(id.value), parsed->index, decoded.error);
      return std::nullopt;
    }
    found[parsed->index] = true;
  }
  for (uint32_t i = 0; i < info.recipient_count; ++i) {
    if (!found[i]) {
      spdlog::warn("spool: message {}: recipient {} is missing", printable(id.value), i);
      return std::nullopt;
    }
  }

  if (with_content) {
    rc = mdb_get(txn.get(), bodies_, &key, &value);
    if (rc != MDB_SUCCESS) {
      spdlog::warn("spool: message {}: {}", printable(id.value), lmdb_error("body", rc));
      return std::nullopt;
    }
    if (auto decoded = decode_body(as_view(value), &m.content); !decoded) {
      spdlog::warn("spool: message {}: {}", printable(id.value), decoded.error);
      return std::nullopt;
    }
    if (m.content.size() != info.body_size) {
      spdlog::warn("spool: message {}: body has {} octets, record says {}", printable(id.value),
                   m.content.size(), info.body_size);
      return std::nullopt;
    }
  }
  return m;
}

void LmdbSpool::for_each_recipient(const RecipientVisitor& visit) const {
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) {
    spdlog::error("spool: {}", lmdb_error("mdb_txn_begin", txn.rc()));
    return;
  }
  walk(
      txn.get(),
      [&](WalkedMessage& w) {
        if (!w.usable) return;
        for (size_t i = 0; i < w.recipient_ok.size(); ++i) {
          if (w.recipient_ok[i]) visit(w.message, i);
        }
      },
      [](std::string problem) { spdlog::warn("spool: skipping {}", problem); });
}

RecoverySummary LmdbSpool::recover() {
  const auto started = std::chrono::steady_clock::now();
  RecoverySummary summary;
  summary.format_version = format_version_;
  auto problem = [&summary](std::string what) {
    ++summary.corrupt_records;
    if (summary.problems.size() < RecoverySummary::kMaxProblems) {
      spdlog::warn("spool recovery: {}", what);
      summary.problems.push_back(std::move(what));
    }
  };

  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) {
    problem(lmdb_error("mdb_txn_begin", txn.rc()));
    return summary;
  }
  uint64_t expected_scheduled = 0;
  walk(
      txn.get(),
      [&](WalkedMessage& w) {
        if (!w.usable) return;
        // The body's length is in its LMDB node: checking it reads no body page.
        MDB_val key = as_val(w.message.id.value);
        MDB_val body;
        const int rc = mdb_get(txn.get(), bodies_, &key, &body);
        if (rc != MDB_SUCCESS) {
          problem("message " + printable(w.message.id.value) + ": " + lmdb_error("body", rc));
          return;
        }
        if (body.mv_size != w.info.body_size + 1) {
          problem("message " + printable(w.message.id.value) + ": body has " +
                  std::to_string(body.mv_size) + " bytes, record says " +
                  std::to_string(w.info.body_size + 1));
          return;
        }
        ++summary.messages;
        for (size_t i = 0; i < w.recipient_ok.size(); ++i) {
          if (!w.recipient_ok[i]) continue;
          const RecipientState state = w.message.envelope.recipients[i].state;
          ++summary.recipients;
          ++summary.recipients_by_state[static_cast<size_t>(state)];
          if (is_active(state)) ++expected_scheduled;
        }
      },
      problem);

  Cursor next(txn.get(), idx_next_);
  for (bool have = next.get(MDB_FIRST); have; have = next.get(MDB_NEXT)) {
    if (parse_next_attempt_key(next.key())) {
      ++summary.scheduled;
    } else {
      problem("malformed idx_next key '" + printable(next.key()) + "'");
    }
  }
  if (summary.scheduled != expected_scheduled) {
    const std::string what = "idx_next has " + std::to_string(summary.scheduled) + " entries for " +
                             std::to_string(expected_scheduled) + " active recipients";
    spdlog::warn("spool recovery: {}", what);
    if (summary.problems.size() < RecoverySummary::kMaxProblems) summary.problems.push_back(what);
  }
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

SpoolStats LmdbSpool::stats() const {
  SpoolStats stats;
  const SpoolSpace room = space(CountFreePages::no);
  stats.map_size_bytes = room.map_size_bytes;
  stats.used_bytes = room.map_used_bytes;
  ReadTxn txn(env_);
  if (txn.rc() == MDB_SUCCESS) {
    MDB_stat st;
    if (mdb_stat(txn.get(), messages_, &st) == MDB_SUCCESS) stats.messages = st.ms_entries;
    if (mdb_stat(txn.get(), recipients_, &st) == MDB_SUCCESS) stats.recipients = st.ms_entries;
  }
  return stats;
}

SpoolSpace LmdbSpool::space(CountFreePages count) const {
  SpoolSpace space;
  MDB_envinfo info{};
  MDB_stat env_stat{};
  if (mdb_env_info(env_, &info) != MDB_SUCCESS || mdb_env_stat(env_, &env_stat) != MDB_SUCCESS) {
    return space;  // no room known: nothing is admitted above a reserve
  }
  space.map_size_bytes = info.me_mapsize;
  space.map_used_bytes = (uint64_t{info.me_last_pgno} + 1) * env_stat.ms_psize;
  space.filesystem_free_bytes = filesystem_free_bytes(dir_);
  if (count == CountFreePages::no) return space;
  // The free list is database 0 (FREE_DBI): one record per transaction that
  // freed pages, its value an array of page numbers led by their count.
  ReadTxn txn(env_);
  if (txn.rc() != MDB_SUCCESS) return space;
  Cursor cursor(txn.get(), 0);
  uint64_t pages = 0;
  for (bool have = cursor.get(MDB_FIRST); have; have = cursor.get(MDB_NEXT)) {
    const std::string_view value = cursor.value();
    if (value.size() < sizeof(size_t)) continue;
    size_t listed = 0;
    std::memcpy(&listed, value.data(), sizeof listed);
    pages += listed;
  }
  space.free_page_bytes = pages * env_stat.ms_psize;
  space.free_pages_counted = true;
  return space;
}

// A new data.mdb is only durable once the directory entry naming it is.
void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::unique_ptr<Spool> open_lmdb_spool(const std::filesystem::path& dir, uint64_t map_size,
                                       std::string* error, const SpoolOptions& options) {
  auto fail = [&](const std::string& why) -> std::unique_ptr<Spool> {
    *error = "spool " + dir.string() + ": " + why;
    return nullptr;
  };
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
    if (!dir.parent_path().empty()) sync_directory(dir.parent_path());
  } else if (ec) {
    return fail("cannot create directory: " + ec.message());
  }

  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != MDB_SUCCESS) return fail(lmdb_error("mdb_env_create", rc));
  rc = mdb_env_set_maxdbs(env, 16);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env, map_size);
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != MDB_SUCCESS) {
    mdb_env_close(env);
    return fail(lmdb_error("mdb_env_open", rc));
  }
  int stale_readers = 0;
  mdb_reader_check(env, &stale_readers);
  if (stale_readers > 0) spdlog::info("spool: cleared {} stale reader slots", stale_readers);

  auto spool = std::make_unique<LmdbSpool>(env, dir, options);  // owns env from here on
  std::string why;
  if (!spool->open_databases(&why)) return fail(why);
  spool->load_stats_journal();
  sync_directory(dir);
  return spool;
}

}  // namespace ringmail::queue
