#include "stats/threshold.h"

#include <gtest/gtest.h>

namespace meridian::stats {
namespace {

TEST(Threshold, ParsesKeysWithTagFilters) {
  auto t = ParseThresholdKey("http_req_duration{region:eu-west-1, name:cart}");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->metric, "http_req_duration");
  ASSERT_EQ(t->tags.size(), 2u);
  EXPECT_EQ(t->tags[0].key, "region");
  EXPECT_EQ(t->tags[0].value, "eu-west-1");
  EXPECT_EQ(t->tags[1].value, "cart");
  EXPECT_EQ(t->kind, MetricKind::kTrend);
}

TEST(Threshold, RejectsUnknownMetricsAndTagsNamingTheAllowedOnes) {
  auto m = ParseThresholdKey("http_req_durration");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("allowed: http_req_duration"), std::string::npos);
  auto t = ParseThresholdKey("http_req_duration{zone:a}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("unknown tag 'zone'"), std::string::npos);
  EXPECT_FALSE(ParseThresholdKey("http_req_duration{region:a").ok());
  EXPECT_FALSE(ParseThresholdKey("iterations{name:a}").ok());
}

TEST(Threshold, ParsesExpressions) {
  auto p = ParseThresholdExpr("p(95)<200", MetricKind::kTrend);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->aggregation, "p");
  EXPECT_DOUBLE_EQ(p->percentile, 95);
  EXPECT_DOUBLE_EQ(p->value, 200e6);  // plain numbers are milliseconds, as in k6
  auto u = ParseThresholdExpr("p(99.9) <= 1.5s", MetricKind::kTrend);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->op, "<=");
  EXPECT_DOUBLE_EQ(u->value, 1.5e9);
  auto r = ParseThresholdExpr("rate<0.01", MetricKind::kRate);
  ASSERT_TRUE(r.ok());
  EXPECT_DOUBLE_EQ(r->value, 0.01);
  EXPECT_TRUE(ParseThresholdExpr("count>=10", MetricKind::kCounter).ok());
  auto wrong = ParseThresholdExpr("rate<0.01", MetricKind::kTrend);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("avg, min, med, max, p(N)"), std::string::npos);
  EXPECT_FALSE(ParseThresholdExpr("p(95)", MetricKind::kTrend).ok());
  EXPECT_FALSE(ParseThresholdExpr("p(101)<1", MetricKind::kTrend).ok());
  EXPECT_FALSE(ParseThresholdExpr("rate<2", MetricKind::kRate).ok());
  EXPECT_FALSE(ParseThresholdExpr("avg=<3", MetricKind::kTrend).ok());
}

TEST(Threshold, EvaluatesAgainstMergedData) {
  MetricData d;
  for (int i = 1; i <= 100; ++i) d.duration.Record(i * 1'000'000);  // 1..100 ms
  d.requests = 100;
  d.failures = 2;
  d.seconds = 10;
  auto key = ParseThresholdKey("http_req_duration").value();
  auto pass = Evaluate(key, ParseThresholdExpr("p(95)<200", key.kind).value(), d);
  EXPECT_TRUE(pass.ok);
  EXPECT_NEAR(pass.measured, 95e6, 95e6 * 0.01);
  EXPECT_FALSE(Evaluate(key, ParseThresholdExpr("p(95)<50", key.kind).value(), d).ok);
  auto failed = ParseThresholdKey("http_req_failed").value();
  auto f = Evaluate(failed, ParseThresholdExpr("rate<0.01", failed.kind).value(), d);
  EXPECT_FALSE(f.ok);
  EXPECT_DOUBLE_EQ(f.measured, 0.02);
  auto reqs = ParseThresholdKey("http_reqs").value();
  EXPECT_TRUE(Evaluate(reqs, ParseThresholdExpr("rate>=10", reqs.kind).value(), d).ok);
  MetricData empty;
  auto none = Evaluate(key, ParseThresholdExpr("p(95)<1", key.kind).value(), empty);
  EXPECT_TRUE(none.ok);
  EXPECT_TRUE(none.no_data);
}

TEST(Threshold, StepMetricsWhenThePlanHasSteps) {
  // Without steps a name that is not built in stays an error; with steps it is a StatsD metric, unless it
  // looks like a misspelt built-in one.
  EXPECT_FALSE(ParseThresholdKey("ws.connections").ok());
  auto t = ParseThresholdKey("ws.connections{step:swarm, instance:1}", true);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->kind, MetricKind::kStep);
  EXPECT_EQ(t->metric, "ws.connections");
  EXPECT_EQ(t->tags[0].key, "step");
  auto typo = ParseThresholdKey("http_req_durration", true);
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.error().message.find("not starting like a built-in metric"), std::string::npos);
  EXPECT_FALSE(ParseThresholdKey("ws.connections{scenario:a}", true).ok());
  EXPECT_FALSE(ParseThresholdKey("http_reqs{step:a}", true).ok());

  StepMetric counter;
  counter.count = 3;
  counter.sum = 150;
  MetricData d;
  d.seconds = 10;
  d.step = counter;
  d.step_kind = static_cast<int>(NameEntry::Kind::kCounter);
  auto rate = ParseThresholdExpr("rate>10", MetricKind::kStep).value();
  EXPECT_TRUE(Evaluate(*t, rate, d).ok);
  EXPECT_EQ(Evaluate(*t, rate, d).measured_text, "15.00/s");
  auto count = ParseThresholdExpr("count<100", MetricKind::kStep).value();
  EXPECT_FALSE(Evaluate(*t, count, d).ok);
  auto avg = ParseThresholdExpr("avg<100", MetricKind::kStep).value();
  EXPECT_FALSE(Evaluate(*t, avg, d).ok);
  EXPECT_NE(Evaluate(*t, avg, d).measured_text.find("does not apply"), std::string::npos);

  MetricData timer;
  timer.step_kind = static_cast<int>(NameEntry::Kind::kTimer);
  for (int i = 1; i <= 100; ++i) timer.step.values.Record(i * 1'000'000);  // 1..100 ms
  auto p95 = ParseThresholdExpr("p(95)<200", MetricKind::kStep).value();
  EXPECT_TRUE(Evaluate(*t, p95, timer).ok);
  auto p95s = ParseThresholdExpr("p(95)<50ms", MetricKind::kStep).value();
  EXPECT_FALSE(Evaluate(*t, p95s, timer).ok);

  MetricData none;
  EXPECT_TRUE(Evaluate(*t, count, none).no_data);
}

