#pragma once
// PRIVATE to envpool (scripts/lint keeps other modules out).
// Hook commands for the environment pools (cleanup, credentials, revoke, grow): each runs on its own thread
// as a child process in its own process group, with its input on stdin, stdout and stderr captured (bounded),
// a deadline (SIGTERM to the group, SIGKILL 5 s later), and PR_SET_PDEATHSIG so that no hook outlives the
// control plane: a restarted server retries or marks dirty what was interrupted, and must not race a
// survivor. Results come back on the control plane's loop thread.

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "envpool/hooks.h"
#include "envpool/registry.h"
#include "net/event_loop.h"

namespace meridian::envpool {

// Blocking. `env` is added to the server's environment, without the variables named in `hidden` (the ones
// holding the server's own tokens: a hook's log is shown to env:allocate holders).
CommandResult RunCommand(const Command& command, const std::string& input,
                         const std::map<std::string, std::string>& env, std::atomic<bool>* cancel = nullptr,
                         const std::set<std::string>& hidden = {});

class Runner final : public HookRunner {
 public:
  explicit Runner(net::EventLoop& loop, std::set<std::string> hidden = {})
      : loop_(loop), hidden_(std::move(hidden)) {}
  ~Runner() override;  // cancels what runs (SIGTERM to each group) and joins the threads
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs `command` on a new thread; `done` runs on the loop thread (not after the Runner is destroyed).
  void Start(Command command, std::string input, std::map<std::string, std::string> env,
             std::function<void(CommandResult)> done) override;
  size_t running() const { return running_; }

 private:
  struct Job {
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  void Reap();

  net::EventLoop& loop_;
  std::set<std::string> hidden_;  // variables of the server's environment hooks do not get
  std::mutex mu_;
  std::list<Job> jobs_;
  std::atomic<bool> cancel_{false};
  size_t running_ = 0;  // loop thread only
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace meridian::envpool
