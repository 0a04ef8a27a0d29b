// policy/webhook_delivery.cc — webhook signatures (OpenSSL HMAC-SHA256),
// POST outcomes and the retry schedule.
#include "policy/webhook_delivery.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>

namespace ringmail::policy {

std::string webhook_signature(std::string_view secret, std::string_view body) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  // An empty key is valid HMAC input, but the config never allows one.
  const unsigned char* data = reinterpret_cast<const unsigned char*>(body.data());
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), data, body.size(),
           digest.data(), &length) == nullptr) {
    return {};
  }
  std::string out = "sha256=";
  out.reserve(out.size() + 2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0x0f]);
  }
  return out;
}

const char* to_string(WebhookPostResult result) {
  switch (result) {
    case WebhookPostResult::ok:
      return "ok";
    case WebhookPostResult::http_4xx:
      return "http_4xx";
    case WebhookPostResult::http_5xx:
      return "http_5xx";
    case WebhookPostResult::http_other:
      return "http_other";
    case WebhookPostResult::timeout:
      return "timeout";
    case WebhookPostResult::connect_error:
      return "connect_error";
    case WebhookPostResult::error:
      return "error";
  }
  return "error";
}

WebhookPostResult classify_webhook_post(WebhookTransport transport, long http_status) {
  switch (transport) {
    case WebhookTransport::answered:
      if (http_status >= 200 && http_status <= 299) return WebhookPostResult::ok;
      if (http_status >= 400 && http_status <= 499) return WebhookPostResult::http_4xx;
      if (http_status >= 500 && http_status <= 599) return WebhookPostResult::http_5xx;
      return WebhookPostResult::http_other;
    case WebhookTransport::timed_out:
      return WebhookPostResult::timeout;
    case WebhookTransport::connect_failed:
      return WebhookPostResult::connect_error;
    case WebhookTransport::failed:
      return WebhookPostResult::error;
  }
  return WebhookPostResult::error;
}

runtime::Millis webhook_retry_delay(uint32_t failures_in_a_row, double jitter,
                                    const WebhookRetrySchedule& schedule) {
  if (failures_in_a_row == 0) return runtime::Millis(0);
  const int64_t first = std::max<int64_t>(schedule.first.count(), 1);
  const int64_t max = std::max<int64_t>(schedule.max.count(), first);
  int64_t delay = first;
  for (uint32_t i = 1; i < failures_in_a_row && delay < max; ++i) delay *= 2;
  delay = std::min(delay, max);
  jitter = std::clamp(jitter, 0.0, 1.0);
  delay -= static_cast<int64_t>(static_cast<double>(delay) * jitter / 4.0);
  return runtime::Millis(delay);
}

}  // namespace ringmail::policy
