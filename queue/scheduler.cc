#include "queue/scheduler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ringmail::queue {

namespace {

uint32_t slot_of(JobId id) { return static_cast<uint32_t>(id); }
uint32_t generation_of(JobId id) { return static_cast<uint32_t>(id >> 32); }

}  // namespace

Scheduler::Entry* Scheduler::entry(JobId id) {
  const uint32_t slot = slot_of(id);
  if (slot >= slots_.size()) return nullptr;
  Entry& e = slots_[slot];
  return e.alive && e.generation == generation_of(id) ? &e : nullptr;
}

const Scheduler::Entry* Scheduler::entry(JobId id) const {
  return const_cast<Scheduler*>(this)->entry(id);
}

JobId Scheduler::add(Job job) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Entry& e = slots_[slot];
  e.generation += 1;  // never 0, so a JobId is never 0
  e.alive = true;
  e.place = Place::waiting;
  e.job = std::move(job);
  const JobId id = (static_cast<uint64_t>(e.generation) << 32) | slot;
  push_waiting(id, e.job.due);
  ++jobs_;
  return id;
}

int64_t Scheduler::bucket_of(runtime::WallTime due) {
  const int64_t due_ms = runtime::to_unix_ms(due);
  return due_ms <= 0 ? 0 : (due_ms + kBucketMs - 1) / kBucketMs;
}

void Scheduler::push_waiting(JobId id, runtime::WallTime due) {
  buckets_[bucket_of(due)].push_back(id);
  ++waiting_;
}

void Scheduler::take_due(runtime::WallTime now, std::vector<JobId>* due, size_t limit) {
  const int64_t now_ms = runtime::to_unix_ms(now);
  size_t taken = 0;
  while (taken < limit && !buckets_.empty()) {
    auto bucket = buckets_.begin();
    if (bucket->first * kBucketMs > now_ms) break;
    std::deque<JobId>& jobs = bucket->second;
    while (taken < limit && !jobs.empty()) {
      const JobId id = jobs.front();
      jobs.pop_front();
      Entry* e = entry(id);
      // Stale: removed, or rescheduled (to another second, or already taken).
      if (!e || e->place != Place::waiting || bucket_of(e->job.due) != bucket->first) {
        continue;
      }
      e->place = Place::routing;
      --waiting_;
      due->push_back(id);
      ++taken;
    }
    if (jobs.empty()) buckets_.erase(bucket);
  }
}

std::optional<runtime::WallTime> Scheduler::next_due() const {
  if (waiting_ == 0 || buckets_.empty()) return std::nullopt;
  return runtime::from_unix_ms(buckets_.begin()->first * kBucketMs);
}

void Scheduler::make_ready(JobId id, const std::string& site) {
  Entry* e = entry(id);
  if (!e || e->place != Place::routing) {
    throw std::logic_error("Scheduler::make_ready: job is not being routed");
  }
  e->job.site = site;
  e->place = Place::ready;
  e->ready_sequence = next_sequence_++;
  SiteQueue& queue = sites_[site];
  queue.fifo.emplace_back(e->ready_sequence, id);
  ++queue.live;
  ++ready_total_;
}

std::optional<JobId> Scheduler::pick_next(const std::string& site) {
  auto it = sites_.find(site);
  if (it == sites_.end()) return std::nullopt;
  SiteQueue& queue = it->second;
  std::optional<JobId> picked;
  while (!queue.fifo.empty() && !picked) {
    const auto [sequence, id] = queue.fifo.front();
    queue.fifo.pop_front();
    Entry* e = entry(id);
    if (!e || e->place != Place::ready || e->ready_sequence != sequence) continue;  // stale
    e->place = Place::in_flight;
    --queue.live;
    --ready_total_;
    ++in_flight_;
    picked = id;
  }
  if (queue.live == 0) sites_.erase(it);
  return picked;
}

void Scheduler::take_ready(const std::string& site, std::vector<JobId>* out) {
  auto it = sites_.find(site);
  if (it == sites_.end()) return;
  for (const auto& [sequence, id] : it->second.fifo) {
    Entry* e = entry(id);
    if (!e || e->place != Place::ready || e->ready_sequence != sequence) continue;
    e->place = Place::routing;
    --ready_total_;
    out->push_back(id);
  }
  sites_.erase(it);
}

void Scheduler::unlink(Entry& e) {
  switch (e.place) {
    case Place::waiting:
      --waiting_;  // its bucket entry goes stale
      break;
    case Place::routing:
      break;
    case Place::ready: {
      auto it = sites_.find(e.job.site);
      if (it != sites_.end() && --it->second.live == 0) sites_.erase(it);
      --ready_total_;
      break;
    }
    case Place::in_flight:
      --in_flight_;
      break;
  }
  e.place = Place::routing;
}

void Scheduler::set_aside(JobId id) {
  Entry* e = entry(id);
  if (!e) return;
  unlink(*e);  // leaves it in routing
}

void Scheduler::reschedule(JobId id, runtime::WallTime due) {
  Entry* e = entry(id);
  if (!e) return;
  unlink(*e);
  e->job.due = due;
  e->place = Place::waiting;
  push_waiting(id, due);
}

void Scheduler::remove(JobId id) {
  Entry* e = entry(id);
  if (!e) return;
  unlink(*e);
  e->alive = false;
  e->job = Job{};
  free_slots_.push_back(slot_of(id));
  --jobs_;
}

Job* Scheduler::find(JobId id) {
  Entry* e = entry(id);
  return e ? &e->job : nullptr;
}

const Job* Scheduler::find(JobId id) const {
  const Entry* e = entry(id);
  return e ? &e->job : nullptr;
}

std::optional<Scheduler::Place> Scheduler::place(JobId id) const {
  const Entry* e = entry(id);
  if (!e) return std::nullopt;
  return e->place;
}

size_t Scheduler::ready(const std::string& site) const {
  auto it = sites_.find(site);
  return it == sites_.end() ? 0 : it->second.live;
}

std::vector<std::string> Scheduler::ready_sites() const {
  std::vector<std::string> sites;
  sites.reserve(sites_.size());
  for (const auto& [site, queue] : sites_) {
    if (queue.live > 0) sites.push_back(site);
  }
  return sites;
}

runtime::WallTime next_attempt_time(runtime::WallTime now, uint32_t attempts,
                                    const std::vector<runtime::Millis>& intervals, double jitter) {
  if (intervals.empty()) return now;
  const size_t step = std::min<size_t>(attempts == 0 ? 0 : attempts - 1, intervals.size() - 1);
  const double delay = static_cast<double>(intervals[step].count()) * jitter;
  return now + runtime::Millis(std::max<int64_t>(1, static_cast<int64_t>(std::llround(delay))));
}

}  // namespace ringmail::queue
