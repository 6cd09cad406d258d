// StatsD datagrams come from any process on the agent's host: parsing a line never crashes, and what it
// accepts is finite, named, and (for timers) within the range the histogram takes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "steps/statsd.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto s = meridian::steps::ParseStatsdLine(line);
  if (!s.ok()) return 0;
  if (s->name.empty() || !std::isfinite(s->value) || !(s->rate > 0 && s->rate <= 1)) __builtin_trap();
  if (s->kind == meridian::stats::NameEntry::Kind::kTimer && (s->value < 0 || s->value > 1e9))
    __builtin_trap();
  return 0;
}
