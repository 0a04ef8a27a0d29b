// mta/feedback_processor.cc — the feedback listener's worker: parse,
// attribute, persist, log (see mta/feedback_processor.h).
#include "mta/feedback_processor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <vector>

#include "conf/config_policy.h"
#include "mail/feedback_report.h"
#include "policy/feedback_attribution.h"
#include "queue/delivery_log.h"
#include "queue/spool_writer.h"

namespace ringmail::mta {
namespace {

constexpr char kSeenPrefix[] = "feedback-seen/";
constexpr std::chrono::seconds kCommitTimeout{30};
constexpr int64_t kSeenExpiryEveryMs = 3600 * 1000;

// "feedback-seen/ID/INDEX" for a complaint, "…/INDEX/unsubscribe" for an
// unsubscribe: each is counted once per recipient.
std::string seen_key(const std::string& id, uint32_t recipient, std::string_view kind) {
  std::string key = kSeenPrefix + id + "/" + std::to_string(recipient);
  if (!kind.empty()) key.append("/").append(kind);
  return key;
}

std::optional<policy::StoredRecipient> stored_recipient(const std::optional<MessageStatus>& status,
                                                        uint32_t index) {
  if (!status || index >= status->recipients.size()) return std::nullopt;
  return policy::StoredRecipient{status->recipients[index].address, status->tenant,
                                 status->campaign};
}

CommitResult result_of(CommitResult::Status status, std::string detail = {}) {
  CommitResult r;
  r.status = status;
  r.detail = std::move(detail);
  return r;
}

// Commits the counts with their seen records, and the Feedback records for
// the record journal, through the writer, and waits.
queue::StoreOutcome commit_results(queue::SpoolWriter& writer,
                                   std::vector<queue::StatsAddition> additions,
                                   std::vector<queue::ControlWrite> seen,
                                   std::vector<nlohmann::ordered_json> records) {
  auto promise = std::make_shared<std::promise<queue::StoreStatus>>();
  std::future<queue::StoreStatus> answer = promise->get_future();
  writer.submit_updates(
      {}, {}, [promise](queue::StoreStatus status) { promise->set_value(status); }, std::move(seen),
      std::move(records), std::move(additions));
  if (answer.wait_for(kCommitTimeout) != std::future_status::ready) {
    return {queue::StoreStatus::failed, "the spool writer did not commit in time"};
  }
  const queue::StoreStatus status = answer.get();
  return {status, status == queue::StoreStatus::ok ? "" : "the feedback commit failed"};
}

}  // namespace

FeedbackProcessor::FeedbackProcessor(FeedbackDependencies deps,
                                     std::shared_ptr<const conf::Config> config)
    : deps_(std::move(deps)), config_(std::move(config)) {
  feedback_total_.declare(*deps_.metrics);
  dropped_total_.declare(*deps_.metrics);
  thread_ = std::thread([this] { run(); });
}

FeedbackProcessor::~FeedbackProcessor() { stop(); }

void FeedbackProcessor::reload(std::shared_ptr<const conf::Config> config) {
  std::lock_guard lock(mutex_);
  config_ = std::move(config);
}

std::shared_ptr<const conf::Config> FeedbackProcessor::current_config() {
  std::lock_guard lock(mutex_);
  return config_;
}

void FeedbackProcessor::submit(std::unique_ptr<queue::SpoolMessage> message, Done done) {
  bool stopping = false;
  {
    std::lock_guard lock(mutex_);
    stopping = stopping_;
    if (!stopping && waiting_.size() < kMaxWaiting) {
      Job job;
      job.message = std::move(message);
      job.done = std::move(done);
      waiting_.push_back(std::move(job));
      wake_.notify_one();
      return;
    }
  }
  spdlog::warn("feedback: report {} not taken: {}", message->id.value,
               stopping ? "stopping" : "too many reports waiting");
  done(result_of(CommitResult::Status::failed, "feedback processor busy or stopping"));
}

void FeedbackProcessor::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void FeedbackProcessor::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // stopping, and all was processed
      job = std::move(waiting_.front());
      waiting_.pop_front();
    }
    if (job.message) {
      job.done(process(*job.message));
    } else {
      const CommitResult r = process_unsubscribe(job.unsubscribe, job.method);
      job.unsubscribed(r.status == CommitResult::Status::committed);
    }
  }
}

void FeedbackProcessor::unsubscribe(policy::UnsubscribeToken token,
                                    policy::UnsubscribeMethod method,
                                    std::function<void(bool stored)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && waiting_.size() < kMaxWaiting) {
      Job job;
      job.unsubscribe = std::move(token);
      job.method = method;
      job.unsubscribed = std::move(done);
      waiting_.push_back(std::move(job));
      wake_.notify_one();
      return;
    }
  }
  spdlog::warn("feedback: unsubscribe for {} not taken: busy or stopping", token.message.value);
  done(false);
}

