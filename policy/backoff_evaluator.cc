#include "policy/backoff_evaluator.h"

namespace ringmail::policy {

BackoffAction BackoffEvaluator::evaluate(std::string_view, int, std::string_view, std::string_view,
                                         runtime::WallTime) {
  return {};
}

}  // namespace ringmail::policy
