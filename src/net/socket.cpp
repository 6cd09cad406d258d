#include "net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace meridian::net {

uint16_t Endpoint::port() const {
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return 0;
}

std::string Endpoint::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(addr).sin_addr, buf, sizeof buf);
    return fmt::format("{}:{}", buf, port());
  }
  if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr, buf, sizeof buf);
    return fmt::format("[{}]:{}", buf, port());
  }
  return "?";
}

Result<Endpoint> NumericEndpoint(const std::string& host, uint16_t port) {
  Endpoint ep;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ep.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ep.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    ep.len = sizeof(sockaddr_in);
    return ep;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    ep.len = sizeof(sockaddr_in6);
    return ep;
  }
  return MakeError(ErrorCode::kInvalidArgument, fmt::format("'{}' is not a numeric IP address", host));
}

Result<Endpoint> ParseListenAddress(const std::string& text) {
  auto fail = [&](const char* why) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid listen address '{}': {} (e.g. 127.0.0.1:8080, :8080, [::1]:0)", text, why));
  };
  std::string host = "127.0.0.1";
  std::string port_text = text;
  if (text.starts_with("[")) {
    const size_t close = text.find("]:");
    if (close == std::string::npos) return fail("expected [address]:port");
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (colon > 0) host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (port_text.empty()) return fail("missing port");
  uint32_t port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return fail("the port is not a number");
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) return fail("the port is out of range 0-65535");
  }
  auto ep = NumericEndpoint(host, static_cast<uint16_t>(port));
  if (!ep.ok()) return fail("the address is not a numeric IP address");
  return ep;
}

Result<int> NewTcpSocket(int family) {
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    return MakeError(errno == EMFILE || errno == ENFILE ? ErrorCode::kConnect : ErrorCode::kIo,
                     fmt::format("socket: {}", std::strerror(errno)));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int StartConnect(int fd, const Endpoint& to) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&to.addr), to.len) == 0) return 0;
  return errno;
}

int FinishConnect(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  if (err != 0) return err;
  sockaddr_storage peer{};
  socklen_t plen = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) {
    return errno == ENOTCONN ? EAGAIN : errno;  // a stale readiness event: still connecting
  }
  return 0;
}

Result<int> Listen(const Endpoint& at, bool reuse_port, int backlog) {
  const int fd = socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return MakeError(ErrorCode::kIo, fmt::format("socket: {}", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&at.addr), at.len) != 0) {
    const int err = errno;
    close(fd);
    return MakeError(ErrorCode::kIo,
                     fmt::format("cannot listen on {}: {}", at.ToString(), std::strerror(err)));
  }
  if (listen(fd, backlog) != 0) {
    const int err = errno;
    close(fd);
    return MakeError(ErrorCode::kIo,
                     fmt::format("cannot listen on {}: {}", at.ToString(), std::strerror(err)));
  }
  return fd;
}

Endpoint LocalEndpoint(int fd) {
  Endpoint ep;
  ep.len = sizeof ep.addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ep.addr), &ep.len);
  return ep;
}

uint64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

ssize_t SendNoSignal(int fd, const void* data, size_t len) {
  return syscall(SYS_sendto, fd, data, len, MSG_NOSIGNAL, nullptr, 0);
}

ssize_t Recv(int fd, void* data, size_t len) {
  return syscall(SYS_recvfrom, fd, data, len, 0, nullptr, nullptr);
}

void IgnoreSigpipe() { std::signal(SIGPIPE, SIG_IGN); }

std::string ErrnoText(int err) {
  switch (err) {
    case ECONNREFUSED:
      return "connection refused";
    case ECONNRESET:
      return "connection reset by peer";
    case EPIPE:
      return "broken pipe";
    case ETIMEDOUT:
      return "timed out";
    case EHOSTUNREACH:
      return "host unreachable";
    case ENETUNREACH:
      return "network unreachable";
    case EADDRNOTAVAIL:
      return "no local address/port available";
    case EMFILE:
      return "too many open files (raise ulimit -n)";
    default:
      return std::strerror(err);
  }
}

}  // namespace meridian::net
