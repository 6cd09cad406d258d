#pragma once
// PRIVATE to envpool (its files and their tests; scripts/lint keeps other modules out).
//
// The lease core: pools, the FIFO-with-reservation allocation pump, release, renew, revoke, cleanup, grow,
// the reaper and registry sync, with no HTTP inside. It answers with LeaseResult (a LeaseError names what
// went wrong; only api.cpp turns that into 404/409/423/…), reads time from an injected Clock and runs its
// commands through an injected HookRunner, so that unit tests drive it on a FakeClock with fake hooks.
//
// State lives in the store: every environment's state, its holder, every deadline is a column, and every
// transition is guarded by the expected state and allocation id, so a duplicate or stale action is a no-op
// and a restarted control plane carries on (cleanups it was running are retried once, then marked dirty;
// revokes it had not seen finish run again). A store that cannot write fails the call with
// kStoreUnavailable; nothing is answered as done that was not stored.
//
// Queues are walked by index and entries are only marked done during a walk (removed after it), so that an
// answer sent from inside a walk, or anything it sets off, cannot invalidate the walk. Single-threaded: one
// thread calls the core, and the hook runner reports back on it.
//
// The definitions are split by concern: leases.cpp (allocate, pump, deliver), release.cpp (release, renew,
// reaper, waits), cleanup.cpp (cleanup queue, dirty, revoke, drain and reinstate), grow.cpp, sync.cpp (store
// and registry), metrics.cpp (Prometheus text). api.cpp is the HTTP adapter around it (envpool.h).

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/prometheus.h"
#include "core/result.h"
#include "envpool/hooks.h"
#include "envpool/options.h"
#include "envpool/registry.h"
#include "store/store.h"

namespace meridian::envpool {

enum class LeaseErrorCode {
  kNoPool,             // no such pool (or it left the registry)
  kNotFound,           // no such allocation or environment
  kNotOwner,           // another token's allocation
  kInvalid,            // a value out of range for its pool (a duration past max_duration)
  kUnsatisfiable,      // the pool has too few matching environments, ever
  kNoCapacity,         // nothing free now, and no wait asked for
  kTimedOut,           // nothing became free within the wait
  kLimitReached,       // the token has too many requests waiting
  kKeyReused,          // the idempotency key named an allocation of another pool
  kInProgress,         // a request with the same idempotency key is waiting
  kNotActive,          // the allocation has ended
  kMaxDuration,        // a renewal past the pool's max_duration
  kBusy,               // the environment is allocated or cleaning
  kRemoved,            // the environment left the registry
  kConflict,           // the environment changed meanwhile
  kRegistryRefused,    // a registry that would remove every pool
  kCredentialsFailed,  // the credentials command or file failed: nothing was handed out
  kGrowFailed,         // the pool's create command failed
  kStoreUnavailable,   // the store could not read or write: nothing changed, retry
};

struct LeaseError {
  LeaseErrorCode code;
  std::string message;
  std::string field;  // the request field it is about, if one
};

template <class T>
using LeaseResult = Result<T, LeaseError>;

struct AllocationRequest {
  std::string pool;
  std::string principal;
  std::string requester;
  uint32_t count = 1;
  Requirements require;
  int64_t duration_ns = 0;  // 0: the pool's default
  std::string idempotency_key;
};

// What a granted request gets: the allocation and its credentials (per environment id).
struct Grant {
  store::AllocationRow allocation;
  nlohmann::ordered_json credentials = nlohmann::ordered_json::object();
  bool replay = false;  // the same idempotency key again: the allocation made earlier
};

// Where an allocation request's answer goes, once, maybe much later. `alive` turning false means the client
// left: nothing is handed out to it.
struct Reply {
  std::function<bool()> alive;
  std::function<void(LeaseResult<Grant>)> send;
};

// Prometheus histogram with fixed buckets (seconds).
struct SecondsHistogram {
  static constexpr double kBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
                                       5,     10,   30,    60,   300, 600,  1800, 3600};
  uint64_t counts[std::size(kBounds) + 1] = {};
  double sum = 0;
  uint64_t total = 0;
  void Add(double seconds);
};

