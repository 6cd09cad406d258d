#include "http/fetch.h"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/clock.h"
#include "http/response_parser.h"
#include "http/syntax.h"
#include "net/resolver.h"

namespace meridian::http {
namespace {

// Waits for `events` on fd until the deadline; false on time-out.
bool WaitFor(int fd, short events, int64_t deadline_ns) {
  while (true) {
    const int64_t left = deadline_ns - MonoNanos();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(left / 1'000'000 + 1, 1'000'000)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return true;  // let the following call report the error
  }
}

// A connection that is neither made nor refused (a host that is down) is given up after this, so that the
// next control-plane URL gets its turn well within a request's deadline.
constexpr int64_t kConnectTimeoutNs = 5'000'000'000;

// Per list of several URLs, the one that answered last: clients made later (an agent makes one per thread and
// per run) start there rather than at a dead first URL.
std::mutex preferred_mu;
std::unordered_map<std::string, size_t>& Preferred() {
  static std::unordered_map<std::string, size_t> map;
  return map;
}

}  // namespace

Result<BlockingClient> BlockingClient::Create(const std::string& base, std::string token) {
  BlockingClient c;
  for (size_t at = 0; at <= base.size();) {
    size_t comma = base.find(',', at);
    if (comma == std::string::npos) comma = base.size();
    const std::string one(TrimOws(std::string_view(base).substr(at, comma - at)));
    at = comma + 1;
    if (one.empty()) continue;
    auto url = ParseUrl(one);
    if (!url.ok()) return url.error();
    Target t;
    if (url->tls()) {
      auto tls = net::TlsContext::Client(net::TlsClientOptions{false, ""});
      if (!tls.ok()) return tls.error();
      t.tls = std::shared_ptr<net::TlsContext>(std::move(tls).value());
    }
    t.base = url->Origin();
    t.host = url->host;
    t.prefix = url->target == "/" ? "" : url->target;
    while (!t.prefix.empty() && t.prefix.back() == '/') t.prefix.pop_back();
    t.host_header = url->HostHeader();
    c.targets_.push_back(std::move(t));
  }
  if (c.targets_.empty()) return MakeError(ErrorCode::kInvalidArgument, "no control-plane URL");
  c.token_ = std::move(token);
  c.list_ = base;
  size_t first = 0;
  if (c.targets_.size() > 1) {
    std::lock_guard lock(preferred_mu);
    if (auto it = Preferred().find(base); it != Preferred().end() && it->second < c.targets_.size())
      first = it->second;
  }
  Result<void> used = MakeError(ErrorCode::kInvalidArgument, "no URL");
  for (size_t i = 0; i < c.targets_.size() && !used.ok(); ++i) used = c.Use((first + i) % c.targets_.size());
  if (!used.ok()) return used.error();
  return c;
}

Result<void> BlockingClient::Use(size_t index) {
  Disconnect();
  current_ = index;
  Target& t = targets_[index];
  base_ = t.base;
  prefix_ = t.prefix;
  host_header_ = t.host_header;
  host_ = t.host;
  tls_ = t.tls;
  if (!t.endpoint) {
    auto url = ParseUrl(t.base);
    if (!url.ok()) return url.error();
    auto resolved = net::Resolve(url->host, url->port, 5'000'000'000);
    if (!resolved.ok()) return resolved.error();
    t.endpoint = resolved->endpoints.front();
  }
  endpoint_ = *t.endpoint;
  return {};
}

BlockingClient::BlockingClient(BlockingClient&& o) noexcept { *this = std::move(o); }
BlockingClient& BlockingClient::operator=(BlockingClient&& o) noexcept {
  if (this != &o) {
    Disconnect();
    base_ = std::move(o.base_);
    prefix_ = std::move(o.prefix_);
    host_header_ = std::move(o.host_header_);
    token_ = std::move(o.token_);
    headers_ = std::move(o.headers_);
    host_ = std::move(o.host_);
    endpoint_ = o.endpoint_;
    tls_ = std::move(o.tls_);
    targets_ = std::move(o.targets_);
    list_ = std::move(o.list_);
    current_ = o.current_;
    ssl_ = o.ssl_;
    o.ssl_ = nullptr;
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}
BlockingClient::~BlockingClient() { Disconnect(); }

void BlockingClient::Disconnect() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  ssl_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Result<void> BlockingClient::Handshake(int64_t deadline) {
  ssl_ = tls_->NewClient(fd_, host_);
  if (ssl_ == nullptr) return MakeError(ErrorCode::kTls, fmt::format("{}: {}", base_, net::TlsErrorText()));
  while (true) {
    const int rc = SSL_connect(ssl_);
    if (rc == 1) return {};
    const int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!WaitFor(fd_, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        return MakeError(ErrorCode::kTimeout, fmt::format("TLS handshake with {} timed out", base_));
      }
      continue;
    }
    return MakeError(ErrorCode::kTls,
                     fmt::format("TLS handshake with {} failed: {}", base_, net::TlsErrorText(ssl_)));
  }
}

// SSL_read/SSL_write's outcome as recv()/send() give theirs: bytes, 0 at the end of the stream, or -1 with
// errno (EAGAIN: wait for want_).
ssize_t BlockingClient::SslResult(int n) {
  if (n > 0) return n;
  const int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    want_ = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
    errno = EAGAIN;
    return -1;
  }
  if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && n == 0)) return 0;
  errno = ECONNRESET;
  return -1;
}

