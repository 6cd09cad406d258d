#pragma once
// Time sources. Monotonic nanoseconds drive everything on the data path; the wall clock is only for
// artefacts. Clock is an interface at the edge (STYLE.md) so that schedules can be tested with FakeClock.

#include <cstdint>
#include <string>

namespace meridian {

// CLOCK_MONOTONIC in nanoseconds (vDSO, ~20 ns).
int64_t MonoNanos();

// CLOCK_REALTIME in nanoseconds since the Unix epoch.
int64_t WallNanos();

// UTC with milliseconds: "2026-11-21T23:21:07.125Z".
std::string FormatIsoTime(int64_t wall_ns);

// CPU time consumed by the calling thread, nanoseconds.
int64_t ThreadCpuNanos();

// CPU time (user + system) consumed by the whole process, nanoseconds.
int64_t ProcessCpuNanos();

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t Now() const = 0;  // monotonic ns
};

class MonotonicClock final : public Clock {
 public:
  int64_t Now() const override { return MonoNanos(); }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start = 0) : now_(start) {}
  int64_t Now() const override { return now_; }
  void Set(int64_t now) { now_ = now; }
  void Advance(int64_t delta) { now_ += delta; }

 private:
  int64_t now_;
};

}  // namespace meridian
