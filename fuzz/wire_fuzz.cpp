// Interval reports from agents are untrusted: decoding never crashes, and what decodes re-encodes to itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stats/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto s = meridian::stats::DecodeSnapshot(bytes);
  if (!s.ok()) return 0;
  auto again = meridian::stats::DecodeSnapshot(meridian::stats::EncodeSnapshot(*s));
  if (!again.ok() || again->series.size() != s->series.size()) __builtin_trap();
  return 0;
}
