#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/clock.h"
#include "core/duration.h"
#include "core/head_tail_log.h"
#include "core/log.h"
#include "process/process.h"
#include "steps/steps.h"

namespace meridian::steps {

// One instance: its current process (pid > 0 while one runs), its pipes and its deadlines (monotonic ns).
struct Supervisor::Instance {
  InstanceSpec spec;
  InstanceResult result;
  pid_t pid = -1;          // the waiter, which stays as the command's keeper (its process group's leader)
  pid_t command_pid = -1;  // the command, once the waiter started it
  int log_fd = -1;         // the read end of the process's stdout + stderr
  int notify_fd = -1;      // the waiter writes "exec <epoch ns> <pid>" here as it starts the command
  std::string notify_text;
  HeadTailLog log;          // stdout + stderr: the first log_head bytes and the last log_tail bytes
  int64_t stop_at = 0;      // SIGTERM
  int64_t kill_at = 0;      // SIGKILL (set once SIGTERM was sent)
  int64_t restart_at = 0;   // a restart is due (0: none)
  bool terminated = false;  // we sent SIGTERM
  bool killed = false;      // we sent SIGKILL
  bool done = false;
  int64_t next_rss_sample = 0;  // monotonic ns
  int64_t sampled_rss = 0;      // VmHWM of the command (after the waiter's exec), bytes
};

namespace {

int64_t MonoFromWall(int64_t wall_ns) { return MonoNanos() + (wall_ns - WallNanos()); }

// The peak resident set of a process's current image (VmHWM starts again at exec, unlike rusage's ru_maxrss,
// which would include the waiter that exec'd the command); 0 if unknown.
int64_t PeakRss(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

Supervisor::Supervisor(SupervisorConfig config, std::vector<InstanceSpec> instances)
    : config_(std::move(config)), specs_(std::move(instances)) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  for (const auto& s : specs_) {
    auto in = std::make_unique<Instance>();
    in->spec = s;
    in->result.step = s.step;
    in->result.instance = s.instance;
    in->result.state = "not_started";
    in->log = HeadTailLog(config_.log_head_bytes, config_.log_tail_bytes);
    instances_.push_back(std::move(in));
  }
}

Supervisor::~Supervisor() {
  stop_.store(true);
  if (thread_.joinable()) {
    if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
    thread_.join();
  }
  for (auto& in : instances_) {  // only if the loop did not get to finish them
    if (in->pid > 0) {
      kill(-in->pid, SIGKILL);
      waitpid(in->pid, nullptr, 0);
    }
    CloseFd(in->log_fd);
    CloseFd(in->notify_fd);
  }
  CloseFd(wake_[0]);
  CloseFd(wake_[1]);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

Result<void> Supervisor::Start(int64_t start_at_wall_ns) {
  if (specs_.empty() || started_) return {};
  started_ = true;
  start_at_wall_ns_ = start_at_wall_ns;
  char tmpl[] = "/tmp/meridian-steps-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    return MakeError(ErrorCode::kIo,
                     fmt::format("steps: cannot create a directory: {}", std::strerror(errno)));
  }
  dir_ = tmpl;
  {
    // RUN.txt's format, written whole before any waiter reads it.
    std::ofstream out(dir_ + "/START");
    out << fmt::format("{}.{:09}\n", start_at_wall_ns / kNanosPerSecond, start_at_wall_ns % kNanosPerSecond);
    if (!out) return MakeError(ErrorCode::kIo, "steps: cannot write " + dir_ + "/START");
  }
  if (wake_[0] < 0) return MakeError(ErrorCode::kIo, "steps: cannot create a pipe");
  const int64_t start_mono = MonoFromWall(start_at_wall_ns);
  for (auto& in : instances_) {
    in->result.intended_ns = start_at_wall_ns + in->spec.run_delay_ns;
    in->stop_at = start_mono + in->spec.run_delay_ns + in->spec.run_max_time_ns;
    if (stop_.load()) continue;
    Spawn(*in);
  }
  thread_ = std::thread([this] { Loop(); });
  return {};
}

void Supervisor::StopAll() {
  stop_.store(true);
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
}

void Supervisor::Spawn(Instance& in) {
  const std::string id = fmt::format("{}#{}", in.spec.step, in.spec.instance);
  std::vector<std::string> args = {config_.meridian_binary,
                                   "waiter",
                                   dir_ + "/START",
                                   id,
                                   fmt::format("{}ns", in.spec.run_delay_ns),
                                   "--timeout",
                                   fmt::format("{}ns", in.spec.run_delay_ns + 3600 * kNanosPerSecond),
                                   "-q",
                                   "--"};
  args.insert(args.end(), in.spec.argv.begin(), in.spec.argv.end());

  int log_pipe[2], notify_pipe[2];
  if (pipe2(log_pipe, O_CLOEXEC) != 0) {
    in.result.error = fmt::format("pipe: {}", std::strerror(errno));
    return;
  }
  if (pipe2(notify_pipe, O_CLOEXEC) != 0) {
    close(log_pipe[0]);
    close(log_pipe[1]);
    in.result.error = fmt::format("pipe: {}", std::strerror(errno));
    return;
  }
  // The environment: the machine's basics from the agent's (never its token or other credentials: a step
  // is the plan author's code, and its log is readable with runs:read), the plan's, then meridian's own.
  std::map<std::string, std::string> env = config_.env;
  for (const auto& [k, v] : in.spec.env) env[k] = v;
  env["MERIDIAN_RUN_ID"] = config_.run_id;
  env["MERIDIAN_STEP"] = in.spec.step;
  env["MERIDIAN_INSTANCE"] = std::to_string(in.spec.instance);
  env["MERIDIAN_WAITER_FD"] = "3";
  env["MERIDIAN_WAITER_GRACE"] = fmt::format("{}ns", in.spec.stop_grace_ns);
  process::SpawnOptions o;
  o.argv = std::move(args);
  o.env = process::ChildEnvironment(process::Inherit::kMachine, {}, env);
  o.fds = {{0, -1}, {1, log_pipe[1]}, {2, log_pipe[1]}, {3, notify_pipe[1]}};
  o.cwd = in.spec.cwd;
  o.own_group = true;  // signals reach its children too
  auto pid = process::Spawn(o);
  close(log_pipe[1]);
  close(notify_pipe[1]);
  if (!pid.ok()) {
    close(log_pipe[0]);
    close(notify_pipe[0]);
    in.result.error = pid.error().message;
    return;
  }
  in.pid = *pid;
  in.log_fd = log_pipe[0];
  in.notify_fd = notify_pipe[0];
  in.notify_text.clear();
  fcntl(in.log_fd, F_SETFL, O_NONBLOCK);
  if (in.notify_fd >= 0) fcntl(in.notify_fd, F_SETFL, O_NONBLOCK);
}

void Supervisor::Loop() {
  char drop[256];
  bool stopping = false;
  while (true) {
    const int64_t now = MonoNanos();
    if (stop_.load() && !stopping) {
      stopping = true;
      for (auto& in : instances_) {
        in->restart_at = 0;
        if (in->pid > 0 && !in->terminated) in->stop_at = now;
        if (in->pid <= 0 && !in->done) Finish(*in, in->result.started_ns ? "exited" : "not_started");
      }
    }
    bool all_done = true;
    int64_t next = now + 50 * kNanosPerMilli;
    for (auto& in : instances_) {
      if (in->done) continue;
      all_done = false;
      if (in->pid > 0) {
        if (!in->terminated && now >= in->stop_at) {
          in->terminated = true;
          in->kill_at = now + in->spec.stop_grace_ns;
          kill(-in->pid, SIGTERM);
        }
        if (in->terminated && !in->killed && now >= in->kill_at) {
          in->killed = true;
          kill(-in->pid, SIGKILL);
        }
        next = std::min(next, in->terminated ? in->kill_at : in->stop_at);
      } else if (in->restart_at > 0) {
        if (now >= in->stop_at) {
          Finish(*in, "exited");
        } else if (now >= in->restart_at) {
          in->restart_at = 0;
          ++in->result.restarts;
          Spawn(*in);  // through the waiter again (the instant has passed: it execs at once)
          if (in->pid <= 0) Finish(*in, "exited");
        } else {
          next = std::min(next, in->restart_at);
        }
      } else {
        Finish(*in, in->result.started_ns ? "exited" : "not_started");  // it could not be spawned
      }
    }
    if (all_done) return;

    std::vector<pollfd> fds;
    std::vector<std::pair<Instance*, bool>> owners;  // (instance, is_log)
    fds.push_back({wake_[0], POLLIN, 0});
    owners.emplace_back(nullptr, false);
    for (auto& in : instances_) {
      if (in->log_fd >= 0) {
        fds.push_back({in->log_fd, POLLIN, 0});
        owners.emplace_back(in.get(), true);
      }
      if (in->notify_fd >= 0) {
        fds.push_back({in->notify_fd, POLLIN, 0});
        owners.emplace_back(in.get(), false);
      }
    }
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>((next - now) / kNanosPerMilli, 1, 50));
    poll(fds.data(), fds.size(), timeout_ms);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Instance* in = owners[i].first;
      if (in == nullptr) {
        while (read(wake_[0], drop, sizeof drop) > 0) {
        }
        continue;
      }
      ReadPipe(*in, owners[i].second);
    }
    const int64_t after = MonoNanos();
    for (auto& in : instances_) {
      if (in->done || in->pid <= 0) continue;
      // After the exec: the waiter's notice pipe closes (close-on-exec, and the keeper closes its end).
      if (in->result.started_ns != 0 && in->notify_fd < 0 && after >= in->next_rss_sample) {
        in->sampled_rss = std::max(in->sampled_rss, PeakRss(in->command_pid > 0 ? in->command_pid : in->pid));
        in->next_rss_sample = after + 200 * kNanosPerMilli;
      }
      Reap(*in, after);
    }
  }
}

