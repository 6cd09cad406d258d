#include "stats/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/clock.h"
#include "core/duration.h"
#include "core/version.h"

namespace meridian::stats {

Histogram MergedDuration(const IntervalSnapshot& s) {
  Histogram h;
  for (const auto& [key, series] : s.series) h.Merge(series.duration);
  return h;
}

TimelinePoint MakeTimelinePoint(const IntervalSnapshot& s) {
  TimelinePoint p;
  p.second = s.second;
  Histogram d;
  for (const auto& [key, series] : s.series) {
    p.requests += series.requests;
    p.failures += series.failures;
    p.bytes_sent += series.bytes_sent;
    p.bytes_received += series.bytes_received;
    d.Merge(series.duration);
  }
  p.p50_ns = d.ValueAtPercentile(50);
  p.p95_ns = d.ValueAtPercentile(95);
  p.p99_ns = d.ValueAtPercentile(99);
  p.max_ns = d.max();
  for (const auto& sc : s.scenarios) {
    p.iterations += sc.iterations;
    p.dropped += sc.dropped_iterations;
    p.vus_active += sc.vus_active;
  }
  p.cpu_share_max = s.health.max_cpu_share;
  return p;
}

Saturation AssessGenerator(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline) {
  Saturation s;
  // The last point is usually a partial second; CPU shares of partial seconds are noisy.
  for (size_t i = 0; i + 1 < timeline.size(); ++i) s.cpu_max = std::max(s.cpu_max, timeline[i].cpu_share_max);
  if (timeline.size() == 1) s.cpu_max = timeline[0].cpu_share_max;
  s.timer_lag_p99_ns = totals.health.timer_lag.ValueAtPercentile(99);
  s.schedule_lag_p99_ns = totals.health.schedule_lag.ValueAtPercentile(99);
  constexpr int64_t kLagLimit = 10'000'000;
  if (s.cpu_max >= 0.9) {
    s.saturated = true;
    s.reason = fmt::format(
        "a worker thread was {:.0f}% busy: the generator, not the server, may set the pace "
        "(add --threads or machines)",
        s.cpu_max * 100);
  } else if (s.schedule_lag_p99_ns > kLagLimit) {
    s.saturated = true;
    s.reason = fmt::format("iterations started {} late (p99): the arrival rate was not met on time",
                           FormatDuration(s.schedule_lag_p99_ns));
  } else if (s.timer_lag_p99_ns > kLagLimit) {
    s.saturated = true;
    s.reason = fmt::format("the event loop ran {} late (p99)", FormatDuration(s.timer_lag_p99_ns));
  }
  return s;
}

namespace {

nlohmann::ordered_json LatencyJson(const Histogram& h) {
  auto ms = [](int64_t ns) { return static_cast<double>(ns) / 1e6; };
  return {{"count", h.count()},
          {"min", ms(h.min())},
          {"avg", h.mean() / 1e6},
          {"med", ms(h.ValueAtPercentile(50))},
          {"p90", ms(h.ValueAtPercentile(90))},
          {"p95", ms(h.ValueAtPercentile(95))},
          {"p99", ms(h.ValueAtPercentile(99))},
          {"p99_9", ms(h.ValueAtPercentile(99.9))},
          {"max", ms(h.max())}};
}

std::string LatencyText(const Histogram& h) {
  return fmt::format("avg={} min={} med={} p(90)={} p(95)={} p(99)={} p(99.9)={} max={}",
                     FormatDuration(static_cast<int64_t>(h.mean())), FormatDuration(h.min()),
                     FormatDuration(h.ValueAtPercentile(50)), FormatDuration(h.ValueAtPercentile(90)),
                     FormatDuration(h.ValueAtPercentile(95)), FormatDuration(h.ValueAtPercentile(99)),
                     FormatDuration(h.ValueAtPercentile(99.9)), FormatDuration(h.max()));
}

struct Totals {
  uint64_t requests = 0, failures = 0, bytes_sent = 0, bytes_received = 0;
  Histogram duration, ok_duration, connect, tls, ttfb, dns;
  std::map<int, uint64_t> status;
  std::map<ErrorKind, uint64_t> errors;
  std::map<uint16_t, SeriesStats> by_request;
  ScenarioStats scenarios;
  uint32_t vus_max = 0;
};

Totals Collect(const IntervalSnapshot& t) {
  Totals out;
  for (const auto& [packed, s] : t.series) {
    const SeriesKey key = SeriesKey::Unpack(packed);
    out.requests += s.requests;
    out.failures += s.failures;
    out.bytes_sent += s.bytes_sent;
    out.bytes_received += s.bytes_received;
    out.duration.Merge(s.duration);
    if (key.error == ErrorKind::kNone) out.ok_duration.Merge(s.duration);
    out.connect.Merge(s.connect);
    out.tls.Merge(s.tls);
    out.ttfb.Merge(s.ttfb);
    out.dns.Merge(s.dns);
    if (key.status != 0) out.status[key.status] += s.requests;
    if (key.error != ErrorKind::kNone) out.errors[key.error] += s.requests;
    out.by_request[key.request].Merge(s);
  }
  for (const auto& sc : t.scenarios) {
    out.scenarios.MergeAcrossWorkers(sc);
    out.vus_max += sc.vus_active;
  }
  return out;
}

double PerSecond(uint64_t n, int64_t duration_ns) {
  return duration_ns > 0 ? static_cast<double>(n) * 1e9 / static_cast<double>(duration_ns) : 0.0;
}

std::string EntryLabel(const SeriesNames& names, uint16_t index) {
  if (index >= names.requests.size()) return "?";
  const NameEntry& e = names.requests[index];
  return e.group.empty() ? e.name : e.group + " " + e.name;
}

// Checks as the `checks` threshold counts them: script check() calls by name, and each declarative request's
// status expectation (one row per request name).
struct CheckRow {
  std::string group, name;
  CheckCounts counts;
  std::string label() const { return group.empty() ? name : group + " " + name; }
};
struct CheckTotals {
  uint64_t checks = 0, passes = 0;
  std::vector<CheckRow> rows;  // status expectations first (request-name order), then check() calls
  std::vector<std::pair<uint16_t, const Histogram*>> groups;
};

CheckTotals CollectChecks(const IntervalSnapshot& totals, const SeriesNames& names, const SummaryMeta& meta) {
  CheckTotals t;
  std::map<uint16_t, CheckCounts> status;
  for (const auto& [packed, s] : totals.series) {
    const SeriesKey key = SeriesKey::Unpack(packed);
    if (key.status == 0) continue;  // no response: not a check
    if (key.scenario < meta.scenarios.size() && meta.scenarios[key.scenario].script) continue;
    CheckCounts& c = status[key.request];
    (FailsStatusExpectation(key.error) ? c.fails : c.passes) += s.requests;
  }
  for (const auto& [i, c] : status) t.rows.push_back({"", EntryLabel(names, i) + ": status as expected", c});
  std::vector<std::pair<uint16_t, CheckCounts>> calls(totals.checks.begin(), totals.checks.end());
  std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [i, c] : calls) {
    const NameEntry e = i < names.requests.size() ? names.requests[i] : NameEntry{};
    t.rows.push_back({e.group, e.name, c});
  }
  for (const auto& row : t.rows) {
    t.checks += row.counts.passes + row.counts.fails;
    t.passes += row.counts.passes;
  }
  for (const auto& [i, h] : totals.groups) t.groups.emplace_back(i, &h);
  std::sort(t.groups.begin(), t.groups.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return t;
}

}  // namespace

nlohmann::ordered_json SummaryJson(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline,
                                   const SeriesNames& names, const SummaryMeta& meta) {
  const Totals t = Collect(totals);
  const Saturation sat = AssessGenerator(totals, timeline);
  nlohmann::ordered_json j;
  j["meridian"] = kVersion;
  j["title"] = meta.title;
  j["started_at"] = FormatIsoTime(meta.started_wall_ns);
  j["duration_s"] = static_cast<double>(meta.duration_ns) / 1e9;
  j["threads"] = meta.threads;
  j["stopped_early"] = meta.stopped_early;
  j["requests"] = {
      {"count", t.requests},
      {"rate", PerSecond(t.requests, meta.duration_ns)},
      {"failed", t.failures},
      {"failed_rate", t.requests ? static_cast<double>(t.failures) / static_cast<double>(t.requests) : 0}};
  j["latency_ms"] = LatencyJson(t.duration);
  j["latency_ok_ms"] = LatencyJson(t.ok_duration);
  j["phases_ms"] = {{"dns", LatencyJson(t.dns)},
                    {"connect", LatencyJson(t.connect)},
                    {"tls", LatencyJson(t.tls)},
                    {"ttfb", LatencyJson(t.ttfb)}};
  nlohmann::ordered_json status = nlohmann::ordered_json::object();
  for (const auto& [code, n] : t.status) status[std::to_string(code)] = n;
  j["status"] = status;
  nlohmann::ordered_json errors = nlohmann::ordered_json::object();
  for (const auto& [kind, n] : t.errors) errors[ErrorKindName(kind)] = n;
  j["errors"] = errors;
  const CheckTotals st = CollectChecks(totals, names, meta);
  if (st.checks > 0) {
    nlohmann::ordered_json checks = nlohmann::ordered_json::array();
    for (const auto& row : st.rows) {
      checks.push_back({{"name", row.name},
                        {"group", row.group},
                        {"passes", row.counts.passes},
                        {"fails", row.counts.fails}});
    }
    j["checks"] = {{"count", st.checks},
                   {"passes", st.passes},
                   {"rate", static_cast<double>(st.passes) / static_cast<double>(st.checks)},
                   {"by_name", checks}};
  }
  if (!st.groups.empty()) {
    nlohmann::ordered_json groups = nlohmann::ordered_json::array();
    for (const auto& [i, h] : st.groups) {
      const NameEntry e = i < names.requests.size() ? names.requests[i] : NameEntry{};
      nlohmann::ordered_json g = {{"group", e.group + "::" + e.name}, {"count", h->count()}};
      g["duration_ms"] = LatencyJson(*h);
      groups.push_back(g);
    }
    j["groups"] = groups;
  }
  nlohmann::ordered_json examples = nlohmann::ordered_json::array();
  for (const auto& [kind, message] : totals.error_examples) {
    examples.push_back({{"kind", ErrorKindName(kind)}, {"message", message}});
  }
  j["error_examples"] = examples;
  j["bytes"] = {{"sent", t.bytes_sent}, {"received", t.bytes_received}};
  j["connections_opened"] = meta.connections_opened;
  j["retries"] = meta.retries;
  nlohmann::ordered_json dns = nlohmann::ordered_json::array();
  for (const auto& [host, ns] : meta.dns_lookups)
    dns.push_back({{"host", host}, {"ms", static_cast<double>(ns) / 1e6}});
  j["dns_lookups"] = dns;
  nlohmann::ordered_json scenarios = nlohmann::ordered_json::array();
  for (size_t i = 0; i < meta.scenarios.size(); ++i) {
    const ScenarioStats s = i < totals.scenarios.size() ? totals.scenarios[i] : ScenarioStats{};
    scenarios.push_back({{"name", meta.scenarios[i].name},
                         {"executor", meta.scenarios[i].executor},
                         {"description", meta.scenarios[i].description},
                         {"model", meta.scenarios[i].open_model ? "open" : "closed"},
                         {"iterations", s.iterations},
                         {"failed_iterations", s.failed_iterations},
                         {"dropped_iterations", s.dropped_iterations},
                         {"interrupted_iterations", s.interrupted_iterations},
                         {"vus_max", s.vus_active},
                         {"vus_allocated", s.vus_allocated},
                         {"iteration_duration_ms", LatencyJson(s.iteration_duration)}});
  }
  j["scenarios"] = scenarios;
  nlohmann::ordered_json by_request = nlohmann::ordered_json::array();
  for (const auto& [index, s] : t.by_request) {
    by_request.push_back({{"name", index < names.requests.size() ? names.requests[index].name : "?"},
                          {"count", s.requests},
                          {"failed", s.failures},
                          {"latency_ms", LatencyJson(s.duration)}});
  }
  j["by_request"] = by_request;
  j["generator"] = {{"saturated", sat.saturated},
                    {"reason", sat.reason},
                    {"cpu_max", sat.cpu_max},
                    {"timer_lag_p99_ms", static_cast<double>(sat.timer_lag_p99_ns) / 1e6},
                    {"schedule_lag_p99_ms", static_cast<double>(sat.schedule_lag_p99_ns) / 1e6}};
  nlohmann::ordered_json tl = nlohmann::ordered_json::array();
  for (const TimelinePoint& p : timeline) {
    tl.push_back({{"t", p.second},
                  {"requests", p.requests},
                  {"failed", p.failures},
                  {"iterations", p.iterations},
                  {"dropped", p.dropped},
                  {"p50_ms", static_cast<double>(p.p50_ns) / 1e6},
                  {"p95_ms", static_cast<double>(p.p95_ns) / 1e6},
                  {"p99_ms", static_cast<double>(p.p99_ns) / 1e6},
                  {"max_ms", static_cast<double>(p.max_ns) / 1e6},
                  {"vus", p.vus_active},
                  {"cpu", p.cpu_share_max}});
  }
  j["timeline"] = tl;
  return j;
}

std::string SummaryText(const IntervalSnapshot& totals, const std::vector<TimelinePoint>& timeline,
                        const SeriesNames& names, const SummaryMeta& meta) {
  const Totals t = Collect(totals);
  const Saturation sat = AssessGenerator(totals, timeline);
  std::string out;
  auto line = [&](std::string_view name, const std::string& value) {
    std::string label(name);
    label.push_back(' ');
    while (label.size() < 30) label.push_back('.');
    out += fmt::format("  {}: {}\n", label, value);
  };
  out += fmt::format("\n  {}\n", meta.title);
  for (const auto& s : meta.scenarios) {
    out += fmt::format("  scenario {} · {} · {} model\n", s.name, s.description,
                       s.open_model ? "open" : "closed");
  }
  out += fmt::format("  ran {} on {} thread{}{}\n\n", FormatDuration(meta.duration_ns), meta.threads,
                     meta.threads == 1 ? "" : "s", meta.stopped_early ? " (stopped early)" : "");
  const CheckTotals st = CollectChecks(totals, names, meta);
  if (st.checks > 0) {
    size_t width = 8;
    for (const auto& row : st.rows) width = std::max(width, row.label().size());
    for (const auto& row : st.rows) {
      const CheckCounts& c = row.counts;
      const uint64_t n = c.passes + c.fails;
      out += fmt::format("    {} {:<{}}  {:>7.2f}%  \u2713 {}  \u2717 {}\n", c.fails ? "\u2717" : "\u2713",
                         row.label(), width, 100.0 * static_cast<double>(c.passes) / static_cast<double>(n),
                         c.passes, c.fails);
    }
    out += "\n";
    line("checks", fmt::format("{:.2f}%  {} of {}",
                               100.0 * static_cast<double>(st.passes) / static_cast<double>(st.checks),
                               st.passes, st.checks));
  }
  for (const auto& [i, h] : st.groups) line("group_duration " + EntryLabel(names, i), LatencyText(*h));
  bool script_errors = false;
  for (const auto& [kind, message] : totals.error_examples) {
    if (kind != ErrorKind::kScript) continue;
    if (!script_errors) line("iteration errors", "first ones:");
    script_errors = true;
    out += fmt::format("      {}\n", message);
  }

  line("http_reqs", fmt::format("{}  {:.1f}/s", t.requests, PerSecond(t.requests, meta.duration_ns)));
  line("http_req_duration", LatencyText(t.duration));
  if (t.failures > 0 && t.ok_duration.count() > 0) {
    line("  { expected_response:true }", LatencyText(t.ok_duration));
  }
  const double failed_rate =
      t.requests ? 100.0 * static_cast<double>(t.failures) / static_cast<double>(t.requests) : 0;
  line("http_req_failed", fmt::format("{:.2f}%  {} of {}", failed_rate, t.failures, t.requests));
  if (!t.errors.empty()) {
    std::string kinds;
    for (const auto& [kind, n] : t.errors)
      kinds += fmt::format("{}{}={}", kinds.empty() ? "" : " ", ErrorKindName(kind), n);
    line("  errors by kind", kinds);
    for (const auto& [kind, message] : totals.error_examples) {
      if (kind != ErrorKind::kScript) out += fmt::format("      {}: {}\n", ErrorKindName(kind), message);
    }
  }
  std::string statuses;
  for (const auto& [code, n] : t.status)
    statuses += fmt::format("{}{}={}", statuses.empty() ? "" : " ", code, n);
  line("http_status", statuses.empty() ? "none" : statuses);
  if (t.dns.count() > 0) line("http_req_dns_lookup", LatencyText(t.dns));
  line("http_req_connecting",
       t.connect.count() ? fmt::format("{}  ({} new connections)", LatencyText(t.connect), t.connect.count())
                         : "none (all connections reused)");
  if (t.tls.count() > 0) line("http_req_tls_handshaking", LatencyText(t.tls));
  line("http_req_waiting (ttfb)", LatencyText(t.ttfb));
  for (size_t i = 0; i < meta.scenarios.size(); ++i) {
    const ScenarioStats s = i < totals.scenarios.size() ? totals.scenarios[i] : ScenarioStats{};
    const std::string prefix = meta.scenarios.size() > 1 ? meta.scenarios[i].name + " " : "";
    line(prefix + "iterations",
         fmt::format("{}  {:.1f}/s", s.iterations, PerSecond(s.iterations, meta.duration_ns)));
    line(prefix + "iteration_duration", LatencyText(s.iteration_duration));
    if (meta.scenarios[i].open_model || s.dropped_iterations > 0) {
      line(prefix + "dropped_iterations", std::to_string(s.dropped_iterations));
    }
    if (s.interrupted_iterations > 0)
      line(prefix + "interrupted_iterations", std::to_string(s.interrupted_iterations));
    line(prefix + "vus_max", fmt::format("{} (allocated {})", s.vus_active, s.vus_allocated));
  }
  line("data_received", fmt::format("{}  {}/s", FormatBytes(static_cast<double>(t.bytes_received)),
                                    FormatBytes(PerSecond(t.bytes_received, meta.duration_ns))));
  line("data_sent", fmt::format("{}  {}/s", FormatBytes(static_cast<double>(t.bytes_sent)),
                                FormatBytes(PerSecond(t.bytes_sent, meta.duration_ns))));
  std::string conn = fmt::format("{} opened", meta.connections_opened);
  if (meta.retries)
    conn += fmt::format(", {} requests re-sent after the server closed an idle connection", meta.retries);
  line("connections", conn);
  for (const auto& [host, ns] : meta.dns_lookups) {
    if (ns > 0) line("dns", fmt::format("{} resolved once before the start in {}", host, FormatDuration(ns)));
  }
  line("generator", sat.saturated ? "SATURATED: " + sat.reason
                                  : fmt::format("not saturated (worker CPU max {:.0f}%, loop lag p99 {})",
                                                sat.cpu_max * 100, FormatDuration(sat.timer_lag_p99_ns)));
  if (t.by_request.size() > 1) {
    out += "\n  per request:\n";
    size_t width = 8;
    for (const auto& [index, s] : t.by_request) {
      width = std::max(width, EntryLabel(names, index).size());
    }
    out += fmt::format("    {:<{}}  {:>10}  {:>8}  {:>9}  {:>9}  {:>9}\n", "name", width, "requests",
                       "failed", "p50", "p95", "p99");
    for (const auto& [index, s] : t.by_request) {
      out += fmt::format("    {:<{}}  {:>10}  {:>8}  {:>9}  {:>9}  {:>9}\n", EntryLabel(names, index), width,
                         s.requests, s.failures, FormatDuration(s.duration.ValueAtPercentile(50)),
                         FormatDuration(s.duration.ValueAtPercentile(95)),
                         FormatDuration(s.duration.ValueAtPercentile(99)));
    }
  }
  out += "\n";
  return out;
}

}  // namespace meridian::stats
