#include "http/server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/clock.h"
#include "core/hex.h"
#include "core/json.h"
#include "core/log.h"
#include "http/request_parser.h"
#include "http/syntax.h"

namespace meridian::http {

namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}
// The value of `key` in a query string, undecoded; found=false when absent.
std::string_view FindQuery(std::string_view q, std::string_view key, bool* found) {
  *found = false;
  while (!q.empty()) {
    const size_t amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      *found = true;
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return {};
}
std::string ErrorBody(const std::string& code, const std::string& message) {
  return JsonText(nlohmann::json{{"error", {{"code", code}, {"message", message}}}});
}
constexpr int64_t kLingerNs = 2'000'000'000;
constexpr int64_t kSweepNs = 1'000'000'000;
constexpr int64_t kAcceptPauseNs = 100'000'000;
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
  bool found = false;
  return PercentDecode(FindQuery(query, key, &found));
}

bool ServerRequest::HasQuery(std::string_view key) const {
  bool found = false;
  FindQuery(query, key, &found);
  return found;
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
  bool discard_input = false;  // after an error response: read and drop the rest of the request
  bool lingering = false;      // our side is shut down; draining the peer's bytes until it closes
  bool process_scheduled = false;
  uint32_t interest = 0;  // the epoll events registered now
  int64_t last_active_ns = 0;
  int64_t request_started_ns = 0;  // first byte of the request being received (0: none, or busy)
  std::list<ServerConnectionState*>::iterator lru_pos;

  // The request whose head has been accepted and whose body is arriving.
  bool head_ok = false;
  size_t head_bytes = 0;
  size_t body_bytes = 0;
  bool expect_continue = false;
  bool sent_continue = false;
  bool keep_alive = true;
  bool streaming = false;  // a streamed response is open: its head is sent, its body is being written
  ServerRequest pending;
  size_t reserved = 0;  // body bytes reserved against the server's budget until the response
  int answering_minor = 1;

  ServerConnectionState(HttpServer& s, int f, std::string p) : server(s), fd(f), peer(std::move(p)) {}
  ~ServerConnectionState() override {
    if (fd >= 0) close(fd);
  }

  const ServerOptions& options() const { return server.options_; }

  void OnIo(uint32_t events) override {
    auto self = shared_from_this();  // a handler may close us while we run
    if (closed) return;
    if ((events & EPOLLOUT) && !out.empty()) Flush();
    if (closed) return;
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
    if (!(interest & EPOLLIN)) {
      // Not reading (the pipeline is full behind a held request): the peer went away or shut down.
      if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) Close();
      return;
    }
    Read();
  }

  // How many bytes `in` may hold now.
  size_t ReadLimit() const {
    if (busy) return options().max_pipelined_bytes;
    if (head_ok) return head_bytes + body_bytes + options().max_pipelined_bytes;
    return options().max_head_bytes + 1;  // one byte more shows a head that is too large
  }

  void Read() {
    char buf[16 * 1024];
    while (!closed) {
      size_t room = sizeof buf;
      if (!lingering) {
        const size_t limit = ReadLimit();
        if (in.size() >= limit) break;
        room = std::min(room, limit - in.size());
      }
      const ssize_t n = net::Recv(fd, buf, room);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n <= 0) {
        Close();
        return;
      }
      last_active_ns = MonoNanos();
      server.Touch(this);
      if (lingering) continue;  // the response is out: drop what the client still sends
      if (!busy && request_started_ns == 0) request_started_ns = last_active_ns;
      in.append(buf, static_cast<size_t>(n));
    }
    if (!lingering && !closed) Process();
    UpdateInterest();
  }

  void UpdateInterest() {
    if (closed) return;
    const bool want_in = lingering || in.size() < ReadLimit();
    const uint32_t want = EPOLLRDHUP | (want_in ? EPOLLIN : 0u) | (out.empty() ? 0u : EPOLLOUT);
    if (want == interest) return;
    interest = want;
    (void)server.loop_.Modify(fd, want, this);
  }

  void Release() {
    server.reserved_ -= reserved;
    reserved = 0;
  }

  // Answers with `r` and ends the connection (the rest of the request is read and dropped).
  void Refuse(ServerResponse r) {
    close_after = true;
    discard_input = true;
    busy = true;
    head_ok = false;
    in.clear();
    Respond(std::move(r));
  }

  void Fail(int status, const std::string& code, const std::string& message,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
    Refuse(ServerResponse{status, "application/json", ErrorBody(code, message), std::move(headers)});
  }

  bool CheckHead() {
    RequestHead head;
    const char* error = nullptr;
    HeaderViews views;
    const ParseStatus st = ParseRequestHead(in, head, &error, &views);
    if (st == ParseStatus::kIncomplete) {
      if (in.size() > options().max_head_bytes) {
        Fail(431, "headers_too_large",
             fmt::format("the request head is larger than {} bytes", options().max_head_bytes));
      }
      return false;
    }
    if (st == ParseStatus::kError) {
      const bool too_large = std::string_view(error).find("too large") != std::string_view::npos;
      Fail(too_large ? 431 : 400, too_large ? "headers_too_large" : "bad_request", error);
      return false;
    }
    if (head.head_bytes > options().max_head_bytes) {
      Fail(431, "headers_too_large",
           fmt::format("the request head is larger than {} bytes", options().max_head_bytes));
      return false;
    }
    if (views.size() > options().max_headers) {
      Fail(431, "headers_too_large", fmt::format("more than {} header fields", options().max_headers));
      return false;
    }
    if (head.chunked) {
      Fail(411, "length_required", "send the body with Content-Length");
      return false;
    }
    ServerRequest req;
    req.method = std::string(head.method);
    const std::string_view target = head.target;
    const size_t q = target.find('?');
    req.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
    req.minor = head.minor;
    req.peer = peer;
    for (const auto& [name, value] : views) {
      std::string lower = Lower(name);
      auto [it, inserted] = req.headers.emplace(lower, std::string(value));
      if (!inserted && std::find(options().single_headers.begin(), options().single_headers.end(), lower) !=
                           options().single_headers.end()) {
        Fail(400, "bad_request", fmt::format("the header field {} is repeated", name));
        return false;
      }
      if (!inserted) it->second += ", " + std::string(value);  // a list-valued field (RFC 9110 §5.3)
    }
    const size_t body = head.content_length > 0 ? static_cast<size_t>(head.content_length) : 0;
    size_t max_body = options().max_body_bytes;
    if (server.head_check_) {
      if (auto refused = server.head_check_(req, &max_body)) {
        Refuse(std::move(*refused));
        return false;
      }
      max_body = std::min(max_body, options().max_body_bytes);
    }
    if (body > max_body) {
      Fail(413, "body_too_large", fmt::format("the body is larger than {} bytes", max_body));
      return false;
    }
    if (server.reserved_ + body > options().max_buffered_bytes) {
      Fail(503, "busy", "the server holds as many request bodies as it may; retry shortly",
           {{"Retry-After", "1"}});
      return false;
    }
    reserved = body;
    server.reserved_ += body;
    head_ok = true;
    head_bytes = head.head_bytes;
    body_bytes = body;
    expect_continue = head.expect_continue && head.minor >= 1;
    sent_continue = false;
    keep_alive = head.keep_alive;
    pending = std::move(req);
    return true;
  }

  void Process() {
    while (!busy && !closed && !close_after && !in.empty()) {
      if (!head_ok && !CheckHead()) break;
      if (in.size() < head_bytes + body_bytes) {
        if (expect_continue && !sent_continue) {  // the head passed: the client may send its body now
          sent_continue = true;
          out += "HTTP/1.1 100 Continue\r\n\r\n";
          Flush();
        }
        break;
      }
      ServerRequest req = std::move(pending);
      pending = ServerRequest{};
      req.body = in.substr(head_bytes, body_bytes);
      req.received_wall_ns = WallNanos();
      in.erase(0, head_bytes + body_bytes);
      head_ok = false;
      request_started_ns = 0;
      close_after = !keep_alive;
      answering_minor = req.minor;
      busy = true;
      server.handler_(req, Responder(weak_from_this()));
    }
    UpdateInterest();
  }

  void Respond(ServerResponse r) {
    if (closed || !busy || streaming) return;
    busy = false;
    Release();
    out +=
        fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
                    r.status, StatusReason(r.status), r.content_type, r.body.size());
    for (const auto& [k, v] : r.headers) out += fmt::format("{}: {}\r\n", k, v);
    if (close_after) {
      out += "Connection: close\r\n";
    } else if (answering_minor == 0) {
      out += "Connection: keep-alive\r\n";  // an HTTP/1.0 client asked to keep it
    }
    out += "\r\n";
    out += r.body;
    Flush();
    if (closed) return;
    if (!close_after && !in.empty()) {
      request_started_ns = MonoNanos();
      ScheduleProcess();  // never from here: we may be inside a handler's walk over its own queues
    }
    UpdateInterest();
  }

  // The head of a streamed response; the request stays with the handler (busy) until EndStream, and the
  // connection closes after it.
  bool StartStream(ServerResponse r) {
    if (closed || !busy || streaming) return false;
    Release();
    streaming = true;
    close_after = true;
    out += fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-store\r\n", r.status,
                       StatusReason(r.status), r.content_type);
    for (const auto& [k, v] : r.headers) out += fmt::format("{}: {}\r\n", k, v);
    if (answering_minor >= 1) out += "Transfer-Encoding: chunked\r\n";
    out += "Connection: close\r\n\r\n";
    Flush();
    return WriteStream(r.body);
  }

  bool WriteStream(std::string_view bytes) {
    if (closed || !streaming) return false;
    if (bytes.empty()) return true;  // an empty chunk would end a chunked body
    // What is still queued decides, not the new write: a history larger than the bound is sent once.
    if (out.size() > options().max_stream_backlog_bytes) {
      Close();  // not reading: it reconnects and resumes from its last event
      return false;
    }
    if (answering_minor >= 1) {
      out += fmt::format("{:x}\r\n", bytes.size());
      out += bytes;
      out += "\r\n";
    } else {
      out += bytes;
    }
    Flush();
    return !closed;
  }

  void EndStream() {
    if (closed || !streaming) return;
    if (answering_minor >= 1) out += "0\r\n\r\n";
    streaming = false;
    busy = false;
    Flush();
  }

  void ScheduleProcess() {
    if (process_scheduled) return;
    process_scheduled = true;
    server.loop_.Defer([weak = weak_from_this()] {
      auto c = weak.lock();
      if (!c) return;
      c->process_scheduled = false;
      if (!c->closed) c->Process();
    });
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
      last_active_ns = MonoNanos();
    }
    UpdateInterest();
    if (out.empty() && close_after && !busy) {
      if (discard_input && !lingering) {
        // Close gracefully so that a client still sending its (refused) body reads our response instead
        // of a reset; the sweep ends lingering connections after 2 s.
        shutdown(fd, SHUT_WR);
        lingering = true;
        in.clear();
        last_active_ns = MonoNanos();
        UpdateInterest();
      } else if (!discard_input) {
        Close();
      }
    }
  }

  void Close() {
    if (closed) return;
    closed = true;
    Release();
    server.loop_.Remove(fd);
    close(fd);
    fd = -1;
    server.Forget(this);
  }
};

