#pragma once
// Test-environment leases (DESIGN §9): pools of registered environments, all-or-nothing allocation (least
// recently used first, `require` on capabilities), a fair FIFO wait or 423 + Retry-After, idempotency keys,
// renewal up to the pool's maximum, credentials and revoke hooks, cleanup under a deadline with bounded
// concurrency (failure → dirty until reinstated), the reaper for expired leases, grow mode, draining, an
// append-only audit table and Prometheus metrics.
//
// EnvPool is the HTTP face the control plane holds (api.cpp): routes, request checks, JSON and the statuses
// of the lease core's errors. The core (leases.h, private to this module) does the rest with no HTTP inside,
// on an injected clock and hook runner; EnvPool gives it the system clock and real hook processes (runner.h).
// Single-threaded: everything runs on the control plane's loop thread; hook commands run on their own
// threads and report back to it.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/prometheus.h"
#include "core/result.h"
#include "envpool/options.h"
#include "envpool/registry.h"
#include "http/router.h"
#include "net/event_loop.h"
#include "store/store.h"

namespace meridian::envpool {

class EnvPool {
 public:
  EnvPool(net::EventLoop& loop, store::Store& store, Options options);
  ~EnvPool();

  // Loads the pools from the store, syncs the registry file (if any), resumes interrupted cleanups.
  Result<void> Start();
  // Re-reads the registry file (SIGHUP). A bad file changes nothing and is logged with file:line.
  Result<void> Reload();
  // Applies a registry: new environments become available, changed ones are updated, removed ones drain and
  // are deleted once free and clean. Returns what changed.
  Result<nlohmann::ordered_json> Sync(const Registry& registry, const std::string& principal);

  // Adds the lease routes (allocations, pools, environments, audit) to the control plane's table, with their
  // scopes: env:allocate or env:admin, and env:admin alone for drain, reinstate, sync and the audit log.
  Result<void> AddRoutes(http::Router& router);

  // Reaper, wait time-outs, cleanup deadlines; call periodically on the loop thread.
  void Tick();
  // Prometheus text exposition: environments by state, queue length, wait and cleanup histograms, outcomes.
  void Metrics(PrometheusText& out);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meridian::envpool
