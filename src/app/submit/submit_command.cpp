// `meridian submit PLAN --control URL`: run a plan on a server and follow it, with `run`'s exit codes.

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "plan/plan.h"

namespace meridian::app {

int SubmitMain(int argc, char** argv) {
  constexpr const char* kName = "meridian submit";
  std::string path, control, token_file, baseline;
  std::vector<std::string> vars;
  FollowOptions f;
  f.command = kName;
  CLI::App app{
      "Submit a plan to a control plane (meridian serve), follow its progress and print the summary.\n"
      "Same progress, summary and exit codes as 'meridian run'. The token needs runs:read and runs:write.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option(
         "plan", path,
         "Plan file (.yaml, .yml, .json), or a script (.js, .mjs) whose `export const options` is the plan")
      ->required();
  app.add_option("--control", control,
                 "Control plane URL(s), comma-separated for replicas (default: $MERIDIAN_CONTROL)")
      ->envname("MERIDIAN_CONTROL")
      ->required();
  app.add_option("--token-file", token_file, "File holding the token (default: $MERIDIAN_TOKEN)");
  app.add_option("--baseline", baseline,
                 "An ended run that thresholds written as \"p(95) < baseline * 1.10\" compare with");
  app.add_option("--vars", vars, "Plan variable NAME=VALUE (repeatable)");
  app.add_option(
      "--out", f.out_dir,
      "Write plan.yaml services.json RUN.txt summary.json metrics.csv report.html FINISHED.txt here");
  app.add_flag("--json", f.json, "Print the summary as JSON on stdout");
  app.add_option("--summary-file", f.summary_file, "Also write the JSON summary to this file");
  app.add_flag("-q,--quiet", f.quiet, "No progress output");
  SetValueNames(app, {{"plan", "PLAN"},
                      {"--control", "URL"},
                      {"--token-file", "FILE"},
                      {"--vars", "NAME=VALUE"},
                      {"--baseline", "RUN"},
                      {"--out", "DIR"},
                      {"--summary-file", "FILE"}});
  app.footer(
      "\nExamples:\n"
      "  meridian submit plan.yaml --control http://ctl:7070 --token-file ci.token\n"
      "  meridian submit plan.yaml --control http://ctl:7070 --json --out results/\n"

      "\nCtrl-C aborts the run (a second one stops waiting).\n"
      "Exit status: 0 passed, 99 a threshold failed, 1 run error or aborted, 2 invalid plan or arguments.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  std::string error;
  const std::string token = LoadCliToken(token_file, &error);
  if (!error.empty()) return Fail(kName, error, kExitUsage);
  // Read, checked and bundled here as `run` does: the control plane never sees this machine's files, so the
  // scripts a plan names (and what they import or open) travel in the plan's `files:`.
  auto plan = LoadPlanInput(PlanInput{path, "", "", vars, baseline});
  if (!plan.ok()) return Fail(kName, plan.error().message, kExitUsage);
  return SubmitAndFollow(control, token, plan::ToYaml(*plan), path, {}, f);
}

}  // namespace meridian::app
