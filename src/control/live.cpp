#include "control/live.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "control/orchestrator.h"
#include "core/json.h"
#include "http/api.h"
#include "stats/summary.h"

namespace meridian::control {

namespace {

using nlohmann::ordered_json;

// Milliseconds with microsecond resolution: what the page shows, and fewer bytes than a double's 17 digits.
double Ms(int64_t ns) { return std::round(static_cast<double>(ns) / 1e3) / 1e3; }

struct Point {
  uint64_t requests = 0, failures = 0, iterations = 0, dropped = 0, check_passes = 0, check_fails = 0;
  uint32_t vus = 0;
  stats::Histogram duration;

  void Add(const Point& o) {
    requests += o.requests;
    failures += o.failures;
    iterations += o.iterations;
    dropped += o.dropped;
    check_passes += o.check_passes;
    check_fails += o.check_fails;
    vus += o.vus;
    duration.Merge(o.duration);
  }
  // The next second of the same region: counts add up, VUs are a level (the highest is kept).
  void AddLater(const Point& o) {
    const uint32_t level = std::max(vus, o.vus);
    Add(o);
    vus = level;
  }
  ordered_json Json() const {
    return {{"n", requests},
            {"f", failures},
            {"p",
             {Ms(duration.ValueAtPercentile(50)), Ms(duration.ValueAtPercentile(90)),
              Ms(duration.ValueAtPercentile(95)), Ms(duration.ValueAtPercentile(99)), Ms(duration.max())}},
            {"vus", vus},
            {"it", iterations},
            {"drop", dropped},
            {"cp", check_passes},
            {"cf", check_fails}};
  }
};

bool SeriesMatches(const Run& run, const LiveFilter& f, const stats::SeriesKey& key) {
  if (f.status >= 0 && key.status != f.status) return false;
  if (!f.scenario.empty() &&
      (key.scenario >= run.names.scenarios.size() || run.names.scenarios[key.scenario] != f.scenario)) {
    return false;
  }
  if (!f.name.empty() &&
      (key.request >= run.names.requests.size() || run.names.requests[key.request].name != f.name)) {
    return false;
  }
  return true;
}

Point PointOf(const Run& run, const stats::IntervalSnapshot& s, const LiveFilter& f) {
  Point p;
  for (const auto& [packed, series] : s.series) {
    if (!SeriesMatches(run, f, stats::SeriesKey::Unpack(packed))) continue;
    p.requests += series.requests;
    p.failures += series.failures;
    p.duration.Merge(series.duration);
  }
  for (size_t i = 0; i < s.scenarios.size(); ++i) {
    if (!f.scenario.empty() && (i >= run.names.scenarios.size() || run.names.scenarios[i] != f.scenario)) {
      continue;
    }
    p.iterations += s.scenarios[i].iterations;
    p.dropped += s.scenarios[i].dropped_iterations;
    p.vus += s.scenarios[i].vus_active;
  }
  for (const auto& [index, counts] : s.checks) {
    if (index >= run.names.requests.size()) continue;
    const stats::NameEntry& e = run.names.requests[index];
    if (!f.check.empty() && e.name != f.check) continue;
    if (!f.scenario.empty() &&
        (e.scenario >= run.names.scenarios.size() || run.names.scenarios[e.scenario] != f.scenario)) {
      continue;
    }
    p.check_passes += counts.passes;
    p.check_fails += counts.fails;
  }
  return p;
}

void Append(std::string& out, std::string_view text) {
  out += out.empty() ? "[" : ",";
  out += text;
}

}  // namespace

std::string LiveFilter::Key() const {
  return fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}", region, scenario, name, check, status);
}

bool IsFiltered(const http::ServerRequest& req) {
  for (const char* key : {"region", "scenario", "name", "status", "check"}) {
    if (req.HasQuery(key)) return true;
  }
  return false;
}

LiveFilter LiveFilterFrom(const http::ServerRequest& req, const Run& run) {
  LiveFilter f;
  f.region = req.Query("region");
  f.scenario = req.Query("scenario");
  f.name = req.Query("name");
  f.check = req.Query("check");
  if (!f.region.empty()) {
    std::string allowed;
    bool known = false;
    for (const auto& r : run.plan.regions) {
      known |= r.name == f.region;
      allowed += (allowed.empty() ? "" : ", ") + r.name;
    }
    if (!known) {
      throw http::ApiError{400, "invalid_query",
                           fmt::format("region: the run has no region '{}' (allowed: {})", f.region, allowed),
                           "region"};
    }
  }
  if (req.HasQuery("status")) f.status = static_cast<int>(http::QueryInt(req, "status", -1, 0, 999));
  return f;
}

