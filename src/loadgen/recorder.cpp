#include "loadgen/recorder.h"

namespace meridian::loadgen {

Recorder::Recorder(uint32_t worker) : worker_(worker), current_(std::make_unique<stats::IntervalSnapshot>()) {
  current_->worker = worker_;
}

void Recorder::RecordErrorExample(stats::ErrorKind kind, std::string_view message) {
  if (examples_ >= 16) return;  // per interval: enough to explain, never a flood
  current_->AddErrorExample(kind, message);
  ++examples_;
}

std::unique_ptr<stats::IntervalSnapshot> Recorder::Swap(int64_t second, bool final) {
  auto done = std::move(current_);
  done->second = second;
  done->final = final;
  current_ = std::make_unique<stats::IntervalSnapshot>();
  current_->worker = worker_;
  current_->scenarios.resize(done->scenarios.size());
  cached_ = nullptr;
  examples_ = 0;
  return done;
}

}  // namespace meridian::loadgen
