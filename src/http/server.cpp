#include "http/server.h"

#include <fmt/format.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "http/request_parser.h"

namespace meridian::http {

namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && Hex(s[i + 1]) >= 0 && Hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(Hex(s[i + 1]) * 16 + Hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}
}  // namespace

const char* StatusReason(int status) {
  struct Reason {
    int status;
    const char* text;
  };
  static constexpr Reason kReasons[] = {
      {100, "Continue"},
      {103, "Early Hints"},
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {411, "Length Required"},
      {413, "Content Too Large"},
      {423, "Locked"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (const auto& r : kReasons) {
    if (r.status == status) return r.text;
  }
  return "Status";
}

std::string ServerRequest::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string ServerRequest::Query(std::string_view key) const {
  std::string_view q = query;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}

struct ServerConnectionState final : net::IoHandler, std::enable_shared_from_this<ServerConnectionState> {
  HttpServer& server;
  int fd;
  std::string peer;
  std::string in;
  std::string out;
  bool busy = false;  // a request is with the handler
  bool close_after = false;
  bool closed = false;
  bool want_write = false;
  bool discard_input = false;  // after an error response: read and drop the rest of the request
  bool lingering = false;      // our side is shut down; draining the peer's bytes until it closes
  int64_t last_active_ns = 0;

  ServerConnectionState(HttpServer& s, int f, std::string p) : server(s), fd(f), peer(std::move(p)) {}
  ~ServerConnectionState() override {
    if (fd >= 0) close(fd);
  }

  void OnIo(uint32_t events) override {
    auto self = shared_from_this();  // a handler may close us while we run
    if (closed) return;
    if ((events & EPOLLOUT) && !out.empty()) Flush();
    if (closed) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) Read();
  }

  void Read() {
    char buf[16 * 1024];
    while (!closed) {
      const ssize_t n = net::Recv(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        Close();
        return;
      }
      last_active_ns = MonoNanos();
      if (lingering) continue;  // the response is out: drop what the client still sends
      in.append(buf, static_cast<size_t>(n));
      if (in.size() > server.options_.max_body_bytes + kMaxRequestHeadBytes + 1) break;
    }
    if (!lingering) Process();
  }

  void Fail(int status, const std::string& code, const std::string& message) {
    ServerResponse r;
    r.status = status;
    r.body = nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace);
    close_after = true;
    discard_input = true;
    busy = true;
    in.clear();
    Respond(std::move(r));
  }

  void Process() {
    while (!busy && !closed && !close_after && !in.empty()) {
      RequestHead head;
      const char* error = nullptr;
      HeaderViews views;
      const ParseStatus st = ParseRequestHead(in, head, &error, &views);
      if (st == ParseStatus::kIncomplete) return;
      if (st == ParseStatus::kError) {
        const bool too_large = std::string_view(error).find("too large") != std::string_view::npos;
        Fail(too_large ? 431 : 400, too_large ? "headers_too_large" : "bad_request", error);
        return;
      }
      if (views.size() > server.options_.max_headers) {
        Fail(431, "headers_too_large",
             fmt::format("more than {} header fields", server.options_.max_headers));
        return;
      }
      if (head.chunked) {
        Fail(411, "length_required", "send the body with Content-Length");
        return;
      }
      const size_t body = head.content_length > 0 ? static_cast<size_t>(head.content_length) : 0;
      if (body > server.options_.max_body_bytes) {
        Fail(413, "body_too_large",
             fmt::format("the body is larger than {} bytes", server.options_.max_body_bytes));
        return;
      }
      if (in.size() < head.head_bytes + body) return;
      ServerRequest req;
      req.method = std::string(head.method);
      const std::string_view target = head.target;
      const size_t q = target.find('?');
      req.path = std::string(target.substr(0, q));
      if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
      for (const auto& [name, value] : views) req.headers[Lower(name)] = std::string(value);
      req.body = in.substr(head.head_bytes, body);
      req.peer = peer;
      req.received_wall_ns = WallNanos();
      in.erase(0, head.head_bytes + body);
      close_after = !head.keep_alive;
      busy = true;
      server.handler_(req, Responder(weak_from_this()));
    }
  }

  void Respond(ServerResponse r) {
    if (closed || !busy) return;
    busy = false;
    out +=
        fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
                    r.status, StatusReason(r.status), r.content_type, r.body.size());
    for (const auto& [k, v] : r.headers) out += fmt::format("{}: {}\r\n", k, v);
    if (close_after) out += "Connection: close\r\n";
    out += "\r\n";
    out += r.body;
    Flush();
    if (!closed && !close_after) Process();
  }

  void Flush() {
    while (!out.empty()) {
      const ssize_t n = net::SendNoSignal(fd, out.data(), out.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) {
        Close();
        return;
      }
      out.erase(0, static_cast<size_t>(n));
    }
    const bool need = !out.empty();
    if (need != want_write) {
      want_write = need;
      (void)server.loop_.Modify(fd, EPOLLIN | EPOLLRDHUP | (need ? EPOLLOUT : 0u), this);
    }
    if (out.empty() && close_after && !busy) {
      if (discard_input && !lingering) {
        // Close gracefully so that a client still sending its (refused) body reads our response instead
        // of a reset; the idle sweep ends lingering connections after 2 s.
        shutdown(fd, SHUT_WR);
        lingering = true;
        last_active_ns = MonoNanos();
      } else if (!discard_input) {
        Close();
      }
    }
  }

  void Close() {
    if (closed) return;
    closed = true;
    server.loop_.Remove(fd);
    close(fd);
    fd = -1;
    server.Forget(this);
  }
};

