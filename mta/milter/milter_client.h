// mta/milter/milter_client.h — runs the configured milters over one received
// message and applies what they decide.
//
// Owns: MilterClient, a small pool of worker threads that, for each job,
// talks to every configured milter in config order over its own
// connection (TCP or unix socket, non-blocking, poll with the milter's
// timeout), feeds the bytes through MilterSession (mta/milter_protocol.h),
// applies each milter's modifications before the next one sees the
// message, and maps an unreachable, stalled, crashed or garbage-speaking
// milter to its `on_failure` policy. Also apply_milter_modifications(),
// the pure edit of a SpoolMessage by a verdict.
//
// Threads: run() may be called from any thread (the io_uring shards); the
// done callback runs on a MilterClient worker thread and must hand the
// outcome back to its shard itself. A MilterClient is immutable apart from
// its queue; on reload, build a new one and let the old one drain.
//
// Timeouts: every connect, write and read waits at most the milter's
// `timeout` without progress (SMFIR_PROGRESS counts as progress), so a job
// always ends. Destroying the client interrupts running jobs and completes
// queued ones with tempfail.
//
// SECURITY: faces milters over sockets; see milter_protocol.h. Modifications
// are applied so that the message stays well-formed: header names are
// validated, line breaks in added headers are folded, bare LF becomes CRLF.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conf/config.h"
#include "mta/milter/milter_protocol.h"
#include "queue/spool_message.h"

namespace ringmail::mta {

// Facts about the SMTP session that the message itself does not carry.
struct MilterContext {
  std::string hostname;     // our host name (macro j)
  std::string daemon_name;  // listener name ({daemon_name})
  std::string local_ip;     // {if_addr}
  std::string client_ip;
  uint16_t client_port = 0;
  std::string client_hostname;  // verified PTR name, "" when none
  std::string helo;
  std::string auth_user;  // {auth_authen}, "" when not authenticated
};

struct MilterJob {
  queue::SpoolMessage message;  // as received: envelope, id (macro i), content
  MilterContext context;
};

// What one milter did, for logs.
struct MilterReport {
  std::string milter;  // conf::Milter::name
  MilterVerdict verdict;
  std::string failure;  // "" when the conversation completed
};

struct MilterOutcome {
  // The decision for the whole message. proceed/accept/quarantine: spool
  // `message` (quarantine: held, reason in verdict.quarantine_reason);
  // reject/tempfail/replycode: answer DATA with verdict.reply; discard:
  // answer 250 and drop the message (also when milters deleted every
  // recipient). verdict.modifications and rejected_recipients list every
  // change that was applied to `message`.
  MilterVerdict verdict;
  queue::SpoolMessage message;  // with all modifications applied
  std::vector<MilterReport> milters;
};

// The MilterMessage that describes `message`; its views point into
// message.content, so `message` must outlive the result.
MilterMessage build_milter_message(const queue::SpoolMessage& message,
                                   const MilterContext& context);

// Applies the modifications of one milter's verdict and drops its
// rejected recipients. Header indexes follow sendmail: insert_header
// counts fields from the top (0 = first), change_header counts the
// occurrences of that name (1 = first; an empty value deletes it; a
// missing occurrence with a value appends a new field). Updates
// meta.size.
void apply_milter_modifications(queue::SpoolMessage& message, const MilterVerdict& verdict);

class MilterClient {
 public:
  explicit MilterClient(std::vector<conf::Milter> milters, size_t worker_threads = 2);
  ~MilterClient();
  MilterClient(const MilterClient&) = delete;
  MilterClient& operator=(const MilterClient&) = delete;

  // No milters configured: callers may skip run() entirely.
  bool empty() const { return milters_.empty(); }

  // Queues the job; `done` is called exactly once, on a worker thread (or
  // at once on the calling thread when no milters are configured).
  void run(std::shared_ptr<MilterJob> job, std::function<void(MilterOutcome)> done);

  // Runs the job on the calling thread (tests, benchmarks, tools).
  MilterOutcome run_now(const MilterJob& job);

 private:
  struct Task {
    std::shared_ptr<MilterJob> job;
    std::function<void(MilterOutcome)> done;
  };
  void worker_loop();

  const std::vector<conf::Milter> milters_;
  int stop_fd_ = -1;  // eventfd, readable once stopping
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ringmail::mta