ordered_json SecondJson(const Run& run, int64_t second, const LiveFilter& filter) {
  Point all;
  ordered_json regions = ordered_json::object();
  for (const auto& [region, seconds] : run.region_seconds) {
    if (!filter.region.empty() && region != filter.region) continue;
    auto it = seconds.find(second);
    if (it == seconds.end()) continue;
    const Point p = PointOf(run, it->second, filter);
    regions[region] = p.Json();
    all.Add(p);
  }
  return {{"t", second}, {"all", all.Json()}, {"regions", std::move(regions)}};
}

ordered_json HistoryJson(const Run& run, int64_t full_seconds, int64_t older_points) {
  std::set<int64_t> seconds;
  for (const auto& [region, per_second] : run.region_seconds) {
    for (const auto& [s, snap] : per_second) seconds.insert(s);
  }
  ordered_json out = ordered_json::array();
  if (seconds.empty()) return out;
  const int64_t first = *seconds.begin(), last = *seconds.rbegin();
  const int64_t full_from = std::max(first, last - std::max<int64_t>(0, full_seconds) + 1);
  const int64_t older = full_from - first;
  const int64_t width = std::max<int64_t>(
      1, (older + std::max<int64_t>(1, older_points) - 1) / std::max<int64_t>(1, older_points));
  const LiveFilter everything;
  auto bucket = [&](int64_t from, int64_t to) {  // [from, to)
    Point all;
    ordered_json regions = ordered_json::object();
    for (const auto& [region, per_second] : run.region_seconds) {
      Point p;
      bool any = false;
      for (auto it = per_second.lower_bound(from); it != per_second.end() && it->first < to; ++it) {
        p.AddLater(PointOf(run, it->second, everything));
        any = true;
      }
      if (!any) continue;
      regions[region] = p.Json();
      all.Add(p);
    }
    if (regions.empty()) return;
    ordered_json j = {{"t", from}};
    if (to - from > 1) j["w"] = to - from;
    j["all"] = all.Json();
    j["regions"] = std::move(regions);
    out.push_back(std::move(j));
  };
  for (int64_t s = first; s < full_from; s += width) bucket(s, std::min(s + width, full_from));
  for (auto it = seconds.lower_bound(full_from); it != seconds.end(); ++it) bucket(*it, *it + 1);
  return out;
}

SecondsText SecondsAfter(const Run& run, const LiveFilter& filter, int64_t after) {
  std::set<int64_t> seconds;
  for (const auto& [region, per_second] : run.region_seconds) {
    for (const auto& [s, snap] : per_second) {
      if (s > after) seconds.insert(s);
    }
  }
  SecondsText out;
  for (int64_t s : seconds) Append(out.json, JsonText(SecondJson(run, s, filter)));
  out.json = out.json.empty() ? "[]" : out.json + "]";
  out.last = seconds.empty() ? -1 : *seconds.rbegin();
  return out;
}

ordered_json LiveRunJson(const Run& run, Orchestrator& orchestrator) {
  const int64_t now_wall_ns = orchestrator.clock().Wall(), now_mono = orchestrator.clock().Mono();
  stats::IntervalSnapshot totals;
  for (const auto& [id, p] : run.progress) totals.MergeAcrossWorkers(p.totals);
  const stats::SummaryMeta meta = SummaryMetaFor(run, {});
  ordered_json summary = stats::SummaryJson(totals, {}, run.names, meta);
  summary.erase("timeline");
  summary["thresholds"] = ThresholdsJson(EvaluateThresholds(run, false));
  ordered_json steps = ordered_json::array();
  for (const auto& s : run.step_instances) {
    ordered_json one = {{"step", s.step}, {"instance", s.instance}, {"agent", s.agent_id}};
    one["result"] = nlohmann::json::parse(s.result_json, nullptr, false);
    steps.push_back(std::move(one));
  }
  summary["steps"] = std::move(steps);
  ordered_json agents = ordered_json::array();
  for (const auto& a : run.assignments) {
    ordered_json one = {{"id", a.agent_id},
                        {"name", orchestrator.AgentName(a.agent_id)},
                        {"region", a.region},
                        {"state", store::AssignmentStateName(a.state)}};
    uint64_t requests = 0;
    if (auto p = run.progress.find(a.agent_id); p != run.progress.end()) {
      for (const auto& [key, series] : p->second.totals.series) requests += series.requests;
    }
    one["requests"] = requests;
    one["start_skew_ms"] = a.started_ns && run.row.start_at_ns
                               ? ordered_json(Ms(a.started_ns - run.row.start_at_ns))
                               : ordered_json();
    if (auto live = orchestrator.agents().find(a.agent_id); live != orchestrator.agents().end()) {
      one["clock_offset_ms"] = Ms(live->second.row.clock_offset_ns);
      one["last_contact_s"] =
          std::round(static_cast<double>(now_mono - live->second.last_seen_mono) / 1e8) / 10;
    }
    agents.push_back(std::move(one));
  }
  return {{"run", RunJson(run, now_wall_ns)}, {"agents", std::move(agents)}, {"summary", std::move(summary)}};
}

