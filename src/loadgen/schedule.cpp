#include "loadgen/schedule.h"

#include <algorithm>
#include <cmath>

namespace meridian::loadgen {

ArrivalSchedule::ArrivalSchedule(const ExecutorConfig& config) {
  const double unit = static_cast<double>(config.time_unit_ns);
  double n = 0;
  int64_t t = 0;
  auto add = [&](int64_t length, double from, double to) {
    Segment s;
    s.start = t;
    s.length = length;
    s.r0 = from / unit;
    s.r1 = to / unit;
    s.n0 = n;
    if (length > 0) segments_.push_back(s);
    n += (s.r0 + s.r1) / 2 * static_cast<double>(length);
    t += length;
  };
  if (config.type == ExecutorType::kRampingArrivalRate) {
    double from = config.rate;
    for (const Stage& stage : config.stages) {
      add(stage.duration_ns, from, stage.target);
      from = stage.target;
    }
  } else {
    add(config.duration_ns, config.rate, config.rate);
  }
  // Iterations k = 0, 1, ... start while the integral is below the total: ceil(total), tolerant of rounding.
  count_ = n <= 0 ? 0 : static_cast<uint64_t>(std::ceil(n - 1e-6));
}

int64_t ArrivalSchedule::TimeOf(uint64_t k) const {
  if (k >= count_) return INT64_MAX;
  const double x_total = static_cast<double>(k);
  // The last segment whose n0 <= k.
  auto it = std::upper_bound(segments_.begin(), segments_.end(), x_total,
                             [](double v, const Segment& s) { return v < s.n0; });
  if (it == segments_.begin()) return 0;
  const Segment& s = *(it - 1);
  const double x = x_total - s.n0;
  double tau;
  if (s.r1 == s.r0) {
    tau = s.r0 > 0 ? x / s.r0 : 0;
  } else {
    // r0*tau + (r1-r0)/(2L)*tau^2 = x, in the form that stays stable when r0 is 0 or the ramp goes down.
    const double a = (s.r1 - s.r0) / (2.0 * static_cast<double>(s.length));
    const double disc = std::max(0.0, s.r0 * s.r0 + 4 * a * x);
    const double denom = s.r0 + std::sqrt(disc);
    tau = denom > 0 ? 2 * x / denom : 0;
  }
  tau = std::clamp(tau, 0.0, static_cast<double>(s.length));
  return s.start + static_cast<int64_t>(std::llround(tau));
}

double ArrivalSchedule::RatePerSecondAt(int64_t t) const {
  for (const Segment& s : segments_) {
    if (t >= s.start && t < s.start + s.length) {
      const double f = static_cast<double>(t - s.start) / static_cast<double>(s.length);
      return (s.r0 + (s.r1 - s.r0) * f) * 1e9;
    }
  }
  return 0;
}

VuSchedule::VuSchedule(const ExecutorConfig& config) {
  auto add = [&](int64_t at, uint32_t vus) {
    if (!steps_.empty() && steps_.back().at == at) {
      steps_.back().vus = vus;
    } else if (steps_.empty() || steps_.back().vus != vus) {
      steps_.push_back(Step{at, vus});
    }
  };
  if (config.type != ExecutorType::kRampingVus) {
    add(0, config.vus);
    add(config.ScheduledDuration(), 0);
    return;
  }
  int64_t stage_start = 0;
  auto from = static_cast<int64_t>(config.start_vus);
  add(0, static_cast<uint32_t>(from));
  for (const Stage& stage : config.stages) {
    const auto to = static_cast<int64_t>(stage.target);
    const int64_t d = stage.duration_ns;
    const int64_t diff = to - from;
    if (diff != 0) {
      if (d == 0) {
        add(stage_start, static_cast<uint32_t>(to));
      } else {
        const int64_t steps = diff > 0 ? diff : -diff;
        for (int64_t i = 1; i <= steps; ++i) {
          const int64_t offset = d / steps * i + (d % steps) * i / steps;  // d*i/steps without overflow
          add(stage_start + offset, static_cast<uint32_t>(from + (diff > 0 ? i : -i)));
        }
      }
    }
    from = to;
    stage_start += d;
  }
  add(stage_start, 0);
}

uint32_t VuSchedule::VusAt(int64_t t) const {
  auto it =
      std::upper_bound(steps_.begin(), steps_.end(), t, [](int64_t v, const Step& s) { return v < s.at; });
  if (it == steps_.begin()) return 0;
  return (it - 1)->vus;
}

int64_t VuSchedule::NextChangeAfter(int64_t t) const {
  auto it =
      std::upper_bound(steps_.begin(), steps_.end(), t, [](int64_t v, const Step& s) { return v < s.at; });
  return it == steps_.end() ? INT64_MAX : it->at;
}

}  // namespace meridian::loadgen
