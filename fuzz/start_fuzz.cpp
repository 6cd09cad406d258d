// START documents come from files and URLs the waiter does not control: parsing never crashes, and an
// instant it accepts is a plausible epoch time.
#include <cstddef>
#include <cstdint>
#include <string>

#include "waiter/waiter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto s = meridian::waiter::ParseStart(text, "step#1", "START");
  if (s.ok() && s->has_value() && (*s)->delay_ns && *(*s)->delay_ns < 0) __builtin_trap();
  return 0;
}
