#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "core/clock.h"

namespace meridian {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
const char* Name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "?";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view message) {
  const int64_t wall = WallNanos();
  const time_t secs = static_cast<time_t>(wall / 1'000'000'000);
  tm parts{};
  gmtime_r(&secs, &parts);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<int>((wall / 1'000'000) % 1000));
  // One fwrite per line so that lines from different threads do not interleave.
  std::string line = fmt::format("{} {:5} {}\n", stamp, Name(level), message);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace meridian
