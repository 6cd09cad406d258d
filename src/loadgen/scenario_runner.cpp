#include "loadgen/scenario_runner.h"

#include <algorithm>

#include "core/assert.h"

namespace meridian::loadgen {

ScenarioRunner::ScenarioRunner(const ExecutorConfig& config, RunnerPlacement placement, WorkerEnv* env,
                               Scheduler& scheduler, IterationFactory& factory, Recorder& recorder)
    : config_(config),
      placement_(placement),
      env_(env),
      scheduler_(scheduler),
      factory_(factory),
      recorder_(recorder) {
  MERIDIAN_RELEASE_ASSERT(placement_.workers >= 1 && placement_.worker < placement_.workers);
  max_vus_ = static_cast<uint32_t>(WorkerShare(config_.MaxVus(), placement_.worker, placement_.workers));
  if (config_.open_model()) {
    arrivals_.emplace(config_);
  } else {
    vu_schedule_.emplace(config_);
  }
}

ScenarioRunner::~ScenarioRunner() = default;

void ScenarioRunner::Start(int64_t run_start) {
  start_ = run_start + config_.start_time_ns;
  end_ = start_ + config_.ScheduledDuration();
  hard_end_ = end_ + config_.graceful_stop_ns;
  phase_ = Phase::kWaiting;
  recorder_.Scenario(placement_.scenario);  // the scenario exists in every snapshot, even before it starts
  scheduler_.WakeAt(start_);
}

Vu& ScenarioRunner::NewVu() {
  const auto local = static_cast<uint32_t>(vus_.size());
  const uint64_t global = static_cast<uint64_t>(local) * placement_.workers + placement_.worker;
  vus_.push_back(std::make_unique<Vu>(*this, env_, placement_.vu_id_base + global + 1, local));
  recorder_.Scenario(placement_.scenario).vus_allocated = static_cast<uint32_t>(vus_.size());
  return *vus_.back();
}

void ScenarioRunner::SeedGauges() {
  auto& s = recorder_.Scenario(placement_.scenario);
  s.vus_active = running_;
  s.vus_allocated = static_cast<uint32_t>(vus_.size());
}

void ScenarioRunner::OnWake() {
  const int64_t now = scheduler_.Now();
  if (phase_ == Phase::kDone || phase_ == Phase::kIdle) return;
  if (phase_ == Phase::kWaiting) {
    if (now < start_) {
      Reschedule(now);
      return;
    }
    Begin(now);
    if (phase_ == Phase::kDone) return;
  }
  if (phase_ == Phase::kRunning) {
    if (vu_schedule_ && config_.type == ExecutorType::kRampingVus) UpdateTarget(std::min(now, end_));
    if (arrivals_) StartDueArrivals(now);
    if (now >= end_) EnterEnding(now, hard_end_);
  }
  if (phase_ == Phase::kEnding && now >= hard_end_) {
    for (auto& vu : vus_) {
      if (vu->running()) AbortVu(*vu);
    }
    Finish();
    return;
  }
  if (ramping_down_ > 0) AbortRampedDown(now);
  if (phase_ == Phase::kRunning && NoMoreWork()) {
    EnterEnding(now, now + config_.graceful_stop_ns);
  }
  if (phase_ != Phase::kDone) Reschedule(now);
}

void ScenarioRunner::Begin(int64_t now) {
  phase_ = Phase::kRunning;
  if (arrivals_) {
    const uint32_t pre = static_cast<uint32_t>(std::min<uint64_t>(
        WorkerShare(config_.pre_allocated_vus, placement_.worker, placement_.workers), max_vus_));
    for (uint32_t i = 0; i < pre; ++i) idle_.push_back(&NewVu());
    std::reverse(idle_.begin(), idle_.end());  // lowest ids first
    next_k_ = placement_.worker;
    return;
  }
  for (uint32_t i = 0; i < max_vus_; ++i) NewVu();
  if (config_.type == ExecutorType::kSharedIterations) {
    shared_left_ = WorkerShare(config_.iterations, placement_.worker, placement_.workers);
  }
  if (config_.type == ExecutorType::kRampingVus) {
    target_ = 0;
    UpdateTarget(now);
  } else {
    target_ = max_vus_;
    for (uint32_t j = 0; j < target_; ++j) {
      if (MayContinue(*vus_[j])) StartIteration(*vus_[j], now, now);
    }
  }
}

bool ScenarioRunner::MayContinue(const Vu& vu) const {
  if (phase_ != Phase::kRunning || vu.index() >= target_) return false;
  switch (config_.type) {
    case ExecutorType::kPerVuIterations:
      return vu.completed_ < config_.iterations;
    case ExecutorType::kSharedIterations:
      return shared_left_ > 0;
    default:
      return true;
  }
}

bool ScenarioRunner::NoMoreWork() const {
  if (running_ > 0) return false;
  switch (config_.type) {
    case ExecutorType::kPerVuIterations:
      return std::all_of(vus_.begin(), vus_.end(),
                         [&](const auto& v) { return v->completed_ >= config_.iterations; });
    case ExecutorType::kSharedIterations:
      return shared_left_ == 0;
    case ExecutorType::kConstantArrivalRate:
    case ExecutorType::kRampingArrivalRate:
      return next_k_ >= arrivals_->Count();
    default:
      return false;  // VU executors run until the end of their schedule
  }
}

void ScenarioRunner::UpdateTarget(int64_t now) {
  const uint32_t wanted = vu_schedule_->VusAt(now - start_);
  const auto target = static_cast<uint32_t>(WorkerShare(wanted, placement_.worker, placement_.workers));
  const uint32_t old = target_;
  target_ = std::min(target, max_vus_);
  for (uint32_t j = old; j < target_; ++j) {
    Vu& vu = *vus_[j];
    if (vu.ramp_down_deadline_ != INT64_MAX) {  // ramped down earlier and still finishing: keep it
      vu.ramp_down_deadline_ = INT64_MAX;
      --ramping_down_;
    }
    if (!vu.running()) StartIteration(vu, now, now);
  }
  for (uint32_t j = target_; j < old; ++j) {
    Vu& vu = *vus_[j];
    if (!vu.running() || vu.ramp_down_deadline_ != INT64_MAX) continue;
    if (config_.graceful_ramp_down_ns == 0) {
      AbortVu(vu);
    } else {
      vu.ramp_down_deadline_ = now + config_.graceful_ramp_down_ns;
      ++ramping_down_;
    }
  }
}

void ScenarioRunner::AbortRampedDown(int64_t now) {
  for (auto& vu : vus_) {
    if (vu->ramp_down_deadline_ <= now && vu->running()) AbortVu(*vu);
  }
}

void ScenarioRunner::StartDueArrivals(int64_t now) {
  const uint64_t count = arrivals_->Count();
  auto& scenario = recorder_.Scenario(placement_.scenario);
  while (next_k_ < count) {
    const int64_t due = start_ + arrivals_->TimeOf(next_k_);
    if (due > now) break;
    next_k_ += placement_.workers;
    Vu* vu = nullptr;
    if (!idle_.empty()) {
      vu = idle_.back();
      idle_.pop_back();
    } else if (vus_.size() < max_vus_) {
      vu = &NewVu();
    }
    if (vu == nullptr) {
      ++scenario.dropped_iterations;
      continue;
    }
    recorder_.Health().schedule_lag.Record(now - due);
    StartIteration(*vu, due, now);
  }
}

void ScenarioRunner::StartIteration(Vu& vu, int64_t intended, int64_t now) {
  if (config_.type == ExecutorType::kSharedIterations) --shared_left_;
  ++running_;
  auto& scenario = recorder_.Scenario(placement_.scenario);
  scenario.vus_active = std::max(scenario.vus_active, running_);
  vu.Begin(intended, now);
}

void ScenarioRunner::OnIterationDone(Vu& vu, bool failed, int64_t now) {
  if (now == 0) now = scheduler_.Now();
  auto& scenario = recorder_.Scenario(placement_.scenario);
  ++scenario.iterations;
  if (failed) ++scenario.failed_iterations;
  scenario.iteration_duration.Record(now - vu.iteration_start_ns());
  --running_;
  if (vu.ramp_down_deadline_ != INT64_MAX) {
    vu.ramp_down_deadline_ = INT64_MAX;
    --ramping_down_;
  }
  if (arrivals_) {
    idle_.push_back(&vu);
  } else if (MayContinue(vu)) {
    StartIteration(vu, now, now);
    return;
  }
  if (phase_ == Phase::kEnding && running_ == 0) {
    Finish();
  } else if (phase_ == Phase::kRunning && NoMoreWork()) {
    EnterEnding(now, now);
  }
}

void ScenarioRunner::AbortVu(Vu& vu) {
  if (!vu.running()) return;
  vu.Abort();
  --running_;
  if (vu.ramp_down_deadline_ != INT64_MAX) {
    vu.ramp_down_deadline_ = INT64_MAX;
    --ramping_down_;
  }
  ++recorder_.Scenario(placement_.scenario).interrupted_iterations;
}

void ScenarioRunner::EnterEnding(int64_t now, int64_t hard_end) {
  if (phase_ == Phase::kDone) return;
  phase_ = Phase::kEnding;
  hard_end_ = hard_end;
  if (running_ == 0) {
    Finish();
    return;
  }
  if (now >= hard_end_) {
    for (auto& vu : vus_) {
      if (vu->running()) AbortVu(*vu);
    }
    Finish();
    return;
  }
  Reschedule(now);
}

void ScenarioRunner::EndNow() {
  const int64_t now = scheduler_.Now();
  if (phase_ == Phase::kDone || phase_ == Phase::kIdle) return;
  if (phase_ == Phase::kWaiting) {
    Finish();
    return;
  }
  if (phase_ == Phase::kRunning) {
    end_ = now;
    EnterEnding(now, now + config_.graceful_stop_ns);
  }
}

void ScenarioRunner::AbortNow() {
  if (phase_ == Phase::kDone) return;
  for (auto& vu : vus_) {
    if (vu->running()) AbortVu(*vu);
  }
  Finish();
}

void ScenarioRunner::Finish() {
  if (phase_ == Phase::kDone) return;
  phase_ = Phase::kDone;
  scheduler_.WakeAt(INT64_MAX);
  if (on_done_) on_done_();
}

void ScenarioRunner::Reschedule(int64_t now) {
  int64_t next = INT64_MAX;
  switch (phase_) {
    case Phase::kWaiting:
      next = start_;
      break;
    case Phase::kRunning: {
      next = end_;
      if (vu_schedule_ && config_.type == ExecutorType::kRampingVus) {
        const int64_t change = vu_schedule_->NextChangeAfter(now - start_);
        if (change != INT64_MAX) next = std::min(next, start_ + change);
      }
      if (arrivals_ && next_k_ < arrivals_->Count()) {
        next = std::min(next, start_ + arrivals_->TimeOf(next_k_));
      }
      break;
    }
    case Phase::kEnding:
      next = hard_end_;
      break;
    default:
      break;
  }
  if (ramping_down_ > 0) {
    for (const auto& vu : vus_) next = std::min(next, vu->ramp_down_deadline_);
  }
  scheduler_.WakeAt(next);
}

// ---- Vu ----

Vu::Vu(ScenarioRunner& runner, WorkerEnv* env, uint64_t id, uint32_t index)
    : runner_(runner),
      env_(env),
      id_(id),
      index_(index),
      rng_((env ? env->seed : 1) * 0x9E3779B97F4A7C15ULL + id) {}

Vu::~Vu() = default;

uint16_t Vu::scenario() const { return runner_.scenario(); }

http::ClientConnection& Vu::Connection(size_t origin) {
  if (connections_.size() <= origin) connections_.resize(origin + 1);
  auto& c = connections_[origin];
  if (!c) c = std::make_unique<http::ClientConnection>(*env_->client, (*env_->origins)[origin]);
  return *c;
}

void Vu::RecordRequest(uint16_t request, const stats::RequestSample& sample, std::string_view error_message) {
  if (sample.error != stats::ErrorKind::kNone) {
    iteration_failed_ = true;
    if (!error_message.empty()) env_->recorder->RecordErrorExample(sample.error, error_message);
  }
  env_->recorder->RecordRequest(runner_.scenario(), request, sample);
}

void Vu::Begin(int64_t start_ns, int64_t now) {
  running_ = true;
  iteration_start_ns_ = start_ns;
  iteration_began_ns_ = now;
  first_request_pending_ = true;
  iteration_failed_ = false;
  if (!iteration_obj_) iteration_obj_ = runner_.factory().NewIteration(*this);
  iteration_obj_->Start(*this);
}

void Vu::FinishIteration(bool failed, int64_t now) {
  MERIDIAN_ASSERT(running_);
  running_ = false;
  ++iteration_;
  ++completed_;
  runner_.OnIterationDone(*this, failed || iteration_failed_, now);
}

void Vu::Abort() {
  if (iteration_obj_) iteration_obj_->Abort(*this);
  for (auto& c : connections_) {
    if (c && c->in_flight()) c->Abort();
  }
  running_ = false;
  ++iteration_;
}

}  // namespace meridian::loadgen
