// admin-api/admin_probe.h — POST /api/v1/probe: "can I reach this
// destination, and how?" Route or MX as delivery would choose it, then a
// connection from the source a job would use: banner, EHLO, STARTTLS
// (version, cipher, the certificate's subject and issuer and whether it
// verifies for the host name), QUIT. No mail is sent.
//
// Owns: one short-lived blocking dialogue per call, on the calling admin
// thread (each connection has its own), with a deadline per step. It shares
// nothing with the delivery thread: the destination comes from a
// DestinationFinder (admin_destination.h, its own resolver), the socket is
// its own.
// Trust: everything the remote server says is untrusted; it is returned as
// JSON strings (invalid UTF-8 replaced) and bounded in length.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "admin-api/admin_destination.h"
#include "mta/daemon.h"

namespace ringmail::admin {

class Prober {
 public:
  virtual ~Prober() = default;
  // The CONTRACT's probe object; failures are named in "error".
  virtual nlohmann::ordered_json probe(const std::string& domain) = 0;
};

// The real thing, against the config in force.
class SmtpProber final : public Prober {
 public:
  // Both must outlive the prober.
  SmtpProber(const mta::DaemonControl& daemon, DestinationFinder& destinations)
      : daemon_(daemon), destinations_(destinations) {}
  nlohmann::ordered_json probe(const std::string& domain) override;

  static constexpr std::chrono::seconds kStepTimeout{10};

 private:
  const mta::DaemonControl& daemon_;
  DestinationFinder& destinations_;
};

}  // namespace ringmail::admin