void Responder::Send(ServerResponse response) {
  if (fn_) {
    if (*fn_) {
      auto fn = std::move(*fn_);
      *fn_ = nullptr;
      fn(std::move(response));
    }
    return;
  }
  if (auto c = c_.lock()) c->Respond(std::move(response));
  c_.reset();
}

StreamWriter Responder::StartStream(ServerResponse head) {
  if (fn_) {
    Send(std::move(head));
    return {};
  }
  auto c = c_.lock();
  c_.reset();
  if (!c || !c->StartStream(std::move(head))) return {};
  return StreamWriter(c);
}

bool StreamWriter::Write(std::string_view bytes) {
  if (fn_) {
    if (*fn_ && !(*fn_)(bytes)) *fn_ = nullptr;
    return static_cast<bool>(*fn_);
  }
  auto c = c_.lock();
  return c && c->WriteStream(bytes);
}

void StreamWriter::End() {
  if (fn_) *fn_ = nullptr;
  if (auto c = c_.lock()) c->EndStream();
  c_.reset();
}

bool StreamWriter::alive() const {
  if (fn_) return static_cast<bool>(*fn_);
  auto c = c_.lock();
  return c && !c->closed && c->streaming;
}

size_t StreamWriter::backlog() const {
  auto c = c_.lock();
  return c ? c->out.size() : 0;
}

