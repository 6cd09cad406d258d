#include "loadgen/scenario_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

namespace meridian::loadgen {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000'000'000;

// Simulated time: runners wake through FakeScheduler; iterations complete after a simulated duration.
class Simulation;

class FakeScheduler final : public Scheduler {
 public:
  explicit FakeScheduler(int64_t& now) : now_(now) {}
  int64_t Now() override { return now_; }
  void WakeAt(int64_t t) override { wake_ = t; }
  int64_t wake() const { return wake_; }

 private:
  int64_t& now_;
  int64_t wake_ = INT64_MAX;
};

struct Started {
  uint64_t vu;
  int64_t intended;
  int64_t at;
};

class Simulation {
 public:
  std::function<int64_t(const Vu&)> iteration_length = [](const Vu&) { return 100 * kMs; };
  std::multimap<int64_t, Vu*> completions;
  std::vector<Started> starts;
  int64_t now = 0;
};

class FakeIteration final : public Iteration {
 public:
  explicit FakeIteration(Simulation& sim) : sim_(sim) {}
  void Start(Vu& vu) override {
    sim_.starts.push_back(Started{vu.id(), vu.iteration_start_ns(), sim_.now});
    sim_.completions.emplace(sim_.now + sim_.iteration_length(vu), &vu);
  }
  void Abort(Vu& vu) override {
    for (auto it = sim_.completions.begin(); it != sim_.completions.end(); ++it) {
      if (it->second == &vu) {
        sim_.completions.erase(it);
        return;
      }
    }
  }

 private:
  Simulation& sim_;
};

class FakeFactory final : public IterationFactory {
 public:
  explicit FakeFactory(Simulation& sim) : sim_(sim) {}
  std::unique_ptr<Iteration> NewIteration(Vu&) override { return std::make_unique<FakeIteration>(sim_); }

 private:
  Simulation& sim_;
};

struct Harness {
  explicit Harness(const ExecutorConfig& config, uint32_t worker = 0, uint32_t workers = 1)
      : scheduler(sim.now),
        factory(sim),
        recorder(worker),
        runner(config, RunnerPlacement{0, worker, workers, 0}, nullptr, scheduler, factory, recorder) {}

  // Runs until the runner is done; `probe(now)` is called before each event.
  void Run(const std::function<void(int64_t)>& probe = {}) {
    runner.Start(0);
    for (int guard = 0; guard < 10'000'000 && !runner.done(); ++guard) {
      const int64_t next_completion = sim.completions.empty() ? INT64_MAX : sim.completions.begin()->first;
      const int64_t next = std::min(next_completion, scheduler.wake());
      ASSERT_NE(next, INT64_MAX) << "the runner stalled at " << sim.now;
      sim.now = next;
      if (probe) probe(sim.now);
      if (next_completion <= scheduler.wake()) {
        Vu* vu = sim.completions.begin()->second;
        sim.completions.erase(sim.completions.begin());
        vu->FinishIteration(false);
      } else {
        runner.OnWake();
      }
    }
    ASSERT_TRUE(runner.done());
    stats = recorder.Swap(0, true)->scenarios.at(0);
  }

  Simulation sim;
  FakeScheduler scheduler;
  FakeFactory factory;
  Recorder recorder;
  ScenarioRunner runner;
  stats::ScenarioStats stats;
};

TEST(ConstantVus, RunsEveryVuBackToBackAndFinishesWithinGracefulStop) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantVus;
  c.vus = 10;
  c.duration_ns = 1 * kSec;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 90 * kMs; };
  h.Run();
  // Starts at 0, 90, ..., 990 ms: 12 per VU; the last ends at 1080 ms, inside the 30 s graceful stop.
  EXPECT_EQ(h.stats.iterations, 120u);
  EXPECT_EQ(h.stats.interrupted_iterations, 0u);
  EXPECT_EQ(h.stats.vus_active, 10u);
  EXPECT_EQ(h.sim.now, 1080 * kMs);
  std::set<uint64_t> ids;
  for (const auto& s : h.sim.starts) ids.insert(s.vu);
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(*ids.begin(), 1u);
}

TEST(ConstantVus, ZeroGracefulStopInterruptsRunningIterations) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantVus;
  c.vus = 4;
  c.duration_ns = 1 * kSec;
  c.graceful_stop_ns = 0;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 90 * kMs; };
  h.Run();
  EXPECT_EQ(h.stats.iterations, 44u);
  EXPECT_EQ(h.stats.interrupted_iterations, 4u);
  EXPECT_EQ(h.sim.now, 1 * kSec);
}

