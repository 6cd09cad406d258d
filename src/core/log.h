#pragma once
// Minimal leveled logging to stderr. Not for the request path. Secrets are never passed to it.
// Every line is one line: control characters, bytes that are not UTF-8 and C1 controls in a message (user
// values such as a requester name) are written as escapes (\n, \x1b, \u009b), so that no value can forge a
// log line or drive a terminal.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace meridian {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogLine(LogLevel level, std::string_view message);
// The message as LogLine writes it.
std::string EscapeForLog(std::string_view message);

template <class... Args>
void LogDebug(fmt::format_string<Args...> f, Args&&... args) {
  if (GetLogLevel() <= LogLevel::kDebug)
    LogLine(LogLevel::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogInfo(fmt::format_string<Args...> f, Args&&... args) {
  if (GetLogLevel() <= LogLevel::kInfo) LogLine(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogWarn(fmt::format_string<Args...> f, Args&&... args) {
  if (GetLogLevel() <= LogLevel::kWarn) LogLine(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void LogError(fmt::format_string<Args...> f, Args&&... args) {
  if (GetLogLevel() <= LogLevel::kError)
    LogLine(LogLevel::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace meridian
