// `meridian waiter START SERVICE_ID DELAY [-- CMD...]`: hold a command until a run's start instant + DELAY.

#include <fmt/format.h>

#include <cstring>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "core/duration.h"
#include "waiter/waiter.h"

namespace meridian::app {

int WaiterMain(int argc, char** argv) {
  constexpr const char* kName = "meridian waiter";
  waiter::Options o;
  // Everything after the first "--" is CMD, passed on untouched (its own flags included).
  int own = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      own = i;
      for (int j = i + 1; j < argc; ++j) o.command.emplace_back(argv[j]);
      break;
    }
  }
  std::string delay_text, timeout_text = "1h", token_file;
  CLI::App app{
      "Hold a command until a run's start instant plus DELAY, then exec it (signals sent to the waiter\n"
      "reach CMD). START is a file (RUN.txt: epoch seconds; services.json: the start and SERVICE_ID's own\n"
      "run_delay; any JSON with start_at) or the control plane's URL http://HOST:PORT/v1/runs/RUN/start\n"
      "(404 until the instant is known; long-polled). Missing START is retried with backoff and jitter;\n"
      "a START in the past starts CMD at once and says how late. Works standalone in any container.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option("start", o.start, "File path or http:// URL holding the start instant")->required();
  app.add_option("service_id", o.service_id, "Name of this service (a step name, or step#N) for messages")
      ->required();
  app.add_option("delay", delay_text, "Delay after the start instant (10s, 1500ms, 1m30s)")->required();
  app.add_option("--timeout", timeout_text,
                 "Longest wait in all, for START and until the instant (default 1h)");
  app.add_option("--token-file", token_file,
                 "File holding a token with runs:read or agent scope, for a URL START (default: "
                 "$MERIDIAN_TOKEN)");
  app.add_flag("-q,--quiet", o.quiet, "Print nothing but errors");
  SetValueNames(app, {{"start", "START"},
                      {"service_id", "SERVICE_ID"},
                      {"delay", "DELAY"},
                      {"--timeout", "DURATION"},
                      {"--token-file", "FILE"}});
  app.footer(
      "\n  -- CMD [ARGS...]              The command to exec at the instant (none: exit 0 at the instant);\n"
      "                                it gets MERIDIAN_START_AT (epoch seconds) and MERIDIAN_SERVICE_ID\n"
      "\nExamples:\n"
      "  meridian waiter out/RUN.txt ws-swarm 10s -- ./ws-swarm --conns 5000\n"
      "  meridian waiter out/services.json ws-swarm#2 0s -- ./ws-swarm     # the step's own run_delay\n"
      "  MERIDIAN_TOKEN=... meridian waiter http://ctl:7070/v1/runs/r-1a2b/start probe 0s -- ./probe\n"
      "\nExit status: CMD's own (the waiter becomes CMD); 0 without CMD; 1 START unusable (malformed,\n"
      "the run ended before starting, token refused); 2 invalid arguments; 124 --timeout expired;\n"
      "126 CMD not executable; 127 CMD not found (checked before waiting).");
  int code = 0;
  if (!ParseCommandLine(app, own, argv, &code)) return code;
  auto delay = ParseDuration(delay_text);
  if (!delay.ok()) return Fail(kName, "DELAY: " + delay.error().message, kExitUsage);
  if (*delay < 0) return Fail(kName, "DELAY: must not be negative", kExitUsage);
  o.delay_ns = *delay;
  auto timeout = DurationFlag("--timeout", timeout_text);
  if (!timeout.ok()) return Fail(kName, timeout.error().message, kExitUsage);
  if (*timeout <= 0)
    return Fail(kName, "--timeout: must be positive (the waiter never waits forever)", kExitUsage);
  o.timeout_ns = *timeout;
  if (o.start.starts_with("http://") || o.start.starts_with("https://")) {
    std::string error;
    o.token = LoadCliToken(token_file, &error);
    if (!error.empty()) return Fail(kName, error, kExitUsage);
  }
  return waiter::Run(o);
}

}  // namespace meridian::app
