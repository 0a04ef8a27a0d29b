// mta/webhook_dispatcher.cc — the webhooks' backlogs, the record journal
// and the HTTP thread (libcurl multi).
#include "mta/webhook_dispatcher.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "ringmail_version.h"

namespace ringmail::mta {
namespace {

constexpr auto kDropLogInterval = std::chrono::minutes(1);
constexpr long kMaxPollMs = 1000;
constexpr size_t kMaxCorruptLogged = 20;

CURLM* as_multi(void* multi) { return static_cast<CURLM*>(multi); }

policy::WebhookTransport transport_of(CURLcode code) {
  switch (code) {
    case CURLE_OK:
      return policy::WebhookTransport::answered;
    case CURLE_OPERATION_TIMEDOUT:
      return policy::WebhookTransport::timed_out;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return policy::WebhookTransport::connect_failed;
    default:
      return policy::WebhookTransport::failed;
  }
}

size_t discard_body(char*, size_t size, size_t count, void*) { return size * count; }

uint64_t random_epoch() {
  std::random_device device;
  const uint64_t high = device();
  return (high << 32) | device();
}

}  // namespace

struct WebhookDispatcher::Transfer {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  std::string url;
  uint64_t last_sequence = 0;
  size_t records = 0;
  char error[CURL_ERROR_SIZE] = {};
};

WebhookDispatcher::WebhookDispatcher(queue::Spool& spool, runtime::MetricsRegistry& metrics,
                                     const runtime::Clock& clock, WebhookDispatcherOptions options)
    : spool_(spool), metrics_(metrics), clock_(clock), options_(options) {
  posts_.declare(metrics_);
  metrics_.declare("webhook_dropped_total",
                   "Webhook records dropped unsent because the backlog reached max_backlog",
                   runtime::MetricType::counter);
  metrics_.declare("webhook_backlog", "Webhook records waiting for a 2xx, by webhook",
                   runtime::MetricType::gauge);
}

WebhookDispatcher::~WebhookDispatcher() {
  stop();
  if (void* multi = multi_.exchange(nullptr)) curl_multi_cleanup(as_multi(multi));
}

std::shared_ptr<WebhookDispatcher::Hook> WebhookDispatcher::make_hook(const conf::Webhook& config) {
  auto hook = std::make_shared<Hook>();
  hook->config = config;
  hook->dropped =
      &metrics_.counter("webhook_dropped_total",
                        "Webhook records dropped unsent because the backlog reached max_backlog",
                        {{"webhook", config.name}});
  hook->waiting =
      &metrics_.gauge("webhook_backlog", "Webhook records waiting for a 2xx, by webhook",
                      {{"webhook", config.name}});
  return hook;
}

void WebhookDispatcher::note_waiting(Hook& hook) {
  hook.waiting->set(static_cast<int64_t>(hook.entries.size()));
}

void WebhookDispatcher::enforce_backlog(Hook& hook, runtime::SteadyTime now) {
  uint64_t dropped = 0;
  while (hook.entries.size() > hook.config.max_backlog) {
    deletions_.push_back(
        {queue::webhook_backlog_key(hook.config.name, hook.entries.front().sequence),
         std::nullopt});
    hook.entries.pop_front();
    ++dropped;
  }
  if (dropped == 0) return;
  hook.dropped->inc(dropped);
  hook.dropped_unlogged += dropped;
  if (!hook.drop_logged || now - *hook.drop_logged >= kDropLogInterval) {
    spdlog::warn(
        "webhook {}: backlog reached max_backlog ({} records): dropped the {} oldest unsent "
        "record(s)",
        hook.config.name, hook.config.max_backlog, hook.dropped_unlogged);
    hook.drop_logged = now;
    hook.dropped_unlogged = 0;
  }
}

void WebhookDispatcher::publish_filters() {
  auto filters = std::make_shared<std::vector<Filter>>();
  for (const auto& [name, hook] : hooks_) filters->push_back(Filter{name, hook->config.events});
  filters_ = std::move(filters);
  active_.store(!hooks_.empty(), std::memory_order_relaxed);
}

void WebhookDispatcher::load(const std::vector<conf::Webhook>& webhooks) {
  std::lock_guard lock(mutex_);
  for (const conf::Webhook& config : webhooks) hooks_[config.name] = make_hook(config);

  bool have_sequence = false;
  if (std::optional<std::string> raw = spool_.control(queue::kWebhookSequenceKey)) {
    std::string error;
    if (auto decoded = queue::decode_webhook_sequence(*raw, &error)) {
      sequence_ = *decoded;
      have_sequence = true;
    } else {
      spdlog::error(
          "webhooks: the event sequence in the spool is unreadable ({}); new event ids "
          "start a new series",
          error);
    }
  }
  if (!have_sequence) sequence_ = queue::WebhookSequence{random_epoch(), 1};

  uint64_t highest = 0;
  size_t corrupt = 0;
  std::map<std::string, uint64_t> unconfigured;
  for (const auto& [key, value] : spool_.controls(queue::kWebhookPrefix)) {
    auto parsed = queue::parse_webhook_backlog_key(key);
    if (!parsed) {
      if (++corrupt <= kMaxCorruptLogged) spdlog::warn("webhooks: dropping a malformed spool key");
      deletions_.push_back({key, std::nullopt});
      continue;
    }
    highest = std::max(highest, parsed->sequence);
    auto it = hooks_.find(parsed->webhook);
    if (it == hooks_.end()) {
      ++unconfigured[parsed->webhook];
      deletions_.push_back({key, std::nullopt});
      continue;
    }
    std::string error;
    std::optional<std::string> json = queue::decode_webhook_record(value, &error);
    if (!json) {
      if (++corrupt <= kMaxCorruptLogged) {
        spdlog::warn("webhook {}: dropping unreadable record {} from the spool: {}",
                     parsed->webhook, parsed->sequence, error);
      }
      deletions_.push_back({key, std::nullopt});
      continue;
    }
    it->second->entries.push_back(
        Entry{parsed->sequence, std::make_shared<const std::string>(std::move(*json))});
  }
  if (highest >= sequence_.next) sequence_.next = highest + 1;
  if (corrupt > 0) spdlog::warn("webhooks: {} unreadable backlog record(s) dropped", corrupt);
  for (const auto& [name, count] : unconfigured) {
    spdlog::warn("webhook {} is no longer configured: its {} unsent record(s) are deleted", name,
                 count);
  }
  const runtime::SteadyTime now = clock_.steady();
  for (auto& [name, hook] : hooks_) {
    if (!hook->entries.empty()) {
      spdlog::info("webhook {}: {} record(s) waiting from before the restart", name,
                   hook->entries.size());
    }
    enforce_backlog(*hook, now);
    note_waiting(*hook);
  }
  publish_filters();
}

bool WebhookDispatcher::start(queue::SpoolWriter* writer, std::string* error) {
  static std::once_flag curl_initialised;
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  {
    std::lock_guard lock(mutex_);
    writer_ = writer;
    if (!hooks_.empty()) {
      start_thread();
      if (!started_) {
        *error = "webhooks: cannot create the HTTP client (curl_multi_init)";
        return false;
      }
    }
  }
  flush_deletions();
  return true;
}

void WebhookDispatcher::start_thread() {
  if (started_ || stopping_) return;
  if (!multi_.load()) {
    CURLM* multi = curl_multi_init();
    if (!multi) {
      spdlog::error("webhooks: curl_multi_init failed; nothing is posted");
      return;
    }
    multi_.store(multi);
  }
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

void WebhookDispatcher::reload(const std::vector<conf::Webhook>& webhooks) {
  {
    std::lock_guard lock(mutex_);
    const runtime::SteadyTime now = clock_.steady();
    std::set<std::string> names;
    for (const conf::Webhook& config : webhooks) {
      names.insert(config.name);
      auto it = hooks_.find(config.name);
      if (it != hooks_.end()) {
        it->second->config = config;
        enforce_backlog(*it->second, now);
        note_waiting(*it->second);
        continue;
      }
      std::shared_ptr<Hook> hook = make_hook(config);
      // What an earlier run left under this name (a removal's deletions
      // may not be committed yet).
      for (const auto& [key, value] : spool_.controls(queue::webhook_backlog_prefix(config.name))) {
        auto parsed = queue::parse_webhook_backlog_key(key);
        std::optional<std::string> json = queue::decode_webhook_record(value);
        if (!parsed || !json) {
          deletions_.push_back({key, std::nullopt});
          continue;
        }
        hook->entries.push_back(
            Entry{parsed->sequence, std::make_shared<const std::string>(std::move(*json))});
      }
      enforce_backlog(*hook, now);
      note_waiting(*hook);
      spdlog::info("webhook {} added ({} record(s) waiting)", config.name, hook->entries.size());
      hooks_.emplace(config.name, std::move(hook));
    }
    for (auto it = hooks_.begin(); it != hooks_.end();) {
      if (names.count(it->first)) {
        ++it;
        continue;
      }
      Hook& hook = *it->second;
      hook.removed = true;
      // Every key under its name, also records committed while this runs
      // by a stage() that still had the old filters: those stay until the
      // next start, which deletes keys of unconfigured webhooks.
      size_t deleted = 0;
      for (const auto& entry : spool_.controls(queue::webhook_backlog_prefix(it->first))) {
        deletions_.push_back({entry.first, std::nullopt});
        ++deleted;
      }
      hook.entries.clear();
      note_waiting(hook);
      spdlog::warn("webhook {} removed: its {} unsent record(s) are deleted", it->first, deleted);
      retired_.push_back(it->second);
      it = hooks_.erase(it);
    }
    publish_filters();
    if (!hooks_.empty() && writer_) start_thread();
  }
  wake();
  flush_deletions();
}

void WebhookDispatcher::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake();
  if (thread_.joinable()) thread_.join();
  flush_deletions();
}

void WebhookDispatcher::wake() {
  if (void* multi = multi_.load()) curl_multi_wakeup(as_multi(multi));
}

void WebhookDispatcher::flush_deletions() {
  std::vector<queue::ControlWrite> deletions;
  queue::SpoolWriter* writer = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!writer_ || deletions_.empty()) return;
    deletions.swap(deletions_);
    writer = writer_;
  }
  // Committed with the writer's next transaction; lost only to a kill -9
  // before it, and then the records go again (same event ids).
  writer->submit_updates({}, {}, {}, std::move(deletions));
}

