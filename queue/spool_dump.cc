#include "queue/spool_dump.h"

#include <nlohmann/json.hpp>

#include "queue/delivery_log.h"

namespace ringmail::queue {

uint64_t dump_spool_json_lines(const Spool& spool, std::ostream& out) {
  uint64_t lines = 0;
  spool.for_each_recipient([&](const SpoolMessage& m, size_t index) {
    const Recipient& r = m.envelope.recipients[index];
    const nlohmann::ordered_json line{
        {"id", m.id.value},        {"sender", m.envelope.sender},
        {"recipient", r.address},  {"campaign", m.meta.campaign},
        {"tenant", m.meta.tenant}, {"state", to_string(r.state)},
        {"attempts", r.attempts},  {"next_attempt", format_rfc3339_ms(r.next_attempt_unix_ms)},
        {"size", m.meta.size},     {"received", format_rfc3339_ms(m.meta.received_unix_ms)},
    };
    out << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    ++lines;
  });
  out.flush();
  return lines;
}

}  // namespace ringmail::queue
