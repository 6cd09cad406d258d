// `meridian validate PLAN`: full validation, the normalised plan and a timeline per region; no load is sent.

#include <fmt/format.h>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "plan/plan.h"

namespace meridian::app {

int ValidateMain(int argc, char** argv) {
  constexpr const char* kName = "meridian validate";
  std::string path, config, script;
  std::vector<std::string> vars;
  bool quiet = false;
  CLI::App app{
      "Validate a plan (YAML or JSON) strictly and print it normalised, with a timeline per region.\n"
      "Nothing is sent to any target. Constellation inputs: --config config.json [--script script.js].",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option(
      "plan", path,
      "Plan file (.yaml, .yml, .json), or a script (.js, .mjs) whose `export const options` is the plan");
  app.add_option("--config", config, "Constellation config.json (DURATION, HOME_REGION, REMOTE_REGIONS)");
  app.add_option("--script", script, "Constellation script.js (with --config)");
  app.add_option("--vars", vars, "Plan variable NAME=VALUE, overriding the plan's vars (repeatable)");
  app.add_flag("-q,--quiet", quiet, "Print nothing; the exit status says whether the plan is valid");
  SetValueNames(app,
                {{"plan", "PLAN"}, {"--config", "FILE"}, {"--script", "FILE"}, {"--vars", "NAME=VALUE"}});
  app.footer(
      "\nExamples:\n"
      "  meridian validate examples/quickstart.yaml\n"
      "  meridian validate --config config.json --script script.js\n"
      "\nExit status: 0 valid, 2 invalid (the message names file:line and the field).");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  auto plan = LoadPlanInput(PlanInput{path, config, script, vars, {}});
  if (!plan.ok()) return Fail(kName, plan.error().message, kExitUsage);
  if (!quiet) {
    fmt::print("# {} is valid; normalised:\n{}\n{}", plan->source, plan::ToYaml(*plan, false),
               plan::Timeline(*plan));
    if (auto r = plan::CheckRunnable(*plan); !r.ok()) fmt::print("\nnote: {}\n", r.error().message);
  }
  return kExitOk;
}

}  // namespace meridian::app
