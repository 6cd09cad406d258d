#pragma once
// A worker's recorder: every finished request and iteration lands in the current IntervalSnapshot, which the
// worker swaps out once per second (on its own thread) and hands to the collector. Nothing here locks.

#include <cstdint>
#include <memory>
#include <string>

#include "stats/metrics.h"

namespace meridian::loadgen {

class Recorder {
 public:
  explicit Recorder(uint32_t worker);

  void RecordRequest(uint16_t scenario, uint16_t request, const stats::RequestSample& s) {
    const stats::SeriesKey key{scenario, request, s.status, s.error};
    const uint64_t packed = key.Pack();
    if (cached_ == nullptr || packed != cached_key_) {
      cached_ = &current_->Series(key);
      cached_key_ = packed;
    }
    cached_->Record(s);
  }
  // Keeps the first few messages per error kind for the summary.
  void RecordErrorExample(stats::ErrorKind kind, std::string_view message);

  void RecordCheck(uint16_t index, bool ok) {
    auto& c = current_->checks[index];
    (ok ? c.passes : c.fails) += 1;
  }
  void RecordGroup(uint16_t index, int64_t duration_ns) { current_->groups[index].Record(duration_ns); }

  stats::ScenarioStats& Scenario(uint16_t scenario) { return current_->Scenario(scenario); }
  stats::GeneratorHealth& Health() { return current_->health; }

  // Ends the current interval (numbered `second`) and starts a fresh one.
  std::unique_ptr<stats::IntervalSnapshot> Swap(int64_t second, bool final);

 private:
  uint32_t worker_;
  std::unique_ptr<stats::IntervalSnapshot> current_;
  stats::SeriesStats* cached_ = nullptr;
  uint64_t cached_key_ = 0;
  uint32_t examples_ = 0;
};

}  // namespace meridian::loadgen
