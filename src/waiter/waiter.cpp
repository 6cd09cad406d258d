#include "waiter/waiter.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string_view>

#include "core/clock.h"
#include "core/duration.h"
#include "http/fetch.h"
#include "http/url.h"
#include "process/process.h"

namespace meridian::waiter {
namespace {

using nlohmann::json;

// The latest instant accepted (the year 2255): in nanoseconds it and any delay still fit an int64.
constexpr int64_t kMaxEpochSeconds = 9'000'000'000;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Excerpt(std::string_view s) {
  std::string out(s.substr(0, 60));
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s.size() > 60 ? out + "…" : out;
}

// "1795327092.250000000" (epoch seconds, up to nanoseconds) -> ns. Integer arithmetic: no rounding.
Result<int64_t> ParseEpochSeconds(std::string_view t, const std::string& source) {
  const auto bad = [&](const std::string& why) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}: {}: expected the start instant as epoch seconds with a fraction (RUN.txt, "
                    "e.g. 1795327092.25) or JSON with start_at (services.json, the control "
                    "plane's /v1/runs/ID/start); found '{}'",
                    source, why, Excerpt(t)));
  };
  const size_t dot = t.find('.');
  const std::string_view whole = t.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
  const auto digits = [](std::string_view d) {
    return !d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(whole) || (dot != std::string_view::npos && !digits(frac))) return bad("not a number");
  if (whole.size() > 11) return bad("too large (milliseconds or nanoseconds? RUN.txt holds seconds)");
  int64_t seconds = 0;
  for (char c : whole) seconds = seconds * 10 + (c - '0');
  if (seconds > kMaxEpochSeconds) return bad("too large (milliseconds? RUN.txt holds seconds)");
  int64_t nanos = 0;
  int64_t scale = 100'000'000;
  for (char c : frac.substr(0, 9)) {
    nanos += (c - '0') * scale;
    scale /= 10;
  }
  return seconds * kNanosPerSecond + nanos;
}

Result<int64_t> SecondsField(const json& v, const std::string& source, const std::string& field) {
  if (v.is_number()) {
    const double seconds = v.get<double>();
    if (!(seconds >= 0 && seconds <= static_cast<double>(kMaxEpochSeconds))) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: {} must be epoch seconds (0 to 9e9; milliseconds?)", source, field));
    }
    return static_cast<int64_t>(seconds * 1e9);
  }
  if (v.is_string()) return ParseEpochSeconds(v.get<std::string>(), source + ": " + field);
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("{}: {} must be epoch seconds (a number or a string)", source, field));
}

}  // namespace

Result<std::optional<StartInfo>> ParseStart(const std::string& text, const std::string& service_id,
                                            const std::string& source) {
  const std::string_view t = Trim(text);
  if (t.empty()) return std::optional<StartInfo>();
  if (t.front() != '{') {
    auto ns = ParseEpochSeconds(t, source);
    if (!ns.ok()) return ns.error();
    return std::optional<StartInfo>(StartInfo{*ns, std::nullopt, std::nullopt});
  }
  const json j = json::parse(t, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}: not valid JSON (expected an object with start_at)", source));
  }
  StartInfo info;
  if (auto it = j.find("start_at_ns"); it != j.end() && it->is_number_integer()) {
    info.start_at_ns = it->get<int64_t>();
    if (info.start_at_ns > kMaxEpochSeconds * 1'000'000'000) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("{}: start_at_ns is beyond the year 2255 (seconds or milliseconds?)", source));
    }
  } else if (auto at = j.find("start_at"); at != j.end() && !at->is_null()) {
    auto ns = SecondsField(*at, source, "start_at");
    if (!ns.ok()) return ns.error();
    info.start_at_ns = *ns;
  }
  if (info.start_at_ns <= 0) return std::optional<StartInfo>();  // known later
  if (auto it = j.find("server_ns"); it != j.end() && it->is_number_integer()) {
    info.server_now_ns = it->get<int64_t>();
  }
  if (auto steps = j.find("steps"); steps != j.end() && steps->is_array()) {
    // services.json: SERVICE_ID is a step's name, or "name#N" for its N-th instance.
    std::string name = service_id;
    if (const size_t hash = name.rfind('#'); hash != std::string::npos) name.resize(hash);
    std::string known;
    for (const auto& s : *steps) {
      if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
      const std::string step = s["name"].get<std::string>();
      if (step == name) {
        const json& delay = s.contains("run_delay") ? s["run_delay"] : json(0);
        if (!delay.is_number() || !(delay.get<double>() >= 0 && delay.get<double>() <= 1e7)) {
          return MakeError(ErrorCode::kInvalidArgument,
                           fmt::format("{}: steps.{}.run_delay must be seconds from 0 to 1e7", source, step));
        }
        info.delay_ns = static_cast<int64_t>(delay.get<double>() * 1e9);
        return std::optional<StartInfo>(info);
      }
      known += (known.empty() ? "" : ", ") + step;
    }
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: lists no step '{}' (steps: {})", source,
                                                              name, known.empty() ? "none" : known));
  }
  return std::optional<StartInfo>(info);
}

