#include "stats/threshold.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/duration.h"

namespace meridian::stats {
namespace {

struct MetricInfo {
  const char* name;
  MetricKind kind;
};
constexpr MetricInfo kMetrics[] = {
    {"http_req_duration", MetricKind::kTrend},    {"http_req_waiting", MetricKind::kTrend},
    {"http_req_connecting", MetricKind::kTrend},  {"http_req_tls_handshaking", MetricKind::kTrend},
    {"iteration_duration", MetricKind::kTrend},   {"group_duration", MetricKind::kTrend},
    {"http_req_failed", MetricKind::kRate},       {"checks", MetricKind::kRate},
    {"http_reqs", MetricKind::kCounter},          {"iterations", MetricKind::kCounter},
    {"dropped_iterations", MetricKind::kCounter}, {"data_sent", MetricKind::kCounter},
    {"data_received", MetricKind::kCounter},      {"vus", MetricKind::kGauge},
};
constexpr const char* kTags[] = {"region", "scenario", "name", "status",
                                 "group",  "check",    "step", "instance"};

std::string AllowedMetrics() {
  std::string s;
  for (const auto& m : kMetrics) s += (s.empty() ? "" : ", ") + std::string(m.name);
  return s;
}

const char* AllowedAggregations(MetricKind kind) {
  switch (kind) {
    case MetricKind::kTrend:
      return "avg, min, med, max, p(N)";
    case MetricKind::kRate:
      return "rate";
    case MetricKind::kCounter:
      return "count, rate";
    case MetricKind::kGauge:
      return "value, min, max";
    case MetricKind::kStep:
      return "counters: count, rate; gauges: value, min, max; timers: avg, min, med, max, p(N), count, rate";
  }
  return "";
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<double> ParseNumber(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a number", text));
  }
  return v;
}

}  // namespace

Result<ThresholdSet> ParseThresholdKey(std::string_view key, bool step_metrics) {
  ThresholdSet set;
  set.key = std::string(key);
  std::string_view metric = Trim(key);
  const size_t brace = metric.find('{');
  std::string_view tags;
  if (brace != std::string_view::npos) {
    if (metric.back() != '}') {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': a tag filter must end with '}}'", key));
    }
    tags = metric.substr(brace + 1, metric.size() - brace - 2);
    metric = Trim(metric.substr(0, brace));
  }
  bool found = false;
  for (const auto& m : kMetrics) {
    if (metric == m.name) {
      set.metric = m.name;
      set.kind = m.kind;
      found = true;
    }
  }
  const auto builtin_like = [](std::string_view m) {
    for (const char* prefix : {"http_req", "iteration", "checks", "vus", "data_", "group_", "dropped_"}) {
      if (m.starts_with(prefix)) return true;
    }
    return false;
  };
  if (!found && step_metrics && IsStepMetricName(metric) && !builtin_like(metric)) {
    set.metric = std::string(metric);
    set.kind = MetricKind::kStep;
    found = true;
  }
  if (!found) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("threshold '{}': unknown metric '{}' (allowed: {}{})", key, metric, AllowedMetrics(),
                    step_metrics ? "; or a name a step sends over StatsD, not starting like a built-in metric"
                                 : "; names that steps send over StatsD need steps in the plan"));
  }
  while (!tags.empty()) {
    const size_t comma = tags.find(',');
    const std::string_view item = Trim(tags.substr(0, comma));
    tags = comma == std::string_view::npos ? std::string_view{} : tags.substr(comma + 1);
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': tag filter '{}' is not tag:value", key, item));
    }
    TagFilter f{std::string(Trim(item.substr(0, colon))), std::string(Trim(item.substr(colon + 1)))};
    bool known = false;
    for (const char* t : kTags) known |= f.key == t;
    if (!known) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format(
              "threshold '{}': unknown tag '{}' (allowed: region, scenario, name, status, group, check; "
              "step metrics: region, step, instance)",
              key, f.key));
    }
    if (set.kind == MetricKind::kStep && f.key != "region" && f.key != "step" && f.key != "instance") {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("threshold '{}': '{}' is a step metric: its tags are region, step and instance", key,
                      set.metric));
    }
    if (set.kind != MetricKind::kStep && (f.key == "step" || f.key == "instance")) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': only step metrics (StatsD) have a '{}' tag", key, f.key));
    }
    if (f.value.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': tag '{}' has no value", key, f.key));
    }
    if ((set.metric == "vus" || set.metric == "iterations" || set.metric == "iteration_duration" ||
         set.metric == "dropped_iterations") &&
        (f.key == "name" || f.key == "status")) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': {} has no '{}' tag (only region and scenario)", key,
                                   set.metric, f.key));
    }
    if (f.key == "check" && set.metric != "checks") {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("threshold '{}': only checks has a 'check' tag", key));
    }
    if (set.metric == "group_duration" && (f.key == "name" || f.key == "status")) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          fmt::format("threshold '{}': group_duration has region, scenario and group tags", key));
    }
    set.tags.push_back(std::move(f));
  }
  return set;
}

