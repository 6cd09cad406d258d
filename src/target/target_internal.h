#pragma once
// Internals of the target server: shared state, per-thread workers and their connections.

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "http/request_parser.h"
#include "http/response_parser.h"
#include "net/event_loop.h"
#include "net/socket.h"
#include "net/tls.h"
#include "target/target.h"

namespace meridian::target {

class Worker;

// A counter written by one thread and read by others: no read-modify-write on the hot path.
struct OwnedCounter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return v.load(std::memory_order_relaxed); }
};

struct WorkerCounters {
  OwnedCounter requests, responses_5xx, accepted, closed, tls_handshakes, bytes_in, bytes_out;
};

// State shared by all workers; written rarely.
struct Shared {
  TargetOptions options;
  std::unique_ptr<net::TlsContext> tls;
  net::Endpoint endpoint;
  std::atomic<int64_t> first_request_ns{0};
  std::atomic<int64_t> pause_start_ns{INT64_MAX};
  std::atomic<int64_t> pause_end_ns{INT64_MIN};
  std::mutex sni_mu;  // taken once per TLS handshake, never per request
  std::map<std::string, uint64_t> sni;
  std::vector<std::unique_ptr<Worker>> workers;

  // When a response computed at `now` and due at `due` may leave, given the pause window.
  int64_t ApplyPause(int64_t now, int64_t due) const {
    const int64_t end = pause_end_ns.load(std::memory_order_relaxed);
    if (now >= end) return due;
    const int64_t start = pause_start_ns.load(std::memory_order_relaxed);
    return due >= start ? std::max(due, end) : due;
  }
  void PauseFor(int64_t start, int64_t length) {
    pause_start_ns.store(start, std::memory_order_relaxed);
    pause_end_ns.store(start + length, std::memory_order_relaxed);
  }
};

// What to send for one request, rendered when it is due.
struct ResponseSpec {
  int64_t due_ns = 0;
  int64_t body_bytes = 0;
  uint16_t status = 200;
  bool head = false;
  bool chunked = false;
  bool close = false;
  bool early_hints = false;
  bool plain_default = false;     // the prebuilt default response
  std::string* custom = nullptr;  // admin responses: complete bytes, owned here
};

// A request under /api/ (api.cpp), answered once its body is in.
struct ApiRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;
};
// The complete response bytes.
std::string RenderApi(const ApiRequest& r);

class Connection final : public net::IoHandler, public net::DeadlineNode, public net::Timer {
 public:
  Connection(Worker& worker, int fd, SSL* ssl);
  ~Connection() override;
  void Start();

  void OnIo(uint32_t events) override;
  void OnDeadline() override;  // idle time-out
  void OnTimer() override;     // the first pending response is due

 private:
  void Handshake();
  void ReadAll();
  void Process(const char* data, size_t len);
  // Returns bytes consumed from data; sets stop_reading_ on fatal request errors or Connection: close.
  size_t ProcessOne(const char* data, size_t len);
  void HandleRequest(const http::RequestHead& head);
  void AnswerApi(std::unique_ptr<ApiRequest> r);
  void Enqueue(ResponseSpec spec);
  void FlushDue(int64_t now);
  void Render(const ResponseSpec& spec);
  void Write();
  void Close();

  Worker& worker_;
  int fd_;
  SSL* ssl_;
  bool handshaking_;
  bool closing_ = false;       // close once `out_` is written
  bool stop_reading_ = false;  // a request asked to close: ignore further input
  bool want_write_ = false;
  bool in_body_ = false;
  bool closed_ = false;
  std::string in_;                     // an incomplete request head carried to the next read
  std::string out_;                    // rendered bytes not yet written
  std::vector<ResponseSpec> pending_;  // responses waiting for their due time, in request order
  size_t pending_head_ = 0;
  int64_t last_due_ns_ = 0;
  http::ResponseParser body_;        // frames request bodies
  std::unique_ptr<ApiRequest> api_;  // an /api/ request waiting for its body
};

class Worker final : public net::IoHandler {
 public:
  Worker(Shared& shared, int index, int listen_fd);
  ~Worker() override;
  Result<void> Init();
  void Run();
  void Stop();
  void OnIo(uint32_t events) override;  // the listener is readable

  Shared& shared() { return shared_; }
  net::EventLoop& loop() { return loop_; }
  net::DeadlineList& idle_list() { return idle_; }
  WorkerCounters& counters() { return counters_; }
  std::string& read_buffer() { return read_buffer_; }
  const std::string& default_response() const { return default_response_; }
  const std::string& body_pattern() const { return body_pattern_; }
  double Uniform() { return uniform_(rng_); }
  void Forget(Connection* c);

 private:
  Shared& shared_;
  int listen_fd_;
  net::EventLoop loop_;
  net::DeadlineList idle_;
  WorkerCounters counters_;
  std::string read_buffer_ = std::string(64 * 1024, '\0');
  std::string default_response_;
  std::string body_pattern_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  std::unordered_set<Connection*> connections_;
  std::thread thread_;
  friend class TargetServer;
};

// The counters of every worker as one JSON object (for /__admin/stats).
TargetStats CollectStats(Shared& shared);
std::string StatsToJson(const TargetStats& stats);

// The status line reason for a code ("OK", "Not Found", ...).
const char* ReasonPhrase(int status);

// Appends a complete response to out. `pattern` supplies body bytes (repeated).
void AppendResponse(std::string& out, const ResponseSpec& spec, const std::string& pattern);

}  // namespace meridian::target
