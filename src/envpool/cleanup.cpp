// The lease core's environments after a lease: the cleanup queue (bounded concurrency, a deadline, failure →
// dirty), revoking credentials, draining and reinstating, and reading environments and the audit.

#include <fmt/format.h>

#include <algorithm>

#include "core/duration.h"
#include "core/json.h"
#include "core/log.h"
#include "envpool/leases.h"

namespace meridian::envpool {

using nlohmann::json;
using store::EnvState;

const Credentials& Leases::CredentialsOf(const std::string& env_id, const std::string& pool) {
  const EnvironmentSpec& spec = Spec(env_id);
  return spec.credentials ? *spec.credentials : pools_[pool].spec.credentials;
}

bool Leases::HasRevoke(const store::AllocationRow& a) {
  const auto ids = EnvIds(a);
  return std::any_of(ids.begin(), ids.end(),
                     [&](const std::string& id) { return !CredentialsOf(id, a.pool).revoke.empty(); });
}

// Runs the revoke command of each environment with a revoke, with the credentials handed out (while this
// process still has them); when the last reports, the allocation's revoke is no longer pending.
void Leases::Revoke(const store::AllocationRow& a, const std::string& outcome) {
  auto cached = credentials_.find(a.id);
  auto left = std::make_shared<size_t>(0);
  std::vector<std::pair<std::string, std::string>> runs;  // environment, input
  for (const auto& id : EnvIds(a)) {
    if (CredentialsOf(id, a.pool).revoke.empty()) continue;
    nlohmann::ordered_json input = HookJson(id, a, outcome);
    if (cached != credentials_.end() && cached->second.contains(id))
      input["credentials"] = cached->second[id];
    runs.emplace_back(id, JsonText(input));
  }
  *left = runs.size();
  if (runs.empty()) return ClearRevoke(a);
  for (auto& [id, input] : runs) {
    hooks_.Start(CredentialsOf(id, a.pool).revoke, std::move(input), HookEnv(id, a.id),
                 [this, id = id, a, left](CommandResult r) {
                   Record({kSystem, "revoke", a.pool, a.id, id, r.ok() ? "ok" : "failed", r.Describe()});
                   if (!r.ok()) LogWarn("environment {}: the revoke command failed ({})", id, r.Describe());
                   if (--*left == 0) ClearRevoke(a);
                 });
  }
}

void Leases::ClearRevoke(const store::AllocationRow& a) {
  auto now = store_.GetAllocation(a.id);
  if (!now.ok() || !now->has_value() || !(*now)->revoke_pending) return;
  store::AllocationRow next = **now;
  next.revoke_pending = false;
  if (auto r = store_.UpdateAllocation(next, next.state); !r.ok()) {
    LogError("allocation {}: revoke done, not stored: {} (it runs again after a restart)", a.id,
             r.error().message);
  }
}

void Leases::QueueCleanup(const store::EnvironmentRow& e) {
  Pool& pool = pools_[e.pool];
  if (std::find(pool.cleanup_queue.begin(), pool.cleanup_queue.end(), e.id) == pool.cleanup_queue.end()) {
    pool.cleanup_queue.push_back(e.id);
  }
  StartCleanups(e.pool);
}

void Leases::StartCleanups(const std::string& name) {
  Pool& pool = pools_[name];
  while (!pool.cleanup_queue.empty() && pool.cleanups_running < pool.spec.cleanup_concurrency) {
    const std::string id = pool.cleanup_queue.front();
    pool.cleanup_queue.pop_front();
    auto got = store_.GetEnvironment(id);
    if (!got.ok() || !got->has_value() || (*got)->state != EnvState::kCleaning) continue;
    const store::EnvironmentRow row = **got;
    const EnvironmentSpec& spec = Spec(id);
    Command cmd = spec.cleanup ? *spec.cleanup : pool.spec.cleanup;
    cmd.timeout_ns = pool.spec.cleanup.timeout_ns;
    if (cmd.empty()) {  // the pool lost its cleanup command in a sync: nothing to run
      FinishCleanup(row, CommandResult{0, 0, false, "", "", 0, "", 0}, true);
      continue;
    }
    store::EnvironmentRow next = row;
    next.cleanup_attempts += 1;
    next.cleanup_deadline_ns = clock_.Wall() + cmd.timeout_ns;
    auto r = store_.UpdateEnvironment(next, EnvState::kCleaning, row.allocation_id);
    if (!r.ok() || !*r) continue;
    ++pool.cleanups_running;
    store::AllocationRow a;  // the allocation's outcome is in the audit; the hook gets it too
    if (auto ar = store_.GetAllocation(row.allocation_id); ar.ok() && ar->has_value()) a = **ar;
    a.id = row.allocation_id;
    hooks_.Start(cmd, JsonText(HookJson(id, a, a.outcome)), HookEnv(id, row.allocation_id),
                 [this, next, name](CommandResult result) {
                   --pools_[name].cleanups_running;
                   FinishCleanup(next, result, false);
                   StartCleanups(name);
                 });
  }
}

void Leases::FinishCleanup(const store::EnvironmentRow& row, const CommandResult& r, bool skipped) {
  Pool& pool = pools_[row.pool];
  if (!skipped) pool.cleanup.Add(static_cast<double>(r.duration_ns) / 1e9);
  const int64_t now = clock_.Wall();
  store::EnvironmentRow next = row;
  next.state_since_ns = now;
  next.cleanup_deadline_ns = 0;
  next.log = r.log;
  if (r.ok()) {
    next.state = EnvState::kAvailable;
    next.allocation_id.clear();
    next.last_released_ns = now;
    next.cleanup_attempts = 0;
    next.note = skipped ? "" : fmt::format("cleaned in {}", FormatDuration(r.duration_ns));
  } else {
    next.state = EnvState::kDirty;
    next.note = fmt::format("cleanup failed: {}", r.Describe());
  }
  auto u = store_.UpdateEnvironment(next, EnvState::kCleaning, row.allocation_id);
  if (!u.ok() || !*u) return;  // reinstated, or handled elsewhere: stale result
  Record({kSystem, "cleanup", row.pool, row.allocation_id, row.id, r.ok() ? "ok" : "dirty",
          skipped ? "no cleanup command" : r.Describe()});
  if (next.state == EnvState::kAvailable && next.removed) {
    if (auto retired = store_.UpdateEnvironment(Retired(next, now), EnvState::kAvailable, "");
        retired.ok() && *retired) {
      Forget(row.id);
    }
  }
  if (!r.ok()) LogWarn("environment {} is dirty: {}", row.id, next.note);
  Pump(row.pool);
}

void Leases::MarkDirty(store::EnvironmentRow row, const std::string& why) {
  const EnvState state = row.state;
  const std::string allocation = row.allocation_id;
  row.state = EnvState::kDirty;
  row.note = why;
  row.state_since_ns = clock_.Wall();
  row.cleanup_deadline_ns = 0;
  auto u = store_.UpdateEnvironment(row, state, allocation);
  if (u.ok() && *u) {
    Record({kSystem, "cleanup", row.pool, allocation, row.id, "dirty", why});
    LogWarn("environment {} is dirty: {}", row.id, why);
  }
}

// ---- environments ----------------------------------------------------------------------------------------

LeaseResult<store::EnvironmentRow> Leases::Environment(const std::string& id) {
  auto got = store_.GetEnvironment(id);
  if (!got.ok()) return StoreError(got.error(), "read environment " + id);
  if (!got->has_value())
    return LeaseError{LeaseErrorCode::kNotFound, fmt::format("no environment '{}'", id), ""};
  return **got;
}

LeaseResult<std::vector<store::EnvironmentRow>> Leases::Environments(const std::string& pool,
                                                                     std::optional<EnvState> state) {
  auto envs = store_.Environments(pool, state);
  if (!envs.ok()) return StoreError(envs.error(), "list environments");
  return std::move(envs).value();
}

LeaseResult<store::EnvironmentRow> Leases::Drain(const std::string& id, const std::string& principal) {
  return SetEnvironment(id, "drain", principal);
}

LeaseResult<store::EnvironmentRow> Leases::Reinstate(const std::string& id, const std::string& principal) {
  return SetEnvironment(id, "reinstate", principal);
}

LeaseResult<store::EnvironmentRow> Leases::SetEnvironment(const std::string& id, const std::string& action,
                                                          const std::string& principal) {
  auto got = Environment(id);
  if (!got.ok()) return got;
  const store::EnvironmentRow& e = *got;
  if (e.state == EnvState::kRetired) {
    return LeaseError{
        LeaseErrorCode::kRemoved,
        fmt::format("environment '{}' was removed from the registry (list it there again)", e.id), ""};
  }
  store::EnvironmentRow next = e;
  next.state_since_ns = clock_.Wall();
  if (action == "drain") {
    next.draining = true;
  } else {
    if (e.state == EnvState::kAllocated || e.state == EnvState::kCleaning) {
      return LeaseError{LeaseErrorCode::kBusy,
                        fmt::format("environment '{}' is {} (allocation {}); reinstate applies to dirty or "
                                    "drained environments",
                                    e.id, store::EnvStateName(e.state), e.allocation_id),
                        ""};
    }
    if (e.removed) {
      return LeaseError{LeaseErrorCode::kRemoved,
                        fmt::format("environment '{}' was removed from the registry", e.id), ""};
    }
    next.state = EnvState::kAvailable;
    next.allocation_id.clear();
    next.draining = false;
    next.note.clear();
    next.cleanup_attempts = 0;
    next.last_released_ns = next.state_since_ns;
  }
  auto r = store_.UpdateEnvironment(next, e.state, e.allocation_id);
  if (!r.ok()) return StoreError(r.error(), action + " environment " + id);
  if (!*r) {
    return LeaseError{LeaseErrorCode::kConflict,
                      fmt::format("environment '{}' changed meanwhile; retry", e.id), ""};
  }
  Record({principal, action, e.pool, e.allocation_id, e.id, "ok",
          fmt::format("{} → {}", store::EnvStateName(e.state), store::EnvStateName(next.state))});
  Pump(e.pool);
  return next;
}

LeaseResult<std::vector<store::AuditRow>> Leases::Audit(const store::AuditFilter& filter) {
  auto rows = store_.Audit(filter);
  if (!rows.ok()) return StoreError(rows.error(), "read the audit");
  return std::move(rows).value();
}

}  // namespace meridian::envpool