void Responder::Send(ServerResponse response) {
  if (auto c = c_.lock()) c->Respond(std::move(response));
  c_.reset();
}

bool Responder::alive() const {
  auto c = c_.lock();
  return c && !c->closed;
}

HttpServer::HttpServer(net::EventLoop& loop, ServerOptions options, Handler handler)
    : loop_(loop), options_(options), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  loop_.Cancel(&idle_sweep_);
  for (const auto& [raw, c] : connections_) {
    if (!c->closed) {
      c->closed = true;
      loop_.Remove(c->fd);
    }
  }
  connections_.clear();
  if (listen_fd_ >= 0) {
    loop_.Remove(listen_fd_);
    close(listen_fd_);
  }
}

Result<void> HttpServer::Listen(const net::Endpoint& at) {
  auto fd = net::Listen(at, false, 1024);
  if (!fd.ok()) return fd.error();
  listen_fd_ = *fd;
  port_ = net::LocalEndpoint(listen_fd_).port();
  if (auto r = loop_.Add(listen_fd_, EPOLLIN, this); !r.ok()) return r.error();
  idle_sweep_.set([this] {
    const int64_t now = MonoNanos();
    std::vector<std::shared_ptr<ServerConnectionState>> idle;
    for (const auto& [raw, c] : connections_) {
      const int64_t limit = c->lingering ? 2'000'000'000 : options_.idle_timeout_ns;
      if (!c->busy && c->out.empty() && now - c->last_active_ns > limit) idle.push_back(c);
    }
    for (const auto& c : idle) c->Close();
    loop_.Schedule(&idle_sweep_, now + 1'000'000'000);
  });
  loop_.Schedule(&idle_sweep_, MonoNanos() + 1'000'000'000);
  return {};
}

void HttpServer::OnIo(uint32_t) {
  while (true) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or out of descriptors: try again on the next readiness
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    net::Endpoint ep;
    ep.addr = addr;
    ep.len = len;
    auto c = std::make_shared<ServerConnectionState>(*this, fd, ep.ToString());
    c->last_active_ns = MonoNanos();
    if (!loop_.Add(fd, EPOLLIN | EPOLLRDHUP, c.get()).ok()) continue;
    connections_.emplace(c.get(), std::move(c));
  }
}

void HttpServer::Forget(ServerConnectionState* c) {
  // Keep the object alive until the current event batch ends: its OnIo may still be on the stack.
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  auto keep = std::move(it->second);
  connections_.erase(it);
  loop_.Defer([keep] {});
}

}  // namespace meridian::http
