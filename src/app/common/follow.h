#pragma once
// Client side of a run, shared by `run` (embedded control plane) and `submit` (a server): create the run,
// follow its progress, print the summary, write artefacts, map the final state to an exit code.

#include <string>

#include "loadgen/template.h"

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

// "k=v" pairs → VarMap; returns false with *error naming the bad one.
bool ParseVars(const std::vector<std::string>& pairs, loadgen::VarMap* vars, std::string* error);

// Exit code for a final run state.
int ExitCodeForState(const std::string& state);

}  // namespace meridian::app
