// mail/gmime_init.h — the one place GMime 3's global state is set up.
//
// Owns: the process-wide g_mime_init() call. GMime keeps global tables
// (charsets, iconv cache, the MIME type registry) that g_mime_init() fills;
// its own guard is a plain counter, not thread-safe, so every user of GMime
// in Ringmail calls ensure_gmime_initialized() instead, which runs it once
// under std::call_once. g_mime_shutdown() is never called: the tables live
// until exit. Any thread may call it, at any time, as often as it likes.
#pragma once

namespace ringmail::mail {

void ensure_gmime_initialized();

}  // namespace ringmail::mail
