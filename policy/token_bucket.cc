#include "policy/token_bucket.h"

#include <algorithm>

namespace ringmail::policy {

TokenBucket::TokenBucket(uint64_t count, Nanos per, uint64_t burst)
    : burst_(std::max<uint64_t>(burst, 1)) {
  if (count == 0 || per.count() <= 0) return;
  base_interval_ = std::max(Nanos(1), per / static_cast<int64_t>(count));
  interval_ = base_interval_;
}

bool TokenBucket::try_take(runtime::SteadyTime now) {
  if (!limited()) return true;
  if (next_token(now) > now) return false;
  take(now);
  return true;
}

void TokenBucket::take(runtime::SteadyTime now, uint64_t n) {
  if (!limited()) return;
  tat_ = std::max(tat_, now) + interval_ * static_cast<int64_t>(n);
}

runtime::SteadyTime TokenBucket::next_token(runtime::SteadyTime now) const {
  if (!limited()) return now;
  const runtime::SteadyTime earliest = tat_ - interval_ * static_cast<int64_t>(burst_ - 1);
  return std::max(now, earliest);
}

uint64_t TokenBucket::available(runtime::SteadyTime now) const {
  if (!limited()) return burst_;
  if (tat_ <= now) return burst_;
  // Tokens already spent ahead of now, rounded up.
  const int64_t ahead = (tat_ - now + interval_ - Nanos(1)) / interval_;
  return ahead >= static_cast<int64_t>(burst_) ? 0 : burst_ - static_cast<uint64_t>(ahead);
}

void TokenBucket::set_factor(double factor, runtime::SteadyTime now) {
  if (!(factor > 0.0)) factor = 1e-6;
  factor = std::min(factor, 1.0);
  factor_ = factor;
  if (base_interval_.count() == 0) return;
  const Nanos before = interval_;
  interval_ = std::max(
      Nanos(1), Nanos(static_cast<int64_t>(static_cast<double>(base_interval_.count()) / factor)));
  // Keep the tokens spent ahead of now (the debt) in tokens, not in time,
  // so that a new interval neither frees nor takes away tokens.
  if (tat_ > now) {
    const double spent =
        static_cast<double>((tat_ - now).count()) / static_cast<double>(before.count());
    tat_ = now + Nanos(static_cast<int64_t>(spent * static_cast<double>(interval_.count())));
  }
}

}  // namespace ringmail::policy
