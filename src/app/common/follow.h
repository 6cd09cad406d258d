#pragma once
// Client side of a run, shared by `run` (embedded control plane) and `submit` (a server): create the run,
// follow its progress, print the summary, write artefacts, map the final state to an exit code.

#include <string>

#include "core/result.h"
#include "loadgen/template.h"
#include "plan/plan.h"

namespace meridian::app {

struct FollowOptions {
  std::string command;  // "meridian run", for messages
  bool quiet = false;
  bool json = false;    // print the summary as JSON on stdout
  std::string out_dir;  // --out: plan.yaml services.json RUN.txt summary.json metrics.csv FINISHED.txt
  std::string summary_file;
};

// Creates the run and follows it to the end. Returns 0 passed, 99 thresholds failed, 1 error or aborted,
// 2 the plan was refused.
int SubmitAndFollow(const std::string& control_url, const std::string& token, const std::string& plan_text,
                    const std::string& plan_file, const loadgen::VarMap& vars, const FollowOptions& options);

// Token for the CLI: --token-file, else $MERIDIAN_TOKEN, else ./.meridian/token. Empty when none.
std::string LoadCliToken(const std::string& token_file, std::string* error);

// "k=v" pairs → VarMap; returns false with *error naming `flag` and the bad pair.
bool ParseVars(const std::vector<std::string>& pairs, loadgen::VarMap* vars, std::string* error,
               const char* flag = "--vars");

// What `run` and `validate` read: a PLAN, or Constellation's config.json (+ script.js); --vars applied.
struct PlanInput {
  std::string path;
  std::string config;
  std::string script;
  std::vector<std::string> vars;
  std::string baseline;  // --baseline RUN: replaces the plan's `baseline:`
};
Result<plan::Plan> LoadPlanInput(const PlanInput& input);

}  // namespace meridian::app
