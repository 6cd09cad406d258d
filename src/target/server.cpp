#include <fmt/format.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "target/target_internal.h"

namespace meridian::target {

Worker::Worker(Shared& shared, int index, int listen_fd)
    : shared_(shared),
      listen_fd_(listen_fd),
      rng_(shared.options.seed * 7919 + static_cast<uint64_t>(index)) {}

Worker::~Worker() {
  for (Connection* c : connections_) delete c;
  if (listen_fd_ >= 0) close(listen_fd_);
}

Result<void> Worker::Init() {
  if (auto r = loop_.Init(); !r.ok()) return r;
  loop_.AddDeadlineList(&idle_);
  body_pattern_.clear();
  while (body_pattern_.size() < 64 * 1024) body_pattern_ += "hello world\n";
  ResponseSpec plain;
  plain.body_bytes = shared_.options.body_bytes;
  AppendResponse(default_response_, plain, body_pattern_);
  return loop_.Add(listen_fd_, EPOLLIN, this);
}

void Worker::Run() {
  thread_ = std::thread([this] {
    prctl(PR_SET_TIMERSLACK, 1UL);  // precise response delays
    loop_.set_timer_spin(shared_.options.timer_spin_ns);
    loop_.Run();
  });
}

void Worker::Stop() {
  loop_.Post([this] { loop_.Stop(); });
}

void Worker::Forget(Connection* c) { connections_.erase(c); }

void Worker::OnIo(uint32_t) {
  for (int i = 0; i < 256; ++i) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) LogWarn("target: cannot accept: too many open files");
      return;
    }
    counters_.accepted.Add(1);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    SSL* ssl = nullptr;
    if (shared_.tls) {
      ssl = SSL_new(shared_.tls->get());
      SSL_set_fd(ssl, fd);
      SSL_set_accept_state(ssl);
    }
    auto* c = new Connection(*this, fd, ssl);
    connections_.insert(c);
    if (!loop_.Add(fd, EPOLLIN | EPOLLRDHUP, c).ok()) {
      connections_.erase(c);
      delete c;
      close(fd);
      continue;
    }
    c->Start();
  }
}

TargetStats CollectStats(Shared& shared) {
  TargetStats s;
  for (const auto& w : shared.workers) {
    WorkerCounters& c = w->counters();
    s.requests += c.requests.Get();
    s.responses_5xx += c.responses_5xx.Get();
    s.connections_accepted += c.accepted.Get();
    s.connections_open += c.accepted.Get() - c.closed.Get();
    s.tls_handshakes += c.tls_handshakes.Get();
    s.bytes_received += c.bytes_in.Get();
    s.bytes_sent += c.bytes_out.Get();
  }
  std::lock_guard lock(shared.sni_mu);
  s.sni = shared.sni;
  return s;
}

std::string StatsToJson(const TargetStats& s) {
  nlohmann::json j = {
      {"requests", s.requests},
      {"responses_5xx", s.responses_5xx},
      {"connections_accepted", s.connections_accepted},
      {"connections_open", s.connections_open},
      {"tls_handshakes", s.tls_handshakes},
      {"bytes_received", s.bytes_received},
      {"bytes_sent", s.bytes_sent},
      {"sni", s.sni},
  };
  return JsonText(j);
}

class TargetServer::Impl {
 public:
  Shared shared;
  bool stopped = false;
  bool joined = false;
};

TargetServer::TargetServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TargetServer::~TargetServer() {
  Stop();
  Wait();
}

Result<std::unique_ptr<TargetServer>> TargetServer::Start(const TargetOptions& options) {
  auto impl = std::make_unique<Impl>();
  Shared& shared = impl->shared;
  shared.options = options;
  if (options.threads < 0 || options.threads > 1024) {
    return MakeError(ErrorCode::kInvalidArgument, "--threads must be between 1 and 1024");
  }
  if (options.body_bytes < 0 || options.body_bytes > 64LL * 1024 * 1024) {
    return MakeError(ErrorCode::kInvalidArgument, "--body must be between 0 and 64MiB");
  }
  if (options.error_rate < 0 || options.error_rate > 1) {
    return MakeError(ErrorCode::kInvalidArgument, "--error-rate must be between 0 and 1 (e.g. 0.01 for 1%)");
  }
  if (options.latency_max_ns < options.latency_min_ns) {
    return MakeError(ErrorCode::kInvalidArgument, "--latency range must be MIN-MAX with MIN <= MAX");
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "--tls-cert and --tls-key must be given together");
  }
  if (!options.tls_cert.empty()) {
    auto tls = net::TlsContext::Server(options.tls_cert, options.tls_key);
    if (!tls.ok()) return tls.error();
    shared.tls = std::move(tls).value();
  }
  auto at = net::ParseListenAddress(options.listen);
  if (!at.ok()) return at.error();
  int threads = options.threads;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  net::RaiseFileLimit();
  net::IgnoreSigpipe();

  // The first listener picks the port (port 0 included); the others join it with SO_REUSEPORT.
  net::Endpoint endpoint = *at;
  for (int i = 0; i < threads; ++i) {
    auto fd = net::Listen(endpoint, /*reuse_port=*/true);
    if (!fd.ok()) return fd.error();
    if (i == 0) endpoint = net::LocalEndpoint(*fd);
    shared.workers.push_back(std::make_unique<Worker>(shared, i, *fd));
    if (auto r = shared.workers.back()->Init(); !r.ok()) return r.error();
  }
  shared.endpoint = endpoint;
  for (auto& w : shared.workers) w->Run();
  return std::unique_ptr<TargetServer>(new TargetServer(std::move(impl)));
}

const net::Endpoint& TargetServer::endpoint() const { return impl_->shared.endpoint; }
bool TargetServer::tls() const { return impl_->shared.tls != nullptr; }
TargetStats TargetServer::Stats() const { return CollectStats(impl_->shared); }
std::string TargetServer::StatsJson() const { return StatsToJson(Stats()); }

void TargetServer::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  for (auto& w : impl_->shared.workers) w->Stop();
}

void TargetServer::Wait() {
  if (impl_->joined) return;
  for (auto& w : impl_->shared.workers) {
    if (w->thread_.joinable()) w->thread_.join();
  }
  impl_->joined = true;
}

}  // namespace meridian::target