// ---- the record journal (writer thread)

void WebhookDispatcher::stage(std::span<const nlohmann::ordered_json> records,
                              queue::JournalBatch* batch) {
  std::shared_ptr<const std::vector<Filter>> filters;
  {
    std::lock_guard lock(mutex_);
    filters = filters_;
  }
  if (!filters || filters->empty()) return;
  bool staged = false;
  for (const nlohmann::ordered_json& record : records) {
    std::string_view type;
    auto type_field = record.find("type");
    if (type_field != record.end() && type_field->is_string())
      type = type_field->get_ref<const std::string&>();
    std::shared_ptr<const std::string> json;
    uint64_t sequence = 0;
    for (const Filter& filter : *filters) {
      if (!filter.events.empty() &&
          std::find(filter.events.begin(), filter.events.end(), type) == filter.events.end()) {
        continue;
      }
      if (!json) {
        // Network input may hold invalid UTF-8: replaced, as in the delivery log.
        std::optional<std::string> text = queue::with_event_id(
            record.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
            queue::webhook_event_id(sequence_.epoch, sequence_.next));
        if (!text) break;  // not an object: no delivery-log record
        sequence = sequence_.next++;
        json = std::make_shared<const std::string>(std::move(*text));
      }
      batch->controls.push_back(
          {queue::webhook_backlog_key(filter.name, sequence), queue::encode_webhook_record(*json)});
      batch->records.push_back(queue::JournaledRecord{filter.name, sequence, json});
    }
    staged = staged || json != nullptr;
  }
  if (staged) {
    batch->controls.push_back(
        {queue::kWebhookSequenceKey, queue::encode_webhook_sequence(sequence_)});
  }
}

