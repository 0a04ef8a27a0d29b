// queue/record_journal.h — delivery-log records kept in the spool, in the
// same commit as the results they describe (the webhooks' backlog,
// mta/webhook_dispatcher.h implements it), so that a kill -9 can lose a
// result and its record together, never the record alone.
//
// Owns: nothing; an interface the spool writer (queue/spool_writer.h)
// calls. Threads: stage() and committed() run on the writer thread only,
// one commit at a time, in commit order; wants_records() on any thread.
//
// The writer hands each commit's records to stage() (results' records in
// the order they were submitted, then the Reception records of the
// commit's new mail), adds the returned control writes to that commit, and
// after the commit succeeded passes the batch to committed(). A commit that
// fails is not followed by committed(): its batch is dropped and its
// records are staged again with the retried commit.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "queue/spool.h"

namespace ringmail::queue {

// One record as one consumer (a webhook) keeps it.
struct JournaledRecord {
  std::string consumer;                     // the webhook's name
  uint64_t sequence = 0;                    // its key's order and event id
  std::shared_ptr<const std::string> json;  // shared by every consumer of the record
};

struct JournalBatch {
  std::vector<ControlWrite> controls;  // to write in the commit
  std::vector<JournaledRecord> records;
  bool empty() const { return controls.empty() && records.empty(); }
};

class RecordJournal {
 public:
  virtual ~RecordJournal() = default;
  // False while nobody consumes records: the writer then builds none.
  virtual bool wants_records() const = 0;
  // Adds to *batch what keeps `records` (the ones some consumer takes).
  virtual void stage(std::span<const nlohmann::ordered_json> records, JournalBatch* batch) = 0;
  // The commit that wrote batch.controls succeeded.
  virtual void committed(JournalBatch batch) = 0;
};

}  // namespace ringmail::queue
