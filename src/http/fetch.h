#pragma once
// A blocking HTTP/1.1 client for the control-plane protocol (agents, `submit`, `runs`, `waiter`): one
// keep-alive connection, a deadline per request, one fresh-connection retry when a reused connection turned
// out closed. https verifies the server's certificate and host name against the system's CAs (or
// $SSL_CERT_FILE). Not for load: the load path is ClientConnection on an event loop.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "http/url.h"
#include "net/socket.h"
#include "net/tls.h"

namespace meridian::http {

struct FetchResponse {
  int status = 0;
  std::string body;
  std::string head;              // the status line and header fields, as received
  int64_t retry_after_s = -1;    // Retry-After in seconds (-1: none, or a date)
  int64_t sent_wall_ns = 0;      // when the request was written
  int64_t received_wall_ns = 0;  // when the response was complete
};

class BlockingClient {
 public:
  // `base` is "http://host:port" or https (a path prefix is kept); `token` is sent as a bearer token when not
  // empty.
  static Result<BlockingClient> Create(const std::string& base, std::string token);
  BlockingClient(BlockingClient&& o) noexcept;
  BlockingClient& operator=(BlockingClient&& o) noexcept;
  ~BlockingClient();

  Result<FetchResponse> Request(const std::string& method, const std::string& path,
                                const std::string& body = {}, int64_t timeout_ns = 10'000'000'000,
                                const std::string& content_type = "application/json");
  void Disconnect();
  const std::string& base() const { return base_; }
  // A header field sent with every request from now on (replacing one of the same name). Not for secrets
  // that belong in Authorization; never in the URL.
  void SetHeader(const std::string& name, const std::string& value);

 private:
  BlockingClient() = default;
  Result<FetchResponse> Once(const std::string& request, int64_t deadline_ns, bool* reused);
  Result<void> Handshake(int64_t deadline_ns);
  ssize_t Send(const char* data, size_t size);  // like send(): -1 with errno EAGAIN to wait
  ssize_t Receive(char* data, size_t size);     // like recv()
  ssize_t SslResult(int n);

  std::string base_;
  std::string prefix_;
  std::string host_header_;
  std::string token_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string host_;  // for SNI and certificate verification
  net::Endpoint endpoint_;
  std::shared_ptr<net::TlsContext> tls_;  // https only
  SSL* ssl_ = nullptr;
  short want_ = 0;  // what the TLS layer waits for after EAGAIN (POLLIN or POLLOUT)
  int fd_ = -1;
};

}  // namespace meridian::http
