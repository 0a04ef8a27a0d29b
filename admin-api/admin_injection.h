// admin-api/admin_injection.h — the body of POST /api/v1/messages
// (CONTRACT.md "Injection") checked and turned into an
// mta::InjectionRequest, and the injector's result turned into the answer.
//
// Two forms: raw {"envelope_sender", "recipients": [..], "content"} and
// built {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html",
// "headers": {NAME: VALUE}}; both take "campaign" and, with the admin token,
// "tenant". Ringmail extensions: "envelope_sender" in the built form (the
// From address by default), "campaign" in the raw form, a single string
// for "to", "cc" or "bcc".
//
// Owns: pure functions; any thread. Trust: the body is untrusted: parsed
// without exceptions, every field checked for presence, type, size and
// content, every address validated; a refusal is a 400 whose detail starts
// with the field's name ("recipients[2]: ..."), or a 413 for content over
// limits.max_message_size. Nothing reaches the injector unchecked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "admin-api/admin_router.h"
#include "mta/inbound/message_injector.h"

namespace ringmail::admin {

struct InjectionLimits {
  uint64_t max_message_size = 50ull << 20;  // limits.max_message_size
  uint32_t max_recipients = 1000;           // limits.max_recipients
};

struct ParsedInjection {
  std::optional<mta::InjectionRequest> request;  // set when the body is good
  HttpResponse error;                            // otherwise: 400 or 413
};

// key_tenant: the tenant of the API key that authenticated the request, or
// "" for the admin token (then "tenant" chooses, default "api").
ParsedInjection parse_injection_request(std::string_view body, const InjectionLimits& limits,
                                        const std::string& key_tenant);

// 200 {"id", "recipients"}, or the error the result stands for: 400 bad
// field, 413, 422 refused by a milter, 409 campaign cancelled, 429 (with
// Retry-After: seconds until the tenant's next token) over the tenant's
// max_messages, 503 (with Retry-After) milter tempfail or spool full, 500.
HttpResponse injection_response(const mta::InjectionResult& result);

// The tenant of mail injected with the admin token and no "tenant".
inline constexpr const char* kDefaultInjectionTenant = "api";

}  // namespace ringmail::admin
