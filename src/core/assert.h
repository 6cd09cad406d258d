#pragma once
// Assertions for impossible states (Envoy style): MERIDIAN_ASSERT is debug-only, MERIDIAN_RELEASE_ASSERT
// always on. Untrusted input and likely environment failures are handled with Result, never with these.

namespace meridian::internal {
[[noreturn]] void AssertFail(const char* expr, const char* file, int line);
}  // namespace meridian::internal

#define MERIDIAN_RELEASE_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::meridian::internal::AssertFail(#expr, __FILE__, __LINE__))

#ifdef NDEBUG
#define MERIDIAN_ASSERT(expr) static_cast<void>(0)
#else
#define MERIDIAN_ASSERT(expr) MERIDIAN_RELEASE_ASSERT(expr)
#endif
