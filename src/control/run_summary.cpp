// A run's summary: text, JSON and metrics.csv, from the merged reports of its agents.

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "control/run.h"
#include "core/clock.h"
#include "core/duration.h"
#include "stats/names.h"

namespace meridian::control {

namespace {

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace

stats::SummaryMeta SummaryMetaFor(const Run& run, const std::vector<store::AgentRow>& agents) {
  auto agent_row = [&](const std::string& id) -> const store::AgentRow* {
    for (const auto& a : agents) {
      if (a.id == id) return &a;
    }
    return nullptr;
  };
  stats::SummaryMeta meta;
  meta.title = fmt::format("meridian run {} ({})", run.plan.name, run.row.id);
  for (const auto& s : run.plan.scenarios) {
    meta.scenarios.push_back(stats::ScenarioMeta{s.name, loadgen::ExecutorName(s.executor.type),
                                                 s.executor.Describe(), s.executor.open_model(),
                                                 !s.script.empty()});
  }
  for (const auto& a : run.assignments) {
    if (const auto* row = agent_row(a.agent_id)) meta.threads += row->capacity;
    meta.connections_opened += a.connections;
    meta.retries += a.retries;
  }
  meta.started_wall_ns = run.row.start_at_ns;
  meta.duration_ns = RunDurationNs(run);
  meta.stopped_early = run.stop;
  return meta;
}

nlohmann::ordered_json ThresholdsJson(const std::vector<stats::ThresholdOutcome>& outcomes) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& o : outcomes) {
    list.push_back({{"metric", o.key},
                    {"threshold", o.expr},
                    {"ok", o.ok},
                    {"measured", o.measured},
                    {"measured_text", o.measured_text},
                    {"no_data", o.no_data},
                    {"abort_on_fail", o.abort_on_fail}});
    if (o.against_baseline) {
      list.back()["baseline"] = o.baseline;
      list.back()["limit"] = o.limit;
    }
  }
  return list;
}

