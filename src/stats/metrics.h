#pragma once
// What the engine records: one RequestSample per finished request, folded into per-series counters and
// histograms (SeriesStats) inside one worker's IntervalSnapshot for the current second. Snapshots are swapped
// out once per second and merged off the hot path; merging is exact because histograms are.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stats/histogram.h"

namespace meridian::stats {

// Why a request failed. kNone for success. Names are the wire and summary names.
enum class ErrorKind : uint8_t {
  kNone = 0,
  kTimeout,   // the request time-out elapsed before the response completed
  kDns,       // the host name did not resolve
  kConnect,   // refused, unreachable or connect time-out
  kReset,     // the peer closed or reset the connection before the response completed
  kTls,       // handshake or certificate verification failed
  kHttp4xx,   // the response status was 4xx
  kHttp5xx,   // the response status was 5xx
  kCheck,     // the status was not the expected one (and not 4xx/5xx), or a script check failed
  kProtocol,  // the response was not valid HTTP/1.1
  kScript,    // an iteration's script threw, rejected or timed out (iteration errors, not request series)
  kCount,
};
const char* ErrorKindName(ErrorKind kind);
// A declarative request that got a response is one check of its status expectation (the `checks` rate and the
// summary's checks line); it fails on these kinds. Script scenarios make their own checks with check().
inline bool FailsStatusExpectation(ErrorKind kind) {
  return kind == ErrorKind::kCheck || kind == ErrorKind::kHttp4xx || kind == ErrorKind::kHttp5xx;
}

struct RequestSample {
  int64_t total_ns =
      0;  // request start (the intended start for arrival-rate iterations) to last byte or error
  int64_t dns_ns = -1;  // -1: the phase did not happen for this request
  int64_t connect_ns = -1;
  int64_t tls_ns = -1;
  int64_t ttfb_ns = -1;  // first byte of the request written to first byte of the response
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint16_t status = 0;  // 0 when no response arrived
  ErrorKind error = ErrorKind::kNone;
};

// Identifies a series within a run: scenario and request template (indexes into the run's name tables),
// response status and error kind. Region and agent are added by the control plane.
struct SeriesKey {
  uint16_t scenario = 0;
  uint16_t request = 0;
  uint16_t status = 0;
  ErrorKind error = ErrorKind::kNone;

  uint64_t Pack() const {
    return (uint64_t{scenario} << 40) | (uint64_t{request} << 24) | (uint64_t{status} << 8) |
           static_cast<uint64_t>(error);
  }
  static SeriesKey Unpack(uint64_t v) {
    return SeriesKey{static_cast<uint16_t>(v >> 40), static_cast<uint16_t>(v >> 24),
                     static_cast<uint16_t>(v >> 8), static_cast<ErrorKind>(v & 0xff)};
  }
};

struct SeriesStats {
  uint64_t requests = 0;
  uint64_t failures = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  Histogram duration;
  Histogram ttfb;
  Histogram connect;  // only requests that opened a connection
  Histogram tls;      // only requests that made a TLS handshake
  Histogram dns;      // only requests that waited for a name resolution

  void Record(const RequestSample& s) {
    ++requests;
    if (s.error != ErrorKind::kNone) ++failures;
    bytes_sent += s.bytes_sent;
    bytes_received += s.bytes_received;
    duration.Record(s.total_ns);
    if (s.ttfb_ns >= 0) ttfb.Record(s.ttfb_ns);
    if (s.connect_ns >= 0) connect.Record(s.connect_ns);
    if (s.tls_ns >= 0) tls.Record(s.tls_ns);
    if (s.dns_ns >= 0) dns.Record(s.dns_ns);
  }
  void Merge(const SeriesStats& o);
};

struct ScenarioStats {
  uint64_t iterations = 0;              // completed iterations
  uint64_t failed_iterations = 0;       // completed with at least one failed request
  uint64_t dropped_iterations = 0;      // arrival-rate iterations not started because max_vus were busy
  uint64_t interrupted_iterations = 0;  // cut off by graceful stop / ramp-down
  Histogram iteration_duration;
  uint32_t vus_active = 0;     // gauge: most VUs running an iteration at once in the interval
  uint32_t vus_allocated = 0;  // gauge: VUs existing at the end of the interval

