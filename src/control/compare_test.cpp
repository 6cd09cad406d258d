// Two runs side by side, from summaries shaped as the control plane stores them.
#include "control/compare.h"

#include <gtest/gtest.h>

namespace meridian::control {
namespace {

using nlohmann::ordered_json;

// A stored summary: one region per entry of `regions` (requests, failed, p95), one request name "home".
ordered_json Summary(double p95, double rate, uint64_t failed) {
  const uint64_t n = static_cast<uint64_t>(rate * 10);
  return {{"duration_s", 10.0},
          {"started_at", "2027-01-01T00:00:00.000Z"},
          {"requests", {{"count", n}, {"rate", rate}, {"failed", failed}}},
          {"latency_ms", {{"med", 2.0}, {"p95", p95}, {"p99", p95 * 1.5}}},
          {"regions",
           {{"eu",
             {{"requests", n},
              {"rate", rate},
              {"failed", failed},
              {"p50_ms", 2.0},
              {"p95_ms", p95},
              {"p99_ms", p95 * 1.5}}}}},
          {"by_request",
           {{{"name", "home"},
             {"count", n},
             {"failed", failed},
             {"latency_ms", {{"med", 2.0}, {"p95", p95}, {"p99", p95 * 1.5}}}}}}};
}

RunSummary Ran(const std::string& id, ordered_json summary) {
  return {{{"id", id}, {"name", "checkout"}, {"state", "passed"}}, std::move(summary)};
}

TEST(Compare, TheSameFiguresAreNoRegression) {
  const ordered_json c = CompareJson(Ran("r-a", Summary(20, 100, 0)), Ran("r-b", Summary(20, 100, 0)), {});
  EXPECT_EQ(c["regressions"], 0);
  ASSERT_EQ(c["rows"].size(), 3u);  // the whole run, the region, the request name
  EXPECT_EQ(c["rows"][0]["scope"], "total");
  EXPECT_EQ(c["rows"][1]["scope"], "region");
  EXPECT_EQ(c["rows"][1]["name"], "eu");
  EXPECT_EQ(c["rows"][2]["scope"], "request");
  EXPECT_EQ(c["rows"][2]["name"], "home");
  EXPECT_EQ(c["rows"][2]["b"]["rate"], 100.0);  // count / duration
  EXPECT_EQ(c["rows"][0]["change"]["p95_pct"], 0.0);
  EXPECT_NE(CompareText(c).find("no regression"), std::string::npos);
}

// p95 +25 % (20 → 25 ms) is over the 10 % tolerance; throughput -20 % too; errors +2 points too.
TEST(Compare, SlowerFewerAndMoreErrorsAreFlaggedOnEveryRow) {
  const ordered_json c = CompareJson(Ran("r-a", Summary(20, 100, 0)), Ran("r-b", Summary(25, 80, 16)), {});
  EXPECT_EQ(c["regressions"], 3);
  for (const auto& row : c["rows"]) {
    EXPECT_EQ(row["regressed"], ordered_json({"p95", "p99", "rate", "error_rate"})) << row["name"];
  }
  EXPECT_EQ(c["rows"][0]["change"]["p95_pct"], 25.0);
  EXPECT_EQ(c["rows"][0]["change"]["rate_pct"], -20.0);
  EXPECT_EQ(c["rows"][0]["change"]["error_rate_pp"], 2.0);
  const std::string text = CompareText(c);
  EXPECT_NE(text.find("3 row(s) regressed"), std::string::npos) << text;
  EXPECT_NE(text.find("+25.0%!"), std::string::npos) << text;
}

// Within tolerance, or higher by less than the minimum in milliseconds: not a regression.
TEST(Compare, SmallChangesAreNotRegressions) {
  EXPECT_EQ(CompareJson(Ran("r-a", Summary(20, 100, 0)), Ran("r-b", Summary(21.5, 95, 1)), {})["regressions"],
            0);
  // 0.5 ms → 0.6 ms is +20 %, but less than a millisecond more.
  EXPECT_EQ(
      CompareJson(Ran("r-a", Summary(0.5, 100, 0)), Ran("r-b", Summary(0.6, 100, 0)), {})["regressions"], 0);
  CompareOptions strict;
  strict.tolerance_pct = 5;
  EXPECT_EQ(
      CompareJson(Ran("r-a", Summary(20, 100, 0)), Ran("r-b", Summary(21.5, 100, 0)), strict)["regressions"],
      3);
}

// A request name or region of B only is listed with A's side empty, and not flagged; one of A that B lacks
// (an endpoint no longer called) is a regression.
TEST(Compare, RowsOfBOnlyAreListedAndRowsBLacksAreFlagged) {
  ordered_json b = Summary(20, 100, 0);
  b["by_request"].push_back({{"name", "search"},
                             {"count", 10},
                             {"failed", 0},
                             {"latency_ms", {{"med", 1}, {"p95", 900}, {"p99", 900}}}});
  const ordered_json c = CompareJson(Ran("r-a", Summary(20, 100, 0)), Ran("r-b", b), {});
  ASSERT_EQ(c["rows"].size(), 4u);
  EXPECT_EQ(c["rows"][3]["name"], "search");
  EXPECT_TRUE(c["rows"][3]["a"].is_null());
  EXPECT_EQ(c["rows"][3]["regressed"], ordered_json::array());
  EXPECT_EQ(c["regressions"], 0);
  EXPECT_NE(CompareText(c).find("-->"), std::string::npos);
  const ordered_json back = CompareJson(Ran("r-b", b), Ran("r-a", Summary(20, 100, 0)), {});
  EXPECT_EQ(back["rows"][3]["regressed"], ordered_json({"missing"}));
  EXPECT_EQ(back["regressions"], 1);
  EXPECT_NE(CompareText(back).find("missing"), std::string::npos) << CompareText(back);
}

// Two scenarios that call a request by the same name: each is compared with its own, in order.
TEST(Compare, ANameTwoScenariosShareIsComparedOncePerScenario) {
  ordered_json a = Summary(20, 100, 0), b = Summary(20, 100, 0);
  a["by_request"].push_back(
      {{"name", "home"}, {"count", 10}, {"failed", 0}, {"latency_ms", {{"med", 1}, {"p95", 5}, {"p99", 5}}}});
  b["by_request"].push_back({{"name", "home"},
                             {"count", 10},
                             {"failed", 0},
                             {"latency_ms", {{"med", 1}, {"p95", 50}, {"p99", 50}}}});
  const ordered_json c = CompareJson(Ran("r-a", a), Ran("r-b", b), {});
  ASSERT_EQ(c["rows"].size(), 4u);
  EXPECT_EQ(c["rows"][3]["name"], "home [2]");
  EXPECT_EQ(c["rows"][3]["regressed"], ordered_json({"p95", "p99"}));
  EXPECT_EQ(c["rows"][2]["regressed"], ordered_json::array());
}

}  // namespace
}  // namespace meridian::control