class Leases {
 public:
  struct Waiter {
    uint64_t seq = 0;
    AllocationRequest request;
    Reply reply;
    int64_t enqueued_mono = 0;
    int64_t deadline_mono = 0;
    bool grow_pending = false;  // a create runs on its behalf: it waits for it even past its own wait
    bool grown_for = false;     // a create ran for it: another only within its wait
    bool done = false;          // answered (or gone): removed by the next Compact
  };

  struct Pool {
    PoolSpec spec;
    bool removed = false;
    std::deque<Waiter> waiters;  // walked by index; entries are only marked done while a walk may run
    uint32_t walking = 0;        // walks in progress (Compact waits for the last)
    std::deque<std::string> cleanup_queue;  // environment ids, in order
    uint32_t cleanups_running = 0;
    uint32_t growing = 0;
    bool pumping = false, repump = false;
    SecondsHistogram wait, cleanup;
    std::map<std::string, uint64_t> outcomes;  // deallocations by outcome
    std::map<std::string, uint64_t> requests;  // allocated | rejected | timed_out | failed | abandoned
    size_t Waiting() const;
  };

  Leases(store::Store& store, const Clock& clock, HookRunner& hooks, Options options);
  Leases(const Leases&) = delete;
  Leases& operator=(const Leases&) = delete;

  // ---- sync.cpp
  // Loads the pools from the store, syncs the registry file (if any), resumes interrupted cleanups and
  // revokes.
  Result<void> Start();
  // Re-reads the registry file. A bad file changes nothing.
  Result<void> Reload();
  // Applies a registry: new environments become available, changed ones are updated, removed ones drain and
  // are retired once free and clean. Returns what changed.
  LeaseResult<nlohmann::ordered_json> Sync(const Registry& registry, const std::string& principal);

  // ---- leases.cpp
  // The checks Allocate makes first, for an adapter that must answer them in its own order: the pool exists
  // and `duration_ns` is within its max_duration; `wait_ns` is within Options::max_wait_ns.
  LeaseResult<const Pool*> CheckDuration(const std::string& pool, int64_t duration_ns) const;
  LeaseResult<void> CheckWait(int64_t wait_ns) const;
  // Allocates all of `count` environments or none: at once, after waiting up to `wait_ns` in the pool's FIFO
  // queue, or never (an answer on `reply` in every case, maybe before this returns).
  void Allocate(AllocationRequest request, int64_t wait_ns, Reply reply);
  // The caller's allocation (any, for an admin).
  LeaseResult<store::AllocationRow> Get(const std::string& id, const Caller& caller);
  LeaseResult<std::vector<store::AllocationRow>> List(const store::AllocationFilter& filter);
  // Ends it with `outcome` (success, failure, cancelled); idempotent: an ended one is returned as it ended.
  LeaseResult<store::AllocationRow> Release(const std::string& id, const std::string& outcome,
                                            const Caller& caller);
  // Extends it by `duration_ns` from now (0: the pool's default), up to the pool's max_duration.
  LeaseResult<store::AllocationRow> Renew(const std::string& id, int64_t duration_ns, const Caller& caller);
  // Waits that ran out, clients that left, the reaper for expired leases and stuck cleanups.
  void Tick();

  // ---- cleanup.cpp
  LeaseResult<store::EnvironmentRow> Environment(const std::string& id);
  LeaseResult<std::vector<store::EnvironmentRow>> Environments(const std::string& pool,
                                                               std::optional<store::EnvState> state);
  // No new allocations; the current lease runs on.
  LeaseResult<store::EnvironmentRow> Drain(const std::string& id, const std::string& principal);
  // Dirty or drained → available.
  LeaseResult<store::EnvironmentRow> Reinstate(const std::string& id, const std::string& principal);
  LeaseResult<std::vector<store::AuditRow>> Audit(const store::AuditFilter& filter);

  // ---- views (JSON, metrics)
  const std::map<std::string, Pool>& pools() const { return pools_; }
  LeaseResult<const Pool*> FindPool(const std::string& name) const;
  const EnvironmentSpec& Spec(const std::string& id) const;
  const Clock& clock() const { return clock_; }
  const Options& options() const { return options_; }

  static constexpr const char* kSystem = "meridian";  // the principal of the reaper, cleanups and syncs
  static constexpr int kMaxCleanupAttempts = 2;       // a cleanup interrupted by restarts twice ends dirty

