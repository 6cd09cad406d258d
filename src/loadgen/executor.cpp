#include "loadgen/executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/duration.h"

namespace meridian::loadgen {

namespace {
struct NamedType {
  const char* name;
  ExecutorType type;
};
constexpr NamedType kTypes[] = {
    {"constant-vus", ExecutorType::kConstantVus},
    {"ramping-vus", ExecutorType::kRampingVus},
    {"per-vu-iterations", ExecutorType::kPerVuIterations},
    {"shared-iterations", ExecutorType::kSharedIterations},
    {"constant-arrival-rate", ExecutorType::kConstantArrivalRate},
    {"ramping-arrival-rate", ExecutorType::kRampingArrivalRate},
};

Error Invalid(std::string message) { return MakeError(ErrorCode::kInvalidArgument, std::move(message)); }

std::string RateText(double rate, int64_t unit_ns) {
  const std::string unit = unit_ns == 1'000'000'000 ? "s" : FormatDuration(unit_ns);
  return fmt::format("{:g}/{}", rate, unit);
}
}  // namespace

const char* ExecutorName(ExecutorType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "?";
}

std::string AllowedExecutorNames() {
  std::string out;
  for (const auto& t : kTypes) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

Result<ExecutorType> ParseExecutorType(std::string_view name) {
  for (const auto& t : kTypes) {
    if (name == t.name) return t.type;
  }
  return Invalid(fmt::format("unknown executor '{}' (allowed: {})", name, AllowedExecutorNames()));
}

Result<std::pair<double, int64_t>> ParseRate(std::string_view view) {
  const std::string text(view);
  const size_t slash = text.find('/');
  const std::string number = text.substr(0, slash);
  char* end = nullptr;
  const double rate = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !(rate >= 0) || !std::isfinite(rate)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("'{}' is not a rate (e.g. 1000, 1000/s, 60/m, 5/100ms)", text));
  }
  int64_t unit = kNanosPerSecond;
  if (slash != std::string::npos) {
    std::string u = text.substr(slash + 1);
    if (!u.empty() && (u[0] < '0' || u[0] > '9')) u = "1" + u;
    auto d = ParseDuration(u);
    if (!d.ok() || *d <= 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("'{}' has an invalid time unit (e.g. 1000/s, 60/m, 5/100ms)", text));
    }
    unit = *d;
  }
  return std::pair<double, int64_t>(rate, unit);
}

Result<std::vector<Stage>> ParseStages(std::string_view text) {
  std::vector<Stage> stages;
  const std::string original(text);
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      return Invalid(fmt::format("invalid stages '{}': '{}' is not DURATION:TARGET (e.g. 10s:100,20s:0)",
                                 original, item));
    }
    auto d = ParseDuration(item.substr(0, colon));
    if (!d.ok()) return Invalid(fmt::format("invalid stages '{}': {}", original, d.error().message));
    const std::string target(item.substr(colon + 1));
    char* end = nullptr;
    const double v = std::strtod(target.c_str(), &end);
    if (target.empty() || end != target.c_str() + target.size() || !(v >= 0) || !std::isfinite(v)) {
      return Invalid(
          fmt::format("invalid stages '{}': target '{}' is not a non-negative number", original, target));
    }
    stages.push_back(Stage{*d, v});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (stages.empty()) return Invalid("invalid stages '': give at least one DURATION:TARGET");
  return stages;
}

int64_t ExecutorConfig::ScheduledDuration() const {
  switch (type) {
    case ExecutorType::kConstantVus:
    case ExecutorType::kConstantArrivalRate:
      return duration_ns;
    case ExecutorType::kRampingVus:
    case ExecutorType::kRampingArrivalRate: {
      int64_t total = 0;
      for (const auto& s : stages) total += s.duration_ns;
      return total;
    }
    case ExecutorType::kPerVuIterations:
    case ExecutorType::kSharedIterations:
      return max_duration_ns;
  }
  return 0;
}

uint32_t ExecutorConfig::MaxVus() const {
  switch (type) {
    case ExecutorType::kConstantVus:
    case ExecutorType::kPerVuIterations:
    case ExecutorType::kSharedIterations:
      return vus;
    case ExecutorType::kRampingVus: {
      double m = start_vus;
      for (const auto& s : stages) m = std::max(m, s.target);
      // Validate() refuses targets above its limit; clamp so that an unvalidated config converts safely.
      return static_cast<uint32_t>(std::clamp(m, 0.0, 4e9));
    }
    case ExecutorType::kConstantArrivalRate:
    case ExecutorType::kRampingArrivalRate:
      return std::max(pre_allocated_vus, max_vus);
  }
  return 0;
}

