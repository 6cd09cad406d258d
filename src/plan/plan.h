#pragma once
// Plans (DESIGN §5): the model, the strict YAML/JSON parser (unknown keys are errors; messages carry
// file:line and the field), the Constellation importer, the normalised form, the per-region timeline, and the
// split of each scenario's load over regions and their agents.
//
// The control plane stores a plan in its normalised YAML form and agents parse that same text; splitting is
// deterministic, so every process derives the same name tables and the same shares.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "loadgen/declarative.h"
#include "loadgen/executor.h"
#include "loadgen/template.h"
#include "stats/summary.h"
#include "stats/threshold.h"

namespace meridian::plan {

struct Region {
  std::string name;
  double weight = 1;    // share of each scenario's load among the regions that do not pin theirs
  uint32_t vus = 0;     // pinned VUs for closed-model scenarios (0: use the weight)
  double rate = 0;      // pinned iterations per second for arrival-rate scenarios (0: use the weight)
  uint32_t agents = 1;  // agents the region's share is split over
};

struct Scenario {
  std::string name;
  loadgen::ExecutorConfig executor;
  std::vector<loadgen::RequestSpec> requests;
  std::string script;    // a JavaScript scenario instead of requests (path relative to the plan)
  std::string base_url;  // scripts: axios baseURL for relative URLs ("" = none)
  int64_t iteration_timeout_ns = 60'000'000'000;  // scripts: an iteration running longer fails
  std::vector<std::string> regions;               // empty: every region
};

struct Step {
  std::string name;
  std::string region;
  uint32_t instances = 1;
  std::vector<std::string> command;  // argv; or
  std::string shell;                 // a /bin/sh -c command line
  std::string cwd;                   // "" = the agent's working directory
  int64_t run_delay_ns = 0;
  int64_t run_max_time_ns = 0;
  int64_t stop_grace_ns = 10'000'000'000;  // SIGTERM at run_max_time, SIGKILL this much later
  bool restart_on_failure = false;         // restart: on-failure | never
  bool allow_failure = false;              // a step whose every instance failed does not fail the run
  std::map<std::string, std::string> env;
  std::string container_name;
  // The argv the agent runs.
  std::vector<std::string> Argv() const {
    return shell.empty() ? command : std::vector<std::string>{"/bin/sh", "-c", shell};
  }
};

enum class AgentLoss { kFail, kContinue };

struct Plan {
  std::string name;
  std::string source;  // where it came from: "plan.yaml", "config.json (Constellation)"
  loadgen::VarMap vars;
  std::map<std::string, std::string> tags;  // the run's labels (team: checkout, env: staging)
  int64_t start_buffer_ns = 1'000'000'000;
  int64_t ready_timeout_ns = 60'000'000'000;
  int64_t heartbeat_timeout_ns = 10'000'000'000;
  int64_t drain_grace_ns = 10'000'000'000;
  int64_t timeout_ns = 10'000'000'000;  // per request
  int64_t connect_timeout_ns = 5'000'000'000;
  bool insecure = false;
  AgentLoss on_agent_loss = AgentLoss::kFail;
  // The run thresholds written as "p(95) < baseline * 1.10" compare with (an ended run's id); set by
  // --baseline RUN or `baseline:` in the plan.
  std::string baseline;
  std::vector<Region> regions;
  std::vector<Scenario> scenarios;
  std::vector<Step> steps;
  std::vector<stats::ThresholdSet> thresholds;
  // The scripts' files (entry modules, imports, open()ed data), keyed by path relative to the plan; filled
  // when the plan is loaded (app/common) so that agents never read files.
  std::map<std::string, std::string> files;
  // What an imported format (ardere) said that has no meaning here, each naming file:line and the field.
  std::vector<std::string> warnings;

  // The scheduled length from the start instant to the end of the last scenario (graceful stops excluded).
  int64_t ScheduledDuration() const;
  // The longest graceful stop or ramp-down of any scenario.
  int64_t LongestGracefulStop() const;
  const Region* FindRegion(const std::string& region) const;
};

// Parses YAML or JSON text. `file` is used in messages ("plan.yaml:12:5: scenarios.browse.rate: ...").
// `overrides` (from --vars) replace or add plan vars before anything is templated.
Result<Plan> ParsePlan(const std::string& text, const std::string& file,
                       const loadgen::VarMap& overrides = {});
// The same plan written in TOML (ardere reads its plans as TOML too); messages name FILE:LINE.
Result<Plan> ParseTomlPlan(const std::string& text, const std::string& file,
                           const loadgen::VarMap& overrides = {});
// A plan file: TOML when its name ends in .toml, else YAML or JSON.
Result<Plan> LoadPlanFile(const std::string& path, const loadgen::VarMap& overrides = {});

// Constellation's config.json (DURATION in ms, HOME_REGION, REMOTE_REGIONS {region: VUs}) and script.js:
// one constant-vus scenario per region, each region pinned to its VUs.
Result<Plan> ImportConstellation(const std::string& config_path, const std::string& script_path);

// The normalised plan as YAML: every default spelled out; ParsePlan(ToYaml(p)) gives p back.
// `with_files`: include the scripts' bundle (what the control plane stores); without it, list the file names.
std::string ToYaml(const Plan& plan, bool with_files = true);

// What each region will do and when, relative to the start instant.
std::string Timeline(const Plan& plan);

// Why the plan cannot run yet (scripts not bundled, thresholds against a baseline without one), or ok.
Result<void> CheckRunnable(const Plan& plan);

// The scenario and request-name tables every process derives from a plan.
stats::SeriesNames Names(const Plan& plan);

// One agent's part of a run: which region and which of the region's agents.
struct AgentSlot {
  std::string region;
  uint32_t index = 0;  // 0 .. region.agents-1
};
std::vector<AgentSlot> Slots(const Plan& plan);

// A scenario as one agent runs it: its share of the load, and its index in the name tables.
struct ScenarioShare {
  size_t scenario = 0;
  loadgen::ExecutorConfig executor;
};
// The shares for one slot; scenarios with no load on that slot are left out.
std::vector<ScenarioShare> SharesFor(const Plan& plan, const AgentSlot& slot);

}  // namespace meridian::plan