TEST(VuSchedule, RampsLikeK6) {
  ExecutorConfig c;
  c.type = ExecutorType::kRampingVus;
  c.start_vus = 0;
  c.stages = {{10 * kSec, 10}, {10 * kSec, 10}, {10 * kSec, 0}};
  VuSchedule s(c);
  EXPECT_EQ(s.VusAt(0), 0u);
  EXPECT_EQ(s.VusAt(999 * kMs), 0u);
  EXPECT_EQ(s.VusAt(1 * kSec), 1u);  // the first VU joins after one tenth of the ramp
  EXPECT_EQ(s.VusAt(5500 * kMs), 5u);
  EXPECT_EQ(s.VusAt(10 * kSec), 10u);
  EXPECT_EQ(s.VusAt(15 * kSec), 10u);
  EXPECT_EQ(s.VusAt(20 * kSec), 10u);
  EXPECT_EQ(s.VusAt(20 * kSec + 999 * kMs), 10u);
  EXPECT_EQ(s.VusAt(21 * kSec), 9u);  // ramping down drops one VU per step, the first after one step
  EXPECT_EQ(s.VusAt(29 * kSec), 1u);
  EXPECT_EQ(s.VusAt(30 * kSec), 0u);
  EXPECT_EQ(s.NextChangeAfter(5500 * kMs), 6 * kSec);
}

TEST(RampingVus, RunnerFollowsTheScheduleAndRampsDownGracefully) {
  ExecutorConfig c;
  c.type = ExecutorType::kRampingVus;
  c.start_vus = 2;
  c.stages = {{1 * kSec, 10}, {1 * kSec, 10}, {1 * kSec, 0}};
  c.graceful_ramp_down_ns = 50 * kMs;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 10 * kMs; };
  std::map<int64_t, uint32_t> running_at;
  h.Run([&](int64_t now) {
    for (int64_t probe : {0 * kMs, 505 * kMs, 1500 * kMs, 2515 * kMs}) {
      if (now >= probe && !running_at.count(probe)) running_at[probe] = h.runner.running();
    }
  });
  EXPECT_EQ(running_at[505 * kMs], 6u);  // 2 + floor(8 * 0.5)
  EXPECT_EQ(running_at[1500 * kMs], 10u);
  EXPECT_EQ(running_at[2515 * kMs], 5u);  // 10 - floor(10 * 0.515); ramped-down VUs finished their 10 ms
  EXPECT_EQ(h.stats.interrupted_iterations, 0u);  // 10 ms iterations always finish within the 50 ms grace
  EXPECT_EQ(h.stats.vus_active, 10u);
}

TEST(RampingVus, LongIterationsAreInterruptedAfterGracefulRampDown) {
  ExecutorConfig c;
  c.type = ExecutorType::kRampingVus;
  c.start_vus = 4;
  c.stages = {{200 * kMs, 4}, {0, 1}, {1 * kSec, 1}};
  c.graceful_ramp_down_ns = 100 * kMs;
  c.graceful_stop_ns = 0;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 500 * kMs; };
  h.Run();
  // At 200 ms three VUs are ramped down mid-iteration and cut at 300 ms; the last VU completes 0-500 and
  // 500-1000, and its third iteration is cut at the end (1.2 s, no graceful stop).
  EXPECT_EQ(h.stats.interrupted_iterations, 4u);
  EXPECT_EQ(h.stats.iterations, 2u);
}

TEST(PerVuIterations, EachVuRunsItsIterationsThenTheScenarioEnds) {
  ExecutorConfig c;
  c.type = ExecutorType::kPerVuIterations;
  c.vus = 3;
  c.iterations = 4;
  Harness h(c);
  h.Run();
  EXPECT_EQ(h.stats.iterations, 12u);
  EXPECT_EQ(h.sim.now, 400 * kMs);  // ends as soon as the work is done, not at max_duration
}

TEST(SharedIterations, VusShareTheTotal) {
  ExecutorConfig c;
  c.type = ExecutorType::kSharedIterations;
  c.vus = 3;
  c.iterations = 10;
  Harness h(c);
  h.Run();
  EXPECT_EQ(h.stats.iterations, 10u);
  EXPECT_EQ(h.sim.now, 400 * kMs);
}

TEST(PerVuIterations, MaxDurationCutsWork) {
  ExecutorConfig c;
  c.type = ExecutorType::kPerVuIterations;
  c.vus = 2;
  c.iterations = 100;
  c.max_duration_ns = 1 * kSec;
  c.graceful_stop_ns = 0;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 300 * kMs; };
  h.Run();
  EXPECT_EQ(h.stats.iterations, 6u);
  EXPECT_EQ(h.stats.interrupted_iterations, 2u);
}

