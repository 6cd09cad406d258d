// `meridian agent`: a load agent for one region.

#include <fmt/format.h>

#include "agent/agent.h"
#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "app/common/signals.h"

namespace meridian::app {

int AgentMain(int argc, char** argv) {
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

      "\nSIGTERM/Ctrl-C: a running load stops gracefully, reports are flushed and done is sent; a second\n"
      "signal gives up waiting for the control plane. Exit status: 0 stopped, 2 invalid arguments or token.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  std::string error;
  o.token = LoadCliToken(token_file, &error);
  if (!error.empty()) return Fail(kName, error, kExitUsage);
  if (o.token.empty())
    return Fail(kName, "a token is required: --token-file F or $MERIDIAN_TOKEN", kExitUsage);
  agent::Agent agent(o);
  SignalWatcher signals([&](int, int count) {
    if (count == 1) {
      agent.Stop();
    } else {
      agent.Abort();
    }
  });
  auto r = agent.Run();
  if (!r.ok()) return Fail(kName, r.error().message, kExitUsage);
  return kExitOk;
}

}  // namespace meridian::app
