#include "mta/daemon.h"

#include <getopt.h>
#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "conf/config.h"
#include "conf/config_users.h"
#include "mta/compliance_command.h"
#include "mta/dkim/dkim_signer.h"
#include "mta/feedback_processor.h"
#include "mta/inbound/auth_service.h"
#include "mta/inbound/inbound_server.h"
#include "mta/milter/milter_client.h"
#include "mta/outbound/delivery_holds.h"
#include "mta/outbound/outbound_server.h"
#include "mta/smtp/tls_context.h"
#include "mta/unsubscribe_endpoint.h"
#include "mta/webhook_dispatcher.h"
#include "policy/submission_limiter.h"
#include "queue/delivery_log.h"
#include "queue/spool.h"
#include "queue/spool_dump.h"
#include "queue/spool_lmdb.h"
#include "queue/spool_operations.h"
#include "queue/spool_reserve.h"
#include "queue/spool_writer.h"
#include "queue/suppression_store.h"
#include "ringmail_version.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Options {
  std::string config_file;
  bool check_config = false;
  std::string check_compliance;  // the From domain
  bool spool_dump = false;
  std::string spool_show;     // message id
  std::string spool_release;  // message id
  bool version = false;
};

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: ringmaild -c FILE [--check-config | --check-compliance DOMAIN | --spool-dump]\n"
      "       ringmaild --version\n"
      "  -c, --config FILE   configuration file (YAML)\n"
      "      --check-config  validate FILE and every file it names, then exit\n"
      "      --check-compliance DOMAIN  check what bulk senders need for From DOMAIN (DKIM\n"
      "                      key published, SPF, DMARC, unsubscribe, outbound TLS, return\n"
      "                      path); exit 1 when something is missing\n"
      "      --spool-dump    print queued recipients as JSON lines, then exit\n"
      "      --spool-show ID print the spooled message ID as it will be delivered\n"
      "      --spool-release ID  queue the quarantined recipients of message ID\n"
      "      --version       print the version\n",
      out);
}

// Returns -1 when the options are fine, otherwise the exit code.
int parse_options(int argc, char** argv, Options* options) {
  enum { kCheckConfig = 1000, kCheckCompliance, kSpoolDump, kSpoolShow, kSpoolRelease, kVersion };
  static const option long_options[] = {
      {"config", required_argument, nullptr, 'c'},
      {"check-config", no_argument, nullptr, kCheckConfig},
      {"check-compliance", required_argument, nullptr, kCheckCompliance},
      {"spool-dump", no_argument, nullptr, kSpoolDump},
      {"spool-show", required_argument, nullptr, kSpoolShow},
      {"spool-release", required_argument, nullptr, kSpoolRelease},
      {"version", no_argument, nullptr, kVersion},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  int opt;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "c:h", long_options, nullptr)) != -1) {
    switch (opt) {
      case 'c':
        options->config_file = optarg;
        break;
      case kCheckConfig:
        options->check_config = true;
        break;
      case kCheckCompliance:
        options->check_compliance = optarg;
        break;
      case kSpoolDump:
        options->spool_dump = true;
        break;
      case kSpoolShow:
        options->spool_show = optarg;
        break;
      case kSpoolRelease:
        options->spool_release = optarg;
        break;
      case kVersion:
        options->version = true;
        break;
      case 'h':
        print_usage(stdout);
        return kExitOk;
      default:
        std::fprintf(stderr, "ringmaild: bad option '%s'\n", argv[optind - 1]);
        print_usage(stderr);
        return kExitUsage;
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "ringmaild: unexpected argument '%s'\n", argv[optind]);
    print_usage(stderr);
    return kExitUsage;
  }
  if (options->version) return -1;
  if (options->config_file.empty()) {
    std::fputs("ringmaild: -c FILE is required\n", stderr);
    print_usage(stderr);
    return kExitUsage;
  }
  if (int(options->check_config) + int(!options->check_compliance.empty()) +
          int(options->spool_dump) + int(!options->spool_show.empty()) +
          int(!options->spool_release.empty()) >
      1) {
    std::fputs(
        "ringmaild: --check-config, --check-compliance, --spool-dump, --spool-show and "
        "--spool-release exclude each other\n",
        stderr);
    return kExitUsage;
  }
  return -1;
}

