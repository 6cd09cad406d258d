#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// What a run leaves behind, as pure functions of the run and its summary (golden files in testdata/ pin
// them): the folder runs/ID/ (plan.yaml, summary.json, metrics.csv, RUN.txt, services.json, FINISHED.txt),
// the services.json Constellation and ardere users read (agents, scenarios, step instances), and the JUnit
// XML CI servers read (the run and each threshold as a test case).

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "control/run.h"
#include "store/store.h"

namespace meridian::control {

// "SECONDS.NANOS" since the Unix epoch, as RUN.txt and FINISHED.txt hold it ("1798761600.000000042").
std::string EpochText(int64_t wall_ns);

// services.json: the run's agents (by slot, named from `agent_names`, id -> name), the scenarios each ran,
// and every step instance its agent reported.
nlohmann::ordered_json ServicesJson(const Run& run, const std::map<std::string, std::string>& agent_names);

// JUnit XML of an ended run: one test case for the run (an error unless it passed or failed on its
// thresholds) and one per threshold (a failure when crossed).
std::string JunitXml(const store::RunRow& row, const nlohmann::json& summary);

// The one-file report (report.html): the dashboard's run page with everything inline
// (dashboard::ReportPage) — `end` is {run, summary} as the live feed's `end` event carries them, `events`
// the state changes (EventsJson), the history HistoryJson's: the last kReportFullSeconds one point each,
// older ones in at most kReportOlderPoints buckets.
inline constexpr int64_t kReportFullSeconds = 600;
inline constexpr int64_t kReportOlderPoints = 600;
std::string ReportHtml(const Run& run, const nlohmann::ordered_json& end,
                       const nlohmann::ordered_json& events, int64_t generated_ns);

// `runs compare A B --format html`: the comparison (CompareJson) and both runs' histories (HistoryJson, as
// the report holds them) in one self-contained page, drawn by the dashboard's compare view.
std::string CompareHtml(const nlohmann::ordered_json& compare, const Run& a, const Run& b,
                        int64_t generated_ns);

// The summary as the page and summary.json show it: without its text, CSV and (with `timeline` false) the
// per-second timeline, which the page charts from its own history.
nlohmann::ordered_json ShownSummary(nlohmann::ordered_json summary, bool timeline);

// The files of runs/ID/, name and content, in the order they are written; `finished_ns` is FINISHED.txt's
// instant (read once, by the caller), `report_html` ReportHtml's page.
std::vector<std::pair<std::string, std::string>> ArtefactFiles(const Run& run, const Summary& summary,
                                                               const nlohmann::ordered_json& services,
                                                               int64_t finished_ns, std::string report_html);

// The names GET /v1/runs/{id}/artefacts/{name} serves.
const std::vector<std::string>& ArtefactNames();

}  // namespace meridian::control
