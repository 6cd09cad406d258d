#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// The dashboard's live feed: GET /v1/runs/{id}/live as Server-Sent Events. Each second, for every run with
// viewers, the seconds that changed (reports arrive per agent, so a second fills in over a moment) are
// computed once per distinct filter from the merged per-region snapshots, encoded once, and written to every
// viewer of that filter; the page's tables (the run, its thresholds, the summary's figures so far) once per
// run. A viewer that reconnects with Last-Event-ID gets the seconds after it (and the few before, which may
// have changed); one that arrives late gets the whole history first. When the run ends, viewers get the
// stored summary and an `end` event.
//
// Events:  `seconds` (id = the newest second in it): [{t, all: P, regions: {name: P}}], P = {n requests,
//          f failed, p [p50 p90 p95 p99 max] ms, vus, it iterations, drop dropped, cp/cf checks
//          passed/failed} `run`: LiveRunJson   `end`: {run, summary} as stored, once, when the run ended

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/run.h"
#include "http/server.h"

namespace meridian::control {

class Orchestrator;

// What a viewer looks at: empty fields match everything.
struct LiveFilter {
  std::string region, scenario, name, check;
  int status = -1;  // -1: any; 0: no response

  std::string Key() const;
};

// The filter from a request's query (region, scenario, name, status, check); 400 naming the field for a
// region the plan does not have or a status that is not 0-999.
LiveFilter LiveFilterFrom(const http::ServerRequest& req, const Run& run);
// Whether a request names any of those filters.
bool IsFiltered(const http::ServerRequest& req);

// One second of a run under a filter: the merged point and each region's.
nlohmann::ordered_json SecondJson(const Run& run, int64_t second, const LiveFilter& filter);

// The seconds after `after` of a run under a filter, one SecondJson each, as a JSON array's text, and the
// newest of them (-1: none): what the live feed sends first.
struct SecondsText {
  std::string json;
  int64_t last = -1;
};
SecondsText SecondsAfter(const Run& run, const LiveFilter& filter, int64_t after);

// An ended run's unfiltered SecondsAfter(run, {}, -1), written beside its artefacts when it ends: its page
// then opens from that file instead of merging every stored report again.
inline constexpr const char* kHistoryFile = "history.json";

// A run's whole history for its one-file report, unfiltered: the last `full_seconds` seconds one point each,
// the older ones merged into buckets of equal width so that at most `older_points` remain. A bucket merges
// its seconds' histograms (its percentiles are true ones, not averages), counts its requests, failures,
// iterations, drops and checks (the page divides by its width "w", present when more than 1), and keeps
// the highest VUs of its seconds.
nlohmann::ordered_json HistoryJson(const Run& run, int64_t full_seconds, int64_t older_points);

// The page's tables for a live run: {run: progress, agents: [state, requests, start skew, clock offset, last
// contact], summary: the summary's figures so far with thresholds and step instances}.
nlohmann::ordered_json LiveRunJson(const Run& run, Orchestrator& orchestrator);

class LiveFeeds {
 public:
  explicit LiveFeeds(Orchestrator& orchestrator) : orchestrator_(orchestrator) {}

  // A new viewer of a live run: the history after `after_second` (-1: all), the run's tables, then every
  // change each Tick.
  void Watch(Run& run, const LiveFilter& filter, int64_t after_second, http::StreamWriter out);
  // Once a second: changed seconds and the tables to every viewer; viewers of runs that ended get the final
  // tables (`final_json` for that run id) and the end of their stream.
  void Tick();
  // Called by Tick for a run that left the orchestrator: its stored tables, or null when it cannot be read.
  using FinalJson = std::function<nlohmann::ordered_json(const std::string& run_id)>;
  void set_final_json(FinalJson f) { final_json_ = std::move(f); }
  size_t viewers() const;

 private:
  struct Group {
    LiveFilter filter;
    std::map<int64_t, std::string> seconds;  // encoded points, by second
    std::vector<http::StreamWriter> viewers;
  };
  struct Feed {
    std::map<std::string, Group> groups;  // by filter key
  };
  Group& GroupFor(Feed& feed, const Run& run, const LiveFilter& filter);

  Orchestrator& orchestrator_;
  FinalJson final_json_;
  std::map<std::string, Feed> feeds_;  // by run id
};

// "event: NAME\nid: ID\ndata: JSON\n\n" (no id line when id < 0).
std::string SseEvent(std::string_view name, int64_t id, std::string_view json);

}  // namespace meridian::control