void WebhookDispatcher::committed(queue::JournalBatch batch) {
  {
    std::lock_guard lock(mutex_);
    const runtime::SteadyTime now = clock_.steady();
    Hook* last = nullptr;
    std::set<Hook*> touched;
    for (queue::JournaledRecord& record : batch.records) {
      if (!last || last->config.name != record.consumer) {
        auto it = hooks_.find(record.consumer);
        last = it == hooks_.end() ? nullptr : it->second.get();
      }
      if (!last) continue;  // removed by a reload since it was staged
      last->entries.push_back(Entry{record.sequence, std::move(record.json)});
      touched.insert(last);
    }
    for (Hook* hook : touched) {
      enforce_backlog(*hook, now);
      note_waiting(*hook);
    }
  }
  wake();
}

std::vector<std::string> WebhookDispatcher::backlog(const std::string& webhook) const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  auto it = hooks_.find(webhook);
  if (it == hooks_.end()) return out;
  for (const Entry& entry : it->second->entries) out.push_back(*entry.json);
  return out;
}

// ---- the HTTP thread

void WebhookDispatcher::run() {
  CURLM* multi = as_multi(multi_.load());
  std::vector<std::shared_ptr<Hook>> active;
  for (;;) {
    std::vector<std::shared_ptr<Hook>> retired;
    bool stopping = false;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      active.clear();
      for (const auto& [name, hook] : hooks_) active.push_back(hook);
      retired.swap(retired_);
    }
    for (const auto& hook : retired) abandon(*hook);
    flush_deletions();
    if (stopping) break;

    runtime::SteadyTime now = clock_.steady();
    for (const auto& hook : active) {
      if (!hook->transfer && now >= hook->next_attempt) begin_post(*hook);
    }
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      char* owner = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &owner);
      long status = 0;
      curl_easy_getinfo(message->easy_handle, CURLINFO_RESPONSE_CODE, &status);
      finish_post(*reinterpret_cast<Hook*>(owner), message->data.result, status);
    }
    flush_deletions();

    // Sleep until a retry is due, curl has work, or a wake-up (new records,
    // a reload, stop).
    long wait_ms = kMaxPollMs;
    now = clock_.steady();
    for (const auto& hook : active) {
      if (hook->transfer) continue;
      {
        std::lock_guard lock(mutex_);
        if (hook->entries.empty()) continue;
      }
      const auto due =
          std::chrono::duration_cast<runtime::Millis>(hook->next_attempt - now).count();
      wait_ms = std::min<long>(wait_ms, std::max<long>(due, 0));
    }
    long curl_wait = -1;
    curl_multi_timeout(multi, &curl_wait);
    if (curl_wait >= 0) wait_ms = std::min(wait_ms, curl_wait);
    if (wait_ms > 0) curl_multi_poll(multi, nullptr, 0, static_cast<int>(wait_ms), nullptr);
  }
  for (const auto& hook : active) abandon(*hook);
  std::vector<std::shared_ptr<Hook>> retired;
  {
    std::lock_guard lock(mutex_);
    retired.swap(retired_);
  }
  for (const auto& hook : retired) abandon(*hook);
}

