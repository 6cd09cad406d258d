// Plan model helpers: lengths, names, the normalised YAML, the timeline, and the split over agents.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/duration.h"
#include "core/json.h"
#include "plan/plan.h"

namespace meridian::plan {
namespace {

using loadgen::ExecutorConfig;
using loadgen::ExecutorType;

// Exact, parseable duration text: "1s", "1500ms", "250us", "7ns".
std::string ExactDuration(int64_t ns) {
  if (ns % kNanosPerSecond == 0) return fmt::format("{}s", ns / kNanosPerSecond);
  if (ns % kNanosPerMilli == 0) return fmt::format("{}ms", ns / kNanosPerMilli);
  if (ns % kNanosPerMicro == 0) return fmt::format("{}us", ns / kNanosPerMicro);
  return fmt::format("{}ns", ns);
}

std::string Quote(const std::string& s) { return JsonText(nlohmann::json(s)); }

std::string RateText(double rate, int64_t unit) {
  return unit == kNanosPerSecond ? fmt::format("{}/s", rate)
                                 : fmt::format("{}/{}", rate, ExactDuration(unit));
}

// Splits `total` over `weights` by the largest-remainder method; ties go to the earlier part.
std::vector<uint64_t> Apportion(uint64_t total, const std::vector<double>& weights) {
  std::vector<uint64_t> out(weights.size(), 0);
  const double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  if (weights.empty() || sum <= 0) return out;
  std::vector<std::pair<double, size_t>> rest;
  uint64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const double exact = static_cast<double>(total) * weights[i] / sum;
    out[i] = static_cast<uint64_t>(std::floor(exact + 1e-9));
    given += out[i];
    rest.emplace_back(exact - static_cast<double>(out[i]), i);
  }
  std::stable_sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < rest.size(); ++k, ++given) ++out[rest[k].second];
  return out;
}

bool RunsIn(const Scenario& s, const std::string& region) {
  return s.regions.empty() || std::find(s.regions.begin(), s.regions.end(), region) != s.regions.end();
}

bool PinnedFor(const Region& r, const ExecutorConfig& e) { return e.open_model() ? r.rate > 0 : r.vus > 0; }

double PeakPerSecond(const ExecutorConfig& e) {
  double peak = e.rate;
  for (const auto& s : e.stages) peak = std::max(peak, s.target);
  return peak * 1e9 / static_cast<double>(e.time_unit_ns);
}

}  // namespace

int64_t Plan::ScheduledDuration() const {
  int64_t end = 0;
  for (const auto& s : scenarios)
    end = std::max(end, s.executor.start_time_ns + s.executor.ScheduledDuration());
  for (const auto& s : steps) end = std::max(end, s.run_delay_ns + s.run_max_time_ns);
  return end;
}

int64_t Plan::LongestGracefulStop() const {
  int64_t g = 0;
  for (const auto& s : scenarios) {
    g = std::max(g, s.executor.graceful_stop_ns);
    if (s.executor.type == ExecutorType::kRampingVus) g = std::max(g, s.executor.graceful_ramp_down_ns);
  }
  for (const auto& s : steps) g = std::max(g, s.stop_grace_ns);
  return g;
}

const Region* Plan::FindRegion(const std::string& region) const {
  for (const auto& r : regions) {
    if (r.name == region) return &r;
  }
  return nullptr;
}

stats::SeriesNames Names(const Plan& plan) {
  stats::SeriesNames names;
  loadgen::OriginTable origins;
  for (size_t i = 0; i < plan.scenarios.size(); ++i) {
    const Scenario& s = plan.scenarios[i];
    names.scenarios.push_back(s.name);
    if (s.requests.empty()) continue;
    auto program = loadgen::RequestProgram::Compile(
        s.requests, plan.vars, static_cast<uint16_t>(names.requests.size()), origins, "");
    if (!program.ok()) continue;  // ParsePlan already compiled it once
    for (const auto& r : (*program)->requests()) {
      names.requests.push_back({stats::NameEntry::Kind::kRequest, static_cast<uint16_t>(i), "", r.name});
    }
  }
  return names;
}

std::vector<AgentSlot> Slots(const Plan& plan) {
  std::vector<AgentSlot> slots;
  for (const auto& r : plan.regions) {
    for (uint32_t j = 0; j < r.agents; ++j) slots.push_back(AgentSlot{r.name, j});
  }
  return slots;
}

