#pragma once
// A small HTTP/1.1 server adapter on one EventLoop, for the control plane's JSON API: keep-alive, one request
// at a time per connection, bounded head, header count and body, and responses that may be sent later (long
// polls). Handlers run on the loop thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
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
  int64_t received_wall_ns = 0;  // when the request was complete (for clock-offset estimates)

  std::string Header(const std::string& lower_name) const;
  std::string Query(std::string_view key) const;  // percent-decoded; empty when absent
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class HttpServer;
struct ServerConnectionState;

// Sends the one response to a request, now or later. Cheap to copy; sending twice, or after the client left,
// does nothing.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::weak_ptr<ServerConnectionState> c) : c_(std::move(c)) {}
  void Send(ServerResponse response);
  bool alive() const;

 private:
  std::weak_ptr<ServerConnectionState> c_;
};

struct ServerOptions {
  size_t max_body_bytes = 8 * 1024 * 1024;
  size_t max_headers = 100;
  int64_t idle_timeout_ns = 120'000'000'000;
};

class HttpServer final : public net::IoHandler {
 public:
  using Handler = std::function<void(ServerRequest&, Responder)>;
  HttpServer(net::EventLoop& loop, ServerOptions options, Handler handler);
  ~HttpServer() override;

  Result<void> Listen(const net::Endpoint& at);
  uint16_t port() const { return port_; }
  void OnIo(uint32_t events) override;  // accept
  size_t connections() const { return connections_.size(); }

 private:
  friend struct ServerConnectionState;
  void Forget(ServerConnectionState* c);

  net::EventLoop& loop_;
  ServerOptions options_;
  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::unordered_map<ServerConnectionState*, std::shared_ptr<ServerConnectionState>> connections_;
  net::FunctionTimer idle_sweep_;
};

// "Not Found" for 404, ...
const char* StatusReason(int status);

}  // namespace meridian::http