std::shared_ptr<const conf::Config> load_and_report(const std::string& file,
                                                    std::vector<std::string>* errors = nullptr) {
  conf::LoadResult result = conf::load_config(file);
  for (const auto& w : result.warnings)
    std::fprintf(stderr, "%s (warning)\n", w.to_string().c_str());
  for (const auto& e : result.errors) {
    std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (errors) errors->push_back(e.to_string());
  }
  if (!result.config && errors && errors->empty()) errors->push_back(file + ": cannot be loaded");
  return result.config;
}

void setup_logging(const conf::Config& config) {
  static bool done = false;
  if (!done) {
    auto logger = std::make_shared<spdlog::logger>(
        "ringmaild", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    spdlog::set_default_logger(logger);
    // systemd's journal adds its own timestamps; keep ours for plain stderr.
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    done = true;
  }
  spdlog::set_level(spdlog::level::from_str(config.log.level));
  spdlog::flush_on(spdlog::level::info);
}

void raise_file_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Everything that lives from start-up to shutdown, in start-up order
// (members are destroyed in reverse: server, writer, spool).
class Daemon final : public DaemonControl {
 public:
  Daemon(std::shared_ptr<const conf::Config> config, std::string config_file)
      : config_(std::move(config)), config_file_(std::move(config_file)) {}
  // After a failed start: the delivery engine uses the writer and the writer
  // confirms commits to the engine, so both stop before either goes.
  ~Daemon() override {
    if (control_) control_->stop();
    control_.reset();
    server_.reset();
    unsubscribe_.reset();
    if (feedback_) feedback_->stop();
    if (outbound_) outbound_->stop(std::chrono::milliseconds(0));
    if (webhooks_) webhooks_->stop();
    if (writer_) writer_->stop();
  }

  bool start(std::string* error) {
    metrics_.gauge("build_info", "Ringmail build", {{"version", RINGMAIL_VERSION}}).set(1);
    declare_contract_metrics();
    if (!config_->log.delivery_log.empty()) {
      delivery_log_ = queue::DeliveryLog::open(config_->log.delivery_log, error);
      if (!delivery_log_) {
        *error = "delivery log " + config_->log.delivery_log.string() + ": " + *error;
        return false;
      }
    }
    spool_ = queue::open_lmdb_spool(config_->spool.path, config_->spool.max_size, error,
                                    spool_options(*config_));
    if (!spool_) {
      *error = "spool " + config_->spool.path.string() + ": " + *error;
      return false;
    }
    const queue::RecoverySummary recovered = spool_->recover();
    spdlog::info("spool {}: {} messages, {} recipients queued, {} corrupt records ({:.3f} s)",
                 config_->spool.path.string(), recovered.messages,
                 recovered.count(queue::RecipientState::queued), recovered.corrupt_records,
                 recovered.seconds);
    for (const auto& problem : recovered.problems) spdlog::warn("spool: {}", problem);
    campaigns_ =
        std::make_unique<CampaignRegistry>(*spool_, campaign_gate_, runtime::system_clock());
    campaigns_->load();
    // Before the writer: its first commit may carry records for them.
    webhooks_ = std::make_unique<WebhookDispatcher>(*spool_, metrics_, runtime::system_clock());
    webhooks_->load(config_->webhooks);
    queue::SpoolWriterOptions writer_options;
    writer_options.initial_queued_recipients = recovered.count(queue::RecipientState::queued);
    writer_options.reserve_bytes =
        config_->spool.reserve.value_or(queue::default_spool_reserve(config_->spool.max_size));
    writer_ = std::make_unique<queue::SpoolWriter>(*spool_, &metrics_, delivery_log_.get(),
                                                   writer_options);
    writer_->set_record_journal(webhooks_.get());
    if (!webhooks_->start(writer_.get(), error)) return false;
    suppressions_ = std::make_unique<queue::SuppressionStore>(*spool_);
    uint64_t corrupt_suppressions = 0;
    const size_t suppressed = suppressions_->load(&corrupt_suppressions);
    spdlog::info("suppression lists: {} entries{}", suppressed,
                 corrupt_suppressions
                     ? fmt::format(", {} unreadable (skipped)", corrupt_suppressions)
                     : std::string());
    outbound_ = std::make_unique<OutboundServer>(OutboundDependencies{
        spool_.get(), writer_.get(), delivery_log_.get(), &metrics_, suppressions_.get()});
    // Before the engine and any listener start: every later commit (the
    // engine's own DSNs too) reaches the scheduler.
    writer_->set_committed_listener(
        [outbound = outbound_.get()](std::vector<std::unique_ptr<queue::SpoolMessage>> messages) {
          outbound->enqueue(std::move(messages));
        });
    // The keys first: the engine signs copies that are signed at delivery.
    if (!load_dkim(*config_, &dkim_, error)) return false;
    if (!outbound_->start(config_, dkim_, error)) return false;
    messages_ = std::make_unique<MessageTracker>(
        *spool_, runtime::system_clock(),
        [outbound = outbound_.get()](const std::string& id) {
          return outbound->live_view(id, kAdminAnswerTimeout);
        },
        [writer = writer_.get()](std::unique_ptr<queue::SpoolMessage> message) {
          return commit_retry(*writer, std::move(message));
        });
    messages_->set_suppressions(suppressions_.get());

    if (!load_tls(*config_, &tls_, error)) return false;
    if (!config_->auth.users_file.empty()) {
      conf::UsersFile users = conf::load_users_file(config_->auth.users_file);
      if (!users.errors.empty()) {
        *error = users.errors.front().to_string();
        return false;
      }
      auth_ = std::make_unique<AuthService>(std::move(users.users));
    }
    if (!config_->milters.empty()) milters_ = std::make_unique<MilterClient>(config_->milters);
    start_feedback();
    if (config_->policy && config_->policy->list_unsubscribe) {
      unsubscribe_ = std::make_unique<UnsubscribeEndpoint>(*feedback_, metrics_);
      if (!unsubscribe_->start(config_, error)) return false;
    }
    const unsigned cores = std::thread::hardware_concurrency();
    submission_limiter_.set_policy(config_->policy.get(), runtime::system_clock().steady());
    server_ = std::make_unique<InboundServer>(
        InboundDependencies{writer_.get(), auth_.get(), milters_.get(), &metrics_,
                            &runtime::system_clock(), &campaign_gate_, &submission_limiter_,
                            feedback_.get()},
        cores ? int(cores) : 1);
    if (!server_->start(config_, tls_, dkim_, error)) return false;
    listening_.store(true);
    return true;
  }

  // The control plane, once everything it looks at runs (before READY=1).
  bool start_control_plane(const ControlPlaneFactory& make, std::string* error) {
    if (!make) return true;
    control_ = make(*this);
    return !control_ || control_->start(error);
  }

  // --- DaemonControl (any thread)
  std::shared_ptr<const conf::Config> config() const override {
    std::lock_guard lock(config_mutex_);
    return config_;
  }

  std::string unhealthy_reason() const override {
    if (stopping_.load()) return "stopping";
    if (!listening_.load()) return "listeners not accepting";
    if (!spool_ || !writer_) return "spool not open";
    if (!writer_->accepting()) return "spool full: new mail is refused with 452 4.3.1";
    return "";
  }

  std::string metrics_text() const override { return metrics_.render(); }

  std::optional<DeliverySnapshot> snapshot(const QueueFilter& filter,
                                           bool with_idle_sites) override {
    if (!outbound_) return std::nullopt;
    return outbound_->snapshot(filter, with_idle_sites, kAdminAnswerTimeout);
  }

  // What delivery has in force for the explained (source, site) now: a
  // backoff rule, an operator's suspension, an open circuit.
  std::vector<ExplainedLimit> explain_live(const ExplainTarget& target) override {
    std::vector<ExplainedLimit> live;
    QueueFilter filter;
    filter.site = target.site;
    const std::optional<DeliverySnapshot> snap = snapshot(filter, true);
    if (!snap) return live;
    auto when = [](runtime::WallTime t) {
      return queue::format_rfc3339_ms(runtime::to_unix_ms(t));
    };
    for (const SiteSnapshot& s : snap->sites) {
      if (s.site != target.site || s.source != target.source) continue;
      if (s.backoff) {
        live.push_back(
            ExplainedLimit{"backoff", s.backoff->action + " until " + when(s.backoff->until),
                           "backoff " + s.backoff->rule + " on \"" + s.backoff->reply + "\""});
      }
      if (s.suspended_until) {
        live.push_back(ExplainedLimit{"suspended_until", when(*s.suspended_until),
                                      "POST /api/v1/queue/suspend"});
      }
      if (s.circuit) {
        live.push_back(ExplainedLimit{
            "circuit_open_until", when(s.circuit->open_until),
            "circuit breaker (" + std::to_string(s.circuit->failures) + " failures in a row)"});
      }
    }
    // The source's warm-up cap for this site: across all its sites, or the
    // site's provider's.
    for (const policy::WarmupStatus& w : snap->warmup) {
      if (w.source != target.source || (w.provider && *w.provider != target.provider)) continue;
      const std::string by = "warmup " + w.source + (w.provider ? " " + *w.provider : "") +
                             " day " + std::to_string(w.day);
      ExplainedLimit cap{"warmup_cap", {}, by};
      if (w.cap) cap.value = static_cast<int64_t>(*w.cap);
      live.push_back(std::move(cap));
      if (w.window) {
        live.push_back(ExplainedLimit{"warmup_window", *w.window, by});
        live.push_back(ExplainedLimit{"warmup_sent", static_cast<int64_t>(w.sent), by});
      }
    }
    return live;
  }

  std::optional<size_t> command(const AdminCommand& command, std::string* error) override {
    if (!outbound_ || stopping_.load()) {
      *error = "the daemon is stopping";
      return std::nullopt;
    }
    // Persisted first: a hold the operator was told about survives a crash.
    if (std::optional<PersistedHold> hold = persisted_hold(command)) {
      queue::StoreOutcome stored = spool_->put_control(hold->key, hold->value);
      if (!stored.ok()) {
        *error = "cannot persist the hold in the spool: " + stored.detail;
        return std::nullopt;
      }
    }
    std::optional<size_t> done = outbound_->command(command, kAdminAnswerTimeout);
    if (!done) *error = "the delivery thread did not answer in time";
    return done;
  }

  std::vector<std::string> reload() override { return reload_config(); }

  CampaignRegistry* campaigns() override { return campaigns_.get(); }

  MessageTracker* messages() override { return messages_.get(); }
  queue::SuppressionStore* suppressions() override { return suppressions_.get(); }

  runtime::MetricsRegistry& metrics() override { return metrics_; }

  runtime::EventHub* events() override {
    return delivery_log_ ? &delivery_log_->events() : nullptr;
  }

  InjectionResult inject(const InjectionRequest& request) override {
    if (stopping_.load() || !writer_) {
      InjectionResult r;
      r.detail = "the daemon is stopping";
      return r;
    }
    // Held for the whole call: a reload may replace both meanwhile.
    std::shared_ptr<const conf::Config> config;
    std::shared_ptr<const DkimSignerSet> dkim;
    {
      std::lock_guard lock(config_mutex_);
      config = config_;
      dkim = dkim_;
    }
    InjectorDependencies deps;
    deps.config = config.get();
    deps.writer = writer_.get();
    deps.milters = milters_.get();
    deps.dkim = dkim.get();
    deps.metrics = &metrics_;
    deps.campaigns = &campaign_gate_;
    deps.submission_limiter = &submission_limiter_;
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    return inject_message(request, deps, now);
  }

  // SIGHUP and POST /api/v1/reload: a config that fails validation changes
  // nothing; the errors that refused it are returned.
  std::vector<std::string> reload_config() {
    std::lock_guard reloading(reload_mutex_);
    const std::string& file = config_file_;
    sd_notify(0, "RELOADING=1");
    std::vector<std::string> errors;
    std::shared_ptr<const conf::Config> fresh = load_and_report(file, &errors);
    std::string error;
    std::shared_ptr<const TlsContext> tls;
    conf::UsersFile users;
    std::shared_ptr<const DkimSignerSet> dkim;
    if (fresh && !load_tls(*fresh, &tls, &error)) fresh = nullptr;
    if (fresh && !load_dkim(*fresh, &dkim, &error)) fresh = nullptr;
    if (fresh && !fresh->auth.users_file.empty()) {
      users = conf::load_users_file(fresh->auth.users_file);
      if (!users.errors.empty()) {
        error = users.errors.front().to_string();
        fresh = nullptr;
      }
    }
    if (!fresh) {
      if (!error.empty()) errors.push_back(error);
      spdlog::error("reload of {} refused{}{}; the running configuration stays in force", file,
                    error.empty() ? "" : ": ", error);
    } else {
      warn_about_restart_only_changes(*fresh);
      setup_logging(*fresh);
      if (auth_) auth_->replace_users(std::move(users.users));
      if (delivery_log_ && !delivery_log_->reopen(&error))
        spdlog::error("delivery log: reopen failed: {}", error);
      // Limits first: sessions of the new config ask at once.
      submission_limiter_.set_policy(fresh->policy.get(), runtime::system_clock().steady());
      server_->reload(fresh, tls, dkim);
      spool_->set_retention(spool_options(*fresh).retention);
      webhooks_->reload(fresh->webhooks);  // before the engine builds records for new ones
      outbound_->reload(fresh, dkim);
      if (feedback_) feedback_->reload(fresh);
      if (unsubscribe_) unsubscribe_->reload(fresh);
      outbound_->rescan();  // e.g. mail released with --spool-release meanwhile
      {
        std::lock_guard lock(config_mutex_);
        config_ = fresh;
        dkim_ = dkim;  // inject() reads it from the admin threads
      }
      tls_ = tls;
      if (control_) control_->reload(fresh);
      spdlog::info("configuration reloaded from {}", file);
    }
    sd_notify(0, "READY=1");
    return errors;
  }

  void stop() {
    stopping_.store(true);
    // No admin request after this: it may look at everything below.
    if (control_) control_->stop();
    const auto timeout = config_->limits.shutdown_timeout;
    spdlog::info("stopping: finishing sessions in progress (at most {} ms)", timeout.count());
    if (server_) server_->stop(timeout);
    if (unsubscribe_) unsubscribe_->stop();  // waits for requests in progress
    if (feedback_) feedback_->stop();        // its last reports still commit through the writer
    // Milter and auth answers are posted to the shards: end those services
    // while the (stopped) shards still exist.
    milters_.reset();
    auth_.reset();
    // Transactions in progress finish (or are cut and retried later); their
    // results reach the writer before it stops.
    if (outbound_) outbound_->stop(timeout);
    // A POST in flight is abandoned (posted again after the restart); the
    // deletions of what was posted go to the writer before it stops.
    if (webhooks_) webhooks_->stop();
    if (writer_) writer_->stop();  // commits what the sessions and deliveries handed over
    if (delivery_log_) delivery_log_->events().close();
    control_.reset();
    messages_.reset();
    outbound_.reset();
    server_.reset();
    spool_.reset();
    spdlog::info("stopped; spool closed cleanly");
  }

 private:
  static queue::SpoolOptions spool_options(const conf::Config& config) {
    queue::SpoolOptions options;
    options.retention.keep_status_ms = config.spool.keep_status.count();
    options.retention.keep_failed_ms = config.spool.keep_failed.count();
    return options;
  }

  // A dead letter's retry, committed like new mail but let through the
  // reserve; the answer waits for the commit (the committed listener then
  // schedules it).
  static queue::StoreOutcome commit_retry(queue::SpoolWriter& writer,
                                          std::unique_ptr<queue::SpoolMessage> message) {
    auto promise = std::make_shared<std::promise<queue::StoreOutcome>>();
    std::future<queue::StoreOutcome> answer = promise->get_future();
    writer.submit(
        std::move(message),
        [promise](const queue::SpoolMessage&, queue::StoreStatus status,
                  const std::string& detail) {
          promise->set_value({status, detail});
        },
        queue::SpoolWriter::Kind::dead_letter_retry);
    if (answer.wait_for(kRetryCommitTimeout) != std::future_status::ready) {
      return {queue::StoreStatus::failed,
              "the spool writer did not commit within 30 s (the retry may still be committed)"};
    }
    return answer.get();
  }

  // The feedback listener's processor, when a listener has mode feedback
  // or policy.list_unsubscribe is set (its endpoint's unsubscribes go
  // through it; listeners change only with a restart). Message look-ups read the
  // spool alone: no need to ask delivery which recipients are in flight.
  void start_feedback() {
    bool wanted = false;
    for (const auto& l : config_->listeners) wanted |= l.mode == conf::ListenerMode::feedback;
    wanted |= config_->policy && config_->policy->list_unsubscribe;
    if (!wanted) return;
    auto tracker = std::make_shared<MessageTracker>(
        *spool_, runtime::system_clock(), MessageTracker::LiveView{}, MessageTracker::Submit{});
    FeedbackDependencies deps;
    deps.spool = spool_.get();
    deps.writer = writer_.get();
    deps.find_message = [tracker](const std::string& id) { return tracker->find(id); };
    feedback_suppressions_ = std::make_unique<StoreSuppressionWriter>(*suppressions_);
    deps.suppressions = feedback_suppressions_.get();
    deps.log = delivery_log_.get();
    deps.metrics = &metrics_;
    feedback_ = std::make_unique<FeedbackProcessor>(std::move(deps), config_);
  }

  static bool load_tls(const conf::Config& config, std::shared_ptr<const TlsContext>* tls,
                       std::string* error) {
    tls->reset();
    if (config.tls.certificate.empty()) return true;
    *tls = TlsContext::load_server(config.tls.certificate, config.tls.private_key, error);
    if (!*tls) {
      *error = "tls: " + *error;
      return false;
    }
    return true;
  }

  // Keys are parsed once here, never per message.
  static bool load_dkim(const conf::Config& config, std::shared_ptr<const DkimSignerSet>* dkim,
                        std::string* error) {
    std::vector<std::string> errors, warnings;
    std::shared_ptr<const DkimSignerSet> set = DkimSignerSet::load(config.dkim, &errors, &warnings);
    for (const auto& w : warnings) spdlog::warn("{}", w);
    if (!set) {
      *error = errors.empty() ? "dkim: cannot load keys" : errors.front();
      return false;
    }
    *dkim = std::move(set);
    return true;
  }

  // Families of CONTRACT.md "Metrics" that the features counting into them
  // (suppression, campaigns, warm-up, backoff, feedback, webhooks) have not
  // registered yet: /metrics shows their HELP and TYPE from the start, so
  // that dashboards and alerts can be written against them.
  void declare_contract_metrics() {
    using runtime::MetricType;
    metrics_.counter("messages_suppressed_total",
                     "Recipients not attempted: on a suppression list");
    metrics_.counter("messages_cancelled_total",
                     "Recipients dropped with their cancelled campaign");
    // Same help as the shards' (the first registration's help is kept).
    metrics_.declare("dkim_signatures_total",
                     "DKIM signatures made, by signing domain and algorithm", MetricType::counter);
    metrics_.declare("warmup_sent", "Recipient attempts in the current warm-up window, by source",
                     MetricType::gauge);
    metrics_.declare("backoff_active", "1 while a backoff rule holds or slows a (source, site)",
                     MetricType::gauge);
    metrics_.declare("backoff_activations_total", "Backoff rules that fired, by action",
                     MetricType::counter);
    metrics_.declare("feedback_total", "Feedback reports taken in, by feedback type",
                     MetricType::counter);
    metrics_.declare("webhook_posts_total", "Webhook POSTs, by webhook and result",
                     MetricType::counter);
  }

  void warn_about_restart_only_changes(const conf::Config& fresh) const {
    bool listeners_changed = fresh.listeners.size() != config_->listeners.size();
    for (size_t i = 0; !listeners_changed && i < fresh.listeners.size(); ++i)
      listeners_changed = fresh.listeners[i].address.text != config_->listeners[i].address.text ||
                          fresh.listeners[i].name != config_->listeners[i].name;
    if (listeners_changed)
      spdlog::warn("listener names or addresses changed: they take effect at the next restart");
    if (fresh.spool.path != config_->spool.path)
      spdlog::warn("spool.path changed: it takes effect at the next restart");
    bool milters_changed = fresh.milters.size() != config_->milters.size();
    for (size_t i = 0; !milters_changed && i < fresh.milters.size(); ++i)
      milters_changed = fresh.milters[i].name != config_->milters[i].name ||
                        fresh.milters[i].address.text != config_->milters[i].address.text ||
                        fresh.milters[i].on_failure != config_->milters[i].on_failure ||
                        fresh.milters[i].timeout != config_->milters[i].timeout;
    if (milters_changed) spdlog::warn("milters changed: they take effect at the next restart");
    if ((fresh.auth.users_file.empty()) != (config_->auth.users_file.empty()))
      spdlog::warn("auth.users_file added or removed: it takes effect at the next restart");
  }

  static constexpr std::chrono::milliseconds kAdminAnswerTimeout{5000};
  static constexpr std::chrono::milliseconds kRetryCommitTimeout{30000};

  // config_ and dkim_ against config() and inject() from the admin threads.
  mutable std::mutex config_mutex_;
  std::shared_ptr<const conf::Config> config_;
  const std::string config_file_;
  std::mutex reload_mutex_;  // SIGHUP against POST /api/v1/reload
  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  runtime::MetricsRegistry metrics_;
  std::unique_ptr<queue::DeliveryLog> delivery_log_;
  std::unique_ptr<queue::Spool> spool_;
  std::unique_ptr<queue::SuppressionStore> suppressions_;  // over spool_
  // Before the writer, which commits its records until it stops.
  std::unique_ptr<WebhookDispatcher> webhooks_;
  std::unique_ptr<queue::SpoolWriter> writer_;
  policy::CampaignGate campaign_gate_;  // read by the shards
  // policy.tenants[].max_messages: asked by the shards at MAIL FROM and by
  // inject() from the admin threads; set at start and on reload.
  policy::SubmissionLimiter submission_limiter_;
  std::unique_ptr<CampaignRegistry> campaigns_;
  std::unique_ptr<OutboundServer> outbound_;
  std::unique_ptr<MessageTracker> messages_;  // uses the spool, writer and outbound
  std::unique_ptr<StoreSuppressionWriter> feedback_suppressions_;
  std::unique_ptr<FeedbackProcessor> feedback_;  // uses the spool and writer; fed by the server
  std::unique_ptr<UnsubscribeEndpoint> unsubscribe_;  // feeds feedback_
  std::shared_ptr<const TlsContext> tls_;
  std::shared_ptr<const DkimSignerSet> dkim_;
  std::unique_ptr<AuthService> auth_;
  std::unique_ptr<MilterClient> milters_;
  std::unique_ptr<InboundServer> server_;
  std::unique_ptr<ControlPlane> control_;  // last: stopped first
};

int dump_spool(const conf::Config& config) {
  std::string error;
  auto spool = queue::open_lmdb_spool(config.spool.path, config.spool.max_size, &error);
  if (!spool) {
    std::fprintf(stderr, "ringmaild: spool %s: %s\n", config.spool.path.c_str(), error.c_str());
    return kExitFailure;
  }
  queue::dump_spool_json_lines(*spool, std::cout);
  std::cout.flush();
  return kExitOk;
}

int show_message(const conf::Config& config, const std::string& id) {
  std::string error;
  auto spool = queue::open_lmdb_spool(config.spool.path, config.spool.max_size, &error);
  if (!spool) {
    std::fprintf(stderr, "ringmaild: spool %s: %s\n", config.spool.path.c_str(), error.c_str());
    return kExitFailure;
  }
  std::optional<queue::SpoolMessage> message = spool->load_message(queue::MessageId{id}, true);
  if (!message) {
    std::fprintf(stderr, "ringmaild: no message %s in the spool\n", id.c_str());
    return kExitFailure;
  }
  std::fwrite(message->content.data(), 1, message->content.size(), stdout);
  return kExitOk;
}

int release_message(const conf::Config& config, const std::string& id) {
  std::string error;
  auto spool = queue::open_lmdb_spool(config.spool.path, config.spool.max_size, &error);
  if (!spool) {
    std::fprintf(stderr, "ringmaild: spool %s: %s\n", config.spool.path.c_str(), error.c_str());
    return kExitFailure;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  queue::ReleaseOutcome outcome = queue::release_quarantined(*spool, queue::MessageId{id}, now);
  if (!outcome.store.ok()) {
    std::fprintf(stderr, "ringmaild: %s\n", outcome.store.detail.c_str());
    return kExitFailure;
  }
  std::printf("%s: %zu recipient(s) released from quarantine\n", id.c_str(), outcome.released);
  return kExitOk;
}

}  // namespace

int run_ringmaild(int argc, char** argv, const ControlPlaneFactory& make_control_plane) {
  Options options;
  if (int rc = parse_options(argc, argv, &options); rc >= 0) return rc;
  if (options.version) {
    std::printf("ringmaild %s\n", RINGMAIL_VERSION);
    return kExitOk;
  }
  std::shared_ptr<const conf::Config> config = load_and_report(options.config_file);
  // --check-compliance keeps 1 for "something is missing".
  if (!config) return options.check_compliance.empty() ? kExitFailure : kExitUsage;
  if (options.check_config) {
    std::printf("%s: configuration ok\n", config->source_file.c_str());
    return kExitOk;
  }
  if (!options.check_compliance.empty())
    return run_compliance_check(*config, options.check_compliance, stdout, stderr);
  if (options.spool_dump) return dump_spool(*config);
  if (!options.spool_show.empty()) return show_message(*config, options.spool_show);
  if (!options.spool_release.empty()) return release_message(*config, options.spool_release);

  // Signals are taken synchronously by this thread; block them before any
  // other thread exists so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  raise_file_limit();
  setup_logging(*config);

  Daemon daemon(config, options.config_file);
  std::string error;
  if (!daemon.start(&error) || !daemon.start_control_plane(make_control_plane, &error)) {
    spdlog::critical("start-up failed: {}", error);
    std::fprintf(stderr, "ringmaild: %s\n", error.c_str());
    daemon.stop();
    return kExitFailure;
  }
  spdlog::info("ringmaild {} ready ({} listeners)", RINGMAIL_VERSION, config->listeners.size());
  sd_notify(0, "READY=1\nSTATUS=accepting mail");

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", options.config_file);
      daemon.reload_config();
      continue;
    }
    spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1");
    daemon.stop();
    return kExitOk;
  }
}

}  // namespace ringmail::mta
