#pragma once
// The iteration interface: what a VU runs, independent of how executors schedule it. Today's implementation
// is a list of declarative requests (declarative.h); the JavaScript runtime plugs in as another
// IterationFactory without touching the executors.
//
// Threading: factories, iterations and VUs live on one worker thread and are driven by its event loop.

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "core/result.h"
#include "http/client_connection.h"
#include "net/event_loop.h"
#include "stats/metrics.h"
#include "stats/names.h"

namespace meridian::loadgen {

class Recorder;
class ScenarioRunner;
class Iteration;

// The worker's services, as iterations see them. Outlives every VU of the worker.
struct WorkerEnv {
  net::EventLoop* loop = nullptr;
  http::ClientShared* client = nullptr;
  const std::vector<http::Origin>* origins = nullptr;
  Recorder* recorder = nullptr;
  stats::NameRegistry* names = nullptr;  // the engine's name table (scripts add request, check, group names)
  uint32_t worker_index = 0;
  uint64_t seed = 1;
};

// A virtual user: its identity, its connections (one per origin, opened lazily and kept alive) and its
// iteration state. Created and driven by a ScenarioRunner.
class Vu {
 public:
  Vu(ScenarioRunner& runner, WorkerEnv* env, uint64_t id, uint32_t index);
  ~Vu();
  Vu(const Vu&) = delete;
  Vu& operator=(const Vu&) = delete;

  uint64_t id() const { return id_; }                // global and 1-based, like k6's __VU
  uint64_t iteration() const { return iteration_; }  // 0-based iteration number of this VU (__ITER)
  uint32_t index() const { return index_; }          // index within its runner
  int64_t iteration_start_ns() const { return iteration_start_ns_; }  // intended start (open model) or actual
  int64_t iteration_began_ns() const { return iteration_began_ns_; }  // when the iteration actually began
  bool first_request_pending() const { return first_request_pending_; }
  uint16_t scenario() const;
  bool running() const { return running_; }

  // The keep-alive connection to origin `i` (WorkerEnv::origins), created on first use.
  http::ClientConnection& Connection(size_t origin);
  // Latency of the iteration's first request is measured from the iteration's start (its intended start for
  // arrival-rate executors: no coordinated omission); later requests from when they are sent.
  int64_t NextRequestStart(int64_t now) {
    if (!first_request_pending_) return now;
    first_request_pending_ = false;
    return iteration_start_ns_;
  }
  void RecordRequest(uint16_t request, const stats::RequestSample& sample, std::string_view error_message);
  std::mt19937_64& rng() { return rng_; }
  WorkerEnv& env() { return *env_; }

  // The iteration calls this exactly once per Start (never from inside Start: use WorkerEnv::loop->Defer).
  // `now` is the current monotonic time if the caller has it (0: read the clock).
  void FinishIteration(bool failed, int64_t now = 0);

 private:
  friend class ScenarioRunner;
  void Begin(int64_t start_ns, int64_t now);
  void Abort();

  ScenarioRunner& runner_;
  WorkerEnv* env_;
  uint64_t id_;
  uint32_t index_;
  uint64_t iteration_ = 0;
  uint64_t completed_ = 0;
  int64_t iteration_start_ns_ = 0;
  int64_t iteration_began_ns_ = 0;
  int64_t ramp_down_deadline_ = INT64_MAX;
  bool running_ = false;
  bool first_request_pending_ = false;
  bool iteration_failed_ = false;
  std::unique_ptr<Iteration> iteration_obj_;
  std::vector<std::unique_ptr<http::ClientConnection>> connections_;
  std::mt19937_64 rng_;
};

class Iteration {
 public:
  virtual ~Iteration() = default;
  // Begins one iteration. Must lead to exactly one vu.FinishIteration(), later, from the event loop.
  virtual void Start(Vu& vu) = 0;
  // The iteration is cut off (graceful stop or ramp-down elapsed): drop all work, no FinishIteration.
  virtual void Abort(Vu& vu) = 0;
};

// One per scenario per worker, created on the worker thread (a JavaScript factory holds the thread's
// context).
class IterationFactory {
 public:
  virtual ~IterationFactory() = default;
  virtual std::unique_ptr<Iteration> NewIteration(Vu& vu) = 0;
};

// Builds a scenario's factory on a worker thread.
using IterationFactoryMaker = std::function<Result<std::unique_ptr<IterationFactory>>(WorkerEnv& env)>;

}  // namespace meridian::loadgen
