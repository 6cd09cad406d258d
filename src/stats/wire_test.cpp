#include "stats/wire.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace meridian::stats
