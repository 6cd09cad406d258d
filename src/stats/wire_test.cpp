#include "stats/wire.h"

#include <gtest/gtest.h>

#include <limits>

namespace meridian::stats {
namespace {

IntervalSnapshot Sample() {
  IntervalSnapshot s;
  s.second = 7;
  s.worker = 2;
  s.final = true;
  for (int i = 0; i < 50; ++i) {
    RequestSample r;
    r.total_ns = 1'000'000 + i * 10'000;
    r.ttfb_ns = 900'000;
    r.connect_ns = i == 0 ? 50'000 : -1;
    r.bytes_sent = 100;
    r.bytes_received = 2000;
    r.status = i % 10 == 0 ? 500 : 200;
    r.error = i % 10 == 0 ? ErrorKind::kHttp5xx : ErrorKind::kNone;
    s.Series(SeriesKey{1, 3, r.status, r.error}).Record(r);
  }
  s.Scenario(1).iterations = 50;
  s.Scenario(1).iteration_duration.Record(2'000'000);
  s.Scenario(1).vus_active = 4;
  s.health.cpu_ns = 300'000'000;
  s.health.wall_ns = 1'000'000'000;
  s.health.max_cpu_share = 0.3;
  s.health.timer_lag.Record(20'000);
  s.AddErrorExample(ErrorKind::kHttp5xx, "status 500");
  return s;
}

TEST(Wire, RoundTripIsExact) {
  const IntervalSnapshot s = Sample();
  auto d = DecodeSnapshot(EncodeSnapshot(s));
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->second, 7);
  EXPECT_EQ(d->worker, 2u);
  EXPECT_TRUE(d->final);
  ASSERT_EQ(d->series.size(), s.series.size());
  for (const auto& [k, v] : s.series) {
    const SeriesStats& o = d->series.at(k);
    EXPECT_EQ(o.requests, v.requests);
    EXPECT_EQ(o.failures, v.failures);
    EXPECT_EQ(o.bytes_received, v.bytes_received);
    EXPECT_TRUE(o.duration == v.duration);
    EXPECT_TRUE(o.connect == v.connect);
  }
  ASSERT_EQ(d->scenarios.size(), 2u);
  EXPECT_EQ(d->scenarios[1].iterations, 50u);
  EXPECT_EQ(d->scenarios[1].vus_active, 4u);
  EXPECT_DOUBLE_EQ(d->health.max_cpu_share, 0.3);
  ASSERT_EQ(d->error_examples.size(), 1u);
  EXPECT_EQ(d->error_examples[0].second, "status 500");
}

TEST(Wire, RejectsTruncatedAndTrailingBytes) {
  const std::string bytes = EncodeSnapshot(Sample());
  for (size_t n = 0; n < bytes.size(); n += 7) EXPECT_FALSE(DecodeSnapshot(bytes.substr(0, n)).ok()) << n;
  EXPECT_FALSE(DecodeSnapshot(bytes + "x").ok());
  std::string wrong = bytes;
  wrong[0] = 9;
  EXPECT_FALSE(DecodeSnapshot(wrong).ok());
}

TEST(Wire, StepMetricsAndTheirNamesRoundTrip) {
  IntervalSnapshot s;
  s.second = 7;
  StepMetric counter;
  counter.count = 2;
  counter.sum = 7.5;
  StepMetric gauge;
  gauge.count = 1;
  gauge.last = gauge.min = gauge.max = -3;
  StepMetric timer;
  timer.count = 2;
  timer.sum = 30;
  timer.values.Record(10'000'000);
  timer.values.Record(20'000'000);
  s.step_metrics[5] = counter;
  s.step_metrics[6] = gauge;
  s.step_metrics[7] = timer;
  std::vector<std::pair<uint16_t, NameEntry>> names = {
      {5, NameEntry{NameEntry::Kind::kCounter, 0, "swarm#0", "ws.conn"}},
      {7, NameEntry{NameEntry::Kind::kTimer, 0, "swarm#1", "ws.lat"}}};
  auto d = DecodeSnapshot(EncodeSnapshot(s, &names));
  ASSERT_TRUE(d.ok()) << d.error().message;
  ASSERT_EQ(d->step_metrics.size(), 3u);
  EXPECT_EQ(d->step_metrics[5].sum, 7.5);
  EXPECT_EQ(d->step_metrics[6].last, -3);
  EXPECT_EQ(d->step_metrics[7].values, timer.values);
  ASSERT_EQ(d->names.size(), 2u);
  EXPECT_EQ(d->names[1].second.kind, NameEntry::Kind::kTimer);
  EXPECT_EQ(d->names[1].second.group, "swarm#1");
  // A value that is not finite is refused.
  s.step_metrics[5].sum = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(DecodeSnapshot(EncodeSnapshot(s, nullptr)).ok());
}

}  // namespace
}  // namespace meridian::stats
