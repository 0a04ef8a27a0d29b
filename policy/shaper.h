// policy/shaper.h — whether a (source, site)'s next attempt may go now.
//
// Owns: the shaping decision for one ready queue. Today it enforces only
// what the delivery engine always enforced outside it (connection and
// per-connection message limits stay in the planner's site table), so
// decide() says "go"; message_rate and connection_rate token buckets are
// the traffic-policy work, which fills this in without touching the
// planner. Pure: times passed in, no I/O; one thread (the planner's).
#pragma once

#include <string_view>

#include "runtime/clock.h"

namespace ringmail::policy {

struct ShapingDecision {
  bool go = true;
  runtime::WallTime wait_until{};  // with go == false: try again then
};

class Shaper {
 public:
  ShapingDecision decide(std::string_view ready_queue, runtime::WallTime now) const;
  // One recipient attempt was started on `ready_queue` at `now`.
  void attempted(std::string_view ready_queue, runtime::WallTime now);
};

}  // namespace ringmail::policy
