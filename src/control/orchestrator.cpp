// The orchestrator: loading and resuming runs, the tick, each state's step, lost agents, thresholds, the end.

#include "control/orchestrator.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "control/artefacts.h"
#include "control/live.h"
#include "core/duration.h"
#include "core/files.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "http/api.h"
#include "stats/wire.h"

namespace meridian::control {

using nlohmann::json;
using nlohmann::ordered_json;
using store::AssignmentState;
using store::RunState;

int ExitCodeFor(RunState state) {
  if (state == RunState::kPassed) return 0;
  if (state == RunState::kFailed) return 99;
  return 1;
}

Orchestrator::Orchestrator(store::Store& store, const Clock& clock, const ServerConfig& config,
                           std::string data_dir)
    : store_(store), clock_(clock), config_(config), data_dir_(std::move(data_dir)) {}

Result<void> Orchestrator::Load() {
  auto agents = store_.ListAgents();
  if (!agents.ok()) return agents.error();
  // Agents of an earlier process are not seen yet (never assigned until they poll again); they are forgotten
  // forget_agents_after from this start if they do not come back.
  started_mono_ = clock_.Mono();
  for (const auto& a : *agents) agents_[a.id].row = a;
  auto active = store_.ListRuns(10'000, true);
  if (!active.ok()) return active.error();
  for (const auto& row : *active) {
    if (auto r = Resume(row); !r.ok()) LogWarn("run {} cannot be resumed: {}", row.id, r.error().message);
  }
  return {};
}

Result<void> Orchestrator::Resume(const store::RunRow& row) {
  size_t reports = 0;
  auto restored = RestoreRun(store_, row, &reports);
  if (!restored.ok()) return restored.error();
  std::unique_ptr<Run> run = std::move(restored).value();
  if (auto baseline = BaselineData(store_, run->plan); baseline.ok()) {
    run->baseline = std::move(baseline).value();
  } else {
    run->baseline_error =
        fmt::format("baseline run {} could not be read: {}", run->plan.baseline, baseline.error().message);
    LogWarn("run {}: {}; its thresholds against it fail", row.id, run->baseline_error);
  }
  // Agents get a fresh heartbeat window after a restart: the control plane, not they, was away.
  const int64_t now = clock_.Mono();
  for (const auto& a : run->assignments) {
    AgentLive& live = agents_[a.agent_id];
    live.last_seen_mono = now;
    if (a.state != AssignmentState::kDone && a.state != AssignmentState::kLost) live.run_id = row.id;
  }
  LogInfo("resumed run {} in state {} with {} stored reports", row.id, store::RunStateName(row.state),
          reports);
  Run& placed = *run;
  runs_[row.id] = std::move(run);
  Place(placed);
  return {};
}

Result<Run*> Orchestrator::Create(plan::Plan plan, std::string yaml, const std::string& owner,
                                  std::vector<stats::MetricData> baseline) {
  auto run = std::make_unique<Run>();
  run->row.id = NewId(IdKind::kRun);
  run->row.name = plan.name;
  run->row.state = RunState::kCreated;
  run->row.plan_yaml = std::move(yaml);
  run->row.owner = owner;
  run->row.created_ns = run->row.updated_ns = clock_.Wall();
  run->plan = std::move(plan);
  run->names = plan::Names(run->plan);
  run->static_names = run->names.requests.size();
  run->slots = plan::Slots(run->plan);
  run->baseline = std::move(baseline);
  if (auto r = store_.CreateRun(run->row); !r.ok()) return r.error();
  Run& created = *run;
  runs_[created.row.id] = std::move(run);
  stepping_.insert(created.row.id);
  Advance(created, clock_.Wall(), clock_.Mono());  // created -> preparing, and assign what can be assigned
  Assign(created);
  return &created;
}

// Guarded transition, persisted with its event before anything else sees it.
bool Orchestrator::Transition(Run& run, RunState to, const std::string& detail) {
  store::RunRow next = run.row;
  const RunState from = run.row.state;
  next.state = to;
  next.updated_ns = clock_.Wall();
  if (store::Terminal(to)) {
    next.ended_ns = next.updated_ns;
    next.exit_code = ExitCodeFor(to);
  }
  auto moved = store_.TransitionRun(next, from, detail);
  if (!moved.ok()) {
    LogError("run {}: {} -> {} not stored: {}", run.row.id, store::RunStateName(from),
             store::RunStateName(to), moved.error().message);
    return false;
  }
  if (!*moved) return false;
  run.row = next;
  LogInfo("run {}: {} -> {}{}", run.row.id, store::RunStateName(from), store::RunStateName(to),
          detail.empty() ? "" : " (" + detail + ")");
  return true;
}

void Orchestrator::SaveRun(Run& run) {
  run.row.updated_ns = clock_.Wall();
  if (auto r = store_.UpdateRun(run.row); !r.ok()) LogError("run {}: {}", run.row.id, r.error().message);
}

void Orchestrator::SaveAssignment(const store::AssignmentRow& a) {
  if (auto r = store_.PutAssignment(a); !r.ok()) LogError("assignment: {}", r.error().message);
}

Run* Orchestrator::Active(const std::string& id) {
  auto it = runs_.find(id);
  return it == runs_.end() ? nullptr : it->second.get();
}

size_t Orchestrator::ActiveRunsOf(const std::string& owner) const {
  return static_cast<size_t>(
      std::count_if(runs_.begin(), runs_.end(), [&](const auto& r) { return r.second->row.owner == owner; }));
}

void Orchestrator::Tick() {
  const int64_t now_mono = clock_.Mono();
  const int64_t now = clock_.Wall();
  // Runs waiting for their first agent cost nothing here until their ready_timeout (agents are assigned when
  // they ask for work); then Advance ends them.
  while (!queued_.empty() && queued_.begin()->first <= now) {
    const std::string id = queued_.begin()->second;
    queued_.erase(queued_.begin());
    runs_.at(id)->queued_deadline = 0;
    stepping_.insert(id);
  }
  std::vector<std::string> finished;
  for (const std::string& id : std::vector<std::string>(stepping_.begin(), stepping_.end())) {
    Run& run = *runs_.at(id);
    Advance(run, now, now_mono);
    if (run.Terminal()) finished.push_back(id);
  }
  for (const auto& id : finished) {
    for (auto& w : runs_[id]->start_waiters) {
      w.out.Send(http::JsonResponse(409, {{"state", store::RunStateName(runs_[id]->row.state)}}));
    }
    for (auto& [aid, live] : agents_) {
      if (live.run_id == id) live.run_id.clear();
    }
    stepping_.erase(id);
    start_waiting_.erase(id);
    runs_.erase(id);
  }
  if (now_mono >= next_forget_mono_) {
    ForgetIdleAgents(/*all_idle=*/false);
    next_forget_mono_ = now_mono + 60 * kNanosPerSecond;
  }
  for (auto& [id, live] : agents_) {  // expired work polls
    if (live.poll.alive() && now_mono >= live.poll_deadline) {
      live.poll.Send(http::ServerResponse{204, "application/json", "", {}});
    }
  }
  for (auto it = start_waiting_.begin(); it != start_waiting_.end();) {
    Run& run = *runs_.at(*it);
    auto& ws = run.start_waiters;
    for (auto& w : ws) {
      if (now_mono >= w.deadline_mono) w.out.Send(http::JsonResponse(404, StartJson(run)));
    }
    ws.erase(std::remove_if(ws.begin(), ws.end(), [](const Run::Waiter& w) { return !w.out.alive(); }),
             ws.end());
    it = ws.empty() ? start_waiting_.erase(it) : std::next(it);
  }
}

// Files a run where the tick finds it: queued while it waits for its first agent (preparing, none assigned),
// advanced every tick otherwise.
void Orchestrator::Place(Run& run) {
  const std::string& id = run.row.id;
  const bool waiting = run.row.state == RunState::kPreparing && run.assignments.empty();
  if (waiting && run.queued_deadline == 0) {
    stepping_.erase(id);
    run.queued_deadline = std::max<int64_t>(1, run.row.deadline_ns);
    queued_.insert({run.queued_deadline, id});
  } else if (!waiting) {
    if (run.queued_deadline != 0) queued_.erase({run.queued_deadline, id});
    run.queued_deadline = 0;
    stepping_.insert(id);
  }
}

void Orchestrator::Advance(Run& run, int64_t now, int64_t now_mono) {
  const RunState state = run.row.state;
  switch (state) {
    case RunState::kCreated:
      run.row.deadline_ns = now + run.plan.ready_timeout_ns;
      if (Transition(run, RunState::kPreparing, fmt::format("{} agent slot(s) to fill", run.slots.size())))
        SaveRun(run);
      return;
    case RunState::kPreparing: {
      if (CheckAgents(run, now_mono)) return;
      Assign(run);
      const bool all_ready = run.assignments.size() == run.slots.size() &&
                             std::all_of(run.assignments.begin(), run.assignments.end(),
                                         [](const auto& a) { return a.state == AssignmentState::kReady; });
      if (all_ready) {
        run.row.start_at_ns = now + run.plan.start_buffer_ns;  // set once, persisted with the transition
        run.row.deadline_ns = run.row.start_at_ns;
        if (Transition(run, RunState::kReady,
                       fmt::format("all {} agents ready; start_at set", run.slots.size()))) {
          for (auto& w : run.start_waiters) w.out.Send(http::JsonResponse(200, StartJson(run)));
          run.start_waiters.clear();
        }
        return;
      }
      if (now >= run.row.deadline_ns) {
        std::string missing;
        for (size_t i = 0; i < run.slots.size(); ++i) {
          const auto* a = i < run.assignments.size() ? &run.assignments[i] : nullptr;
          if (!a) {
            missing +=
                fmt::format("{}region {} has no agent", missing.empty() ? "" : "; ", run.slots[i].region);
          } else if (a->state != AssignmentState::kReady) {
            missing +=
                fmt::format("{}agent {} not ready", missing.empty() ? "" : "; ", AgentName(a->agent_id));
          }
        }
        Finish(run, RunState::kErrored,
               fmt::format("ready_timeout ({}) elapsed: {}", FormatDuration(run.plan.ready_timeout_ns),
                           missing));
      }
      return;
    }
    case RunState::kReady:
      if (CheckAgents(run, now_mono)) return;
      if (now >= run.row.start_at_ns) Transition(run, RunState::kRunning, "the common start instant passed");
      return;
    case RunState::kRunning: {
      if (CheckAgents(run, now_mono)) return;
      CheckAbortThresholds(run);
      if (run.row.state != RunState::kRunning) return;
      // Iteration-based executors end before their max_duration: when every agent is done, so is the run.
      bool all_done = !run.assignments.empty();
      for (const auto& a : run.assignments) {
        if (a.state != AssignmentState::kDone && a.state != AssignmentState::kLost) all_done = false;
      }
      if (now >= run.EndAtNs() || all_done) {
        Drain(run, all_done && now < run.EndAtNs() ? "every agent finished its work"
                                                   : "the scheduled duration elapsed");
      }
      return;
    }
    case RunState::kDraining: {
      if (CheckAgents(run, now_mono)) return;
      bool all_done = true;
      for (const auto& a : run.assignments) {
        if (a.state == AssignmentState::kLost) continue;
        auto it = run.progress.find(a.agent_id);
        const int64_t acked = it == run.progress.end() ? -1 : it->second.acked;
        if (a.state != AssignmentState::kDone || acked < a.last_seq) all_done = false;
      }
      if (all_done) {
        Clean(run, "");
      } else if (now >= run.row.deadline_ns) {
        std::string late;
        for (const auto& a : run.assignments) {
          if (a.state != AssignmentState::kDone && a.state != AssignmentState::kLost)
            late += (late.empty() ? "" : ", ") + AgentName(a.agent_id);
        }
        Clean(run, fmt::format("agents did not finish within graceful stop + drain_grace: {}", late));
      }
      return;
    }
    case RunState::kCleaning:
      Clean(run, run.row.reason);  // resumed mid-cleaning
      return;
    case RunState::kPassed:
    case RunState::kFailed:
    case RunState::kAborted:
    case RunState::kErrored:
      return;
  }
}

// Running → draining: the agents are told to stop (their graceful stop, then drain_grace for the last
// reports).
void Orchestrator::Drain(Run& run, const std::string& why) {
  run.row.deadline_ns = clock_.Wall() + run.plan.LongestGracefulStop() + run.plan.drain_grace_ns;
  if (Transition(run, RunState::kDraining, why)) SaveRun(run);
}

// A lost agent fails the run (default) or is dropped from it. Returns true when the run ended.
bool Orchestrator::CheckAgents(Run& run, int64_t now_mono) {
  for (auto& a : run.assignments) {
    if (a.state == AssignmentState::kDone || a.state == AssignmentState::kLost) continue;
    const AgentLive& live = agents_[a.agent_id];
    if (now_mono - live.last_seen_mono < run.plan.heartbeat_timeout_ns) continue;
    const std::string why =
        fmt::format("agent {} in region {} lost: no contact for {} (heartbeat_timeout)",
                    AgentName(a.agent_id), a.region, FormatDuration(now_mono - live.last_seen_mono));
    if (run.plan.on_agent_loss == plan::AgentLoss::kContinue) {
      a.state = AssignmentState::kLost;
      SaveAssignment(a);
      agents_[a.agent_id].run_id.clear();
      LogWarn("run {}: {}; continuing (on_agent_loss: continue)", run.row.id, why);
      if (run.row.reason.empty()) {
        run.row.reason = why + "; continued (on_agent_loss: continue)";
        SaveRun(run);
      }
      continue;
    }
    run.stop = true;
    Finish(run, RunState::kErrored, why);
    return true;
  }
  return false;
}

void Orchestrator::CheckAbortThresholds(Run& run) {
  // Once per newly completed second, and only when some threshold asks for it.
  int64_t complete = INT64_MAX;
  for (const auto& a : run.assignments) {
    if (a.state == AssignmentState::kLost) continue;
    auto it = run.progress.find(a.agent_id);
    complete = std::min(complete, it == run.progress.end() ? -1 : it->second.last_second);
  }
  if (complete == INT64_MAX || complete <= run.evaluated_second) return;
  run.evaluated_second = complete;
  for (const auto& o : EvaluateThresholds(run, true)) {
    if (o.ok) continue;
    int64_t delay = 0;
    for (const auto& set : run.plan.thresholds) {
      for (const auto& e : set.exprs) {
        if (set.key == o.key && e.source == o.expr) delay = e.delay_abort_eval_ns;
      }
    }
    if ((complete + 1) * kNanosPerSecond < delay) continue;
    run.stop = true;
    run.row.reason = fmt::format("threshold {} {} crossed (measured {}): aborted early (abort_on_fail)",
                                 o.key, o.expr, o.measured_text);
    Drain(run, run.row.reason);
    return;
  }
}

void Orchestrator::Abort(Run& run, const std::string& who) {
  run.stop = true;
  const std::string why = fmt::format("aborted by {}", who);
  if (run.row.state == RunState::kRunning) {
    run.row.reason = why;
    Drain(run, why);
  } else if (run.row.state == RunState::kDraining) {
    run.row.reason = why;
    SaveRun(run);
  } else {
    Finish(run, RunState::kAborted, why);
  }
}

// cleaning: summary, thresholds, artefacts, then the final state.
void Orchestrator::Clean(Run& run, const std::string& problem) {
  if (run.row.state != RunState::kCleaning) {
    if (!problem.empty()) run.row.reason = problem;
    if (!Transition(run, RunState::kCleaning,
                    problem.empty() ? "every agent finished and was acknowledged" : problem)) {
      return;
    }
  }
  const bool aborted = run.row.reason.starts_with("aborted");
  const bool threshold_abort = run.row.reason.find("(abort_on_fail)") != std::string::npos;
  const bool incomplete = !problem.empty() && !aborted && !threshold_abort;
  bool thresholds_ok = true;
  for (const auto& o : EvaluateThresholds(run, false)) thresholds_ok &= o.ok;
  // A step whose every instance failed (a command not found, a script that exits 1) fails the run unless the
  // plan allows it; its last log lines go into the summary.
  const std::vector<std::string> failed_steps = FailedSteps(run);
  KeepFailedLogTails(run);
  RunState final_state = RunState::kPassed;
  if (aborted) {
    final_state = RunState::kAborted;
  } else if (incomplete) {
    final_state = RunState::kErrored;
  } else if (!thresholds_ok || threshold_abort || !failed_steps.empty()) {
    final_state = RunState::kFailed;
    if (run.row.reason.empty()) {
      std::string steps;
      for (const auto& f : failed_steps) steps += (steps.empty() ? "" : ", ") + f;
      run.row.reason = !thresholds_ok ? "thresholds failed" : "";
      if (!steps.empty()) {
        run.row.reason += fmt::format("{}{} {} failed (allow_failure: true lets a step fail)",
                                      run.row.reason.empty() ? "" : "; ",
                                      failed_steps.size() > 1 ? "steps" : "step", steps);
      }
    }
  }
  Finish(run, final_state, run.row.reason);
}

// The last lines of each failed instance's log (at most 20 instances, 10 lines each), for the summary.
void Orchestrator::KeepFailedLogTails(Run& run) {
  run.failed_log_tails.clear();
  bool any = false;
  for (const auto& row : run.step_instances)
    any |= InstanceFailed(json::parse(row.result_json, nullptr, false));
  if (!any) return;
  auto rows = store_.StepInstances(run.row.id, true);
  if (!rows.ok()) return;
  for (const auto& row : *rows) {
    if (run.failed_log_tails.size() >= 20) break;
    if (!InstanceFailed(json::parse(row.result_json, nullptr, false))) continue;
    run.failed_log_tails[fmt::format("{}#{}", row.step, row.instance)] = LastLines(row.log, 10);
  }
}

// The summary and the artefacts, rendered with the final state and kept in the run's row; then the guarded
// transition to it.
void Orchestrator::Finish(Run& run, RunState state, const std::string& reason) {
  run.row.reason = reason;
  run.row.deadline_ns = 0;
  auto agents = store_.ListAgents();
  const RunState was = run.row.state;
  run.row.state = state;
  Summary summary = BuildSummary(run, agents.ok() ? *agents : std::vector<store::AgentRow>{});
  run.row.state = was;
  summary.json["text"] = summary.text;
  summary.json["metrics_csv"] = summary.csv;
  run.row.summary_json = JsonText(summary.json);
  WriteArtefacts(run, summary, state, reason);
  Transition(run, state, reason);
  for (auto& a : run.assignments) agents_[a.agent_id].run_id.clear();
  Place(run);  // advanced once more: the tick removes ended runs
}

void Orchestrator::WriteArtefacts(const Run& run, const Summary& summary, RunState state,
                                  const std::string& reason) {
  const auto dir = std::filesystem::path(data_dir_) / "runs" / run.row.id;
  if (auto d = MakePrivateDirectories(dir.string()); !d.ok()) {
    LogWarn("run {}: cannot write artefacts: {}", run.row.id, d.error().message);
    return;
  }
  std::map<std::string, std::string> names;
  for (const auto& a : run.assignments) {
    auto it = agents_.find(a.agent_id);
    if (it != agents_.end()) names[a.agent_id] = it->second.row.name;
  }
  const int64_t now = clock_.Wall();
  store::RunRow ended = run.row;
  ended.state = state;
  ended.reason = reason;
  ended.ended_ns = now;
  ended.exit_code = ExitCodeFor(state);
  auto stored = store_.Events(run.row.id);
  std::vector<store::EventRow> events = stored.ok() ? *std::move(stored) : std::vector<store::EventRow>{};
  store::EventRow last;  // the change Transition stores right after
  last.at_ns = now;
  last.from_state = store::RunStateName(run.row.state);
  last.to_state = store::RunStateName(state);
  last.detail = reason;
  events.push_back(std::move(last));
  const nlohmann::ordered_json end = {{"run", RunRowJson(ended)},
                                      {"summary", ShownSummary(summary.json, false)}};
  for (const auto& [name, content] : ArtefactFiles(run, summary, ServicesJson(run, names), now,
                                                   ReportHtml(run, end, EventsJson(events), now))) {
    if (auto w = WritePrivateFile((dir / name).string(), content); !w.ok()) {
      LogWarn("run {}: {}", run.row.id, w.error().message);
    }
  }
  // Whole or not at all: written aside, then renamed (a page never reads half of it).
  const auto history = dir / kHistoryFile;
  auto partial = history;
  partial += ".partial";
  if (auto w = WritePrivateFile(partial.string(), SecondsAfter(run, {}, -1).json); !w.ok()) {
    LogWarn("run {}: {}", run.row.id, w.error().message);
  } else if (std::error_code ec; std::filesystem::rename(partial, history, ec), ec) {
    LogWarn("run {}: cannot write {}: {}", run.row.id, history.string(), ec.message());
  }
}

}  // namespace meridian::control
