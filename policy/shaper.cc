#include "policy/shaper.h"

namespace ringmail::policy {

ShapingDecision Shaper::decide(std::string_view, runtime::WallTime) const { return {}; }

void Shaper::attempted(std::string_view, runtime::WallTime) {}

}  // namespace ringmail::policy
