#pragma once
// Thresholds in k6's syntax: a metric with optional tag filters as the key
// ("http_req_duration{region:eu-west-1}") and expressions over one aggregation ("p(95)<200ms", "rate<0.01",
// "count>100"). Evaluated against MetricData accumulated from merged snapshots (never from samples).
//
// Metrics and their aggregations:
//   trends   http_req_duration, http_req_waiting, http_req_connecting, http_req_tls_handshaking,
//            iteration_duration, group_duration          avg min med max p(N)  (values: ms, or with a unit)
//   rates    http_req_failed, checks                     rate                  (0..1)
//   counters http_reqs, iterations, dropped_iterations, data_sent, data_received   count rate (per second)
//   gauges   vus                                          value min max
// Tags: region, scenario, name (request name), status, group ("::login"), check (checks only: the check's
// name).
//   step metrics: any other name (letters, digits, '_', '.', '-') is a metric that command steps send over
//   StatsD
//            (only when the plan has steps). Counters: count rate; gauges: value min max (the
//            sum of the instances' last values); timers: avg min med max p(N) (milliseconds, or with a unit)
//            count rate. Tags: region, step, instance.
// Against a baseline run (`meridian run --baseline RUN`, or `baseline: RUN` in the plan), the value may be
// `baseline`, `baseline * N` (or `N * baseline`), `baseline + V` or `baseline - V`: the same aggregation of
// the same metric and filter measured on the baseline run's merged histograms, scaled or shifted
// ("p(95) < baseline * 1.10", "rate < baseline + 0.01", "p(99) <= baseline + 20ms").

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "stats/histogram.h"
#include "stats/metrics.h"

namespace meridian::stats {

enum class MetricKind { kTrend, kRate, kCounter, kGauge, kStep };

struct TagFilter {
  std::string key;  // region | scenario | name | status | group | check | step | instance
  std::string value;
};

struct ThresholdExpr {
  std::string source;       // as written: "p(95)<200ms"
  std::string aggregation;  // avg min med max p rate count value
  double percentile = 0;    // for "p"
  std::string op;           // < <= > >= == !=
  double value = 0;         // in base units: ns for trends, fraction for rates, count or count/s
  bool baseline = false;    // the limit is baseline_factor * (the baseline run's value) + value
  double baseline_factor = 1;
  bool abort_on_fail = false;
  int64_t delay_abort_eval_ns = 0;
};

struct ThresholdSet {
  std::string key;  // as written: "http_req_duration{region:eu-west-1}"
  std::string metric;
  MetricKind kind = MetricKind::kTrend;
  std::vector<TagFilter> tags;
  std::vector<ThresholdExpr> exprs;
};

// Parses a threshold key; errors name the allowed metrics and tags. With `step_metrics` (the plan has steps),
// a name that is not a built-in metric is a step's StatsD metric, unless it starts like a built-in one
// (http_req, iteration, checks, vus, data_, group_, dropped_): those are reported as unknown (a typo).
Result<ThresholdSet> ParseThresholdKey(std::string_view key, bool step_metrics = false);
// Parses one expression for a metric kind; errors show the allowed aggregations.
Result<ThresholdExpr> ParseThresholdExpr(std::string_view text, MetricKind kind);

// Everything a threshold can look at, for one filter.
struct MetricData {
  Histogram duration, waiting, connecting, tls, iteration_duration, group_duration;
  uint64_t requests = 0, failures = 0, checks = 0, checks_failed = 0;
  uint64_t iterations = 0, dropped = 0, bytes_sent = 0, bytes_received = 0;
  uint32_t vus_max = 0, vus_min = 0, vus_last = 0;
  double seconds = 0;  // the run's length, for counter rates
  // Step metrics: the matching series merged (gauges: `last` is the sum of the series' last values).
  StepMetric step;
  int step_kind = -1;  // NameEntry::Kind of the matching series; -1 none; -2 the name is used with two kinds
};

struct ThresholdOutcome {
  std::string key;
  std::string expr;
  bool ok = true;
  bool no_data = false;  // nothing matched the filter: treated as passing, as k6 does
  double measured = 0;   // base units
  std::string measured_text;
  bool abort_on_fail = false;
  bool against_baseline = false;  // the expression compares with a baseline run:
  double baseline = 0;            //   what the baseline run measured (base units)
  double limit = 0;               //   and the limit that made of it
};

// `baseline`: the same filter's data of the baseline run, for expressions that compare with one (without
// it they fail, saying so). A baseline without data for the filter fails the expression too: there is
// nothing to compare with. No data in this run passes, as k6 does.
ThresholdOutcome Evaluate(const ThresholdSet& set, const ThresholdExpr& expr, const MetricData& data,
                          const MetricData* baseline = nullptr);

}  // namespace meridian::stats
