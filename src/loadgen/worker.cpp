#include "loadgen/worker.h"

#include <sys/prctl.h>

#include <algorithm>

#include "core/clock.h"

namespace meridian::loadgen {

void Collector::Push(std::unique_ptr<stats::IntervalSnapshot> s) {
  {
    std::lock_guard lock(mu_);
    items_.push_back(std::move(s));
  }
  cv_.notify_one();
}

std::vector<std::unique_ptr<stats::IntervalSnapshot>> Collector::Take(int64_t timeout_ns) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns), [&] { return !items_.empty(); });
  std::vector<std::unique_ptr<stats::IntervalSnapshot>> out;
  out.swap(items_);
  return out;
}

// A runner's Scheduler: one loop timer; measures how late it fires (event-loop lag).
class Worker::RunnerTimer final : public net::Timer, public Scheduler {
 public:
  RunnerTimer(net::EventLoop& loop, Recorder& recorder) : loop_(loop), recorder_(recorder) {}
  void Bind(ScenarioRunner* runner) { runner_ = runner; }
  int64_t Now() override { return MonoNanos(); }
  void WakeAt(int64_t t) override {
    if (t == INT64_MAX) {
      loop_.Cancel(this);
    } else {
      loop_.Schedule(this, t);
    }
  }
  void OnTimer() override {
    recorder_.Health().timer_lag.Record(MonoNanos() - deadline());
    runner_->OnWake();
  }

 private:
  net::EventLoop& loop_;
  Recorder& recorder_;
  ScenarioRunner* runner_ = nullptr;
};

Worker::Worker(const RunConfig& config, uint32_t index, Collector& collector)
    : config_(config), index_(index), collector_(collector), recorder_(index) {}

Worker::~Worker() { Join(); }

void Worker::Launch(std::latch& ready, std::shared_future<int64_t> start_at) {
  thread_ = std::thread([this, &ready, start_at] { Main(ready, start_at); });
}

void Worker::Join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::RequestStop() {
  loop_.Post([this] {
    for (auto& r : runners_) r->EndNow();
  });
}

void Worker::RequestAbort() {
  loop_.Post([this] {
    for (auto& r : runners_) r->AbortNow();
  });
}

Result<void> Worker::Prepare() {
  if (auto r = loop_.Init(); !r.ok()) return r;
  client_.loop = &loop_;
  client_.tls = config_.tls.get();
  client_.connect_timeout_ns = config_.connect_timeout_ns;
  client_.request_timeout_ns = config_.request_timeout_ns;
  loop_.AddDeadlineList(&client_.deadlines);
  env_.loop = &loop_;
  env_.client = &client_;
  env_.origins = &config_.origins;
  env_.recorder = &recorder_;
  env_.names = config_.names.get();
  env_.worker_index = index_;
  env_.seed = config_.seed * 1'000'003 + index_;
  uint64_t vu_base = 0;
  for (size_t i = 0; i < config_.scenarios.size(); ++i) {
    const ScenarioPlan& plan = config_.scenarios[i];
    const uint32_t workers = EffectiveWorkers(plan.executor, config_.threads);
    const uint64_t base = vu_base;
    vu_base += plan.executor.MaxVus();
    const auto stats_index = static_cast<uint16_t>(plan.stats_index >= 0 ? plan.stats_index : i);
    recorder_.Scenario(stats_index);
    if (index_ >= workers) continue;  // this scenario has fewer VUs than threads
    auto factory = plan.make_factory(env_);
    if (!factory.ok()) return factory.error();
    factories_.push_back(std::move(factory).value());
    timers_.push_back(std::make_unique<RunnerTimer>(loop_, recorder_));
    runners_.push_back(
        std::make_unique<ScenarioRunner>(plan.executor, RunnerPlacement{stats_index, index_, workers, base},
                                         &env_, *timers_.back(), *factories_.back(), recorder_));
    timers_.back()->Bind(runners_.back().get());
    runners_.back()->set_on_done([this] { OnRunnerDone(); });
  }
  return {};
}

void Worker::Main(std::latch& ready, std::shared_future<int64_t> start_at) {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake-ups on time: arrival-rate schedules are sub-millisecond
  prepared_ = Prepare();
  ready.count_down();
  // VUs and factories end on this thread: a JavaScript context must be destroyed by the thread that made it.
  auto release = [this] {
    for (auto& t : timers_) loop_.Cancel(t.get());
    runners_.clear();
    factories_.clear();
    loop_.Settle();
  };
  const int64_t start = start_at.get();
  if (start < 0 || !prepared_.ok()) {
    release();
    return;
  }
  Begin(start);
  while (!finished_) loop_.RunOnce(1'000'000'000);
  // Let deferred callbacks of aborted work run before the loop goes away.
  loop_.Settle();
  release();
}

void Worker::Begin(int64_t start_at) {
  start_at_ = start_at;
  last_tick_ns_ = start_at;
  last_cpu_ns_ = ThreadCpuNanos();
  start_probe_.set([this] { began_ns_.store(MonoNanos(), std::memory_order_release); });
  loop_.Schedule(&start_probe_, start_at);
  for (auto& r : runners_) r->Start(start_at);
  tick_.set([this] { Tick(false); });
  loop_.Schedule(&tick_, start_at_ + 1'000'000'000);
  if (runners_.empty()) Tick(true);
}

void Worker::Tick(bool final) {
  const int64_t now = MonoNanos();
  const int64_t cpu = ThreadCpuNanos();
  // The interval starts at the start instant: CPU used while waiting for it is not counted.
  const int64_t wall = now - std::max(last_tick_ns_, start_at_);
  auto snapshot = recorder_.Swap(second_, final);
  snapshot->health.wall_ns = wall;
  snapshot->health.cpu_ns = cpu - last_cpu_ns_;
  snapshot->health.max_cpu_share =
      wall > 0 ? static_cast<double>(cpu - last_cpu_ns_) / static_cast<double>(wall) : 0;
  recorder_.Health().timer_lag.Record(final ? 0 : now - tick_.deadline());
  last_tick_ns_ = now;
  last_cpu_ns_ = cpu;
  collector_.Push(std::move(snapshot));
  if (final) {
    loop_.Cancel(&tick_);
    loop_.Cancel(&start_probe_);
    finished_ = true;
    return;
  }
  ++second_;
  for (auto& r : runners_) r->SeedGauges();
  loop_.Schedule(&tick_, start_at_ + (second_ + 1) * 1'000'000'000);
}

void Worker::OnRunnerDone() {
  if (++runners_done_ < runners_.size()) return;
  // Called from inside a runner: finish after the current event so the runner's stack unwinds first.
  loop_.Defer([this] {
    if (!finished_) Tick(true);
  });
}

}  // namespace meridian::loadgen
