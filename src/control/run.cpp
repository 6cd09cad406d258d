// One run's aggregation and thresholds (its summary: run_summary.cpp).

#include "control/run.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

#include "core/clock.h"
#include "core/duration.h"
#include "stats/names.h"
#include "stats/wire.h"

namespace meridian::control {

bool InstanceFailed(const nlohmann::json& r) {
  if (!r.is_object()) return false;
  const std::string state = r.value("state", std::string());
  if (state == "not_started") return true;
  return state == "exited" && (r.value("exit_code", 0) != 0 || r.value("signal", 0) != 0);
}

std::vector<std::string> FailedSteps(const Run& run) {
  std::vector<std::string> failed;
  for (const auto& st : run.plan.steps) {
    if (st.allow_failure) continue;
    uint32_t reported = 0, failures = 0;
    std::string how;
    for (const auto& row : run.step_instances) {
      if (row.step != st.name) continue;
      ++reported;
      const nlohmann::json r = nlohmann::json::parse(row.result_json, nullptr, false);
      if (!InstanceFailed(r)) continue;
      ++failures;
      if (how.empty()) {
        const int sig = r.value("signal", 0);
        const int code = r.value("exit_code", -1);
        if (r.value("state", std::string()) == "not_started") {
          // The waiter's exit: 127 and 126 are the shell's (not found, not executable).
          how = "did not start: " + (code == 127   ? std::string("command not found")
                                     : code == 126 ? std::string("not executable")
                                                   : r.value("error", std::string("no reason given")));
        } else {
          how = sig ? fmt::format("signal {}", sig) : fmt::format("exit {}", code);
        }
      }
    }
    if (reported > 0 && failures == reported) {
      failed.push_back(fmt::format("'{}' ({}{})", st.name, how,
                                   reported > 1 ? fmt::format(", all {} instances", reported) : ""));
    }
  }
  return failed;
}

std::string LastLines(std::string_view text, int n) {
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  size_t from = text.size();
  int lines = 0;
  while (from > 0) {
    const size_t nl = text.rfind('\n', from - 1);
    if (nl == std::string_view::npos) {
      from = 0;
      break;
    }
    if (++lines == n) {
      from = nl + 1;
      break;
    }
    from = nl;
  }
  return std::string(text.substr(from));
}

bool AgentProgress::Add(int64_t seq, const stats::IntervalSnapshot& s) {
  if (!seqs.insert(seq).second) return false;
  while (seqs.count(acked + 1)) ++acked;
  totals.MergeAcrossTime(s);
  if (s.second >= last_second) {
    last_second = s.second;
    if (s.scenarios.empty()) return true;  // a report of step metrics only: the VUs are unchanged
    last_vus.assign(s.scenarios.size(), 0);
    for (size_t i = 0; i < s.scenarios.size(); ++i) last_vus[i] = s.scenarios[i].vus_active;
  }
  return true;
}

store::AssignmentRow* Run::Assignment(const std::string& agent_id) {
  for (auto& a : assignments) {
    if (a.agent_id == agent_id) return &a;
  }
  return nullptr;
}

bool Run::Terminal() const { return store::Terminal(row.state); }

namespace {

constexpr size_t kMaxRunNames = 20000;
constexpr uint16_t kUnmapped = UINT16_MAX;

uint16_t InternName(Run& run, stats::NameEntry e) {
  if (run.name_index.empty()) {
    for (size_t i = 0; i < run.names.requests.size(); ++i) {
      run.name_index.emplace(stats::NameRegistry::Key(run.names.requests[i]), static_cast<uint16_t>(i));
    }
  }
  if (run.names.requests.size() >= kMaxRunNames) e = stats::NameEntry{e.kind, e.scenario, "", "(other)"};
  std::string key = stats::NameRegistry::Key(e);
  if (auto it = run.name_index.find(key); it != run.name_index.end()) return it->second;
  run.names.requests.push_back(std::move(e));
  const auto index = static_cast<uint16_t>(run.names.requests.size() - 1);
  run.name_index.emplace(std::move(key), index);
  return index;
}

// Rewrites an agent's name indexes (request field of series keys, check and group keys) to the run's.
void MapNames(Run& run, AgentProgress& p, stats::IntervalSnapshot& s) {
  if (s.names.empty() && p.name_map.empty()) return;
  for (auto& [index, e] : s.names) {
    if (index < run.static_names) continue;  // the plan's own names are the same everywhere
    if (!e.step_metric() && e.scenario >= run.names.scenarios.size()) continue;
    if (e.step_metric()) e.scenario = 0;
    if (p.name_map.size() <= index) p.name_map.resize(index + 1, kUnmapped);
    p.name_map[index] = InternName(run, e);
  }
  s.names.clear();
  auto map = [&](uint16_t i, stats::NameEntry::Kind kind, uint16_t scenario) -> uint16_t {
    if (i < run.static_names) return i;
    if (i < p.name_map.size() && p.name_map[i] != kUnmapped) return p.name_map[i];
    return InternName(run, stats::NameEntry{kind, scenario, "", "(unnamed)"});
  };
  std::unordered_map<uint64_t, stats::SeriesStats> series;
  for (auto& [packed, st] : s.series) {
    auto k = stats::SeriesKey::Unpack(packed);
    k.request = map(k.request, stats::NameEntry::Kind::kRequest, k.scenario);
    series[k.Pack()].Merge(st);
  }
  s.series = std::move(series);
  std::unordered_map<uint16_t, stats::CheckCounts> checks;
  for (auto& [i, c] : s.checks) {
    auto& into = checks[map(i, stats::NameEntry::Kind::kCheck, 0)];
    into.passes += c.passes;
    into.fails += c.fails;
  }
  s.checks = std::move(checks);
  std::unordered_map<uint16_t, stats::Histogram> groups;
  for (auto& [i, h] : s.groups) groups[map(i, stats::NameEntry::Kind::kGroup, 0)].Merge(h);
  s.groups = std::move(groups);
  std::unordered_map<uint16_t, stats::StepMetric> metrics;
  for (auto& [i, m] : s.step_metrics) metrics[map(i, stats::NameEntry::Kind::kCounter, 0)].Merge(m);
  s.step_metrics = std::move(metrics);
}

}  // namespace

Result<StoredRun> ReadStoredRun(store::Store& store, const store::RunRow& row) {
  StoredRun stored;
  stored.row = row;
  auto assignments = store.Assignments(row.id);
  if (!assignments.ok()) return assignments.error();
  stored.assignments = std::move(assignments).value();
  auto steps = store.StepInstances(row.id, false);
  if (!steps.ok()) return steps.error();
  stored.steps = std::move(steps).value();
  auto samples = store.Samples(row.id);
  if (!samples.ok()) return samples.error();
  stored.samples = std::move(samples).value();
  return stored;
}

Result<std::unique_ptr<Run>> RebuildRun(const StoredRun& stored) {
  auto run = std::make_unique<Run>();
  run->row = stored.row;
  auto plan = plan::ParsePlan(stored.row.plan_yaml, "plan.yaml");
  if (!plan.ok()) return plan.error();
  run->plan = std::move(plan).value();
  run->names = plan::Names(run->plan);
  run->static_names = run->names.requests.size();
  run->slots = plan::Slots(run->plan);
  run->assignments = stored.assignments;
  run->step_instances = stored.steps;
  for (const auto& s : stored.samples) {
    auto snap = stats::DecodeSnapshot(s.payload);
    const auto* a = run->Assignment(s.agent_id);
    if (!snap.ok() || !a) continue;
    run->Ingest(s.agent_id, a->region, s.seq, *snap);
  }
  return run;
}

Result<std::unique_ptr<Run>> RestoreRun(store::Store& store, const store::RunRow& row, size_t* reports) {
  auto stored = ReadStoredRun(store, row);
  if (!stored.ok()) return stored.error();
  if (reports) *reports = stored->samples.size();
  return RebuildRun(*stored);
}

void Run::Ingest(const std::string& agent_id, const std::string& region, int64_t seq,
                 stats::IntervalSnapshot& s) {
  AgentProgress& p = progress[agent_id];
  p.agent_id = agent_id;
  p.region = region;
  MapNames(*this, p, s);
  if (!p.Add(seq, s)) return;
  region_seconds[region][s.second].MergeAcrossWorkers(s);
  changed_seconds.insert(s.second);
}

namespace {

bool SeriesMatches(const Run& run, const stats::ThresholdSet& set, const stats::SeriesKey& key) {
  for (const auto& t : set.tags) {
    if (t.key == "scenario" &&
        (key.scenario >= run.names.scenarios.size() || run.names.scenarios[key.scenario] != t.value)) {
      return false;
    }
    if (t.key == "name" &&
        (key.request >= run.names.requests.size() || run.names.requests[key.request].name != t.value)) {
      return false;
    }
    if (t.key == "status" && std::to_string(key.status) != t.value) return false;
    if (t.key == "check") return false;
    if (t.key == "group" &&
        (key.request >= run.names.requests.size() || run.names.requests[key.request].group != t.value)) {
      return false;
    }
  }
  return true;
}

// Checks and groups of scripts: filters on the name-table entry.
bool EntryMatches(const Run& run, const stats::ThresholdSet& set, uint16_t index) {
  if (index >= run.names.requests.size()) return false;
  const stats::NameEntry& e = run.names.requests[index];
  for (const auto& t : set.tags) {
    if (t.key == "scenario" &&
        (e.scenario >= run.names.scenarios.size() || run.names.scenarios[e.scenario] != t.value)) {
      return false;
    }
    if (t.key == "check" && (e.kind != stats::NameEntry::Kind::kCheck || e.name != t.value)) return false;
    if (t.key == "group") {
      const std::string path = e.kind == stats::NameEntry::Kind::kGroup ? e.group + "::" + e.name : e.group;
      if (path != t.value) return false;
    }
    if (t.key == "name" || t.key == "status") return false;
  }
  return true;
}

bool ScriptScenario(const Run& run, uint16_t scenario) {
  return scenario < run.plan.scenarios.size() && !run.plan.scenarios[scenario].script.empty();
}

bool RegionMatches(const stats::ThresholdSet& set, const std::string& region) {
  for (const auto& t : set.tags) {
    if (t.key == "region" && t.value != region) return false;
  }
  return true;
}

}  // namespace

// What every rate divides by: the time the run's work lasted, from the start instant to the end of the last
// iteration or step of any agent, as agents said in done (iterations in their graceful stop run past the
// schedule). A lost agent, or one still running, counts to the end of its last second of data; before any
// done, the seconds of data so far, within the schedule.
int64_t RunDurationNs(const Run& run) {
  int64_t last = -1;
  for (const auto& [id, p] : run.progress) last = std::max(last, p.last_second);
  const int64_t so_far = std::max<int64_t>(
      1, std::min<int64_t>(last + 1, (run.plan.ScheduledDuration() + kNanosPerSecond - 1) / kNanosPerSecond));
  const int64_t start = run.row.start_at_ns;
  int64_t ended = 0;
  bool reported = false;
  for (const auto& a : run.assignments) {
    if (a.load_ended_ns > 0) {
      reported = true;
      ended = std::max(ended, a.load_ended_ns);
      continue;
    }
    auto it = run.progress.find(a.agent_id);
    const int64_t seconds = it == run.progress.end() ? 0 : it->second.last_second + 1;
    ended = std::max(ended, start + seconds * kNanosPerSecond);
  }
  if (!reported || start <= 0 || ended <= start) return so_far * kNanosPerSecond;
  return ended - start;
}

stats::MetricData MetricFor(const Run& run, const stats::ThresholdSet& set) {
  stats::MetricData d;
  d.seconds = static_cast<double>(RunDurationNs(run)) / 1e9;
  if (set.kind == stats::MetricKind::kStep) {
    // A step's StatsD metric, over the instances that match the step, instance and region filters.
    for (const auto& [id, p] : run.progress) {
      if (!RegionMatches(set, p.region)) continue;
      for (const auto& [index, m] : p.totals.step_metrics) {
        if (index >= run.names.requests.size()) continue;
        const stats::NameEntry& e = run.names.requests[index];
        if (!e.step_metric() || e.name != set.metric) continue;
        const size_t hash = e.group.rfind('#');
        const std::string step = e.group.substr(0, hash);
        const std::string instance = hash == std::string::npos ? "" : e.group.substr(hash + 1);
        bool match = true;
        for (const auto& t : set.tags) {
          if (t.key == "step") match &= t.value == step;
          if (t.key == "instance") match &= t.value == instance;
        }
        if (!match) continue;
        const int kind = static_cast<int>(e.kind);
        d.step_kind = d.step_kind == -1 || d.step_kind == kind ? kind : -2;
        // Gauges of several instances add up (like VUs); the rest merge.
        const double last = d.step.count ? d.step.last + m.last : m.last;
        d.step.Merge(m);
        if (e.kind == stats::NameEntry::Kind::kGauge) d.step.last = last;
      }
    }
    return d;
  }
  for (const auto& [id, p] : run.progress) {
    if (!RegionMatches(set, p.region)) continue;
    for (const auto& [packed, s] : p.totals.series) {
      const stats::SeriesKey key = stats::SeriesKey::Unpack(packed);
      if (!SeriesMatches(run, set, key)) continue;
      d.duration.Merge(s.duration);
      d.waiting.Merge(s.ttfb);
      d.connecting.Merge(s.connect);
      d.tls.Merge(s.tls);
      d.requests += s.requests;
      d.failures += s.failures;
      d.bytes_sent += s.bytes_sent;
      d.bytes_received += s.bytes_received;
      // Declarative requests check their status: a response that failed its expectation fails the check.
      // (Scripts make their own checks with check().)
      if (key.status != 0 && !ScriptScenario(run, key.scenario)) {
        d.checks += s.requests;
        if (stats::FailsStatusExpectation(key.error)) d.checks_failed += s.requests;
      }
    }
    for (const auto& [index, c] : p.totals.checks) {
      if (!EntryMatches(run, set, index)) continue;
      d.checks += c.passes + c.fails;
      d.checks_failed += c.fails;
    }
    for (const auto& [index, h] : p.totals.groups) {
      if (EntryMatches(run, set, index)) d.group_duration.Merge(h);
    }
    for (size_t i = 0; i < p.totals.scenarios.size(); ++i) {
      bool match = true;
      for (const auto& t : set.tags) {
        if (t.key == "scenario") match &= i < run.names.scenarios.size() && run.names.scenarios[i] == t.value;
      }
      if (!match) continue;
      const auto& sc = p.totals.scenarios[i];
      d.iterations += sc.iterations;
      d.dropped += sc.dropped_iterations;
      d.iteration_duration.Merge(sc.iteration_duration);
      d.vus_max += sc.vus_active;
      d.vus_last += i < p.last_vus.size() ? p.last_vus[i] : 0;
    }
  }
  return d;
}

bool UsesBaseline(const plan::Plan& plan) {
  for (const auto& set : plan.thresholds) {
    for (const auto& e : set.exprs) {
      if (e.baseline) return true;
    }
  }
  return false;
}

Result<StoredRun> ReadBaselineRun(store::Store& store, const std::string& id) {
  auto row = store.GetRun(id);
  if (!row.ok()) return row.error();
  if (!row->has_value())
    return MakeError(ErrorCode::kNotFound, fmt::format("baseline: there is no run '{}'", id));
  if (!store::Terminal((*row)->state)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("baseline: run '{}' has not ended ({}): a baseline is an ended run", id,
                                 store::RunStateName((*row)->state)));
  }
  return ReadStoredRun(store, **row);
}

