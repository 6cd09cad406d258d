#include "stats/metrics.h"

#include <algorithm>

namespace meridian::stats {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
      return "none";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kDns:
      return "dns";
    case ErrorKind::kConnect:
      return "connect";
    case ErrorKind::kReset:
      return "reset";
    case ErrorKind::kTls:
      return "tls";
    case ErrorKind::kHttp4xx:
      return "http4xx";
    case ErrorKind::kHttp5xx:
      return "http5xx";
    case ErrorKind::kCheck:
      return "check";
    case ErrorKind::kProtocol:
      return "protocol";
    case ErrorKind::kScript:
      return "script";
    case ErrorKind::kCount:
      break;
  }
  return "unknown";
}

void SeriesStats::Merge(const SeriesStats& o) {
  requests += o.requests;
  failures += o.failures;
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  duration.Merge(o.duration);
  ttfb.Merge(o.ttfb);
  connect.Merge(o.connect);
  tls.Merge(o.tls);
  dns.Merge(o.dns);
}

namespace {
void MergeCounters(ScenarioStats& a, const ScenarioStats& o) {
  a.iterations += o.iterations;
  a.failed_iterations += o.failed_iterations;
  a.dropped_iterations += o.dropped_iterations;
  a.interrupted_iterations += o.interrupted_iterations;
  a.iteration_duration.Merge(o.iteration_duration);
}
}  // namespace

void ScenarioStats::MergeAcrossWorkers(const ScenarioStats& o) {
  MergeCounters(*this, o);
  vus_active += o.vus_active;
  vus_allocated += o.vus_allocated;
}

void ScenarioStats::MergeAcrossTime(const ScenarioStats& o) {
  MergeCounters(*this, o);
  vus_active = std::max(vus_active, o.vus_active);
  vus_allocated = std::max(vus_allocated, o.vus_allocated);
}

void GeneratorHealth::Merge(const GeneratorHealth& o) {
  wall_ns += o.wall_ns;
  cpu_ns += o.cpu_ns;
  max_cpu_share = std::max(max_cpu_share, o.max_cpu_share);
  timer_lag.Merge(o.timer_lag);
  schedule_lag.Merge(o.schedule_lag);
}

void IntervalSnapshot::AddErrorExample(ErrorKind kind, std::string_view message) {
  size_t same_kind = 0;
  for (const auto& [k, m] : error_examples) {
    if (k != kind) continue;
    if (m == message) return;
    ++same_kind;
  }
  if (same_kind < kMaxExamplesPerKind) error_examples.emplace_back(kind, std::string(message));
}

namespace {
void MergeScriptMetrics(IntervalSnapshot& into, const IntervalSnapshot& o) {
  for (const auto& [k, c] : o.checks) {
    auto& mine = into.checks[k];
    mine.passes += c.passes;
    mine.fails += c.fails;
  }
  for (const auto& [k, h] : o.groups) into.groups[k].Merge(h);
  for (const auto& [k, m] : o.step_metrics) into.step_metrics[k].Merge(m);
}
}  // namespace

bool IsStepMetricName(std::string_view name) {
  return !name.empty() && name.size() <= 200 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void StepMetric::Merge(const StepMetric& o) {
  if (o.count == 0) return;
  min = count == 0 ? o.min : std::min(min, o.min);
  max = count == 0 ? o.max : std::max(max, o.max);
  last = o.last;
  sum += o.sum;
  count += o.count;
  values.Merge(o.values);
}

void IntervalSnapshot::MergeAcrossWorkers(const IntervalSnapshot& o) {
  for (const auto& [k, m] : o.error_examples) AddErrorExample(k, m);
  for (const auto& [key, s] : o.series) series[key].Merge(s);
  if (scenarios.size() < o.scenarios.size()) scenarios.resize(o.scenarios.size());
  for (size_t i = 0; i < o.scenarios.size(); ++i) scenarios[i].MergeAcrossWorkers(o.scenarios[i]);
  MergeScriptMetrics(*this, o);
  health.Merge(o.health);
}

void IntervalSnapshot::MergeAcrossTime(const IntervalSnapshot& o) {
  for (const auto& [k, m] : o.error_examples) AddErrorExample(k, m);
  for (const auto& [key, s] : o.series) series[key].Merge(s);
  if (scenarios.size() < o.scenarios.size()) scenarios.resize(o.scenarios.size());
  for (size_t i = 0; i < o.scenarios.size(); ++i) scenarios[i].MergeAcrossTime(o.scenarios[i]);
  MergeScriptMetrics(*this, o);
  health.Merge(o.health);
}

}  // namespace meridian::stats