std::vector<ScenarioShare> SharesFor(const Plan& plan, const AgentSlot& slot) {
  std::vector<ScenarioShare> out;
  const Region* mine = plan.FindRegion(slot.region);
  if (!mine) return out;
  for (size_t i = 0; i < plan.scenarios.size(); ++i) {
    const Scenario& s = plan.scenarios[i];
    if (!RunsIn(s, slot.region)) continue;
    const ExecutorConfig& e = s.executor;
    ExecutorConfig part = e;
    // Integer splits: either among the weighted parts of every region, or within a pinned region.
    std::vector<double> weights;
    size_t me = 0;
    const bool pinned = PinnedFor(*mine, e);
    double factor = 0;  // this slot's fraction of the scenario's load, for continuous values
    if (pinned) {
      weights.assign(mine->agents, 1.0);
      me = slot.index;
      const double region_factor = e.open_model() ? mine->rate / std::max(1e-12, PeakPerSecond(e))
                                                  : static_cast<double>(mine->vus) / std::max(1u, e.MaxVus());
      factor = region_factor / mine->agents;
    } else {
      double sum = 0;
      for (const auto& r : plan.regions) {
        if (!RunsIn(s, r.name) || PinnedFor(r, e)) continue;
        for (uint32_t j = 0; j < r.agents; ++j) {
          if (&r == mine && j == slot.index) me = weights.size();
          weights.push_back(r.weight / r.agents);
          sum += r.weight / r.agents;
        }
      }
      factor = weights[me] / sum;
    }
    auto split = [&](uint64_t total) { return Apportion(total, weights)[me]; };
    auto scaled_split = [&](double value) {
      // pinned regions scale the scenario's numbers to their own total first
      const double region_total = pinned ? value * factor * mine->agents : value;
      return split(static_cast<uint64_t>(std::llround(region_total)));
    };
    bool has_load = true;
    switch (e.type) {
      case ExecutorType::kConstantVus:
      case ExecutorType::kPerVuIterations:
        part.vus = static_cast<uint32_t>(pinned ? split(mine->vus) : split(e.vus));
        has_load = part.vus > 0;
        break;
      case ExecutorType::kSharedIterations:
        part.iterations = scaled_split(static_cast<double>(e.iterations));
        part.vus = static_cast<uint32_t>(
            std::min<uint64_t>(pinned ? split(mine->vus) : split(e.vus), part.iterations));
        has_load = part.vus > 0 && part.iterations > 0;
        break;
      case ExecutorType::kRampingVus: {
        part.start_vus = static_cast<uint32_t>(scaled_split(e.start_vus));
        for (auto& st : part.stages) st.target = static_cast<double>(scaled_split(st.target));
        has_load = part.MaxVus() > 0;
        break;
      }
      case ExecutorType::kConstantArrivalRate:
      case ExecutorType::kRampingArrivalRate: {
        part.rate = e.rate * factor;
        for (auto& st : part.stages) st.target *= factor;
        part.pre_allocated_vus =
            std::max<uint32_t>(1, static_cast<uint32_t>(std::ceil(e.pre_allocated_vus * factor - 1e-9)));
        part.max_vus = std::max<uint32_t>(part.pre_allocated_vus,
                                          static_cast<uint32_t>(std::ceil(e.MaxVus() * factor - 1e-9)));
        has_load = PeakPerSecond(part) > 0;
        break;
      }
    }
    if (has_load) out.push_back(ScenarioShare{i, part});
  }
  return out;
}

Result<void> CheckRunnable(const Plan& plan) {
  if (plan.baseline.empty()) {
    for (const auto& t : plan.thresholds) {
      for (const auto& e : t.exprs) {
        if (!e.baseline) continue;
        return MakeError(
            ErrorCode::kInvalidArgument,
            fmt::format("thresholds.{}: '{}' compares with a baseline run, and the plan names none "
                        "(meridian run/submit --baseline RUN, or baseline: RUN in the plan)",
                        t.key, e.source));
      }
    }
  }
  for (const auto& s : plan.scenarios) {
    if (!s.script.empty() && !plan.files.contains(s.script)) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("scenarios.{}.script: '{}' is not bundled with the plan (plans with scripts are "
                      "loaded by meridian run/submit/validate, which bundle them)",
                      s.name, s.script));
    }
  }
  return {};
}

