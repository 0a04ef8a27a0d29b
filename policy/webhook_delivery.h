// policy/webhook_delivery.h — the decisions behind a webhook POST
// (CONTRACT.md "Feedback, suppression and compliance in detail",
// webhooks[]): how its body is signed, what its outcome counts as, and how
// long a webhook waits before it tries the same batch again.
//
// Owns nothing: pure functions of their arguments, times passed in. Any
// thread. The HTTP itself (libcurl) is mta/webhook_dispatcher.h's; the
// records and their spool format are queue/webhook_records.h's.
//
// SECURITY: the signature lets a receiver check that a body came from a
// holder of the webhook's secret and was not changed; it does not hide the
// body (use https://) and does not stop a replay of an old body (receivers
// deduplicate by event_id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/clock.h"

namespace ringmail::policy {

// The X-Ringmail-Signature header's value: "sha256=" and the lower-case
// hex HMAC-SHA256 of the body with the secret (the key file's octets).
std::string webhook_signature(std::string_view secret, std::string_view body);

// How the transfer ended, as the HTTP client saw it.
enum class WebhookTransport {
  answered,        // a complete HTTP response: its status decides
  timed_out,       // no (complete) answer in time
  connect_failed,  // name resolution or TCP/TLS connection failed
  failed,          // anything else: reset, malformed response, ...
};

// The outcome of one POST, the `result` label of
// ringmail_webhook_posts_total. Only `ok` removes the batch from the backlog.
enum class WebhookPostResult { ok, http_4xx, http_5xx, http_other, timeout, connect_error, error };
const char* to_string(WebhookPostResult result);

// ok for a 2xx; http_4xx / http_5xx; http_other for any other status
// (1xx, 3xx: redirects are not followed); timeout, connect_error, error
// from the transport.
WebhookPostResult classify_webhook_post(WebhookTransport transport, long http_status);

// Exponential backoff of a webhook whose POSTs fail: the delay after the
// n-th failure in a row is `first` doubled n-1 times, at most `max`, less a
// jitter of up to a quarter of it (jitter in [0, 1), drawn by the caller),
// so that webhooks failing together do not retry in step.
struct WebhookRetrySchedule {
  runtime::Millis first{1000};
  runtime::Millis max{300000};
};
runtime::Millis webhook_retry_delay(uint32_t failures_in_a_row, double jitter,
                                    const WebhookRetrySchedule& schedule = {});

}  // namespace ringmail::policy