namespace {

class Waiter {
 public:
  explicit Waiter(const Options& o)
      : o_(o), deadline_mono_(MonoNanos() + o.timeout_ns), rng_(std::random_device{}()) {}

  int Run() {
    if (getenv("MERIDIAN_WAITER_FD") != nullptr) {
      // Under meridian's supervisor: the waiter, and the command it becomes, get SIGTERM when the agent goes
      // away (kill -9 included), so no step outlives its agent unnoticed.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() == 1) {
        Complain("the supervising agent is gone; not starting");
        return kExitStartError;
      }
    }
    if (!o_.command.empty()) {
      if (int code = CheckCommand(); code != 0) return code;
    }
    std::optional<StartInfo> info;
    const bool url = o_.start.starts_with("http://") || o_.start.starts_with("https://");
    int code = url ? FromUrl(&info) : FromFile(&info);
    if (code != 0) return code;

    int64_t delay = o_.delay_ns;
    if (info->delay_ns && *info->delay_ns != delay) {
      Say(fmt::format("delay {} from {} (SERVICE_ID's run_delay; the DELAY argument {} is not used)",
                      FormatDuration(*info->delay_ns), o_.start, FormatDuration(delay)));
      delay = *info->delay_ns;
    }
    // The instant on this machine's clock: START's clock corrected by the measured offset (URL) or taken as
    // is.
    const int64_t target = info->start_at_ns + delay - offset_ns_;
    const int64_t now = WallNanos();
    const int64_t left = target - now;
    const std::string skew =
        measured_offset_ ? fmt::format("; the control plane's clock is {} {} this one (rtt {})",
                                       FormatDuration(std::abs(offset_ns_)),
                                       offset_ns_ < 0 ? "behind" : "ahead of", FormatDuration(rtt_ns_))
                         : "";
    if (left < 0) {
      Say(fmt::format("start + {} was {} ago (negative skew: a late START or clocks apart{}); starting now",
                      FormatDuration(delay), FormatDuration(-left), skew));
    } else if (MonoNanos() + left > deadline_mono_) {
      Complain(fmt::format("start + {} is {} from now, beyond --timeout {}; not waiting",
                           FormatDuration(delay), FormatDuration(left), FormatDuration(o_.timeout_ns)));
      return kExitTimeout;
    } else {
      Say(fmt::format("start {}, + {}: starting in {}{}", FormatEpoch(info->start_at_ns),
                      FormatDuration(delay), FormatDuration(left), skew));
      SleepUntil(target);
    }
    if (o_.command.empty()) return 0;
    return Exec(info->start_at_ns);
  }

 private:
  void Say(const std::string& text) const {
    if (!o_.quiet) Complain(text);
  }
  // Errors are printed even with --quiet.
  void Complain(const std::string& text) const {
    fmt::print(stderr, "meridian waiter[{}]: {}\n", o_.service_id, text);
  }

  static std::string FormatEpoch(int64_t ns) {
    return fmt::format("{}.{:03}", ns / kNanosPerSecond, (ns % kNanosPerSecond) / kNanosPerMilli);
  }

