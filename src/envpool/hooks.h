#pragma once
// PRIVATE to envpool (scripts/lint keeps other modules out).
// The seam between the lease core and the commands it runs (cleanup, credentials, revoke, grow): the core
// asks a HookRunner to run a command and hears back on its own thread. Runner (runner.h) runs real processes;
// unit tests give the core a fake that records each command and lets the test decide how it ends.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "envpool/registry.h"

namespace meridian::envpool {

struct CommandResult {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it
  bool timed_out = false;
  std::string out;  // stdout (bounded)
  std::string log;  // stdout and stderr interleaved (head and tail kept)
  uint64_t log_bytes = 0;
  std::string error;  // it could not start
  int64_t duration_ns = 0;
  bool ok() const { return error.empty() && !timed_out && signal == 0 && exit_code == 0; }
  std::string Describe() const;  // "exit 0", "exit 3", "killed by signal 9", "timed out after 30s", …
};

class HookRunner {
 public:
  virtual ~HookRunner() = default;
  // Runs `command` with `input` on stdin and `env` added to its environment; `done` is called later, on the
  // caller's thread (never from inside Start).
  virtual void Start(Command command, std::string input, std::map<std::string, std::string> env,
                     std::function<void(CommandResult)> done) = 0;
};

}  // namespace meridian::envpool
