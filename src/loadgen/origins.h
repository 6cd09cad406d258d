#pragma once
// Before a run: resolve every origin once (with a deadline) and prove it reachable with one connection
// (and TLS handshake), so that a wrong host, a closed port or a bad certificate is one clear line, not a run
// full of errors. The first address that accepts a connection is used for the whole run.

#include <vector>

#include "core/result.h"
#include "http/client_connection.h"
#include "loadgen/declarative.h"
#include "net/tls.h"

namespace meridian::loadgen {

struct PreparedOrigin {
  http::Origin origin;
  int64_t lookup_ns = 0;  // the name resolution (0 for IP literals)
};

// Errors carry kDns, kConnect or kTls and name the host.
Result<std::vector<PreparedOrigin>> PrepareOrigins(const std::vector<OriginSpec>& specs,
                                                   const net::TlsContext* tls, int64_t timeout_ns);

}  // namespace meridian::loadgen
