#pragma once
// The control plane (DESIGN §3, §6, §10): the /v1 JSON API with scoped bearer tokens, the agent registry, the
// persisted run orchestrator (created → preparing → ready → running → draining → cleaning → passed | failed |
// aborted | errored), interval ingest, thresholds and summaries. Single-threaded: everything runs on the loop
// thread that owns the store. A control plane restarted mid-run reloads its active runs from the store.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "net/event_loop.h"
#include "store/store.h"

namespace meridian::control {

// Scopes: runs:read runs:write agent env:allocate env:admin.
struct TokenSpec {
  std::string name;
  std::string hash_hex;  // SHA-256 of the secret; the secret itself is never stored
  std::vector<std::string> scopes;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:7070";
  std::string store = "sqlite:.meridian/meridian.db";
  std::string data_dir;  // per-run artefacts (DIR/runs/ID/...); empty: next to the SQLite file
  std::vector<TokenSpec> tokens;
  size_t max_body_bytes = 8 * 1024 * 1024;
  size_t max_headers = 100;
  double requests_per_second = 1000;  // per token, with a burst of twice that
  int64_t long_poll_ns = 2'000'000'000;
  std::string registry;  // the environment registry (YAML), synced at start and on Reload(); "" = none
};

// Reads server.yaml (strict; errors name file:line and the field). Token secrets come from `sha256:`, a
// `token_file` or a `token_env` variable; they are hashed at once.
Result<ServerConfig> LoadServerConfig(const std::string& path);

std::string HashToken(const std::string& token);  // lower-case hex SHA-256
std::string NewToken();                           // 32 random bytes, hex
bool ValidScope(const std::string& scope);

class ControlPlane {
 public:
  ControlPlane(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config);
  ~ControlPlane();
  // Syncs tokens, resumes active runs, listens. Call on the loop thread before loop.Run().
  Result<void> Start();
  uint16_t port() const;
  // Re-reads the environment registry (SIGHUP). On the loop thread.
  Result<void> Reload();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::control