ssize_t BlockingClient::Send(const char* data, size_t size) {
  if (ssl_ == nullptr) {
    want_ = POLLOUT;
    return net::SendNoSignal(fd_, data, size);
  }
  const ssize_t n = SslResult(SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(size, 1 << 30))));
  if (n == 0) errno = ECONNRESET;  // the peer closed while we were writing
  return n == 0 ? -1 : n;
}

ssize_t BlockingClient::Receive(char* data, size_t size) {
  if (ssl_ == nullptr) {
    want_ = POLLIN;
    return net::Recv(fd_, data, size);
  }
  return SslResult(SSL_read(ssl_, data, static_cast<int>(std::min<size_t>(size, 1 << 30))));
}

Result<FetchResponse> BlockingClient::Request(const std::string& method, const std::string& path,
                                              const std::string& body, int64_t timeout_ns,
                                              const std::string& content_type) {
  const bool repeatable = method == "GET" || method == "PUT" || method == "DELETE" || method == "HEAD";
  auto r = Attempt(method, path, body, timeout_ns, content_type);
  // The other URLs, each once, from the one after the current: a replica that is down, or answers 503
  // (draining, its store unreachable), hands the request on.
  for (size_t tried = 1; tried < targets_.size(); ++tried) {
    const bool move_on = r.ok() ? r->status == 503 : (!sent_ || repeatable);
    if (!move_on) break;
    const size_t next = (current_ + 1) % targets_.size();
    if (auto u = Use(next); !u.ok()) {
      if (!r.ok()) r = u.error();
      continue;
    }
    r = Attempt(method, path, body, timeout_ns, content_type);
    if (r.ok() && r->status != 503) {
      std::lock_guard lock(preferred_mu);
      Preferred()[list_] = current_;
    }
  }
  return r;
}

Result<FetchResponse> BlockingClient::Attempt(const std::string& method, const std::string& path,
                                              const std::string& body, int64_t timeout_ns,
                                              const std::string& content_type) {
  std::string req = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: meridian\r\n", method, prefix_,
                                path, host_header_);
  if (!token_.empty()) req += fmt::format("Authorization: Bearer {}\r\n", token_);
  for (const auto& [name, value] : headers_) req += fmt::format("{}: {}\r\n", name, value);
  if (!body.empty() || method == "POST" || method == "PUT") {
    req += fmt::format("Content-Type: {}\r\nContent-Length: {}\r\n", content_type, body.size());
  }
  req += "\r\n";
  req += body;
  const int64_t deadline = MonoNanos() + timeout_ns;
  bool reused = false;
  sent_ = false;
  auto r = Once(req, deadline, &reused);
  if (!r.ok() && reused && r.error().code == ErrorCode::kReset) {
    Disconnect();  // the kept connection had been closed by the server: one fresh attempt
    r = Once(req, deadline, &reused);
  }
  if (!r.ok()) Disconnect();
  return r;
}

