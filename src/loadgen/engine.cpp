#include "loadgen/engine.h"

#include <algorithm>
#include <latch>
#include <map>

#include "core/clock.h"
#include "loadgen/worker.h"
#include "net/socket.h"

namespace meridian::loadgen {

uint32_t EffectiveWorkers(const ExecutorConfig& executor, uint32_t threads) {
  return std::max<uint32_t>(1, std::min(threads, std::max<uint32_t>(1, executor.MaxVus())));
}

Engine::Engine(std::shared_ptr<const RunConfig> config) : config_(std::move(config)) {}
Engine::~Engine() = default;

Result<RunResult> Engine::Run(const std::function<void(const Progress&)>& on_second) {
  const RunConfig& config = *config_;
  net::IgnoreSigpipe();
  const uint32_t threads = std::max<uint32_t>(1, config.threads);
  Collector collector;
  std::vector<std::unique_ptr<Worker>> workers;
  std::latch ready(threads);
  std::promise<int64_t> start_promise;
  std::shared_future<int64_t> start_at = start_promise.get_future().share();
  for (uint32_t i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>(config, i, collector));
    workers.back()->Launch(ready, start_at);
  }
  ready.wait();
  for (auto& w : workers) {
    if (!w->prepared().ok()) {
      const Error error = w->prepared().error();
      start_promise.set_value(-1);
      for (auto& other : workers) other->Join();
      return error;
    }
  }

  RunResult result;
  int64_t start = MonoNanos() + config.start_delay_ns;
  if (config.await_start) {
    start = config.await_start();
    if (start < 0) {
      start_promise.set_value(-1);
      for (auto& w : workers) w->Join();
      return MakeError(ErrorCode::kInternal, "the run was cancelled before it started");
    }
  }
  result.started_wall_ns = WallNanos() + (start - MonoNanos());
  start_promise.set_value(start);

  struct Pending {
    stats::IntervalSnapshot merged;
    uint32_t reported = 0;
  };
  std::map<int64_t, Pending> pending;
  std::vector<int64_t> last_second(threads, -1);
  std::vector<bool> final(threads, false);
  uint32_t finals = 0;
  bool stop_sent = false, abort_sent = false;

  auto complete = [&](int64_t second) {
    for (uint32_t w = 0; w < threads; ++w) {
      if (last_second[w] < second && !final[w]) return false;
    }
    return true;
  };
  auto emit_ready = [&]() {
    while (!pending.empty() && complete(pending.begin()->first)) {
      auto node = pending.extract(pending.begin());
      stats::IntervalSnapshot& merged = node.mapped().merged;
      merged.second = node.key();
      result.timeline.push_back(stats::MakeTimelinePoint(merged));
      if (on_second) {
        Progress p{node.key(), &merged, &result.timeline.back(), MonoNanos() - start};
        on_second(p);
      }
      result.totals.MergeAcrossTime(merged);
    }
  };

  while (finals < threads) {
    if (stop_requested_.load(std::memory_order_relaxed) && !stop_sent) {
      stop_sent = true;
      result.stopped_early = true;
      for (auto& w : workers) w->RequestStop();
    }
    if (abort_requested_.load(std::memory_order_relaxed) && !abort_sent) {
      abort_sent = true;
      result.stopped_early = true;
      for (auto& w : workers) w->RequestAbort();
    }
    for (auto& s : collector.Take(100'000'000)) {
      const uint32_t w = s->worker;
      last_second[w] = std::max(last_second[w], s->second);
      if (s->final) {
        final[w] = true;
        ++finals;
      }
      Pending& p = pending[s->second];
      p.merged.MergeAcrossWorkers(*s);
      ++p.reported;
    }
    emit_ready();
  }
  result.duration_ns = MonoNanos() - start;
  for (auto& w : workers) w->Join();
  emit_ready();
  result.start_mono_ns = start;
  for (auto& w : workers) {
    if (w->began_ns() > 0 && (result.began_mono_ns == 0 || w->began_ns() < result.began_mono_ns)) {
      result.began_mono_ns = w->began_ns();
    }
    result.connections_opened += w->connections_opened();
    result.retries += w->retries();
  }
  return result;
}

}  // namespace meridian::loadgen
