#pragma once
// Who calls the lease service and how it is set up: shared by its HTTP face (envpool.h) and its core
// (leases.h), which knows nothing of HTTP.

#include <cstdint>
#include <set>
#include <string>

namespace meridian::envpool {

struct Caller {
  std::string principal;  // the token's name
  bool admin = false;     // env:admin
};

struct Options {
  std::string registry_path;  // synced at Start() and Reload(); "" = only `meridian env sync`
  int64_t retry_after_ns = 2'000'000'000;
  int64_t max_wait_ns = 3600LL * 1'000'000'000;
  uint32_t max_waiters_per_principal = 200;  // waiting allocations per token, all pools (429 beyond)
  std::set<std::string> hidden_env;          // the server's variables hooks do not inherit (its tokens)
};

}  // namespace meridian::envpool
