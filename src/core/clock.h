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

// Both clocks, for code that keeps deadlines (monotonic) and stores or shows times (wall): injected, so that
// expiry, waits and reapers are tested in milliseconds with FakeClock instead of sleeps.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t Mono() const = 0;  // monotonic ns: deadlines, waits, durations
  virtual int64_t Wall() const = 0;  // ns since the Unix epoch: what is stored and shown
};

class SystemClock final : public Clock {
 public:
  int64_t Mono() const override { return MonoNanos(); }
  int64_t Wall() const override { return WallNanos(); }
  static SystemClock& Instance();
};

// Starts at 1 s monotonic and 2027-01-01T00:00:00Z; Advance moves both clocks, as time does.
class FakeClock final : public Clock {
 public:
  static constexpr int64_t kStartWall = 1'798'761'600'000'000'000;
  int64_t Mono() const override { return mono_; }
  int64_t Wall() const override { return wall_; }
  void Advance(int64_t delta_ns) {
    mono_ += delta_ns;
    wall_ += delta_ns;
  }

 private:
  int64_t mono_ = 1'000'000'000;
  int64_t wall_ = kStartWall;
};

}  // namespace meridian
