#include "core/duration.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

namespace meridian {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads "123" or "1.25" from the front of text; returns false if there is no number.
bool TakeNumber(std::string_view& text, double& out) {
  size_t i = 0;
  bool digits = false;
  while (i < text.size() && IsDigit(text[i])) {
    ++i;
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDigit(text[i])) {
      ++i;
      digits = true;
    }
  }
  if (!digits) return false;
  out = std::strtod(std::string(text.substr(0, i)).c_str(), nullptr);
  text.remove_prefix(i);
  return true;
}

}  // namespace

Result<int64_t> ParseDuration(std::string_view text) {
  const std::string original(text);
  auto fail = [&](std::string_view why) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid duration '{}': {} (use a number with a unit: ns, us, ms, s, m, h, d; "
                    "e.g. 500ms, 10s, 1m30s)",
                    original, why));
  };
  if (text.empty()) return fail("empty");
  if (text == "0") return int64_t{0};  // zero needs no unit
  double total = 0;
  while (!text.empty()) {
    double number = 0;
    if (!TakeNumber(text, number)) return fail("expected a number");
    double unit = 0;
    if (text.starts_with("ns")) {
      unit = 1;
      text.remove_prefix(2);
    } else if (text.starts_with("us")) {
      unit = 1e3;
      text.remove_prefix(2);
    } else if (text.starts_with("\xC2\xB5s")) {  // µs
      unit = 1e3;
      text.remove_prefix(3);
    } else if (text.starts_with("ms")) {
      unit = 1e6;
      text.remove_prefix(2);
    } else if (text.starts_with("s")) {
      unit = 1e9;
      text.remove_prefix(1);
    } else if (text.starts_with("m")) {
      unit = 60e9;
      text.remove_prefix(1);
    } else if (text.starts_with("h")) {
      unit = 3600e9;
      text.remove_prefix(1);
    } else if (text.starts_with("d")) {  // as k6's extended durations
      unit = 86400e9;
      text.remove_prefix(1);
    } else if (text.empty()) {
      return fail("missing unit");
    } else {
      return fail(fmt::format("unknown unit '{}'", text));
    }
    total += number * unit;
  }
  if (total > 9.2e18) return fail("too large");
  return static_cast<int64_t>(std::llround(total));
}

std::string FormatDuration(int64_t nanos) {
  const double n = static_cast<double>(nanos);
  const double a = std::fabs(n);
  auto three = [](double v, const char* unit) {
    if (std::fabs(v) >= 100) return fmt::format("{:.0f}{}", v, unit);
    if (std::fabs(v) >= 10) return fmt::format("{:.1f}{}", v, unit);
    return fmt::format("{:.2f}{}", v, unit);
  };
  if (a < 1e3) return fmt::format("{}ns", nanos);
  if (a < 1e6) return three(n / 1e3, "\xC2\xB5s");
  if (a < 1e9) return three(n / 1e6, "ms");
  if (a < 60e9) return three(n / 1e9, "s");
  if (a < 3600e9) {
    const int64_t s = nanos / kNanosPerSecond;
    return fmt::format("{}m{}s", s / 60, s % 60);
  }
  const int64_t s = nanos / kNanosPerSecond;
  return fmt::format("{}h{}m", s / 3600, (s % 3600) / 60);
}

std::string FormatMillis(int64_t nanos, int decimals) {
  return fmt::format("{:.{}f}", static_cast<double>(nanos) / 1e6, decimals);
}

Result<int64_t> ParseByteSize(std::string_view text) {
  const std::string original(text);
  auto fail = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid size '{}': {} (e.g. 12, 4k, 1MiB)", original, why));
  };
  double number = 0;
  if (!TakeNumber(text, number)) return fail("expected a number");
  double unit = 1;
  if (text.empty() || text == "B" || text == "b") {
    unit = 1;
  } else if (text == "k" || text == "K" || text == "KiB" || text == "kB" || text == "KB") {
    unit = 1024;
  } else if (text == "m" || text == "M" || text == "MiB" || text == "MB") {
    unit = 1024.0 * 1024;
  } else if (text == "g" || text == "G" || text == "GiB" || text == "GB") {
    unit = 1024.0 * 1024 * 1024;
  } else {
    return fail(fmt::format("unknown unit '{}'", text));
  }
  const double bytes = number * unit;
  if (bytes > 1e15) return fail("too large");
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatBytes(double bytes) {
  if (bytes < 1024) return fmt::format("{:.0f} B", bytes);
  if (bytes < 1024.0 * 1024) return fmt::format("{:.1f} KiB", bytes / 1024);
  if (bytes < 1024.0 * 1024 * 1024) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", bytes / (1024.0 * 1024 * 1024));
}

}  // namespace meridian