std::vector<stats::MetricData> BaselineFrom(const Run& baseline, const plan::Plan& plan) {
  std::vector<stats::MetricData> out;
  for (const auto& set : plan.thresholds) out.push_back(MetricFor(baseline, set));
  return out;
}

Result<std::vector<stats::MetricData>> BaselineData(store::Store& store, const plan::Plan& plan) {
  if (plan.baseline.empty() || !UsesBaseline(plan)) return std::vector<stats::MetricData>{};
  auto stored = ReadBaselineRun(store, plan.baseline);
  if (!stored.ok()) return stored.error();
  auto base = RebuildRun(*stored);
  if (!base.ok()) return base.error();
  return BaselineFrom(**base, plan);
}

std::vector<stats::ThresholdOutcome> EvaluateThresholds(const Run& run, bool abort_only) {
  std::vector<stats::ThresholdOutcome> out;
  for (size_t i = 0; i < run.plan.thresholds.size(); ++i) {
    const stats::ThresholdSet& set = run.plan.thresholds[i];
    bool wanted = !abort_only;
    for (const auto& e : set.exprs) wanted |= e.abort_on_fail;
    if (!wanted) continue;
    const stats::MetricData data = MetricFor(run, set);
    const stats::MetricData* baseline = i < run.baseline.size() ? &run.baseline[i] : nullptr;
    for (const auto& e : set.exprs) {
      if (abort_only && !e.abort_on_fail) continue;
      // A baseline that could not be read (a resumed run) does not abort the run; the summary says why.
      if (abort_only && e.baseline && !baseline) continue;
      out.push_back(stats::Evaluate(set, e, data, baseline));
      if (e.baseline && !baseline && !run.baseline_error.empty()) {
        out.back().measured_text += " (" + run.baseline_error + ")";
      }
    }
  }
  return out;
}

