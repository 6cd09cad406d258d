#include "core/clock.h"

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
int64_t ThreadCpuNanos() { return Read(CLOCK_THREAD_CPUTIME_ID); }
int64_t ProcessCpuNanos() { return Read(CLOCK_PROCESS_CPUTIME_ID); }

}  // namespace meridian
