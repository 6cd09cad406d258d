#include "core/prometheus.h"

#include <gtest/gtest.h>

namespace meridian {
namespace {

TEST(Prometheus, FamiliesSamplesAndEscapedLabels) {
  PrometheusText p;
  p.Family("meridian_runs_active", "gauge", "Runs the orchestrator is driving.");
  p.Sample("meridian_runs_active", {}, 3);
  p.Family("meridian_env_environments", "gauge", "Environments by pool\nand state.");
  p.Sample("meridian_env_environments", {{"pool", "a\"b\\c\nd"}, {"state", "available"}}, 2);
  EXPECT_EQ(p.text(),
            "# HELP meridian_runs_active Runs the orchestrator is driving.\n"
            "# TYPE meridian_runs_active gauge\n"
            "meridian_runs_active 3\n"
            "# HELP meridian_env_environments Environments by pool\\nand state.\n"
            "# TYPE meridian_env_environments gauge\n"
            "meridian_env_environments{pool=\"a\\\"b\\\\c\\nd\",state=\"available\"} 2\n");
}

TEST(Prometheus, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  PrometheusText p;
  const double bounds[] = {0.5, 1};
  const uint64_t counts[] = {2, 1, 4};
  p.Histogram("w_seconds", {{"pool", "p"}}, bounds, counts, 9.25);
  EXPECT_EQ(p.text(),
            "w_seconds_bucket{pool=\"p\",le=\"0.5\"} 2\n"
            "w_seconds_bucket{pool=\"p\",le=\"1\"} 3\n"
            "w_seconds_bucket{pool=\"p\",le=\"+Inf\"} 7\n"
            "w_seconds_sum{pool=\"p\"} 9.25\n"
            "w_seconds_count{pool=\"p\"} 7\n");
}

}  // namespace
}  // namespace meridian
