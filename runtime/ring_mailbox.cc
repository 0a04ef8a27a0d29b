#include "runtime/ring_mailbox.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ringmail::runtime {

RingMailbox::~RingMailbox() {
  if (fd_ >= 0) ::close(fd_);
}

bool RingMailbox::open(std::string* error) {
  fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (fd_ < 0) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  return true;
}

void RingMailbox::post(std::function<void()> fn) {
  bool wake;
  {
    std::lock_guard lock(mutex_);
    wake = queue_.empty();
    queue_.push_back(std::move(fn));
  }
  if (wake && fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
  }
}

void RingMailbox::arm_read(io_uring* ring, uint64_t user_data) {
  io_uring_sqe* s = next_sqe(ring);
  io_uring_prep_read(s, fd_, &value_, sizeof value_, 0);
  io_uring_sqe_set_data64(s, user_data);
}

void RingMailbox::drain() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(queue_);
  }
  for (auto& fn : work) fn();
}

io_uring_sqe* next_sqe(io_uring* ring) {
  io_uring_sqe* s = io_uring_get_sqe(ring);
  while (!s) {
    io_uring_submit(ring);
    s = io_uring_get_sqe(ring);
  }
  return s;
}

}  // namespace ringmail::runtime
