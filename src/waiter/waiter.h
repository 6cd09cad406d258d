#pragma once
// The waiter (DESIGN §6): holds a command until a run's start instant plus a delay, then execs it.
//
// START is a file (RUN.txt: epoch seconds with a fraction; or JSON with `start_at`, such as services.json) or
// the control plane's `GET /v1/runs/{id}/start` URL (404 until the instant is known; long-polled). The waiter
// retries with capped exponential backoff and jitter until START answers, works out the time left on its own
// clock (converting the control plane's clock by a measured offset), reports the skew, sleeps, and replaces
// itself with CMD, so signals sent to the waiter's process reach CMD (under meridian's agent it stays as
// CMD's keeper instead, so that the whole step goes when the agent does). It never waits past --timeout.
//
// Usable standalone in any container: `meridian waiter /shared/RUN.txt ws-swarm 10s -- ./ws-swarm --conns
// 5000`.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace meridian::waiter {

// What a START document says.
struct StartInfo {
  int64_t start_at_ns = 0;          // epoch ns, on the clock of whoever wrote START
  std::optional<int64_t> delay_ns;  // SERVICE_ID's own run_delay, when START lists services (services.json)
  std::optional<int64_t> server_now_ns;  // the control plane's clock when it answered (URL START only)
};

// Parses a START document. Returns nullopt while START does not know the instant yet (an empty file, or the
// control plane's answer without `start_at_ns`). Errors say what was expected and what was found; a services
// list that does not name `service_id` is an error listing the names it has. `source` names START in
// messages.
Result<std::optional<StartInfo>> ParseStart(const std::string& text, const std::string& service_id,
                                            const std::string& source);

struct Options {
  std::string start;  // file path or http(s) URL
  std::string service_id;
  int64_t delay_ns = 0;
  std::vector<std::string> command;             // empty: exit 0 at the instant
  int64_t timeout_ns = 3600 * 1'000'000'000LL;  // the longest the waiter waits in all
  std::string token;                            // bearer token for a URL START
  bool quiet = false;
};

// Exit statuses besides CMD's own (CMD replaces the waiter): 0 (no CMD), 1 START unusable (malformed, the run
// ended before it started, the token was refused), 124 --timeout expired, 126 CMD not executable, 127 CMD not
// found.
constexpr int kExitStartError = 1;
constexpr int kExitTimeout = 124;
constexpr int kExitNotExecutable = 126;
constexpr int kExitNotFound = 127;

// Waits and execs; returns only when it does not exec (an exit status). Messages go to stderr prefixed with
// "meridian waiter[SERVICE_ID]: ".
int Run(const Options& options);

}  // namespace meridian::waiter
