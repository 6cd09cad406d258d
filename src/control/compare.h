#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// Two ended runs side by side (`meridian runs compare A B`, GET /v1/runs/{id}/compare?baseline=A): the whole
// run, each region and each request name, with throughput, error rate and p50/p95/p99 of A (the baseline) and
// B, the change, and regressions flagged. A pure function of the two stored summaries: the same figures the
// summaries, the dashboard and the reports show.
//
// A regression, per row present in both runs: p95 or p99 more than `tolerance_pct` higher than A's and at
// least `min_latency_ms` higher (sub-millisecond jitter is not a regression); throughput more than
// `tolerance_pct` lower; error rate more than `error_rate_pp` percentage points higher. A row of A that B
// lacks is flagged ("missing"); a row of B only is listed, not flagged.

#include <nlohmann/json.hpp>
#include <string>

namespace meridian::control {

struct CompareOptions {
  double tolerance_pct = 10;
  double min_latency_ms = 1;
  double error_rate_pp = 1;
};

struct RunSummary {
  nlohmann::ordered_json run;      // RunRowJson
  nlohmann::ordered_json summary;  // as stored
};

// The comparison as JSON:
//   {a, b: {id, name, state, started_at, duration_s}, tolerance_pct, min_latency_ms, error_rate_pp,
//    regressions (rows regressed), rows: [{scope (total, region, request), name, a, b, change, regressed}]}
// a, b: {requests, rate, error_rate, p50_ms, p95_ms, p99_ms}, null for a row the run does not have;
// change: {rate_pct, error_rate_pp, p50_pct, p95_pct, p99_pct}; regressed: what regressed of p95, p99, rate,
// error_rate, or "missing" for a row of A that B does not have (an endpoint B no longer called).
nlohmann::ordered_json CompareJson(const RunSummary& a, const RunSummary& b, const CompareOptions& options);

// The same as a table, one line per row, regressions marked "!".
std::string CompareText(const nlohmann::ordered_json& compare);

}  // namespace meridian::control
