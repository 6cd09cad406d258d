// Histogram wire decoding: never crash on hostile bytes; whatever decodes re-encodes to an equal histogram.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "stats/histogram.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = meridian::stats::Histogram::Decode(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!h.ok()) return 0;
  auto again = meridian::stats::Histogram::Decode(h->Encode());
  if (!again.ok() || !(*again == *h)) __builtin_trap();
  (void)h->ValueAtPercentile(99.9);
  meridian::stats::Histogram merged;
  merged.Merge(*h);
  merged.Merge(*h);
  if (merged.count() != 2 * h->count()) __builtin_trap();
  return 0;
}
