// Spawn: posix_spawn, or vfork + exec when the child needs a death signal (posix_spawn has none). Either way
// exec failures come back as errors, not as an exit status of 127.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "process/process.h"

namespace meridian::process {
namespace {

constexpr const char* kShell = "/bin/sh";

// A parent descriptor that a lower-numbered dup2 could overwrite before it is copied (a pipe that happens to
// be fd 3 while fd 3 of the child is something else) is first copied above every target.
class Sources {
 public:
  explicit Sources(const std::vector<std::pair<int, int>>& fds) : fds_(fds) {
    int highest = 2;
    for (const auto& [target, source] : fds_) highest = std::max(highest, target);
    for (auto& [target, source] : fds_) {
      if (source < 0 || source > highest || source == target) continue;
      const int moved = fcntl(source, F_DUPFD_CLOEXEC, highest + 1);
      if (moved < 0) continue;  // dup2 of the original then: right unless a target clobbers it first
      source = moved;
      moved_.push_back(moved);
    }
  }
  ~Sources() {
    for (int fd : moved_) close(fd);
  }
  Sources(const Sources&) = delete;
  Sources& operator=(const Sources&) = delete;
  const std::vector<std::pair<int, int>>& fds() const { return fds_; }

 private:
  std::vector<std::pair<int, int>> fds_;
  std::vector<int> moved_;
};

// Everything exec needs, built before the child exists: the child of vfork may not allocate.
struct Exec {
  std::string exe;
  std::vector<char*> argv, envp;
  std::vector<char*> shell_argv;  // {"sh", exe, argv[1:]...}: for an executable text file without #!
};

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Error CannotStart(const std::string& exe, int error) {
  return MakeError(ErrorCode::kIo, fmt::format("cannot start {}: {}", exe, std::strerror(error)));
}

Result<pid_t> WithPosixSpawn(const Exec& e, const SpawnOptions& o, const Sources& sources) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (const auto& [target, source] : sources.fds()) {
    if (source < 0) {
      posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_RDWR, 0);
    } else {
      // The same number: glibc clears close-on-exec, as POSIX now requires.
      posix_spawn_file_actions_adddup2(&actions, source, target);
    }
  }
  if (!o.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, o.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.own_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, e.exe.c_str(), &actions, &attr, e.argv.data(), e.envp.data());
  if (rc == ENOEXEC) rc = posix_spawn(&pid, kShell, &actions, &attr, e.shell_argv.data(), e.envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return CannotStart(e.exe, rc);
  return pid;
}

[[noreturn]] void ChildFailed(int report, int error) {
  (void)!write(report, &error, sizeof error);
  _exit(127);
}

// The child of vfork: it shares the parent's memory until exec, so it only makes system calls. An error is
// written to `report` (close-on-exec: the parent reads nothing when exec succeeded).
[[noreturn]] void Child(const Exec& e, const SpawnOptions& o, const Sources& sources, pid_t parent,
                        int report) {
  if (o.own_group) setpgid(0, 0);
  if (o.death_signal != 0) {
    prctl(PR_SET_PDEATHSIG, o.death_signal);
    if (getppid() != parent) _exit(127);  // the parent died before the line above
  }
  for (const auto& [target, source] : sources.fds()) {
    if (source < 0) {
      const int fd = open("/dev/null", O_RDWR);
      if (fd < 0) ChildFailed(report, errno);
      if (fd != target) {
        if (dup2(fd, target) < 0) ChildFailed(report, errno);
        close(fd);
      }
    } else if (source == target) {
      if (fcntl(target, F_SETFD, 0) < 0) ChildFailed(report, errno);
    } else if (dup2(source, target) < 0) {
      ChildFailed(report, errno);
    }
  }
  if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) ChildFailed(report, errno);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &dfl, nullptr);  // SIGKILL, SIGSTOP: refused, fine
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(e.exe.c_str(), e.argv.data(), e.envp.data());
  if (errno == ENOEXEC) execve(kShell, e.shell_argv.data(), e.envp.data());
  ChildFailed(report, errno);
}

Result<pid_t> WithVfork(const Exec& e, const SpawnOptions& o, const Sources& sources) {
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return CannotStart(e.exe, errno);
  const pid_t parent = getpid();
  const pid_t pid = vfork();
  if (pid == 0) Child(e, o, sources, parent, report[1]);
  const int vfork_error = errno;
  close(report[1]);
  if (pid < 0) {
    close(report[0]);
    return CannotStart(e.exe, vfork_error);
  }
  if (o.own_group) setpgid(pid, pid);  // also from here: a signal to the group right after cannot miss it
  int error = 0;
  ssize_t n;
  while ((n = read(report[0], &error, sizeof error)) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (n <= 0) return pid;  // exec'ed
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return CannotStart(e.exe, error);
}

}  // namespace

Result<pid_t> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "no command");
  Exec e;
  e.exe = FindExecutable(options.argv[0]);
  if (e.exe.empty()) {
    return MakeError(ErrorCode::kNotFound, fmt::format("{}: command not found", options.argv[0]));
  }
  e.argv = Pointers(options.argv);
  e.envp = Pointers(options.env);
  e.shell_argv = {const_cast<char*>("sh"), e.exe.data()};
  e.shell_argv.insert(e.shell_argv.end(), e.argv.begin() + 1, e.argv.end());  // with the final nullptr
  const Sources sources(options.fds);
  return options.death_signal != 0 ? WithVfork(e, options, sources) : WithPosixSpawn(e, options, sources);
}

}  // namespace meridian::process
