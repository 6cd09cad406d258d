// `meridian agent`: a load agent for one region.

#include <fmt/format.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string_view>
#include <thread>

#include "agent/agent.h"
#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "app/common/signals.h"

namespace meridian::app {

namespace {

// `meridian agent drain --pid PID`: asks a running agent to finish and leave (SIGUSR1), then waits for it to
// exit; for Kubernetes' preStop hook (`--pid 1`) and systemd's ExecStop (`--pid $MAINPID`).
int DrainMain(int argc, char** argv) {
  constexpr const char* kName = "meridian agent drain";
  int pid = 0;
  std::string timeout_text = "10m";
  CLI::App app{
      "Drain a running agent: it takes no new work, lets a run in progress finish, tells the control\n"
      "plane it is leaving, and exits. Returns when the agent has exited.",
      kName};
  app.add_option("--pid", pid, "The agent's process id (1 in its container; $MAINPID under systemd)")
      ->required()
      ->check(CLI::Range(1, 1 << 30).description(""));
  app.add_option("--timeout", timeout_text, "How long to wait for it to exit (default 10m)");
  SetValueNames(app, {{"--pid", "PID"}, {"--timeout", "DURATION"}});
  app.footer(
      "\nExamples:\n"
      "  meridian agent drain --pid 1                 # Kubernetes preStop\n"
      "  meridian agent drain --pid $MAINPID          # systemd ExecStop\n"
      "\nExit status: 0 the agent exited, 1 it did not within --timeout or cannot be signalled, 2 invalid "
      "arguments.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  auto timeout = DurationFlag("--timeout", timeout_text);
  if (!timeout.ok()) return Fail(kName, timeout.error().message, kExitUsage);
  if (*timeout <= 0) return Fail(kName, "--timeout: must be more than 0 (30s, 10m)", kExitUsage);
  if (::kill(pid, SIGUSR1) != 0) {
    return Fail(kName, fmt::format("cannot signal process {}: {}", pid, std::strerror(errno)), kExitRunError);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(*timeout);
  // Gone, or a zombie its parent has not reaped yet (it has exited all the same).
  const auto exited = [pid] {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  while (!exited()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return Fail(kName, fmt::format("process {} did not exit within {}", pid, timeout_text), kExitRunError);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return kExitOk;
}

}  // namespace

int AgentMain(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "drain") return DrainMain(argc - 1, argv + 1);
  constexpr const char* kName = "meridian agent";
  agent::AgentOptions o;
  std::string token_file;
  CLI::App app{
      "Run a load agent: register with the control plane for a region, wait for work, start at the\n"
      "run's common instant, report every second. The token needs the 'agent' scope.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option("--control", o.control_url,
                 "Control plane URL(s), comma-separated for replicas: tried in turn on connection errors and "
                 "503s (default: $MERIDIAN_CONTROL)")
      ->envname("MERIDIAN_CONTROL")
      ->required();
  app.add_option("--region", o.region, "Region this agent serves (matches the plan's regions)")->required();
  app.add_option("--token-file", token_file, "File holding the agent token (default: $MERIDIAN_TOKEN)");
  app.add_option("--name", o.name, "Agent name in summaries (default: the host name)");
  app.add_option("--workers", o.workers, "Load threads (default: one per CPU)")
      ->check(CLI::Range(1u, 1024u).description(""));
  app.add_flag("--once", o.once, "Exit after one run");
  SetValueNames(app, {{"--control", "URL"},
                      {"--region", "NAME"},
                      {"--token-file", "FILE"},
                      {"--name", "NAME"},
                      {"--workers", "N"}});
  app.footer(
      "\nExamples:\n"
      "  MERIDIAN_TOKEN=$(cat agent.token) meridian agent --control http://ctl:7070 --region eu-west-1\n"
      "  meridian agent --control http://ctl:7070 --region us-east-1 --token-file agent.token --workers 4\n"

      "  meridian agent drain --pid PID   (see meridian agent drain --help)\n"
      "\nSIGTERM/Ctrl-C: a running load stops gracefully, reports are flushed and done is sent; a second\n"
      "signal gives up waiting for the control plane. SIGUSR1 (meridian agent drain): no new work, a run in\n"
      "progress finishes, then the agent deregisters and exits. Exit status: 0 stopped, 2 invalid arguments\n"
      "or token.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  std::string error;
  o.token = LoadCliToken(token_file, &error);
  if (!error.empty()) return Fail(kName, error, kExitUsage);
  if (o.token.empty())
    return Fail(kName, "a token is required: --token-file F or $MERIDIAN_TOKEN", kExitUsage);
  agent::Agent agent(o);
  SignalWatcher signals(
      [&](int sig, int count) {
        if (sig == SIGUSR1) {
          agent.Drain();
        } else if (count == 1) {
          agent.Stop();
        } else {
          agent.Abort();
        }
      },
      /*hangup=*/false, /*user1=*/true);
  auto r = agent.Run();
  if (!r.ok()) return Fail(kName, r.error().message, kExitUsage);
  return kExitOk;
}

}  // namespace meridian::app
