#pragma once
// Thin, error-checked wrappers over BSD sockets: non-blocking TCP, listeners, addresses, fd limits.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace meridian::net {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
  uint16_t port() const;
  std::string ToString() const;  // "127.0.0.1:80", "[::1]:80"
};

// Parses a numeric address "127.0.0.1", "::1" with a port; no name resolution.
Result<Endpoint> NumericEndpoint(const std::string& host, uint16_t port);

// Parses a listen address: ":8080", "8080", "127.0.0.1:0", "[::1]:8080", "0.0.0.0:80".
Result<Endpoint> ParseListenAddress(const std::string& text);

// Creates a non-blocking, close-on-exec TCP socket with TCP_NODELAY.
Result<int> NewTcpSocket(int family);

// Starts a non-blocking connect. Returns 0 when connected at once, EINPROGRESS when pending, or the errno.
int StartConnect(int fd, const Endpoint& to);

// After the socket became writable: the connect's outcome (0 or errno). Treats "not connected yet" as EAGAIN.
int FinishConnect(int fd);

// Binds and listens (non-blocking). `reuse_port` lets several threads each own a listener on the same port.
Result<int> Listen(const Endpoint& at, bool reuse_port, int backlog = 4096);

Endpoint LocalEndpoint(int fd);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t RaiseFileLimit();

// send(2)/recv(2) without glibc's cancellation-point wrapper (which toggles async cancellation around every
// call; meridian never cancels threads). Return -1 with errno set, like the libc calls.
ssize_t SendNoSignal(int fd, const void* data, size_t len);
ssize_t Recv(int fd, void* data, size_t len);

// Ignores SIGPIPE for the process: OpenSSL writes with write(2), which raises it on a closed peer; every
// socket error is handled from return codes instead. Idempotent.
void IgnoreSigpipe();

// Maps an errno from connect/send/recv to a short phrase ("connection refused").
std::string ErrnoText(int err);

}  // namespace meridian::net
