// ringmaild — the Ringmail MTA daemon (mta/daemon.h), with the admin HTTP
// server (admin-api/admin_server.h) as its control plane. This file sits in
// the top layer because it wires that layer in.
#include <memory>

#include "admin-api/admin_server.h"
#include "mta/daemon.h"

int main(int argc, char** argv) {
  return ringmail::mta::run_ringmaild(argc, argv, [](ringmail::mta::DaemonControl& daemon) {
    return std::make_unique<ringmail::admin::AdminServer>(daemon);
  });
}