  // Same second, different workers: counters add, gauges add.
  void MergeAcrossWorkers(const ScenarioStats& o);
  // Same stream, different seconds: counters add, gauges keep the maximum.
  void MergeAcrossTime(const ScenarioStats& o);
};

// Is the load generator itself the bottleneck? Per worker and second.
struct GeneratorHealth {
  int64_t wall_ns = 0;       // wall time covered (summed over workers)
  int64_t cpu_ns = 0;        // thread CPU time used (summed over workers)
  double max_cpu_share = 0;  // highest single-worker CPU share in any merged interval (0..1)
  Histogram timer_lag;       // how late timers fired: event-loop lag
  Histogram schedule_lag;    // arrival-rate: actual iteration start minus intended start

  void Merge(const GeneratorHealth& o);
};

// An entry of the name table (stats/names.h): a request name, a check or a group of one scenario; or a metric
// a command step sent over StatsD (counter, gauge or timer), whose `group` is the step instance ("swarm#1")
// and whose scenario is unused (0).
struct NameEntry {
  enum class Kind : uint8_t { kRequest = 0, kCheck = 1, kGroup = 2, kCounter = 3, kGauge = 4, kTimer = 5 };
  Kind kind = Kind::kRequest;
  uint16_t scenario = 0;
  std::string group;  // the enclosing group path of a request or check ("::login::cart"; "" = none)
  std::string name;
  bool step_metric() const { return kind >= Kind::kCounter; }
};

// A name a step may give its StatsD metrics (and thresholds may name): 1-200 of letters, digits, '_', '.',
// '-'.
bool IsStepMetricName(std::string_view name);

// A step's StatsD metric in one interval. Counters: `sum` of the (rate-scaled) increments. Gauges: `last`
// value set, with `min` and `max` (`count` > 0 when set in the interval). Timers: `values` (ms -> ns) and
// `sum` of the milliseconds.
struct StepMetric {
  double sum = 0;
  uint64_t count = 0;  // samples received
  double last = 0, min = 0, max = 0;
  Histogram values;

  // Later in time or another source of the same series.
  void Merge(const StepMetric& o);
};

struct CheckCounts {
  uint64_t passes = 0;
  uint64_t fails = 0;
};

// One worker's (or, after merging, a whole run's) counters for one interval.
struct IntervalSnapshot {
  int64_t second = 0;  // interval index since the run's start instant
  uint32_t worker = 0;
  bool final = false;  // the worker's last snapshot
  std::unordered_map<uint64_t, SeriesStats> series;
  std::vector<ScenarioStats> scenarios;
  std::unordered_map<uint16_t, CheckCounts> checks;  // by name-table index (script check())
  std::unordered_map<uint16_t, Histogram> groups;    // group durations by name-table index (script group())
  std::unordered_map<uint16_t, StepMetric> step_metrics;  // by name-table index (steps' StatsD)
  // On the wire only: name-table entries the receiver may not know yet (index, entry). See stats/names.h.
  std::vector<std::pair<uint16_t, NameEntry>> names;
  GeneratorHealth health;
  // The first distinct messages per error kind (at most kMaxExamplesPerKind each), to explain the counts.
  std::vector<std::pair<ErrorKind, std::string>> error_examples;
  static constexpr size_t kMaxExamplesPerKind = 3;
  void AddErrorExample(ErrorKind kind, std::string_view message);

  SeriesStats& Series(const SeriesKey& key) { return series[key.Pack()]; }
  ScenarioStats& Scenario(size_t index) {
    if (scenarios.size() <= index) scenarios.resize(index + 1);
    return scenarios[index];
  }
  void MergeAcrossWorkers(const IntervalSnapshot& o);
  void MergeAcrossTime(const IntervalSnapshot& o);
};

}  // namespace meridian::stats
