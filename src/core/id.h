#pragma once
// Random names the control plane hands out. An id's prefix says what it names, so that a user (and `meridian
// env show ID`) can tell a run from an agent from an allocation by looking; tokens are secrets, ids are not.

#include <cstddef>
#include <string>
#include <string_view>

namespace meridian {

enum class IdKind { kRun, kAgent, kAllocation };

// "r-", "ag-", "a-": distinct, and none a prefix of another.
std::string_view IdPrefix(IdKind kind);

// The prefix, then 12 random hex digits for runs and agents (48 bits), 16 for allocations (64 bits: an
// allocation id is shown to every env:allocate holder of its pool).
std::string NewId(IdKind kind);

// `bytes` random bytes from the kernel's CSPRNG as lower-case hex; aborts rather than return guessable bytes.
std::string RandomHex(size_t bytes);

// Lower-case hex of `n` bytes.
std::string Hex(const unsigned char* p, size_t n);

}  // namespace meridian
