#include "http/client_connection.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "core/assert.h"
#include "core/clock.h"
#include "core/duration.h"

namespace meridian::http {

using stats::ErrorKind;

ClientConnection::ClientConnection(ClientShared& shared, const Origin& origin)
    : shared_(shared), origin_(&origin) {}

ClientConnection::~ClientConnection() {
  shared_.deadlines.Disarm(this);
  CloseSocket();
}

void ClientConnection::Send(const RequestOptions& request, ClientHandler* handler) {
  MERIDIAN_ASSERT(!busy() && !pending_delivery_);
  request_ = request;
  handler_ = handler;
  retried_ = false;
  send_ns_ = request.now_ns ? request.now_ns : MonoNanos();
  deadline_ns_ = send_ns_ + shared_.request_timeout_ns;
  in_send_ = true;
  Begin();
  in_send_ = false;
}

void ClientConnection::Begin() {
  written_ = 0;
  write_start_ns_ = 0;
  got_bytes_ = false;
  sample_ = stats::RequestSample{};
  error_message_.clear();
  parser_.CaptureHeaders(request_.capture_headers);
  parser_.CaptureBody(request_.capture_body, request_.capture_body_limit);
  if (request_.capture_headers) request_.capture_headers->clear();
  if (request_.capture_body) request_.capture_body->clear();
  parser_.Reset(request_.head);
  if (fd_ < 0) {
    reused_ = false;
    Connect();
    return;
  }
  reused_ = true;
  state_ = State::kWriting;
  write_start_ns_ = send_ns_;
  shared_.deadlines.Arm(this, deadline_ns_);
  DoWrite();
}

void ClientConnection::Abort() {
  shared_.deadlines.Disarm(this);
  CloseSocket();
  handler_ = nullptr;
  pending_delivery_ = false;
}

void ClientConnection::Connect() {
  auto fd = net::NewTcpSocket(origin_->endpoint.family());
  if (!fd.ok()) {
    Fail(ErrorKind::kConnect, fd.error().message, false);
    return;
  }
  fd_ = *fd;
  ++shared_.connections_opened;
  state_ = State::kConnecting;
  phase_start_ns_ = MonoNanos();
  const int rc = net::StartConnect(fd_, origin_->endpoint);
  if (rc != 0 && rc != EINPROGRESS) {
    Fail(ErrorKind::kConnect,
         fmt::format("connect to {}: {}", origin_->endpoint.ToString(), net::ErrnoText(rc)), false);
    return;
  }
  auto added = shared_.loop->Add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP, this);
  if (!added.ok()) {
    Fail(ErrorKind::kConnect, added.error().message, false);
    return;
  }
  want_write_ = true;
  shared_.deadlines.Arm(this, std::min(deadline_ns_, phase_start_ns_ + shared_.connect_timeout_ns));
  if (rc == 0) OnConnected();
}

void ClientConnection::OnConnected() {
  const int64_t now = MonoNanos();
  sample_.connect_ns = now - phase_start_ns_;
  if (origin_->tls) {
    MERIDIAN_RELEASE_ASSERT(shared_.tls != nullptr);
    ssl_ = shared_.tls->NewClient(fd_, origin_->host);
    if (ssl_ == nullptr) {
      Fail(ErrorKind::kTls, "cannot create a TLS session: " + net::TlsErrorText(), false);
      return;
    }
    phase_start_ns_ = now;
    state_ = State::kHandshaking;
    DoHandshake();
    return;
  }
  state_ = State::kWriting;
  shared_.deadlines.Arm(this, deadline_ns_);
  DoWrite();
}

void ClientConnection::DoHandshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    sample_.tls_ns = MonoNanos() - phase_start_ns_;
    state_ = State::kWriting;
    shared_.deadlines.Arm(this, deadline_ns_);
    DoWrite();
    return;
  }
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
      WantWrite(false);
      return;
    case SSL_ERROR_WANT_WRITE:
      WantWrite(true);
      return;
    default:
      Fail(ErrorKind::kTls,
           fmt::format("TLS handshake with {} failed: {}", origin_->host, net::TlsErrorText(ssl_)), false);
  }
}