 private:
  // leases.cpp
  size_t Matching(const AllocationRequest& rq) const;
  static LeaseError Unsatisfiable(const AllocationRequest& rq, size_t matching);
  void Reject(Pool& pool, Waiter& w, const char* result);
  // Marks the waiter done and answers it; its reply is moved out first, so that whatever the answer sets off
  // (a compaction of the queue) cannot destroy it while it runs.
  static void Answer(Waiter& w, LeaseResult<Grant> answer);
  void Pump(const std::string& name);
  void PumpOnce(Pool& pool, const std::string& name);
  LeaseResult<std::optional<store::AllocationRow>> TryAllocate(const AllocationRequest& rq,
                                                               const std::set<std::string>& reserved,
                                                               std::vector<std::string>* candidates);
  void Deliver(const store::AllocationRow& a, Reply reply, bool replay);
  // Ends an active allocation in one transaction; nullopt when it had ended already (guarded). `clean`: the
  // environments go through cleanup and the credentials are revoked (false: they were never handed out).
  Result<std::optional<store::AllocationRow>> End(const store::AllocationRow& a, const std::string& outcome,
                                                  const std::string& principal, bool clean);
  void Reap();
  // cleanup.cpp
  const Credentials& CredentialsOf(const std::string& env_id, const std::string& pool);
  bool HasRevoke(const store::AllocationRow& a);
  void Revoke(const store::AllocationRow& a, const std::string& outcome);
  void ClearRevoke(const store::AllocationRow& a);
  void QueueCleanup(const store::EnvironmentRow& e);
  void StartCleanups(const std::string& pool);
  void FinishCleanup(const store::EnvironmentRow& row, const CommandResult& r, bool skipped);
  void MarkDirty(store::EnvironmentRow row, const std::string& why);
  LeaseResult<store::EnvironmentRow> SetEnvironment(const std::string& id, const std::string& action,
                                                    const std::string& principal);
  // grow.cpp
  bool CanGrow(const Pool& pool) const;
  void Grow(Pool& pool, const AllocationRequest& rq);
  void Grown(const std::string& pool, const std::string& proposed, const CommandResult& r);
  // sync.cpp
  Result<void> LoadFromStore();
  void AnswerWaitersAfterSync();
  // shared
  nlohmann::ordered_json HookJson(const std::string& env_id, const store::AllocationRow& a,
                                  const std::string& outcome) const;
  std::map<std::string, std::string> HookEnv(const std::string& env_id, const std::string& allocation) const;
  static store::EnvironmentRow Retired(store::EnvironmentRow row, int64_t now);
  void Forget(const std::string& env_id);                  // retired: out of the in-memory view
  void Record(std::initializer_list<std::string> fields);  // an audit row: principal action pool allocation
                                                           // environment outcome detail
  static void Compact(Pool& pool);
  struct Walk {
    explicit Walk(Pool& p) : pool(p) { ++pool.walking; }
    ~Walk() {
      --pool.walking;
      Compact(pool);
    }
    Walk(const Walk&) = delete;
    Walk& operator=(const Walk&) = delete;
    Pool& pool;
  };

  store::Store& store_;
  const Clock& clock_;
  HookRunner& hooks_;
  Options options_;
  std::map<std::string, Pool> pools_;
  std::map<std::string, EnvironmentSpec> specs_;
  std::set<std::string> leaving_;  // removed from the registry while held: never handed out again
  std::map<std::string, nlohmann::ordered_json> credentials_;  // allocation → credentials, while active
  uint64_t waiter_seq_ = 0;
  int64_t next_reap_mono_ = 0;
};

// The allocation's environment ids (its env_ids_json).
std::vector<std::string> EnvIds(const store::AllocationRow& a);

// Prometheus text exposition (metrics.cpp): environments by state, queue length, cleanups running, wait and
// cleanup histograms, deallocations by outcome, requests by result.
void LeaseMetrics(Leases& leases, PrometheusText& out);

// A lease error where a plain Error is wanted: a refused registry is kInvalidArgument, the store kIo.
Error ToError(const LeaseError& e);

// A store error as a lease error: the message stays in the server's log, the caller gets what failed.
LeaseError StoreError(const Error& e, const std::string& what);

}  // namespace meridian::envpool
