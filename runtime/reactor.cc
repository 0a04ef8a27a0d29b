#include "runtime/reactor.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace ringmail::runtime {

Reactor::~Reactor() { close(); }

bool Reactor::open(unsigned entries, unsigned cq_entries, std::string* error) {
  // Completions are handled only when the loop asks for them: no task work
  // interrupting it.
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (cq_entries) {
    params.flags |= IORING_SETUP_CQSIZE;
    params.cq_entries = cq_entries;
  }
  int rc = io_uring_queue_init_params(entries, &ring_, &params);
  if (rc < 0) {  // older kernels: a plain ring
    params = {};
    rc = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (rc < 0) {
    *error = std::string("io_uring_queue_init: ") + std::strerror(-rc);
    return false;
  }
  open_ = true;
  return true;
}

void Reactor::close() {
  if (open_) io_uring_queue_exit(&ring_);
  open_ = false;
}

void Reactor::arm_tick(uint64_t user_data, std::chrono::milliseconds interval) {
  tick_ts_.tv_sec = interval.count() / 1000;
  tick_ts_.tv_nsec = (interval.count() % 1000) * 1000000;
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout(s, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(s, user_data);
}

bool Reactor::submit_and_wait() {
  const int rc = io_uring_submit_and_wait(&ring_, 1);
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
    spdlog::critical("io_uring_submit_and_wait: {}", std::strerror(-rc));
    return false;
  }
  return true;
}

}  // namespace ringmail::runtime
