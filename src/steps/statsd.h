#pragma once
// StatsD from command steps: one UDP socket on 127.0.0.1 per step instance (its address is the instance's
// $MERIDIAN_STATSD, so every sample knows its step and instance), samples binned by second since the run's
// start and handed on as interval snapshots of step metrics (stats::StepMetric), like the load's own reports.
//
// Lines: `name:value|type[|@rate][|#tags]`, several per datagram separated by newlines. Types: c (counter;
// the value is divided by the sample rate), g (gauge; "+N"/"-N" change the current value), ms, h and d
// (timers, in milliseconds). Sets (s) and malformed lines are dropped and counted; the first few are logged.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/result.h"
#include "stats/metrics.h"
#include "stats/names.h"

namespace meridian::steps {

struct StatsdSample {
  std::string name;
  stats::NameEntry::Kind kind = stats::NameEntry::Kind::kCounter;
  double value = 0;
  bool delta = false;  // a gauge change ("+3", "-2") rather than a new value
  double rate = 1;     // the sample rate (counters are scaled by 1/rate)
};

// Parses one line; errors say what is wrong with it.
Result<StatsdSample> ParseStatsdLine(std::string_view line);

class StatsdReceiver {
 public:
  // Opens one socket per instance id ("swarm#1").
  static Result<std::unique_ptr<StatsdReceiver>> Open(std::vector<std::string> instance_ids);
  ~StatsdReceiver();
  StatsdReceiver(const StatsdReceiver&) = delete;
  StatsdReceiver& operator=(const StatsdReceiver&) = delete;

  // "127.0.0.1:PORT" of instance i.
  std::string Address(size_t i) const;

  // Starts receiving: samples are binned by second since `start_mono_ns`; each finished second is passed to
  // `emit` (on the receiver's thread) as a snapshot with step metrics keyed by `names` indexes.
  void Start(int64_t start_mono_ns, std::shared_ptr<stats::NameRegistry> names,
             std::function<void(stats::IntervalSnapshot&)> emit, std::function<void(const std::string&)> log);
  // Reads what is still queued, emits every second not emitted yet, and stops. Idempotent.
  void Stop();

  uint64_t received() const { return received_.load(); }
  uint64_t dropped() const { return dropped_.load(); }

  static constexpr size_t kMaxSeries = 1000;  // distinct (name, type, instance) per agent and run

 private:
  StatsdReceiver() = default;
  void Loop();
  void Drain();
  void Handle(size_t instance, std::string_view datagram, int64_t now_mono);
  void Emit(bool all, int64_t now_mono);

  std::vector<std::string> ids_;
  std::vector<int> fds_;
  std::vector<uint16_t> ports_;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int64_t start_mono_ = 0;
  std::shared_ptr<stats::NameRegistry> names_;
  std::function<void(stats::IntervalSnapshot&)> emit_;
  std::function<void(const std::string&)> log_;
  std::map<int64_t, stats::IntervalSnapshot> pending_;  // by second
  std::map<uint16_t, double> gauges_;                   // current gauge values, for +/- changes
  std::map<std::string, uint16_t> series_;              // known series -> name index
  std::atomic<uint64_t> received_{0}, dropped_{0};
  uint32_t logged_ = 0;
};

}  // namespace meridian::steps
