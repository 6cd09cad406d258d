#pragma once
// Pure schedules, computed from an ExecutorConfig and tested with fake time: when the k-th arrival-rate
// iteration starts, and how many VUs ramping-vus wants at any moment. Times are ns from the scenario's start.
//
// Work is split over W workers by index: worker w owns arrival-rate iterations k with k % W == w and VUs with
// global index g % W == w, so the shares add up to exactly the configured totals.

#include <cstdint>
#include <vector>

#include "loadgen/executor.h"

namespace meridian::loadgen {

// How many of the items 0..n-1 fall to worker w of W (items g with g % W == w).
inline uint64_t WorkerShare(uint64_t n, uint32_t worker, uint32_t workers) {
  return n > worker ? (n - worker - 1) / workers + 1 : 0;
}

class ArrivalSchedule {
 public:
  explicit ArrivalSchedule(const ExecutorConfig& config);

  // Start offset of iteration k (0-based): the t at which the integral of the rate reaches k. INT64_MAX when
  // k is beyond the schedule.
  int64_t TimeOf(uint64_t k) const;
  // Iterations in the whole schedule (for 20,000/s over 10 s: exactly 200,000).
  uint64_t Count() const { return count_; }
  // The rate at t, in iterations per second.
  double RatePerSecondAt(int64_t t) const;

 private:
  struct Segment {
    int64_t start = 0;
    int64_t length = 0;
    double r0 = 0;  // iterations per ns at the segment's start
    double r1 = 0;  // ... and at its end
    double n0 = 0;  // iterations before the segment
  };
  std::vector<Segment> segments_;
  uint64_t count_ = 0;
};

class VuSchedule {
 public:
  struct Step {
    int64_t at = 0;
    uint32_t vus = 0;
  };
  // ramping-vus: the VU count changes by one at each integer crossing of the linear ramp (as k6 does); other
  // VU executors: a constant count. A final step to 0 is at ScheduledDuration().
  explicit VuSchedule(const ExecutorConfig& config);
  const std::vector<Step>& steps() const { return steps_; }
  uint32_t VusAt(int64_t t) const;
  // The first step strictly after t, or INT64_MAX.
  int64_t NextChangeAfter(int64_t t) const;

 private:
  std::vector<Step> steps_;
};

}  // namespace meridian::loadgen