CommitResult FeedbackProcessor::process_unsubscribe(const policy::UnsubscribeToken& token,
                                                    policy::UnsubscribeMethod method) {
  const int64_t now = deps_.clock->unix_ms();
  policy::UnsubscribeFacts facts;
  facts.token = token;
  facts.method = method;
  facts.stored = stored_recipient(deps_.find_message(token.message.value), token.recipient);
  facts.now_unix_ms = now;
  policy::FeedbackDecision d = policy::decide_unsubscribe(facts);
  if (d.outcome != policy::FeedbackDecision::Outcome::record) {
    spdlog::info("feedback: {}", d.why);
    dropped_total_.get(*deps_.metrics, "unattributed").inc();
    return result_of(CommitResult::Status::committed);
  }
  const std::vector<std::string> seen{seen_key(d.id, token.recipient, "unsubscribe")};
  const std::string what =
      "unsubscribe (" + std::string(policy::unsubscribe_method_name(method)) + ") for " + d.id;
  return apply(what, {d}, seen, now);
}

// Mail to u-TOKEN@MAILTO_DOMAIN: an unsubscribe per verified token; true
// when the message had a recipient at the mailto domain (it is no report).
bool FeedbackProcessor::mailto_unsubscribe(const conf::Config& config,
                                           const queue::SpoolMessage& message,
                                           CommitResult* result) {
  if (!config.policy || !config.policy->list_unsubscribe ||
      config.policy->list_unsubscribe->mailto_domain.empty())
    return false;
  const conf::ListUnsubscribeConfig& unsubscribe = *config.policy->list_unsubscribe;
  const std::string keys[] = {unsubscribe.key.key};
  bool to_mailto = false;
  *result = result_of(CommitResult::Status::committed);
  for (const queue::Recipient& r : message.envelope.recipients) {
    const size_t at = r.address.rfind('@');
    if (at == std::string::npos) continue;
    std::string domain = r.address.substr(at + 1);
    for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (domain != unsubscribe.mailto_domain) continue;
    to_mailto = true;
    policy::Decoded<policy::UnsubscribeToken> decoded =
        policy::decode_unsubscribe_local_part(std::string_view(r.address).substr(0, at), keys);
    if (!decoded.token) {
      spdlog::warn(
          "feedback: mail {} from [{}] to {}: unsubscribe token does not verify ({}), "
          "ignored",
          message.id.value, message.meta.client_ip, r.address,
          policy::token_problem_name(decoded.problem));
      dropped_total_.get(*deps_.metrics, "forged").inc();
      continue;
    }
    const CommitResult one = process_unsubscribe(*decoded.token, policy::UnsubscribeMethod::mailto);
    if (one.status != CommitResult::Status::committed) *result = one;
  }
  return to_mailto;
}

CommitResult FeedbackProcessor::process(const queue::SpoolMessage& message) {
  const std::shared_ptr<const conf::Config> config = current_config();
  const int64_t now = deps_.clock->unix_ms();
  const std::string& id = message.id.value;
  CommitResult unsubscribed;
  if (mailto_unsubscribe(*config, message, &unsubscribed)) return unsubscribed;
  const mail::FeedbackReport report = mail::parse_feedback_report(message.content);
  for (const std::string& problem : report.problems)
    spdlog::info("feedback: report {}: {}", id, problem);

  std::vector<std::string> keys;
  if (config->policy && config->policy->return_path)
    keys.push_back(config->policy->return_path->key.key);
  std::vector<std::string> rcpts;
  for (const queue::Recipient& r : message.envelope.recipients) rcpts.push_back(r.address);
  const policy::FeedbackTokens tokens = policy::read_feedback_tokens(rcpts, report, keys);
  for (const std::string& forged : tokens.forged)
    spdlog::warn("feedback: report {} from [{}]: token does not verify, ignored: {}", id,
                 message.meta.client_ip, forged);
  if (tokens.subjects.empty()) {
    const char* reason = tokens.forged.empty() ? "unattributed" : "forged";
    spdlog::info("feedback: report {} from [{}] ({}, \"{}\") dropped: {}", id,
                 message.meta.client_ip, mail::feedback_kind_name(report.kind), report.subject,
                 tokens.forged.empty() ? "no VERP address or X-Ringmail-Ref names a message"
                                       : "only forged tokens");
    dropped_total_.get(*deps_.metrics, reason).inc();
    return result_of(CommitResult::Status::committed);
  }

  const policy::BounceClassifier classifier(config->policy ? config->policy->bounce_rules
                                                           : std::vector<conf::BounceRule>{});
  std::vector<policy::FeedbackDecision> records;
  std::vector<policy::FeedbackSubject> subjects_of_records;
  for (const policy::FeedbackSubject& subject : tokens.subjects) {
    policy::FeedbackFacts facts;
    facts.report = &report;
    facts.subject = subject;
    facts.stored = stored_recipient(deps_.find_message(subject.message.value), subject.recipient);
    facts.now_unix_ms = now;
    policy::FeedbackDecision d = policy::decide_feedback(facts, classifier);
    switch (d.outcome) {
      case policy::FeedbackDecision::Outcome::record:
        records.push_back(std::move(d));
        subjects_of_records.push_back(subject);
        break;
      case policy::FeedbackDecision::Outcome::log_only:
        spdlog::info("feedback: report {} about {} <{}> ({}) logged, not acted on: {}", id, d.id,
                     d.recipient, mail::feedback_kind_name(report.kind), d.why);
        dropped_total_.get(*deps_.metrics, "not_acted_on").inc();
        break;
      case policy::FeedbackDecision::Outcome::unattributed:
        spdlog::info("feedback: report {} from [{}] dropped: {}", id, message.meta.client_ip,
                     d.why);
        dropped_total_.get(*deps_.metrics, "unattributed").inc();
        break;
    }
  }

  std::vector<std::string> seen_keys;
  for (const policy::FeedbackSubject& subject : subjects_of_records)
    seen_keys.push_back(seen_key(subject.message.value, subject.recipient, ""));
  CommitResult result = apply("report " + id, records, seen_keys, now);
  expire_seen_records(now);
  return result;
}