void Supervisor::ReadPipe(Instance& in, bool log) {
  int& fd = log ? in.log_fd : in.notify_fd;
  char buf[16384];
  while (fd >= 0) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) CloseFd(fd);
      return;
    }
    const size_t size = static_cast<size_t>(n);
    if (!log) {
      in.notify_text.append(buf, size);
      if (in.result.started_ns == 0 && in.notify_text.rfind("exec ", 0) == 0 &&
          in.notify_text.find('\n') != std::string::npos) {
        char* end = nullptr;
        in.result.started_ns = std::strtoll(in.notify_text.c_str() + 5, &end, 10);
        in.command_pid = static_cast<pid_t>(std::strtol(end, nullptr, 10));
      }
      continue;
    }
    in.log.Add(buf, size);
  }
}

void Supervisor::Reap(Instance& in, int64_t now_mono) {
  int status = 0;
  rusage ru{};
  const pid_t r = wait4(in.pid, &status, WNOHANG, &ru);
  if (r != in.pid) return;
  in.pid = -1;
  in.command_pid = -1;
  // What the process wrote last is still in the pipes: read it before they go.
  ReadPipe(in, true);
  ReadPipe(in, false);
  CloseFd(in.log_fd);
  CloseFd(in.notify_fd);
  in.result.cpu_seconds += static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  // Sampled every 200 ms while the command runs; a command that ended before its first sample falls back to
  // rusage, which counts the waiter too.
  in.result.max_rss_bytes =
      std::max<int64_t>(in.result.max_rss_bytes,
                        in.sampled_rss > 0 ? in.sampled_rss : static_cast<int64_t>(ru.ru_maxrss) * 1024);
  in.sampled_rss = 0;
  in.result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  in.result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  in.result.ended_ns = WallNanos();
  if (in.result.started_ns == 0) {
    // The waiter never exec'd the command: it could not (not found, not executable) or it was stopped first.
    in.result.error = in.terminated ? "stopped before its start instant"
                                    : fmt::format("the command did not start (exit {})", in.result.exit_code);
    Finish(in, "not_started");
    return;
  }
  if (in.killed) return Finish(in, "killed");
  if (in.terminated) return Finish(in, "stopped");
  const bool failed = in.result.exit_code != 0;
  if (failed) {
    in.result.error = in.result.signal ? fmt::format("ended by signal {}", in.result.signal)
                                       : fmt::format("exited with status {}", in.result.exit_code);
  }
  if (failed && in.spec.restart_on_failure && !stop_.load() && now_mono < in.stop_at) {
    // Restart with a backoff that doubles per restart: 250 ms up to 8 s.
    const int64_t backoff = (250 * kNanosPerMilli) << std::min<uint32_t>(in.result.restarts, 5);
    in.restart_at = now_mono + backoff;
    return;
  }
  Finish(in, "exited");
}

void Supervisor::Finish(Instance& in, const std::string& state) {
  in.done = true;
  in.result.state = state;
  if (in.result.ended_ns == 0) in.result.ended_ns = WallNanos();
  in.result.log = in.log.Text();
  in.result.log_bytes = in.log.bytes();
}

std::vector<InstanceResult> Supervisor::Wait() {
  if (thread_.joinable()) thread_.join();
  std::vector<InstanceResult> out;
  for (auto& in : instances_) {
    if (!in->done) Finish(*in, "not_started");
    out.push_back(in->result);
  }
  return out;
}

}  // namespace meridian::steps
