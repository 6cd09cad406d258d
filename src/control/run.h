#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// Internal to control/: one run's live state (rebuilt from the store on restart), its aggregation of agent
// reports, and its summary.

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "http/server.h"
#include "plan/plan.h"
#include "stats/metrics.h"
#include "stats/summary.h"
#include "stats/threshold.h"
#include "store/store.h"

namespace meridian::control {

struct AgentProgress {
  std::string agent_id;
  std::string region;
  std::set<int64_t> seqs;  // stored report sequence numbers
  int64_t acked = -1;      // highest seq such that 0..acked are all stored
  int64_t last_second = -1;
  stats::IntervalSnapshot totals;
  std::vector<uint32_t> last_vus;  // per scenario, in the newest second (the `vus` gauge)
  std::vector<uint16_t> name_map;  // the agent's script-defined name indexes -> the run's (stats/names.h)

  // Returns false for a duplicate.
  bool Add(int64_t seq, const stats::IntervalSnapshot& s);
};

struct Run {
  store::RunRow row;
  plan::Plan plan;
  stats::SeriesNames names;
  std::vector<plan::AgentSlot> slots;
  std::vector<store::AssignmentRow> assignments;  // in slot order once assigned
  std::map<std::string, AgentProgress> progress;  // by agent id
  std::map<std::string, std::map<int64_t, stats::IntervalSnapshot>> region_seconds;
  struct Waiter {
    http::Responder out;
    int64_t deadline_mono = 0;
  };
  std::vector<Waiter> start_waiters;
  bool stop = false;            // tell agents to stop (abort, abort_on_fail, a lost agent)
  int64_t queued_deadline = 0;  // waiting for its first agent: its key in the control plane's queue (0: not)
  int64_t evaluated_second = -1;
  std::set<uint64_t> known_series;
  std::set<int64_t> changed_seconds;  // seconds Ingest added to since the live feed last looked

  store::AssignmentRow* Assignment(const std::string& agent_id);
  bool Terminal() const;
  // Maps the report's name indexes onto the run's table (in place), then aggregates it.
  void Ingest(const std::string& agent_id, const std::string& region, int64_t seq,
              stats::IntervalSnapshot& s);
  std::vector<store::StepInstanceRow> step_instances;   // as agents reported them in done (no logs)
  std::map<std::string, std::string> failed_log_tails;  // "step#N" -> its log's last lines, for the summary
  size_t static_names = 0;  // entries of `names` derived from the plan; the rest came from agents (scripts)
  std::unordered_map<std::string, uint16_t> name_index;
  int64_t EndAtNs() const { return row.start_at_ns + plan.ScheduledDuration(); }
  // The baseline run's data for each of plan.thresholds (the same filters), when the plan names one; why it
  // could not be read (a resumed run whose baseline is gone).
  std::vector<stats::MetricData> baseline;
  std::string baseline_error;
};

// A run as the store holds it: its plan, assignments, step instances (no logs) and every stored report
// ingested again (`*reports`: how many were read). For a restart's resume and an ended run's page.
Result<std::unique_ptr<Run>> RestoreRun(store::Store& store, const store::RunRow& row,
                                        size_t* reports = nullptr);

// RestoreRun in two halves, so that the costly one can leave the loop's thread: what the store holds of a
// run (read on the store's thread), then the run rebuilt from it (a pure function: any thread). Merging an
// hour of reports again takes seconds.
struct StoredRun {
  store::RunRow row;
  std::vector<store::AssignmentRow> assignments;
  std::vector<store::StepInstanceRow> steps;
  std::vector<store::SampleRow> samples;
};
Result<StoredRun> ReadStoredRun(store::Store& store, const store::RunRow& row);
Result<std::unique_ptr<Run>> RebuildRun(const StoredRun& stored);

// Whether a step instance's result (its result_json) is a failure: it could not be started, or it ended by
// itself with a non-zero exit code or a signal. Stopped at run_max_time (SIGTERM, then SIGKILL) is not.
bool InstanceFailed(const nlohmann::json& result);

// The steps whose every reported instance failed and that do not say `allow_failure: true`, each as
// "'name' (exit 127: could not be started)": such a step fails the run.
std::vector<std::string> FailedSteps(const Run& run);

// The last `n` lines of `text` (a trailing newline does not start another line).
std::string LastLines(std::string_view text, int n);

// What every rate divides by: the time the run's work lasted, from its start instant to the end of the last
// iteration or step of any agent (as agents said in done; before that, the seconds of data so far).
int64_t RunDurationNs(const Run& run);

// Thresholds against a baseline run. Whether any expression of the plan compares with one; the baseline run
// as the store holds it (kNotFound: no such run; kInvalidArgument: it has not ended); its data for each of
// the plan's thresholds (the same filters; RebuildRun's run: seconds of merging for a long run, so off the
// loop's thread when it can be); and the three together (for a resume at start-up).
bool UsesBaseline(const plan::Plan& plan);
Result<StoredRun> ReadBaselineRun(store::Store& store, const std::string& id);
std::vector<stats::MetricData> BaselineFrom(const Run& baseline, const plan::Plan& plan);
Result<std::vector<stats::MetricData>> BaselineData(store::Store& store, const plan::Plan& plan);

// Threshold inputs for one filter, from the agents' totals.
stats::MetricData MetricFor(const Run& run, const stats::ThresholdSet& set);
std::vector<stats::ThresholdOutcome> EvaluateThresholds(const Run& run, bool abort_only);

struct Summary {
  nlohmann::ordered_json json;
  std::string text;
  std::string csv;
  bool thresholds_ok = true;
};
Summary BuildSummary(const Run& run, const std::vector<store::AgentRow>& agents);
// The summary's header facts (title, scenarios, threads, connections, duration) and its thresholds as JSON.
stats::SummaryMeta SummaryMetaFor(const Run& run, const std::vector<store::AgentRow>& agents);
nlohmann::ordered_json ThresholdsJson(const std::vector<stats::ThresholdOutcome>& outcomes);

// Live progress of a run for GET /v1/runs/{id}.
nlohmann::ordered_json RunJson(const Run& run, int64_t now_wall_ns);
nlohmann::ordered_json RunRowJson(const store::RunRow& row);
// The run's state changes as GET /v1/runs/{id} lists them: [{at_ns, from, to, detail}].
nlohmann::ordered_json EventsJson(const std::vector<store::EventRow>& events);

}  // namespace meridian::control
