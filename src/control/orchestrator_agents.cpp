// The orchestrator's side of agents: assigning them to runs' slots, their work polls, ready, reports and
// done, the start long-polls, forgetting idle ones.

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "control/artefacts.h"
#include "control/orchestrator.h"
#include "core/duration.h"
#include "core/log.h"
#include "http/api.h"
#include "stats/wire.h"

namespace meridian::control {

using nlohmann::ordered_json;
using store::AssignmentState;
using store::RunState;

std::string Orchestrator::AgentName(const std::string& id) const {
  auto it = agents_.find(id);
  return it == agents_.end() ? id : it->second.row.name + " (" + id + ")";
}

void Orchestrator::Assign(Run& run) {
  while (run.assignments.size() < run.slots.size()) {
    const plan::AgentSlot& slot = run.slots[run.assignments.size()];
    AgentLive* pick = nullptr;
    for (auto& [id, live] : agents_) {
      if (live.row.region != slot.region || !live.run_id.empty()) continue;
      if (clock_.Mono() - live.last_seen_mono > run.plan.heartbeat_timeout_ns) continue;
      if (!pick || live.row.registered_ns < pick->row.registered_ns) pick = &live;
    }
    if (!pick) break;
    store::AssignmentRow a;
    a.run_id = run.row.id;
    a.agent_id = pick->row.id;
    a.region = slot.region;
    a.slot = slot.index;
    a.state = AssignmentState::kAssigned;
    SaveAssignment(a);
    run.assignments.push_back(a);
    pick->run_id = run.row.id;
    LogInfo("run {}: region {} slot {} -> agent {}", run.row.id, slot.region, slot.index,
            AgentName(a.agent_id));
    if (pick->poll.alive()) pick->poll.Send(http::JsonResponse(200, WorkJson(run, a)));
  }
  Place(run);
}

void Orchestrator::AgentReady(Run& run, store::AssignmentRow& a, const std::string& error) {
  if (!error.empty()) {
    run.stop = true;
    Finish(run, RunState::kErrored,
           fmt::format("agent {} in {} could not prepare: {}", AgentName(a.agent_id), a.region, error));
    return;
  }
  if (a.state == AssignmentState::kAssigned) {
    a.state = AssignmentState::kReady;
    a.ready_ns = clock_.Wall();
    SaveAssignment(a);
  }
}

Result<void> Orchestrator::AgentReport(Run& run, store::AssignmentRow& a, int64_t seq,
                                       const std::string& payload, stats::IntervalSnapshot& snapshot,
                                       int64_t started_ns) {
  if (a.state == AssignmentState::kReady || a.state == AssignmentState::kAssigned)
    a.state = AssignmentState::kRunning;
  if (started_ns > 0 && a.started_ns == 0) {
    a.started_ns = started_ns;
    SaveAssignment(a);
  }
  auto inserted =
      store_.InsertSample(run.row.id, store::SampleRow{a.agent_id, seq, snapshot.second, payload});
  if (!inserted.ok()) return inserted.error();
  if (!*inserted) return {};  // a report sent again
  run.Ingest(a.agent_id, a.region, seq, snapshot);
  for (const auto& [key, s] : snapshot.series) {
    if (!run.known_series.insert(key).second) continue;
    const auto k = stats::SeriesKey::Unpack(key);
    (void)store_.PutSeries(run.row.id, key, a.region,
                           k.scenario < run.names.scenarios.size() ? run.names.scenarios[k.scenario] : "",
                           k.request < run.names.requests.size() ? run.names.requests[k.request].name : "",
                           k.status, stats::ErrorKindName(k.error));
  }
  return {};
}

Result<int64_t> Orchestrator::AgentDone(Run& run, store::AssignmentRow& a, AgentDoneReport report) {
  for (auto& row : report.steps) {
    if (auto r = store_.PutStepInstance(run.row.id, row); !r.ok()) return r.error();
    row.log.clear();  // kept in the store only
    auto& kept = run.step_instances;
    auto same = std::find_if(kept.begin(), kept.end(),
                             [&](const auto& k) { return k.step == row.step && k.instance == row.instance; });
    if (same != kept.end()) {
      *same = std::move(row);
    } else {
      kept.push_back(std::move(row));
    }
  }
  a.last_seq = report.last_seq;
  a.requests = report.requests;
  a.connections = report.connections;
  a.retries = report.retries;
  if (report.started_ns > 0 && a.started_ns == 0) a.started_ns = report.started_ns;
  // In the past by now: a later value (a clock gone wrong) would shrink every rate.
  a.load_ended_ns = std::clamp<int64_t>(report.load_ended_ns, 0, clock_.Wall());
  if (a.state != AssignmentState::kLost) a.state = AssignmentState::kDone;
  SaveAssignment(a);
  auto it = run.progress.find(a.agent_id);
  return it == run.progress.end() ? int64_t{-1} : it->second.acked;
}

void Orchestrator::PollWork(AgentLive& live, http::Responder out) {
  // Work already assigned (and not finished) is sent again: the agent may have restarted its poll.
  if (!live.run_id.empty()) {
    if (Run* run = Active(live.run_id)) {
      if (auto* a = run->Assignment(live.row.id); a && a->state == AssignmentState::kAssigned) {
        out.Send(http::JsonResponse(200, WorkJson(*run, *a)));
        return;
      }
    }
  }
  live.poll.Send(http::ServerResponse{204, "application/json", "", {}});  // a newer poll replaces an old one
  live.poll = out;
  live.poll_deadline = clock_.Mono() + config_.long_poll_ns;
  // The runs waiting for agents, oldest first, until this agent has work.
  std::vector<Run*> waiting;
  for (auto& [rid, run] : runs_) {
    if (run->row.state == RunState::kPreparing) waiting.push_back(run.get());
  }
  std::sort(waiting.begin(), waiting.end(), [](const Run* a, const Run* b) {
    return std::tie(a->row.created_ns, a->row.id) < std::tie(b->row.created_ns, b->row.id);
  });
  for (Run* run : waiting) {
    if (!live.run_id.empty()) break;
    Assign(*run);
  }
}

void Orchestrator::WaitForStart(Run& run, http::Responder out, int64_t wait_ns) {
  run.start_waiters.push_back({std::move(out), clock_.Mono() + std::min(wait_ns, config_.long_poll_ns)});
  start_waiting_.insert(run.row.id);
}

// Agents without a run and not seen for forget_agents_after (every agent restart registers a new id), or, at
// max_agents, every agent without a run that missed its heartbeats: removed from memory and the store.
void Orchestrator::ForgetIdleAgents(bool all_idle) {
  const int64_t now = clock_.Mono();
  const int64_t after = all_idle ? 10 * kNanosPerSecond : config_.forget_agents_after_ns;
  for (auto it = agents_.begin(); it != agents_.end();) {
    const AgentLive& a = it->second;
    const int64_t seen = a.last_seen_mono != 0 ? a.last_seen_mono : started_mono_;
    if (a.run_id.empty() && !a.poll.alive() && now - seen > after) {
      if (auto r = store_.DeleteAgent(it->first); !r.ok()) {
        LogWarn("agent {}: not forgotten: {}", it->first, r.error().message);
        ++it;
        continue;
      }
      it = agents_.erase(it);
    } else {
      ++it;
    }
  }
}

ordered_json Orchestrator::StartJson(const Run& run) const {
  ordered_json j = {{"run", run.row.id}, {"state", store::RunStateName(run.row.state)}};
  if (run.row.start_at_ns) {
    j["start_at_ns"] = run.row.start_at_ns;
    j["start_at"] = EpochText(run.row.start_at_ns);
  }
  j["server_ns"] = clock_.Wall();
  return j;
}

ordered_json Orchestrator::WorkJson(const Run& run, const store::AssignmentRow& a) const {
  return {{"run", run.row.id},
          {"region", a.region},
          {"slot", a.slot},
          {"plan", run.row.plan_yaml},
          {"start_at_ns", run.row.start_at_ns},
          {"long_poll_ms", config_.long_poll_ns / 1'000'000}};
}

}  // namespace meridian::control
