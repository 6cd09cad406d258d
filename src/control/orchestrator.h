#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// The run orchestrator: every active run advanced by Tick() through created → preparing → ready → running →
// draining → cleaning → passed | failed | aborted | errored, each transition guarded and stored with its
// event before anything else sees it; agents assigned to the runs' slots (oldest run first,
// longest-registered agent first); lost agents (no contact for heartbeat_timeout); abort_on_fail thresholds
// once per completed second; the summary, thresholds and artefacts at cleaning; active runs resumed from the
// store after a restart.
//
// Time comes from the injected Clock (FakeClock in orchestrator_test.cpp). It knows no routes: the API
// (runs_api.cpp, agents_api.cpp) calls it and hands it the Responders of the requests it holds (an agent's
// work poll, a start long-poll), which it answers when their moment comes.

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "control/control.h"
#include "control/run.h"
#include "core/clock.h"
#include "core/result.h"
#include "http/server.h"
#include "store/store.h"

namespace meridian::control {

struct AgentLive {
  store::AgentRow row;
  int64_t last_seen_mono = 0;
  std::string run_id;  // the run it works on, empty when idle
  http::Responder poll;
  int64_t poll_deadline = 0;
};

// What an agent says in its done (POST …/done), checked by the API.
struct AgentDoneReport {
  int64_t last_seq = -1;  // its last report's seq
  uint64_t requests = 0, connections = 0, retries = 0;
  int64_t started_ns = 0;                     // on the control plane's clock (0: unknown)
  int64_t load_ended_ns = 0;                  // likewise; held to now
  std::vector<store::StepInstanceRow> steps;  // its step instances, with their logs
};

// A run's exit code for CI: 0 passed, 99 failed (thresholds or steps), 1 otherwise.
int ExitCodeFor(store::RunState state);

class Orchestrator {
 public:
  // `data_dir` holds runs/ID/ (the artefacts).
  Orchestrator(store::Store& store, const Clock& clock, const ServerConfig& config, std::string data_dir);

  // Loads the registered agents (not assigned until they poll again) and resumes the store's active runs.
  Result<void> Load();
  // Advances every run that needs it, expires held polls, forgets long-idle agents.
  void Tick();

  // A new run, its plan already checked: stored as created, moved to preparing, given the agents there are.
  // `baseline`: BaselineData for the plan's baseline run, if it names one.
  Result<Run*> Create(plan::Plan plan, std::string yaml, const std::string& owner,
                      std::vector<stats::MetricData> baseline = {});
  // Stops a live run: a running one drains (its agents stop), one not yet started ends aborted.
  void Abort(Run& run, const std::string& who);
  // An agent reports it prepared its part (or could not: the run errors naming it).
  void AgentReady(Run& run, store::AssignmentRow& a, const std::string& error);
  // An agent's interval report (`payload`, decoded as `snapshot`): stored once per seq and aggregated; the
  // agent is running from its first. The store's error when it could not be stored.
  Result<void> AgentReport(Run& run, store::AssignmentRow& a, int64_t seq, const std::string& payload,
                           stats::IntervalSnapshot& snapshot, int64_t started_ns);
  // An agent's part ended: its totals and step instances stored, the assignment done (unless it was lost).
  // Returns the highest seq such that every report up to it is stored.
  Result<int64_t> AgentDone(Run& run, store::AssignmentRow& a, AgentDoneReport report);
  // An agent asks for work: what it was given and not finished, or the oldest waiting run's free slot, or
  // held on `out` until either comes or long_poll passes (204).
  void PollWork(AgentLive& agent, http::Responder out);
  // Held until the run's start instant is known (200) or `wait` passes (404 with the start document).
  void WaitForStart(Run& run, http::Responder out, int64_t wait_ns);
  // Idle agents not seen for forget_agents_after (or, `all_idle`, for 10 s: room under max_agents), removed.
  void ForgetIdleAgents(bool all_idle);

  Run* Active(const std::string& id);
  const std::map<std::string, std::unique_ptr<Run>>& runs() const { return runs_; }
  std::map<std::string, AgentLive>& agents() { return agents_; }
  size_t ActiveRunsOf(const std::string& owner) const;
  // "name (id)" of a known agent, else the id.
  std::string AgentName(const std::string& id) const;
  void SaveAssignment(const store::AssignmentRow& a);

  nlohmann::ordered_json StartJson(const Run& run) const;
  nlohmann::ordered_json WorkJson(const Run& run, const store::AssignmentRow& a) const;
  const Clock& clock() const { return clock_; }

 private:
  Result<void> Resume(const store::RunRow& row);
  bool Transition(Run& run, store::RunState to, const std::string& detail);
  void SaveRun(Run& run);
  void Place(Run& run);
  void Advance(Run& run, int64_t now, int64_t now_mono);
  bool CheckAgents(Run& run, int64_t now_mono);
  void Assign(Run& run);
  void CheckAbortThresholds(Run& run);
  void Drain(Run& run, const std::string& why);
  void Clean(Run& run, const std::string& problem);
  void KeepFailedLogTails(Run& run);
  void Finish(Run& run, store::RunState state, const std::string& reason);
  // runs/ID/ of a run about to become `state` (report.html shows it ended, with that last change).
  void WriteArtefacts(const Run& run, const Summary& summary, store::RunState state,
                      const std::string& reason);

  store::Store& store_;
  const Clock& clock_;
  const ServerConfig& config_;
  std::string data_dir_;
  std::map<std::string, std::unique_ptr<Run>> runs_;  // active runs
  std::set<std::string> stepping_;                    // the runs each tick advances
  std::set<std::pair<int64_t, std::string>> queued_;  // (ready deadline, id): waiting for their first agent
  std::set<std::string> start_waiting_;               // runs with held start polls
  std::map<std::string, AgentLive> agents_;
  int64_t next_forget_mono_ = 0;
  int64_t started_mono_ = 0;
};

}  // namespace meridian::control
