#pragma once
// A small HTTP/1.1 server adapter on one EventLoop, for the control plane's JSON API: keep-alive, one request
// at a time per connection, responses that may be sent later (long polls). Handlers run on the loop thread.
//
// Bounded against clients that hold no valid token and clients that do (docs/security.md):
// - a request's head is checked (HeadCheck: the token, the route's body limit) before any of its body is
//   read; a refused request's body is never buffered, and `Expect: 100-continue` is answered only after
//   the check passed;
// - request bodies are reserved against one budget for the whole server (max_buffered_bytes) until their
//   response is sent: beyond it, 503 with Retry-After;
// - behind a request the handler holds (a long poll), at most max_pipelined_bytes are read ahead; then the
//   connection is not read until the response is out;
// - a request must be complete within request_timeout_ns of its first byte (408), an idle connection is
//   closed after idle_timeout_ns, at most max_connections are open (the oldest idle one is closed first), and
//   running out of descriptors neither spins the loop nor stops it (a reserve descriptor);
// - answering a held request never runs the handler again on the same stack: the connection's next
//   pipelined request is handled from the loop (EventLoop::Defer), so a handler walking its own queues can
//   answer from inside the walk.

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/result.h"
#include "net/event_loop.h"
#include "net/socket.h"

namespace meridian::http {

struct ServerRequest {
  std::string method;
  std::string path;                            // without the query
  std::string query;                           // after '?', not decoded
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string peer;
  int minor = 1;                 // HTTP/1.minor
  int64_t received_wall_ns = 0;  // when the request was complete (for clock-offset estimates)
  // The body parsed as JSON away from the loop thread (large bodies, see control/); null when not.
  std::shared_ptr<const nlohmann::json> parsed;

  std::string Header(const std::string& lower_name) const;
  std::string Query(std::string_view key) const;  // percent-decoded; empty when absent
  bool HasQuery(std::string_view key) const;
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpServer;
struct ServerConnectionState;

// The body of a response sent in pieces after its head (Server-Sent Events): chunked for HTTP/1.1 clients,
// delimited by the connection's end for HTTP/1.0 ones; the connection closes when the stream ends. A client
// that stops reading is dropped at the first write after more than max_stream_backlog_bytes wait for it (it
// reconnects and resumes); one large write (a long run's history) is queued whole. Cheap to copy; every copy
// writes to the same stream.
class StreamWriter {
 public:
  StreamWriter() = default;
  explicit StreamWriter(std::weak_ptr<ServerConnectionState> c) : c_(std::move(c)) {}
  // Hands every write to `fn` instead of a connection (in-process readers, tests); `fn` returning false ends
  // the stream as a client that left would.
  explicit StreamWriter(std::function<bool(std::string_view)> fn)
      : fn_(std::make_shared<std::function<bool(std::string_view)>>(std::move(fn))) {}
  // Queues `bytes` for the client; false when the stream is over (the client left, fell too far behind, or
  // End was called).
  bool Write(std::string_view bytes);
  void End();
  bool alive() const;
  size_t backlog() const;  // bytes written and not yet taken by the client

 private:
  std::weak_ptr<ServerConnectionState> c_;
  std::shared_ptr<std::function<bool(std::string_view)>> fn_;  // shared by copies; null once ended
};

// Sends the one response to a request, now or later. Cheap to copy; sending twice, or after the client left,
// does nothing. Sending never calls the handler: the connection's next request waits for the loop's next
// turn.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::weak_ptr<ServerConnectionState> c) : c_(std::move(c)) {}
  // Hands the response to `fn` instead of a connection (in-process callers, tests, the API fuzz target); it
  // is alive until it has been sent.
  explicit Responder(std::function<void(ServerResponse)> fn)
      : fn_(std::make_shared<std::function<void(ServerResponse)>>(std::move(fn))) {}
  void Send(ServerResponse response);
  // Sends `head` (its body, if any, is the stream's first bytes) and keeps the request open for a body
  // written later through the returned writer. With an in-process callback, the callback gets `head` and the
  // writer is dead.
  StreamWriter StartStream(ServerResponse head);
  bool alive() const;

