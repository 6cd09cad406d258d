#pragma once
// Child processes, started one way everywhere: the step supervisor's `meridian waiter`s, the environment
// pools' hooks and `meridian env exec`'s command. One environment policy (what a child inherits, what it
// never sees, what it is given) and one spawn (its argv searched in PATH, its descriptors, its directory, its
// own process group, and optionally death with its parent).

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace meridian::process {

// Where a child's environment starts from.
enum class Inherit {
  // Only the variables that describe the machine and the user, never the credentials meridian was started
  // with (MERIDIAN_TOKEN, cloud keys, anything else): PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*,
  // TZ, TMPDIR, TERM, SSL_CERT_FILE, SSL_CERT_DIR, and a sanitizer build's ASAN/UBSAN/LSAN/TSAN_OPTIONS. For
  // code a plan brings (steps); it gets more from its plan's `env` (docs/security.md).
  kMachine,
  // All of meridian's own environment: for commands of the operator's (hooks, `env exec`).
  kAll,
};

// The environment of a child as "NAME=value" lines: meridian's own as `from` says, without the names in
// `hidden`, then `set` (added, or replacing an inherited value).
std::vector<std::string> ChildEnvironment(Inherit from, const std::set<std::string>& hidden,
                                          const std::map<std::string, std::string>& set);

// The variables Inherit::kMachine keeps, from meridian's own environment.
std::map<std::string, std::string> MachineEnvironment();

// The executable `name` names: itself when it holds a '/', else the first match in meridian's PATH (the
// default path when PATH is unset); empty when none.
std::string FindExecutable(const std::string& name);

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is looked up with FindExecutable
  std::vector<std::string> env;   // ChildEnvironment(...)
  // The child's descriptors: {child fd, parent fd}; a parent fd of -1 opens /dev/null (read and write).
  // Descriptors not named here are not inherited unless the parent left them without close-on-exec.
  std::vector<std::pair<int, int>> fds;
  std::string cwd;         // empty: the parent's
  bool own_group = false;  // a process group of its own: a signal to -pid reaches its children too
  int death_signal = 0;    // sent when the thread that spawned it ends (PR_SET_PDEATHSIG); 0: none
};

// Starts the child with a clear signal mask and every signal at its default disposition; an executable file
// that is neither a binary nor a #! script runs under /bin/sh, as execvp and shells do. Uses posix_spawn, or
// vfork + exec when a death signal is asked for (posix_spawn cannot set one; vfork costs the same whatever
// the parent's size). Errors: kNotFound ("NAME: command not found") when argv[0] is not found, kIo when it
// cannot be started (the reason named) — never a child that exits 127 instead.
Result<pid_t> Spawn(const SpawnOptions& options);

}  // namespace meridian::process
