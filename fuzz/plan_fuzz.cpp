// The plan parser on arbitrary text: never crashes; an accepted plan's normalised form parses back to itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plan/plan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto plan = meridian::plan::ParsePlan(text, "fuzz.yaml");
  if (!plan.ok()) {
    if (plan.error().message.empty()) __builtin_trap();
    return 0;
  }
  const std::string yaml = meridian::plan::ToYaml(*plan);
  auto again = meridian::plan::ParsePlan(yaml, "normalised.yaml");
  if (!again.ok() || meridian::plan::ToYaml(*again) != yaml) __builtin_trap();
  (void)meridian::plan::Timeline(*plan);
  return 0;
}
