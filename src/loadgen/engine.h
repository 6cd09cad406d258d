#pragma once
// The load engine: worker threads, each owning an event loop, its VUs, connections, buffers and recorder.
// Workers prepare, meet at a barrier, start at one instant, swap their interval snapshots every second and
// post them to the engine, which merges them off the hot path and reports progress. Nothing is shared between
// workers while the run is live except the immutable RunConfig.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/client_connection.h"
#include "loadgen/executor.h"
#include "loadgen/iteration.h"
#include "net/tls.h"
#include "stats/names.h"
#include "stats/summary.h"

namespace meridian::loadgen {

struct ScenarioPlan {
  std::string name;
  ExecutorConfig executor;
  IterationFactoryMaker make_factory;
  int stats_index = -1;  // the scenario's index in the run's name tables; -1: its position in RunConfig
};

struct RunConfig {
  std::vector<ScenarioPlan> scenarios;
  std::vector<http::Origin> origins;  // resolved (see PrepareOrigins)
  std::shared_ptr<const net::TlsContext> tls;
  uint32_t threads = 1;
  int64_t connect_timeout_ns = 5'000'000'000;
  int64_t request_timeout_ns = 10'000'000'000;
  int64_t start_delay_ns = 20'000'000;  // from "all workers ready" to the start instant
  // When set, called on the engine's thread once every worker is prepared; returns the start instant on the
  // monotonic clock (an agent waits here for the run's common start), or a negative value to abandon the run.
  std::function<int64_t()> await_start;
  // The name table every worker interns request/check/group names into (scripts). Required for script
  // scenarios; declarative names are its first entries.
  std::shared_ptr<stats::NameRegistry> names;
  uint64_t seed = 1;
};

struct Progress {
  int64_t second = 0;                       // the second just completed (0-based from the start instant)
  const stats::IntervalSnapshot* interval;  // merged across workers
  const stats::TimelinePoint* point;
  int64_t elapsed_ns = 0;
};

struct RunResult {
  stats::IntervalSnapshot totals;  // merged over workers and time
  std::vector<stats::TimelinePoint> timeline;
  int64_t started_wall_ns = 0;
  int64_t duration_ns = 0;    // start instant to the last worker's end
  int64_t start_mono_ns = 0;  // the start instant (monotonic)
  int64_t began_mono_ns = 0;  // when the first worker's loop actually woke for it (0: never)
  uint64_t connections_opened = 0;
  uint64_t retries = 0;
  bool stopped_early = false;
};

class Engine {
 public:
  explicit Engine(std::shared_ptr<const RunConfig> config);
  ~Engine();

  // Runs to the end. `on_second` is called on the calling thread after each merged second.
  Result<RunResult> Run(const std::function<void(const Progress&)>& on_second);

  // Thread- and signal-safe: end the schedule now and let iterations finish within their graceful stop.
  void RequestStop() { stop_requested_.store(true, std::memory_order_relaxed); }
  // Thread- and signal-safe: interrupt everything now.
  void RequestAbort() { abort_requested_.store(true, std::memory_order_relaxed); }

 private:
  std::shared_ptr<const RunConfig> config_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> abort_requested_{false};
};

// Workers that share a scenario: no more than its VUs, so that every sharing worker has one.
uint32_t EffectiveWorkers(const ExecutorConfig& executor, uint32_t threads);

}  // namespace meridian::loadgen
