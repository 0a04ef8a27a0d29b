// ringmaild — the Ringmail MTA daemon. See mta/daemon.h.
#include "mta/daemon.h"

int main(int argc, char** argv) { return ringmail::mta::run_ringmaild(argc, argv); }
