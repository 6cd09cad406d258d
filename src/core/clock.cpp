#include "core/clock.h"

#include <fmt/format.h>
#include <time.h>

namespace meridian {
namespace {
int64_t Read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

int64_t MonoNanos() { return Read(CLOCK_MONOTONIC); }
int64_t WallNanos() { return Read(CLOCK_REALTIME); }

SystemClock& SystemClock::Instance() {
  static SystemClock clock;
  return clock;
}
int64_t ThreadCpuNanos() { return Read(CLOCK_THREAD_CPUTIME_ID); }
int64_t ProcessCpuNanos() { return Read(CLOCK_PROCESS_CPUTIME_ID); }

}  // namespace meridian

namespace meridian {

std::string FormatIsoTime(int64_t wall_ns) {
  const auto secs = static_cast<time_t>(wall_ns / 1'000'000'000);
  tm parts{};
  gmtime_r(&secs, &parts);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", parts.tm_year + 1900, parts.tm_mon + 1,
                     parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, (wall_ns / 1'000'000) % 1000);
}

}  // namespace meridian