CommitResult FeedbackProcessor::apply(const std::string& what,
                                      const std::vector<policy::FeedbackDecision>& records,
                                      const std::vector<std::string>& seen_keys, int64_t now) {
  // First the suppressions (durable on return), then the counts: a report
  // sent again after a failure in between suppresses again (the entry is
  // replaced) and counts once.
  std::vector<queue::SuppressionEntry> entries;
  for (const policy::FeedbackDecision& d : records) {
    if (d.suppression) entries.push_back(*d.suppression);
  }
  if (!entries.empty() && !deps_.suppressions) {
    spdlog::warn("feedback: {}: {} address(es) to suppress, but no suppression store", what,
                 entries.size());
  } else if (!entries.empty()) {
    size_t added = 0;
    const queue::StoreOutcome stored = deps_.suppressions->add(entries, &added);
    if (!stored.ok()) {
      spdlog::error("feedback: {}: suppression not stored ({}); not taken", what, stored.detail);
      return result_of(CommitResult::Status::failed, stored.detail);
    }
    for (const queue::SuppressionEntry& e : entries)
      spdlog::info("feedback: {} suppressed for tenant {} ({})", e.address, e.tenant, e.reason);
  }
  std::vector<queue::StatsAddition> additions;
  std::vector<queue::ControlWrite> seen;
  for (size_t i = 0; i < records.size(); ++i) {
    if (!records[i].stats) continue;
    std::string key = seen_keys[i];
    if (deps_.spool->control(key)) {
      spdlog::info("feedback: {} about {} <{}> was counted before",
                   policy::feedback_type_name(records[i].type), records[i].id,
                   records[i].recipient);
      continue;
    }
    if (std::find_if(seen.begin(), seen.end(),
                     [&](const queue::ControlWrite& w) { return w.key == key; }) != seen.end())
      continue;
    additions.push_back(*records[i].stats);
    seen.push_back({std::move(key), std::to_string(now)});
  }
  std::vector<nlohmann::ordered_json> lines;
  for (const policy::FeedbackDecision& d : records) {
    queue::FeedbackRecord f;
    f.now_unix_ms = now;
    f.feedback_type = policy::feedback_type_name(d.type);
    f.id = d.id;
    f.recipient = d.recipient;
    f.campaign = d.campaign;
    f.tenant = d.tenant;
    f.category = d.category;
    f.report = d.report;
    lines.push_back(queue::feedback_record(f));
  }
  // One commit for the counts, their seen records and the records the
  // webhooks keep (queue/record_journal.h), before the 250.
  if (!lines.empty()) {
    const queue::StoreOutcome committed =
        commit_results(*deps_.writer, std::move(additions), std::move(seen), lines);
    if (!committed.ok()) {
      spdlog::error("feedback: {}: {}; not taken", what, committed.detail);
      return result_of(CommitResult::Status::failed, committed.detail);
    }
  }
  for (const policy::FeedbackDecision& d : records)
    feedback_total_.get(*deps_.metrics, std::string(policy::feedback_type_name(d.type))).inc();
  if (deps_.log && !lines.empty()) deps_.log->write_all(lines);
  return result_of(CommitResult::Status::committed);
}

void FeedbackProcessor::expire_seen_records(int64_t now_ms) {
  if (now_ms - seen_expired_at_ms_ < kSeenExpiryEveryMs) return;
  seen_expired_at_ms_ = now_ms;
  std::vector<queue::ControlWrite> deletions;
  for (const auto& [key, value] : deps_.spool->controls(kSeenPrefix)) {
    int64_t written = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), written);
    if (ec != std::errc() || end != value.data() + value.size() || now_ms - written > kSeenRecordMs)
      deletions.push_back({key, std::nullopt});
  }
  if (deletions.empty()) return;
  spdlog::debug("feedback: {} seen records expired", deletions.size());
  deps_.writer->submit_updates({}, {}, {}, std::move(deletions));
}

}  // namespace ringmail::mta