std::string ToYaml(const Plan& p, bool with_files) {
  std::string y;
  auto line = [&](int indent, const std::string& text) { y += std::string(indent, ' ') + text + "\n"; };
  line(0, "name: " + Quote(p.name));
  if (!p.vars.empty()) {
    line(0, "vars:");
    for (const auto& [k, v] : p.vars) line(2, Quote(k) + ": " + Quote(v));
  }
  if (!p.tags.empty()) {
    line(0, "tags:");
    for (const auto& [k, v] : p.tags) line(2, Quote(k) + ": " + Quote(v));
  }
  line(0, "start_buffer: " + ExactDuration(p.start_buffer_ns));
  line(0, "ready_timeout: " + ExactDuration(p.ready_timeout_ns));
  line(0, "heartbeat_timeout: " + ExactDuration(p.heartbeat_timeout_ns));
  line(0, "drain_grace: " + ExactDuration(p.drain_grace_ns));
  line(0, "timeout: " + ExactDuration(p.timeout_ns));
  line(0, "connect_timeout: " + ExactDuration(p.connect_timeout_ns));
  line(0, std::string("insecure: ") + (p.insecure ? "true" : "false"));
  line(0, std::string("on_agent_loss: ") + (p.on_agent_loss == AgentLoss::kFail ? "fail" : "continue"));
  if (!p.baseline.empty()) line(0, "baseline: " + Quote(p.baseline));
  line(0, "regions:");
  for (const auto& r : p.regions) {
    std::string fields = fmt::format("weight: {}, agents: {}", r.weight, r.agents);
    if (r.vus) fields += fmt::format(", vus: {}", r.vus);
    if (r.rate > 0) fields += fmt::format(", rate: {}/s", r.rate);
    line(2, Quote(r.name) + ": { " + fields + " }");
  }
  if (!p.scenarios.empty()) line(0, "scenarios:");
  for (const auto& s : p.scenarios) {
    const ExecutorConfig& e = s.executor;
    line(2, Quote(s.name) + ":");
    line(4, fmt::format("executor: {}", loadgen::ExecutorName(e.type)));
    if (e.start_time_ns) line(4, "start_time: " + ExactDuration(e.start_time_ns));
    line(4, "graceful_stop: " + ExactDuration(e.graceful_stop_ns));
    switch (e.type) {
      case ExecutorType::kConstantVus:
        line(4, fmt::format("vus: {}", e.vus));
        line(4, "duration: " + ExactDuration(e.duration_ns));
        break;
      case ExecutorType::kPerVuIterations:
      case ExecutorType::kSharedIterations:
        line(4, fmt::format("vus: {}", e.vus));
        line(4, fmt::format("iterations: {}", e.iterations));
        line(4, "max_duration: " + ExactDuration(e.max_duration_ns));
        break;
      case ExecutorType::kRampingVus:
        line(4, fmt::format("start_vus: {}", e.start_vus));
        line(4, "graceful_ramp_down: " + ExactDuration(e.graceful_ramp_down_ns));
        break;
      case ExecutorType::kConstantArrivalRate:
        line(4, "rate: " + RateText(e.rate, e.time_unit_ns));
        line(4, "duration: " + ExactDuration(e.duration_ns));
        break;
      case ExecutorType::kRampingArrivalRate:
        line(4, "rate: " + RateText(e.rate, e.time_unit_ns));
        break;
    }
    if (e.open_model()) {
      line(4, fmt::format("pre_allocated_vus: {}", e.pre_allocated_vus));
      line(4, fmt::format("max_vus: {}", e.MaxVus()));
    }
    if (!e.stages.empty()) {
      line(4, "stages:");
      for (const auto& st : e.stages) {
        const std::string target = e.type == ExecutorType::kRampingArrivalRate
                                       ? RateText(st.target, e.time_unit_ns)
                                       : fmt::format("{}", st.target);
        line(6, fmt::format("- {{ duration: {}, target: {} }}", ExactDuration(st.duration_ns), target));
      }
    }
    if (!s.regions.empty()) {
      std::string list;
      for (const auto& r : s.regions) list += (list.empty() ? "" : ", ") + Quote(r);
      line(4, "regions: [" + list + "]");
    }
    if (!s.script.empty()) {
      line(4, "script: " + Quote(s.script));
      if (!s.base_url.empty()) line(4, "base_url: " + Quote(s.base_url));
      line(4, "iteration_timeout: " + ExactDuration(s.iteration_timeout_ns));
    }
    if (!s.requests.empty()) line(4, "requests:");
    for (const auto& q : s.requests) {
      line(6, "- name: " + Quote(q.name));
      line(8, "method: " + Quote(q.method));
      line(8, "url: " + Quote(q.url));
      if (!q.headers.empty()) {
        line(8, "headers:");
        for (const auto& [k, v] : q.headers) line(10, Quote(k) + ": " + Quote(v));
      }
      if (q.json) {
        line(8, "json: " + q.body);
      } else if (!q.body.empty()) {
        line(8, "body: " + Quote(q.body));
      }
      if (!q.expect_status.empty()) {
        std::string list;
        for (int c : q.expect_status) list += (list.empty() ? "" : ", ") + std::to_string(c);
        line(8, "expect: { status: [" + list + "] }");
      }
    }
  }
  if (!p.files.empty()) {
    if (with_files) {
      line(0, "files:");
      for (const auto& [k, v] : p.files) line(2, Quote(k) + ": " + Quote(v));
    } else {
      std::string list;
      for (const auto& [k, v] : p.files)
        list += fmt::format("{}{} ({} bytes)", list.empty() ? "" : ", ", k, v.size());
      line(0, "# files bundled with the plan: " + list);
    }
  }
  if (!p.steps.empty()) line(0, "steps:");
  for (const auto& s : p.steps) {
    line(2, "- name: " + Quote(s.name));
    if (!s.region.empty()) line(4, "region: " + Quote(s.region));
    line(4, fmt::format("instances: {}", s.instances));
    if (s.shell.empty()) {
      std::string cmd;
      for (const auto& c : s.command) cmd += (cmd.empty() ? "" : ", ") + Quote(c);
      line(4, "command: [" + cmd + "]");
    } else {
      line(4, "shell: " + Quote(s.shell));
    }
    if (!s.cwd.empty()) line(4, "cwd: " + Quote(s.cwd));
    line(4, "run_delay: " + ExactDuration(s.run_delay_ns));
    line(4, "run_max_time: " + ExactDuration(s.run_max_time_ns));
    line(4, "stop_grace: " + ExactDuration(s.stop_grace_ns));
    line(4, std::string("restart: ") + (s.restart_on_failure ? "on-failure" : "never"));
    if (s.allow_failure) line(4, "allow_failure: true");
    if (!s.env.empty()) {
      line(4, "env:");
      for (const auto& [k, v] : s.env) line(6, Quote(k) + ": " + Quote(v));
    }
    if (!s.container_name.empty()) line(4, "container_name: " + Quote(s.container_name));
  }
  if (!p.thresholds.empty()) line(0, "thresholds:");
  for (const auto& t : p.thresholds) {
    line(2, Quote(t.key) + ":");
    for (const auto& e : t.exprs) {
      if (e.abort_on_fail || e.delay_abort_eval_ns) {
        line(4, fmt::format("- {{ threshold: {}, abort_on_fail: {}, delay_abort_eval: {} }}", Quote(e.source),
                            e.abort_on_fail ? "true" : "false", ExactDuration(e.delay_abort_eval_ns)));
      } else {
        line(4, "- " + Quote(e.source));
      }
    }
  }
  return y;
}

