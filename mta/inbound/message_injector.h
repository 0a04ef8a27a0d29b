// mta/inbound/message_injector.h — mail submitted over HTTP (POST
// /api/v1/messages, CONTRACT.md "Injection") on the same path as mail
// submitted over SMTP: Received trace, campaign (the request's field, or
// policy.campaign_header in raw content, stripped as the SMTP path strips
// it), Message-ID and Date when missing, the milters, DKIM, the spool
// commit and its Reception records (listener "api").
//
// Owns: the pipeline of one injected message, run synchronously on the
// calling thread (an admin HTTP thread): milters with MilterClient::run_now,
// signing here, then SpoolWriter::submit and a wait for its `done`. Nothing
// is shared between calls; any number of threads may inject at once.
// Durability: inject_message() returns `queued` only after the group
// commit that holds the message is durable; any other result means no
// recipient of it was queued (nothing half-queued).
// Trust: the request was parsed and checked by admin-api/admin_injection.h;
// raw content is still untrusted bytes, taken apart with the same header
// code as SMTP (mta/smtp/smtp_message_headers.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "conf/config.h"
#include "mta/inbound/mime_builder.h"
#include "policy/campaign_gate.h"
#include "policy/submission_limiter.h"
#include "queue/spool_message.h"
#include "runtime/clock.h"

namespace ringmail::runtime {
class MetricsRegistry;
}
namespace ringmail::queue {
class SpoolWriter;
}

namespace ringmail::mta {

class DkimSignerSet;
class MilterClient;

// The listener name of injected mail (Reception records, metrics, milters).
inline constexpr const char* kInjectionListener = "api";

struct InjectionRequest {
  std::string tenant;                   // the API key's, or the admin's choice (default "api")
  std::string client_ip;                // the HTTP client, for Received and the milters
  std::string envelope_sender;          // "" is the null sender
  std::vector<std::string> recipients;  // valid mailboxes, without duplicates
  std::string campaign;                 // "" when the request names none
  // Exactly one of the two forms.
  std::optional<std::string> content;    // raw RFC 5322 text, any line endings
  std::optional<MimeMessageSpec> built;  // message_id and date are set here
};

struct InjectionResult {
  enum class Status {
    queued,            // id, recipients
    invalid,           // 400: detail names the field
    too_large,         // 413
    refused,           // a milter refused it for good (5xx): detail is its reply
    tempfail,          // a milter refused it for now (4xx), or failed
    campaign_refused,  // the campaign it names was cancelled
    over_limit,        // the tenant is over max_messages: retry_after_seconds
    spool_full,        // new mail is refused for want of space
    failed,            // the spool could not store it
  };
  Status status = Status::failed;
  std::string id;
  size_t recipients = 0;
  std::string detail;
  int64_t retry_after_seconds = 0;  // over_limit: until the tenant's next token (>= 1)
};

struct InjectorDependencies {
  const conf::Config* config = nullptr;         // required
  queue::SpoolWriter* writer = nullptr;         // required
  MilterClient* milters = nullptr;              // null or empty: no milters
  const DkimSignerSet* dkim = nullptr;          // null or empty: no signing
  runtime::MetricsRegistry* metrics = nullptr;  // null: nothing counted
  // Campaigns whose mail is refused (cancelled); null: none.
  const policy::CampaignGate* campaigns = nullptr;
  // policy.tenants[].max_messages; null: no limits. A request that passed
  // validation counts one message of its tenant, at clock's steady time.
  policy::SubmissionLimiter* submission_limiter = nullptr;
  const runtime::Clock* clock = &runtime::system_clock();
};

// The spool message of a request as the SMTP path would have built it at
// the end of DATA: content (raw with CRLF lines, or the MIME message built
// from the fields), Received, the campaign moved into metadata, Message-ID
// and Date when missing, envelope and metadata. Pure. On failure (a
// malformed header section, a built message over limits.max_message_size)
// returns nullopt and sets *failure.
std::optional<queue::SpoolMessage> prepare_injected_message(const InjectionRequest& request,
                                                            const conf::Config& config,
                                                            const queue::MessageId& id,
                                                            int64_t now_unix_ms,
                                                            InjectionResult* failure);

// The whole path: prepare, milters, DKIM, commit. Blocks until the commit
// is durable (or refused).
InjectionResult inject_message(const InjectionRequest& request, const InjectorDependencies& deps,
                               int64_t now_unix_ms);

}  // namespace ringmail::mta