  // Capped exponential backoff with jitter: attempt n waits a random time in [b/2, b], b = min(cap, 20ms *
  // 2^n). False when the deadline has passed.
  bool Backoff(int64_t cap_ns) {
    const int64_t base = std::min<int64_t>(cap_ns, (20 * kNanosPerMilli) << std::min(attempt_, 16));
    ++attempt_;
    std::uniform_int_distribution<int64_t> jitter(base / 2, base);
    const int64_t remaining = deadline_mono_ - MonoNanos();
    if (remaining <= 0) return false;
    const int64_t pause = std::min(remaining, jitter(rng_));
    timespec ts{static_cast<time_t>(pause / kNanosPerSecond), static_cast<long>(pause % kNanosPerSecond)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    return MonoNanos() < deadline_mono_;
  }

  void StillWaiting(const std::string& what) {
    const int64_t now = MonoNanos();
    if (now >= next_note_mono_) {
      Say(what);
      next_note_mono_ = now + 30 * kNanosPerSecond;
    }
  }

  int TimedOut(const std::string& last) const {
    Complain(fmt::format("gave up after --timeout {}: {}", FormatDuration(o_.timeout_ns), last));
    return kExitTimeout;
  }

  int FromFile(std::optional<StartInfo>* info) {
    std::string last = fmt::format("{} does not exist", o_.start);
    std::string failing_text;  // a document that did not parse: an error only once it stays that way
    int failures = 0;
    while (true) {
      std::ifstream in(o_.start, std::ios::binary);
      if (in) {
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string text = ss.str();
        auto parsed = ParseStart(text, o_.service_id, o_.start);
        if (parsed.ok() && parsed->has_value()) {
          *info = *parsed;
          return 0;
        }
        if (parsed.ok()) {
          last = fmt::format("{} does not hold the start instant yet", o_.start);
          failures = 0;
        } else {
          // A writer may be half-way through the file: the same bad content three times over is an error.
          failures = text == failing_text ? failures + 1 : 1;
          failing_text = text;
          last = parsed.error().message;
          if (failures >= 3) {
            Complain(last);
            return kExitStartError;
          }
        }
      }
      StillWaiting(fmt::format("waiting for {} (up to {})", o_.start, FormatDuration(o_.timeout_ns)));
      if (!Backoff(200 * kNanosPerMilli)) return TimedOut(last);
    }
  }

  int FromUrl(std::optional<StartInfo>* info) {
    auto url = http::ParseUrl(o_.start);
    if (!url.ok()) {
      Complain(url.error().message);
      return kExitStartError;
    }
    auto client = http::BlockingClient::Create(url->Origin(), o_.token);
    if (!client.ok()) {
      Complain(client.error().message);
      return kExitStartError;
    }
    const std::string path = url->target;
    std::string last = "no answer yet";
    while (true) {
      // Long poll: the control plane answers as soon as the instant is known (or after `wait`, 404).
      const int64_t remaining = deadline_mono_ - MonoNanos();
      if (remaining <= 0) return TimedOut(last);
      const int64_t wait = std::clamp<int64_t>(remaining, kNanosPerMilli, 25 * kNanosPerSecond);
      const std::string polled = fmt::format(
          "{}{}wait={}ms", path, path.find('?') == std::string::npos ? '?' : '&', wait / kNanosPerMilli);
      auto r = client->Request("GET", polled, {}, wait + 5 * kNanosPerSecond);
      bool immediate = true;  // an answer that came back at once is retried with backoff, not hammered
      if (!r.ok()) {
        last = fmt::format("{}: {}", o_.start, r.error().message);
        StillWaiting(last + "; retrying");
      } else if (r->status == 200) {
        auto parsed = ParseStart(r->body, o_.service_id, o_.start);
        if (!parsed.ok()) {
          Complain(parsed.error().message);
          return kExitStartError;
        }
        if (parsed->has_value()) {
          *info = *parsed;
          MeasureOffset(*client, path);
          return 0;
        }
        last = "the control plane does not know the start instant yet";
      } else if (r->status == 404) {
        const json body = json::parse(r->body, nullptr, false);
        if (body.is_object() && body.contains("error")) {  // not the run's "not yet" answer: no such run
          Complain(fmt::format("{}: {}", o_.start, ErrorText(body)));
          return kExitStartError;
        }
        last = "the control plane does not know the start instant yet";
        immediate = r->received_wall_ns - r->sent_wall_ns < wait / 2;
        StillWaiting(fmt::format("waiting for the start instant from {} (up to {})", o_.start,
                                 FormatDuration(o_.timeout_ns)));
      } else if (r->status == 401 || r->status == 403 || r->status == 409 || r->status == 400) {
        const json body = json::parse(r->body, nullptr, false);
        Complain(fmt::format("{}: HTTP {}: {}", o_.start, r->status,
                             r->status == 409 ? fmt::format("the run ended ({}) before it started",
                                                            body.value("state", std::string("?")))
                                              : ErrorText(body)));
        return kExitStartError;
      } else {
        last = fmt::format("{}: HTTP {}", o_.start, r->status);
        StillWaiting(last + "; retrying");
      }
      if (immediate && !Backoff(kNanosPerSecond)) return TimedOut(last);
      if (!immediate) attempt_ = 0;
    }
  }

  static std::string ErrorText(const json& body) {
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      return body["error"].value("message", std::string("error"));
    }
    return "refused";
  }