bool Responder::alive() const {
  if (fn_) return static_cast<bool>(*fn_);
  auto c = c_.lock();
  return c && !c->closed;
}

HttpServer::HttpServer(net::EventLoop& loop, ServerOptions options, Handler handler, HeadCheck head_check)
    : loop_(loop),
      options_(std::move(options)),
      handler_(std::move(handler)),
      head_check_(std::move(head_check)) {}

HttpServer::~HttpServer() {
  loop_.Cancel(&sweep_);
  loop_.Cancel(&accept_pause_);
  for (const auto& [raw, c] : connections_) {
    if (!c->closed) {
      c->closed = true;
      loop_.Remove(c->fd);
    }
  }
  connections_.clear();
  lru_.clear();
  if (listen_fd_ >= 0) {
    loop_.Remove(listen_fd_);
    close(listen_fd_);
  }
  if (reserve_fd_ >= 0) close(reserve_fd_);
}

Result<void> HttpServer::Listen(const net::Endpoint& at) {
  auto fd = net::Listen(at, false, 1024);
  if (!fd.ok()) return fd.error();
  listen_fd_ = *fd;
  port_ = net::LocalEndpoint(listen_fd_).port();
  if (auto r = loop_.Add(listen_fd_, EPOLLIN, this); !r.ok()) return r.error();
  reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  cap_ = options_.max_connections;
  if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    const auto limit = static_cast<size_t>(files.rlim_cur);
    const size_t spare = std::min<size_t>(64, limit / 2);
    cap_ = std::max<size_t>(1, std::min(cap_, limit - spare));
  }
  sweep_.set([this] {
    const int64_t now = MonoNanos();
    std::vector<std::shared_ptr<ServerConnectionState>> idle, late;
    for (const auto& [raw, c] : connections_) {
      if (c->lingering) {
        if (now - c->last_active_ns > kLingerNs) idle.push_back(c);
      } else if (now - c->last_active_ns > options_.idle_timeout_ns && (!c->busy || !c->out.empty())) {
        idle.push_back(c);  // quiet, or not reading what we answered
      } else if (!c->busy && c->request_started_ns != 0 &&
                 now - c->request_started_ns > options_.request_timeout_ns) {
        late.push_back(c);
      }
    }
    for (const auto& c : idle) c->Close();
    for (const auto& c : late) {
      if (!c->closed && !c->busy) {
        c->Fail(408, "request_timeout",
                fmt::format("the request was not complete within {} s",
                            options_.request_timeout_ns / 1'000'000'000));
      }
    }
    loop_.Schedule(&sweep_, now + kSweepNs);
  });
  loop_.Schedule(&sweep_, MonoNanos() + kSweepNs);
  return {};
}

size_t HttpServer::buffered_input_bytes() const {
  size_t n = 0;
  for (const auto& [raw, c] : connections_) n += c->in.size();
  return n;
}

void HttpServer::Touch(ServerConnectionState* c) { lru_.splice(lru_.end(), lru_, c->lru_pos); }

bool HttpServer::CloseOldestIdle() {
  for (ServerConnectionState* c : lru_) {
    if (c->busy && !c->lingering) continue;  // with the handler: a long poll, an allocation that waits
    ++evicted_;
    const int64_t now = MonoNanos();
    if (now - evicted_logged_ns_ > 10'000'000'000) {  // under a flood, one line per 10 s
      LogWarn("at the connection limit ({} open, at most {}): closed {} least recently active connection(s)",
              connections_.size(), cap_, evicted_);
      evicted_logged_ns_ = now;
      evicted_ = 0;
    }
    auto keep = connections_.at(c);
    keep->Close();
    return true;
  }
  return false;
}

void HttpServer::Refuse(int fd) {
  static const std::string kBusy = [] {
    const std::string body = ErrorBody("busy", "the server has as many connections as it may; retry shortly");
    return fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
  }();
  (void)!net::SendNoSignal(fd, kBusy.data(), kBusy.size());
  close(fd);
}

void HttpServer::OnIo(uint32_t) {
  while (true) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EMFILE && errno != ENFILE) return;  // EAGAIN: all accepted
      // Out of descriptors: make room by closing the least recently active idle connection; with none,
      // accept with the reserve descriptor and refuse, so that the listener does not stay readable.
      if (CloseOldestIdle()) continue;
      if (reserve_fd_ >= 0) {
        close(reserve_fd_);
        reserve_fd_ = -1;
        const int refused = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (refused >= 0) Refuse(refused);
        reserve_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (refused >= 0) continue;
      }
      // Not even that: stop accepting for a moment instead of spinning on a readable listener.
      LogWarn("out of file descriptors with {} connections open: pausing accepts", connections_.size());
      (void)loop_.Modify(listen_fd_, 0, this);
      accept_pause_.set([this] { (void)loop_.Modify(listen_fd_, EPOLLIN, this); });
      loop_.Schedule(&accept_pause_, MonoNanos() + kAcceptPauseNs);
      return;
    }
    if (connections_.size() >= cap_ && !CloseOldestIdle()) {
      Refuse(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    net::Endpoint ep;
    ep.addr = addr;
    ep.len = len;
    auto c = std::make_shared<ServerConnectionState>(*this, fd, ep.ToString());
    c->last_active_ns = MonoNanos();
    c->interest = EPOLLIN | EPOLLRDHUP;
    if (!loop_.Add(fd, c->interest, c.get()).ok()) continue;
    c->lru_pos = lru_.insert(lru_.end(), c.get());
    connections_.emplace(c.get(), std::move(c));
  }
}

void HttpServer::Forget(ServerConnectionState* c) {
  // Keep the object alive until the current event batch ends: its OnIo may still be on the stack.
  auto it = connections_.find(c);
  if (it == connections_.end()) return;
  lru_.erase(c->lru_pos);
  auto keep = std::move(it->second);
  connections_.erase(it);
  loop_.Defer([keep] {});
}

}  // namespace meridian::http
