#pragma once
// One keep-alive HTTP/1.1 (optionally TLS) client connection, driven by a worker's event loop.
//
// The connection is opened lazily by the first Send, reused while the server keeps it alive, and re-opened
// transparently after the server closed it. Each Send produces exactly one ClientHandler::OnResponse, never
// from inside Send itself, carrying the request's RequestSample: phases, bytes, status and error kind. Reads
// go into the worker's shared buffer and are parsed in place; a connection owns no buffers, so ten thousand
// idle connections cost only their objects. Interest in EPOLLIN stays registered while connected, so a
// request costs one write and one read system call and no epoll_ctl.

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "http/response_parser.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls.h"
#include "stats/metrics.h"

namespace meridian::http {

// Per-worker state shared by all its client connections.
struct ClientShared {
  net::EventLoop* loop = nullptr;
  net::DeadlineList deadlines;           // request and connect deadlines
  const net::TlsContext* tls = nullptr;  // set when any target uses https
  int64_t connect_timeout_ns = 5'000'000'000;
  int64_t request_timeout_ns = 10'000'000'000;
  std::string read_buffer = std::string(64 * 1024, '\0');
  uint64_t connections_opened = 0;
  uint64_t retries = 0;
};

// A resolved destination; immutable for the run.
struct Origin {
  std::string host;         // for SNI and certificate verification
  std::string host_header;  // "host:port" as sent in Host
  net::Endpoint endpoint;
  bool tls = false;
};

struct RequestOptions {
  std::string_view bytes;  // the whole serialised request; must stay valid until OnResponse
  int64_t start_ns = 0;    // latency is measured from here (the intended start for arrival-rate iterations)
  int64_t now_ns = 0;      // the caller's current time if it has one (saves a clock read), else 0
  bool head = false;       // HEAD: the response has no body
  bool idempotent = true;  // may be re-sent once if a reused connection turns out to be closed
  std::string* capture_headers = nullptr;
  std::string* capture_body = nullptr;
  size_t capture_body_limit = 0;
};

struct ResponseEvent {
  stats::RequestSample sample;
  int64_t completed_ns = 0;        // when the response completed or the request failed (monotonic)
  std::string_view error_message;  // empty on success; otherwise why (for the first-errors log)
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual void OnResponse(const ResponseEvent& event) = 0;
};

class ClientConnection final : public net::IoHandler, public net::DeadlineNode {
 public:
  ClientConnection(ClientShared& shared, const Origin& origin);
  ~ClientConnection() override;
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // Starts a request. The connection must not be busy.
  void Send(const RequestOptions& request, ClientHandler* handler);
  // Closes the socket; a request in flight is abandoned without a callback. Only to abandon work: an idle
  // connection is left open by callers.
  void Abort();

  bool busy() const { return state_ != State::kIdle && state_ != State::kClosed; }
  // A request is running or its response is about to be delivered.
  bool in_flight() const { return busy() || pending_delivery_; }
  bool connected() const { return fd_ >= 0; }
  uint64_t requests_on_connection() const { return requests_on_connection_; }
  const Origin& origin() const { return *origin_; }

  void OnIo(uint32_t events) override;
  void OnDeadline() override;

 private:
  enum class State : uint8_t { kClosed, kConnecting, kHandshaking, kWriting, kReading, kIdle };

  void Begin();
  void Connect();
  void OnConnected();
  void DoHandshake();
  void DoWrite();
  void DoRead();
  void ReadIdle();
  void Complete(bool extra_bytes, int64_t now);
  void Fail(stats::ErrorKind kind, std::string message, bool retryable);
  void Deliver(stats::ErrorKind kind, int64_t now);
  void Notify();
  void CloseSocket();
  void WantWrite(bool on);

  ClientShared& shared_;
  const Origin* origin_;
  ClientHandler* handler_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  State state_ = State::kClosed;
  bool want_write_ = false;
  bool reused_ = false;  // this request runs on a connection that already served one
  bool retried_ = false;
  bool got_bytes_ = false;  // any response byte for the current request
  bool in_send_ = false;
  bool pending_delivery_ = false;
  RequestOptions request_;
  size_t written_ = 0;
  uint64_t requests_on_connection_ = 0;
  int64_t send_ns_ = 0;      // when Send was called
  int64_t deadline_ns_ = 0;  // request deadline
  int64_t phase_start_ns_ = 0;
  int64_t write_start_ns_ = 0;  // 0 until the request's first write
  int64_t completed_ns_ = 0;
  ResponseParser parser_;
  stats::RequestSample sample_;
  std::string error_message_;
};

}  // namespace meridian::http
