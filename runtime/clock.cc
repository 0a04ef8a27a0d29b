#include "runtime/clock.h"

namespace ringmail::runtime {

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

}  // namespace ringmail::runtime