Summary BuildSummary(const Run& run, const std::vector<store::AgentRow>& agents) {
  Summary out;
  stats::IntervalSnapshot totals;
  for (const auto& [id, p] : run.progress) totals.MergeAcrossWorkers(p.totals);
  std::map<int64_t, stats::IntervalSnapshot> seconds;
  for (const auto& [region, per_second] : run.region_seconds) {
    for (const auto& [s, snap] : per_second) seconds[s].MergeAcrossWorkers(snap);
  }
  std::vector<stats::TimelinePoint> timeline;
  for (auto& [s, snap] : seconds) {
    snap.second = s;
    timeline.push_back(stats::MakeTimelinePoint(snap));
  }
  const stats::SummaryMeta meta = SummaryMetaFor(run, agents);
  auto agent_row = [&](const std::string& id) -> const store::AgentRow* {
    for (const auto& a : agents) {
      if (a.id == id) return &a;
    }
    return nullptr;
  };

  // Thresholds.
  const auto outcomes = EvaluateThresholds(run, false);
  std::string text;
  if (!outcomes.empty()) {
    text += run.plan.baseline.empty() ? "\n  thresholds:\n"
                                      : fmt::format("\n  thresholds (baseline run {}):\n", run.plan.baseline);
  }
  for (const auto& o : outcomes) {
    out.thresholds_ok &= o.ok;
    text += fmt::format("    {} {} {}  (measured {}){}\n", o.ok ? "✓" : "✗", o.key, o.expr, o.measured_text,
                        o.abort_on_fail ? "  abort_on_fail" : "");
  }
  const nlohmann::ordered_json thresholds = ThresholdsJson(outcomes);
  text += stats::SummaryText(totals, timeline, run.names, meta);

  // Per region.
  nlohmann::ordered_json regions = nlohmann::ordered_json::object();
  text += "  per region:\n";
  text += fmt::format("    {:<16} {:>6} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9}\n", "region", "agents",
                      "requests", "req/s", "failed", "p50", "p95", "p99");
  for (const auto& region : run.plan.regions) {
    stats::IntervalSnapshot r;
    uint32_t n = 0;
    for (const auto& [id, p] : run.progress) {
      if (p.region != region.name) continue;
      r.MergeAcrossWorkers(p.totals);
    }
    for (const auto& a : run.assignments) n += a.region == region.name;
    const stats::TimelinePoint t = stats::MakeTimelinePoint(r);
    const stats::Histogram d = stats::MergedDuration(r);
    const double rps = static_cast<double>(t.requests) * 1e9 / static_cast<double>(meta.duration_ns);
    const double failed =
        t.requests ? 100.0 * static_cast<double>(t.failures) / static_cast<double>(t.requests) : 0;
    text += fmt::format("    {:<16} {:>6} {:>10} {:>10.1f} {:>7.2f}% {:>9} {:>9} {:>9}\n", region.name, n,
                        t.requests, rps, failed, FormatDuration(d.ValueAtPercentile(50)),
                        FormatDuration(d.ValueAtPercentile(95)), FormatDuration(d.ValueAtPercentile(99)));
    regions[region.name] = {{"agents", n},
                            {"requests", t.requests},
                            {"failed", t.failures},
                            {"rate", rps},
                            {"p50_ms", Ms(d.ValueAtPercentile(50))},
                            {"p95_ms", Ms(d.ValueAtPercentile(95))},
                            {"p99_ms", Ms(d.ValueAtPercentile(99))}};
  }

  // Agents and their start skew.
  nlohmann::ordered_json agent_list = nlohmann::ordered_json::array();
  text += "\n  agents (start skew = actual start - common start, on the control plane's clock):\n";
  int64_t min_start = INT64_MAX, max_start = INT64_MIN;
  for (const auto& a : run.assignments) {
    const auto* row = agent_row(a.agent_id);
    const int64_t skew = a.started_ns ? a.started_ns - run.row.start_at_ns : 0;
    if (a.started_ns) {
      min_start = std::min(min_start, a.started_ns);
      max_start = std::max(max_start, a.started_ns);
    }
    auto it = run.progress.find(a.agent_id);
    const uint64_t reported =
        it == run.progress.end() ? 0 : stats::MakeTimelinePoint(it->second.totals).requests;
    text += fmt::format("    {:<24} {:<16} {:<8} skew {:>9}  clock offset {:>9}  requests {}\n",
                        row ? row->name : a.agent_id, a.region, store::AssignmentStateName(a.state),
                        a.started_ns ? FormatDuration(std::abs(skew)) : "-",
                        row ? FormatDuration(std::abs(row->clock_offset_ns)) : "-", reported);
    agent_list.push_back({{"id", a.agent_id},
                          {"name", row ? row->name : ""},
                          {"region", a.region},
                          {"state", store::AssignmentStateName(a.state)},
                          {"start_skew_ms", a.started_ns ? Ms(skew) : 0.0},
                          {"clock_offset_ms", row ? Ms(row->clock_offset_ns) : 0.0},
                          {"rtt_ms", row ? Ms(row->rtt_ns) : 0.0},
                          {"requests", reported},
                          {"requests_counted_by_agent", a.requests},
                          {"last_seq", a.last_seq},
                          {"acked_seq", it == run.progress.end() ? -1 : it->second.acked}});
  }
  const int64_t spread = max_start >= min_start ? max_start - min_start : 0;
  text += fmt::format("    start skew between agents: {}\n", FormatDuration(spread));
  // Step metrics (StatsD), one row per metric and instance.
  nlohmann::ordered_json metric_list = nlohmann::ordered_json::array();
  {
    std::map<uint16_t, stats::StepMetric> merged;
    for (const auto& [id, p] : run.progress) {
      for (const auto& [index, m] : p.totals.step_metrics) merged[index].Merge(m);
    }
    std::vector<std::pair<const stats::NameEntry*, const stats::StepMetric*>> rows;
    for (const auto& [index, m] : merged) {
      if (index < run.names.requests.size() && run.names.requests[index].step_metric()) {
        rows.emplace_back(&run.names.requests[index], &m);
      }
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
      return std::tie(a.first->name, a.first->group) < std::tie(b.first->name, b.first->group);
    });
    const double run_seconds = static_cast<double>(RunDurationNs(run)) / 1e9;
    if (!rows.empty()) text += "\n  step metrics (StatsD from steps):\n";
    for (const auto& [e, m] : rows) {
      const std::string series = fmt::format("{}{{{}}}", e->name, e->group);
      nlohmann::ordered_json item = {{"name", e->name}, {"instance", e->group}};
      switch (e->kind) {
        case stats::NameEntry::Kind::kCounter:
          text += fmt::format("    {:<44} counter  {:g}  {:.2f}/s\n", series, m->sum, m->sum / run_seconds);
          item["type"] = "counter";
          item["count"] = m->sum;
          item["rate"] = m->sum / run_seconds;
          break;
        case stats::NameEntry::Kind::kGauge:
          text += fmt::format("    {:<44} gauge    value={:g} min={:g} max={:g}\n", series, m->last, m->min,
                              m->max);
          item["type"] = "gauge";
          item["value"] = m->last;
          item["min"] = m->min;
          item["max"] = m->max;
          break;
        default: {
          const stats::Histogram& h = m->values;
          text += fmt::format("    {:<44} timer    avg={} med={} p(95)={} max={}  ({} samples)\n", series,
                              FormatDuration(static_cast<int64_t>(h.mean())),
                              FormatDuration(h.ValueAtPercentile(50)),
                              FormatDuration(h.ValueAtPercentile(95)), FormatDuration(h.max()), h.count());
          item["type"] = "timer";
          item["count"] = h.count();
          item["avg_ms"] = h.mean() / 1e6;
          item["med_ms"] = Ms(h.ValueAtPercentile(50));
          item["p95_ms"] = Ms(h.ValueAtPercentile(95));
          item["p99_ms"] = Ms(h.ValueAtPercentile(99));
          item["max_ms"] = Ms(h.max());
          break;
        }
      }
      metric_list.push_back(item);
    }
  }
  nlohmann::ordered_json step_list = nlohmann::ordered_json::array();
  if (!run.plan.steps.empty()) {
    text += "\n  steps (start = actual start - intended start):\n";
    for (const auto& st : run.plan.steps) {
      uint32_t reported = 0;
      for (const auto& row : run.step_instances) {
        if (row.step != st.name) continue;
        ++reported;
        const nlohmann::json r = nlohmann::json::parse(row.result_json, nullptr, false);
        if (!r.is_object()) continue;
        const int64_t intended = r.value("intended_ns", int64_t{0});
        const int64_t started = r.value("started_ns", int64_t{0});
        const int64_t ended = r.value("ended_ns", int64_t{0});
        const std::string state = r.value("state", std::string("?"));
        const int code = r.value("exit_code", -1), sig = r.value("signal", 0);
        const std::string how = sig ? fmt::format("signal {}", sig) : fmt::format("exit {}", code);
        const uint32_t restarts = r.value("restarts", 0u);
        text += fmt::format(
            "    {:<20} {:<12} {:<11} {:<9} start {:>9}  ran {:>8}  cpu {}  rss {}{}{}\n",
            fmt::format("{}#{}", st.name, row.instance), row.agent_id.substr(0, 12), state, how,
            started ? FormatDuration(started - intended) : "-",
            started && ended ? FormatDuration(ended - started) : "-",
            // Never started: what was measured is the waiter's, not the command's.
            started ? fmt::format("{:.2f}s", r.value("cpu_seconds", 0.0)) : "-",
            started ? FormatBytes(static_cast<double>(r.value("max_rss_bytes", int64_t{0}))) : "-",
            restarts ? fmt::format("  restarts {}", restarts) : "",
            r.value("error", std::string()).empty() ? "" : "  (" + r.value("error", std::string()) + ")");
        nlohmann::ordered_json item = {
            {"step", st.name}, {"instance", row.instance}, {"agent", row.agent_id}};
        for (const auto& [k, v] : r.items()) {
          if (k != "step" && k != "instance" && k != "agent") item[k] = v;
        }
        item["start_offset_ms"] = started ? Ms(started - intended) : 0.0;
        if (InstanceFailed(r)) item["failed"] = true;
        if (auto tail = run.failed_log_tails.find(fmt::format("{}#{}", st.name, row.instance));
            tail != run.failed_log_tails.end()) {
          item["log_tail"] = tail->second;
        }
        step_list.push_back(item);
      }
      if (reported < st.instances) {
        text += fmt::format("    {:<20} {} of {} instances not reported (their agent did not finish)\n",
                            st.name, st.instances - reported, st.instances);
      }
    }
  }
  if (!run.failed_log_tails.empty()) {
    text +=
        "\n  failed step instances (the last lines of their logs; meridian runs logs RUN STEP for all):\n";
    for (const auto& [instance, tail] : run.failed_log_tails) {
      text += fmt::format("    ==> {} <==\n", instance);
      if (tail.empty()) text += "      (no output)\n";
      size_t from = 0;
      while (from < tail.size()) {
        const size_t nl = tail.find('\n', from);
        const size_t end = nl == std::string::npos ? tail.size() : nl;
        text += fmt::format("      {}\n", std::string_view(tail).substr(from, end - from));
        from = end + 1;
      }
    }
  }
  text += fmt::format("\n  run {} {}{}\n", run.row.id, store::RunStateName(run.row.state),
                      run.row.reason.empty() ? "" : ": " + run.row.reason);
  out.text = text;

  nlohmann::ordered_json j;
  j["run"] = {{"id", run.row.id},
              {"name", run.plan.name},
              {"state", store::RunStateName(run.row.state)},
              {"reason", run.row.reason},
              {"start_at", FormatIsoTime(run.row.start_at_ns)},
              {"start_at_ns", run.row.start_at_ns}};
  j["thresholds"] = thresholds;
  if (!run.plan.baseline.empty()) j["baseline"] = run.plan.baseline;
  if (!run.plan.tags.empty()) j["tags"] = run.plan.tags;
  j["thresholds_ok"] = out.thresholds_ok;
  const nlohmann::ordered_json base = stats::SummaryJson(totals, timeline, run.names, meta);
  for (const auto& [k, v] : base.items()) j[k] = v;
  j["regions"] = regions;
  j["agents"] = agent_list;
  j["start_skew_ms"] = Ms(spread);
  if (!run.plan.steps.empty()) {
    j["steps"] = step_list;
    j["step_metrics"] = metric_list;
  }
  out.json = std::move(j);

  out.csv = "second,region,requests,failed,p50_ms,p95_ms,p99_ms,max_ms,vus,bytes_received\n";
  for (const auto& [region, per_second] : run.region_seconds) {
    for (const auto& [s, snap] : per_second) {
      const stats::TimelinePoint p = stats::MakeTimelinePoint(snap);
      uint64_t received = 0;
      for (const auto& [k, series] : snap.series) received += series.bytes_received;
      out.csv +=
          fmt::format("{},{},{},{},{:.3f},{:.3f},{:.3f},{:.3f},{},{}\n", s, region, p.requests, p.failures,
                      Ms(p.p50_ns), Ms(p.p95_ns), Ms(p.p99_ns), Ms(p.max_ns), p.vus_active, received);
    }
  }
  return out;
}

}  // namespace meridian::control
