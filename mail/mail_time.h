// mail/mail_time.h — how mail writes times: RFC 5322 dates (Date:,
// Received:, DSN fields) and RFC 3339 timestamps (delivery log, API).
//
// Owns: the two formatters, once (they used to exist twice and had
// drifted: only one handled times before 1970). Pure; any thread.
#pragma once

#include <cstdint>
#include <string>

namespace ringmail::mail {

// "Tue, 01 Dec 2026 10:00:00 +0000" (RFC 5322 §3.3, UTC), whole seconds
// rounded down, also before 1970.
std::string format_rfc5322_date(int64_t unix_ms);

// "2026-01-02T03:04:05.678Z" (RFC 3339, UTC, milliseconds).
std::string format_rfc3339_ms(int64_t unix_ms);

}  // namespace ringmail::mail
