#pragma once
// Name resolution with a deadline. getaddrinfo blocks without a bound, so it runs on a helper thread and the
// caller waits at most `timeout_ns`; numeric addresses skip the lookup. Hosts are resolved once per run,
// before the start instant, never on an event loop.

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "net/socket.h"

namespace meridian::net {

struct Resolved {
  std::vector<Endpoint> endpoints;  // in getaddrinfo's preference order
  int64_t lookup_ns = 0;            // 0 for numeric addresses
};

// Errors carry ErrorCode::kDns and name the host.
Result<Resolved> Resolve(const std::string& host, uint16_t port, int64_t timeout_ns);

}  // namespace meridian::net
