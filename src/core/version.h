#pragma once
// The version printed by `meridian --version` and sent as User-Agent.

namespace meridian {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace meridian
