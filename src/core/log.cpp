#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "core/clock.h"
#include "core/utf8.h"

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

std::string EscapeForLog(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  size_t i = 0;
  while (i < message.size()) {
    const auto c = static_cast<unsigned char>(message[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c < 0x80) {
      switch (c) {
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          out += fmt::format("\\x{:02x}", c);
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: kept when valid UTF-8 and not a C1 control (U+0080..U+009F).
    const size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || i + n > message.size() ||
        FirstInvalidUtf8(message.substr(i, n)) != std::string_view::npos) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
      continue;
    }
    if (c == 0xc2 && static_cast<unsigned char>(message[i + 1]) < 0xa0) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(message[i + 1]));
    } else {
      out.append(message.substr(i, n));
    }
    i += n;
  }
  return out;
}

void LogLine(LogLevel level, std::string_view message) {
  const int64_t wall = WallNanos();
  const time_t secs = static_cast<time_t>(wall / 1'000'000'000);
  tm parts{};
  gmtime_r(&secs, &parts);
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d", parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<int>((wall / 1'000'000) % 1000));
  // One fwrite per line so that lines from different threads do not interleave.
  std::string line = fmt::format("{} {:5} {}\n", stamp, Name(level), EscapeForLog(message));
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace meridian
