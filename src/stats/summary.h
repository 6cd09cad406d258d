#pragma once
// The end-of-run summary: computed from merged interval snapshots only (never from samples), printed in the
// layout k6 users know (metric name, dots, values) and as JSON for machines.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "stats/metrics.h"

namespace meridian::stats {

// One second of a run, merged across workers.
struct TimelinePoint {
  int64_t second = 0;
  uint64_t requests = 0;
  uint64_t failures = 0;
  uint64_t iterations = 0;
  uint64_t dropped = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  int64_t p50_ns = 0;
  int64_t p95_ns = 0;
  int64_t p99_ns = 0;
  int64_t max_ns = 0;
  uint32_t vus_active = 0;
  double cpu_share_max = 0;
};
TimelinePoint MakeTimelinePoint(const IntervalSnapshot& second);

// All request durations of a snapshot in one histogram.
Histogram MergedDuration(const IntervalSnapshot& s);

struct SeriesNames {
  std::vector<std::string> scenarios;
  std::vector<NameEntry> requests;  // the name table: requests, checks and groups (stats/names.h)
};

struct ScenarioMeta {
  std::string name;
  std::string executor;     // "constant-vus"
  std::string description;  // ExecutorConfig::Describe()
  bool open_model = false;
  bool script = false;  // a JavaScript scenario: its checks are check() calls, not status expectations
};

struct SummaryMeta {
  std::string title;  // "meridian load http://127.0.0.1:8080/"
  std::vector<ScenarioMeta> scenarios;
  uint32_t threads = 0;
  int64_t started_wall_ns = 0;
  int64_t duration_ns = 0;  // start instant to the end of the last iteration
  uint64_t connections_opened = 0;
  uint64_t retries = 0;
  bool stopped_early = false;
  std::vector<std::pair<std::string, int64_t>> dns_lookups;  // host, resolution time (once, before the start)
};

struct Saturation {
  bool saturated = false;
  std::string reason;
  double cpu_max = 0;  // highest per-second CPU share of one worker thread, whole seconds only
  int64_t timer_lag_p99_ns = 0;
  int64_t schedule_lag_p99_ns = 0;
};
// The generator is saturated when a worker thread was >= 90 % busy for a whole second, or its event loop or
// the arrival-rate schedule ran more than 10 ms late at the 99th percentile.
Saturation AssessGenerator(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline);

// Keys keep a reading order (run, requests, latency, ... timeline) rather than alphabetical order.
nlohmann::ordered_json SummaryJson(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline,
                                   const SeriesNames& names, const SummaryMeta& meta);
std::string SummaryText(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline,
                        const SeriesNames& names, const SummaryMeta& meta);

}  // namespace meridian::stats
