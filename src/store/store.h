#pragma once
// The store: every run, state transition, agent, assignment, interval report and token lives here, so a
// restarted control plane picks up where it left off (DESIGN §2). One abstract interface, two backends with
// the same numbered migrations and one conformance suite (store_test.cpp): SQLite in WAL mode (one host) and
// PostgreSQL through libpq (several control-plane replicas on one database). A Store object is one connection
// with one owner (the control plane's loop thread); it is not thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace meridian::store {

// A run's life (docs/architecture.md): created → preparing → ready → running → draining → cleaning → one of
// the four terminal states. Converted to text only here (the store) and in JSON.
enum class RunState : uint8_t {
  kCreated,
  kPreparing,
  kReady,
  kRunning,
  kDraining,
  kCleaning,
  kPassed,
  kFailed,
  kAborted,
  kErrored
};
const char* RunStateName(RunState state);
std::optional<RunState> ParseRunState(std::string_view text);
// "Terminal" defined once: passed, failed, aborted, errored (a run that ended and never changes again).
bool Terminal(RunState state);

// An agent's part in a run: assigned → ready → running → done, or lost (no heartbeat).
enum class AssignmentState : uint8_t { kAssigned, kReady, kRunning, kDone, kLost };
const char* AssignmentStateName(AssignmentState state);
std::optional<AssignmentState> ParseAssignmentState(std::string_view text);

struct RunRow {
  std::string id;
  std::string name;
  RunState state = RunState::kCreated;
  std::string plan_yaml;
  std::string owner;   // token name that created it
  std::string reason;  // why it ended as it did
  int64_t created_ns = 0;
  int64_t updated_ns = 0;
  int64_t deadline_ns = 0;  // the current state's deadline (wall clock), 0 if none
  int64_t start_at_ns = 0;  // the common start instant (control-plane wall clock), 0 until known
  int64_t ended_ns = 0;
  int exit_code = -1;
  std::string summary_json;
};

struct EventRow {
  int64_t id = 0;
  std::string run_id;
  int64_t at_ns = 0;
  std::string from_state;
  std::string to_state;
  std::string detail;
};

struct AgentRow {
  std::string id;
  std::string name;
  std::string region;
  std::string version;
  uint32_t capacity = 0;  // worker threads
  int64_t registered_ns = 0;
  int64_t clock_offset_ns = 0;  // agent clock minus control-plane clock
  int64_t rtt_ns = 0;
  std::string secret_hash;  // keyed hash of the secret issued at its first registration (the agent's proof)
};

struct AssignmentRow {
  std::string run_id;
  std::string agent_id;
  std::string region;
  uint32_t slot = 0;
  AssignmentState state = AssignmentState::kAssigned;
  int64_t ready_ns = 0;
  int64_t started_ns = 0;    // the agent's actual start, on the control plane's clock
  int64_t last_seq = -1;     // the seq the agent's done named (-1: not done)
  int64_t acked_seq = -1;    // highest contiguous seq stored
  uint64_t requests = 0;     // the agent's own total, from done
  uint64_t connections = 0;  // connections the agent opened, from done
  uint64_t retries = 0;      // idempotent requests re-sent on a stale keep-alive connection, from done
  int64_t load_ended_ns =
      0;  // when the agent's last iteration ended, on the control plane's clock (0: unknown)
};

struct SampleRow {
  std::string agent_id;
  int64_t seq = 0;
  int64_t second = 0;
  std::string payload;  // stats::EncodeSnapshot
};

// One instance of a command step, as its agent reported it in `done`.
struct StepInstanceRow {
  std::string step;
  uint32_t instance = 0;
  std::string agent_id;
  std::string result_json;  // state, exit_code, signal, restarts, times, cpu, rss, error (no log)
  std::string log;          // stdout + stderr, head and tail
};

struct TokenRow {
  std::string name;
  std::string hash_hex;  // HMAC-SHA-256 (the server's key) of the token's SHA-256
  std::string scopes;    // space-separated
};

// ---- environment leases (DESIGN §9) ----------------------------------------------------------------------

struct PoolRow {
  std::string name;
  std::string settings_json;  // the registry's pool settings, normalised
  bool removed = false;       // no longer in the registry
};

// An environment's life (docs/environments.md); retired: removed from the registry, the row is its history.
// Enums inside, text ("available", …) in the store's rows and in JSON: converted at those edges only.
enum class EnvState : uint8_t { kAvailable, kAllocated, kCleaning, kDirty, kRetired };
const char* EnvStateName(EnvState state);
std::optional<EnvState> ParseEnvState(std::string_view text);

enum class AllocationState : uint8_t { kActive, kReleased, kExpired };
const char* AllocationStateName(AllocationState state);
std::optional<AllocationState> ParseAllocationState(std::string_view text);

