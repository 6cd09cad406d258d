// The control plane: API routes, agent registry, orchestrator tick.

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "control/control.h"
#include "control/run.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/files.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/version.h"
#include "envpool/envpool.h"
#include "http/api.h"
#include "http/server.h"
#include "net/socket.h"
#include "net/work_thread.h"
#include "stats/wire.h"

namespace meridian::control {

using nlohmann::json;
using nlohmann::ordered_json;

using http::ApiError;
using http::ErrorResponse;
using http::Field;
using http::ParseBody;

namespace {

constexpr int64_t kTickNs = 50'000'000;
constexpr size_t kSmallBody = 64 * 1024;         // what every route but plans, reports and done takes
constexpr size_t kParseInlineBytes = 64 * 1024;  // larger JSON bodies are parsed on the work thread
constexpr int64_t kPruneEveryNs = 60'000'000'000;
constexpr const char* kAgentSecretHeader = "meridian-agent-secret";

int ExitCodeFor(const std::string& state) {
  if (state == "passed") return 0;
  if (state == "failed") return 99;
  return 1;
}

}  // namespace

struct AgentLive {
  store::AgentRow row;
  int64_t last_seen_mono = 0;
  std::string run_id;  // the run it works on, empty when idle
  http::Responder poll;
  int64_t poll_deadline = 0;
};

class ControlPlane::Impl {
 public:
  Impl(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config)
      : loop_(loop), store_(std::move(store)), config_(std::move(config)) {}

