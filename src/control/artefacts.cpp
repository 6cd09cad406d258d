#include "control/artefacts.h"

#include <fmt/format.h>

#include "control/live.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/json.h"
#include "dashboard/dashboard.h"

namespace meridian::control {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string XmlEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o.push_back(c);
    }
  }
  return o;
}

}  // namespace

std::string EpochText(int64_t wall_ns) {
  return fmt::format("{}.{:09}", wall_ns / kNanosPerSecond, wall_ns % kNanosPerSecond);
}

ordered_json ServicesJson(const Run& run, const std::map<std::string, std::string>& agent_names) {
  ordered_json agents = ordered_json::array();
  for (const auto& a : run.assignments) {
    const auto name = agent_names.find(a.agent_id);
    ordered_json scenarios = ordered_json::array();
    for (const auto& s : plan::SharesFor(run.plan, plan::AgentSlot{a.region, a.slot})) {
      scenarios.push_back(
          {{"name", run.plan.scenarios[s.scenario].name},
           {"executor", s.executor.Describe()},
           {"stop_after_s",
            static_cast<double>(s.executor.start_time_ns + s.executor.ScheduledDuration()) / 1e9}});
    }
    agents.push_back({{"id", a.agent_id},
                      {"name", name == agent_names.end() ? std::string() : name->second},
                      {"region", a.region},
                      {"slot", a.slot},
                      {"state", store::AssignmentStateName(a.state)},
                      {"run_delay", 0},
                      {"scenarios", scenarios}});
  }
  ordered_json steps = ordered_json::array();
  for (const auto& s : run.plan.steps) {
    ordered_json instances = ordered_json::array();
    for (const auto& row : run.step_instances) {
      if (row.step != s.name) continue;
      const json r = json::parse(row.result_json, nullptr, false);
      if (!r.is_object()) continue;
      const auto seconds = [&](const char* key) {
        const int64_t ns = r.value(key, int64_t{0});
        return ns ? ordered_json(static_cast<double>(ns) / 1e9) : ordered_json(nullptr);
      };
      instances.push_back({{"instance", row.instance},
                           {"agent", row.agent_id},
                           {"state", r.value("state", std::string())},
                           {"exit_code", r.value("exit_code", -1)},
                           {"signal", r.value("signal", 0)},
                           {"restarts", r.value("restarts", 0)},
                           {"intended_at", seconds("intended_ns")},
                           {"started_at", seconds("started_ns")},
                           {"ended_at", seconds("ended_ns")}});
    }
    steps.push_back({{"name", s.name},
                     {"region", s.region},
                     {"instances", s.instances},
                     {"run_delay", static_cast<double>(s.run_delay_ns) / 1e9},
                     {"run_max_time", static_cast<double>(s.run_max_time_ns) / 1e9},
                     {"stop_grace", static_cast<double>(s.stop_grace_ns) / 1e9},
                     {"restart", s.restart_on_failure ? "on-failure" : "never"},
                     {"allow_failure", s.allow_failure},
                     {"instance_results", instances}});
  }
  return {{"run", run.row.id},
          {"start_at", static_cast<double>(run.row.start_at_ns) / 1e9},
          {"agents", agents},
          {"steps", steps}};
}

std::string JunitXml(const store::RunRow& row, const json& summary) {
  const json thresholds = summary.value("thresholds", json::array());
  size_t failures = 0;
  for (const auto& t : thresholds) failures += !t.value("ok", true);
  const bool run_ok = row.state == store::RunState::kPassed || row.state == store::RunState::kFailed;
  const std::string name = XmlEscape(row.name);
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += fmt::format("<testsuites name=\"meridian\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
                   thresholds.size() + 1, failures, run_ok ? 0 : 1);
  x += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n", name,
                   thresholds.size() + 1, failures, run_ok ? 0 : 1);
  x += fmt::format("    <testcase classname=\"{}\" name=\"run {}\">", name, XmlEscape(row.id));
  if (!run_ok) {
    x += fmt::format("<error message=\"{}\">{}</error>", store::RunStateName(row.state),
                     XmlEscape(row.reason));
  }
  x += "</testcase>\n";
  for (const auto& t : thresholds) {
    const std::string test = t.value("metric", "") + " " + t.value("threshold", "");
    x += fmt::format("    <testcase classname=\"{}.thresholds\" name=\"{}\">", name, XmlEscape(test));
    if (!t.value("ok", true)) {
      x += fmt::format("<failure message=\"measured {}\"/>", XmlEscape(t.value("measured_text", "")));
    }
    x += "</testcase>\n";
  }
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

std::string ReportHtml(const Run& run, const ordered_json& end, const ordered_json& events,
                       int64_t generated_ns) {
  const ordered_json none = ordered_json::object();
  const ordered_json& tables = end.is_object() ? end : none;  // null when the store could not be read
  ordered_json data = {{"generated", FormatIsoTime(generated_ns)},
                       {"run", tables.value("run", ordered_json::object())},
                       {"summary", tables.value("summary", ordered_json::object())},
                       {"agents", tables.value("agents", ordered_json::array())},
                       {"events", events},
                       {"seconds", HistoryJson(run, kReportFullSeconds, kReportOlderPoints)}};
  return dashboard::ReportPage(JsonText(data));
}

std::string CompareHtml(const ordered_json& compare, const Run& a, const Run& b, int64_t generated_ns) {
  const auto side = [](const Run& run) {
    return ordered_json{{"run", RunRowJson(run.row)},
                        {"seconds", HistoryJson(run, kReportFullSeconds, kReportOlderPoints)}};
  };
  const ordered_json data = {{"kind", "compare"},
                             {"generated", FormatIsoTime(generated_ns)},
                             {"compare", compare},
                             {"a", side(a)},
                             {"b", side(b)}};
  return dashboard::ReportPage(JsonText(data));
}

ordered_json ShownSummary(ordered_json summary, bool timeline) {
  if (summary.is_object()) {
    summary.erase("text");
    summary.erase("metrics_csv");
    if (!timeline) summary.erase("timeline");
  }
  return summary;
}

std::vector<std::pair<std::string, std::string>> ArtefactFiles(const Run& run, const Summary& summary,
                                                               const ordered_json& services,
                                                               int64_t finished_ns, std::string report_html) {
  return {{"plan.yaml", run.row.plan_yaml},
          {"summary.json", JsonText(ShownSummary(summary.json, true), 2) + "\n"},
          {"metrics.csv", summary.csv},
          {"RUN.txt", EpochText(run.row.start_at_ns) + "\n"},
          {"services.json", JsonText(services, 2) + "\n"},
          {"report.html", std::move(report_html)},
          {"FINISHED.txt", EpochText(finished_ns) + "\n"}};
}

const std::vector<std::string>& ArtefactNames() {
  static const std::vector<std::string> names = {
      "plan.yaml", "services.json", "RUN.txt", "summary.json", "metrics.csv", "report.html", "FINISHED.txt"};
  return names;
}

}  // namespace meridian::control
