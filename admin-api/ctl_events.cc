#include "admin-api/ctl_events.h"

namespace ringmail::admin::ctl {

std::vector<std::string> SseParser::feed(std::string_view chunk) {
  std::vector<std::string> out;
  size_t i = 0;
  if (after_cr_ && !chunk.empty() && chunk[0] == '\n') i = 1;  // the LF of a split CRLF
  after_cr_ = false;
  while (i < chunk.size()) {
    size_t end = chunk.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      std::string_view rest = chunk.substr(i);
      if (!overlong_ && partial_.size() + rest.size() > kMaxLine) {
        overlong_ = true;
        partial_.clear();
      }
      if (!overlong_) partial_.append(rest);
      break;
    }
    if (!overlong_) {
      partial_.append(chunk.substr(i, end - i));
      if (partial_.size() > kMaxLine) overlong_ = true;
    }
    if (overlong_) {
      // The event the line belonged to is incomplete; forget it.
      data_.clear();
      has_data_ = false;
      overlong_ = false;
    } else {
      line(partial_, &out);
    }
    partial_.clear();
    if (chunk[end] == '\r') {
      if (end + 1 == chunk.size()) {
        after_cr_ = true;
      } else if (chunk[end + 1] == '\n') {
        ++end;
      }
    }
    i = end + 1;
  }
  return out;
}

void SseParser::line(std::string_view text, std::vector<std::string>* out) {
  if (text.empty()) {
    if (has_data_) out->push_back(std::move(data_));
    data_.clear();
    has_data_ = false;
    return;
  }
  if (text[0] == ':') return;  // a comment: keep-alive
  size_t colon = text.find(':');
  std::string_view field = text.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = text.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field != "data") return;  // event, id, retry: not used by the daemon
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

}  // namespace ringmail::admin::ctl
