#include "mail/mail_time.h"

#include <cstdio>
#include <ctime>

namespace ringmail::mail {
namespace {

// Splits into whole seconds (rounded down) and the milliseconds past them.
std::tm utc(int64_t unix_ms, int* millis) {
  int64_t seconds = unix_ms / 1000;
  int64_t rest = unix_ms % 1000;
  if (rest < 0) {
    rest += 1000;
    seconds -= 1;
  }
  *millis = static_cast<int>(rest);
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

std::string format_rfc5322_date(int64_t unix_ms) {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  int millis = 0;
  const std::tm tm = utc(unix_ms, &millis);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string format_rfc3339_ms(int64_t unix_ms) {
  int millis = 0;
  const std::tm tm = utc(unix_ms, &millis);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace ringmail::mail
