// TOML plans on arbitrary text: never crashes; whatever TOML is accepted becomes YAML the plan reader can
// read (an error may be about the plan, never "not valid YAML"), and an accepted plan normalises as any
// other.
#include <cstddef>
#include <cstdint>
#include <string>

#include "plan/plan.h"
#include "plan/toml.h"

// "fuzz.toml:LINE:COLUMN: not valid YAML or JSON: ..." (the message may quote the plan's own text).
static bool YamlError(const std::string& m) {
  size_t i = std::string("fuzz.toml:").size();
  if (m.rfind("fuzz.toml:", 0) != 0) return false;
  for (int part = 0; part < 2; ++part) {
    while (i < m.size() && m[i] >= '0' && m[i] <= '9') ++i;
    if (i >= m.size() || m[i] != ':') return false;
    ++i;
  }
  return m.compare(i, 16, " not valid YAML ") == 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto yaml = meridian::plan::TomlToYaml(text, "fuzz.toml"); !yaml.ok() && yaml.error().message.empty()) {
    __builtin_trap();
  }
  auto plan = meridian::plan::ParseTomlPlan(text, "fuzz.toml");
  if (!plan.ok()) {
    const std::string& m = plan.error().message;
    if (m.empty() || YamlError(m)) __builtin_trap();
    return 0;
  }
  const std::string yaml = meridian::plan::ToYaml(*plan);
  auto again = meridian::plan::ParsePlan(yaml, "normalised.yaml");
  if (!again.ok() || meridian::plan::ToYaml(*again) != yaml) __builtin_trap();
  return 0;
}