void BlockingClient::SetHeader(const std::string& name, const std::string& value) {
  for (auto& h : headers_) {
    if (h.first == name) {
      h.second = value;
      return;
    }
  }
  headers_.emplace_back(name, value);
}

Result<FetchResponse> BlockingClient::Once(const std::string& request, int64_t deadline, bool* reused) {
  *reused = fd_ >= 0;
  if (fd_ < 0) {
    auto fd = net::NewTcpSocket(endpoint_.family());
    if (!fd.ok()) return fd.error();
    fd_ = *fd;
    int err = net::StartConnect(fd_, endpoint_);
    if (err == EINPROGRESS) {
      if (!WaitFor(fd_, POLLOUT, std::min(deadline, MonoNanos() + kConnectTimeoutNs))) {
        return MakeError(ErrorCode::kTimeout, fmt::format("connect to {} timed out", base_));
      }
      err = net::FinishConnect(fd_);
    }
    if (err != 0) {
      return MakeError(ErrorCode::kConnect,
                       fmt::format("cannot connect to {}: {}", base_, net::ErrnoText(err)));
    }
    if (tls_) {
      if (auto ok = Handshake(deadline); !ok.ok()) return ok.error();
    }
  }
  FetchResponse out;
  out.sent_wall_ns = WallNanos();
  sent_ = true;  // from here the server may have seen (some of) the request (reset only by Attempt)
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = Send(request.data() + sent, request.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!WaitFor(fd_, want_, deadline))
        return MakeError(ErrorCode::kTimeout, "request to " + base_ + " timed out");
      continue;
    }
    if (n < 0) return MakeError(ErrorCode::kReset, fmt::format("{}: {}", base_, net::ErrnoText(errno)));
    sent += static_cast<size_t>(n);
  }
  ResponseParser parser;
  parser.Reset(false);
  parser.CaptureBody(&out.body, 64 * 1024 * 1024);
  parser.CaptureHeaders(&out.head);
  char buf[16 * 1024];
  while (!parser.complete()) {
    const ssize_t n = Receive(buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!WaitFor(fd_, want_, deadline)) {
        return MakeError(ErrorCode::kTimeout, fmt::format("{}: no response in time", base_));
      }
      continue;
    }
    if (n <= 0) {
      parser.FeedEof();
      if (parser.complete()) break;
      return MakeError(ErrorCode::kReset,
                       fmt::format("{}: the connection closed before the response was complete", base_));
    }
    size_t used = 0;
    while (used < static_cast<size_t>(n) && !parser.complete() && !parser.failed()) {
      used += parser.Feed(buf + used, static_cast<size_t>(n) - used);
    }
    if (parser.failed()) {
      return MakeError(ErrorCode::kProtocol, fmt::format("{}: invalid response: {}", base_, parser.error()));
    }
  }
  out.status = parser.status();
  out.received_wall_ns = WallNanos();
  for (size_t at = 0; (at = out.head.find('\n', at)) != std::string::npos;) {
    ++at;
    if (out.head.size() - at > 12 &&
        EqualsIgnoreCase(std::string_view(out.head).substr(at, 12), "retry-after:")) {
      const std::string value(
          TrimOws(std::string_view(out.head).substr(at + 12, out.head.find('\r', at) - at - 12)));
      if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos && value.size() < 10) {
        out.retry_after_s = std::stoll(value);
      }
    }
  }
  if (!parser.keep_alive()) Disconnect();
  return out;
}

}  // namespace meridian::http
