// Hook commands: a child in its own process group that dies with the server (process::Spawn), pipes,
// deadline.

#include "envpool/runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/clock.h"
#include "core/duration.h"
#include "core/head_tail_log.h"
#include "core/log.h"
#include "process/process.h"

namespace meridian::envpool {
namespace {

constexpr size_t kMaxOut = 1024 * 1024;  // stdout kept for JSON
constexpr int64_t kKillGraceNs = 5'000'000'000;

// Whether `pid` has ended, leaving it unreaped (WNOWAIT). `flags`: WNOHANG or 0 (block).
bool Ended(pid_t pid, int flags) {
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT | flags) < 0) {
    if (errno != EINTR) return true;  // ECHILD: nothing to wait for
  }
  return info.si_pid == pid;
}

}  // namespace

std::string CommandResult::Describe() const {
  if (!error.empty()) return error;
  if (timed_out) return fmt::format("timed out after {}", FormatDuration(duration_ns));
  if (signal != 0) return fmt::format("killed by signal {} ({})", signal, strsignal(signal));
  return fmt::format("exit {}", exit_code);
}

CommandResult RunCommand(const Command& command, const std::string& input,
                         const std::map<std::string, std::string>& env, std::atomic<bool>* cancel,
                         const std::set<std::string>& hidden) {
  CommandResult result;
  const int64_t started = MonoNanos();
  if (command.argv.empty()) {
    result.error = "no command";
    return result;
  }
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.error = fmt::format("pipe: {}", strerror(errno));
    return result;
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]);
    result.error = fmt::format("pipe: {}", strerror(errno));
    return result;
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]), close(in_pipe[1]), close(out_pipe[0]), close(out_pipe[1]);
    result.error = fmt::format("pipe: {}", strerror(errno));
    return result;
  }
  std::set<std::string> never = hidden;
  never.insert("MERIDIAN_TOKEN");
  process::SpawnOptions o;
  o.argv = command.argv;
  o.env = process::ChildEnvironment(process::Inherit::kAll, never, env);
  o.fds = {{0, in_pipe[0]}, {1, out_pipe[1]}, {2, err_pipe[1]}};
  o.own_group = true;
  o.death_signal = SIGKILL;  // no hook outlives the control plane
  auto spawned = process::Spawn(o);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (!spawned.ok()) {
    close(in_pipe[1]), close(out_pipe[0]), close(err_pipe[0]);
    result.error = spawned.error().message;
    return result;
  }
  const pid_t pid = *spawned;
  fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
  int in_fd = input.empty() ? (close(in_pipe[1]), -1) : in_pipe[1];
  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  size_t written = 0;
  HeadTailLog log;  // 16 KiB of head, 48 KiB of tail
  const int64_t deadline = command.timeout_ns > 0 ? started + command.timeout_ns : INT64_MAX;
  int64_t kill_at = 0;
  bool exited = false;
  int status = 0;
  char buf[16384];
  while (true) {
    // Seen, not reaped: while the leader is a zombie its id cannot be given to another process, so the
    // group signal at the end cannot reach a stranger's group.
    if (!exited) exited = Ended(pid, WNOHANG);
    // Once the process ended, read what is left and stop (a background child may hold the pipes open).
    pollfd fds[3];
    int n = 0;
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (n == 0 && exited) break;
    const int64_t now = MonoNanos();
    const bool cancelled = cancel && cancel->load(std::memory_order_relaxed);
    if (!exited && kill_at == 0 && (now >= deadline || cancelled)) {
      result.timed_out = !cancelled;
      if (cancelled) result.error = "cancelled: the control plane is stopping";
      kill(-pid, SIGTERM);
      kill_at = now + kKillGraceNs;
    }
    if (!exited && kill_at != 0 && now >= kill_at) kill(-pid, SIGKILL);
    const int ready = poll(fds, static_cast<nfds_t>(n), exited ? 0 : 50);
    if (ready < 0 && errno != EINTR) break;
    bool any = false;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      any = true;
      if (fds[i].fd == in_fd) {
        const ssize_t k = write(in_fd, input.data() + written, input.size() - written);
        if (k > 0) written += static_cast<size_t>(k);
        if (k < 0 && errno != EAGAIN && errno != EINTR) written = input.size();  // EPIPE: it does not read
        if (written >= input.size()) close(in_fd), in_fd = -1;
        continue;
      }
      const ssize_t k = read(fds[i].fd, buf, sizeof buf);
      if (k > 0) {
        log.Add(buf, static_cast<size_t>(k));
        if (fds[i].fd == out_fd && result.out.size() < kMaxOut) {
          result.out.append(buf, std::min(static_cast<size_t>(k), kMaxOut - result.out.size()));
        }
      } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (fds[i].fd == out_fd)
          close(out_fd), out_fd = -1;
        else
          close(err_fd), err_fd = -1;
      }
    }
    if (exited && !any) break;
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  if (!exited) Ended(pid, 0);
  kill(-pid, SIGKILL);  // whatever it left behind in its group, then the leader is reaped
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  if (result.exit_code == 127 && result.error.empty() && log.bytes() == 0) {
    result.error = fmt::format("{}: could not be started", command.argv[0]);
  }
  result.log = log.Text();
  result.log_bytes = log.bytes();
  result.duration_ns = MonoNanos() - started;
  return result;
}

Runner::~Runner() {
  *alive_ = false;
  cancel_.store(true, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& j : jobs_) {
    if (j.thread.joinable()) j.thread.join();
  }
}

void Runner::Reap() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->finished.load(std::memory_order_acquire)) {
      it->thread.join();
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void Runner::Start(Command command, std::string input, std::map<std::string, std::string> env,
                   std::function<void(CommandResult)> done) {
  Reap();
  ++running_;
  std::lock_guard<std::mutex> lock(mu_);
  Job& job = jobs_.emplace_back();
  job.thread = std::thread([this, &job, command = std::move(command), input = std::move(input),
                            env = std::move(env), done = std::move(done), alive = alive_]() mutable {
    CommandResult r = RunCommand(command, input, env, &cancel_, hidden_);
    // Posted before `finished` is set: the destructor joins this thread, so the loop outlives the post.
    loop_.Post([this, alive, done = std::move(done), r = std::move(r)]() mutable {
      if (!*alive) return;
      --running_;
      try {
        done(std::move(r));
      } catch (const std::exception& e) {  // the loop's boundary
        LogError("a hook's result: {}", e.what());
      }
    });
    job.finished.store(true, std::memory_order_release);
  });
}

}  // namespace meridian::envpool