  // NTP-style: the control plane's clock minus ours, from the fastest of a few round trips.
  void MeasureOffset(http::BlockingClient& client, const std::string& path) {
    int64_t best_rtt = INT64_MAX;
    for (int i = 0; i < 4; ++i) {
      auto r = client.Request("GET", path, {}, 2 * kNanosPerSecond);
      if (!r.ok() || r->status != 200) continue;
      const json body = json::parse(r->body, nullptr, false);
      if (!body.is_object() || !body.contains("server_ns") || !body["server_ns"].is_number_integer())
        continue;
      const int64_t rtt = r->received_wall_ns - r->sent_wall_ns;
      if (rtt < best_rtt) {
        best_rtt = rtt;
        offset_ns_ = body["server_ns"].get<int64_t>() - (r->sent_wall_ns + r->received_wall_ns) / 2;
        rtt_ns_ = rtt;
        measured_offset_ = true;
      }
    }
  }

  static void SleepUntil(int64_t wall_ns) {
    timespec ts{static_cast<time_t>(wall_ns / kNanosPerSecond), static_cast<long>(wall_ns % kNanosPerSecond)};
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }

  // CMD is looked up before waiting: a typo is reported now, not after the delay.
  int CheckCommand() const {
    const std::string& cmd = o_.command.front();
    if (cmd.find('/') != std::string::npos) {
      if (access(cmd.c_str(), F_OK) != 0) return NotRunnable(cmd, ENOENT);
      if (access(cmd.c_str(), X_OK) != 0) return NotRunnable(cmd, EACCES);
      return 0;
    }
    return process::FindExecutable(cmd).empty() ? NotRunnable(cmd, ENOENT) : 0;
  }

  int NotRunnable(const std::string& cmd, int err) const {
    Complain(fmt::format("cannot run '{}': {}", cmd,
                         err == ENOENT ? "not found (PATH is searched)" : std::strerror(err)));
    return err == ENOENT ? kExitNotFound : kExitNotExecutable;
  }

