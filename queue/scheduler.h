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
// structure: no clock, no I/O (callers pass the wall time), so it is unit-tested
// and benchmarked without sockets. Every operation is O(log n) or O(1).
//
// Durability: none here. The spool holds each recipient's state; this is
// rebuilt from it at start-up (Spool::for_each_recipient).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "queue/spool_message.h"
#include "runtime/clock.h"

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
  // Who it belongs to, for holds, shaping and statistics: the message's
  // tenant and campaign ("" if none), and the egress pool ("": default).
  std::string tenant;
  std::string campaign;
  std::string pool;
  runtime::WallTime received{};  // for delivery.retry.max_age
  runtime::WallTime due{};       // the epoch: due at once
  std::string site;              // set once routed
  std::string last_site;         // the site of its last attempt, kept while it waits (admin API)
  // A token of its tenant's or campaign's rate was taken for its next
  // start (it was released from their wait list): not taken again.
  bool rate_paid = false;
};

class Scheduler {
 public:
  enum class Place { waiting, routing, ready, in_flight };

  // A new job, waiting until job.due (rounded up to 100 ms).
  // Returns its id.
  JobId add(Job job);

  // Moves every waiting job due at or before `now` to routing and appends
  // its id to *due, earliest first (at most `limit`).
  void take_due(runtime::WallTime now, std::vector<JobId>* due, size_t limit = SIZE_MAX);
  // Earliest time a waiting job may come due (a 100 ms boundary; may
  // belong to a job that has since moved on).
  std::optional<runtime::WallTime> next_due() const;

  // routing -> ready at the end of `site`'s FIFO.
  void make_ready(JobId id, const std::string& site);
  // Pops the oldest ready job of `site` (now in flight). nullopt if none.
  std::optional<JobId> pick_next(const std::string& site);
  // Takes every ready job of `site` back to routing (e.g. to defer them all
  // when the site cannot be reached), appending their ids to *out.
  void take_ready(const std::string& site, std::vector<JobId>* out);

  // Any place -> routing: the caller keeps it aside (a job waiting for a
  // rate's token) and routes or reschedules it later.
  void set_aside(JobId id);
  // Any place -> waiting until `due`.
  void reschedule(JobId id, runtime::WallTime due);
  // Forgets the job (every recipient reached a final state).
  void remove(JobId id);

  Job* find(JobId id);
  const Job* find(JobId id) const;
  std::optional<Place> place(JobId id) const;

  size_t size() const { return jobs_; }
  size_t waiting() const { return waiting_; }
  size_t ready(const std::string& site) const;
  size_t ready_total() const { return ready_total_; }
  size_t in_flight() const { return in_flight_; }
  // Sites with at least one ready job.
  std::vector<std::string> ready_sites() const;
  // The ids of every job not in flight that `match` accepts (an operator's
  // bulk action: O(jobs)).
  template <typename Match>
  std::vector<JobId> select_queued(Match&& match) const {
    std::vector<JobId> ids;
    for (uint32_t slot = 0; slot < slots_.size(); ++slot) {
      const Entry& e = slots_[slot];
      if (e.alive && e.place != Place::in_flight && match(e.job)) {
        ids.push_back((JobId(e.generation) << 32) | slot);
      }
    }
    return ids;
  }
  // Calls visit(job, place) for every job (a snapshot for the admin API: O(jobs)).
  template <typename Visit>
  void for_each(Visit&& visit) const {
    for (const Entry& e : slots_) {
      if (e.alive) visit(e.job, e.place);
    }
  }

 private:
  // Jobs live in a slab (JobId = generation << 32 | slot), the time index
  // is one FIFO per 100 ms (a job due at t ms waits in the bucket of
  // ceil(t / 100): it never runs early and at most 100 ms late), and
  // each site's FIFO is a deque; moving a job out of a bucket or a FIFO
  // leaves a stale entry that is skipped when reached. So every operation
  // touches a few contiguous entries and a small map of seconds, and stays
  // cheap at a million queued jobs.
  struct Entry {
    Job job;
    Place place = Place::waiting;
    uint32_t generation = 0;
    bool alive = false;
    uint64_t ready_sequence = 0;  // which FIFO entry is current, when ready
  };
  struct SiteQueue {
    std::deque<std::pair<uint64_t, JobId>> fifo;  // (sequence, job), stale ones included
    size_t live = 0;
  };

  Entry* entry(JobId id);
  const Entry* entry(JobId id) const;
  static int64_t bucket_of(runtime::WallTime due);
  void push_waiting(JobId id, runtime::WallTime due);
  void unlink(Entry& entry);

  std::vector<Entry> slots_;
  std::vector<uint32_t> free_slots_;
  size_t jobs_ = 0;
  static constexpr int64_t kBucketMs = 100;
  std::map<int64_t, std::deque<JobId>> buckets_;  // bucket -> jobs, stale ones included
  size_t waiting_ = 0;
  std::unordered_map<std::string, SiteQueue> sites_;
  uint64_t next_sequence_ = 1;
  size_t ready_total_ = 0;
  size_t in_flight_ = 0;
};

// The time of the next attempt after `attempts` attempts (1 = the first
// failed): intervals[attempts-1], the last one repeating, times `jitter`
// (e.g. 0.9..1.1, chosen by the caller's random source), at least 1 ms.
runtime::WallTime next_attempt_time(runtime::WallTime now, uint32_t attempts,
                                    const std::vector<runtime::Millis>& intervals, double jitter);

}  // namespace ringmail::queue