struct EnvironmentRow {
  std::string id;
  std::string pool;
  std::string spec_json;  // region, account, capabilities, credentials and cleanup overrides
  EnvState state = EnvState::kAvailable;
  std::string allocation_id;  // the allocation holding it (allocated) or being cleaned after (cleaning)
  bool draining = false;      // no new allocations (drain, or removed from the registry)
  bool removed = false;       // removed from the registry: deleted once available
  bool grown = false;         // created by the pool's grow command
  int64_t created_ns = 0;
  int64_t state_since_ns = 0;
  int64_t last_released_ns = 0;     // least-recently-used first
  int64_t cleanup_deadline_ns = 0;  // while cleaning
  int64_t cleanup_attempts = 0;     // of the current cleanup
  std::string note;                 // why it is dirty, the last cleanup's outcome
  std::string log;                  // the last cleanup's output (head and tail)
};

struct AllocationRow {
  std::string id;
  std::string pool;
  std::string principal;     // the token that allocated it: the owner
  std::string requester;     // who, as the caller names itself (CI job, user)
  std::string env_ids_json;  // ["e1","e2"]
  AllocationState state = AllocationState::kActive;
  std::string outcome;  // success | failure | expired | … when ended
  std::string idempotency_key;
  int64_t created_ns = 0;
  int64_t expires_ns = 0;
  int64_t max_expires_ns = 0;  // created + the pool's max_duration: renewals stop here
  int64_t ended_ns = 0;
  bool revoke_pending = false;  // ended, and its credentials' revoke has not reported yet
};

struct AllocationFilter {
  std::string principal;  // "" = any owner
  std::string requester;  // "" = any
  bool active_only = false;
  size_t limit = 100;
};

// What retention removes: rows older than each cutoff (wall ns; 0 = keep forever), at most `batch` of each
// kind per call so that one call never stalls the owner's thread for long.
struct PruneRequest {
  int64_t runs_before_ns = 0;         // ended runs, with their events, reports, series and steps
  int64_t allocations_before_ns = 0;  // ended allocations
  int64_t audit_before_ns = 0;        // audit rows
  size_t batch = 500;
};
struct PruneResult {
  std::vector<std::string> runs;  // the runs removed (their folders go too)
  size_t allocations = 0;
  size_t audit = 0;
};

struct AuditRow {
  int64_t id = 0;
  int64_t at_ns = 0;
  std::string principal;  // token name, or "meridian" for the reaper, cleanup and sync
  std::string action;     // allocate deallocate expire renew cleanup reinstate drain sync create …
  std::string pool;
  std::string allocation_id;
  std::string environment_id;
  std::string outcome;
  std::string detail;
};

struct AuditFilter {
  int64_t after_id = 0;
  size_t limit = 1000;
  std::string pool, allocation_id, environment_id, action;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<void> CreateRun(const RunRow& run) = 0;
  virtual Result<std::optional<RunRow>> GetRun(const std::string& id) = 0;
  virtual Result<std::vector<RunRow>> ListRuns(size_t limit, bool active_only) = 0;
  // Guarded transition: applies `run`'s fields only if the stored state is `from`; appends the event in the
  // same transaction. Returns false (and changes nothing) when the state had moved on.
  virtual Result<bool> TransitionRun(const RunRow& run, RunState from, const std::string& detail) = 0;
  // Updates fields other than the state (deadline, start_at, summary).
  virtual Result<void> UpdateRun(const RunRow& run) = 0;
  virtual Result<std::vector<EventRow>> Events(const std::string& run_id) = 0;

  virtual Result<void> PutAgent(const AgentRow& agent) = 0;
  virtual Result<std::optional<AgentRow>> GetAgent(const std::string& id) = 0;
  virtual Result<std::vector<AgentRow>> ListAgents() = 0;
  virtual Result<void> DeleteAgent(const std::string& id) = 0;

  virtual Result<void> PutAssignment(const AssignmentRow& a) = 0;
  virtual Result<std::vector<AssignmentRow>> Assignments(const std::string& run_id) = 0;

  // Idempotent: false when (run, agent, seq) was stored before.
  virtual Result<bool> InsertSample(const std::string& run_id, const SampleRow& s) = 0;
  virtual Result<std::vector<SampleRow>> Samples(const std::string& run_id) = 0;
  virtual Result<void> PutSeries(const std::string& run_id, uint64_t key, const std::string& region,
                                 const std::string& scenario, const std::string& name, int status,
                                 const std::string& error) = 0;

  // Idempotent: a resent done replaces the same rows.
  virtual Result<void> PutStepInstance(const std::string& run_id, const StepInstanceRow& row) = 0;
  virtual Result<std::vector<StepInstanceRow>> StepInstances(const std::string& run_id, bool with_logs) = 0;

  virtual Result<void> ReplaceTokens(const std::vector<TokenRow>& tokens) = 0;
  virtual Result<std::optional<TokenRow>> FindToken(const std::string& hash_hex) = 0;

