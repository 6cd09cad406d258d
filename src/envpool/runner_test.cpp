#include "envpool/runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>

namespace meridian::envpool {
namespace {

using namespace std::chrono_literals;

bool Exists(pid_t pid) { return std::filesystem::exists("/proc/" + std::to_string(pid)); }

// A process with exactly `pid` in a group of its own (as a shell's job would be), or -1 when another process
// took that id first. Needs CAP_SYS_ADMIN (ns_last_pid).
pid_t StartGroupLeaderAt(pid_t pid) {
  {
    std::ofstream last("/proc/sys/kernel/ns_last_pid");
    last << pid - 1;
    if (!last.flush()) return -1;
  }
  const pid_t child = fork();
  if (child == 0) {
    setpgid(0, 0);
    pause();
    _exit(0);
  }
  if (child == pid) return child;
  if (child > 0) kill(child, SIGKILL), waitpid(child, nullptr, 0);
  return -1;
}

// A hook's group is signalled once more after it ends (for what it left behind). If its leader were reaped
// first and nothing else were left in its group, its id could already belong to another process's group:
// that group would get the SIGKILL. The hook below exits at once and leaves a writer in a session of its own
// (so the group is empty) that keeps the runner reading; meanwhile the test gives the leader's id, as soon as
// it is free, to a process leading its own group. It must survive the hook.
TEST(Runner, SignalsTheHooksGroupOnlyWhileTheLeaderIsUnreaped) {
  if (geteuid() != 0) GTEST_SKIP() << "choosing the next process id needs root (ns_last_pid)";
  const std::string pid_file = testing::TempDir() + "/runner_leader_" + std::to_string(getpid());
  int attempts = 0, raced = 0;
  bool tried = false;
  for (; attempts < 5 && !tried; ++attempts) {
    std::filesystem::remove(pid_file);
    Command hook{{"/bin/sh", "-c", "echo $$ > " + pid_file + "; setsid head -c 300000000 /dev/zero & exit 0"},
                 60'000'000'000};
    auto running = std::async(std::launch::async, [&] { return RunCommand(hook, "", {}); });
    // The file is read once more after the runner is done: on a loaded machine the runner may stop reading
    // (a moment with nothing to read after its leader ended) before this loop first saw the file.
    pid_t leader = 0;
    for (bool done = false; leader == 0 && !done; std::this_thread::sleep_for(1ms)) {
      done = running.wait_for(0s) == std::future_status::ready;
      std::ifstream in(pid_file);
      if (!(in >> leader)) leader = 0;
    }
    ASSERT_NE(leader, 0) << "the hook did not write its id";
    while (Exists(leader) && running.wait_for(0s) != std::future_status::ready)
      std::this_thread::sleep_for(1ms);
    const bool runner_still_reading = running.wait_for(0s) != std::future_status::ready;
    const pid_t stranger = Exists(leader) ? -1 : StartGroupLeaderAt(leader);
    CommandResult r = running.get();
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    if (stranger <= 0) continue;  // another process took the id: try again
    tried = true;
    if (runner_still_reading) ++raced;
    std::this_thread::sleep_for(50ms);
    int status = 0;
    const pid_t ended = waitpid(stranger, &status, WNOHANG);
    kill(stranger, SIGKILL);
    waitpid(stranger, nullptr, 0);
    ASSERT_EQ(ended, 0) << "the process that took the hook leader's id was killed by signal "
                        << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  std::filesystem::remove(pid_file);
  EXPECT_TRUE(tried) << "no attempt got the leader's id for the test's process";
  // With the fix, the leader's id is free only once the runner is done: the stranger never races it.
  RecordProperty("attempts", attempts);
  RecordProperty("raced", raced);
}

}  // namespace
}  // namespace meridian::envpool
