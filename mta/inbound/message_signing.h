// mta/inbound/message_signing.h — DKIM signing of a message on its way into
// the spool, shared by the SMTP shards and the injection API: once per
// message, after the milters and before the commit, so that a retry or a
// second recipient never signs again.
//
// Owns: nothing; a pure function over a SpoolMessage. Any thread may call
// it (DkimSignerSet is immutable once loaded).
#pragma once

#include <cstdint>
#include <vector>

#include "mta/dkim/dkim_signer.h"
#include "queue/spool_message.h"

namespace ringmail::mta {

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