  // Environment leases. Begin/Commit/Rollback group several calls into one transaction (BEGIN IMMEDIATE on
  // SQLite: one writer at a time, so a read inside sees what it then changes).
  virtual Result<void> Begin() = 0;
  virtual Result<void> Commit() = 0;
  virtual void Rollback() = 0;
  virtual Result<void> PutPool(const PoolRow& pool) = 0;
  virtual Result<std::vector<PoolRow>> Pools() = 0;
  virtual Result<void> DeletePool(const std::string& name) = 0;
  virtual Result<void> InsertEnvironment(const EnvironmentRow& env) = 0;
  // Guarded: writes `env` only while the stored row has `expected_state` and `expected_allocation`; false
  // (nothing changed) otherwise.
  virtual Result<bool> UpdateEnvironment(const EnvironmentRow& env, EnvState expected_state,
                                         const std::string& expected_allocation) = 0;
  virtual Result<bool> DeleteEnvironment(const std::string& id, EnvState expected_state) = 0;
  virtual Result<std::optional<EnvironmentRow>> GetEnvironment(const std::string& id) = 0;
  // The environments of `pool` ("" = all) in `state` (nullopt = any), least recently released first, without
  // their cleanup logs (GetEnvironment has them). `free_only`: available, not draining, not removed.
  virtual Result<std::vector<EnvironmentRow>> Environments(const std::string& pool,
                                                           std::optional<EnvState> state = std::nullopt,
                                                           bool free_only = false) = 0;
  virtual Result<void> InsertAllocation(const AllocationRow& a) = 0;
  virtual Result<bool> UpdateAllocation(const AllocationRow& a, AllocationState expected_state) = 0;
  virtual Result<std::optional<AllocationRow>> GetAllocation(const std::string& id) = 0;
  virtual Result<std::optional<AllocationRow>> FindAllocationByKey(const std::string& principal,
                                                                   const std::string& idempotency_key) = 0;
  // Newest first, filtered before the limit applies.
  virtual Result<std::vector<AllocationRow>> Allocations(const AllocationFilter& filter) = 0;
  // Ended allocations whose revoke has not reported (run again after a restart).
  virtual Result<std::vector<AllocationRow>> PendingRevokes() = 0;
  // Active allocations whose expires_ns is at or before `now_ns`.
  virtual Result<std::vector<AllocationRow>> ExpiredAllocations(int64_t now_ns) = 0;
  virtual Result<int64_t> AppendAudit(const AuditRow& row) = 0;
  virtual Result<std::vector<AuditRow>> Audit(const AuditFilter& filter) = 0;

  // Retention (server.yaml `retention:`).
  virtual Result<PruneResult> Prune(const PruneRequest& request) = 0;

  virtual int SchemaVersion() = 0;
  // Reachable and migrated to this binary's schema (GET /readyz): a query on the connection, reconnecting
  // once if it was lost.
  virtual Result<void> Ready() = 0;
  // Claims the store for this server alone, for as long as it runs (`meridian serve`): one control plane per
  // database until replicas share one (docs/deploy.md). PostgreSQL: a session advisory lock, taken again
  // after a reconnect (writes fail while another server holds it); SQLite: nothing (one host, one file).
  virtual Result<void> ClaimSoleServer() = 0;
  // The store as logs and /v1/status name it: "sqlite:PATH" or the PostgreSQL URL without its password.
  virtual std::string Describe() const = 0;
};

// One transaction, rolled back unless committed: every early return leaves nothing behind.
//   store::Transaction txn(store);
//   if (!txn.ok()) return txn.error();
//   … writes; any `return` before Commit rolls them back …
//   if (auto c = txn.Commit(); !c.ok()) return c.error();
class Transaction {
 public:
  explicit Transaction(Store& store) : store_(store), begun_(store.Begin()) {}
  ~Transaction() {
    if (begun_.ok() && !finished_) store_.Rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  bool ok() const { return begun_.ok(); }
  const Error& error() const { return begun_.error(); }
  // A commit that fails is rolled back.
  Result<void> Commit() {
    finished_ = true;
    auto r = store_.Commit();
    if (!r.ok()) store_.Rollback();
    return r;
  }
  // Now rather than at the end of the scope (to read the store as it was before, say).
  void Rollback() {
    if (begun_.ok() && !finished_) store_.Rollback();
    finished_ = true;
  }

 private:
  Store& store_;
  Result<void> begun_;
  bool finished_ = false;
};

// Opens (creating if needed) a SQLite database and applies pending migrations. The database and its WAL are
// private to the server's user (0600; a directory it creates is 0700): they hold token hashes, plans, logs.
Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path);

// Connects to PostgreSQL (a libpq URL: postgres://user:password@host:port/db?sslmode=…, or
// postgres://user@/db?host=/socket/dir) and applies pending migrations under an advisory lock, so replicas
// starting together migrate once.
Result<std::unique_ptr<Store>> OpenPostgres(const std::string& url);

// Opens "sqlite:PATH" (or a bare path) or "postgres://…" / "postgresql://…".
Result<std::unique_ptr<Store>> OpenStore(const std::string& spec);

// A store spec as it may be printed: a postgres:// URL's password (in the user part or as a parameter) is
// replaced by "***".
std::string RedactStoreSpec(const std::string& spec);

}  // namespace meridian::store