void ClientConnection::WantWrite(bool on) {
  if (want_write_ == on || fd_ < 0) return;
  want_write_ = on;
  (void)shared_.loop->Modify(fd_, EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u), this);
}

void ClientConnection::DoWrite() {
  if (write_start_ns_ == 0) write_start_ns_ = MonoNanos();
  const std::string_view bytes = request_.bytes;
  while (written_ < bytes.size()) {
    const char* p = bytes.data() + written_;
    const size_t len = bytes.size() - written_;
    ssize_t n;
    if (ssl_) {
      ERR_clear_error();
      const int rc = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(len, INT32_MAX)));
      if (rc <= 0) {
        const int e = SSL_get_error(ssl_, rc);
        if (e == SSL_ERROR_WANT_WRITE) {
          WantWrite(true);
          return;
        }
        if (e == SSL_ERROR_WANT_READ) return;
        Fail(e == SSL_ERROR_SSL ? ErrorKind::kTls : ErrorKind::kReset,
             fmt::format("write to {}: {}", origin_->host_header,
                         e == SSL_ERROR_SYSCALL ? net::ErrnoText(errno) : net::TlsErrorText(ssl_)),
             reused_);
        return;
      }
      n = rc;
    } else {
      n = net::SendNoSignal(fd_, p, len);
      if (n < 0) {
        if (errno == EAGAIN) {
          WantWrite(true);
          return;
        }
        if (errno == EINTR) continue;
        Fail(ErrorKind::kReset, fmt::format("write to {}: {}", origin_->host_header, net::ErrnoText(errno)),
             reused_);
        return;
      }
    }
    written_ += static_cast<size_t>(n);
    sample_.bytes_sent += static_cast<uint64_t>(n);
  }
  WantWrite(false);
  state_ = State::kReading;
}

void ClientConnection::OnIo(uint32_t events) {
  switch (state_) {
    case State::kConnecting: {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      const int rc = net::FinishConnect(fd_);
      if (rc == EAGAIN) return;
      if (rc != 0) {
        Fail(ErrorKind::kConnect,
             fmt::format("connect to {}: {}", origin_->endpoint.ToString(), net::ErrnoText(rc)), false);
        return;
      }
      OnConnected();
      return;
    }
    case State::kHandshaking:
      DoHandshake();
      return;
    case State::kWriting:
      DoWrite();
      return;
    case State::kReading:
      DoRead();
      return;
    case State::kIdle:
      ReadIdle();
      return;
    case State::kClosed:
      return;  // a stale event for a socket already closed
  }
}

void ClientConnection::DoRead() {
  char* buf = shared_.read_buffer.data();
  const size_t cap = shared_.read_buffer.size();
  while (true) {
    ssize_t n;
    if (ssl_) {
      ERR_clear_error();
      const int rc = SSL_read(ssl_, buf, static_cast<int>(cap));
      if (rc <= 0) {
        const int e = SSL_get_error(ssl_, rc);
        if (e == SSL_ERROR_WANT_READ) return;
        if (e == SSL_ERROR_WANT_WRITE) {
          WantWrite(true);
          return;
        }
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
          n = 0;  // close_notify or plain EOF
        } else {
          Fail(e == SSL_ERROR_SSL ? ErrorKind::kTls : ErrorKind::kReset,
               fmt::format("read from {}: {}", origin_->host_header,
                           e == SSL_ERROR_SYSCALL ? net::ErrnoText(errno) : net::TlsErrorText(ssl_)),
               reused_ && !got_bytes_);
          return;
        }
      } else {
        n = rc;
      }
    } else {
      n = net::Recv(fd_, buf, cap);
      if (n < 0) {
        if (errno == EAGAIN) return;
        if (errno == EINTR) continue;
        Fail(ErrorKind::kReset, fmt::format("read from {}: {}", origin_->host_header, net::ErrnoText(errno)),
             reused_ && !got_bytes_);
        return;
      }
    }
    const int64_t now = MonoNanos();
    if (n == 0) {
      parser_.FeedEof();
      if (parser_.complete()) {
        Complete(false, now);
      } else {
        Fail(ErrorKind::kReset,
             fmt::format("{}: {}", origin_->host_header,
                         got_bytes_ ? "connection closed before the response was complete"
                                    : "connection closed by the server before a response"),
             reused_ && !got_bytes_);
      }
      return;
    }
    if (!got_bytes_) {
      got_bytes_ = true;
      sample_.ttfb_ns = now - write_start_ns_;
    }
    sample_.bytes_received += static_cast<uint64_t>(n);
    const size_t used = parser_.Feed(buf, static_cast<size_t>(n));
    if (parser_.failed()) {
      Fail(ErrorKind::kProtocol,
           fmt::format("invalid response from {}: {}", origin_->host_header, parser_.error()), false);
      return;
    }
    if (parser_.complete()) {
      // Bytes after the response were never asked for: do not trust the connection with another request.
      Complete(/*extra_bytes=*/used < static_cast<size_t>(n), now);
      return;
    }
    if (!ssl_ && static_cast<size_t>(n) < cap) return;
  }
}

