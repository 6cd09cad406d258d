#include <fmt/format.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "core/clock.h"
#include "core/duration.h"
#include "target/target_internal.h"

namespace meridian::target {

using http::ParseStatus;
using http::RequestHead;

namespace {
constexpr int64_t kMaxBodyBytes = 64LL * 1024 * 1024;
}

Connection::Connection(Worker& worker, int fd, SSL* ssl)
    : worker_(worker), fd_(fd), ssl_(ssl), handshaking_(ssl != nullptr) {}

Connection::~Connection() {
  if (ssl_) SSL_free(ssl_);
  for (size_t i = pending_head_; i < pending_.size(); ++i) delete pending_[i].custom;
}

void Connection::Start() {
  const int64_t idle = worker_.shared().options.idle_timeout_ns;
  if (idle > 0) worker_.idle_list().Arm(this, MonoNanos() + idle);
  if (handshaking_) Handshake();
}

void Connection::OnIo(uint32_t events) {
  if (closed_) return;
  if (handshaking_) {
    Handshake();
    return;
  }
  if ((events & EPOLLOUT) && !out_.empty()) Write();
  if (closed_) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ReadAll();
}

void Connection::Handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    handshaking_ = false;
    worker_.counters().tls_handshakes.Add(1);
    const char* sni = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    {
      std::lock_guard lock(worker_.shared().sni_mu);
      ++worker_.shared().sni[sni ? sni : ""];
    }
    ReadAll();
    return;
  }
  const int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    const bool write = e == SSL_ERROR_WANT_WRITE;
    if (write != want_write_) {
      want_write_ = write;
      (void)worker_.loop().Modify(fd_, EPOLLIN | EPOLLRDHUP | (write ? EPOLLOUT : 0u), this);
    }
    return;
  }
  ERR_clear_error();
  Close();
}

void Connection::ReadAll() {
  std::string& buf = worker_.read_buffer();
  while (!closed_) {
    ssize_t n;
    if (ssl_) {
      ERR_clear_error();
      const int rc = SSL_read(ssl_, buf.data(), static_cast<int>(buf.size()));
      if (rc <= 0) {
        const int e = SSL_get_error(ssl_, rc);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_WANT_WRITE) break;
        ERR_clear_error();
        n = 0;
      } else {
        n = rc;
      }
    } else {
      n = net::Recv(fd_, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        n = 0;
      }
    }
    if (n == 0) {
      // The peer is gone (or half-closed): nothing more can be answered usefully.
      Close();
      return;
    }
    worker_.counters().bytes_in.Add(static_cast<uint64_t>(n));
    const int64_t idle = worker_.shared().options.idle_timeout_ns;
    if (idle > 0) worker_.idle_list().Arm(this, MonoNanos() + idle);
    if (!stop_reading_) Process(buf.data(), static_cast<size_t>(n));
    if (!ssl_ && static_cast<size_t>(n) < buf.size()) break;
  }
  if (!closed_ && !out_.empty()) Write();
}

void Connection::Process(const char* data, size_t len) {
  if (!in_.empty()) {
    in_.append(data, len);
    size_t used = 0;
    while (used < in_.size() && !stop_reading_) {
      const size_t n = ProcessOne(in_.data() + used, in_.size() - used);
      if (n == 0) break;
      used += n;
    }
    in_.erase(0, used);
    if (in_.size() > http::kMaxRequestHeadBytes + 1) in_.clear();
    return;
  }
  size_t used = 0;
  while (used < len && !stop_reading_) {
    const size_t n = ProcessOne(data + used, len - used);
    if (n == 0) {
      in_.assign(data + used, len - used);  // an incomplete head: keep it for the next read
      return;
    }
    used += n;
  }
}