void WebhookDispatcher::begin_post(Hook& hook) {
  std::vector<std::shared_ptr<const std::string>> records;
  auto transfer = std::make_unique<Transfer>();
  std::string secret;
  std::string name;
  {
    std::lock_guard lock(mutex_);
    if (hook.removed || hook.entries.empty()) return;
    const size_t count = std::min<size_t>(hook.config.batch, hook.entries.size());
    records.reserve(count);
    for (size_t i = 0; i < count; ++i) records.push_back(hook.entries[i].json);
    transfer->last_sequence = hook.entries[count - 1].sequence;
    transfer->url = hook.config.url;
    secret = hook.config.secret.key;
    name = hook.config.name;
  }
  std::vector<std::string_view> texts;
  texts.reserve(records.size());
  for (const auto& record : records) texts.emplace_back(*record);
  transfer->body = queue::webhook_batch_body(texts);
  transfer->records = records.size();

  CURL* easy = curl_easy_init();
  if (!easy) {
    spdlog::error("webhook {}: curl_easy_init failed", name);
    hook.failures++;
    hook.next_attempt = clock_.steady() + options_.retry.max;
    return;
  }
  transfer->easy = easy;
  const std::string signature =
      "X-Ringmail-Signature: " + policy::webhook_signature(secret, transfer->body);
  transfer->headers = curl_slist_append(transfer->headers, "Content-Type: application/json");
  transfer->headers = curl_slist_append(transfer->headers, signature.c_str());
  transfer->headers = curl_slist_append(transfer->headers, "Expect:");  // no 100-continue wait
  curl_easy_setopt(easy, CURLOPT_URL, transfer->url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->body.data());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(transfer->body.size()));
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "Ringmail/" RINGMAIL_VERSION);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, long(options_.connect_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, long(options_.transfer_timeout.count()));
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, reinterpret_cast<char*>(&hook));
  if (curl_multi_add_handle(as_multi(multi_.load()), easy) != CURLM_OK) {
    spdlog::error("webhook {}: curl_multi_add_handle failed", name);
    curl_slist_free_all(transfer->headers);
    curl_easy_cleanup(easy);
    hook.failures++;
    hook.next_attempt = clock_.steady() + options_.retry.max;
    return;
  }
  hook.transfer = std::move(transfer);
}