  int Exec(int64_t start_at_ns) const {
    setenv("MERIDIAN_START_AT", FormatEpoch(start_at_ns).c_str(), 1);
    setenv("MERIDIAN_SERVICE_ID", o_.service_id.c_str(), 1);
    std::fflush(nullptr);
    // A supervisor (meridian's agent) learns the actual start: "exec <epoch ns> <pid>" on the fd it named.
    if (const char* fd_text = getenv("MERIDIAN_WAITER_FD")) {
      const int fd = std::atoi(fd_text);
      unsetenv("MERIDIAN_WAITER_FD");
      int64_t grace = 5 * kNanosPerSecond;
      if (const char* g = getenv("MERIDIAN_WAITER_GRACE")) {
        if (auto d = ParseDuration(g); d.ok()) grace = *d;
        unsetenv("MERIDIAN_WAITER_GRACE");
      }
      return Keep(fd, grace);
    }
    std::vector<char*> argv;
    for (const auto& a : o_.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    return NotRunnable(o_.command.front(), errno);
  }

  // Under a supervisor the waiter stays as the command's keeper instead of becoming it: the command's shell
  // may die of the agent's death signal while its children live on, re-parented to init. The keeper sees its
  // agent go (the death signal, and a new parent), stops the whole process group (SIGTERM, SIGKILL after the
  // step's stop_grace) and so takes every process of the step with it. Otherwise it forwards signals that
  // were sent to it alone, and ends as the command ended (its exit status, or the same signal).
  int Keep(int notify_fd, int64_t grace_ns) const {
    const pid_t supervisor = getppid();
    sigset_t handled;
    sigemptyset(&handled);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&handled, sig);
    sigprocmask(SIG_BLOCK, &handled, nullptr);
    if (notify_fd > 2) fcntl(notify_fd, F_SETFD, FD_CLOEXEC);
    // process::Spawn with a death signal starts it with vfork: as cheap whatever our size (a fork copied a
    // sanitizer build's ~100 MB of page tables: 5-10 ms per instance, all of them at the same instant).
    process::SpawnOptions spawn;
    spawn.argv = o_.command;
    spawn.env = process::ChildEnvironment(process::Inherit::kAll, {}, {});
    spawn.death_signal = SIGTERM;  // should the keeper die alone
    auto started = process::Spawn(spawn);
    if (!started.ok()) {
      Complain(started.error().message);
      return started.error().code == ErrorCode::kNotFound ? kExitNotFound : kExitNotExecutable;
    }
    const pid_t child = *started;
    if (notify_fd > 2) {
      const std::string line = fmt::format("exec {} {}\n", WallNanos(), child);
      (void)!write(notify_fd, line.data(), line.size());
      close(notify_fd);
    }
    int64_t kill_at = 0;  // set once the agent is gone: SIGKILL to the group then
    while (true) {
      siginfo_t info{};
      timespec wait{0, 100'000'000};
      const int sig = sigtimedwait(&handled, &info, &wait);
      int status = 0;
      const pid_t done = waitpid(child, &status, WNOHANG);
      if (done == child) {
        kill(0, SIGTERM);  // what the command left behind in its group goes with it (we block SIGTERM)
        if (kill_at != 0) kill(0, SIGKILL);
        if (WIFSIGNALED(status)) {
          const int ended_by = WTERMSIG(status);
          const rlimit no_core{0, 0};
          setrlimit(RLIMIT_CORE, &no_core);  // the command's crash, not ours
          signal(ended_by, SIG_DFL);
          sigset_t only;
          sigemptyset(&only);
          sigaddset(&only, ended_by);
          sigprocmask(SIG_UNBLOCK, &only, nullptr);
          raise(ended_by);
          _exit(128 + ended_by);
        }
        // At once, as CMD ended: nothing of ours to flush, and no exit-time work (a sanitizer build's leak
        // check) between CMD's end and the supervisor seeing it.
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
      }
      if (kill_at != 0 && MonoNanos() >= kill_at) kill(0, SIGKILL);
      if (sig <= 0 || sig == SIGCHLD) continue;
      if (getppid() != supervisor) {
        if (kill_at == 0) {  // the agent is gone: nobody else will stop this step
          kill(0, SIGTERM);
          kill_at = MonoNanos() + grace_ns;
        }
      } else if (info.si_pid != supervisor) {
        kill(child, sig);  // sent to the keeper alone (the supervisor signals the whole group)
      }
    }
  }

  const Options& o_;
  int64_t deadline_mono_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
  int64_t next_note_mono_ = 0;
  int64_t offset_ns_ = 0;  // the control plane's clock minus ours
  int64_t rtt_ns_ = 0;
  bool measured_offset_ = false;
};

}  // namespace

int Run(const Options& options) { return Waiter(options).Run(); }

}  // namespace meridian::waiter
