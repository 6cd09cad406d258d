// The dashboard's live feed on the orchestrator's fixture (FakeClock, real SQLite): what a viewer receives,
// from the same merged histograms as the summary.
#include "control/live.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "control/orchestrator_fixture.h"
#include "http/api.h"

namespace meridian::control {
namespace {

using nlohmann::json;

// Every event a viewer got, parsed: (name, id, data).
struct Event {
  std::string name;
  int64_t id = -1;
  json data;
};

class LiveTest : public OrchestratorTest {
 protected:
  // A viewer whose events land in `got`.
  http::StreamWriter Viewer(std::vector<Event>& got) {
    return http::StreamWriter([&got](std::string_view bytes) {
      std::string_view rest = bytes;
      while (!rest.empty()) {
        const size_t end = rest.find("\n\n");
        const std::string_view block = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
        Event e;
        for (size_t at = 0; at < block.size();) {
          size_t nl = block.find('\n', at);
          if (nl == std::string_view::npos) nl = block.size();
          const std::string_view line = block.substr(at, nl - at);
          if (line.starts_with("event: ")) e.name = line.substr(7);
          if (line.starts_with("id: ")) e.id = std::stoll(std::string(line.substr(4)));
          if (line.starts_with("data: ")) e.data = json::parse(line.substr(6));
          at = nl + 1;
        }
        if (!e.name.empty()) got.push_back(std::move(e));
      }
      return true;
    });
  }
  // The run's one agent says done after `last_seq`; two ticks end the run (running → draining → passed).
  void End(control::Run& run, const std::string& agent, int64_t last_seq) {
    const std::string id = run.row.id;
    Done(run, agent, last_seq);
    Seen(agent);
    Tick();
    Tick();
    ASSERT_EQ(orchestrator_->Active(id), nullptr);
  }
  static std::vector<Event> Named(const std::vector<Event>& all, const std::string& name) {
    std::vector<Event> out;
    for (const auto& e : all) {
      if (e.name == name) out.push_back(e);
    }
    return out;
  }
};

// Two agents of one region report the same second, one fast and one slow: the second's point is the merged
// histogram's, so its p50 is the fast half and its p99 the slow one — and the summary's timeline says the
// same for that second.
TEST_F(LiveTest, ASecondIsTheMergedHistogramOfEveryAgentAsInTheSummary) {
  AddAgent("a2", "eu");
  control::Run& run = Running(PlanYaml("", 2));
  Report(run, "a1", 0, 100, 0, 5'000'000);
  Report(run, "a2", 0, 100, 10, 50'000'000);
  const json point = json::parse(JsonText(SecondJson(run, 0, LiveFilter{})));
  EXPECT_EQ(point["t"], 0);
  EXPECT_EQ(point["all"]["n"], 200);
  EXPECT_EQ(point["all"]["f"], 10);
  EXPECT_NEAR(point["all"]["p"][0].get<double>(), 5.0, 0.05);   // p50
  EXPECT_NEAR(point["all"]["p"][3].get<double>(), 50.0, 0.25);  // p99
  EXPECT_EQ(point["regions"]["eu"], point["all"]);
  // The same value, to the microsecond the feed keeps.
  const Summary summary = BuildSummary(run, {});
  EXPECT_NEAR(point["all"]["p"][3].get<double>(), summary.json["timeline"][0]["p99_ms"].get<double>(),
              0.0005);
  EXPECT_NEAR(point["all"]["p"][0].get<double>(), summary.json["timeline"][0]["p50_ms"].get<double>(),
              0.0005);
}

// The report's history: the newest seconds one point each, older ones merged into buckets whose percentiles
// come from the merged histograms (a slow second inside a fast bucket moves its p99, not an average of
// p99s), whose counts add up and whose VUs are the highest level.
TEST_F(LiveTest, TheReportsHistoryMergesOlderSecondsIntoTrueBuckets) {
  control::Run& run = Running(PlanYaml());
  for (int64_t s = 0; s < 6; ++s) Report(run, "a1", s, 100, s == 1 ? 2 : 0, s == 1 ? 80'000'000 : 5'000'000);
  const json all = json::parse(JsonText(HistoryJson(run, 600, 600)));
  ASSERT_EQ(all.size(), 6u);  // short enough: every second as it is
  EXPECT_FALSE(all[0].contains("w"));
  const json h = json::parse(JsonText(HistoryJson(run, 2, 2)));
  ASSERT_EQ(h.size(), 4u);  // [0,2) [2,4) 4 5
  EXPECT_EQ(h[0]["t"], 0);
  EXPECT_EQ(h[0]["w"], 2);
  EXPECT_EQ(h[1]["t"], 2);
  EXPECT_EQ(h[1]["w"], 2);
  EXPECT_EQ(h[2]["t"], 4);
  EXPECT_FALSE(h[2].contains("w"));
  EXPECT_EQ(h[3]["t"], 5);
  EXPECT_EQ(h[0]["all"]["n"], 200);
  EXPECT_EQ(h[0]["all"]["f"], 2);
  EXPECT_EQ(h[0]["all"]["it"], 200);
  // Second 1's 98 successful requests took 80 ms: the bucket's p50 is the fast ones', its p99 theirs.
  EXPECT_NEAR(h[0]["all"]["p"][0].get<double>(), 5.0, 0.05);
  EXPECT_NEAR(h[0]["all"]["p"][3].get<double>(), 80.0, 0.5);
  EXPECT_NEAR(h[1]["all"]["p"][3].get<double>(), 5.0, 0.05);
  EXPECT_EQ(h[0]["regions"]["eu"], h[0]["all"]);
  // A bucket is the same as the seconds it holds merged: its max is the slow second's, its p99 too.
  const json slow = json::parse(JsonText(SecondJson(run, 1, LiveFilter{})));
  EXPECT_EQ(h[0]["all"]["p"][4], slow["all"]["p"][4]);
  EXPECT_EQ(h[0]["all"]["vus"], slow["all"]["vus"]);
  EXPECT_EQ(json::parse(JsonText(HistoryJson(run, 0, 1))).size(), 1u);  // everything in one bucket
}

// A filter recomputes from the histograms: the request name the plan has, and one it does not.
TEST_F(LiveTest, FiltersSelectSeriesAndAnUnknownRegionIsRefused) {
  control::Run& run = Running(PlanYaml());
  Report(run, "a1", 0, 10, 2);
  LiveFilter home;
  home.name = "home";
  EXPECT_EQ(SecondJson(run, 0, home)["all"]["n"], 10);
  LiveFilter ok;
  ok.status = 200;
  EXPECT_EQ(SecondJson(run, 0, ok)["all"]["n"], 8);
  LiveFilter other;
  other.name = "other";
  EXPECT_EQ(SecondJson(run, 0, other)["all"]["n"], 0);
  http::ServerRequest req;
  req.query = "region=mars";
  try {
    LiveFilterFrom(req, run);
    ADD_FAILURE() << "an unknown region was accepted";
  } catch (const http::ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.message, "region: the run has no region 'mars' (allowed: eu)");
  }
}

// A viewer gets the history and the tables at once; then, each tick, only the seconds that changed (a second
// again when another agent's report of it arrives) and the tables; with Last-Event-ID only what follows it.
TEST_F(LiveTest, AViewerGetsHistoryThenEachChangeOnce) {
  AddAgent("a2", "eu");
  control::Run& run = Running(PlanYaml("", 2));
  LiveFeeds feeds(*orchestrator_);
  Report(run, "a1", 0, 10, 0);
  Report(run, "a2", 0, 10, 0);
  std::vector<Event> got;
  feeds.Watch(run, LiveFilter{}, -1, Viewer(got));
  ASSERT_EQ(Named(got, "seconds").size(), 1u);
  EXPECT_EQ(Named(got, "seconds")[0].id, 0);
  EXPECT_EQ(Named(got, "seconds")[0].data[0]["all"]["n"], 20);
  ASSERT_EQ(Named(got, "run").size(), 1u);
  EXPECT_EQ(Named(got, "run")[0].data["run"]["state"], "running");
  EXPECT_EQ(Named(got, "run")[0].data["agents"].size(), 2u);
  EXPECT_EQ(Named(got, "run")[0].data["summary"]["requests"]["count"], 20);

  got.clear();
  feeds.Tick();  // nothing new: the tables only (what a second is, is unchanged)
  EXPECT_TRUE(Named(got, "seconds").empty());
  EXPECT_EQ(Named(got, "run").size(), 1u);

  got.clear();
  Report(run, "a1", 1, 10, 0);
  feeds.Tick();
  ASSERT_EQ(Named(got, "seconds").size(), 1u);
  EXPECT_EQ(Named(got, "seconds")[0].id, 1);
  ASSERT_EQ(Named(got, "seconds")[0].data.size(), 1u);
  EXPECT_EQ(Named(got, "seconds")[0].data[0]["all"]["n"], 10);

  got.clear();
  Report(run, "a2", 1, 10, 0);  // the other agent's report of second 1: sent again, whole
  feeds.Tick();
  ASSERT_EQ(Named(got, "seconds").size(), 1u);
  EXPECT_EQ(Named(got, "seconds")[0].data[0]["t"], 1);
  EXPECT_EQ(Named(got, "seconds")[0].data[0]["all"]["n"], 20);

  std::vector<Event> late;
  feeds.Watch(run, LiveFilter{}, 0, Viewer(late));  // reconnected after second 0
  ASSERT_EQ(Named(late, "seconds").size(), 1u);
  ASSERT_EQ(Named(late, "seconds")[0].data.size(), 1u);
  EXPECT_EQ(Named(late, "seconds")[0].data[0]["t"], 1);
  EXPECT_EQ(feeds.viewers(), 2u);
}

// When the run ends and leaves the orchestrator, its viewers get the stored tables as `end` and their
// streams end; a viewer that left is dropped at the next write.
TEST_F(LiveTest, ViewersOfARunThatEndedGetTheEndAndAreLetGo) {
  control::Run& run = Running(PlanYaml());
  const std::string id = run.row.id;
  LiveFeeds feeds(*orchestrator_);
  feeds.set_final_json([&](const std::string& run_id) {
    return nlohmann::ordered_json{{"run", {{"id", run_id}, {"state", "passed"}}}};
  });
  std::vector<Event> got, gone;
  feeds.Watch(run, LiveFilter{}, -1, Viewer(got));
  http::StreamWriter leaving([](std::string_view) { return false; });
  feeds.Watch(run, LiveFilter{}, -1, leaving);
  EXPECT_EQ(feeds.viewers(), 1u);  // its first write failed
  EXPECT_FALSE(leaving.alive());
  Report(run, "a1", 0, 10, 0);
  ASSERT_NO_FATAL_FAILURE(End(run, "a1", 0));
  got.clear();
  feeds.Tick();
  ASSERT_EQ(Named(got, "end").size(), 1u);
  EXPECT_EQ(Named(got, "end")[0].data["run"]["id"], id);
  EXPECT_EQ(feeds.viewers(), 0u);
}

// When a run ends its unfiltered history is written beside its artefacts, exactly what its feed would send
// merged again from the stored reports: an ended run's page opens from that file.
TEST_F(LiveTest, AnEndedRunsHistoryIsWrittenAsItsFeedWouldSendIt) {
  control::Run& run = Running(PlanYaml());
  const std::string id = run.row.id;
  Report(run, "a1", 0, 10, 2);
  Report(run, "a1", 1, 5, 0);
  ASSERT_NO_FATAL_FAILURE(End(run, "a1", 1));
  std::ifstream in(dir_ + "/runs/" + id + "/" + kHistoryFile);
  ASSERT_TRUE(in) << kHistoryFile;
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto row = store_->GetRun(id);
  ASSERT_TRUE(row.ok() && row->has_value());
  auto restored = RestoreRun(*store_, **row);
  ASSERT_TRUE(restored.ok()) << restored.error().message;
  const SecondsText again = SecondsAfter(**restored, LiveFilter{}, -1);
  EXPECT_EQ(written, again.json);
  EXPECT_EQ(again.last, 1);
  const json seconds = json::parse(written);
  ASSERT_EQ(seconds.size(), 2u);
  EXPECT_EQ(seconds[0]["all"]["n"], 10);
  EXPECT_EQ(seconds[0]["all"]["f"], 2);
  EXPECT_EQ(seconds[1]["all"]["n"], 5);
}

}  // namespace
}  // namespace meridian::control
