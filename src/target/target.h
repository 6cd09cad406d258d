#pragma once
// meridian target: the built-in HTTP/1.1 system under test used by the demo, the tests and the benchmarks.
// The public header of src/target.
//
// One event loop per thread, each with its own SO_REUSEPORT listener. Every response can be shaped:
//   server-wide  --body, --latency (fixed or a uniform range), --error-rate, --pause-at/--pause-for,
//   --idle-timeout per request  ?status=404 ?delay=20ms ?size=4k ?chunked ?close ?early_hints (query
//   parameters) admin        GET /__admin/stats (JSON counters), POST /__admin/pause?for=1s, GET
//   /__admin/health
// The pause holds every response due inside the window until it ends, which is how coordinated omission is
// shown.

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/result.h"
#include "net/socket.h"

namespace meridian::target {

struct TargetOptions {
  std::string listen = "127.0.0.1:8080";
  int threads = 0;             // 0: one per CPU
  int64_t body_bytes = 12;     // default response body ("hello world\n" repeated)
  int64_t latency_min_ns = 0;  // extra latency, uniform in [min, max]
  int64_t latency_max_ns = 0;
  double error_rate = 0;     // share of requests answered 500
  int64_t pause_at_ns = -1;  // pause starts this long after the first request (-1: never)
  int64_t pause_for_ns = 0;
  int64_t idle_timeout_ns = 60'000'000'000;  // close keep-alive connections idle this long (0: never)
  std::string tls_cert;                      // PEM; with tls_key enables https
  std::string tls_key;
  uint64_t seed = 1;                // seeds the error and latency draws
  int64_t timer_spin_ns = 300'000;  // poll instead of sleeping when a delayed response is due this soon
  bool admin = true;                // serve /__admin/*
};

struct TargetStats {
  uint64_t requests = 0;
  uint64_t responses_5xx = 0;
  uint64_t connections_accepted = 0;
  uint64_t connections_open = 0;
  uint64_t tls_handshakes = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  std::map<std::string, uint64_t> sni;  // TLS handshakes per server name sent by clients ("" for none)
};

class TargetServer {
 public:
  // Validates options, binds the listeners and starts the threads.
  static Result<std::unique_ptr<TargetServer>> Start(const TargetOptions& options);
  ~TargetServer();

  const net::Endpoint& endpoint() const;  // the bound address (the real port when listening on port 0)
  bool tls() const;
  TargetStats Stats() const;
  std::string StatsJson() const;
  void Stop();  // thread-safe, idempotent
  void Wait();

  class Impl;

 private:
  explicit TargetServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::target
