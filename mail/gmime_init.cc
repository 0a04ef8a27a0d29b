#include "mail/gmime_init.h"

#include <gmime/gmime.h>

#include <mutex>

namespace ringmail::mail {

void ensure_gmime_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

}  // namespace ringmail::mail
