#pragma once
// Runs one scenario's share of work on one worker: the executor logic of executor.h, driven by a Scheduler
// (the worker's event-loop timer in production, a fake clock in tests). It owns the VUs; iterations report
// back through Vu::FinishIteration.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "loadgen/executor.h"
#include "loadgen/iteration.h"
#include "loadgen/recorder.h"
#include "loadgen/schedule.h"

namespace meridian::loadgen {

// The runner's single wake-up and its clock.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  virtual int64_t Now() = 0;
  virtual void WakeAt(int64_t t) = 0;  // replaces the pending wake-up; INT64_MAX cancels it
};

struct RunnerPlacement {
  uint16_t scenario = 0;
  uint32_t worker = 0;      // this worker's index
  uint32_t workers = 1;     // workers sharing the scenario (callers cap it at the scenario's MaxVus())
  uint64_t vu_id_base = 0;  // VU ids are vu_id_base + global VU index + 1
};

class ScenarioRunner {
 public:
  ScenarioRunner(const ExecutorConfig& config, RunnerPlacement placement, WorkerEnv* env,
                 Scheduler& scheduler, IterationFactory& factory, Recorder& recorder);
  ~ScenarioRunner();

  // Arms the scenario to begin at run_start + start_time (absolute, scheduler clock).
  void Start(int64_t run_start);
  // The scheduler's wake-up fired.
  void OnWake();
  // Ends the schedule now; running iterations get the graceful stop (Ctrl-C, abort_on_fail).
  void EndNow();
  // Interrupts every running iteration and finishes.
  void AbortNow();

  bool done() const { return phase_ == Phase::kDone; }
  void set_on_done(std::function<void()> fn) { on_done_ = std::move(fn); }
  uint32_t running() const { return running_; }
  uint32_t allocated() const { return static_cast<uint32_t>(vus_.size()); }
  // Sets the VU gauges of the recorder's current interval (after a swap).
  void SeedGauges();

  // From Vu.
  void OnIterationDone(Vu& vu, bool failed, int64_t now);
  IterationFactory& factory() { return factory_; }
  uint16_t scenario() const { return placement_.scenario; }

 private:
  enum class Phase { kIdle, kWaiting, kRunning, kEnding, kDone };

  void Begin(int64_t now);
  void EnterEnding(int64_t now, int64_t hard_end);
  void Finish();
  void UpdateTarget(int64_t now);
  void StartDueArrivals(int64_t now);
  void AbortRampedDown(int64_t now);
  void StartIteration(Vu& vu, int64_t intended, int64_t now);
  bool MayContinue(const Vu& vu) const;
  bool NoMoreWork() const;
  void Reschedule(int64_t now);
  void AbortVu(Vu& vu);
  Vu& NewVu();

  ExecutorConfig config_;
  RunnerPlacement placement_;
  WorkerEnv* env_;
  Scheduler& scheduler_;
  IterationFactory& factory_;
  Recorder& recorder_;
  std::function<void()> on_done_;
  std::optional<ArrivalSchedule> arrivals_;
  std::optional<VuSchedule> vu_schedule_;

  Phase phase_ = Phase::kIdle;
  int64_t start_ = 0;     // absolute
  int64_t end_ = 0;       // absolute end of the schedule
  int64_t hard_end_ = 0;  // end_ + graceful stop
  uint32_t target_ = 0;   // closed model: VUs with index < target_ may run iterations
  uint32_t max_vus_ = 0;  // this worker's share of the executor's VUs
  uint32_t running_ = 0;
  uint32_t ramping_down_ = 0;  // running VUs past the target, waiting for the graceful ramp-down
  uint64_t shared_left_ = 0;   // shared-iterations: iterations not yet started on this worker
  uint64_t next_k_ = 0;        // open model: the next global iteration index owned by this worker
  std::vector<std::unique_ptr<Vu>> vus_;
  std::vector<Vu*> idle_;  // open model: VUs free to take an arrival
};

}  // namespace meridian::loadgen