TEST(ArrivalSchedule, ConstantRateIsExact) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantArrivalRate;
  c.rate = 20'000;
  c.duration_ns = 10 * kSec;
  ArrivalSchedule s(c);
  EXPECT_EQ(s.Count(), 200'000u);
  EXPECT_EQ(s.TimeOf(0), 0);
  EXPECT_EQ(s.TimeOf(1), 50'000);
  EXPECT_EQ(s.TimeOf(199'999), 10 * kSec - 50'000);
  EXPECT_EQ(s.TimeOf(200'000), INT64_MAX);
  c.rate = 30;
  c.time_unit_ns = 60 * kSec;  // 30 per minute
  ArrivalSchedule per_minute(c);
  EXPECT_EQ(per_minute.Count(), 5u);
  EXPECT_EQ(per_minute.TimeOf(1), 2 * kSec);
}

TEST(ArrivalSchedule, RampingRateIntegratesTheRamp) {
  ExecutorConfig c;
  c.type = ExecutorType::kRampingArrivalRate;
  c.rate = 0;
  c.stages = {{10 * kSec, 100}, {10 * kSec, 100}, {10 * kSec, 0}};
  ArrivalSchedule s(c);
  EXPECT_EQ(s.Count(), 500u + 1000u + 500u);
  // N(t) = 5 t^2 in the first stage: iteration 20 starts at 2 s, iteration 320 at 8 s.
  EXPECT_NEAR(static_cast<double>(s.TimeOf(20)), 2.0 * kSec, 1e3);
  EXPECT_NEAR(static_cast<double>(s.TimeOf(320)), 8.0 * kSec, 1e3);
  EXPECT_EQ(s.TimeOf(500), 10 * kSec);
  EXPECT_EQ(s.TimeOf(600), 11 * kSec);
  // The ramp down mirrors the ramp up.
  EXPECT_NEAR(static_cast<double>(s.TimeOf(1999)), 30.0 * kSec - std::sqrt(1.0 / 5) * kSec, 1e6);
  for (uint64_t k = 1; k < s.Count(); ++k) ASSERT_GE(s.TimeOf(k), s.TimeOf(k - 1));
  EXPECT_NEAR(s.RatePerSecondAt(5 * kSec), 50.0, 1e-6);
}

TEST(ConstantArrivalRate, StartsOnScheduleMeasuredFromIntendedStart) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantArrivalRate;
  c.rate = 100;
  c.duration_ns = 1 * kSec;
  c.pre_allocated_vus = 2;
  c.max_vus = 5;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 5 * kMs; };
  h.Run();
  EXPECT_EQ(h.stats.iterations, 100u);
  EXPECT_EQ(h.stats.dropped_iterations, 0u);
  ASSERT_EQ(h.sim.starts.size(), 100u);
  for (size_t i = 0; i < h.sim.starts.size(); ++i) {
    EXPECT_EQ(h.sim.starts[i].intended, static_cast<int64_t>(i) * 10 * kMs);
    EXPECT_EQ(h.sim.starts[i].at, h.sim.starts[i].intended);
  }
  EXPECT_EQ(h.runner.allocated(),
            2u);  // 5 ms iterations every 10 ms never need more than the pre-allocated VUs
}

TEST(ConstantArrivalRate, DropsIterationsWhenMaxVusAreBusy) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantArrivalRate;
  c.rate = 100;
  c.duration_ns = 1 * kSec;
  c.pre_allocated_vus = 1;
  c.max_vus = 10;
  c.graceful_stop_ns = 2 * kSec;
  Harness h(c);
  h.sim.iteration_length = [](const Vu&) { return 1 * kSec; };
  h.Run();
  EXPECT_EQ(h.stats.iterations, 10u);
  EXPECT_EQ(h.stats.dropped_iterations, 90u);
  EXPECT_EQ(h.runner.allocated(), 10u);
}

TEST(ConstantArrivalRate, WorkersSplitTheScheduleExactly) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantArrivalRate;
  c.rate = 1000;
  c.duration_ns = 1 * kSec;
  c.pre_allocated_vus = 10;
  std::vector<int64_t> all;
  for (uint32_t w = 0; w < 3; ++w) {
    Harness h(c, w, 3);
    h.sim.iteration_length = [](const Vu&) { return 1 * kMs; };
    h.Run();
    for (const auto& s : h.sim.starts) all.push_back(s.intended);
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 1000u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i) * kMs);
}

TEST(ExecutorConfig, ValidationNamesTheField) {
  ExecutorConfig c;
  c.type = ExecutorType::kConstantArrivalRate;
  c.duration_ns = kSec;
  c.rate = 0;
  auto r = c.Validate();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("rate"), std::string::npos);
  c.rate = 10;
  c.pre_allocated_vus = 5;
  c.max_vus = 2;
  EXPECT_NE(c.Validate().error().message.find("max_vus"), std::string::npos);
  EXPECT_NE(ParseExecutorType("constant").error().message.find("constant-arrival-rate"), std::string::npos);
  auto stages = ParseStages("10s:100,5s:0");
  ASSERT_TRUE(stages.ok());
  EXPECT_EQ(stages->size(), 2u);
  EXPECT_FALSE(ParseStages("10s").ok());
  EXPECT_FALSE(ParseStages("10s:-1").ok());
  EXPECT_FALSE(ParseStages("ten:1").ok());
}

}  // namespace
}  // namespace meridian::loadgen
