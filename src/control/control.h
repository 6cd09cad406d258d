#pragma once
// The control plane (DESIGN §3, §6, §10): the /v1 JSON API with scoped bearer tokens (one route table for
// runs, agents and leases; docs/api.md lists it), the agent registry, the persisted run orchestrator (created
// → preparing → ready → running → draining → cleaning → passed | failed | aborted | errored), interval
// ingest, thresholds and summaries. Single-threaded: everything runs on the loop thread that owns the store.
// A control plane restarted mid-run reloads its active runs from the store.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/server.h"
#include "net/event_loop.h"
#include "store/store.h"

namespace meridian::control {

// Scopes: runs:read runs:write agent env:allocate env:admin.
struct TokenSpec {
  std::string name;
  std::string hash_hex;  // SHA-256 of the secret (as server.yaml gives it); the secret itself is never stored
  std::vector<std::string> scopes;
};

// How long finished things are kept (0: forever); pruned in small batches while the server runs.
struct Retention {
  int64_t runs_ns = 90 * 86400 * 1'000'000'000LL;         // ended runs: rows, reports and runs/ID/ folders
  int64_t allocations_ns = 90 * 86400 * 1'000'000'000LL;  // ended allocations
  int64_t audit_ns = 400 * 86400 * 1'000'000'000LL;       // audit rows
};

struct ServerConfig {
  std::string listen = "127.0.0.1:7070";
  std::string store = "sqlite:.meridian/meridian.db";
  std::string data_dir;  // per-run artefacts (DIR/runs/ID/...) and server.key; empty: next to the SQLite file
  std::vector<TokenSpec> tokens;
  size_t max_body_bytes = 8 * 1024 * 1024;  // plans, reports, done; every other route takes at most 64 KiB
  size_t max_headers = 100;
  double requests_per_second = 1000;  // per token, with a burst of twice that (releases are not limited)
  int64_t long_poll_ns = 2'000'000'000;
  std::string registry;  // the environment registry (YAML), synced at start and on Reload(); "" = none
  std::vector<std::string> token_env;  // the variables tokens were read from (hidden from hooks)
  // Limits (docs/security.md).
  size_t max_connections = 4096;
  size_t max_buffered_bytes = 256 * 1024 * 1024;  // request bodies held at once, all connections
  int64_t request_timeout_ns = 30'000'000'000;    // a request's first byte to its last
  uint32_t max_active_runs_per_token = 20;
  uint32_t max_agents = 10'000;  // registered at once (429 beyond)
  int64_t forget_agents_after_ns =
      24 * 3600 * 1'000'000'000LL;  // an idle agent not seen this long is removed
  uint32_t max_waiting_allocations_per_token = 200;
  int64_t max_ready_timeout_ns = 3600 * 1'000'000'000LL;
  Retention retention;
};

// Reads server.yaml (strict; errors name file:line and the field). Token secrets come from `sha256:`, a
// `token_file` or a `token_env` variable; they are hashed at once.
Result<ServerConfig> LoadServerConfig(const std::string& path);

std::string HashToken(const std::string& token);  // lower-case hex SHA-256
std::string NewToken();                           // 32 random bytes, hex
bool ValidScope(const std::string& scope);
// Lower-case hex HMAC-SHA-256 of `data` under `key`: how token hashes and agent secrets are kept, so that the
// store alone (a copy of meridian.db) does not let anyone test guesses.
std::string KeyedHash(const std::string& key, const std::string& data);
// The server's key: DIR/server.key (32 random bytes, 0600), created on first use.
Result<std::string> LoadOrCreateServerKey(const std::string& dir);

// One row of the route table, for docs and tests: "GET", "/v1/runs/{id}", "runs:read" ("any", "a or b").
struct RouteInfo {
  std::string method;
  std::string pattern;
  std::string scopes;
  std::string summary;
};

class ControlPlane {
 public:
  ControlPlane(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config);
  ~ControlPlane();
  // Syncs tokens, resumes active runs, listens. Call on the loop thread before loop.Run().
  Result<void> Start();
  uint16_t port() const;
  // Re-reads the environment registry (SIGHUP). On the loop thread.
  Result<void> Reload();
  // What the HTTP adapter calls, on the loop thread: the head check (token, rate, the route's body limit),
  // then the request. For in-process callers and the API fuzz target (with a function Responder).
  std::optional<http::ServerResponse> CheckHead(const http::ServerRequest& head, size_t* max_body);
  void Handle(http::ServerRequest& request, http::Responder out);
  // A one-time dashboard login code standing for `token` until `ttl_ns` from now (POST /v1/dashboard/login
  // exchanges it). On the loop thread, or before it runs.
  void AddLoginCode(const std::string& code, const std::string& token, int64_t ttl_ns);
  // The route table (runs, agents, leases), once Start() built it.
  std::vector<RouteInfo> Routes() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::control
