// mta/inbound/message_signing.h — DKIM signing of a message on its way into
// the spool, shared by the SMTP shards and the injection API: once per
// message, after the milters and before the commit, so that a retry or a
// second recipient never signs again. The Feedback-ID header
// (policy/return_path.h) goes in just before, so that it is signed.
//
// Owns: nothing; pure functions over a SpoolMessage. Any thread may call
// them (DkimSignerSet and Config are immutable once loaded).
#pragma once

#include <cstdint>
#include <vector>

#include "conf/config.h"
#include "mta/dkim/dkim_signer.h"
#include "queue/spool_message.h"

namespace ringmail::mta {

// With policy.return_path configured, puts `Feedback-ID:
// CAMPAIGN:TENANT:LISTENER:SENDER_ID` in front of a message whose header
// section has none (an application's own Feedback-ID is kept; Gmail wants
// one); meta.size follows. Nothing otherwise. Call before
// prepend_dkim_signatures(). True when it added the field.
bool prepend_feedback_id(const conf::Config& config, queue::SpoolMessage& message);

// With policy.list_unsubscribe configured and a campaign message without
// its own List-Unsubscribe (policy::adds_list_unsubscribe), marks it
// meta.sign_at_delivery and returns true: then the caller signs nothing
// now, as each recipient's copy is signed at delivery with its own
// List-Unsubscribe fields. Call after prepend_feedback_id().
bool defer_signing_for_unsubscribe(const conf::Config& config, queue::SpoolMessage& message);

// Signs `message` with every key for its From domain and puts the
// DKIM-Signature fields in front of it (meta.size follows). Returns the
// signatures made, so that the caller counts dkim_signatures_total in its
// own way; none when no key applies. `streamed` (may be null): body hashes
// computed while the body arrived.
std::vector<DkimSignerSet::Signature> prepend_dkim_signatures(const DkimSignerSet& signers,
                                                              queue::SpoolMessage& message,
                                                              int64_t now_unix,
                                                              const DkimBodyHashes* streamed);

}  // namespace ringmail::mta
