// queue/spool_lmdb.h — the production Spool, on LMDB.
//
// Owns: one LMDB environment in the spool directory (data.mdb, lock.mdb)
// with the named databases "meta" (spool format), "messages", "bodies",
// "recipients" and the scheduler indexes "idx_next" and "idx_site"
// (layouts in queue/spool_codec.h; "idx_campaign" is no longer written and
// is emptied at open), and "control" (holds,
// campaigns, statistics, status records and dead letters: queue/
// campaign_records.h, queue/spool_retention.h). Only recipients in an
// active state (queued, in flight, deferred) are indexed.
//
// Threads: see queue/spool.h. The environment is opened with MDB_NOTLS, so
// read transactions are not tied to a thread and any thread may read.
//
// Durability: commits are synced (no MDB_NOSYNC / MDB_NOMETASYNC): a
// store_batch() that returned ok survives kill -9 and power loss. LMDB's
// copy-on-write B-trees never expose a half-written transaction; map full,
// ENOSPC and EDQUOT abort the whole transaction and report spool_full.
//
// SECURITY: the spool directory must be private to ringmaild (created
// 0700, files 0600). Records read back are decoded defensively; an
// unknown, newer spool format is refused at open rather than misread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "queue/spool.h"

namespace ringmail::queue {

// The layout of keys and values this build writes; stored in "meta".
inline constexpr uint32_t kSpoolFormatVersion = 1;

// Opens (creating the directory and databases if missing) the spool in
// `dir` with an LMDB map of `map_size` bytes. On failure returns null and
// sets *error to one line naming the directory and the reason.
std::unique_ptr<Spool> open_lmdb_spool(const std::filesystem::path& dir, uint64_t map_size,
                                       std::string* error, const SpoolOptions& options = {});

}  // namespace ringmail::queue
