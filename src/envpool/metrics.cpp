// The lease service's Prometheus metrics (GET /metrics, beside the control plane's own).

#include <fmt/format.h>

#include "envpool/leases.h"

namespace meridian::envpool {
namespace {

void WriteHistogram(std::string& out, const SecondsHistogram& h, const std::string& name,
                    const std::string& labels) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < std::size(SecondsHistogram::kBounds); ++i) {
    cumulative += h.counts[i];
    out +=
        fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, SecondsHistogram::kBounds[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.total);
  out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, h.sum, name, labels, h.total);
}

}  // namespace

std::string LeaseMetrics(Leases& leases) {
  std::string out;
  auto envs = leases.Environments("", std::nullopt);
  out +=
      "# HELP meridian_env_environments Environments by pool and state.\n"
      "# TYPE meridian_env_environments gauge\n";
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
    for (const auto& [state, n] : counts) {
      out += fmt::format("meridian_env_environments{{pool=\"{}\",state=\"{}\"}} {}\n", name, state, n);
    }
  }
  out +=
      "# HELP meridian_env_queue_length Allocation requests waiting in the pool's FIFO queue.\n"
      "# TYPE meridian_env_queue_length gauge\n";
  for (const auto& [name, pool] : leases.pools()) {
    out += fmt::format("meridian_env_queue_length{{pool=\"{}\"}} {}\n", name, pool.Waiting());
  }
  out +=
      "# HELP meridian_env_cleanups_running Cleanup commands running now.\n"
      "# TYPE meridian_env_cleanups_running gauge\n";
  for (const auto& [name, pool] : leases.pools()) {
    out += fmt::format("meridian_env_cleanups_running{{pool=\"{}\"}} {}\n", name, pool.cleanups_running);
  }
  out +=
      "# HELP meridian_env_wait_seconds Time from an allocation request to its allocation.\n"
      "# TYPE meridian_env_wait_seconds histogram\n";
  for (const auto& [name, pool] : leases.pools()) {
    WriteHistogram(out, pool.wait, "meridian_env_wait_seconds", fmt::format("pool=\"{}\"", name));
  }
  out +=
      "# HELP meridian_env_cleanup_seconds Cleanup command durations.\n"
      "# TYPE meridian_env_cleanup_seconds histogram\n";
  for (const auto& [name, pool] : leases.pools()) {
    WriteHistogram(out, pool.cleanup, "meridian_env_cleanup_seconds", fmt::format("pool=\"{}\"", name));
  }
  out +=
      "# HELP meridian_env_deallocations_total Ended allocations by outcome.\n"
      "# TYPE meridian_env_deallocations_total counter\n";
  for (const auto& [name, pool] : leases.pools()) {
    for (const auto& [outcome, n] : pool.outcomes) {
      out += fmt::format("meridian_env_deallocations_total{{pool=\"{}\",outcome=\"{}\"}} {}\n", name, outcome,
                         n);
    }
  }
  out +=
      "# HELP meridian_env_requests_total Allocation requests by result.\n"
      "# TYPE meridian_env_requests_total counter\n";
  for (const auto& [name, pool] : leases.pools()) {
    for (const auto& [result, n] : pool.requests) {
      out += fmt::format("meridian_env_requests_total{{pool=\"{}\",result=\"{}\"}} {}\n", name, result, n);
    }
  }
  return out;
}

}  // namespace meridian::envpool