Result<ThresholdExpr> ParseThresholdExpr(std::string_view text, MetricKind kind) {
  ThresholdExpr e;
  e.source = std::string(Trim(text));
  std::string_view s = e.source;
  auto bad = [&](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("threshold expression '{}': {} (allowed aggregations: {}; operators: < <= > "
                                 ">= == !=)",
                                 text, why, AllowedAggregations(kind)));
  };
  const size_t op = s.find_first_of("<>=!");
  if (op == std::string_view::npos) return bad("no comparison operator");
  std::string_view agg = Trim(s.substr(0, op));
  size_t op_len = (op + 1 < s.size() && s[op + 1] == '=') ? 2 : 1;
  e.op = std::string(s.substr(op, op_len));
  if (e.op == "=" || e.op == "!") return bad("operator must be one of < <= > >= == !=");
  const std::string_view value = Trim(s.substr(op + op_len));
  if (agg.starts_with("p(") && agg.ends_with(")")) {
    auto p = ParseNumber(agg.substr(2, agg.size() - 3));
    if (!p.ok() || *p < 0 || *p > 100) return bad("the percentile must be a number from 0 to 100");
    e.aggregation = "p";
    e.percentile = *p;
  } else {
    e.aggregation = std::string(agg);
  }
  const std::string allowed = AllowedAggregations(kind);
  const bool ok_agg =
      (kind == MetricKind::kTrend &&
       (e.aggregation == "avg" || e.aggregation == "min" || e.aggregation == "med" ||
        e.aggregation == "max" || e.aggregation == "p")) ||
      (kind == MetricKind::kRate && e.aggregation == "rate") ||
      (kind == MetricKind::kCounter && (e.aggregation == "count" || e.aggregation == "rate")) ||
      (kind == MetricKind::kGauge &&
       (e.aggregation == "value" || e.aggregation == "min" || e.aggregation == "max")) ||
      (kind == MetricKind::kStep &&
       (e.aggregation == "count" || e.aggregation == "rate" || e.aggregation == "value" ||
        e.aggregation == "min" || e.aggregation == "max" || e.aggregation == "avg" ||
        e.aggregation == "med" || e.aggregation == "p"));
  if (!ok_agg) return bad(fmt::format("'{}' does not apply to this metric", agg));
  if (value.empty()) return bad("no value to compare with");
  // A value in the metric's units: trends read plain numbers as milliseconds (as k6 does) or take a unit;
  // step metrics compare as written (timers in milliseconds, a duration is turned into them).
  const auto parse_value = [&](std::string_view v) -> Result<double> {
    auto number = ParseNumber(v);
    if (kind == MetricKind::kTrend || kind == MetricKind::kStep) {
      if (number.ok()) return kind == MetricKind::kTrend ? *number * 1e6 : *number;
      auto d = ParseDuration(v);
      if (!d.ok()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         kind == MetricKind::kTrend
                             ? fmt::format("'{}' is neither milliseconds nor a duration (200ms, 1.5s)", v)
                             : fmt::format("'{}' is neither a number nor a duration", v));
      }
      return kind == MetricKind::kTrend ? static_cast<double>(*d) : static_cast<double>(*d) / 1e6;
    }
    if (!number.ok()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a number", v));
    return *number;
  };
  if (value.find("baseline") != std::string_view::npos) {
    // baseline | baseline * N | N * baseline | baseline + V | baseline - V
    const auto form = [&] {
      return bad(
          fmt::format("'{}': compare with a baseline run as `baseline`, `baseline * N`, `N * baseline`, "
                      "`baseline + V` or `baseline - V`",
                      value));
    };
    e.baseline = true;
    std::string_view rest;
    if (value.starts_with("baseline")) {
      rest = Trim(value.substr(8));
    } else if (value.ends_with("baseline")) {
      std::string_view left = Trim(value.substr(0, value.size() - 8));
      if (!left.ends_with("*")) return form();
      auto factor = ParseNumber(Trim(left.substr(0, left.size() - 1)));
      if (!factor.ok() || *factor <= 0) return form();
      e.baseline_factor = *factor;
      return e;
    } else {
      return form();
    }
    if (rest.empty()) return e;
    const char sign = rest.front();
    const std::string_view operand = Trim(rest.substr(1));
    if (sign == '*') {
      auto factor = ParseNumber(operand);
      if (!factor.ok() || *factor <= 0) return bad(fmt::format("'{}' is not a positive factor", operand));
      e.baseline_factor = *factor;
    } else if (sign == '+' || sign == '-') {
      auto v = parse_value(operand);
      if (!v.ok()) return bad(v.error().message);
      e.value = sign == '-' ? -*v : *v;
    } else {
      return form();
    }
    return e;
  }
  auto v = parse_value(value);
  if (!v.ok()) return bad(v.error().message);
  e.value = *v;
  if (kind == MetricKind::kRate && (e.value < 0 || e.value > 1)) return bad("a rate is between 0 and 1");
  return e;
}