 private:
  std::weak_ptr<ServerConnectionState> c_;
  std::shared_ptr<std::function<void(ServerResponse)>> fn_;  // shared by copies: sent once
};

struct ServerOptions {
  size_t max_body_bytes = 8 * 1024 * 1024;  // the most any route accepts (HeadCheck may lower it per route)
  size_t max_headers = 100;
  int64_t idle_timeout_ns = 120'000'000'000;
  size_t max_head_bytes = 16 * 1024;            // request line and header section
  int64_t request_timeout_ns = 30'000'000'000;  // first byte of a request to its last
  // The oldest idle one is closed for a new one beyond this, or beyond what RLIMIT_NOFILE leaves once 64
  // descriptors are kept for the rest of the process (the store, hook pipes).
  size_t max_connections = 4096;
  size_t max_buffered_bytes = 256 * 1024 * 1024;  // request bodies held, all connections together
  size_t max_pipelined_bytes = 64 * 1024;         // read ahead behind a request the handler holds
  size_t max_stream_backlog_bytes =
      4 * 1024 * 1024;  // unread bytes of a streamed response before dropping it
  // Header fields that must not repeat (400): the server reads each as one value.
  std::vector<std::string> single_headers = {"authorization", "host", "content-type", "expect"};
};

class HttpServer final : public net::IoHandler {
 public:
  using Handler = std::function<void(ServerRequest&, Responder)>;
  // Runs when a request's head is complete, before its body is read (`head.body` is empty). A response
  // refuses the request (the body is never read and the connection closes after it); nullopt accepts it,
  // with `*max_body` (preset to the server's limit) lowered for this route if the check wants.
  using HeadCheck = std::function<std::optional<ServerResponse>(const ServerRequest& head, size_t* max_body)>;

  HttpServer(net::EventLoop& loop, ServerOptions options, Handler handler, HeadCheck head_check = {});
  ~HttpServer() override;

  Result<void> Listen(const net::Endpoint& at);
  uint16_t port() const { return port_; }
  void OnIo(uint32_t events) override;  // accept
  size_t connections() const { return connections_.size(); }
  size_t connection_cap() const { return cap_; }
  size_t buffered_bytes() const { return reserved_; }  // bodies reserved by requests not yet answered
  size_t buffered_input_bytes() const;                 // bytes read and not yet handled, all connections

 private:
  friend struct ServerConnectionState;
  void Forget(ServerConnectionState* c);
  bool CloseOldestIdle();                // true if one was closed
  void Refuse(int fd);                   // a best-effort 503 on a connection we cannot keep, then close
  void Touch(ServerConnectionState* c);  // most recently active: the end of the LRU list

  net::EventLoop& loop_;
  ServerOptions options_;
  Handler handler_;
  HeadCheck head_check_;
  int listen_fd_ = -1;
  int reserve_fd_ = -1;  // closed to accept (and refuse) a connection when descriptors run out
  uint16_t port_ = 0;
  size_t reserved_ = 0;
  size_t cap_ = 0;      // max_connections, lowered to fit RLIMIT_NOFILE
  size_t evicted_ = 0;  // idle connections closed to make room since the last warning
  int64_t evicted_logged_ns_ = INT64_MIN / 2;
  std::unordered_map<ServerConnectionState*, std::shared_ptr<ServerConnectionState>> connections_;
  std::list<ServerConnectionState*> lru_;  // least recently active first
  net::FunctionTimer sweep_;
  net::FunctionTimer accept_pause_;  // accepting resumes (after descriptors ran out)
};

// "Not Found" for 404, ...
const char* StatusReason(int status);

}  // namespace meridian::http
