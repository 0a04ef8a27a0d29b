// queue/dsn.h — delivery status notifications (RFC 3464 multipart/report)
// for the sender of a message that bounced or expired.
//
// Owns: the decision whether a recipient's failure is reported (RFC 3461
// NOTIFY, never to the null sender), and the DSN message itself: a new
// SpoolMessage from the null sender to the original sender, which the
// caller hands to the spool writer like any accepted message. Pure
// functions; any thread.
//
// SECURITY: envelope addresses and reply texts come from the network; they
// are written as header fields only after CR/LF and other control
// characters are removed, and long lines are folded, so a DSN is always a
// well-formed message.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "queue/spool_message.h"

namespace ringmail::queue {

struct DsnRecipient {
  std::string address;            // the final recipient (envelope forward-path)
  std::string dsn_orcpt;          // RFC 3461 ORCPT= as given ("rfc822;a@b.test"), "" if none
  std::string action = "failed";  // "failed" (bounce, expiration) or "delayed"
  std::string status;             // enhanced status "5.1.1"; for expirations "4.4.7"
  std::string diagnostic;         // the remote reply, "550 5.1.1 no such user", "" if none
  std::string remote_mta;         // MX host name that answered, "" if none
  int64_t last_attempt_unix_ms = 0;
};

struct DsnRequest {
  const SpoolMessage* original = nullptr;  // with content
  std::vector<DsnRecipient> recipients;    // at least one
  std::string reporting_mta;               // config hostname
  int64_t now_unix_ms = 0;
};

// True when the failure of this recipient of a message from `sender` should
// be reported: the sender is not null and NOTIFY is absent or names FAILURE
// (for action "failed") or DELAY (for "delayed"). A success action
// ("delivered", "relayed", "expanded") is reported only when NOTIFY names
// SUCCESS.
bool wants_dsn(const std::string& sender, const Recipient& recipient, const std::string& action);

// The DSN as a message ready for the spool: id `id`, null sender, one
// recipient (the original sender), metadata copied from the original
// (tenant, campaign) with listener "dsn", received now, content:
//   From: MAILER-DAEMON@<reporting_mta>, To: <original sender>,
//   Subject: Undelivered Mail Returned to Sender (or "Delayed Mail"),
//   Date, Message-ID, Auto-Submitted: auto-replied, MIME-Version,
//   Content-Type: multipart/report; report-type=delivery-status;
//   boundary=…
//   1. text/plain: a human explanation with each recipient and reply;
//   2. message/delivery-status: Reporting-MTA: dns; host, Original-Envelope-Id
//      (ENVID), Arrival-Date, then per recipient Original-Recipient (ORCPT),
//      Final-Recipient: rfc822; addr, Action, Status, Remote-MTA: dns; host,
//      Diagnostic-Code: smtp; reply, Last-Attempt-Date;
//   3. the original: message/rfc822 (RET=FULL or no RET; bodies over 1 MiB
//      are cut to their headers) or text/rfc822-headers (RET=HDRS).
// Non-ASCII addresses and SMTPUTF8 originals get the RFC 6533 types
// (message/global-delivery-status, message/global, message/global-headers).
// Null when there is nothing to report: no original, no recipients, or an
// original from the null sender.
std::unique_ptr<SpoolMessage> make_dsn(const DsnRequest& request, MessageId id);

}  // namespace ringmail::queue