  Result<void> Start() {
    auto key = LoadOrCreateServerKey(DataDir());
    if (!key.ok()) return key.error();
    key_ = std::move(key).value();
    std::vector<store::TokenRow> rows;
    for (const auto& t : config_.tokens) {
      std::string scopes;
      for (const auto& s : t.scopes) scopes += (scopes.empty() ? "" : " ") + s;
      rows.push_back(store::TokenRow{t.name, KeyedHash(key_, t.hash_hex), scopes});
    }
    if (auto r = store_->ReplaceTokens(rows); !r.ok()) return r;
    auto agents = store_->ListAgents();
    if (!agents.ok()) return agents.error();
    // Agents of an earlier process are not seen yet (never assigned until they poll again); they are
    // forgotten forget_agents_after from this start if they do not come back.
    started_mono_ = MonoNanos();
    for (const auto& a : *agents) agents_[a.id].row = a;
    auto active = store_->ListRuns(10'000, true);
    if (!active.ok()) return active.error();
    for (const auto& row : *active) {
      if (auto r = Resume(row); !r.ok()) {
        LogWarn("run {} cannot be resumed: {}", row.id, r.error().message);
      }
    }
    envpool::Options pool_options;
    pool_options.registry_path = config_.registry;
    pool_options.max_waiters_per_principal = config_.max_waiting_allocations_per_token;
    pool_options.hidden_env.insert(config_.token_env.begin(), config_.token_env.end());
    envpool_ = std::make_unique<envpool::EnvPool>(loop_, *store_, pool_options);
    if (auto r = envpool_->Start(); !r.ok()) return r;
    work_ = std::make_unique<net::WorkThread>(loop_);
    http::ServerOptions options;
    options.max_body_bytes = config_.max_body_bytes;
    options.max_headers = config_.max_headers;
    options.idle_timeout_ns = 120 * kNanosPerSecond;
    options.request_timeout_ns = config_.request_timeout_ns;
    options.max_connections = config_.max_connections;
    options.max_buffered_bytes = config_.max_buffered_bytes;
    options.single_headers.push_back(kAgentSecretHeader);
    server_ = std::make_unique<http::HttpServer>(
        loop_, options, [this](http::ServerRequest& req, http::Responder out) { Handle(req, out); },
        [this](const http::ServerRequest& head, size_t* max_body) { return CheckHead(head, max_body); });
    auto at = net::ParseListenAddress(config_.listen);
    if (!at.ok()) return at.error();
    if (auto r = server_->Listen(*at); !r.ok()) return r;
    tick_.set([this] { Tick(); });
    loop_.Schedule(&tick_, MonoNanos() + kTickNs);
    prune_.set([this] { Prune(); });
    loop_.Schedule(&prune_, MonoNanos() + kNanosPerSecond);
    return {};
  }

  ~Impl() {
    loop_.Cancel(&tick_);
    loop_.Cancel(&prune_);
  }
  Result<void> Reload() {
    try {
      return envpool_ ? envpool_->Reload() : Result<void>{};
    } catch (const std::exception& e) {  // the loop's boundary: nothing here may end the server
      return MakeError(ErrorCode::kInternal, fmt::format("registry not applied: {}", e.what()));
    }
  }
  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  // ---- runs: loading and transitions -------------------------------------------------------------------

  Result<void> Resume(const store::RunRow& row) {
    auto run = std::make_unique<Run>();
    run->row = row;
    auto plan = plan::ParsePlan(row.plan_yaml, "plan.yaml");
    if (!plan.ok()) return plan.error();
    run->plan = std::move(plan).value();
    run->names = plan::Names(run->plan);
    run->static_names = run->names.requests.size();
    run->slots = plan::Slots(run->plan);
    auto assignments = store_->Assignments(row.id);
    if (!assignments.ok()) return assignments.error();
    run->assignments = *assignments;
    auto steps = store_->StepInstances(row.id, false);
    if (!steps.ok()) return steps.error();
    run->step_instances = *steps;
    auto samples = store_->Samples(row.id);
    if (!samples.ok()) return samples.error();
    for (const auto& s : *samples) {
      auto snap = stats::DecodeSnapshot(s.payload);
      const auto* a = run->Assignment(s.agent_id);
      if (!snap.ok() || !a) continue;
      run->Ingest(s.agent_id, a->region, s.seq, *snap);
    }
    // Agents get a fresh heartbeat window after a restart: the control plane, not they, was away.
    const int64_t now = MonoNanos();
    for (const auto& a : run->assignments) {
      AgentLive& live = agents_[a.agent_id];
      live.last_seen_mono = now;
      if (a.state != "done" && a.state != "lost") live.run_id = row.id;
    }
    LogInfo("resumed run {} in state {} with {} stored reports", row.id, row.state, samples->size());
    Run& placed = *run;
    runs_[row.id] = std::move(run);
    Place(placed);
    return {};
  }

  // Guarded transition, persisted with its event before anything else sees it.
  bool Transition(Run& run, const std::string& to, const std::string& detail) {
    store::RunRow next = run.row;
    const std::string from = run.row.state;
    next.state = to;
    next.updated_ns = WallNanos();
    if (TerminalState(to)) {
      next.ended_ns = next.updated_ns;
      next.exit_code = ExitCodeFor(to);
    }
    auto moved = store_->TransitionRun(next, from, detail);
    if (!moved.ok()) {
      LogError("run {}: {} -> {} not stored: {}", run.row.id, from, to, moved.error().message);
      return false;
    }
    if (!*moved) return false;
    run.row = next;
    LogInfo("run {}: {} -> {}{}", run.row.id, from, to, detail.empty() ? "" : " (" + detail + ")");
    return true;
  }

  void SaveRun(Run& run) {
    run.row.updated_ns = WallNanos();
    if (auto r = store_->UpdateRun(run.row); !r.ok()) LogError("run {}: {}", run.row.id, r.error().message);
  }

  void SaveAssignment(const store::AssignmentRow& a) {
    if (auto r = store_->PutAssignment(a); !r.ok()) LogError("assignment: {}", r.error().message);
  }

  std::string AgentName(const std::string& id) {
    auto it = agents_.find(id);
    return it == agents_.end() ? id : it->second.row.name + " (" + id + ")";
  }

  // ---- the orchestrator ------------------------------------------------------------------------------

  // The loop's boundary for everything time drives: an exception is logged, the next tick comes.
  void Tick() {
    try {
      TickOnce();
    } catch (const std::exception& e) {
      LogError("tick: {}", e.what());
    }
    loop_.Schedule(&tick_, MonoNanos() + kTickNs);
  }

  void TickOnce() {
    envpool_->Tick();
    const int64_t now_mono = MonoNanos();
    const int64_t now = WallNanos();
    // Runs waiting for their first agent cost nothing here until their ready_timeout (agents are assigned
    // when they ask for work); then Step ends them.
    while (!queued_.empty() && queued_.begin()->first <= now) {
      const std::string id = queued_.begin()->second;
      queued_.erase(queued_.begin());
      runs_.at(id)->queued_deadline = 0;
      stepping_.insert(id);
    }
    std::vector<std::string> finished;
    for (const std::string& id : std::vector<std::string>(stepping_.begin(), stepping_.end())) {
      Run& run = *runs_.at(id);
      Step(run, now, now_mono);
      if (run.Terminal()) finished.push_back(id);
    }
    for (const auto& id : finished) {
      for (auto& w : runs_[id]->start_waiters)
        w.out.Send(http::JsonResponse(409, {{"state", runs_[id]->row.state}}));
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
    // Expire long polls.
    for (auto& [id, live] : agents_) {
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

  // Files a run where the tick finds it: queued while it waits for its first agent (preparing, none
  // assigned), stepped every tick otherwise.
  void Place(Run& run) {
    const std::string& id = run.row.id;
    const bool waiting = run.row.state == "preparing" && run.assignments.empty();
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

  void Step(Run& run, int64_t now, int64_t now_mono) {
    const std::string state = run.row.state;
    if (state == "created") {
      run.row.deadline_ns = now + run.plan.ready_timeout_ns;
      if (Transition(run, "preparing", fmt::format("{} agent slot(s) to fill", run.slots.size())))
        SaveRun(run);
      return;
    }
    if (state == "preparing" || state == "ready" || state == "running" || state == "draining") {
      if (CheckAgents(run, now_mono)) return;
    }
    if (state == "preparing") {
      Assign(run);
      const bool all_ready = run.assignments.size() == run.slots.size() &&
                             std::all_of(run.assignments.begin(), run.assignments.end(),
                                         [](const auto& a) { return a.state == "ready"; });
      if (all_ready) {
        run.row.start_at_ns = now + run.plan.start_buffer_ns;  // set once, persisted with the transition
        run.row.deadline_ns = run.row.start_at_ns;
        if (Transition(run, "ready", fmt::format("all {} agents ready; start_at set", run.slots.size()))) {
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
          } else if (a->state != "ready") {
            missing +=
                fmt::format("{}agent {} not ready", missing.empty() ? "" : "; ", AgentName(a->agent_id));
          }
        }
        Finish(run, "errored",
               fmt::format("ready_timeout ({}) elapsed: {}", FormatDuration(run.plan.ready_timeout_ns),
                           missing));
      }
      return;
    }
    if (state == "ready") {
      if (now >= run.row.start_at_ns) Transition(run, "running", "the common start instant passed");
      return;
    }
    if (state == "running") {
      CheckAbortThresholds(run);
      if (run.row.state != "running") return;
      // Iteration-based executors end before their max_duration: when every agent is done, so is the run.
      bool all_done = !run.assignments.empty();
      for (const auto& a : run.assignments) {
        if (a.state != "done" && a.state != "lost") all_done = false;
      }
      if (now >= run.EndAtNs() || all_done) {
        run.row.deadline_ns = now + run.plan.LongestGracefulStop() + run.plan.drain_grace_ns;
        if (Transition(run, "draining",
                       all_done && now < run.EndAtNs() ? "every agent finished its work"
                                                       : "the scheduled duration elapsed")) {
          SaveRun(run);
        }
      }
      return;
    }
    if (state == "draining") {
      bool all_done = true;
      for (const auto& a : run.assignments) {
        if (a.state == "lost") continue;
        auto it = run.progress.find(a.agent_id);
        const int64_t acked = it == run.progress.end() ? -1 : it->second.acked;
        if (a.state != "done" || acked < a.last_seq) all_done = false;
      }
      if (all_done) {
        Clean(run, "");
      } else if (now >= run.row.deadline_ns) {
        std::string late;
        for (const auto& a : run.assignments) {
          if (a.state != "done" && a.state != "lost")
            late += (late.empty() ? "" : ", ") + AgentName(a.agent_id);
        }
        Clean(run, fmt::format("agents did not finish within graceful stop + drain_grace: {}", late));
      }
      return;
    }
    if (state == "cleaning") Clean(run, run.row.reason);  // resumed mid-cleaning
  }

  // A lost agent fails the run (default) or is dropped from it. Returns true when the run ended.
  bool CheckAgents(Run& run, int64_t now_mono) {
    for (auto& a : run.assignments) {
      if (a.state == "done" || a.state == "lost") continue;
      const AgentLive& live = agents_[a.agent_id];
      if (now_mono - live.last_seen_mono < run.plan.heartbeat_timeout_ns) continue;
      const std::string why =
          fmt::format("agent {} in region {} lost: no contact for {} (heartbeat_timeout)",
                      AgentName(a.agent_id), a.region, FormatDuration(now_mono - live.last_seen_mono));
      if (run.plan.on_agent_loss == plan::AgentLoss::kContinue) {
        a.state = "lost";
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
      Finish(run, "errored", why);
      return true;
    }
    return false;
  }

  void Assign(Run& run) {
    AssignSlots(run);
    Place(run);
  }

  void AssignSlots(Run& run) {
    while (run.assignments.size() < run.slots.size()) {
      const plan::AgentSlot& slot = run.slots[run.assignments.size()];
      AgentLive* pick = nullptr;
      for (auto& [id, live] : agents_) {
        if (live.row.region != slot.region || !live.run_id.empty()) continue;
        if (MonoNanos() - live.last_seen_mono > run.plan.heartbeat_timeout_ns) continue;
        if (!pick || live.row.registered_ns < pick->row.registered_ns) pick = &live;
      }
      if (!pick) return;
      store::AssignmentRow a;
      a.run_id = run.row.id;
      a.agent_id = pick->row.id;
      a.region = slot.region;
      a.slot = slot.index;
      a.state = "assigned";
      SaveAssignment(a);
      run.assignments.push_back(a);
      pick->run_id = run.row.id;
      LogInfo("run {}: region {} slot {} -> agent {}", run.row.id, slot.region, slot.index,
              AgentName(a.agent_id));
      if (pick->poll.alive()) pick->poll.Send(http::JsonResponse(200, WorkJson(run, a)));
    }
  }

  void CheckAbortThresholds(Run& run) {
    // Once per newly completed second, and only when some threshold asks for it.
    int64_t complete = INT64_MAX;
    for (const auto& a : run.assignments) {
      if (a.state == "lost") continue;
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
      run.row.deadline_ns = WallNanos() + run.plan.LongestGracefulStop() + run.plan.drain_grace_ns;
      if (Transition(run, "draining", run.row.reason)) SaveRun(run);
      return;
    }
  }

  // cleaning: summary, thresholds, artefacts, then the final state.
  void Clean(Run& run, const std::string& problem) {
    if (run.row.state != "cleaning") {
      if (!problem.empty()) run.row.reason = problem;
      if (!Transition(run, "cleaning",
                      problem.empty() ? "every agent finished and was acknowledged" : problem)) {
        return;
      }
    }
    const bool aborted = run.row.reason.starts_with("aborted");
    const bool threshold_abort = run.row.reason.find("(abort_on_fail)") != std::string::npos;
    const bool incomplete = !problem.empty() && !aborted && !threshold_abort;
    bool thresholds_ok = true;
    for (const auto& o : EvaluateThresholds(run, false)) thresholds_ok &= o.ok;
    // A step whose every instance failed (a command not found, a script that exits 1) fails the run unless
    // the plan allows it; its last log lines go into the summary.
    const std::vector<std::string> failed_steps = FailedSteps(run);
    KeepFailedLogTails(run);
    std::string final_state = "passed";
    if (aborted) {
      final_state = "aborted";
    } else if (incomplete) {
      final_state = "errored";
    } else if (!thresholds_ok || threshold_abort || !failed_steps.empty()) {
      final_state = "failed";
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
  void KeepFailedLogTails(Run& run) {
    run.failed_log_tails.clear();
    bool any = false;
    for (const auto& row : run.step_instances)
      any |= InstanceFailed(json::parse(row.result_json, nullptr, false));
    if (!any) return;
    auto rows = store_->StepInstances(run.row.id, true);
    if (!rows.ok()) return;
    for (const auto& row : *rows) {
      if (run.failed_log_tails.size() >= 20) break;
      if (!InstanceFailed(json::parse(row.result_json, nullptr, false))) continue;
      run.failed_log_tails[fmt::format("{}#{}", row.step, row.instance)] = LastLines(row.log, 10);
    }
  }

  // The summary and the artefacts, rendered with the final state; kept in the run's row.
  void Summarise(Run& run, const std::string& final_state) {
    auto agents = store_->ListAgents();
    const std::string state = run.row.state;
    run.row.state = final_state;
    Summary summary = BuildSummary(run, agents.ok() ? *agents : std::vector<store::AgentRow>{});
    run.row.state = state;
    summary.json["text"] = summary.text;
    summary.json["metrics_csv"] = summary.csv;
    run.row.summary_json = JsonText(summary.json);
    WriteArtefacts(run, summary);
  }

  void Finish(Run& run, const std::string& state, const std::string& reason) {
    run.row.reason = reason;
    run.row.deadline_ns = 0;
    Summarise(run, state);
    Transition(run, state, reason);
    for (auto& a : run.assignments) agents_[a.agent_id].run_id.clear();
    Place(run);  // stepped once more: the tick removes ended runs
  }

  std::string DataDir() const {
    if (!config_.data_dir.empty()) return config_.data_dir;
    std::string path = config_.store.starts_with("sqlite:") ? config_.store.substr(7) : config_.store;
    const auto parent = std::filesystem::path(path).parent_path();
    return (parent.empty() ? std::filesystem::path(".") : parent).string();
  }

  void WriteArtefacts(const Run& run, const Summary& summary) {
    const auto dir = std::filesystem::path(DataDir()) / "runs" / run.row.id;
    if (auto d = MakePrivateDirectories(dir.string()); !d.ok()) {
      LogWarn("run {}: cannot write artefacts: {}", run.row.id, d.error().message);
      return;
    }
    ordered_json clean = summary.json;
    clean.erase("text");
    clean.erase("metrics_csv");
    const int64_t now = WallNanos();
    const std::pair<const char*, std::string> files[] = {
        {"plan.yaml", run.row.plan_yaml},
        {"summary.json", JsonText(clean, 2) + "\n"},
        {"metrics.csv", summary.csv},
        {"RUN.txt", fmt::format("{}.{:09}\n", run.row.start_at_ns / kNanosPerSecond,
                                run.row.start_at_ns % kNanosPerSecond)},
        {"services.json", JsonText(ServicesJson(run), 2) + "\n"},
        {"FINISHED.txt", fmt::format("{}.{:09}\n", now / kNanosPerSecond, now % kNanosPerSecond)}};
    for (const auto& [name, content] : files) {
      if (auto w = WritePrivateFile((dir / name).string(), content); !w.ok()) {
        LogWarn("run {}: {}", run.row.id, w.error().message);
      }
    }
  }

  // Retention: ended runs (rows, reports, folders), ended allocations and audit rows older than configured,
  // in batches; a full batch means more is due soon.
  void Prune() {
    const int64_t now = WallNanos();
    const auto cutoff = [now](int64_t keep) { return keep > 0 ? now - keep : 0; };
    store::PruneRequest rq;
    rq.runs_before_ns = cutoff(config_.retention.runs_ns);
    rq.allocations_before_ns = cutoff(config_.retention.allocations_ns);
    rq.audit_before_ns = cutoff(config_.retention.audit_ns);
    bool more = false;
    auto pruned = store_->Prune(rq);
    if (!pruned.ok()) {
      LogWarn("retention: {}", pruned.error().message);
    } else {
      for (const auto& id : pruned->runs) {
        std::error_code ec;
        std::filesystem::remove_all(std::filesystem::path(DataDir()) / "runs" / id, ec);
      }
      if (!pruned->runs.empty() || pruned->allocations > 0 || pruned->audit > 0) {
        LogInfo("retention: removed {} run(s), {} allocation(s), {} audit row(s)", pruned->runs.size(),
                pruned->allocations, pruned->audit);
      }
      more = pruned->runs.size() >= rq.batch || pruned->allocations >= rq.batch || pruned->audit >= rq.batch;
    }
    // Every minute, or every half the shortest retention when that is shorter (at least every second).
    int64_t every = kPruneEveryNs;
    for (int64_t keep :
         {config_.retention.runs_ns, config_.retention.allocations_ns, config_.retention.audit_ns}) {
      if (keep > 0) every = std::min(every, std::max(kNanosPerSecond, keep / 2));
    }
    loop_.Schedule(&prune_, MonoNanos() + (more ? kNanosPerSecond : every));
  }

  ordered_json ServicesJson(const Run& run) {
    ordered_json agents = ordered_json::array();
    for (const auto& a : run.assignments) {
      const auto& live = agents_[a.agent_id];
      ordered_json scenarios = ordered_json::array();
      for (const auto& s : plan::SharesFor(run.plan, plan::AgentSlot{a.region, a.slot})) {
        scenarios.push_back(
            {{"name", run.plan.scenarios[s.scenario].name},
             {"executor", s.executor.Describe()},
             {"stop_after_s",
              static_cast<double>(s.executor.start_time_ns + s.executor.ScheduledDuration()) / 1e9}});
      }
      agents.push_back({{"id", a.agent_id},
                        {"name", live.row.name},
                        {"region", a.region},
                        {"slot", a.slot},
                        {"state", a.state},
                        {"run_delay", 0},
                        {"scenarios", scenarios}});
    }
    ordered_json steps = ordered_json::array();
    for (const auto& s : run.plan.steps) {
      ordered_json instances = ordered_json::array();
      for (const auto& row : run.step_instances) {
        if (row.step != s.name) continue;
        const json r = json::parse(row.result_json, nullptr, false);
        if (!r.is_object()) continue;
        const auto seconds = [&](const char* key) {
          const int64_t ns = r.value(key, int64_t{0});
          return ns ? ordered_json(static_cast<double>(ns) / 1e9) : ordered_json(nullptr);
        };
        instances.push_back({{"instance", row.instance},
                             {"agent", row.agent_id},
                             {"state", r.value("state", std::string())},
                             {"exit_code", r.value("exit_code", -1)},
                             {"signal", r.value("signal", 0)},
                             {"restarts", r.value("restarts", 0)},
                             {"intended_at", seconds("intended_ns")},
                             {"started_at", seconds("started_ns")},
                             {"ended_at", seconds("ended_ns")}});
      }
      steps.push_back({{"name", s.name},
                       {"region", s.region},
                       {"instances", s.instances},
                       {"run_delay", static_cast<double>(s.run_delay_ns) / 1e9},
                       {"run_max_time", static_cast<double>(s.run_max_time_ns) / 1e9},
                       {"stop_grace", static_cast<double>(s.stop_grace_ns) / 1e9},
                       {"restart", s.restart_on_failure ? "on-failure" : "never"},
                       {"allow_failure", s.allow_failure},
                       {"instance_results", instances}});
    }
    return {{"run", run.row.id},
            {"start_at", static_cast<double>(run.row.start_at_ns) / 1e9},
            {"agents", agents},
            {"steps", steps}};
  }

  ordered_json StartJson(const Run& run) {
    ordered_json j = {{"run", run.row.id}, {"state", run.row.state}};
    if (run.row.start_at_ns) {
      j["start_at_ns"] = run.row.start_at_ns;
      j["start_at"] = fmt::format("{}.{:09}", run.row.start_at_ns / kNanosPerSecond,
                                  run.row.start_at_ns % kNanosPerSecond);
    }
    j["server_ns"] = WallNanos();
    return j;
  }

  ordered_json WorkJson(const Run& run, const store::AssignmentRow& a) {
    return {{"run", run.row.id},
            {"region", a.region},
            {"slot", a.slot},
            {"plan", run.row.plan_yaml},
            {"start_at_ns", run.row.start_at_ns},
            {"long_poll_ms", config_.long_poll_ns / 1'000'000}};
  }

  // ---- the API -------------------------------------------------------------------------------------

  struct Principal {
    std::string name;
    std::vector<std::string> scopes;
  };

  // The token the request carries, if it is one of the configured ones: its SHA-256 compared with every
  // configured one in constant time (the store keeps keyed hashes; memory has what server.yaml gave).
  const TokenSpec* Authenticate(const http::ServerRequest& req) {
    const std::string auth = req.Header("authorization");
    if (auth.size() < 8 || !std::equal(auth.begin(), auth.begin() + 7, "Bearer ", [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        })) {
      return nullptr;
    }
    const std::string hash = HashToken(auth.substr(7));
    const TokenSpec* found = nullptr;
    for (const auto& t : config_.tokens) {
      if (t.hash_hex.size() == hash.size() &&
          CRYPTO_memcmp(t.hash_hex.data(), hash.data(), hash.size()) == 0) {
        found = &t;
      }
    }
    return found;
  }

  static bool HasScope(const TokenSpec& t, const std::string& scope) {
    return std::find(t.scopes.begin(), t.scopes.end(), scope) != t.scopes.end();
  }

 public:
  // Every route: a valid token (401 before the route is even looked at, so that routes cannot be
  // enumerated), within its rate (releasing an allocation is never limited: it only frees), and the route's
  // body limit, all before any of the body is read.
  std::optional<http::ServerResponse> CheckHead(const http::ServerRequest& req, size_t* max_body) {
    const TokenSpec* t = Authenticate(req);
    if (!t) {
      return http::ErrorResponse(ApiError{
          401, "unauthorized",
          req.Header("authorization").empty() ? "a bearer token is required" : "the token is not valid", ""});
    }
    std::vector<std::string> p;
    try {
      p = http::SplitPath(req.path);
    } catch (const ApiError& e) {
      return http::ErrorResponse(e);
    }
    const bool release = req.method == "DELETE" && p.size() == 3 && p[0] == "v1" && p[1] == "allocations";
    if (!release) {
      Bucket& b = buckets_[t->name];
      const int64_t now = MonoNanos();
      const double burst = 2 * config_.requests_per_second;
      if (b.last == 0) b.tokens = burst;
      b.tokens =
          std::min(burst, b.tokens + static_cast<double>(now - b.last) / 1e9 * config_.requests_per_second);
      b.last = now;
      if (b.tokens < 1) {
        return http::ErrorResponse(
            ApiError{429, "rate_limited",
                     fmt::format("too many requests for this token (requests_per_second: {})",
                                 config_.requests_per_second),
                     ""});
      }
      b.tokens -= 1;
    }
    const bool large =
        LargeJsonRoute(req.method, p) ||
        (p.size() == 7 && p[0] == "v1" && p[1] == "runs" && p[3] == "agents" && p[5] == "reports") ||
        (p.size() == 3 && p[0] == "v1" && p[1] == "environments" && p[2] == "sync");
    *max_body = large ? config_.max_body_bytes : kSmallBody;
    return std::nullopt;
  }

  // The routes whose JSON bodies may be large: a plan (scripts bundled), an agent's done (step logs).
  static bool LargeJsonRoute(const std::string& method, const std::vector<std::string>& p) {
    if (method != "POST" || p.size() < 2 || p[0] != "v1" || p[1] != "runs") return false;
    return p.size() == 2 || (p.size() == 6 && p[3] == "agents" && p[5] == "done");
  }

  // The request's token holding one of `scopes` (any valid token when empty). The head check let only valid
  // tokens through; this names the scope that is missing.
  const TokenSpec& RequireAny(const http::ServerRequest& req, const std::vector<std::string>& scopes) {
    const TokenSpec* t = Authenticate(req);
    if (!t) throw ApiError{401, "unauthorized", "the token is not valid", ""};
    if (!scopes.empty() &&
        std::none_of(scopes.begin(), scopes.end(), [&](const std::string& s) { return HasScope(*t, s); })) {
      std::string list;
      for (const auto& s : scopes) list += (list.empty() ? "" : " or ") + s;
      throw ApiError{403, "forbidden", fmt::format("the token '{}' lacks the scope {}", t->name, list), ""};
    }
    return *t;
  }

  const TokenSpec& Require(const http::ServerRequest& req, const std::string& scope) {
    return RequireAny(req, scope.empty() ? std::vector<std::string>{} : std::vector<std::string>{scope});
  }

  void Handle(http::ServerRequest& req, http::Responder out) {
    // A large JSON body is parsed on the work thread: the loop keeps answering heartbeats and polls.
    if (req.body.size() > kParseInlineBytes && !req.parsed &&
        LargeJsonRoute(req.method, http::SplitPath(req.path))) {
      auto body = std::make_shared<std::string>(std::move(req.body));
      auto parsed = std::make_shared<Result<json>>(json());
      auto problem = std::make_shared<http::JsonProblem>();
      work_->Run([body, parsed,
                  problem] { *parsed = http::ParseStrictJson(*body, http::kMaxJsonDepth, problem.get()); },
                 [this, req = std::move(req), body, parsed, problem, out]() mutable {
                   req.body = std::move(*body);
                   if (!parsed->ok()) {
                     return out.Send(ErrorResponse(
                         ApiError{400, "invalid_body", "the body: " + problem->message, problem->field}));
                   }
                   req.parsed = std::make_shared<const json>(std::move(*parsed).value());
                   Handle(req, out);
                 });
      return;
    }
    try {
      Route(req, out);
    } catch (const ApiError& e) {
      out.Send(ErrorResponse(e));
    } catch (const std::exception& e) {
      LogError("{} {}: {}", req.method, req.path, e.what());
      out.Send(ErrorResponse(ApiError{500, "internal", "internal error", ""}));
    }
  }

 private:
  Run& FindRun(const std::string& id) {
    auto it = runs_.find(id);
    if (it == runs_.end()) throw ApiError{404, "not_found", fmt::format("no active run '{}'", id), ""};
    return *it->second;
  }

  store::RunRow LoadRow(const std::string& id) {
    auto it = runs_.find(id);
    if (it != runs_.end()) return it->second->row;
    auto row = store_->GetRun(id);
    if (!row.ok()) throw http::StoreUnavailable(row.error().message);
    if (!row->has_value()) throw ApiError{404, "not_found", fmt::format("no run '{}'", id), ""};
    return **row;
  }

  void MethodCheck(const http::ServerRequest& req, const char* allowed) {
    if (req.method != allowed) {
      throw ApiError{405, "method_not_allowed", fmt::format("use {} for {}", allowed, req.path), ""};
    }
  }

  void Route(http::ServerRequest& req, http::Responder& out) {
    const auto p = http::SplitPath(req.path);
    if (p.size() == 1 && p[0] == "healthz") {
      Require(req, "");
      out.Send(
          http::JsonResponse(200, {{"status", "ok"}, {"version", kVersion}, {"active_runs", runs_.size()}}));
      return;
    }
    if (p.size() == 1 && p[0] == "metrics") {  // Prometheus: any valid token (a scrape config sends one)
      Require(req, "");
      MethodCheck(req, "GET");
      http::ServerResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = envpool_->Metrics();
      r.body += fmt::format(
          "# HELP meridian_runs_active Runs the orchestrator is driving.\n# TYPE meridian_runs_active gauge\n"
          "meridian_runs_active {}\n",
          runs_.size());
      out.Send(std::move(r));
      return;
    }
    if (p.empty() || p[0] != "v1") throw ApiError{404, "not_found", "no such route: " + req.path, ""};
    if (p.size() == 2 && p[1] == "time") {
      Require(req, "agent");
      out.Send(http::JsonResponse(200, {{"server_ns", req.received_wall_ns}, {"sent_ns", WallNanos()}}));
      return;
    }
    if (envpool::EnvPool::Owns(p)) {
      const TokenSpec& t = RequireAny(req, {"env:allocate", "env:admin"});
      return envpool_->Handle(req, p, envpool::Caller{t.name, HasScope(t, "env:admin")}, out);
    }
    if (p.size() >= 2 && p[1] == "agents") return AgentRoutes(req, p, out);
    if (p.size() >= 2 && p[1] == "runs") return RunRoutes(req, p, out);
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  void RunRoutes(http::ServerRequest& req, const std::vector<std::string>& p, http::Responder& out) {
    if (p.size() == 2) {
      if (req.method == "POST") return CreateRun(req, out);
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      const auto limit = static_cast<size_t>(http::QueryInt(req, "limit", 50, 1, 1000));
      auto rows = store_->ListRuns(limit, req.Query("active") == "true");
      if (!rows.ok()) throw http::StoreUnavailable(rows.error().message);
      ordered_json list = ordered_json::array();
      for (const auto& r : *rows) list.push_back(RunRowJson(runs_.count(r.id) ? runs_[r.id]->row : r));
      out.Send(http::JsonResponse(200, {{"runs", list}}));
      return;
    }
    const std::string& id = p[2];
    if (p.size() == 3) {
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      auto it = runs_.find(id);
      ordered_json j;
      if (it != runs_.end()) {
        j = RunJson(*it->second, WallNanos());
      } else {
        j = RunRowJson(LoadRow(id));
      }
      auto events = store_->Events(id);
      ordered_json ev = ordered_json::array();
      if (events.ok()) {
        for (const auto& e : *events) {
          ev.push_back(
              {{"at_ns", e.at_ns}, {"from", e.from_state}, {"to", e.to_state}, {"detail", e.detail}});
        }
      }
      j["events"] = ev;
      out.Send(http::JsonResponse(200, j));
      return;
    }
    const std::string& what = p[3];
    if (p.size() == 4 && what == "abort") {
      MethodCheck(req, "POST");
      const TokenSpec& t = Require(req, "runs:write");
      const store::RunRow row = LoadRow(id);
      if (TerminalState(row.state)) {
        out.Send(http::JsonResponse(
            409, {{"error", {{"code", "finished"}, {"message", "the run already ended: " + row.state}}}}));
        return;
      }
      Run& run = FindRun(id);
      run.stop = true;
      const std::string why = fmt::format("aborted by {}", t.name);
      if (run.row.state == "running" || run.row.state == "draining") {
        run.row.reason = why;
        if (run.row.state == "running") {
          run.row.deadline_ns = WallNanos() + run.plan.LongestGracefulStop() + run.plan.drain_grace_ns;
          if (Transition(run, "draining", why)) SaveRun(run);
        } else {
          SaveRun(run);
        }
      } else {
        Finish(run, "aborted", why);
      }
      out.Send(http::JsonResponse(202, RunRowJson(run.row)));
      return;
    }
    if (p.size() == 4 && what == "start") {
      MethodCheck(req, "GET");
      const TokenSpec* t = Authenticate(req);
      Require(req, t && std::find(t->scopes.begin(), t->scopes.end(), "agent") != t->scopes.end()
                       ? "agent"
                       : "runs:read");
      const store::RunRow row = LoadRow(id);
      auto it = runs_.find(id);
      if (row.start_at_ns) {
        out.Send(http::JsonResponse(
            200, it != runs_.end()
                     ? StartJson(*it->second)
                     : ordered_json{{"run", id}, {"state", row.state}, {"start_at_ns", row.start_at_ns}}));
        return;
      }
      if (TerminalState(row.state)) {
        out.Send(http::JsonResponse(409, {{"run", id}, {"state", row.state}, {"reason", row.reason}}));
        return;
      }
      const std::string wait = req.Query("wait");
      auto d = wait.empty() ? Result<int64_t>(0) : ParseDuration(wait);
      if (!d.ok()) throw ApiError{400, "invalid_query", "wait: " + d.error().message, "wait"};
      if (*d <= 0 || it == runs_.end()) {
        out.Send(http::JsonResponse(
            404, it != runs_.end()
                     ? StartJson(*it->second)
                     : ordered_json{{"run", id}, {"state", row.state}, {"server_ns", WallNanos()}}));
        return;
      }
      it->second->start_waiters.push_back({out, MonoNanos() + std::min(*d, config_.long_poll_ns)});
      start_waiting_.insert(id);
      return;
    }
    if (p.size() == 4 && what == "steps") {
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      (void)LoadRow(id);
      auto rows = store_->StepInstances(id, false);
      if (!rows.ok()) throw http::StoreUnavailable(rows.error().message);
      ordered_json list = ordered_json::array();
      for (const auto& r : *rows) list.push_back(ordered_json::parse(r.result_json, nullptr, false));
      out.Send(http::JsonResponse(200, {{"run", id}, {"steps", list}}));
      return;
    }
    if (p.size() == 6 && what == "steps" && p[5] == "log") {
      // GET /v1/runs/{id}/steps/{step}/log[?instance=N]: text; every instance, each under a header, without
      // N.
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      const int64_t instance = http::QueryInt(req, "instance", -1, 0, UINT32_MAX);
      const store::RunRow row = LoadRow(id);
      const std::string& step = p[4];
      auto rows = store_->StepInstances(id, true);
      if (!rows.ok()) throw http::StoreUnavailable(rows.error().message);
      std::string text;
      bool step_known = false, found = false;
      for (const auto& r : *rows) {
        if (r.step != step) continue;
        step_known = true;
        if (instance >= 0 && r.instance != static_cast<uint32_t>(instance)) continue;
        found = true;
        if (instance < 0) text += fmt::format("==> {}#{} ({}) <==\n", r.step, r.instance, r.agent_id);
        text += r.log;
        if (instance < 0 && !r.log.empty() && r.log.back() != '\n') text += "\n";
      }
      if (!found) {
        auto plan = plan::ParsePlan(row.plan_yaml, "plan.yaml");
        const bool in_plan = plan.ok() && std::any_of(plan->steps.begin(), plan->steps.end(),
                                                      [&](const auto& s) { return s.name == step; });
        throw ApiError{
            404, "not_found",
            !in_plan ? fmt::format("the run has no step '{}'", step)
            : step_known
                ? fmt::format("step '{}' has no instance {}", step, instance)
                : fmt::format("step '{}' has not reported yet (logs arrive when its agent is done)", step),
            ""};
      }
      http::ServerResponse r;
      r.status = 200;
      r.content_type = "text/plain; charset=utf-8";
      r.body = std::move(text);
      out.Send(std::move(r));
      return;
    }
    if (p.size() == 4 && (what == "summary" || what == "report")) {
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      const store::RunRow row = LoadRow(id);
      std::string format = req.Query("format");
      if (format.empty()) format = "json";
      json summary;
      if (!row.summary_json.empty()) {
        summary = json::parse(row.summary_json, nullptr, false);
      } else {
        auto it = runs_.find(id);
        if (it == runs_.end()) throw ApiError{404, "no_summary", "the run has no summary", ""};
        auto agents = store_->ListAgents();
        Summary s = BuildSummary(*it->second, agents.ok() ? *agents : std::vector<store::AgentRow>{});
        summary = json::parse(JsonText(s.json));
        summary["text"] = s.text;
        summary["metrics_csv"] = s.csv;
        summary["partial"] = true;
      }
      http::ServerResponse r;
      if (format == "json") {
        json copy = summary;
        copy.erase("text");
        copy.erase("metrics_csv");
        r.body = JsonText(copy, 2);
      } else if (format == "text") {
        r.content_type = "text/plain; charset=utf-8";
        r.body = summary.value("text", "");
      } else if (format == "csv") {
        r.content_type = "text/csv";
        r.body = summary.value("metrics_csv", "");
      } else if (format == "junit") {
        r.content_type = "application/xml";
        r.body = JunitXml(row, summary);
      } else {
        throw ApiError{400, "invalid_query", "format: allowed: json, text, csv, junit", "format"};
      }
      out.Send(r);
      return;
    }
    if (p.size() == 4 && what == "metrics") {
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      auto it = runs_.find(id);
      ordered_json series = ordered_json::object();
      if (it != runs_.end()) {
        for (const auto& [region, per_second] : it->second->region_seconds) {
          ordered_json points = ordered_json::array();
          for (const auto& [s, snap] : per_second) {
            const auto pt = stats::MakeTimelinePoint(snap);
            points.push_back({{"t", s},
                              {"requests", pt.requests},
                              {"failed", pt.failures},
                              {"p50_ms", pt.p50_ns / 1e6},
                              {"p95_ms", pt.p95_ns / 1e6},
                              {"p99_ms", pt.p99_ns / 1e6},
                              {"vus", pt.vus_active}});
          }
          series[region] = points;
        }
        out.Send(http::JsonResponse(200, {{"run", id}, {"regions", series}}));
        return;
      }
      const store::RunRow row = LoadRow(id);
      json summary = json::parse(row.summary_json.empty() ? "{}" : row.summary_json, nullptr, false);
      out.Send(http::JsonResponse(200, {{"run", id}, {"csv", summary.value("metrics_csv", "")}}));
      return;
    }
    if (p.size() == 5 && what == "artefacts") {
      MethodCheck(req, "GET");
      Require(req, "runs:read");
      const store::RunRow row = LoadRow(id);
      static const char* kNames[] = {"plan.yaml",    "services.json", "RUN.txt",
                                     "summary.json", "metrics.csv",   "FINISHED.txt"};
      if (std::find_if(std::begin(kNames), std::end(kNames), [&](const char* n) { return p[4] == n; }) ==
          std::end(kNames)) {
        throw ApiError{404, "not_found",
                       "artefacts: plan.yaml services.json RUN.txt summary.json metrics.csv FINISHED.txt",
                       ""};
      }
      std::ifstream in(std::filesystem::path(DataDir()) / "runs" / row.id / p[4], std::ios::binary);
      if (!in) throw ApiError{404, "not_found", fmt::format("{} is written when the run ends", p[4]), ""};
      std::stringstream ss;
      ss << in.rdbuf();
      http::ServerResponse r;
      r.content_type = p[4].ends_with(".json") ? "application/json" : "text/plain; charset=utf-8";
      r.body = ss.str();
      out.Send(r);
      return;
    }
    if (p.size() >= 5 && what == "agents") return AgentRunRoutes(req, p, out);
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  std::string JunitXml(const store::RunRow& row, const json& summary) {
    auto esc = [](const std::string& s) {
      std::string o;
      for (char c : s) {
        switch (c) {
          case '<':
            o += "&lt;";
            break;
          case '>':
            o += "&gt;";
            break;
          case '&':
            o += "&amp;";
            break;
          case '"':
            o += "&quot;";
            break;
          default:
            o.push_back(c);
        }
      }
      return o;
    };
    const json thresholds = summary.value("thresholds", json::array());
    size_t failures = 0;
    for (const auto& t : thresholds) failures += !t.value("ok", true);
    const bool run_ok = row.state == "passed" || row.state == "failed";
    std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    x += fmt::format("<testsuites name=\"meridian\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
                     thresholds.size() + 1, failures, run_ok ? 0 : 1);
    x += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n", esc(row.name),
                     thresholds.size() + 1, failures, run_ok ? 0 : 1);
    x += fmt::format("    <testcase classname=\"{}\" name=\"run {}\">", esc(row.name), esc(row.id));
    if (!run_ok) x += fmt::format("<error message=\"{}\">{}</error>", esc(row.state), esc(row.reason));
    x += "</testcase>\n";
    for (const auto& t : thresholds) {
      const std::string name = t.value("metric", "") + " " + t.value("threshold", "");
      x += fmt::format("    <testcase classname=\"{}.thresholds\" name=\"{}\">", esc(row.name), esc(name));
      if (!t.value("ok", true)) {
        x += fmt::format("<failure message=\"measured {}\"/>", esc(t.value("measured_text", "")));
      }
      x += "</testcase>\n";
    }
    x += "  </testsuite>\n</testsuites>\n";
    return x;
  }

  // 429 when the token drives as many runs as it may.
  void CheckRunCap(const std::string& owner) {
    const auto active = static_cast<size_t>(std::count_if(
        runs_.begin(), runs_.end(), [&](const auto& r) { return r.second->row.owner == owner; }));
    if (active >= config_.max_active_runs_per_token) {
      throw ApiError{
          429,
          "limit_reached",
          fmt::format("the token '{}' has {} active runs (max_active_runs_per_token: {}); wait for "
                      "one to end or abort one",
                      owner, active, config_.max_active_runs_per_token),
          "",
          {{"Retry-After", "5"}}};
    }
  }

  // The plan is parsed and checked on the work thread; the run is created back on the loop.
  void CreateRun(http::ServerRequest& req, http::Responder& out) {
    const TokenSpec& t = Require(req, "runs:write");
    const json body = ParseBody(req);
    const std::string text = Field<std::string>(body, "plan", "", true);
    const std::string file = Field<std::string>(body, "file", "plan.yaml");
    loadgen::VarMap vars;
    if (body.contains("vars")) {
      if (!body["vars"].is_object()) throw ApiError{400, "invalid_field", "'vars' must be an object", "vars"};
      for (const auto& [k, v] : body["vars"].items()) {
        if (!v.is_string()) throw ApiError{400, "invalid_field", "vars values must be strings", "vars." + k};
        vars[k] = v.get<std::string>();
      }
    }
    CheckRunCap(t.name);
    struct Parsed {
      std::optional<Result<plan::Plan>> plan;
      Result<void> runnable;
      std::string yaml;
    };
    auto parsed = std::make_shared<Parsed>();
    work_->Run(
        [parsed, text, file, vars] {
          parsed->plan = plan::ParsePlan(text, file, vars);
          if (!parsed->plan->ok()) return;
          parsed->runnable = plan::CheckRunnable(**parsed->plan);
          if (parsed->runnable.ok()) parsed->yaml = plan::ToYaml(**parsed->plan);
        },
        [this, parsed, owner = t.name, out]() mutable {
          try {
            if (!parsed->plan->ok())
              throw ApiError{400, "invalid_plan", parsed->plan->error().message, "plan"};
            if (!parsed->runnable.ok())
              throw ApiError{400, "not_runnable", parsed->runnable.error().message, "plan"};
            StartRun(std::move(*parsed->plan).value(), std::move(parsed->yaml), owner, out);
          } catch (const ApiError& e) {
            out.Send(ErrorResponse(e));
          }
        });
  }

  void StartRun(plan::Plan plan, std::string yaml, const std::string& owner, http::Responder& out) {
    if (plan.ready_timeout_ns > config_.max_ready_timeout_ns) {
      throw ApiError{
          400, "invalid_plan",
          fmt::format("ready_timeout {} is longer than this server allows (max_ready_timeout {})",
                      FormatDuration(plan.ready_timeout_ns), FormatDuration(config_.max_ready_timeout_ns)),
          "ready_timeout"};
    }
    CheckRunCap(owner);  // again: runs may have started while the plan was parsed
    auto run = std::make_unique<Run>();
    run->row.id = NewId(IdKind::kRun);
    run->row.name = plan.name;
    run->row.state = "created";
    run->row.plan_yaml = std::move(yaml);
    run->row.owner = owner;
    run->row.created_ns = run->row.updated_ns = WallNanos();
    run->plan = std::move(plan);
    run->names = plan::Names(run->plan);
    run->static_names = run->names.requests.size();
    run->slots = plan::Slots(run->plan);
    if (auto r = store_->CreateRun(run->row); !r.ok()) throw http::StoreUnavailable(r.error().message);
    const std::string id = run->row.id;
    runs_[id] = std::move(run);
    stepping_.insert(id);
    Step(*runs_[id], WallNanos(), MonoNanos());  // created -> preparing, and assign what can be assigned
    Assign(*runs_[id]);
    Place(*runs_[id]);
    out.Send(http::JsonResponse(201, RunRowJson(runs_[id]->row)));
  }

  // ---- agents ----------------------------------------------------------------------------------------

  // Agents without a run and not seen for forget_agents_after (every agent restart registers a new id), or,
  // at max_agents, every agent without a run that missed its heartbeats: removed from memory and the store.
  void ForgetIdleAgents(bool all_idle) {
    const int64_t now = MonoNanos();
    const int64_t after = all_idle ? 10 * kNanosPerSecond : config_.forget_agents_after_ns;
    for (auto it = agents_.begin(); it != agents_.end();) {
      const AgentLive& a = it->second;
      const int64_t seen = a.last_seen_mono != 0 ? a.last_seen_mono : started_mono_;
      if (a.run_id.empty() && !a.poll.alive() && now - seen > after) {
        if (auto r = store_->DeleteAgent(it->first); !r.ok()) {
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

  // A registered agent, proven by the secret it was issued at its first registration (a token with the agent
  // scope is not enough to act as another agent).
  AgentLive& KnownAgent(const std::string& id, const http::ServerRequest& req) {
    auto it = agents_.find(id);
    if (it == agents_.end())
      throw ApiError{404, "unknown_agent", fmt::format("no agent '{}': register again", id), ""};
    if (!AgentSecretMatches(it->second.row, req)) {
      throw ApiError{
          403, "agent_secret",
          fmt::format("the request does not carry agent {}'s secret (the {} header it was given when "
                      "it registered)",
                      id, "Meridian-Agent-Secret"),
          ""};
    }
    it->second.last_seen_mono = MonoNanos();
    return it->second;
  }

  bool AgentSecretMatches(const store::AgentRow& row, const http::ServerRequest& req) {
    const std::string secret = req.Header(kAgentSecretHeader);
    if (row.secret_hash.empty() || secret.empty()) return false;
    const std::string keyed = KeyedHash(key_, secret);
    return keyed.size() == row.secret_hash.size() &&
           CRYPTO_memcmp(keyed.data(), row.secret_hash.data(), keyed.size()) == 0;
  }

  void AgentRoutes(http::ServerRequest& req, const std::vector<std::string>& p, http::Responder& out) {
    if (p.size() == 2 && req.method == "GET") {
      Require(req, "runs:read");
      ordered_json list = ordered_json::array();
      const int64_t now = MonoNanos();
      for (const auto& [id, a] : agents_) {
        list.push_back({{"id", id},
                        {"name", a.row.name},
                        {"region", a.row.region},
                        {"version", a.row.version},
                        {"capacity", a.row.capacity},
                        {"run", a.run_id},
                        {"seen_ago_ms", a.last_seen_mono ? (now - a.last_seen_mono) / 1'000'000 : -1},
                        {"clock_offset_ms", a.row.clock_offset_ns / 1e6}});
      }
      out.Send(http::JsonResponse(200, {{"agents", list}}));
      return;
    }
    Require(req, "agent");
    if (p.size() == 2) {
      MethodCheck(req, "POST");
      const json body = ParseBody(req);
      store::AgentRow row;
      row.id = Field<std::string>(body, "id", "");
      row.name = Field<std::string>(body, "name", "", true);
      row.region = Field<std::string>(body, "region", "", true);
      row.version = Field<std::string>(body, "version", "");
      row.capacity = Field<uint32_t>(body, "capacity", 1);
      row.clock_offset_ns = Field<int64_t>(body, "clock_offset_ns", 0);
      row.rtt_ns = Field<int64_t>(body, "rtt_ns", 0);
      if (row.region.empty() || row.region.size() > 63) {
        throw ApiError{400, "invalid_field", "'region' must be 1 to 63 characters", "region"};
      }
      // The same id again only with its secret; otherwise a new id and a new secret.
      std::string secret;
      auto known = row.id.empty() ? agents_.end() : agents_.find(row.id);
      if (known != agents_.end() && !known->second.row.secret_hash.empty()) {
        if (!AgentSecretMatches(known->second.row, req)) {
          throw ApiError{
              403, "agent_secret",
              fmt::format("agent {} is registered with a secret this request does not carry; register "
                          "without an id to get a new one",
                          row.id),
              "id"};
        }
        row.secret_hash = known->second.row.secret_hash;
      } else {
        if (agents_.size() >= config_.max_agents) ForgetIdleAgents(/*all_idle=*/true);
        if (agents_.size() >= config_.max_agents) {
          throw ApiError{429,
                         "limit_reached",
                         fmt::format("{} agents are registered (max_agents: {}) and none is idle to forget",
                                     agents_.size(), config_.max_agents),
                         "",
                         {{"Retry-After", "30"}}};
        }
        row.id = NewId(IdKind::kAgent);
        secret = NewToken();
        row.secret_hash = KeyedHash(key_, secret);
      }
      row.registered_ns = WallNanos();
      if (auto r = store_->PutAgent(row); !r.ok()) throw http::StoreUnavailable(r.error().message);
      AgentLive& live = agents_[row.id];
      live.row = row;
      live.last_seen_mono = MonoNanos();
      LogInfo("agent {} registered: {} in {} (capacity {}, clock offset {})", row.id, row.name, row.region,
              row.capacity, FormatDuration(row.clock_offset_ns));
      ordered_json reply = {
          {"id", row.id}, {"server_ns", WallNanos()}, {"long_poll_ms", config_.long_poll_ns / 1'000'000}};
      if (!secret.empty()) reply["secret"] = secret;  // shown once: only its keyed hash is kept
      out.Send(http::JsonResponse(201, reply));
      return;
    }
    const std::string& id = p[2];
    AgentLive& live = KnownAgent(id, req);
    if (p.size() == 4 && p[3] == "work") {
      MethodCheck(req, "GET");
      // Work already assigned (and not finished) is sent again: the agent may have restarted its poll.
      if (!live.run_id.empty()) {
        auto it = runs_.find(live.run_id);
        if (it != runs_.end()) {
          if (auto* a = it->second->Assignment(id); a && a->state == "assigned") {
            out.Send(http::JsonResponse(200, WorkJson(*it->second, *a)));
            return;
          }
        }
      }
      live.poll.Send(
          http::ServerResponse{204, "application/json", "", {}});  // a newer poll replaces an old one
      live.poll = out;
      live.poll_deadline = MonoNanos() + config_.long_poll_ns;
      // The runs waiting for agents, oldest first, until this agent has work.
      std::vector<Run*> waiting;
      for (auto& [rid, run] : runs_) {
        if (run->row.state == "preparing") waiting.push_back(run.get());
      }
      std::sort(waiting.begin(), waiting.end(), [](const Run* a, const Run* b) {
        return std::tie(a->row.created_ns, a->row.id) < std::tie(b->row.created_ns, b->row.id);
      });
      for (Run* run : waiting) {
        if (!live.run_id.empty()) break;
        Assign(*run);
      }
      return;
    }
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  void AgentRunRoutes(http::ServerRequest& req, const std::vector<std::string>& p, http::Responder& out) {
    Require(req, "agent");
    const std::string& run_id = p[2];
    const std::string& agent_id = p[4];
    KnownAgent(agent_id, req);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      const store::RunRow row = LoadRow(run_id);
      out.Send(http::JsonResponse(
          409,
          {{"error", {{"code", "finished"}, {"message", "the run ended: " + row.state}}}, {"stop", true}}));
      return;
    }
    Run& run = *it->second;
    store::AssignmentRow* a = run.Assignment(agent_id);
    if (!a) throw ApiError{403, "not_assigned", "the agent is not part of this run", ""};
    if (p.size() == 6 && p[5] == "ready") {
      MethodCheck(req, "POST");
      const json body = ParseBody(req);
      const std::string error = Field<std::string>(body, "error", "");
      if (!error.empty()) {
        run.stop = true;
        Finish(run, "errored",
               fmt::format("agent {} in {} could not prepare: {}", AgentName(agent_id), a->region, error));
        out.Send(http::JsonResponse(200, {{"stop", true}}));
        return;
      }
      if (a->state == "assigned") {
        a->state = "ready";
        a->ready_ns = WallNanos();
        SaveAssignment(*a);
      }
      out.Send(http::JsonResponse(200, StartJson(run)));
      return;
    }
    if (p.size() == 6 && p[5] == "heartbeat") {
      MethodCheck(req, "POST");
      out.Send(http::JsonResponse(200, {{"state", run.row.state}, {"stop", run.stop}}));
      return;
    }
    if (p.size() == 7 && p[5] == "reports") {
      MethodCheck(req, "PUT");
      char* end = nullptr;
      const long long seq = std::strtoll(p[6].c_str(), &end, 10);
      if (p[6].empty() || *end != '\0' || seq < 0)
        throw ApiError{400, "invalid_path", "the report seq must be a number >= 0", "seq"};
      auto snap = stats::DecodeSnapshot(req.body);
      if (!snap.ok()) throw ApiError{400, "invalid_report", snap.error().message, "body"};
      if (a->state == "lost") throw ApiError{409, "lost", "the agent was declared lost", ""};
      if (a->state == "ready" || a->state == "assigned") a->state = "running";
      const int64_t started_ns = http::QueryInt(req, "started_ns", 0, 0, INT64_MAX);
      if (started_ns > 0 && a->started_ns == 0) {
        a->started_ns = started_ns;
        SaveAssignment(*a);
      }
      auto inserted =
          store_->InsertSample(run.row.id, store::SampleRow{agent_id, seq, snap->second, req.body});
      if (!inserted.ok()) throw http::StoreUnavailable(inserted.error().message);
      if (*inserted) {
        run.Ingest(agent_id, a->region, seq, *snap);
        for (const auto& [key, s] : snap->series) {
          if (!run.known_series.insert(key).second) continue;
          const auto k = stats::SeriesKey::Unpack(key);
          (void)store_->PutSeries(
              run.row.id, key, a->region,
              k.scenario < run.names.scenarios.size() ? run.names.scenarios[k.scenario] : "",
              k.request < run.names.requests.size() ? run.names.requests[k.request].name : "", k.status,
              stats::ErrorKindName(k.error));
        }
      }
      out.Send(http::JsonResponse(200, {{"acked", seq}, {"stop", run.stop}}));
      return;
    }
    if (p.size() == 6 && p[5] == "done") {
      MethodCheck(req, "POST");
      const json body = ParseBody(req);
      a->last_seq = Field<int64_t>(body, "last_seq", -1, true);
      a->requests = Field<uint64_t>(body, "requests", 0);
      a->connections = Field<uint64_t>(body, "connections", 0);
      a->retries = Field<uint64_t>(body, "retries", 0);
      const int64_t started_ns = Field<int64_t>(body, "started_ns", 0);
      if (started_ns > 0 && a->started_ns == 0) a->started_ns = started_ns;
      // On the control plane's clock, and in the past by now: a later value (a clock gone wrong) would shrink
      // every rate, so it is held to now.
      a->load_ended_ns = std::clamp<int64_t>(Field<int64_t>(body, "load_ended_ns", 0), 0, WallNanos());
      if (body.contains("steps")) StoreSteps(run, *a, body["steps"]);
      if (a->state != "lost") a->state = "done";
      SaveAssignment(*a);
      auto pit = run.progress.find(agent_id);
      const int64_t acked = pit == run.progress.end() ? -1 : pit->second.acked;
      out.Send(http::JsonResponse(200, {{"acked", acked}, {"complete", acked >= a->last_seq}}));
      return;
    }
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  // The step instances of an agent's done: validated (the field is named), stored, kept for the summary.
  void StoreSteps(Run& run, const store::AssignmentRow& a, const json& steps) {
    if (!steps.is_array()) throw ApiError{400, "invalid_field", "'steps' must be an array", "steps"};
    std::vector<store::StepInstanceRow> rows;
    for (size_t i = 0; i < steps.size(); ++i) {
      const json& s = steps[i];
      const std::string where = fmt::format("steps[{}]", i);
      if (!s.is_object() || !s.contains("step") || !s["step"].is_string() || !s.contains("instance") ||
          !s["instance"].is_number_unsigned() || !s.contains("state") || !s["state"].is_string()) {
        throw ApiError{400, "invalid_field",
                       where + " needs step (string), instance (number) and state (string)", where};
      }
      const std::string step = s["step"].get<std::string>();
      if (std::none_of(run.plan.steps.begin(), run.plan.steps.end(),
                       [&](const auto& p) { return p.name == step; })) {
        throw ApiError{400, "invalid_field", fmt::format("{}.step: the plan has no step '{}'", where, step),
                       where + ".step"};
      }
      json result = s;
      result.erase("log");
      result["agent"] = a.agent_id;
      result["region"] = a.region;
      rows.push_back(store::StepInstanceRow{
          step, s["instance"].get<uint32_t>(), a.agent_id, JsonText(result),
          s.contains("log") && s["log"].is_string() ? s["log"].get<std::string>() : std::string()});
    }
    for (auto& row : rows) {
      if (auto r = store_->PutStepInstance(run.row.id, row); !r.ok())
        throw http::StoreUnavailable(r.error().message);
      row.log.clear();
      auto& kept = run.step_instances;
      auto same = std::find_if(kept.begin(), kept.end(), [&](const auto& k) {
        return k.step == row.step && k.instance == row.instance;
      });
      if (same != kept.end()) {
        *same = row;
      } else {
        kept.push_back(row);
      }
    }
  }

  struct Bucket {
    double tokens = 0;
    int64_t last = 0;
  };

  net::EventLoop& loop_;
  std::unique_ptr<store::Store> store_;
  ServerConfig config_;
  std::unique_ptr<envpool::EnvPool> envpool_;  // before server_: destroyed after it
  std::unique_ptr<net::WorkThread> work_;      // large bodies and plans are parsed here
  std::unique_ptr<http::HttpServer> server_;
  std::string key_;  // the server's key (server.key)
  net::FunctionTimer tick_;
  net::FunctionTimer prune_;
  std::map<std::string, std::unique_ptr<Run>> runs_;  // active runs
  std::set<std::string> stepping_;                    // the runs the tick steps
  std::set<std::pair<int64_t, std::string>> queued_;  // (ready deadline, id): waiting for their first agent
  std::set<std::string> start_waiting_;               // runs with held start polls
  std::map<std::string, AgentLive> agents_;
  std::map<std::string, Bucket> buckets_;
  int64_t next_forget_mono_ = 0;
  int64_t started_mono_ = 0;
};

ControlPlane::ControlPlane(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config)
    : impl_(std::make_unique<Impl>(loop, std::move(store), std::move(config))) {}
ControlPlane::~ControlPlane() = default;
Result<void> ControlPlane::Start() { return impl_->Start(); }
uint16_t ControlPlane::port() const { return impl_->port(); }
Result<void> ControlPlane::Reload() { return impl_->Reload(); }
std::optional<http::ServerResponse> ControlPlane::CheckHead(const http::ServerRequest& head,
                                                            size_t* max_body) {
  return impl_->CheckHead(head, max_body);
}
void ControlPlane::Handle(http::ServerRequest& request, http::Responder out) { impl_->Handle(request, out); }

}  // namespace meridian::control
