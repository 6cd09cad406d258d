#pragma once
// A blocking HTTP/1.1 client for the control-plane protocol (agents, `submit`, `runs`, `waiter`): one
// keep-alive connection, a deadline per request, one fresh-connection retry when a reused connection turned
// out closed. Several control-plane URLs (replicas: "http://a:7070,http://b:7070") are tried in turn: a
// request moves to the next one when the connection cannot be made, when the answer is 503, or, for a
// method that may be repeated (GET, PUT, DELETE, HEAD), when the connection fails mid-request; it stays
// there for the following requests. https verifies the server's certificate and host name against the
// system's CAs (or $SSL_CERT_FILE). Not for load: the load path is ClientConnection on an event loop.

#include <cstdint>
#include <memory>
#include <optional>
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
  // `base` is "http://host:port" or https (a path prefix is kept), or several separated by commas; `token` is
  // sent as a bearer token when not empty. Each URL must parse; one that does not resolve now is tried again
  // when its turn comes (an error only when none resolves).
  static Result<BlockingClient> Create(const std::string& base, std::string token);
  BlockingClient(BlockingClient&& o) noexcept;
  BlockingClient& operator=(BlockingClient&& o) noexcept;
  ~BlockingClient();

  Result<FetchResponse> Request(const std::string& method, const std::string& path,
                                const std::string& body = {}, int64_t timeout_ns = 10'000'000'000,
                                const std::string& content_type = "application/json");
  void Disconnect();
  // The URL in use now (of several, the one the last request reached or tried last).
  const std::string& base() const { return base_; }
  // A header field sent with every request from now on (replacing one of the same name). Not for secrets
  // that belong in Authorization; never in the URL.
  void SetHeader(const std::string& name, const std::string& value);

 private:
  // One control-plane URL of several.
  struct Target {
    std::string base, prefix, host_header, host;
    std::shared_ptr<net::TlsContext> tls;
    std::optional<net::Endpoint> endpoint;  // resolved
  };
  BlockingClient() = default;
  Result<void> Use(size_t index);  // makes targets_[index] the current one (resolving it if needed)
  Result<FetchResponse> Attempt(const std::string& method, const std::string& path, const std::string& body,
                                int64_t timeout_ns, const std::string& content_type);
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
  bool sent_ = false;  // the current attempt wrote some of its request
  std::vector<Target> targets_;
  size_t current_ = 0;
  std::string list_;  // the URLs as given
};

}  // namespace meridian::http
