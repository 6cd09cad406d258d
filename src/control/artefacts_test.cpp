// What a run leaves behind, against golden files in testdata/: services.json, the JUnit XML and metrics.csv
// of one fixed run. MERIDIAN_UPDATE_GOLDEN=1 rewrites them (read the diff before committing it).
#include "control/artefacts.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "control/live.h"
#include "core/json.h"

namespace meridian::control {
namespace {

using store::AssignmentState;
using store::RunState;

constexpr int64_t kStart = 1'798'761'600'000'000'000;  // 2027-01-01T00:00:00Z
constexpr int64_t kMs = 1'000'000;

void ExpectGolden(const std::string& name, const std::string& got) {
  const std::string path = std::string(MERIDIAN_SOURCE_DIR) + "/src/control/testdata/" + name;
  if (const char* update = std::getenv("MERIDIAN_UPDATE_GOLDEN"); update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << got;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path << " is missing (MERIDIAN_UPDATE_GOLDEN=1 writes it)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str()) << "differs from " << path;
}

// Two regions, a scenario and a step with two instances (one not found), three seconds of reports.
std::unique_ptr<Run> GoldenRun() {
  const std::string yaml =
      "name: golden <&\"checkout\">\n"
      "regions: { eu: {}, us: {} }\n"
      "scenarios:\n  browse:\n    executor: constant-vus\n    vus: 2\n    duration: 3s\n"
      "    requests:\n      - { name: home, url: \"http://127.0.0.1:1/\" }\n"
      "steps:\n  - { name: \"warm up\", command: [\"true\"], region: eu, instances: 2, run_max_time: 5s }\n"
      "thresholds:\n  http_req_duration: [\"p(95)<200ms\"]\n  http_req_failed: [\"rate<0.01\"]\n";
  auto plan = plan::ParsePlan(yaml, "plan.yaml");
  EXPECT_TRUE(plan.ok()) << plan.error().message;
  auto run = std::make_unique<Run>();
  run->plan = std::move(plan).value();
  run->names = plan::Names(run->plan);
  run->static_names = run->names.requests.size();
  run->slots = plan::Slots(run->plan);
  run->row.id = "r-00000000c0de";
  run->row.name = run->plan.name;
  run->row.state = RunState::kFailed;
  run->row.reason = "thresholds failed";
  run->row.plan_yaml = yaml;
  run->row.start_at_ns = kStart;
  run->row.created_ns = kStart - 5'000 * kMs;
  for (const auto& slot : run->slots) {
    store::AssignmentRow a;
    a.run_id = run->row.id;
    a.agent_id = "ag-" + slot.region;
    a.region = slot.region;
    a.slot = slot.index;
    a.state = AssignmentState::kDone;
    a.started_ns = kStart + 2 * kMs;
    a.load_ended_ns = kStart + 3'000 * kMs;
    a.last_seq = 2;
    run->assignments.push_back(a);
  }
  run->step_instances = {
      {"warm up", 0, "ag-eu",
       R"({"state":"exited","exit_code":0,"intended_ns":1798761600000000000,"started_ns":1798761600001000000,"ended_ns":1798761601500000000})",
       ""},
      {"warm up", 1, "ag-eu", R"({"state":"not_started","exit_code":127,"intended_ns":1798761600000000000})",
       ""}};
  for (const auto& a : run->assignments) {
    for (int64_t second = 0; second < 3; ++second) {
      stats::IntervalSnapshot s;
      s.second = second;
      auto& ok = s.Series(stats::SeriesKey{0, 0, 200, stats::ErrorKind::kNone});
      const uint64_t n = a.region == "eu" ? 100 : 50;
      ok.requests = n;
      for (uint64_t i = 0; i < n; ++i)
        ok.duration.Record((10 + static_cast<int64_t>(i) * (second + 1)) * kMs);
      auto& failed = s.Series(stats::SeriesKey{0, 0, 503, stats::ErrorKind::kNone});
      failed.requests = failed.failures = second;
      failed.duration.RecordN(300 * kMs, second);
      s.Scenario(0).iterations = n + second;
      s.Scenario(0).vus_active = 2;
      run->Ingest(a.agent_id, a.region, second, s);
    }
  }
  return run;
}

TEST(Artefacts, ServicesJsonNamesAgentsScenariosAndStepInstances) {
  const auto run = GoldenRun();
  ExpectGolden("services.json",
               JsonText(ServicesJson(*run, {{"ag-eu", "eu-1"}, {"ag-us", "us-1"}}), 2) + "\n");
}

TEST(Artefacts, JunitHasTheRunAndEachThresholdAsTestCases) {
  const auto run = GoldenRun();
  const Summary summary = BuildSummary(*run, {});
  const nlohmann::json j = nlohmann::json::parse(JsonText(summary.json));
  ExpectGolden("junit.xml", JunitXml(run->row, j));
  store::RunRow errored = run->row;
  errored.state = RunState::kErrored;
  errored.reason = "agent <x> lost";
  EXPECT_NE(JunitXml(errored, j).find("<error message=\"errored\">agent &lt;x&gt; lost</error>"),
            std::string::npos);
}

TEST(Artefacts, MetricsCsvHasEachRegionsSeconds) {
  const auto run = GoldenRun();
  ExpectGolden("metrics.csv", BuildSummary(*run, {}).csv);
}

TEST(Artefacts, TheRunFolderHoldsSevenFilesWithTheInstantsAsSecondsAndNanos) {
  const auto run = GoldenRun();
  const Summary summary = BuildSummary(*run, {});
  const auto files =
      ArtefactFiles(*run, summary, ServicesJson(*run, {}), kStart + 3'456'789'012, "<!doctype html>");
  ASSERT_EQ(files.size(), ArtefactNames().size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_NE(std::find(ArtefactNames().begin(), ArtefactNames().end(), files[i].first),
              ArtefactNames().end());
  }
  EXPECT_EQ(files[3], (std::pair<std::string, std::string>{"RUN.txt", "1798761600.000000000\n"}));
  EXPECT_EQ(files[5], (std::pair<std::string, std::string>{"report.html", "<!doctype html>"}));
  EXPECT_EQ(files[6], (std::pair<std::string, std::string>{"FINISHED.txt", "1798761603.456789012\n"}));
  EXPECT_EQ(files[0].second, run->row.plan_yaml);
  EXPECT_EQ(files[2].second, summary.csv);
  const auto json = nlohmann::json::parse(files[1].second);
  EXPECT_FALSE(json.contains("text"));
  EXPECT_FALSE(json.contains("metrics_csv"));
  EXPECT_EQ(EpochText(42), "0.000000042");
}

// The data element's text of a report page, as the page's script reads it.
nlohmann::json ReportData(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"meridian-report\">";
  const size_t from = page.find(open);
  if (from == std::string::npos) return nullptr;
  const size_t to = page.find("</script>", from);
  return nlohmann::json::parse(page.substr(from + open.size(), to - from - open.size()));
}

// report.html is the dashboard's page with everything inline: no asset is asked for, the policy lets it ask
// for nothing, and a run whose texts hold markup cannot end the data element early.
TEST(Artefacts, TheReportIsOnePageWithItsDataAndAssetsInline) {
  const auto run = GoldenRun();
  const Summary summary = BuildSummary(*run, {});
  const nlohmann::ordered_json end = {{"run", RunRowJson(run->row)},
                                      {"summary", ShownSummary(summary.json, false)}};
  const nlohmann::ordered_json events = nlohmann::ordered_json::array(
      {{{"at_ns", kStart}, {"from", "ready"}, {"to", "running"}, {"detail", "</script><script>alert(1)//"}}});
  const std::string page = ReportHtml(*run, end, events, kStart + 4'000 * kMs);
  EXPECT_EQ(page.find("/assets/"), std::string::npos);
  EXPECT_EQ(page.find("</script><script>alert"), std::string::npos);  // the detail's '<' are escaped
  EXPECT_NE(page.find("http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'"),
            std::string::npos);
  EXPECT_NE(page.find("uPlot"), std::string::npos);
  EXPECT_NE(page.find("getElementById('meridian-report')"), std::string::npos);  // app.js reads the data
  const nlohmann::json data = ReportData(page);
  ASSERT_TRUE(data.is_object());
  EXPECT_EQ(data["events"][0]["detail"], "</script><script>alert(1)//");
  EXPECT_EQ(data["run"]["id"], run->row.id);
  EXPECT_EQ(data["summary"]["by_request"], nlohmann::json::parse(JsonText(summary.json))["by_request"]);
  EXPECT_FALSE(data["summary"].contains("timeline"));
  EXPECT_EQ(data["seconds"],
            nlohmann::json::parse(JsonText(HistoryJson(*run, kReportFullSeconds, kReportOlderPoints))));
  EXPECT_EQ(data["seconds"].size(), 3u);  // the golden run's three seconds, one point each
  EXPECT_EQ(data["generated"], "2027-01-01T00:00:04.000Z");
}

// The issue's size bound: the report of a 1-hour run with 10 regions and 20 request names is at most 2 MiB —
// the newest 10 minutes one point a second, the 50 before in 600 buckets, every latency a different value
// (how many series a second holds does not change the history's size: it is merged per region).
TEST(Artefacts, AnHoursReportOfTenRegionsAndTwentyNamesFitsInTwoMiB) {
  std::string yaml = "name: hour\nregions: { ";
  for (int r = 0; r < 10; ++r) yaml += fmt::format("{}region-{}: {{}}", r ? ", " : "", r);
  yaml +=
      " }\nscenarios:\n  browse:\n    executor: constant-vus\n    vus: 50\n    duration: 1h\n    requests:\n";
  for (int n = 0; n < 20; ++n)
    yaml += fmt::format("      - {{ name: request-{}, url: \"http://127.0.0.1:1/{}\" }}\n", n, n);
  yaml += "thresholds:\n  http_req_duration: [\"p(95)<200ms\", \"p(99)<500ms\"]\n";
  auto plan = plan::ParsePlan(yaml, "plan.yaml");
  ASSERT_TRUE(plan.ok()) << plan.error().message;
  control::Run run;
  run.plan = std::move(plan).value();
  run.names = plan::Names(run.plan);
  run.static_names = run.names.requests.size();
  run.slots = plan::Slots(run.plan);
  run.row.id = "r-0000000e0a1e";
  run.row.name = run.plan.name;
  run.row.state = RunState::kPassed;
  run.row.plan_yaml = yaml;
  run.row.start_at_ns = kStart;
  for (const auto& slot : run.slots) {
    for (int64_t second = 0; second < 3600; ++second) {
      stats::IntervalSnapshot snap;
      snap.second = second;
      for (uint16_t k = 0; k < 2; ++k) {
        const auto request = static_cast<uint16_t>((second * 2 + k) % 20);
        auto& series = snap.Series(stats::SeriesKey{0, request, 200, stats::ErrorKind::kNone});
        series.requests = 50;
        for (int64_t i = 0; i < 50; ++i)
          series.duration.Record(3 * kMs + (i * 7919 + second * 104729) % (90 * kMs));
      }
      snap.Scenario(0).iterations = 100;
      snap.Scenario(0).vus_active = 50;
      run.Ingest("ag-" + slot.region, slot.region, second, snap);
    }
  }
  const Summary summary = BuildSummary(run, {});
  ASSERT_EQ(summary.json["by_request"].size(), 20u);
  const nlohmann::ordered_json end = {{"run", RunRowJson(run.row)},
                                      {"summary", ShownSummary(summary.json, false)}};
  const std::string page = ReportHtml(run, end, nlohmann::ordered_json::array(), kStart + 3'600'000 * kMs);
  const nlohmann::json data = ReportData(page);
  EXPECT_EQ(data["seconds"].size(), 1200u);
  EXPECT_EQ(data["seconds"][0]["w"], 5);
  EXPECT_EQ(data["seconds"][0]["regions"].size(), 10u);
  EXPECT_LE(page.size(), 2u << 20) << page.size() << " bytes";
  std::printf("report.html of 1 h x 10 regions x 20 names: %zu bytes\n", page.size());
}

}  // namespace
}  // namespace meridian::control
