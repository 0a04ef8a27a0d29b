// mta/daemon.h — ringmaild's process lifecycle: command line, config load
// and reload, spool recovery, start-up order, signals, sd_notify, and the
// orderly shutdown that closes the spool cleanly.
//
// Owns: the process. run_ringmaild() is called once from main() on the main
// thread, which then only waits for signals; all work happens on shard,
// spool-writer and auth threads.
#pragma once

namespace ringmail::mta {

// Exit codes (CONTRACT.md): 0 clean stop, 1 bad config or start-up failure,
// 2 bad command line.
int run_ringmaild(int argc, char** argv);

}  // namespace ringmail::mta
