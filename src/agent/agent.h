#pragma once
// The agent (DESIGN §6): registers with the control plane (region, name, capacity), measures its clock
// offset NTP-style, long-polls for work, prepares its share of the plan (compile, resolve, preflight),
// reports ready, starts on its monotonic clock at the common start instant converted with the offset, reports
// one interval snapshot per second as (run, agent, seq), keeps unacknowledged reports and resends them after
// reconnecting, and sends done with its last seq. Embedded mode runs agents in-process over loopback.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/result.h"
#include "http/fetch.h"

namespace meridian::agent {

struct AgentOptions {
  std::string control_url;  // http://host:port
  std::string token;        // agent-scoped bearer token
  std::string region;
  std::string name;                             // default: hostname
  uint32_t workers = 0;                         // load threads; 0: one per CPU
  bool once = false;                            // exit after one run (embedded agents and tests)
  std::function<void(const std::string&)> log;  // progress lines; default: stderr
};

struct ClockSample {
  int64_t offset_ns = 0;  // control-plane clock minus agent clock
  int64_t rtt_ns = 0;
};

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();

  // Runs until Stop() (or, with `once`, until one run ended). Errors are configuration problems (bad URL).
  Result<void> Run();
  // Thread-safe: a running load ends gracefully, reports are flushed, done is sent, then Run returns.
  void Stop();
  // Thread-safe: give up waiting for the control plane (a second SIGTERM).
  void Abort();
  // Thread-safe (`meridian agent drain`, SIGUSR1): take no new work; a run in progress finishes; then the
  // agent deregisters (the control plane forgets it at once) and Run returns.
  void Drain();

  const std::string& id() const { return id_; }
  ClockSample clock() const { return clock_; }

 private:
  class RunExecution;
  bool Register();
  void Deregister();
  // A client for the control plane carrying the token and, once registered, the agent's secret.
  Result<http::BlockingClient> Client() const;
  ClockSample MeasureClock();
  void Log(const std::string& line);
  void Backoff(int attempt);

  AgentOptions options_;
  std::string id_;
  std::string secret_;  // issued at registration: proves to the control plane that this process is id_
  ClockSample clock_;
  uint64_t runs_ = 0;  // runs received (the clock is measured again before each after the first)
  int64_t long_poll_ns_ = 2'000'000'000;
  std::atomic<bool> stop_{false};
  std::atomic<bool> drain_{false};
  std::atomic<bool> abort_{false};
  std::mutex current_mu_;
  RunExecution* current_ = nullptr;
};

}  // namespace meridian::agent
