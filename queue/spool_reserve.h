// queue/spool_reserve.h — when the spool stops taking new mail, so that
// delivery results can always be committed.
//
// Owns: the decision, per message, whether the spool has room for it above
// a reserve, and the episodes of refusal that follow (for one log line per
// episode instead of one per message). Delivery results (recipient updates,
// deletions of finished messages) need pages too — LMDB copies every page
// it changes — and they are what frees space, so new mail must leave room
// for them: it is refused while taking it would leave less than the reserve.
// Once refusing, mail is taken again only above the reserve plus a margin,
// so that acceptance does not flap with every delivered message.
//
// Pure: facts in (the spool's SpoolSpace, a message's expected footprint),
// decisions out; no clock, no I/O, no locks. Used by the SpoolWriter thread.
#pragma once

#include <cstdint>

#include "queue/spool.h"

namespace ringmail::queue {

// The default reserve for a map of `map_size` bytes: 1/64 of it, at least
// 4 MiB, at most 256 MiB, and never more than a quarter of the map.
uint64_t default_spool_reserve(uint64_t map_size);

// Bytes a message is expected to take in the spool: its body in whole
// pages, the message record, and per recipient its record and index keys.
// An estimate that errs high; LMDB itself still has the last word.
uint64_t spool_footprint(uint64_t content_bytes, size_t recipients);

class SpoolReserve {
 public:
  // reserve_bytes 0: no reserve, every message is admitted (LMDB decides).
  explicit SpoolReserve(uint64_t reserve_bytes);

  uint64_t reserve_bytes() const { return reserve_; }
  uint64_t resume_margin_bytes() const { return margin_; }
  // True from a refusal until the next admission.
  bool refusing() const { return refusing_; }

  // True when `space` (counted with or without free pages) leaves room for
  // `bytes` above the line: the caller need not count LMDB's free pages.
  bool clearly_fits(const SpoolSpace& space, uint64_t bytes) const;

  // One message of `bytes`, with `available` bytes of room left (what was
  // admitted before it in the same batch already taken off).
  bool admit(uint64_t available, uint64_t bytes);

  // The spool itself refused a commit as full (the estimate was short, or
  // something else filled the filesystem): refuse as after a refusal here.
  void spool_reported_full();

 private:
  uint64_t line() const;

  uint64_t reserve_;
  uint64_t margin_;
  bool refusing_ = false;
};

}  // namespace ringmail::queue