namespace {

// One expression against one run's data, its value as written.
ThresholdOutcome Measure(const ThresholdSet& set, const ThresholdExpr& expr, const MetricData& d) {
  ThresholdOutcome out;
  out.key = set.key;
  out.expr = expr.source;
  out.abort_on_fail = expr.abort_on_fail;
  double v = 0;
  bool empty = false;
  const Histogram* h = nullptr;
  if (set.metric == "http_req_duration") h = &d.duration;
  if (set.metric == "http_req_waiting") h = &d.waiting;
  if (set.metric == "http_req_connecting") h = &d.connecting;
  if (set.metric == "http_req_tls_handshaking") h = &d.tls;
  if (set.metric == "iteration_duration") h = &d.iteration_duration;
  if (set.metric == "group_duration") h = &d.group_duration;
  if (h) {
    empty = h->count() == 0;
    if (expr.aggregation == "avg") v = h->mean();
    if (expr.aggregation == "min") v = static_cast<double>(h->min());
    if (expr.aggregation == "max") v = static_cast<double>(h->max());
    if (expr.aggregation == "med") v = static_cast<double>(h->ValueAtPercentile(50));
    if (expr.aggregation == "p") v = static_cast<double>(h->ValueAtPercentile(expr.percentile));
    out.measured_text = FormatDuration(static_cast<int64_t>(v));
  } else if (set.kind == MetricKind::kRate) {
    const uint64_t total = set.metric == "checks" ? d.checks : d.requests;
    const uint64_t hits = set.metric == "checks" ? d.checks - d.checks_failed : d.failures;
    empty = total == 0;
    v = total ? static_cast<double>(hits) / static_cast<double>(total) : 0;
    out.measured_text = fmt::format("{:.2f}% ({} of {})", v * 100, hits, total);
  } else if (set.kind == MetricKind::kCounter) {
    uint64_t count = 0;
    if (set.metric == "http_reqs") count = d.requests;
    if (set.metric == "iterations") count = d.iterations;
    if (set.metric == "dropped_iterations") count = d.dropped;
    if (set.metric == "data_sent") count = d.bytes_sent;
    if (set.metric == "data_received") count = d.bytes_received;
    if (expr.aggregation == "count") {
      v = static_cast<double>(count);
      out.measured_text = fmt::format("{}", count);
    } else {
      v = d.seconds > 0 ? static_cast<double>(count) / d.seconds : 0;
      out.measured_text = fmt::format("{:.2f}/s", v);
    }
  } else if (set.kind == MetricKind::kStep) {
    const auto kind = static_cast<NameEntry::Kind>(d.step_kind);
    const std::string& a = expr.aggregation;
    const auto mismatch = [&](const char* what) {
      out.ok = false;
      out.measured_text = fmt::format("'{}' does not apply to {} (a {})", a, set.metric, what);
      return out;
    };
    if (d.step_kind == -1) {
      empty = true;
    } else if (d.step_kind == -2) {
      out.ok = false;
      out.measured_text = fmt::format("{} is sent as more than one StatsD type", set.metric);
      return out;
    } else if (kind == NameEntry::Kind::kCounter) {
      if (a != "count" && a != "rate") return mismatch("counter: count, rate");
      v = a == "count" ? d.step.sum : (d.seconds > 0 ? d.step.sum / d.seconds : 0);
      out.measured_text = a == "count" ? fmt::format("{:g}", v) : fmt::format("{:.2f}/s", v);
    } else if (kind == NameEntry::Kind::kGauge) {
      if (a != "value" && a != "min" && a != "max") return mismatch("gauge: value, min, max");
      v = a == "value" ? d.step.last : a == "min" ? d.step.min : d.step.max;
      out.measured_text = fmt::format("{:g}", v);
    } else {
      const Histogram& values = d.step.values;
      if (a == "count" || a == "rate") {
        v = a == "count" ? static_cast<double>(values.count())
                         : (d.seconds > 0 ? static_cast<double>(values.count()) / d.seconds : 0);
        out.measured_text = a == "count" ? fmt::format("{:g}", v) : fmt::format("{:.2f}/s", v);
      } else if (a == "value") {
        return mismatch("timer: avg, min, med, max, p(N), count, rate");
      } else {
        double ns = 0;
        if (a == "avg") ns = values.mean();
        if (a == "min") ns = static_cast<double>(values.min());
        if (a == "max") ns = static_cast<double>(values.max());
        if (a == "med") ns = static_cast<double>(values.ValueAtPercentile(50));
        if (a == "p") ns = static_cast<double>(values.ValueAtPercentile(expr.percentile));
        v = ns / 1e6;  // milliseconds, as the threshold's number is
        out.measured_text = FormatDuration(static_cast<int64_t>(ns));
      }
    }
  } else {
    v = expr.aggregation == "min" ? d.vus_min : expr.aggregation == "max" ? d.vus_max : d.vus_last;
    out.measured_text = fmt::format("{}", v);
  }
  out.measured = v;
  if (empty) {
    out.no_data = true;
    out.measured_text = "no data";
    return out;
  }
  const double t = expr.value;
  if (expr.op == "<") out.ok = v < t;
  if (expr.op == "<=") out.ok = v <= t;
  if (expr.op == ">") out.ok = v > t;
  if (expr.op == ">=") out.ok = v >= t;
  if (expr.op == "==") out.ok = v == t;
  if (expr.op == "!=") out.ok = v != t;
  return out;
}

// A value as its measurement is written: durations for trends (and step timers' times), percentages for
// rates, counts and counts per second.
std::string FormatLimit(const ThresholdSet& set, const ThresholdExpr& expr, double v) {
  const std::string& a = expr.aggregation;
  if (a == "rate")
    return set.kind == MetricKind::kRate ? fmt::format("{:.2f}%", v * 100) : fmt::format("{:.2f}/s", v);
  if (set.kind == MetricKind::kTrend) return FormatDuration(static_cast<int64_t>(v));
  if (set.kind == MetricKind::kStep && (a == "avg" || a == "min" || a == "med" || a == "max" || a == "p")) {
    return FormatDuration(static_cast<int64_t>(v * 1e6));
  }
  return fmt::format("{:g}", v);
}

}  // namespace

ThresholdOutcome Evaluate(const ThresholdSet& set, const ThresholdExpr& expr, const MetricData& data,
                          const MetricData* baseline) {
  if (!expr.baseline) return Measure(set, expr, data);
  ThresholdExpr plain = expr;
  plain.baseline = false;
  plain.value = 0;
  ThresholdOutcome out;
  const ThresholdOutcome base = baseline ? Measure(set, plain, *baseline) : ThresholdOutcome{};
  if (!baseline || base.no_data) {
    out = Measure(set, plain, data);
    if (out.no_data) return out;
    out.ok = false;
    out.measured_text +=
        baseline ? "; the baseline run has no data for it" : "; no baseline run to compare with";
    return out;
  }
  plain.value = base.measured * expr.baseline_factor + expr.value;
  out = Measure(set, plain, data);
  out.against_baseline = true;
  out.baseline = base.measured;
  out.limit = plain.value;
  if (!out.no_data) {
    out.measured_text +=
        fmt::format("; baseline {}, limit {}", base.measured_text, FormatLimit(set, expr, out.limit));
  }
  return out;
}

}  // namespace meridian::stats