Result<void> ExecutorConfig::Validate() const {
  const char* name = ExecutorName(type);
  constexpr uint32_t kMaxVusLimit = 1'000'000;
  constexpr uint64_t kMaxRatePerSecond = 10'000'000;
  if (start_time_ns < 0) return Invalid("start_time must not be negative");
  if (graceful_stop_ns < 0) return Invalid("graceful_stop must not be negative");
  switch (type) {
    case ExecutorType::kConstantVus:
      if (vus < 1) return Invalid(fmt::format("{}: vus must be at least 1", name));
      if (duration_ns <= 0) return Invalid(fmt::format("{}: duration must be greater than 0", name));
      break;
    case ExecutorType::kPerVuIterations:
    case ExecutorType::kSharedIterations:
      if (vus < 1) return Invalid(fmt::format("{}: vus must be at least 1", name));
      if (iterations < 1) return Invalid(fmt::format("{}: iterations must be at least 1", name));
      if (type == ExecutorType::kSharedIterations && vus > iterations) {
        return Invalid(fmt::format("{}: vus ({}) must not exceed iterations ({})", name, vus, iterations));
      }
      if (max_duration_ns <= 0) return Invalid(fmt::format("{}: max_duration must be greater than 0", name));
      break;
    case ExecutorType::kRampingVus:
    case ExecutorType::kRampingArrivalRate:
      if (stages.empty()) return Invalid(fmt::format("{}: stages must list at least one stage", name));
      for (size_t i = 0; i < stages.size(); ++i) {
        if (stages[i].duration_ns < 0)
          return Invalid(fmt::format("{}: stages[{}].duration is negative", name, i));
        if (stages[i].target < 0) return Invalid(fmt::format("{}: stages[{}].target is negative", name, i));
        if (type == ExecutorType::kRampingVus && stages[i].target != std::floor(stages[i].target)) {
          return Invalid(fmt::format("{}: stages[{}].target must be a whole number of VUs", name, i));
        }
        if (type == ExecutorType::kRampingVus && stages[i].target > kMaxVusLimit) {
          return Invalid(
              fmt::format("{}: stages[{}].target: at most {} VUs are supported", name, i, kMaxVusLimit));
        }
      }
      if (ScheduledDuration() <= 0)
        return Invalid(fmt::format("{}: the stages must last longer than 0", name));
      if (type == ExecutorType::kRampingVus && graceful_ramp_down_ns < 0) {
        return Invalid(fmt::format("{}: graceful_ramp_down must not be negative", name));
      }
      break;
    case ExecutorType::kConstantArrivalRate:
      if (duration_ns <= 0) return Invalid(fmt::format("{}: duration must be greater than 0", name));
      if (!(rate > 0)) return Invalid(fmt::format("{}: rate must be greater than 0", name));
      break;
  }
  if (open_model()) {
    if (time_unit_ns <= 0) return Invalid(fmt::format("{}: time_unit must be greater than 0", name));
    if (!(rate >= 0) || !std::isfinite(rate))
      return Invalid(fmt::format("{}: rate must be a number >= 0", name));
    double peak = rate;
    for (const auto& st : stages) peak = std::max(peak, st.target);
    if (peak * 1e9 / static_cast<double>(time_unit_ns) > static_cast<double>(kMaxRatePerSecond)) {
      return Invalid(
          fmt::format("{}: at most {} iterations per second are supported (rate and stage targets)", name,
                      kMaxRatePerSecond));
    }
    if (pre_allocated_vus < 1) return Invalid(fmt::format("{}: pre_allocated_vus must be at least 1", name));
    if (max_vus != 0 && max_vus < pre_allocated_vus) {
      return Invalid(fmt::format("{}: max_vus ({}) must be at least pre_allocated_vus ({})", name, max_vus,
                                 pre_allocated_vus));
    }
  }
  if (MaxVus() > kMaxVusLimit)
    return Invalid(fmt::format("{}: at most {} VUs are supported", name, kMaxVusLimit));
  return {};
}

std::string ExecutorConfig::Describe() const {
  std::string stages_text;
  for (const auto& s : stages) {
    if (!stages_text.empty()) stages_text += ", ";
    stages_text += fmt::format("{}→{:g}", FormatDuration(s.duration_ns), s.target);
  }
  switch (type) {
    case ExecutorType::kConstantVus:
      return fmt::format("constant-vus: {} VUs for {}", vus, FormatDuration(duration_ns));
    case ExecutorType::kRampingVus:
      return fmt::format("ramping-vus: from {} VUs, stages {}", start_vus, stages_text);
    case ExecutorType::kPerVuIterations:
      return fmt::format("per-vu-iterations: {} VUs × {} iterations (max {})", vus, iterations,
                         FormatDuration(max_duration_ns));
    case ExecutorType::kSharedIterations:
      return fmt::format("shared-iterations: {} iterations shared by {} VUs (max {})", iterations, vus,
                         FormatDuration(max_duration_ns));
    case ExecutorType::kConstantArrivalRate:
      return fmt::format("constant-arrival-rate: {} for {} ({} to {} VUs)", RateText(rate, time_unit_ns),
                         FormatDuration(duration_ns), pre_allocated_vus, MaxVus());
    case ExecutorType::kRampingArrivalRate:
      return fmt::format("ramping-arrival-rate: from {}, stages {} ({} to {} VUs)",
                         RateText(rate, time_unit_ns), stages_text, pre_allocated_vus, MaxVus());
  }
  return "?";
}

}  // namespace meridian::loadgen
