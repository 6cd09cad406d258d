#pragma once
// Executors with k6's semantics. An ExecutorConfig says how iterations are scheduled; it says nothing about
// what an iteration does (see iteration.h).
//
//   constant-vus          `vus` VUs loop iterations for `duration`                       (closed model)
//   ramping-vus           VUs follow `stages` from `start_vus`, graceful ramp-down        (closed model)
//   per-vu-iterations     each of `vus` VUs runs `iterations` iterations, within `max_duration`
//   shared-iterations     `vus` VUs share `iterations` iterations, within `max_duration`
//   constant-arrival-rate `rate` iterations per `time_unit` start for `duration`         (open model)
//   ramping-arrival-rate  the start rate follows `stages` from `rate`                     (open model)
// Open-model executors start iterations on idle VUs (allocating up to `max_vus`); with none free, the
// iteration is dropped and counted. Their latency is measured from each iteration's intended start.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace meridian::loadgen {

enum class ExecutorType {
  kConstantVus,
  kRampingVus,
  kPerVuIterations,
  kSharedIterations,
  kConstantArrivalRate,
  kRampingArrivalRate,
};

const char* ExecutorName(ExecutorType type);
Result<ExecutorType> ParseExecutorType(std::string_view name);  // error lists the allowed names
std::string AllowedExecutorNames();

struct Stage {
  int64_t duration_ns = 0;
  double target = 0;  // VUs (ramping-vus) or iterations per time_unit (ramping-arrival-rate)
};

// Parses a rate: "1000", "1000/s", "60/m", "5/100ms" → iterations per time unit (ns). The error shows
// examples.
Result<std::pair<double, int64_t>> ParseRate(std::string_view text);

// Parses "10s:100,20s:100,10s:0" (duration:target pairs).
Result<std::vector<Stage>> ParseStages(std::string_view text);

struct ExecutorConfig {
  ExecutorType type = ExecutorType::kConstantVus;
  int64_t start_time_ns = 0;  // offset from the run's start instant
  int64_t graceful_stop_ns = 30'000'000'000;
  uint32_t vus = 1;                           // constant-vus, per-vu-iterations, shared-iterations
  int64_t duration_ns = 0;                    // constant-vus, constant-arrival-rate
  uint64_t iterations = 1;                    // per-vu-iterations (each VU), shared-iterations (in total)
  int64_t max_duration_ns = 600'000'000'000;  // per-vu/shared-iterations
  uint32_t start_vus = 0;                     // ramping-vus
  int64_t graceful_ramp_down_ns = 30'000'000'000;
  std::vector<Stage> stages;  // ramping-vus, ramping-arrival-rate
  double rate = 0;            // iterations per time_unit: the constant rate, or the ramp's start rate
  int64_t time_unit_ns = 1'000'000'000;
  uint32_t pre_allocated_vus = 1;  // arrival-rate
  uint32_t max_vus = 0;            // arrival-rate; 0 means pre_allocated_vus

  bool open_model() const {
    return type == ExecutorType::kConstantArrivalRate || type == ExecutorType::kRampingArrivalRate;
  }
  // The scheduled length, from the scenario's own start, before the graceful stop.
  int64_t ScheduledDuration() const;
  // The most VUs the executor may ever run.
  uint32_t MaxVus() const;
  // Checks every field for this executor type; errors name the field and the allowed values.
  Result<void> Validate() const;
  // "constant-arrival-rate: 1000 iterations/s for 10s (max 1000 VUs)"
  std::string Describe() const;
};

}  // namespace meridian::loadgen