TEST(Threshold, ParsesComparisonsWithABaselineRun) {
  auto scaled = ParseThresholdExpr("p(95) < baseline * 1.10", MetricKind::kTrend);
  ASSERT_TRUE(scaled.ok()) << scaled.error().message;
  EXPECT_TRUE(scaled->baseline);
  EXPECT_DOUBLE_EQ(scaled->baseline_factor, 1.10);
  EXPECT_DOUBLE_EQ(scaled->value, 0);
  auto shifted = ParseThresholdExpr("p(99)<=baseline+20ms", MetricKind::kTrend);
  ASSERT_TRUE(shifted.ok()) << shifted.error().message;
  EXPECT_DOUBLE_EQ(shifted->baseline_factor, 1);
  EXPECT_DOUBLE_EQ(shifted->value, 20e6);
  auto plain_ms = ParseThresholdExpr("med < baseline - 5", MetricKind::kTrend);
  ASSERT_TRUE(plain_ms.ok());
  EXPECT_DOUBLE_EQ(plain_ms->value, -5e6);  // milliseconds, as a plain value is
  auto left = ParseThresholdExpr("rate > 0.9 * baseline", MetricKind::kCounter);
  ASSERT_TRUE(left.ok());
  EXPECT_DOUBLE_EQ(left->baseline_factor, 0.9);
  auto rate = ParseThresholdExpr("rate < baseline + 0.01", MetricKind::kRate);
  ASSERT_TRUE(rate.ok());
  EXPECT_DOUBLE_EQ(rate->value, 0.01);
  EXPECT_TRUE(ParseThresholdExpr("p(95) < baseline", MetricKind::kTrend)->baseline);
  for (const char* wrong : {"p(95) < baseline / 2", "p(95) < baseline * -1", "p(95) < 2 + baseline",
                            "p(95) < baseline * x", "p(95) < baseline + soon"}) {
    auto e = ParseThresholdExpr(wrong, MetricKind::kTrend);
    ASSERT_FALSE(e.ok()) << wrong;
    EXPECT_NE(e.error().message.find(wrong), std::string::npos) << e.error().message;
  }
}

TEST(Threshold, ComparesWithTheSameMeasureOfTheBaselineRun) {
  MetricData base, now;
  for (int i = 1; i <= 100; ++i) base.duration.Record(i * 1'000'000);  // 1..100 ms
  for (int i = 1; i <= 100; ++i) now.duration.Record(i * 1'200'000);   // 20 % slower
  base.requests = now.requests = 100;
  base.failures = 1;
  now.failures = 3;
  auto key = ParseThresholdKey("http_req_duration").value();
  auto ten = ParseThresholdExpr("p(95) < baseline * 1.10", key.kind).value();
  auto slower = Evaluate(key, ten, now, &base);
  EXPECT_FALSE(slower.ok);
  EXPECT_TRUE(slower.against_baseline);
  EXPECT_NEAR(slower.baseline, 95e6, 95e6 * 0.01);
  EXPECT_NEAR(slower.limit, slower.baseline * 1.10, 1);
  EXPECT_NE(slower.measured_text.find("baseline 95"), std::string::npos) << slower.measured_text;
  EXPECT_NE(slower.measured_text.find("limit 105ms"), std::string::npos) << slower.measured_text;
  auto thirty = ParseThresholdExpr("p(95) < baseline * 1.30", key.kind).value();
  EXPECT_TRUE(Evaluate(key, thirty, now, &base).ok);
  EXPECT_TRUE(Evaluate(key, ten, base, &base).ok);

  auto failed = ParseThresholdKey("http_req_failed").value();
  auto point = ParseThresholdExpr("rate < baseline + 0.01", failed.kind).value();
  auto worse = Evaluate(failed, point, now, &base);  // 3 % against 1 % + 1 point
  EXPECT_FALSE(worse.ok);
  EXPECT_NE(worse.measured_text.find("limit 2.00%"), std::string::npos) << worse.measured_text;

  // Nothing to compare with: no baseline run, or a baseline without data for the filter, fails and says so;
  // no data in this run passes, as any threshold does.
  auto none = Evaluate(key, ten, now, nullptr);
  EXPECT_FALSE(none.ok);
  EXPECT_NE(none.measured_text.find("no baseline run"), std::string::npos);
  MetricData empty;
  auto nothing = Evaluate(key, ten, now, &empty);
  EXPECT_FALSE(nothing.ok);
  EXPECT_NE(nothing.measured_text.find("the baseline run has no data"), std::string::npos);
  auto idle = Evaluate(key, ten, empty, &base);
  EXPECT_TRUE(idle.ok);
  EXPECT_TRUE(idle.no_data);
}

}  // namespace
}  // namespace meridian::stats
