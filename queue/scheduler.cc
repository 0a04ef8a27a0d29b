#include "queue/scheduler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ringmail::queue {

JobId Scheduler::add(Job job) {
  const JobId id = next_id_++;
  const int64_t due = job.due_unix_ms;
  jobs_.emplace(id, Entry{std::move(job), Place::waiting, 0});
  waiting_.emplace(due, id);
  return id;
}

void Scheduler::take_due(int64_t now_ms, std::vector<JobId>* due, size_t limit) {
  size_t taken = 0;
  while (!waiting_.empty() && taken < limit) {
    auto first = waiting_.begin();
    if (first->first > now_ms) break;
    const JobId id = first->second;
    waiting_.erase(first);
    jobs_.at(id).place = Place::routing;
    due->push_back(id);
    ++taken;
  }
}

std::optional<int64_t> Scheduler::next_due() const {
  if (waiting_.empty()) return std::nullopt;
  return waiting_.begin()->first;
}

void Scheduler::make_ready(JobId id, const std::string& site) {
  Entry& entry = jobs_.at(id);
  if (entry.place != Place::routing) {
    throw std::logic_error("Scheduler::make_ready: job is not being routed");
  }
  entry.job.site = site;
  entry.place = Place::ready;
  entry.ready_sequence = next_sequence_++;
  sites_[site].fifo.emplace(entry.ready_sequence, id);
  ++ready_total_;
}

std::optional<JobId> Scheduler::pick_next(const std::string& site) {
  auto it = sites_.find(site);
  if (it == sites_.end() || it->second.fifo.empty()) return std::nullopt;
  auto first = it->second.fifo.begin();
  const JobId id = first->second;
  it->second.fifo.erase(first);
  if (it->second.fifo.empty()) sites_.erase(it);
  --ready_total_;
  Entry& entry = jobs_.at(id);
  entry.place = Place::in_flight;
  ++in_flight_;
  return id;
}

void Scheduler::take_ready(const std::string& site, std::vector<JobId>* out) {
  auto it = sites_.find(site);
  if (it == sites_.end()) return;
  for (const auto& [sequence, id] : it->second.fifo) {
    jobs_.at(id).place = Place::routing;
    out->push_back(id);
    --ready_total_;
  }
  sites_.erase(it);
}

void Scheduler::unlink(JobId id, Entry& entry) {
  switch (entry.place) {
    case Place::waiting:
      waiting_.erase({entry.job.due_unix_ms, id});
      break;
    case Place::routing:
      break;
    case Place::ready: {
      auto it = sites_.find(entry.job.site);
      if (it != sites_.end()) {
        it->second.fifo.erase(entry.ready_sequence);
        if (it->second.fifo.empty()) sites_.erase(it);
      }
      --ready_total_;
      break;
    }
    case Place::in_flight:
      --in_flight_;
      break;
  }
}

void Scheduler::reschedule(JobId id, int64_t due_ms) {
  Entry& entry = jobs_.at(id);
  unlink(id, entry);
  entry.job.due_unix_ms = due_ms;
  entry.place = Place::waiting;
  waiting_.emplace(due_ms, id);
}

void Scheduler::remove(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  unlink(id, it->second);
  jobs_.erase(it);
}

Job* Scheduler::find(JobId id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second.job;
}

const Job* Scheduler::find(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second.job;
}

std::optional<Scheduler::Place> Scheduler::place(JobId id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.place;
}

size_t Scheduler::ready(const std::string& site) const {
  auto it = sites_.find(site);
  return it == sites_.end() ? 0 : it->second.fifo.size();
}

std::vector<std::string> Scheduler::ready_sites() const {
  std::vector<std::string> sites;
  sites.reserve(sites_.size());
  for (const auto& [site, queue] : sites_) sites.push_back(site);
  return sites;
}

int64_t next_attempt_time(int64_t now_ms, uint32_t attempts,
                          const std::vector<int64_t>& intervals_ms, double jitter) {
  if (intervals_ms.empty()) return now_ms;
  const size_t step = std::min<size_t>(attempts == 0 ? 0 : attempts - 1, intervals_ms.size() - 1);
  const double delay = static_cast<double>(intervals_ms[step]) * jitter;
  return now_ms + std::max<int64_t>(1, static_cast<int64_t>(std::llround(delay)));
}

}  // namespace ringmail::queue
