// The environment registry parser on arbitrary text: never crashes, errors say why, and what it accepts
// survives the store's JSON round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/json.h"
#include "envpool/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meridian::envpool;
  if (size > 64 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto reg = ParseRegistry(text, "fuzz.yaml");
  if (!reg.ok()) {
    if (reg.error().message.empty()) __builtin_trap();
    return 0;
  }
  for (const auto& p : reg->pools) {
    const std::string stored = meridian::JsonText(PoolJson(p));
    auto back = PoolFromJson(p.name, stored);
    if (!back.ok() || meridian::JsonText(PoolJson(*back)) != stored) __builtin_trap();
  }
  for (const auto& e : reg->environments) {
    const std::string stored = meridian::JsonText(EnvironmentJson(e));
    auto back = EnvironmentFromJson(e.id, e.pool, stored);
    if (!back.ok() || meridian::JsonText(EnvironmentJson(*back)) != stored) __builtin_trap();
    Requirements any;
    if (!Matches(e, any)) __builtin_trap();  // no requirement: every environment matches
  }
  return 0;
}