std::string Timeline(const Plan& p) {
  std::string out;
  const int64_t end = p.ScheduledDuration();
  out += fmt::format("timeline (from the common start; start_buffer {} after every agent is ready):\n",
                     FormatDuration(p.start_buffer_ns));
  for (const auto& r : p.regions) {
    std::string how = r.vus        ? fmt::format("pinned {} VUs", r.vus)
                      : r.rate > 0 ? fmt::format("pinned {:g}/s", r.rate)
                                   : fmt::format("weight {:g}", r.weight);
    out += fmt::format("  region {} ({}, {} agent{})\n", r.name, how, r.agents, r.agents == 1 ? "" : "s");
    bool any = false;
    for (uint32_t j = 0; j < r.agents; ++j) {
      for (const auto& share : SharesFor(p, AgentSlot{r.name, j})) {
        const Scenario& s = p.scenarios[share.scenario];
        const ExecutorConfig& e = share.executor;
        const int64_t from = e.start_time_ns, to = from + e.ScheduledDuration();
        out += fmt::format("    {:>7} – {:<7} {:<14} {}{}\n", FormatDuration(from), FormatDuration(to),
                           s.name, e.Describe(), r.agents > 1 ? fmt::format(" (agent {})", j + 1) : "");
        any = true;
      }
    }
    for (const auto& s : p.steps) {
      if (s.region != r.name && !s.region.empty()) continue;
      out += fmt::format("    {:>7} – {:<7} step {:<9} {} × {}\n", FormatDuration(s.run_delay_ns),
                         FormatDuration(s.run_delay_ns + s.run_max_time_ns), s.name, s.instances,
                         s.shell.empty() ? s.command[0] : "sh -c " + s.shell);
      any = true;
    }
    if (!any) out += "    (no load in this region)\n";
  }
  out += fmt::format("  the run ends {} after the start (then up to {} graceful stop and {} drain grace)\n",
                     FormatDuration(end), FormatDuration(p.LongestGracefulStop()),
                     FormatDuration(p.drain_grace_ns));
  return out;
}

}  // namespace meridian::plan
