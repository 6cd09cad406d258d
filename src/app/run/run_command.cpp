// `meridian run PLAN`: the embedded mode. The same control plane and agents as `serve` and `agent`, in one
// process: the control plane on its own loop thread with SQLite under ./.meridian/, bound to loopback with
// generated tokens, one agent per region slot talking to it over loopback HTTP.

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "agent/agent.h"
#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "control/control.h"
#include "core/duration.h"
#include "core/files.h"
#include "core/log.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "plan/plan.h"

namespace meridian::app {

int RunMain(int argc, char** argv) {
  constexpr const char* kName = "meridian run";
  std::string path, config_json, script, baseline, state_dir = ".meridian";
  std::vector<std::string> vars;
  uint32_t workers = 0;
  bool verbose = false, linger = false;
  std::string dashboard;
  FollowOptions f;
  f.command = kName;
  CLI::App app{
      "Run a plan on this machine: an embedded control plane (SQLite under ./.meridian/) and one agent\n"
      "per region, speaking the same protocol as 'serve' and 'agent' over loopback. Live progress per\n"
      "region, then the k6-style summary with thresholds, per-region and per-request breakdowns.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option(
      "plan", path,
      "Plan file (.yaml, .yml, .json), or a script (.js, .mjs) whose `export const options` is the plan");
  app.add_option("--config", config_json, "Constellation config.json instead of a plan");
  app.add_option("--script", script, "Constellation script.js (with --config)");
  app.add_option("--baseline", baseline,
                 "An ended run that thresholds written as \"p(95) < baseline * 1.10\" compare with");
  app.add_option("--vars", vars, "Plan variable NAME=VALUE, overriding the plan's vars (repeatable)");
  app.add_option(
      "--out", f.out_dir,
      "Write plan.yaml services.json RUN.txt summary.json metrics.csv report.html FINISHED.txt here");
  app.add_option("--state-dir", state_dir, "Where the embedded store and run artefacts live")
      ->default_val(state_dir);
  app.add_option("--workers", workers, "Load threads per agent (default: CPUs shared among the agents)")
      ->check(CLI::Range(1u, 1024u).description(""));
  auto* dashboard_opt =
      app.add_option("--dashboard", dashboard,
                     "Serve the live dashboard at ADDR (default 127.0.0.1:0, loopback) and print a one-time "
                     "login link")
          ->expected(0, 1);
  app.add_flag("--dashboard-linger", linger,
               "With --dashboard: keep serving it after the run until Ctrl-C (a new login link is printed)");
  app.add_flag("--json", f.json, "Print the summary as JSON on stdout");
  app.add_option("--summary-file", f.summary_file, "Also write the JSON summary to this file");
  app.add_flag("-q,--quiet", f.quiet, "No progress output");
  app.add_flag("-v,--verbose", verbose, "Log the control plane's and agents' events");
  SetValueNames(app, {{"plan", "PLAN"},
                      {"--config", "FILE"},
                      {"--script", "FILE"},
                      {"--vars", "NAME=VALUE"},
                      {"--baseline", "RUN"},
                      {"--out", "DIR"},
                      {"--state-dir", "DIR"},
                      {"--workers", "N"},
                      {"--summary-file", "FILE"},
                      {"--dashboard", "[ADDR]"}});
  app.footer(
      "\nExamples:\n"
      "  meridian run examples/quickstart.yaml                 three regions on this machine\n"
      "  meridian run plan.yaml --vars base=http://staging:8080 --out results/\n"
      "  meridian run --config config.json --script script.js   Constellation inputs\n"
      "  meridian run plan.yaml --dashboard --dashboard-linger    watch it live in a browser\n"
      "  meridian run plan.yaml --baseline r-4f1c2a9b7e03       thresholds against an earlier run\n"

      "\nCtrl-C aborts the run gracefully (the summary is still printed); a second Ctrl-C exits.\n"
      "Exit status: 0 passed, 99 a threshold failed, 1 run error or aborted, 2 invalid plan or arguments.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  SetLogLevel(verbose ? LogLevel::kInfo : LogLevel::kWarn);
  const bool with_dashboard = dashboard_opt->count() > 0;
  if (linger && !with_dashboard) return Fail(kName, "--dashboard-linger needs --dashboard", kExitUsage);
  if (with_dashboard && dashboard.empty()) dashboard = "127.0.0.1:0";
  if (with_dashboard) {
    if (auto at = net::ParseListenAddress(dashboard); !at.ok()) {
      return Fail(kName, fmt::format("--dashboard: {}", at.error().message), kExitUsage);
    }
  }

  // Validate here first: errors name the user's file, and nothing starts for an invalid plan.
  auto plan = LoadPlanInput(PlanInput{path, config_json, script, vars, baseline});
  if (!plan.ok()) return Fail(kName, plan.error().message, kExitUsage);
  if (auto r = plan::CheckRunnable(*plan); !r.ok()) return Fail(kName, r.error().message, kExitUsage);
  const std::string plan_text = plan::ToYaml(*plan);

  // SIGINT/SIGTERM stay blocked in every thread started below; the follower's SignalWatcher takes them, so
  // Ctrl-C aborts the run gracefully instead of killing the process from whichever thread it lands on.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The embedded control plane: loopback only, fresh tokens for this process.
  if (auto d = MakePrivateDirectories(state_dir); !d.ok()) {
    return Fail(kName, fmt::format("--state-dir: {}", d.error().message), kExitRunError);
  }
  net::RaiseFileLimit();
  const std::string client_token = control::NewToken(), agent_token = control::NewToken();
  control::ServerConfig config;
  config.listen = with_dashboard ? dashboard : "127.0.0.1:0";
  config.store = "sqlite:" + (std::filesystem::path(state_dir) / "meridian.db").string();
  config.tokens = {{"cli", control::HashToken(client_token), {"runs:read", "runs:write"}},
                   {"agents", control::HashToken(agent_token), {"agent"}}};
  config.long_poll_ns = 1'000'000'000;
  auto store = store::OpenStore(config.store);
  if (!store.ok()) return Fail(kName, store.error().message, kExitRunError);
  net::EventLoop loop;
  if (auto r = loop.Init(); !r.ok()) return Fail(kName, r.error().message, kExitRunError);
  control::ControlPlane cp(loop, std::move(store).value(), config);
  if (auto r = cp.Start(); !r.ok()) return Fail(kName, r.error().message, kExitRunError);
  {
    // `meridian runs` against this state dir can use the token while the run lasts.
    const auto token_path = std::filesystem::path(state_dir) / "token";
    if (auto w = WritePrivateFile(token_path.string(), client_token + "\n"); !w.ok()) {
      return Fail(kName, w.error().message, kExitRunError);
    }
  }
  // The dashboard's address for people, and a one-time login code in its fragment (never sent to a server,
  // never logged); the page exchanges it for the client token once.
  std::string page;
  const auto login_link = [&] {
    const std::string login_code = control::NewToken();
    cp.AddLoginCode(login_code, client_token, 3600 * kNanosPerSecond);
    return fmt::format("{}/#login={}", page, login_code);
  };
  if (with_dashboard) {
    std::string host = dashboard.substr(0, dashboard.rfind(':'));
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "[::]") host = "[::1]";
    page = fmt::format("http://{}:{}", host, cp.port());
    fmt::print(stderr, "dashboard: {} (one-time login link)\n", login_link());
  }
  std::thread control_thread([&] { loop.Run(); });
  // The agents and the follower dial the address the control plane listens on (loopback unless --dashboard
  // named another).
  const std::string url = with_dashboard ? page : fmt::format("http://127.0.0.1:{}", cp.port());

  // One agent per slot.
  const auto slots = plan::Slots(*plan);
  const uint32_t cpus = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<agent::Agent>> agents;
  std::vector<std::thread> agent_threads;
  for (const auto& slot : slots) {
    agent::AgentOptions o;
    o.control_url = url;
    o.token = agent_token;
    o.region = slot.region;
    o.name = fmt::format("local-{}-{}", slot.region, slot.index + 1);
    o.workers = workers ? workers : std::max<uint32_t>(1, cpus / static_cast<uint32_t>(slots.size()));
    o.once = true;
    if (!verbose) o.log = [](const std::string&) {};
    agents.push_back(std::make_unique<agent::Agent>(o));
    agent_threads.emplace_back([a = agents.back().get()] { (void)a->Run(); });
  }
  const int exit_code =
      SubmitAndFollow(url, client_token, plan_text, path.empty() ? config_json : path, {}, f);
  for (auto& a : agents) a->Abort();
  for (auto& t : agent_threads) t.join();
  if (linger) {
    std::promise<std::string> link;
    loop.Post([&] { link.set_value(login_link()); });
    fmt::print(stderr, "dashboard: still serving {} until Ctrl-C (new login link: {})\n", page,
               link.get_future().get());
    int sig = 0;
    sigwait(&signals, &sig);
  }
  loop.Post([&] { loop.Stop(); });
  control_thread.join();
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(state_dir) / "token", ec);
  return exit_code;
}

}  // namespace meridian::app
