// queue/scheduler.h — the delivery scheduler's in-memory state: which
// recipients wait for their next attempt, which are ready at which site,
// which are in flight.
//
// Owns: jobs. A job is the recipients of one message that go to one
// destination domain together (one SMTP transaction). A job is in exactly
// one place: waiting (ordered by due time), routing (due, waiting for the
// caller to find its site), ready (in the FIFO of its site), or in flight
// (taken by a connection). Ready queues are keyed by site (the
// destination's MX host set, queue/scheduler users decide the string) so
// that every domain of one provider shares one queue and one set of limits.
//
// Threads: not thread-safe; owned by the delivery loop's thread. Pure data
// structure: no clock, no I/O (callers pass now_ms), so it is unit-tested
// and benchmarked without sockets. Every operation is O(log n) or O(1).
//
// Durability: none here. The spool holds each recipient's state; this is
// rebuilt from it at start-up (Spool::for_each_recipient).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "queue/spool_message.h"

namespace ringmail::queue {

using JobId = uint64_t;

struct JobRecipient {
  uint32_t index = 0;         // position in the message's recipients
  uint32_t attempts = 0;      // attempts made so far
  bool was_deferred = false;  // its spool state is deferred (else queued)
};

struct Job {
  MessageId id;
  std::string domain;  // lower-case recipient domain: the routing key
  std::vector<JobRecipient> recipients;
  int64_t received_unix_ms = 0;  // for delivery.retry.max_age
  int64_t due_unix_ms = 0;
  std::string site;  // set once routed
};

class Scheduler {
 public:
  enum class Place { waiting, routing, ready, in_flight };

  // A new job, waiting until job.due_unix_ms. Returns its id.
  JobId add(Job job);

  // Moves every waiting job due at or before now_ms to routing and appends
  // its id to *due, earliest first (at most `limit`).
  void take_due(int64_t now_ms, std::vector<JobId>* due, size_t limit = SIZE_MAX);
  // Earliest due time among waiting jobs.
  std::optional<int64_t> next_due() const;

  // routing -> ready at the end of `site`'s FIFO.
  void make_ready(JobId id, const std::string& site);
  // Pops the oldest ready job of `site` (now in flight). nullopt if none.
  std::optional<JobId> pick_next(const std::string& site);
  // Takes every ready job of `site` back to routing (e.g. to defer them all
  // when the site cannot be reached), appending their ids to *out.
  void take_ready(const std::string& site, std::vector<JobId>* out);

  // Any place -> waiting until due_ms.
  void reschedule(JobId id, int64_t due_ms);
  // Forgets the job (every recipient reached a final state).
  void remove(JobId id);

  Job* find(JobId id);
  const Job* find(JobId id) const;
  std::optional<Place> place(JobId id) const;

  size_t size() const { return jobs_.size(); }
  size_t waiting() const { return waiting_.size(); }
  size_t ready(const std::string& site) const;
  size_t ready_total() const { return ready_total_; }
  size_t in_flight() const { return in_flight_; }
  // Sites with at least one ready job.
  std::vector<std::string> ready_sites() const;

 private:
  struct Entry {
    Job job;
    Place place = Place::waiting;
    uint64_t ready_sequence = 0;  // position in its site's FIFO, when ready
  };
  // FIFO per site as an ordered map sequence -> job, so that removing a
  // job from the middle (reschedule) is O(log n).
  struct SiteQueue {
    std::map<uint64_t, JobId> fifo;
  };

  void unlink(JobId id, Entry& entry);

  std::unordered_map<JobId, Entry> jobs_;
  std::set<std::pair<int64_t, JobId>> waiting_;
  std::unordered_map<std::string, SiteQueue> sites_;
  JobId next_id_ = 1;
  uint64_t next_sequence_ = 1;
  size_t ready_total_ = 0;
  size_t in_flight_ = 0;
};

// The time of the next attempt after `attempts` attempts (1 = the first
// failed): intervals[attempts-1], the last one repeating, times `jitter`
// (e.g. 0.9..1.1, chosen by the caller's random source).
int64_t next_attempt_time(int64_t now_ms, uint32_t attempts,
                          const std::vector<int64_t>& intervals_ms, double jitter);

}  // namespace ringmail::queue
