// The lease core's ends of leases: release by the holder, renewal up to the pool's maximum, the reaper for
// expired leases and stuck cleanups, and waits that ran out.

#include <fmt/format.h>

#include "core/duration.h"
#include "core/log.h"
#include "envpool/leases.h"

namespace meridian::envpool {

using store::AllocationState;
using store::EnvState;

namespace {
constexpr int64_t kReapEveryNs = 250'000'000;
}  // namespace

LeaseResult<store::AllocationRow> Leases::Get(const std::string& id, const Caller& caller) {
  auto a = store_.GetAllocation(id);
  if (!a.ok()) return StoreError(a.error(), "read allocation " + id);
  if (!a->has_value())
    return LeaseError{LeaseErrorCode::kNotFound, fmt::format("no allocation '{}'", id), ""};
  if (!caller.admin && (*a)->principal != caller.principal) {
    // Whose it is stays unsaid: another token's name and requester are not this caller's business.
    return LeaseError{
        LeaseErrorCode::kNotOwner,
        fmt::format(
            "allocation '{}' is not yours; only the token that allocated it or env:admin may act on it", id),
        ""};
  }
  return **a;
}

LeaseResult<std::vector<store::AllocationRow>> Leases::List(const store::AllocationFilter& filter) {
  auto rows = store_.Allocations(filter);
  if (!rows.ok()) return StoreError(rows.error(), "list allocations");
  return std::move(rows).value();
}

LeaseResult<store::AllocationRow> Leases::Release(const std::string& id, const std::string& outcome,
                                                  const Caller& caller) {
  auto a = Get(id, caller);
  if (!a.ok()) return a;
  if (a->state == AllocationState::kActive) {
    auto ended = End(*a, outcome, caller.principal, true);
    if (!ended.ok()) return StoreError(ended.error(), "end allocation " + id);  // still held: retry
    if (ended->has_value()) return **ended;
  }
  // Idempotent: it had ended (or just did, by the reaper): how it ended.
  auto now = store_.GetAllocation(id);
  if (!now.ok()) return StoreError(now.error(), "read allocation " + id);
  if (!now->has_value() || (*now)->state == AllocationState::kActive) {
    return StoreError(MakeError(ErrorCode::kInternal, "still active after its end"), "end allocation " + id);
  }
  return **now;
}

Result<std::optional<store::AllocationRow>> Leases::End(const store::AllocationRow& a,
                                                        const std::string& outcome,
                                                        const std::string& principal, bool clean) {
  const int64_t now = clock_.Wall();
  Pool& pool = pools_[a.pool];
  const bool expired = outcome == "expired";
  store::AllocationRow next = a;
  next.state = expired ? AllocationState::kExpired : AllocationState::kReleased;
  next.outcome = outcome;
  next.ended_ns = now;
  next.revoke_pending = clean && HasRevoke(a);
  std::vector<store::EnvironmentRow> to_clean;
  std::vector<std::string> retired;
  store::Transaction txn(store_);
  if (!txn.ok()) return txn.error();
  auto ok = store_.UpdateAllocation(next, AllocationState::kActive);
  if (!ok.ok()) return ok.error();
  if (!*ok) return std::optional<store::AllocationRow>();
  for (const auto& id : EnvIds(a)) {
    auto e = store_.GetEnvironment(id);
    if (!e.ok()) return e.error();
    if (!e->has_value()) continue;
    const store::EnvironmentRow& row = **e;
    if (row.state != EnvState::kAllocated || row.allocation_id != a.id) continue;  // not ours any more
    const EnvironmentSpec& spec = Spec(id);
    const bool has_cleanup = clean && (spec.cleanup ? !spec.cleanup->empty() : !pool.spec.cleanup.empty());
    store::EnvironmentRow nr = row;
    nr.state_since_ns = now;
    if (has_cleanup) {
      nr.state = EnvState::kCleaning;
      nr.cleanup_attempts = 0;
      nr.cleanup_deadline_ns = 0;  // set when it starts (it may queue behind cleanup_concurrency)
    } else if (row.removed) {
      nr = Retired(row, now);
      retired.push_back(id);
    } else {
      nr.state = EnvState::kAvailable;
      nr.allocation_id.clear();
      nr.last_released_ns = now;
    }
    auto r = store_.UpdateEnvironment(nr, EnvState::kAllocated, a.id);
    if (!r.ok()) return r.error();
    if (has_cleanup) to_clean.push_back(nr);
    auto audit = store_.AppendAudit({0, now, principal, expired ? "expire" : "deallocate", a.pool, a.id, id,
                                     outcome, has_cleanup ? "cleanup queued" : ""});
    if (!audit.ok()) return audit.error();
  }
  if (auto c = txn.Commit(); !c.ok()) return c.error();
  for (const auto& id : retired) Forget(id);
  ++pool.outcomes[outcome];
  if (next.revoke_pending) Revoke(next, outcome);
  credentials_.erase(a.id);
  for (const auto& e : to_clean) QueueCleanup(e);
  Pump(a.pool);
  return std::optional<store::AllocationRow>(next);
}

LeaseResult<store::AllocationRow> Leases::Renew(const std::string& id, int64_t duration_ns,
                                                const Caller& caller) {
  auto got = Get(id, caller);
  if (!got.ok()) return got;
  const store::AllocationRow& a = *got;
  if (a.state != AllocationState::kActive) {
    return LeaseError{LeaseErrorCode::kNotActive,
                      fmt::format("allocation '{}' has ended ({})", id, a.outcome), ""};
  }
  const PoolSpec& spec = pools_[a.pool].spec;
  const int64_t now = clock_.Wall();
  int64_t until = now + (duration_ns > 0 ? duration_ns : spec.default_duration_ns);
  if (until > a.max_expires_ns) {
    if (duration_ns > 0 || a.expires_ns >= a.max_expires_ns) {
      return LeaseError{
          LeaseErrorCode::kMaxDuration,
          fmt::format("allocation '{}' cannot be renewed past {} (pool '{}''s max_duration {})", id,
                      FormatIsoTime(a.max_expires_ns), a.pool, FormatDuration(spec.max_duration_ns)),
          duration_ns > 0 ? "duration" : ""};
    }
    until = a.max_expires_ns;
  }
  store::AllocationRow next = a;
  next.expires_ns = std::max(a.expires_ns, until);
  auto r = store_.UpdateAllocation(next, AllocationState::kActive);
  if (!r.ok()) return StoreError(r.error(), "renew allocation " + id);
  if (!*r)
    return LeaseError{LeaseErrorCode::kNotActive, fmt::format("allocation '{}' has just ended", id), ""};
  Record({caller.principal, "renew", a.pool, a.id, "", "ok", "until " + FormatIsoTime(next.expires_ns)});
  return next;
}

// ---- waits and the reaper -----------------------------------------------------------------------------

void Leases::Tick() {
  const int64_t now_mono = clock_.Mono();
  for (auto& [name, pool] : pools_) {
    bool dropped = false;
    {
      Walk walk(pool);
      for (size_t i = 0; i < pool.waiters.size(); ++i) {
        Waiter& w = pool.waiters[i];
        if (w.done) continue;
        if (!w.reply.alive()) {
          ++pool.requests["abandoned"];
          w.done = true;
          dropped = true;
        } else if (!w.grow_pending && w.deadline_mono <= now_mono) {
          Reject(pool, w, "timed_out");
          dropped = true;
        }
      }
    }
    if (dropped) Pump(name);  // what a dropped waiter reserved may serve a later one
  }
  if (now_mono < next_reap_mono_) return;
  next_reap_mono_ = now_mono + kReapEveryNs;
  Reap();
}

void Leases::Reap() {
  const int64_t now = clock_.Wall();
  auto expired = store_.ExpiredAllocations(now);
  if (!expired.ok()) return;
  for (const auto& a : *expired) {
    LogInfo("allocation {} of {} expired: deallocating on its holder's behalf", a.id, a.requester);
    if (auto r = End(a, "expired", kSystem, true); !r.ok()) {
      LogError("allocation {} expired but is not ended: {} (tried again shortly)", a.id, r.error().message);
      break;  // the store cannot write now: the next reap tries again
    }
  }
  // A cleanup past its deadline that no hook reports on any more (it cannot happen while this process runs
  // it: the runner enforces the deadline) ends dirty.
  auto envs = store_.Environments("", EnvState::kCleaning);
  if (!envs.ok()) return;
  for (const auto& e : *envs) {
    if (e.cleanup_deadline_ns != 0 && e.cleanup_deadline_ns + 30 * kNanosPerSecond < now &&
        pools_[e.pool].cleanups_running == 0) {
      MarkDirty(e, "the cleanup's deadline passed without a result");
    }
  }
}

}  // namespace meridian::envpool