void WebhookDispatcher::abandon(Hook& hook) {
  if (!hook.transfer) return;
  curl_multi_remove_handle(as_multi(multi_.load()), hook.transfer->easy);
  curl_easy_cleanup(hook.transfer->easy);
  curl_slist_free_all(hook.transfer->headers);
  hook.transfer.reset();
}

void WebhookDispatcher::finish_post(Hook& hook, int curl_code, long status) {
  const auto code = static_cast<CURLcode>(curl_code);
  const policy::WebhookPostResult result =
      policy::classify_webhook_post(transport_of(code), status);
  std::string name;
  {
    std::lock_guard lock(mutex_);
    name = hook.config.name;
  }
  posts_.get(metrics_, {policy::to_string(result), name}).inc();
  const uint64_t last_sequence = hook.transfer->last_sequence;
  const size_t records = hook.transfer->records;
  const std::string url = hook.transfer->url;
  const std::string detail = code == CURLE_OK ? "HTTP " + std::to_string(status)
                             : hook.transfer->error[0] != '\0'
                                 ? std::string(hook.transfer->error)
                                 : std::string(curl_easy_strerror(code));
  abandon(hook);
  const runtime::SteadyTime now = clock_.steady();
  if (result == policy::WebhookPostResult::ok) {
    {
      std::lock_guard lock(mutex_);
      while (!hook.entries.empty() && hook.entries.front().sequence <= last_sequence) {
        deletions_.push_back(
            {queue::webhook_backlog_key(name, hook.entries.front().sequence), std::nullopt});
        hook.entries.pop_front();
      }
      note_waiting(hook);
    }
    if (hook.failures > 0) {
      spdlog::info("webhook {}: {} answered again ({}) after {} failed POST(s)", name, url, detail,
                   hook.failures);
    }
    hook.failures = 0;
    hook.next_attempt = now;
    return;
  }
  hook.failures++;
  std::uniform_real_distribution<double> draw(0.0, 1.0);
  const runtime::Millis delay =
      policy::webhook_retry_delay(hook.failures, draw(jitter_), options_.retry);
  hook.next_attempt = now + delay;
  spdlog::warn("webhook {}: POST of {} record(s) to {} failed ({}: {}); retry {} in {:.1f} s", name,
               records, url, policy::to_string(result), detail, hook.failures,
               std::chrono::duration<double>(delay).count());
}

}  // namespace ringmail::mta
