// policy/backoff_evaluator.h — what a remote reply asks of a (source, site):
// nothing, a suspension, a rate cut, or an immediate bounce.
//
// Owns: the decision per reply. Today no rule is applied (policy.backoff is
// parsed and validated by conf/, its engine is the traffic-policy work), so
// every reply yields BackoffAction::none and delivery behaves as before.
// The planner already calls it on every reply a remote server sent (never
// on replies Ringmail made itself), so rules land here alone. Pure.
#pragma once

#include <string_view>

#include "runtime/clock.h"

namespace ringmail::policy {

struct BackoffAction {
  enum class Kind { none, suspend, rate_factor, bounce };
  Kind kind = Kind::none;
  runtime::Millis duration{0};  // suspend, or rate_factor's recovery
  double factor = 1.0;          // rate_factor
};

class BackoffEvaluator {
 public:
  BackoffAction evaluate(std::string_view ready_queue, int code, std::string_view enhanced,
                         std::string_view text, runtime::WallTime now);
};

}  // namespace ringmail::policy
