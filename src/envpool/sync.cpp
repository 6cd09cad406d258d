// The lease core and its sources of truth: loading from the store, resuming what a restart interrupted, and
// applying the registry (file at start and on SIGHUP, or `meridian env sync`).

#include <fmt/format.h>

#include "core/json.h"
#include "core/log.h"
#include "envpool/leases.h"

namespace meridian::envpool {

using nlohmann::json;
using nlohmann::ordered_json;
using store::EnvState;

Result<void> Leases::Start() {
  if (auto r = LoadFromStore(); !r.ok()) return r;
  if (!options_.registry_path.empty()) {
    auto reg = LoadRegistryFile(options_.registry_path);
    if (!reg.ok()) return reg.error();
    if (auto s = Sync(*reg, kSystem); !s.ok()) return ToError(s.error());
  }
  // Cleanups a previous process was running (or had queued) when it stopped.
  auto envs = store_.Environments("", EnvState::kCleaning);
  if (!envs.ok()) return envs.error();
  for (auto e : *envs) {
    if (e.cleanup_attempts >= kMaxCleanupAttempts) {
      MarkDirty(e, fmt::format("cleanup interrupted {} times by control-plane restarts", e.cleanup_attempts));
    } else {
      LogInfo("environment {}: resuming the cleanup interrupted by a restart", e.id);
      Record({kSystem, "cleanup", e.pool, e.allocation_id, e.id, "resumed", "interrupted by a restart"});
      e.cleanup_deadline_ns = 0;
      QueueCleanup(e);
    }
  }
  // Revokes a previous process started and did not see finish (their credentials are gone with it: the
  // revoke command gets the environment and allocation, as documented).
  auto pending = store_.PendingRevokes();
  if (!pending.ok()) return pending.error();
  for (const auto& a : *pending) {
    LogInfo("allocation {}: running the revoke interrupted by a restart", a.id);
    Record({kSystem, "revoke", a.pool, a.id, "", "resumed", "interrupted by a restart"});
    Revoke(a, a.outcome);
  }
  return {};
}

Result<void> Leases::Reload() {
  if (options_.registry_path.empty()) return {};
  auto reg = LoadRegistryFile(options_.registry_path);
  if (!reg.ok()) return reg.error();
  auto s = Sync(*reg, kSystem);
  if (!s.ok()) return ToError(s.error());
  LogInfo("registry {} synced: {}", options_.registry_path, s->dump());
  return {};
}

// The specs from the store; the pools' queues, running cleanups and counters are kept.
Result<void> Leases::LoadFromStore() {
  auto pools = store_.Pools();
  if (!pools.ok()) return pools.error();
  for (const auto& p : *pools) {
    auto spec = PoolFromJson(p.name, p.settings_json);
    if (!spec.ok()) return spec.error();
    pools_[p.name].spec = *spec;
    pools_[p.name].removed = p.removed;
  }
  auto envs = store_.Environments("");
  if (!envs.ok()) return envs.error();
  specs_.clear();
  leaving_.clear();
  for (const auto& e : *envs) {
    if (e.state == EnvState::kRetired) continue;  // history only
    auto spec = EnvironmentFromJson(e.id, e.pool, e.spec_json);
    if (!spec.ok()) return spec.error();
    specs_[e.id] = *spec;
    if (e.removed) leaving_.insert(e.id);  // held when it left the registry: retired when released
  }
  return {};
}

LeaseResult<ordered_json> Leases::Sync(const Registry& reg, const std::string& principal) {
  const int64_t now = clock_.Wall();
  ordered_json report = {{"source", reg.source},      {"added", json::array()},   {"updated", json::array()},
                         {"draining", json::array()}, {"retired", json::array()}, {"pools", json::array()}};
  {
    store::Transaction txn(store_);
    if (!txn.ok()) return StoreError(txn.error(), "begin the registry sync");
    // Whatever fails below rolls the transaction back; the in-memory view follows the store again.
    auto fail = [&](const Error& e) -> LeaseResult<ordered_json> {
      txn.Rollback();
      (void)LoadFromStore();
      return StoreError(e, "sync the registry");
    };
    auto stored_pools = store_.Pools();
    if (!stored_pools.ok()) return fail(stored_pools.error());
    // A registry without pools would drain every environment: an editor's empty file, a tool mid-write. Only
    // when the file says so.
    if (reg.pools.empty() && !reg.allow_empty) {
      std::string in_service;
      for (const auto& p : *stored_pools) {
        if (!p.removed) in_service += (in_service.empty() ? "" : ", ") + p.name;
      }
      if (!in_service.empty()) {
        return LeaseError{LeaseErrorCode::kRegistryRefused,
                          fmt::format("{}: the registry names no pools: applying it would remove every pool "
                                      "({}) and drain their environments; nothing changed (write "
                                      "`allow_empty: true` in the file if that is meant)",
                                      reg.source, in_service),
                          ""};
      }
    }
    std::set<std::string> names;
    for (const auto& p : reg.pools) {
      names.insert(p.name);
      if (auto r = store_.PutPool({p.name, JsonText(PoolJson(p)), false}); !r.ok()) return fail(r.error());
      report["pools"].push_back(p.name);
    }
    for (const auto& p : *stored_pools) {
      if (!names.count(p.name)) {
        if (auto r = store_.PutPool({p.name, p.settings_json, true}); !r.ok()) return fail(r.error());
      }
    }
    auto stored = store_.Environments("");
    if (!stored.ok()) return fail(stored.error());
    std::map<std::string, store::EnvironmentRow> by_id;
    for (auto& e : *stored) by_id[e.id] = e;
    std::set<std::string> listed;
    for (const auto& spec : reg.environments) {
      listed.insert(spec.id);
      const std::string spec_json = JsonText(EnvironmentJson(spec));
      auto it = by_id.find(spec.id);
      if (it == by_id.end()) {
        store::EnvironmentRow row;
        row.id = spec.id;
        row.pool = spec.pool;
        row.spec_json = spec_json;
        row.created_ns = row.state_since_ns = now;
        if (auto r = store_.InsertEnvironment(row); !r.ok()) return fail(r.error());
        report["added"].push_back(spec.id);
        continue;
      }
      store::EnvironmentRow row = it->second;
      const bool changed = row.spec_json != spec_json || row.pool != spec.pool || row.removed;
      if (!changed) continue;
      if (row.removed) row.draining = false;  // listed again: back in service
      if (row.state == EnvState::kRetired) {
        row.state = EnvState::kAvailable;
        row.state_since_ns = now;
        row.note.clear();
      }
      row.removed = false;
      row.spec_json = spec_json;
      row.pool = spec.pool;
      auto r = store_.UpdateEnvironment(row, it->second.state, it->second.allocation_id);
      if (!r.ok()) return fail(r.error());
      report["updated"].push_back(spec.id);
    }
    for (auto& [id, row] : by_id) {
      // Environments created by grow mode stay in their pool while the pool exists.
      if (listed.count(id) || (row.grown && names.count(row.pool)) || row.state == EnvState::kRetired)
        continue;
      if (row.state == EnvState::kAvailable) {
        auto r = store_.UpdateEnvironment(Retired(row, now), EnvState::kAvailable, row.allocation_id);
        if (!r.ok()) return fail(r.error());
        report["retired"].push_back(id);
        continue;
      }
      if (row.removed) continue;
      store::EnvironmentRow next = row;
      next.removed = next.draining = true;
      auto r = store_.UpdateEnvironment(next, row.state, row.allocation_id);
      if (!r.ok()) return fail(r.error());
      report["draining"].push_back(id);
    }
    const store::AuditRow audit{0, now, principal, "sync", "", "", "", "ok", JsonText(report)};
    if (auto r = store_.AppendAudit(audit); !r.ok()) return fail(r.error());
    if (auto c = txn.Commit(); !c.ok()) {
      (void)LoadFromStore();
      return StoreError(c.error(), "commit the registry sync");
    }
  }
  if (auto r = LoadFromStore(); !r.ok()) return StoreError(r.error(), "reload the pools");
  AnswerWaitersAfterSync();
  return report;
}

void Leases::AnswerWaitersAfterSync() {
  for (auto& [name, pool] : pools_) {  // waiters of a pool that left the registry get their answer
    if (!pool.removed) continue;
    for (size_t i = 0; i < pool.waiters.size(); ++i) {
      Waiter& w = pool.waiters[i];
      if (w.done) continue;
      Answer(w, LeaseError{LeaseErrorCode::kNoPool, fmt::format("pool '{}' was removed", name), "pool"});
    }
    Compact(pool);
  }
  // Waiters that the registry left without enough environments get their answer now, not at their wait's end.
  for (auto& [name, pool] : pools_) {
    if (pool.removed || pool.spec.grow_max > 0) continue;
    Walk walk(pool);
    for (size_t i = 0; i < pool.waiters.size(); ++i) {
      Waiter& w = pool.waiters[i];
      if (w.done) continue;
      if (const size_t matching = Matching(w.request); matching < w.request.count) {
        Answer(w, Unsatisfiable(w.request, matching));
      }
    }
  }
  for (auto& [name, _] : pools_) Pump(name);
}

}  // namespace meridian::envpool
