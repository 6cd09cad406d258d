#include "loadgen/origins.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "core/clock.h"
#include "core/duration.h"
#include "net/resolver.h"
#include "net/socket.h"

namespace meridian::loadgen {
namespace {

// Waits for `events` on fd until the deadline. Returns false on time-out.
bool WaitFor(int fd, short events, int64_t deadline) {
  while (true) {
    const int64_t left = deadline - MonoNanos();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left / 1'000'000)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return true;  // let the caller's next call report the error
  }
}

Result<void> Probe(const net::Endpoint& ep, const OriginSpec& spec, const net::TlsContext* tls,
                   int64_t timeout_ns) {
  const int64_t deadline = MonoNanos() + timeout_ns;
  auto fd = net::NewTcpSocket(ep.family());
  if (!fd.ok()) return fd.error();
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{*fd};
  int rc = net::StartConnect(*fd, ep);
  if (rc == EINPROGRESS) {
    do {
      if (!WaitFor(*fd, POLLOUT, deadline)) {
        return MakeError(ErrorCode::kConnect,
                         fmt::format("cannot connect to {} ({}): timed out after {}", spec.host_header,
                                     ep.ToString(), FormatDuration(timeout_ns)));
      }
      rc = net::FinishConnect(*fd);
    } while (rc == EAGAIN);
  }
  if (rc != 0) {
    return MakeError(ErrorCode::kConnect, fmt::format("cannot connect to {} ({}): {}", spec.host_header,
                                                      ep.ToString(), net::ErrnoText(rc)));
  }
  if (!spec.tls()) return {};
  SSL* ssl = tls->NewClient(*fd, spec.host);
  if (ssl == nullptr)
    return MakeError(ErrorCode::kTls, "cannot create a TLS session: " + net::TlsErrorText());
  struct SslFree {
    SSL* s;
    ~SslFree() { SSL_free(s); }
  } ssl_free{ssl};
  while (true) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl);
    if (r == 1) return {};
    const int e = SSL_get_error(ssl, r);
    short wait = 0;
    if (e == SSL_ERROR_WANT_READ) wait = POLLIN;
    if (e == SSL_ERROR_WANT_WRITE) wait = POLLOUT;
    if (wait == 0) {
      std::string why = net::TlsErrorText(ssl);
      if (e == SSL_ERROR_SYSCALL) why = errno ? net::ErrnoText(errno) : "the server closed the connection";
      return MakeError(ErrorCode::kTls,
                       fmt::format("TLS handshake with {} failed: {}", spec.host_header, why));
    }
    if (!WaitFor(*fd, wait, deadline)) {
      return MakeError(ErrorCode::kTls, fmt::format("TLS handshake with {} timed out after {}",
                                                    spec.host_header, FormatDuration(timeout_ns)));
    }
  }
}

}  // namespace

Result<std::vector<PreparedOrigin>> PrepareOrigins(const std::vector<OriginSpec>& specs,
                                                   const net::TlsContext* tls, int64_t timeout_ns) {
  std::vector<PreparedOrigin> out;
  net::IgnoreSigpipe();
  for (const OriginSpec& spec : specs) {
    auto resolved = net::Resolve(spec.host, spec.port, timeout_ns);
    if (!resolved.ok()) return resolved.error();
    Error last{ErrorCode::kConnect, "no addresses"};
    bool ok = false;
    for (const net::Endpoint& ep : resolved->endpoints) {
      auto probe = Probe(ep, spec, tls, timeout_ns);
      if (probe.ok()) {
        PreparedOrigin p;
        p.origin.host = spec.host;
        p.origin.host_header = spec.host_header;
        p.origin.endpoint = ep;
        p.origin.tls = spec.tls();
        p.lookup_ns = resolved->lookup_ns;
        out.push_back(std::move(p));
        ok = true;
        break;
      }
      last = probe.error();
      if (last.code == ErrorCode::kTls)
        break;  // the address answered: trying others will not fix the certificate
    }
    if (!ok) return last;
  }
  return out;
}

}  // namespace meridian::loadgen
