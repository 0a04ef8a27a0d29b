#include "mta/inbound/message_injector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <utility>

#include "mta/dkim/dkim_signer.h"
#include "mta/inbound/message_signing.h"
#include "mta/milter/milter_client.h"
#include "mta/smtp/smtp_command.h"
#include "mta/smtp/smtp_message_headers.h"
#include "queue/spool_writer.h"
#include "runtime/metrics_registry.h"

namespace ringmail::mta {
namespace {

using Status = InjectionResult::Status;

constexpr const char* kProtocol = "HTTP";  // Received: ... with HTTP

InjectionResult failure(Status status, std::string detail) {
  InjectionResult r;
  r.status = status;
  r.detail = std::move(detail);
  return r;
}

// The spool holds CRLF lines only (as the SMTP data reader leaves them),
// ending with CRLF.
std::string crlf_content(std::string_view text) {
  std::string out = to_crlf_lines(text);
  if (!out.empty() && !out.ends_with("\r\n")) out += "\r\n";
  return out;
}

std::string domain_of(const std::string& address) {
  const size_t at = address.rfind('@');
  std::string domain = at == std::string::npos ? std::string() : address.substr(at + 1);
  for (char& c : domain) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return domain;
}

bool has_eight_bit(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

}  // namespace

std::optional<queue::SpoolMessage> prepare_injected_message(const InjectionRequest& request,
                                                            const conf::Config& config,
                                                            const queue::MessageId& id,
                                                            int64_t now_unix_ms,
                                                            InjectionResult* failed) {
  std::string original;
  if (request.built) {
    MimeMessageSpec spec = *request.built;
    spec.message_id = id.value + "@" + config.hostname;
    spec.date_unix_ms = now_unix_ms;
    original = build_mime_message(spec);
  } else {
    original = crlf_content(request.content.value_or(std::string()));
  }
  // As SMTP's SIZE and the data reader count it: the message as given (or
  // built), before Ringmail's own trace and signature fields.
  if (original.size() > config.limits.max_message_size) {
    *failed =
        failure(Status::too_large, std::string(request.built ? "the built message" : "content") +
                                       " is " + std::to_string(original.size()) +
                                       " bytes, over limits.max_message_size (" +
                                       std::to_string(config.limits.max_message_size) + ")");
    return std::nullopt;
  }

  queue::SpoolMessage m;
  m.id = id;
  ReceivedTrace trace;
  trace.helo = kInjectionListener;
  trace.client_ip = request.client_ip;
  trace.hostname = config.hostname;
  trace.protocol = kProtocol;
  trace.id = m.id.value;
  if (request.recipients.size() == 1) trace.for_recipient = request.recipients[0];
  trace.unix_ms = now_unix_ms;
  const std::string received = make_received_header(trace);
  const std::string message_id = "<" + m.id.value + "@" + config.hostname + ">";
  HeaderRewrite rewrite;
  rewrite.campaign_header = config.campaign_header;
  // As a submission listener does (RFC 6409 §8): the application may leave
  // them out.
  rewrite.add_missing_message_id_and_date = true;
  rewrite.message_id = message_id;
  rewrite.unix_ms = now_unix_ms;
  RewriteResult rewritten = rewrite_message(original, received, rewrite, &m.content);
  if (!rewritten.ok) {
    *failed = failure(Status::invalid,
                      "content: the header section is malformed (it starts with a continuation "
                      "line)");
    return std::nullopt;
  }

  m.envelope.sender = request.envelope_sender;
  bool utf8_address = has_non_ascii(request.envelope_sender);
  for (const std::string& address : request.recipients) {
    queue::Recipient r;
    r.address = address;
    r.domain = domain_of(address);
    utf8_address = utf8_address || has_non_ascii(address);
    m.envelope.recipients.push_back(std::move(r));
  }
  const HeaderSection headers = parse_header_section(m.content);
  const std::string_view header_block = std::string_view(m.content).substr(0, headers.body_offset);
  m.envelope.body_type = has_eight_bit(m.content) ? "8BITMIME" : "7BIT";
  // UTF-8 addresses or header fields (RFC 6532) need SMTPUTF8 on the way out.
  m.envelope.smtputf8 = utf8_address || has_eight_bit(header_block);

  m.meta.tenant = request.tenant;
  m.meta.campaign = request.campaign.empty() ? std::move(rewritten.campaign) : request.campaign;
  m.meta.listener = kInjectionListener;
  m.meta.received_unix_ms = now_unix_ms;
  m.meta.client_ip = request.client_ip;
  m.meta.helo = kInjectionListener;
  m.meta.size = m.content.size();
  return m;
}

InjectionResult inject_message(const InjectionRequest& request, const InjectorDependencies& deps,
                               int64_t now_unix_ms) {
  const conf::Config& config = *deps.config;
  if (!deps.writer->accepting()) {
    return failure(Status::spool_full, "the spool is full: new mail is refused for now");
  }
  InjectionResult result;
  std::optional<queue::SpoolMessage> prepared =
      prepare_injected_message(request, config, queue::make_message_id(), now_unix_ms, &result);
  if (!prepared) return result;
  queue::SpoolMessage message = std::move(*prepared);
  if (deps.campaigns && deps.campaigns->refuses(message.meta.campaign)) {
    return failure(Status::campaign_refused,
                   "campaign \"" + message.meta.campaign + "\" was cancelled: its mail is refused");
  }
  // Counted as SMTP counts at MAIL FROM: once per message, after the
  // checks that refuse it for other reasons.
  if (deps.submission_limiter && !request.tenant.empty()) {
    const policy::SubmissionVerdict verdict =
        deps.submission_limiter->admit(request.tenant, deps.clock->steady());
    if (!verdict.admitted) {
      InjectionResult over = failure(Status::over_limit, "tenant \"" + request.tenant +
                                                             "\" is over its submission limit of " +
                                                             verdict.limit + "; try again later");
      over.retry_after_seconds = std::max<int64_t>(
          1, std::chrono::ceil<std::chrono::seconds>(verdict.retry_after).count());
      return over;
    }
  }
  // What the client is told on success: the recipients it asked for, also
  // when a milter discards the message silently (as SMTP's 250 does).
  const size_t requested = message.envelope.recipients.size();

  if (deps.milters && !deps.milters->empty()) {
    MilterJob job;
    job.message = std::move(message);
    job.context.hostname = config.hostname;
    job.context.daemon_name = kInjectionListener;
    job.context.client_ip = request.client_ip;
    job.context.helo = kInjectionListener;
    job.context.auth_user = request.tenant;
    MilterOutcome outcome = deps.milters->run_now(job);
    const std::string& id = outcome.message.id.value;
    for (const MilterReport& report : outcome.milters) {
      if (!report.failure.empty())
        spdlog::warn("milter {} failed for {}: {}", report.milter, id, report.failure);
    }
    for (const MilterRejectedRecipient& r : outcome.verdict.rejected_recipients)
      spdlog::warn("message {}: milter refused recipient <{}>: {}", id, r.address, r.reply);
    switch (outcome.verdict.action) {
      case MilterAction::reject:
      case MilterAction::tempfail:
      case MilterAction::replycode: {
        const std::string& reply = outcome.verdict.reply;
        spdlog::info("injected message {} from [{}] refused by a milter: {}", id, request.client_ip,
                     reply);
        const bool permanent = !reply.empty() && reply[0] == '5';
        return failure(permanent ? Status::refused : Status::tempfail,
                       reply.empty() ? std::string(kMilterTempfailReply) : reply);
      }
      case MilterAction::discard:
        spdlog::info("injected message {} from [{}] discarded by a milter", id, request.client_ip);
        result.status = Status::queued;
        result.id = id;
        result.recipients = requested;
        return result;
      case MilterAction::quarantine:
        spdlog::info("injected message {} quarantined by a milter: {}", id,
                     outcome.verdict.quarantine_reason);
        for (auto& r : outcome.message.envelope.recipients)
          r.state = queue::RecipientState::quarantined;
        break;
      case MilterAction::proceed:
      case MilterAction::accept:
        break;
    }
    message = std::move(outcome.message);
  }

  bool deferred = false;
  if (deps.config) {
    prepend_feedback_id(*deps.config, message);
    deferred = defer_signing_for_unsubscribe(*deps.config, message);
  }
  if (!deferred && deps.dkim && !deps.dkim->empty()) {
    for (const auto& sig :
         prepend_dkim_signatures(*deps.dkim, message, now_unix_ms / 1000, nullptr)) {
      if (!deps.metrics) continue;
      deps.metrics
          ->counter("dkim_signatures_total",
                    "DKIM signatures made, by signing domain and algorithm",
                    {{"domain", sig.signer->domain()},
                     {"algorithm", std::string(sig.signer->algorithm_name())}})
          .inc();
    }
  }

  const std::string id = message.id.value;
  const size_t recipients = message.envelope.recipients.size();
  struct Stored {
    queue::StoreStatus status;
    std::string detail;
  };
  // `done` runs exactly once, on the writer thread after the commit (or at
  // once after the writer stopped).
  auto stored = std::make_shared<std::promise<Stored>>();
  std::future<Stored> answer = stored->get_future();
  deps.writer->submit(
      std::make_unique<queue::SpoolMessage>(std::move(message)),
      [stored](const queue::SpoolMessage&, queue::StoreStatus status, const std::string& detail) {
        stored->set_value(Stored{status, detail});
      });
  const Stored outcome = answer.get();
  switch (outcome.status) {
    case queue::StoreStatus::ok:
      result.status = Status::queued;
      result.id = id;
      result.recipients = recipients;
      return result;
    case queue::StoreStatus::spool_full:
      return failure(Status::spool_full, "the spool is full: new mail is refused for now");
    case queue::StoreStatus::failed:
      return failure(Status::failed, "the spool could not store the message: " + outcome.detail);
  }
  return failure(Status::failed, "the spool gave no answer");
}

}  // namespace ringmail::mta