void ClientConnection::ReadIdle() {
  // Nothing is expected on an idle connection: EOF means the server closed it; data is unsolicited.
  char probe[256];
  ssize_t n;
  if (ssl_) {
    ERR_clear_error();
    n = SSL_read(ssl_, probe, sizeof probe);
    if (n <= 0 && SSL_get_error(ssl_, static_cast<int>(n)) == SSL_ERROR_WANT_READ) return;
  } else {
    n = recv(fd_, probe, sizeof probe, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  }
  CloseSocket();
}

void ClientConnection::Complete(bool extra_bytes, int64_t now) {
  shared_.deadlines.Disarm(this);
  ++requests_on_connection_;
  sample_.status = static_cast<uint16_t>(parser_.status());
  if (parser_.keep_alive() && !extra_bytes) {
    state_ = State::kIdle;
  } else {
    CloseSocket();
  }
  Deliver(ErrorKind::kNone, now);
}

void ClientConnection::Fail(ErrorKind kind, std::string message, bool retryable) {
  shared_.deadlines.Disarm(this);
  CloseSocket();
  if (retryable && !retried_ && request_.idempotent && MonoNanos() < deadline_ns_) {
    // The server closed a kept-alive connection just as it was reused: send again on a fresh one.
    retried_ = true;
    ++shared_.retries;
    Begin();
    return;
  }
  error_message_ = std::move(message);
  Deliver(kind, MonoNanos());
}

void ClientConnection::OnDeadline() {
  const int64_t now = MonoNanos();
  if (state_ == State::kConnecting && now < deadline_ns_) {
    Fail(ErrorKind::kConnect,
         fmt::format("connect to {}: timed out after {}", origin_->endpoint.ToString(),
                     FormatDuration(shared_.connect_timeout_ns)),
         false);
    return;
  }
  Fail(ErrorKind::kTimeout,
       fmt::format("{}: no complete response within {}", origin_->host_header,
                   FormatDuration(shared_.request_timeout_ns)),
       false);
}

void ClientConnection::Deliver(ErrorKind kind, int64_t now) {
  sample_.error = kind;
  sample_.total_ns = now - request_.start_ns;
  completed_ns_ = now;
  if (in_send_) {
    // Never call back from inside Send: a caller that sends again from its callback would recurse.
    pending_delivery_ = true;
    shared_.loop->Defer([this] {
      if (!pending_delivery_) return;
      pending_delivery_ = false;
      Notify();
    });
    return;
  }
  Notify();
}

void ClientConnection::Notify() {
  ClientHandler* handler = handler_;
  handler_ = nullptr;
  if (handler == nullptr) return;
  ResponseEvent event;
  event.sample = sample_;
  event.completed_ns = completed_ns_;
  std::string message = std::move(error_message_);
  event.error_message = message;
  handler->OnResponse(event);  // may Send again on this connection
}

void ClientConnection::CloseSocket() {
  if (ssl_) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    close(fd_);  // also leaves the epoll set
    fd_ = -1;
  }
  want_write_ = false;
  state_ = State::kClosed;
}

}  // namespace meridian::http
