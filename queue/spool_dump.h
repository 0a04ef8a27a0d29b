// queue/spool_dump.h — `ringmaild --spool-dump`: the spool's recipients as
// JSON lines, for operators and crash tests.
//
// Owns: nothing; reads a Spool through its interface (no bodies), from the
// calling thread. One JSON object per stored recipient whose records decode:
//   {"id","sender","recipient","campaign","tenant","state","attempts",
//    "next_attempt","size","received"}
// with times in RFC 3339 UTC. Corrupt records are skipped (and logged by
// the spool), so every printed line is a recipient that can be delivered.
#pragma once

#include <cstdint>
#include <ostream>

#include "queue/spool.h"

namespace ringmail::queue {

// Returns the number of lines written.
uint64_t dump_spool_json_lines(const Spool& spool, std::ostream& out);

}  // namespace ringmail::queue