std::string SseEvent(std::string_view name, int64_t id, std::string_view json) {
  std::string out = fmt::format("event: {}\n", name);
  if (id >= 0) out += fmt::format("id: {}\n", id);
  out += "data: ";
  out += json;  // JSON text has no raw newline
  out += "\n\n";
  return out;
}

LiveFeeds::Group& LiveFeeds::GroupFor(Feed& feed, const Run& run, const LiveFilter& filter) {
  auto [it, added] = feed.groups.try_emplace(filter.Key());
  Group& g = it->second;
  if (added) {
    g.filter = filter;
    std::set<int64_t> seconds;
    for (const auto& [region, per_second] : run.region_seconds) {
      for (const auto& [s, snap] : per_second) seconds.insert(s);
    }
    for (int64_t s : seconds) g.seconds[s] = JsonText(SecondJson(run, s, filter));
  }
  return g;
}

void LiveFeeds::Watch(Run& run, const LiveFilter& filter, int64_t after_second, http::StreamWriter out) {
  Feed& feed = feeds_[run.row.id];
  Group& g = GroupFor(feed, run, filter);
  std::string history;
  int64_t newest = -1;
  for (auto it = g.seconds.upper_bound(after_second); it != g.seconds.end(); ++it) {
    Append(history, it->second);
    newest = it->first;
  }
  std::string first = ": meridian live feed\nretry: 1000\n\n";
  if (!history.empty()) first += SseEvent("seconds", newest, history + "]");
  first += SseEvent("run", -1, JsonText(LiveRunJson(run, orchestrator_)));
  if (out.Write(first)) g.viewers.push_back(std::move(out));
}

void LiveFeeds::Tick() {
  for (auto feed_it = feeds_.begin(); feed_it != feeds_.end();) {
    Feed& feed = feed_it->second;
    Run* run = orchestrator_.Active(feed_it->first);
    if (!run) {
      // The run ended (and left memory): its stored tables, then the end of every stream.
      const ordered_json final_json = final_json_ ? final_json_(feed_it->first) : ordered_json();
      const std::string end = SseEvent("end", -1, JsonText(final_json));
      for (auto& [key, g] : feed.groups) {
        for (auto& v : g.viewers) {
          v.Write(end);
          v.End();
        }
      }
      feed_it = feeds_.erase(feed_it);
      continue;
    }
    const std::string tables = SseEvent("run", -1, JsonText(LiveRunJson(*run, orchestrator_)));
    for (auto g_it = feed.groups.begin(); g_it != feed.groups.end();) {
      Group& g = g_it->second;
      std::string changed;
      int64_t newest = -1;
      for (int64_t s : run->changed_seconds) {
        std::string text = JsonText(SecondJson(*run, s, g.filter));
        std::string& cached = g.seconds[s];
        if (cached == text) continue;
        cached = std::move(text);
        Append(changed, cached);
        newest = std::max(newest, s);
      }
      std::string bytes;
      if (!changed.empty()) bytes = SseEvent("seconds", newest, changed + "]");
      bytes += tables;
      std::erase_if(g.viewers, [&](http::StreamWriter& v) { return !v.Write(bytes); });
      if (g.viewers.empty()) {
        g_it = feed.groups.erase(g_it);  // its history is rebuilt for the next viewer of this filter
      } else {
        ++g_it;
      }
    }
    run->changed_seconds.clear();
    if (feed.groups.empty()) {
      feed_it = feeds_.erase(feed_it);
    } else {
      ++feed_it;
    }
  }
  // Runs nobody watches: nothing is computed for them, and what changed is forgotten (a new group is built
  // from every second).
  for (const auto& [id, run] : orchestrator_.runs()) {
    if (!feeds_.count(id)) run->changed_seconds.clear();
  }
}

size_t LiveFeeds::viewers() const {
  size_t n = 0;
  for (const auto& [id, feed] : feeds_) {
    for (const auto& [key, g] : feed.groups) n += g.viewers.size();
  }
  return n;
}

}  // namespace meridian::control