nlohmann::ordered_json RunRowJson(const store::RunRow& row) {
  nlohmann::ordered_json j;
  j["id"] = row.id;
  j["name"] = row.name;
  j["state"] = store::RunStateName(row.state);
  j["reason"] = row.reason;
  j["owner"] = row.owner;
  j["created"] = FormatIsoTime(row.created_ns);
  j["start_at"] =
      row.start_at_ns ? nlohmann::ordered_json(FormatIsoTime(row.start_at_ns)) : nlohmann::ordered_json();
  j["start_at_ns"] = row.start_at_ns;
  j["ended"] = row.ended_ns ? nlohmann::ordered_json(FormatIsoTime(row.ended_ns)) : nlohmann::ordered_json();
  j["exit_code"] = row.exit_code;
  return j;
}

nlohmann::ordered_json EventsJson(const std::vector<store::EventRow>& events) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& e : events) {
    list.push_back({{"at_ns", e.at_ns}, {"from", e.from_state}, {"to", e.to_state}, {"detail", e.detail}});
  }
  return list;
}

nlohmann::ordered_json RunJson(const Run& run, int64_t now) {
  nlohmann::ordered_json j = RunRowJson(run.row);
  const int64_t total = run.plan.ScheduledDuration();
  j["duration_ns"] = total;
  int64_t elapsed = 0;
  if (run.row.start_at_ns && now > run.row.start_at_ns) elapsed = std::min(total, now - run.row.start_at_ns);
  j["elapsed_ns"] = elapsed;
  j["time_left_ns"] = run.row.start_at_ns ? total - elapsed : total;
  nlohmann::ordered_json regions = nlohmann::ordered_json::array();
  for (const auto& region : run.plan.regions) {
    uint32_t assigned = 0, ready = 0, done = 0, lost = 0;
    for (const auto& a : run.assignments) {
      if (a.region != region.name) continue;
      ++assigned;
      ready += a.state != store::AssignmentState::kAssigned;
      done += a.state == store::AssignmentState::kDone;
      lost += a.state == store::AssignmentState::kLost;
    }
    // The latest second every agent of the region has reported, merged.
    stats::IntervalSnapshot last;
    int64_t second = -1;
    auto it = run.region_seconds.find(region.name);
    if (it != run.region_seconds.end() && !it->second.empty()) {
      auto s = it->second.rbegin();
      if (it->second.size() > 1 && s->first > 0) ++s;  // the newest second may still be partial
      second = s->first;
      last = s->second;
    }
    const stats::TimelinePoint p = stats::MakeTimelinePoint(last);
    regions.push_back({{"name", region.name},
                       {"agents", region.agents},
                       {"assigned", assigned},
                       {"ready", ready},
                       {"done", done},
                       {"lost", lost},
                       {"second", second},
                       {"vus", p.vus_active},
                       {"rps", p.requests},
                       {"p95_ms", static_cast<double>(p.p95_ns) / 1e6},
                       {"errors", p.failures}});
  }
  j["regions"] = regions;
  return j;
}

}  // namespace meridian::control