size_t Connection::ProcessOne(const char* data, size_t len) {
  if (in_body_) {
    const size_t n = body_.Feed(data, len);
    if (body_.failed()) {
      ResponseSpec bad;
      bad.status = 400;
      bad.close = true;
      bad.body_bytes = 0;
      bad.due_ns = MonoNanos();
      Enqueue(bad);
      stop_reading_ = true;
      return len;
    }
    if (body_.complete()) {
      in_body_ = false;
      if (api_) {
        body_.CaptureBody(nullptr, 0);
        AnswerApi(std::move(api_));
      }
    }
    return n;
  }
  RequestHead head;
  const char* error = nullptr;
  switch (http::ParseRequestHead(std::string_view(data, len), head, &error)) {
    case ParseStatus::kIncomplete:
      return 0;
    case ParseStatus::kError: {
      ResponseSpec bad;
      bad.status = std::string_view(error).find("too large") != std::string_view::npos ? 431 : 400;
      bad.close = true;
      bad.due_ns = MonoNanos();
      Enqueue(bad);
      stop_reading_ = true;
      return len;
    }
    case ParseStatus::kComplete:
      break;
  }
  if (head.content_length > kMaxBodyBytes) {
    ResponseSpec bad;
    bad.status = 413;
    bad.close = true;
    bad.due_ns = MonoNanos();
    Enqueue(bad);
    stop_reading_ = true;
    return len;
  }
  if (head.target.starts_with("/api/")) {
    http::HeaderViews views;
    http::ParseRequestHead(std::string_view(data, len), head, &error, &views);
    auto api = std::make_unique<ApiRequest>();
    api->method = std::string(head.method);
    api->target = std::string(head.target);
    for (const auto& [k, v] : views) api->headers.emplace_back(std::string(k), std::string(v));
    api->close = !head.keep_alive;
    if (!head.keep_alive) stop_reading_ = true;
    worker_.counters().requests.Add(1);
    if (head.chunked || head.content_length > 0) {
      api_ = std::move(api);
      body_.CaptureBody(&api_->body, static_cast<size_t>(kMaxBodyBytes));
      body_.BeginBody(head.chunked, static_cast<uint64_t>(std::max<int64_t>(head.content_length, 0)));
      in_body_ = true;
      if (head.expect_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    } else {
      AnswerApi(std::move(api));
    }
    return head.head_bytes;
  }
  if (head.chunked || head.content_length > 0) {
    body_.BeginBody(head.chunked, static_cast<uint64_t>(std::max<int64_t>(head.content_length, 0)));
    in_body_ = true;
    if (head.expect_continue) out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  HandleRequest(head);
  return head.head_bytes;
}

void Connection::AnswerApi(std::unique_ptr<ApiRequest> r) {
  ResponseSpec spec;
  spec.due_ns = MonoNanos();
  spec.close = r->close;
  spec.custom = new std::string(RenderApi(*r));
  Enqueue(spec);
}

void Connection::HandleRequest(const RequestHead& head) {
  Shared& shared = worker_.shared();
  const TargetOptions& opt = shared.options;
  const int64_t now = MonoNanos();
  ResponseSpec spec;
  spec.due_ns = now;
  spec.head = head.method == "HEAD";
  spec.close = !head.keep_alive;
  if (!head.keep_alive) stop_reading_ = true;

  if (opt.admin && head.target.starts_with("/__admin/")) {
    const std::string_view path = head.target.substr(0, head.target.find('?'));
    auto* body = new std::string();
    int status = 200;
    std::string text;
    if (path == "/__admin/stats") {
      text = StatsToJson(CollectStats(shared)) + "\n";
    } else if (path == "/__admin/health") {
      text = "ok\n";
    } else if (path == "/__admin/pause") {
      auto len = ParseDuration(http::QueryParam(head.target, "for"));
      if (head.method != "POST") {
        status = 405;
        text = "use POST /__admin/pause?for=1s\n";
      } else if (!len.ok() || *len <= 0) {
        status = 400;
        text = "pause needs ?for=DURATION, e.g. ?for=1s\n";
      } else {
        shared.PauseFor(now, *len);
        text = fmt::format("paused for {}\n", FormatDuration(*len));
      }
    } else {
      status = 404;
      text = "unknown admin path (stats, health, pause)\n";
    }
    fmt::format_to(std::back_inserter(*body),
                   "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n{}", status,
                   ReasonPhrase(status),
                   path == "/__admin/stats" && status == 200 ? "application/json" : "text/plain", text.size(),
                   spec.close ? "Connection: close\r\n" : "", text);
    spec.custom = body;
    Enqueue(spec);
    return;
  }

  worker_.counters().requests.Add(1);
  int64_t first = 0;
  if (opt.pause_at_ns >= 0 && shared.first_request_ns.load(std::memory_order_relaxed) == 0 &&
      shared.first_request_ns.compare_exchange_strong(first, now)) {
    shared.PauseFor(now + opt.pause_at_ns, opt.pause_for_ns);
  }

  spec.body_bytes = opt.body_bytes;
  int64_t delay = 0;
  bool plain = true;
  if (head.target.find('?') != std::string_view::npos) {
    bool found = false;
    const std::string_view status = http::QueryParam(head.target, "status", &found);
    if (found) {
      int code = 0;
      for (char c : status) code = (c >= '0' && c <= '9' && code < 1000) ? code * 10 + (c - '0') : 1000;
      spec.status = static_cast<uint16_t>(code >= 200 && code <= 599 ? code : 400);
      plain = false;
    }
    const std::string_view d = http::QueryParam(head.target, "delay", &found);
    if (found) {
      auto parsed = ParseDuration(d);
      if (parsed.ok()) delay = *parsed;
      if (!parsed.ok()) spec.status = 400;
      plain = false;
    }
    const std::string_view size = http::QueryParam(head.target, "size", &found);
    if (found) {
      auto parsed = ParseByteSize(size);
      if (parsed.ok() && *parsed <= kMaxBodyBytes) {
        spec.body_bytes = *parsed;
      } else {
        spec.status = 400;
      }
      plain = false;
    }
    http::QueryParam(head.target, "chunked", &found);
    if (found) spec.chunked = true, plain = false;
    http::QueryParam(head.target, "close", &found);
    if (found) spec.close = true, stop_reading_ = true, plain = false;
    http::QueryParam(head.target, "early_hints", &found);
    if (found) spec.early_hints = true, plain = false;
  }
  if (opt.error_rate > 0 && worker_.Uniform() < opt.error_rate) {
    spec.status = 500;
    plain = false;
  }
  if (spec.status >= 500) worker_.counters().responses_5xx.Add(1);
  int64_t latency = opt.latency_min_ns;
  if (opt.latency_max_ns > opt.latency_min_ns) {
    latency += static_cast<int64_t>(worker_.Uniform() *
                                    static_cast<double>(opt.latency_max_ns - opt.latency_min_ns));
  }
  spec.due_ns = shared.ApplyPause(now, now + latency + delay);
  spec.plain_default = plain && !spec.head && !spec.close;
  Enqueue(spec);
}

void Connection::Enqueue(ResponseSpec spec) {
  // Responses leave in request order: a response is never due before the one ahead of it.
  spec.due_ns = std::max(spec.due_ns, last_due_ns_);
  last_due_ns_ = spec.due_ns;
  const bool queue_empty = pending_head_ == pending_.size();
  if (queue_empty && spec.due_ns <= MonoNanos()) {
    Render(spec);
    return;
  }
  pending_.push_back(spec);
  if (queue_empty) worker_.loop().Schedule(this, spec.due_ns);
}

void Connection::Render(const ResponseSpec& spec) {
  if (spec.custom) {
    out_.append(*spec.custom);
    delete spec.custom;
  } else if (spec.plain_default) {
    out_.append(worker_.default_response());
  } else {
    AppendResponse(out_, spec, worker_.body_pattern());
  }
  if (spec.close) {
    closing_ = true;
    stop_reading_ = true;
  }
}

void Connection::OnTimer() {
  if (closed_) return;
  FlushDue(MonoNanos());
  if (!out_.empty()) Write();
}

void Connection::FlushDue(int64_t now) {
  while (pending_head_ < pending_.size() && pending_[pending_head_].due_ns <= now && !closing_) {
    Render(pending_[pending_head_]);
    ++pending_head_;
  }
  if (closing_) {
    for (size_t i = pending_head_; i < pending_.size(); ++i) delete pending_[i].custom;
    pending_head_ = pending_.size();
  }
  if (pending_head_ == pending_.size()) {
    pending_.clear();
    pending_head_ = 0;
  } else {
    worker_.loop().Schedule(this, pending_[pending_head_].due_ns);
  }
}

void Connection::Write() {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n;
    if (ssl_) {
      ERR_clear_error();
      const int rc = SSL_write(ssl_, out_.data() + done, static_cast<int>(out_.size() - done));
      if (rc <= 0) {
        const int e = SSL_get_error(ssl_, rc);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) break;
        ERR_clear_error();
        Close();
        return;
      }
      n = rc;
    } else {
      n = net::SendNoSignal(fd_, out_.data() + done, out_.size() - done);
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        Close();
        return;
      }
    }
    done += static_cast<size_t>(n);
  }
  worker_.counters().bytes_out.Add(done);
  out_.erase(0, done);
  const bool need_write = !out_.empty();
  if (need_write != want_write_) {
    want_write_ = need_write;
    (void)worker_.loop().Modify(fd_, EPOLLIN | EPOLLRDHUP | (need_write ? EPOLLOUT : 0u), this);
  }
  if (!need_write && closing_) {
    if (ssl_) SSL_shutdown(ssl_);
    shutdown(fd_, SHUT_WR);
    Close();
  }
}

void Connection::OnDeadline() {
  if (closed_) return;
  const bool busy = !out_.empty() || pending_head_ < pending_.size() || in_body_ || !in_.empty();
  if (busy) {
    worker_.idle_list().Arm(this, MonoNanos() + worker_.shared().options.idle_timeout_ns);
    return;
  }
  Close();
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  worker_.loop().Cancel(this);
  worker_.idle_list().Disarm(this);
  close(fd_);
  fd_ = -1;
  worker_.counters().closed.Add(1);
  worker_.Forget(this);
  worker_.loop().Defer([this] { delete this; });
}

}  // namespace meridian::target
