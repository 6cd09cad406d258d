#pragma once
// Durations as users type them ("250ms", "10s", "1m30s", "2h") and as meridian prints them.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace meridian {

// Parses a duration with units ns, us (or µs), ms, s, m, h, d (days); components may be combined ("1m30s")
// and may carry a fraction ("1.5s"). A bare number is an error (the unit is never guessed). Returns
// nanoseconds.
Result<int64_t> ParseDuration(std::string_view text);

// Formats nanoseconds compactly with three significant digits: "812µs", "12.3ms", "1.25s", "2m5s".
std::string FormatDuration(int64_t nanos);

// Formats nanoseconds as milliseconds with a fixed number of decimals, for tables ("12.345").
std::string FormatMillis(int64_t nanos, int decimals = 3);

// Parses a non-negative byte size: "512", "4k", "1.5MiB", "2MB" (k/KiB = 1024). Returns bytes.
Result<int64_t> ParseByteSize(std::string_view text);

// Formats bytes with binary units: "512 B", "4.0 KiB", "1.5 MiB".
std::string FormatBytes(double bytes);

constexpr int64_t kNanosPerMicro = 1'000;
constexpr int64_t kNanosPerMilli = 1'000'000;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

}  // namespace meridian
