// Kill -9 at random moments while a child process stores batches; every id
// the child reported after store_batch() returned must be in the spool and
// decode, and the spool must reopen without corrupt records.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <set>

#include "queue/spool_lmdb.h"
#include "tests/queue/spool_test_support.h"

namespace ringmail::queue {
namespace {

using testing::make_test_message;
using testing::TempDir;

constexpr uint64_t kMapSize = 256ull << 20;

// Child: store batches forever, reporting ids of each committed batch.
[[noreturn]] void store_until_killed(const std::filesystem::path& dir, int report_fd,
                                     unsigned seed) {
  std::string error;
  auto spool = open_lmdb_spool(dir, kMapSize, &error);
  if (!spool) _exit(3);
  std::mt19937 rng(seed);
  for (;;) {
    std::vector<SpoolMessage> messages;
    const int batch_size = std::uniform_int_distribution<int>(1, 32)(rng);
    for (int i = 0; i < batch_size; ++i) {
      messages.push_back(make_test_message(std::uniform_int_distribution<size_t>(1, 3)(rng),
                                           std::uniform_int_distribution<size_t>(200, 9000)(rng)));
    }
    std::vector<SpoolMessage*> batch;
    for (auto& m : messages) batch.push_back(&m);
    if (!spool->store_batch(batch).ok()) _exit(4);
    std::string report;
    for (const auto& m : messages) report += m.id.value + "\n";
    if (::write(report_fd, report.data(), report.size()) != static_cast<ssize_t>(report.size())) {
      _exit(5);
    }
  }
}

TEST(SpoolCrash, AcknowledgedMessagesSurviveSigkill) {
  TempDir dir;
  const unsigned seed =
      static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::set<std::string> acknowledged;

  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      store_until_killed(dir.path(), fds[1], seed + round);
    }
    ::close(fds[1]);

    // Round 0 kills at once (maybe while the spool is being created); the
    // others after a random number of acknowledged messages.
    const size_t kill_after = round == 0 ? 0 : std::uniform_int_distribution<size_t>(1, 400)(rng);
    std::string buffer;
    size_t seen_this_round = 0;
    auto take_lines = [&] {
      size_t pos;
      while ((pos = buffer.find('\n')) != std::string::npos) {
        acknowledged.insert(buffer.substr(0, pos));
        buffer.erase(0, pos + 1);
        ++seen_this_round;
      }
    };
    char chunk[4096];
    while (seen_this_round < kill_after) {
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n <= 0) break;
      buffer.append(chunk, static_cast<size_t>(n));
      take_lines();
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);
    // Whatever the child wrote before it died was acknowledged too.
    for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;) {
      buffer.append(chunk, static_cast<size_t>(n));
    }
    take_lines();
    ::close(fds[0]);
    EXPECT_TRUE(buffer.empty()) << "a torn id line: the child writes whole batches";

    std::string error;
    auto spool = open_lmdb_spool(dir.path(), kMapSize, &error);
    ASSERT_TRUE(spool) << "round " << round << ": " << error;
    const RecoverySummary summary = spool->recover();
    EXPECT_EQ(summary.corrupt_records, 0u) << "round " << round;
    EXPECT_GE(summary.messages, acknowledged.size());
    for (const auto& id : acknowledged) {
      const auto loaded = spool->load_message(MessageId{id}, true);
      ASSERT_TRUE(loaded) << "round " << round << ": acknowledged " << id << " is gone";
      EXPECT_NE(loaded->content.find(id), std::string::npos);
      EXPECT_EQ(loaded->content.size(), loaded->meta.size);
    }
  }
  EXPECT_GT(acknowledged.size(), 5u);
  RecordProperty("acknowledged", static_cast<int>(acknowledged.size()));
}

}  // namespace
}  // namespace ringmail::queue
