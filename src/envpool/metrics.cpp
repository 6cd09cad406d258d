// The lease service's Prometheus metrics (GET /metrics, beside the control plane's own).

#include <fmt/format.h>

#include <map>

#include "envpool/leases.h"

namespace meridian::envpool {

void LeaseMetrics(Leases& leases, PrometheusText& out) {
  auto envs = leases.Environments("", std::nullopt);
  out.Family("meridian_env_environments", "gauge", "Environments by pool and state.");
  for (const auto& [name, pool] : leases.pools()) {
    std::map<std::string, int> counts = {
        {"available", 0}, {"allocated", 0}, {"cleaning", 0}, {"dirty", 0}, {"draining", 0}};
    if (envs.ok()) {
      for (const auto& e : *envs) {
        if (e.pool != name || e.state == store::EnvState::kRetired) continue;
        ++counts[store::EnvStateName(e.state)];
        if (e.draining) ++counts["draining"];
      }
    }
    for (const auto& [state, n] : counts)
      out.Sample("meridian_env_environments", {{"pool", name}, {"state", state}}, n);
  }
  out.Family("meridian_env_queue_length", "gauge", "Allocation requests waiting in the pool's FIFO queue.");
  for (const auto& [name, pool] : leases.pools()) {
    out.Sample("meridian_env_queue_length", {{"pool", name}}, static_cast<double>(pool.Waiting()));
  }
  out.Family("meridian_env_cleanups_running", "gauge", "Cleanup commands running now.");
  for (const auto& [name, pool] : leases.pools()) {
    out.Sample("meridian_env_cleanups_running", {{"pool", name}}, static_cast<double>(pool.cleanups_running));
  }
  const auto histograms = [&](const char* metric, const char* help, SecondsHistogram Leases::Pool::*h) {
    out.Family(metric, "histogram", help);
    for (const auto& [name, pool] : leases.pools()) {
      const SecondsHistogram& s = pool.*h;
      out.Histogram(metric, {{"pool", name}}, SecondsHistogram::kBounds, s.counts, s.sum);
    }
  };
  histograms("meridian_env_wait_seconds", "Time from an allocation request to its allocation.",
             &Leases::Pool::wait);
  histograms("meridian_env_cleanup_seconds", "Cleanup command durations.", &Leases::Pool::cleanup);
  out.Family("meridian_env_deallocations_total", "counter", "Ended allocations by outcome.");
  for (const auto& [name, pool] : leases.pools()) {
    for (const auto& [outcome, n] : pool.outcomes) {
      out.Sample("meridian_env_deallocations_total", {{"pool", name}, {"outcome", outcome}},
                 static_cast<double>(n));
    }
  }
  out.Family("meridian_env_requests_total", "counter", "Allocation requests by result.");
  for (const auto& [name, pool] : leases.pools()) {
    for (const auto& [result, n] : pool.requests) {
      out.Sample("meridian_env_requests_total", {{"pool", name}, {"result", result}}, static_cast<double>(n));
    }
  }
}

}  // namespace meridian::envpool
