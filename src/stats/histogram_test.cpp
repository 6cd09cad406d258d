#include "stats/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "stats/metrics.h"

namespace meridian::stats {
namespace {

constexpr int64_t kMicro = 1'000;
constexpr int64_t kHour = 3'600'000'000'000;

int64_t ExactPercentile(std::vector<int64_t> sorted, double p) {
  auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

TEST(Histogram, BucketsCoverEveryValueWithBoundedWidth) {
  int previous = -1;
  for (int64_t v = 0; v < 5'000'000; v += (v < 10'000 ? 1 : 997)) {
    const int i = Histogram::BucketIndex(v);
    ASSERT_GE(i, previous);
    ASSERT_LT(i, Histogram::kBuckets);
    ASSERT_LE(Histogram::BucketLow(i), v);
    ASSERT_LT(v, Histogram::BucketLow(i) + Histogram::BucketWidth(i));
    if (v >= Histogram::kSubBuckets) {
      ASSERT_LE(static_cast<double>(Histogram::BucketWidth(i)) / static_cast<double>(Histogram::BucketLow(i)),
                1.0 / Histogram::kSubBuckets);
    }
    previous = i;
  }
  EXPECT_EQ(Histogram::BucketIndex(Histogram::kMaxTrackable), Histogram::kBuckets - 1);
  EXPECT_EQ(Histogram::BucketIndex(INT64_MAX), Histogram::kBuckets - 1);
  EXPECT_GT(Histogram::kMaxTrackable, kHour);
}

// Log-uniform random values from 1 µs to 1 h: every reported percentile within 1 % of the exact one.
TEST(Histogram, PercentilesWithinOnePercentOfExact) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(std::log(1.0 * kMicro), std::log(1.0 * kHour));
  for (int round = 0; round < 5; ++round) {
    std::vector<int64_t> values;
    Histogram h;
    const int n = 20'000 + round * 17'000;
    for (int i = 0; i < n; ++i) {
      const auto v = static_cast<int64_t>(std::exp(exponent(rng)));
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {0.1, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99}) {
      const double exact = static_cast<double>(ExactPercentile(values, p));
      const double got = static_cast<double>(h.ValueAtPercentile(p));
      EXPECT_LE(std::fabs(got - exact) / exact, 0.01) << "p" << p << " exact " << exact << " got " << got;
    }
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    EXPECT_EQ(h.ValueAtPercentile(0), values.front());
    EXPECT_EQ(h.ValueAtPercentile(100), values.back());
    EXPECT_EQ(h.count(), values.size());
  }
}

// A narrow, realistic distribution (10 ms ± 50 µs) keeps sub-percent accuracy.
TEST(Histogram, NarrowDistribution) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> d(10'000'000, 50'000);
  std::vector<int64_t> values;
  Histogram h;
  for (int i = 0; i < 100'000; ++i) {
    const auto v = static_cast<int64_t>(d(rng));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double exact = static_cast<double>(ExactPercentile(values, p));
    EXPECT_LE(std::fabs(static_cast<double>(h.ValueAtPercentile(p)) - exact) / exact, 0.005);
  }
  double sum = 0;
  for (auto v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(h.mean(), sum / static_cast<double>(values.size()), 1.0);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> d(0, 5'000'000'000);
  Histogram all, a, b, c;
  for (int i = 0; i < 30'000; ++i) {
    const int64_t v = d(rng);
    all.Record(v);
    (i % 3 == 0 ? a : i % 3 == 1 ? b : c).Record(v);
  }
  Histogram merged;
  merged.Merge(a);
  merged.Merge(b);
  merged.Merge(c);
  EXPECT_TRUE(merged == all);
  EXPECT_EQ(merged.ValueAtPercentile(99), all.ValueAtPercentile(99));
  Histogram empty;
  merged.Merge(empty);
  EXPECT_TRUE(merged == all);
}

TEST(Histogram, EmptyAndNegative) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtPercentile(50), 0);
  EXPECT_EQ(h.min(), 0);
  h.Record(-5);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.count(), 1u);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
}

TEST(Histogram, CopyIsDeep) {
  Histogram a;
  a.Record(1000);
  Histogram b = a;
  b.Record(2000);
  EXPECT_EQ(a.count(), 1u);
  EXPECT_EQ(b.count(), 2u);
}

TEST(HistogramEncoding, RoundTripAndCompact) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> d(13.0, 0.5);  // around 0.5 ms
  Histogram h;
  for (int i = 0; i < 100'000; ++i) h.Record(static_cast<int64_t>(d(rng)));
  const std::string bytes = h.Encode();
  auto back = Histogram::Decode(bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(*back == h);
  EXPECT_LT(bytes.size(), 2'000u);  // sparse: far below 4608 dense counters

  auto empty = Histogram::Decode(Histogram().Encode());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->count(), 0u);
}

TEST(HistogramEncoding, RejectsCorruptInput) {
  Histogram h;
  h.Record(10);
  h.Record(1'000'000);
  const std::string good = h.Encode();
  EXPECT_FALSE(Histogram::Decode("").ok());
  EXPECT_FALSE(Histogram::Decode(std::string("\x02", 1)).ok());
  for (size_t cut = 1; cut < good.size(); ++cut) {
    EXPECT_FALSE(Histogram::Decode(good.substr(0, cut)).ok()) << cut;
  }
  std::string extra = good;
  extra += "\x01\x01";  // a bucket beyond the declared total
  EXPECT_FALSE(Histogram::Decode(extra).ok());
}

TEST(SeriesKey, PackRoundTrip) {
  SeriesKey k{3, 17, 503, ErrorKind::kHttp5xx};
  SeriesKey u = SeriesKey::Unpack(k.Pack());
  EXPECT_EQ(u.scenario, 3);
  EXPECT_EQ(u.request, 17);
  EXPECT_EQ(u.status, 503);
  EXPECT_EQ(u.error, ErrorKind::kHttp5xx);
}

TEST(IntervalSnapshot, MergeAcrossWorkersAddsGaugesAcrossTimeKeepsMax) {
  IntervalSnapshot a, b;
  a.Scenario(0).vus_active = 10;
  b.Scenario(0).vus_active = 7;
  RequestSample s;
  s.total_ns = 1000;
  s.status = 200;
  a.Series({0, 0, 200, ErrorKind::kNone}).Record(s);
  b.Series({0, 0, 200, ErrorKind::kNone}).Record(s);
  IntervalSnapshot workers = a;
  workers.MergeAcrossWorkers(b);
  EXPECT_EQ(workers.scenarios[0].vus_active, 17u);
  EXPECT_EQ(workers.series.begin()->second.requests, 2u);
  IntervalSnapshot time = a;
  time.MergeAcrossTime(b);
  EXPECT_EQ(time.scenarios[0].vus_active, 10u);
}

}  // namespace
}  // namespace meridian::stats
