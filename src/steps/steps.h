#pragma once
// Command steps on an agent (DESIGN §5, §6): each instance of a step is a supervised child process, launched
// through `meridian waiter` so it starts at the run's start instant + run_delay, sent SIGTERM at run_max_time
// (or when the run stops), SIGKILL after stop_grace; restarted after a failure with `restart: on-failure`.
// Its stdout and stderr go to a bounded log (the head and the tail are kept); how it ended, when it started
// and ended, its CPU time and peak RSS are recorded.
//
// Each instance runs in its own process group, and signals go to the group, so a shell step's children are
// stopped with it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"

namespace meridian::steps {

struct InstanceSpec {
  std::string step;
  uint32_t instance = 0;
  std::vector<std::string> argv;  // the command, or {"/bin/sh", "-c", shell}
  std::map<std::string, std::string> env;
  std::string cwd;  // "" = the agent's
  int64_t run_delay_ns = 0;
  int64_t run_max_time_ns = 0;
  int64_t stop_grace_ns = 10'000'000'000;
  bool restart_on_failure = false;
};

struct InstanceResult {
  std::string step;
  uint32_t instance = 0;
  // exited: ended by itself; stopped: ended after SIGTERM (run_max_time or the run stopping); killed: SIGKILL
  // after stop_grace; not_started: it never ran (the run stopped first, or the command could not start).
  std::string state;
  int exit_code = -1;  // of the last process, when it exited
  int signal = 0;      // the signal that ended the last process, when one did
  uint32_t restarts = 0;
  int64_t intended_ns = 0;  // start instant + run_delay, epoch ns on this machine's clock
  int64_t started_ns = 0;   // when the waiter exec'd the command (0: never)
  int64_t ended_ns = 0;
  double cpu_seconds = 0;  // user + system of every attempt (and the children they waited for)
  int64_t max_rss_bytes = 0;
  std::string log;         // stdout and stderr, head and tail kept
  uint64_t log_bytes = 0;  // everything written, including what was dropped
  std::string error;       // why it did not start, or how it failed
};

struct SupervisorConfig {
  std::string meridian_binary;  // runs `meridian waiter`
  std::string run_id;
  std::map<std::string, std::string> env;  // added to every instance's environment
  size_t log_head_bytes = 16 * 1024;
  size_t log_tail_bytes = 48 * 1024;
};

class Supervisor {
 public:
  Supervisor(SupervisorConfig config, std::vector<InstanceSpec> instances);
  ~Supervisor();  // stops whatever still runs (SIGKILL at once) and reaps it
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  bool empty() const { return specs_.empty(); }

  // Writes the START file (epoch seconds on this machine's clock) and launches every instance through the
  // waiter; a thread supervises them from then on.
  Result<void> Start(int64_t start_at_wall_ns);
  // Thread-safe: SIGTERM to everything running now, SIGKILL after each stop_grace; nothing restarts.
  void StopAll();
  // Blocks until every instance ended (after Start; at once without it) and returns the results.
  std::vector<InstanceResult> Wait();

 private:
  struct Instance;
  void Loop();
  void Spawn(Instance& in);               // through the waiter
  void ReadPipe(Instance& in, bool log);  // what is there of the log (or the waiter's notice) pipe
  void Reap(Instance& in, int64_t now_mono);
  void Finish(Instance& in, const std::string& state);

  SupervisorConfig config_;
  std::vector<InstanceSpec> specs_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::string dir_;  // holds START
  int64_t start_at_wall_ns_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int wake_[2] = {-1, -1};  // StopAll wakes the loop
  bool started_ = false;
};

}  // namespace meridian::steps
