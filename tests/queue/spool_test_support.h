// tests/queue/spool_test_support.h — shared fixtures for the queue tests:
// temporary directories and realistic messages.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "queue/spool_message.h"
#include "tests/support/temp_dir.h"

namespace ringmail::queue::testing {

using TempDir = ringmail::test_support::TempDir;

// A message as an inbound session would build it: CRLF content of about
// `content_size` octets, recipients at example.test / example.org.
inline SpoolMessage make_test_message(size_t recipients = 1, size_t content_size = 1024,
                                      std::string campaign = "") {
  SpoolMessage m;
  m.id = make_message_id();
  m.envelope.sender = "app@sender.test";
  for (size_t i = 0; i < recipients; ++i) {
    Recipient r;
    r.domain = (i % 2 == 0) ? "example.test" : "example.org";
    r.address = "user" + std::to_string(i) + "@" + r.domain;
    if (i == 0) {
      r.dsn_notify = "SUCCESS,FAILURE";
      r.dsn_orcpt = "rfc822;" + r.address;
    }
    r.next_attempt_unix_ms = 1767225600000 + static_cast<int64_t>(i);
    m.envelope.recipients.push_back(r);
  }
  m.envelope.body_type = "8BITMIME";
  m.envelope.dsn_ret = "HDRS";
  m.envelope.dsn_envid = "env-" + m.id.value;
  m.meta.tenant = "app1";
  m.meta.campaign = std::move(campaign);
  m.meta.listener = "submission";
  m.meta.received_unix_ms = 1767225600123;
  m.meta.client_ip = "192.0.2.7";
  m.meta.helo = "client.sender.test";
  m.meta.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  std::string content =
      "From: app@sender.test\r\nTo: user0@example.test\r\nSubject: test " + m.id.value + "\r\n\r\n";
  while (content.size() + 2 < content_size) content += "0123456789abcdef"[content.size() % 16];
  content += "\r\n";
  m.content = std::move(content);
  m.meta.size = m.content.size();
  return m;
}

}  // namespace ringmail::queue::testing
