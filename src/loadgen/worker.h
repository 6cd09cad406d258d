#pragma once
// One load-generating thread (internal to loadgen; see engine.h).

#include <atomic>
#include <condition_variable>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "loadgen/engine.h"
#include "loadgen/recorder.h"
#include "loadgen/scenario_runner.h"
#include "net/event_loop.h"

namespace meridian::loadgen {

// Where workers hand in their per-second snapshots.
class Collector {
 public:
  void Push(std::unique_ptr<stats::IntervalSnapshot> s);
  // Returns what arrived, waiting up to timeout_ns when nothing has.
  std::vector<std::unique_ptr<stats::IntervalSnapshot>> Take(int64_t timeout_ns);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<stats::IntervalSnapshot>> items_;
};

class Worker {
 public:
  Worker(const RunConfig& config, uint32_t index, Collector& collector);
  ~Worker();

  // Starts the thread: prepare, count down `ready`, wait for the start instant (negative: abandon).
  void Launch(std::latch& ready, std::shared_future<int64_t> start_at);
  const Result<void>& prepared() const { return prepared_; }
  void RequestStop();   // thread-safe
  void RequestAbort();  // thread-safe
  void Join();
  uint64_t connections_opened() const { return client_.connections_opened; }
  uint64_t retries() const { return client_.retries; }
  // When this worker's loop actually woke for the start instant (monotonic ns; 0 if it never started).
  int64_t began_ns() const { return began_ns_.load(std::memory_order_acquire); }

 private:
  class RunnerTimer;
  void Main(std::latch& ready, std::shared_future<int64_t> start_at);
  Result<void> Prepare();
  void Begin(int64_t start_at);
  void Tick(bool final);
  void OnRunnerDone();

  const RunConfig& config_;
  uint32_t index_;
  Collector& collector_;
  net::EventLoop loop_;
  http::ClientShared client_;
  Recorder recorder_;
  WorkerEnv env_;
  std::vector<std::unique_ptr<IterationFactory>> factories_;
  std::vector<std::unique_ptr<RunnerTimer>> timers_;
  std::vector<std::unique_ptr<ScenarioRunner>> runners_;
  net::FunctionTimer tick_;
  net::FunctionTimer start_probe_;
  std::atomic<int64_t> began_ns_{0};
  int64_t start_at_ = 0;
  int64_t second_ = 0;
  int64_t last_tick_ns_ = 0;
  int64_t last_cpu_ns_ = 0;
  size_t runners_done_ = 0;
  bool finished_ = false;
  Result<void> prepared_;
  std::thread thread_;
};

}  // namespace meridian::loadgen
