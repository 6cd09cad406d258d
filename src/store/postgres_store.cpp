// The PostgreSQL backend (libpq): one connection per Store, statements prepared once per connection and run
// with text parameters (binary for blobs) and binary results. The tables and numbered migrations mirror
// SQLite's one for one (so a schema version means the same on both); the SQL differs where the engines do:
// ON CONFLICT for INSERT OR REPLACE/IGNORE, identity columns for AUTOINCREMENT, BYTEA for blobs, a CTE that
// makes a guarded run transition and its event one statement. Every guarded write is a single
// `UPDATE … WHERE id = … AND state = … [AND allocation_id = …]`: under READ COMMITTED a second writer's
// UPDATE waits for the first to commit and then re-checks the guard, so two replicas racing for one row
// change it once. A lost connection is re-established once before a statement outside a transaction fails.

#include <endian.h>
#include <fmt/format.h>
#include <libpq-fe.h>

#include <cstring>
#include <memory>
#include <unordered_map>

#include "core/log.h"
#include "core/utf8.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace meridian::store {
namespace {

// Each entry migrates from version i to i+1, as SQLite's entry of the same index does. Never edit a released
// entry: add a new one (to both backends).
constexpr const char* kMigrations[] = {
    R"(
CREATE TABLE runs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, plan_yaml TEXT NOT NULL, owner TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '', created_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL,
  deadline_ns BIGINT NOT NULL DEFAULT 0, start_at_ns BIGINT NOT NULL DEFAULT 0, ended_ns BIGINT NOT NULL DEFAULT 0,
  exit_code BIGINT NOT NULL DEFAULT -1, summary_json TEXT NOT NULL DEFAULT '');
CREATE INDEX runs_by_state ON runs(state);
CREATE TABLE run_events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
  at_ns BIGINT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX run_events_by_run ON run_events(run_id, id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL, version TEXT NOT NULL, capacity BIGINT NOT NULL,
  registered_ns BIGINT NOT NULL, clock_offset_ns BIGINT NOT NULL, rtt_ns BIGINT NOT NULL);
CREATE TABLE run_agents (
  run_id TEXT NOT NULL REFERENCES runs(id), agent_id TEXT NOT NULL, region TEXT NOT NULL, slot BIGINT NOT NULL,
  state TEXT NOT NULL, ready_ns BIGINT NOT NULL, started_ns BIGINT NOT NULL, last_seq BIGINT NOT NULL,
  acked_seq BIGINT NOT NULL, requests BIGINT NOT NULL, connections BIGINT NOT NULL,
  retries BIGINT NOT NULL, PRIMARY KEY (run_id, agent_id));
CREATE TABLE series (
  run_id TEXT NOT NULL, series_key BIGINT NOT NULL, region TEXT NOT NULL, scenario TEXT NOT NULL,
  name TEXT NOT NULL, status BIGINT NOT NULL, error TEXT NOT NULL, PRIMARY KEY (run_id, region, series_key));
CREATE TABLE samples (
  run_id TEXT NOT NULL, agent_id TEXT NOT NULL, seq BIGINT NOT NULL, second BIGINT NOT NULL,
  payload BYTEA NOT NULL, PRIMARY KEY (run_id, agent_id, seq));
CREATE TABLE tokens (name TEXT PRIMARY KEY, hash_hex TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL);
)",
    R"(
CREATE TABLE step_instances (
  run_id TEXT NOT NULL REFERENCES runs(id), step TEXT NOT NULL, instance BIGINT NOT NULL,
  agent_id TEXT NOT NULL, result_json TEXT NOT NULL, log BYTEA NOT NULL, PRIMARY KEY (run_id, step, instance));
)",
    R"(
CREATE TABLE env_pools (name TEXT PRIMARY KEY, settings_json TEXT NOT NULL, removed BIGINT NOT NULL);
CREATE TABLE environments (
  id TEXT PRIMARY KEY, pool TEXT NOT NULL, spec_json TEXT NOT NULL, state TEXT NOT NULL,
  allocation_id TEXT NOT NULL, draining BIGINT NOT NULL, removed BIGINT NOT NULL, grown BIGINT NOT NULL,
  created_ns BIGINT NOT NULL, state_since_ns BIGINT NOT NULL, last_released_ns BIGINT NOT NULL,
  cleanup_deadline_ns BIGINT NOT NULL, cleanup_attempts BIGINT NOT NULL, note TEXT NOT NULL, log BYTEA NOT NULL);
CREATE INDEX environments_by_pool ON environments(pool, last_released_ns);
CREATE INDEX environments_free ON environments(pool, last_released_ns, id)
  WHERE state = 'available' AND draining = 0 AND removed = 0;
CREATE TABLE allocations (
  id TEXT PRIMARY KEY, pool TEXT NOT NULL, principal TEXT NOT NULL, requester TEXT NOT NULL,
  env_ids_json TEXT NOT NULL, state TEXT NOT NULL, outcome TEXT NOT NULL, idempotency_key TEXT NOT NULL,
  created_ns BIGINT NOT NULL, expires_ns BIGINT NOT NULL, max_expires_ns BIGINT NOT NULL,
  ended_ns BIGINT NOT NULL);
CREATE UNIQUE INDEX allocations_by_key ON allocations(principal, idempotency_key) WHERE idempotency_key != '';
CREATE INDEX allocations_by_state ON allocations(state, expires_ns);
CREATE INDEX allocations_by_requester ON allocations(requester, created_ns);
CREATE TABLE audit (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at_ns BIGINT NOT NULL, principal TEXT NOT NULL,
  action TEXT NOT NULL, pool TEXT NOT NULL, allocation_id TEXT NOT NULL, environment_id TEXT NOT NULL,
  outcome TEXT NOT NULL, detail TEXT NOT NULL);
)",
    R"(
ALTER TABLE agents ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE allocations ADD COLUMN revoke_pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX allocations_revoke_pending ON allocations(revoke_pending) WHERE revoke_pending = 1;
CREATE INDEX allocations_by_owner ON allocations(principal, created_ns);
CREATE INDEX allocations_ended ON allocations(ended_ns) WHERE state != 'active';
CREATE INDEX runs_ended ON runs(ended_ns) WHERE ended_ns > 0;
CREATE INDEX audit_by_time ON audit(at_ns);
DELETE FROM tokens;
)",
    R"(
ALTER TABLE run_agents ADD COLUMN load_ended_ns BIGINT NOT NULL DEFAULT 0;
)",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// Serialises migrations between replicas that start together (any constant of ours: "meridian" in ASCII).
constexpr int64_t kMigrationLock = 0x6d65726964696e;
// Held by the one server of a database for its session (ClaimSoleServer).
constexpr int64_t kServerLock = kMigrationLock + 1;

// TEXT columns hold UTF-8 without NUL bytes; SQLite stores any bytes. Free text (a hook's note, an event's
// detail) that is not valid UTF-8 keeps its valid part with U+FFFD in place of each bad byte, rather than
// failing the write.
std::string ValidText(std::string_view v) {
  if (FirstInvalidUtf8(v) == std::string_view::npos && v.find('\0') == std::string_view::npos)
    return std::string(v);
  std::string out;
  while (!v.empty()) {
    const size_t bad = std::min(FirstInvalidUtf8(v), v.find('\0'));
    if (bad == std::string_view::npos) {
      out.append(v);
      break;
    }
    out.append(v.substr(0, bad));
    out.append("\xEF\xBF\xBD");
    v.remove_prefix(bad + 1);
  }
  return out;
}

// One statement's parameters in order ($1, $2, …): text (UTF-8) or binary (BYTEA) values.
class Params {
 public:
  Params& Text(std::string_view v) {
    values_.push_back(ValidText(v));
    formats_.push_back(0);
    return *this;
  }
  Params& Blob(std::string_view v) {
    values_.emplace_back(v);
    formats_.push_back(1);
    return *this;
  }
  Params& Int(int64_t v) {
    values_.push_back(std::to_string(v));
    formats_.push_back(0);
    return *this;
  }
  Params& Bool(bool v) { return Int(v ? 1 : 0); }
  int size() const { return static_cast<int>(values_.size()); }
  // libpq's arrays, valid while this object lives unchanged.
  void Arrays(std::vector<const char*>& values, std::vector<int>& lengths) const {
    values.clear();
    lengths.clear();
    for (const auto& v : values_) {
      values.push_back(v.data());
      lengths.push_back(static_cast<int>(v.size()));
    }
  }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// A statement's result (binary format): rows of raw bytes and big-endian integers.
class Rows {
 public:
  explicit Rows(PGresult* r) : r_(r, &PQclear) {}
  const PGresult* raw() const { return r_.get(); }
  int size() const { return PQntuples(r_.get()); }
  // Rows the statement changed (INSERT, UPDATE, DELETE).
  int64_t changed() const {
    const char* n = PQcmdTuples(r_.get());
    return *n ? std::strtoll(n, nullptr, 10) : 0;
  }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  int64_t Int(int row, int col) const {
    const char* p = PQgetvalue(r_.get(), row, col);
    switch (PQgetlength(r_.get(), row, col)) {
      case 8: {
        uint64_t v;
        std::memcpy(&v, p, 8);
        return static_cast<int64_t>(be64toh(v));
      }
      case 4: {
        uint32_t v;
        std::memcpy(&v, p, 4);
        return static_cast<int32_t>(be32toh(v));
      }
      case 1:
        return static_cast<uint8_t>(*p);
      default:
        return 0;
    }
  }
  // Every row read by `read(rows, i)`.
  template <class Read>
  auto All(Read read) const -> std::vector<decltype(read(*this, 0))> {
    std::vector<decltype(read(*this, 0))> out;
    out.reserve(static_cast<size_t>(size()));
    for (int i = 0; i < size(); ++i) out.push_back(read(*this, i));
    return out;
  }
  template <class Read>
  auto One(Read read) const -> std::optional<decltype(read(*this, 0))> {
    if (size() == 0) return std::nullopt;
    return read(*this, 0);
  }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_;
};

constexpr const char* kRunColumns =
    "id, name, state, plan_yaml, owner, reason, created_ns, updated_ns, deadline_ns, start_at_ns, ended_ns, "
    "exit_code, summary_json";
RunRow ReadRun(const Rows& s, int i) {
  RunRow r;
  r.id = s.Text(i, 0);
  r.name = s.Text(i, 1);
  r.state = ParseRunState(s.Text(i, 2)).value_or(RunState::kErrored);  // unknown: ended, never resumed
  r.plan_yaml = s.Text(i, 3);
  r.owner = s.Text(i, 4);
  r.reason = s.Text(i, 5);
  r.created_ns = s.Int(i, 6);
  r.updated_ns = s.Int(i, 7);
  r.deadline_ns = s.Int(i, 8);
  r.start_at_ns = s.Int(i, 9);
  r.ended_ns = s.Int(i, 10);
  r.exit_code = static_cast<int>(s.Int(i, 11));
  r.summary_json = s.Text(i, 12);
  return r;
}
constexpr const char* kAgentColumns =
    "id, name, region, version, capacity, registered_ns, clock_offset_ns, rtt_ns, secret_hash";
AgentRow ReadAgent(const Rows& s, int i) {
  return AgentRow{s.Text(i, 0), s.Text(i, 1), s.Text(i, 2), s.Text(i, 3), static_cast<uint32_t>(s.Int(i, 4)),
                  s.Int(i, 5),  s.Int(i, 6),  s.Int(i, 7),  s.Text(i, 8)};
}
constexpr const char* kEnvColumns =
    "id, pool, spec_json, state, allocation_id, draining, removed, grown, created_ns, state_since_ns, "
    "last_released_ns, cleanup_deadline_ns, cleanup_attempts, note, log";
void BindEnv(Params& p, const EnvironmentRow& e) {
  p.Text(e.id).Text(e.pool).Text(e.spec_json).Text(EnvStateName(e.state)).Text(e.allocation_id);
  p.Bool(e.draining).Bool(e.removed).Bool(e.grown).Int(e.created_ns).Int(e.state_since_ns);
  p.Int(e.last_released_ns).Int(e.cleanup_deadline_ns).Int(e.cleanup_attempts).Text(e.note).Blob(e.log);
}
EnvironmentRow ReadEnv(const Rows& s, int i) {
  EnvironmentRow e;
  e.id = s.Text(i, 0);
  e.pool = s.Text(i, 1);
  e.spec_json = s.Text(i, 2);
  // A state this version does not know (a newer one wrote it) is never handed out.
  e.state = ParseEnvState(s.Text(i, 3)).value_or(EnvState::kDirty);
  e.allocation_id = s.Text(i, 4);
  e.draining = s.Int(i, 5) != 0;
  e.removed = s.Int(i, 6) != 0;
  e.grown = s.Int(i, 7) != 0;
  e.created_ns = s.Int(i, 8);
  e.state_since_ns = s.Int(i, 9);
  e.last_released_ns = s.Int(i, 10);
  e.cleanup_deadline_ns = s.Int(i, 11);
  e.cleanup_attempts = s.Int(i, 12);
  e.note = s.Text(i, 13);
  e.log = s.Text(i, 14);
  return e;
}
constexpr const char* kAllocColumns =
    "id, pool, principal, requester, env_ids_json, state, outcome, idempotency_key, created_ns, "
    "expires_ns, max_expires_ns, ended_ns, revoke_pending";
void BindAlloc(Params& p, const AllocationRow& a) {
  p.Text(a.id).Text(a.pool).Text(a.principal).Text(a.requester).Text(a.env_ids_json);
  p.Text(AllocationStateName(a.state)).Text(a.outcome).Text(a.idempotency_key).Int(a.created_ns);
  p.Int(a.expires_ns).Int(a.max_expires_ns).Int(a.ended_ns).Bool(a.revoke_pending);
}
AllocationRow ReadAlloc(const Rows& s, int i) {
  // A state this version does not know counts as ended: never extended, never released twice.
  const AllocationState state = ParseAllocationState(s.Text(i, 5)).value_or(AllocationState::kReleased);
  return AllocationRow{s.Text(i, 0), s.Text(i, 1), s.Text(i, 2),     s.Text(i, 3), s.Text(i, 4),
                       state,        s.Text(i, 6), s.Text(i, 7),     s.Int(i, 8),  s.Int(i, 9),
                       s.Int(i, 10), s.Int(i, 11), s.Int(i, 12) != 0};
}

class PostgresStore final : public Store {
 public:
  PostgresStore(PGconn* conn, std::string described) : conn_(conn), described_(std::move(described)) {}
  ~PostgresStore() override { PQfinish(conn_); }

  // One statement; prepared on its first use on this connection. A statement that finds the connection gone
  // reconnects, and a read outside a transaction runs again; a write fails (it may have committed before the
  // connection broke: the caller's 503 lets its client retry an idempotent request instead of the store
  // replaying one), and so does anything inside a transaction (lost with the session: the caller's
  // Transaction rolls back).
  Result<Rows> Run(const char* what, const std::string& sql, const Params& p = Params()) {
    for (int attempt = 0;; ++attempt) {
      auto r = RunOnce(what, sql, p);
      if (r.ok() || attempt > 0 || reconnecting_ || PQstatus(conn_) == CONNECTION_OK) return r;
      const bool was_in_txn = in_txn_;
      if (!Reconnect() || was_in_txn || !sql.starts_with("SELECT")) return r;
    }
  }

  Result<void> Exec(const char* what, const std::string& sql) {
    auto r = Run(what, sql);
    if (!r.ok()) return r.error();
    return {};
  }

  Result<void> Migrate() {
    // One transaction (PostgreSQL's DDL is transactional) under an advisory lock: a replica that starts
    // while another migrates waits and then finds nothing to do.
    if (auto r = Begin(); !r.ok()) return r;
    auto fail = [this](const Error& e) {
      Rollback();
      return MakeError(ErrorCode::kIo, fmt::format("store: migrate: {}", e.message));
    };
    if (auto r = Run("migration lock", fmt::format("SELECT pg_advisory_xact_lock({})", kMigrationLock));
        !r.ok())
      return fail(r.error());
    if (auto r = Exec("schema table", "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)");
        !r.ok())
      return fail(r.error());
    auto v = Run("schema version", "SELECT version FROM schema_version");
    if (!v.ok()) return fail(v.error());
    int version = 0;
    if (v->size() == 0) {
      if (auto r = Exec("schema version", "INSERT INTO schema_version VALUES (0)"); !r.ok())
        return fail(r.error());
    } else {
      version = static_cast<int>(v->Int(0, 0));
    }
    if (version > kSchemaVersion) {
      Rollback();
      return MakeError(ErrorCode::kIo, fmt::format("store: the database has schema version {}, newer than "
                                                   "this binary's {}; use a newer meridian",
                                                   version, kSchemaVersion));
    }
    for (int next = version; next < kSchemaVersion; ++next) {
      // Several statements in one string: the simple query protocol (no parameters, not prepared).
      Rows r(PQexec(conn_, kMigrations[next]));
      if (PQresultStatus(r.raw()) != PGRES_COMMAND_OK) {
        Error e =
            MakeError(ErrorCode::kIo, fmt::format("migration {} failed: {}", next + 1, ErrorText(r.raw())));
        Rollback();
        return e;
      }
      if (auto u = Exec("schema version", fmt::format("UPDATE schema_version SET version = {}", next + 1));
          !u.ok())
        return fail(u.error());
    }
    return Commit();
  }

  int SchemaVersion() override {
    auto r = Run("schema version", "SELECT version FROM schema_version");
    if (!r.ok() || r->size() == 0) return -1;
    return static_cast<int>(r->Int(0, 0));
  }
  Result<void> Ready() override {
    auto r = Run("ready", "SELECT version FROM schema_version");
    if (!r.ok()) return r.error();
    const int version = r->size() ? static_cast<int>(r->Int(0, 0)) : -1;
    if (version != kSchemaVersion) {
      return MakeError(ErrorCode::kIo, fmt::format("store: schema version {}, this binary needs {}", version,
                                                   kSchemaVersion));
    }
    return {};
  }
  std::string Describe() const override { return described_; }
  Result<void> ClaimSoleServer() override {
    auto r = Run("claim the database", fmt::format("SELECT pg_try_advisory_lock({})", kServerLock));
    if (!r.ok()) return r.error();
    if (r->size() == 0 || r->Int(0, 0) == 0) {
      return MakeError(ErrorCode::kIo,
                       fmt::format("store: another meridian serve uses {} (one server per database: several "
                                   "replicas on one database are not supported yet)",
                                   described_));
    }
    sole_ = true;
    return {};
  }

  // ---- runs ---------------------------------------------------------------------------------------------

  Result<void> CreateRun(const RunRow& r) override {
    // The run and its first event in one statement (the CTE's insert comes first, so the event's reference
    // holds).
    Params p;
    BindRun(p, r);
    auto q = Run("create run",
                 fmt::format("WITH r AS (INSERT INTO runs ({}) VALUES "
                             "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id) "
                             "INSERT INTO run_events (run_id, at_ns, from_state, to_state, detail) "
                             "SELECT id, $7, '', $3, 'created' FROM r",
                             kRunColumns),
                 p);
    if (!q.ok()) return q.error();
    return {};
  }

  Result<std::optional<RunRow>> GetRun(const std::string& id) override {
    auto r = Run("get run", fmt::format("SELECT {} FROM runs WHERE id = $1", kRunColumns), Params().Text(id));
    if (!r.ok()) return r.error();
    return r->One(ReadRun);
  }

  Result<std::vector<RunRow>> ListRuns(size_t limit, bool active_only) override {
    auto r =
        Run("list runs",
            fmt::format("SELECT {} FROM runs {} ORDER BY created_ns DESC, id COLLATE \"C\" DESC LIMIT $1",
                        kRunColumns, active_only ? "WHERE state IN " + RunStatesSql(/*terminal=*/false) : ""),
            Params().Int(static_cast<int64_t>(limit)));
    if (!r.ok()) return r.error();
    return r->All(ReadRun);
  }

  Result<bool> TransitionRun(const RunRow& r, RunState from, const std::string& detail) override {
    // Guard and event in one statement: the event is written only when the guarded update changed the row.
    Params p;
    p.Text(RunStateName(r.state)).Text(r.reason).Int(r.updated_ns).Int(r.deadline_ns).Int(r.start_at_ns);
    p.Int(r.ended_ns).Int(r.exit_code).Text(r.summary_json).Text(r.id).Text(RunStateName(from)).Text(detail);
    auto q = Run("transition run",
                 "WITH u AS (UPDATE runs SET state=$1, reason=$2, updated_ns=$3, deadline_ns=$4, "
                 "start_at_ns=$5, ended_ns=$6, exit_code=$7, summary_json=$8 WHERE id=$9 AND state=$10 "
                 "RETURNING id) INSERT INTO run_events (run_id, at_ns, from_state, to_state, detail) "
                 "SELECT id, $3, $10, $1, $11 FROM u",
                 p);
    if (!q.ok()) return q.error();
    return q->changed() > 0;
  }

  Result<void> UpdateRun(const RunRow& r) override {
    Params p;
    p.Text(r.reason).Int(r.updated_ns).Int(r.deadline_ns).Int(r.start_at_ns).Int(r.ended_ns);
    p.Int(r.exit_code).Text(r.summary_json).Text(r.id);
    auto q = Run("update run",
                 "UPDATE runs SET reason=$1, updated_ns=$2, deadline_ns=$3, start_at_ns=$4, ended_ns=$5, "
                 "exit_code=$6, summary_json=$7 WHERE id=$8",
                 p);
    if (!q.ok()) return q.error();
    return {};
  }

  Result<std::vector<EventRow>> Events(const std::string& run_id) override {
    auto r = Run("list events",
                 "SELECT id, run_id, at_ns, from_state, to_state, detail FROM run_events WHERE run_id=$1 "
                 "ORDER BY id",
                 Params().Text(run_id));
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) {
      return EventRow{s.Int(i, 0), s.Text(i, 1), s.Int(i, 2), s.Text(i, 3), s.Text(i, 4), s.Text(i, 5)};
    });
  }

  // ---- agents, assignments, reports ---------------------------------------------------------------------

  Result<void> PutAgent(const AgentRow& a) override {
    Params p;
    p.Text(a.id).Text(a.name).Text(a.region).Text(a.version).Int(a.capacity);
    p.Int(a.registered_ns).Int(a.clock_offset_ns).Int(a.rtt_ns).Text(a.secret_hash);
    auto q =
        Run("put agent",
            fmt::format("INSERT INTO agents ({}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (id) DO "
                        "UPDATE SET name=$2, region=$3, version=$4, capacity=$5, registered_ns=$6, "
                        "clock_offset_ns=$7, rtt_ns=$8, secret_hash=$9",
                        kAgentColumns),
            p);
    if (!q.ok()) return q.error();
    return {};
  }
  Result<std::optional<AgentRow>> GetAgent(const std::string& id) override {
    auto r =
        Run("get agent", fmt::format("SELECT {} FROM agents WHERE id=$1", kAgentColumns), Params().Text(id));
    if (!r.ok()) return r.error();
    return r->One(ReadAgent);
  }
  Result<std::vector<AgentRow>> ListAgents() override {
    auto r = Run("list agents", fmt::format("SELECT {} FROM agents ORDER BY registered_ns, id COLLATE \"C\"",
                                            kAgentColumns));
    if (!r.ok()) return r.error();
    return r->All(ReadAgent);
  }
  Result<void> DeleteAgent(const std::string& id) override {
    auto q = Run("delete agent", "DELETE FROM agents WHERE id=$1", Params().Text(id));
    if (!q.ok()) return q.error();
    return {};
  }

  Result<void> PutAssignment(const AssignmentRow& a) override {
    Params p;
    p.Text(a.run_id).Text(a.agent_id).Text(a.region).Int(a.slot).Text(AssignmentStateName(a.state));
    p.Int(a.ready_ns).Int(a.started_ns).Int(a.last_seq).Int(a.acked_seq);
    p.Int(static_cast<int64_t>(a.requests)).Int(static_cast<int64_t>(a.connections));
    p.Int(static_cast<int64_t>(a.retries)).Int(a.load_ended_ns);
    auto q = Run("put assignment",
                 "INSERT INTO run_agents (run_id, agent_id, region, slot, state, ready_ns, started_ns, "
                 "last_seq, acked_seq, requests, connections, retries, load_ended_ns) VALUES "
                 "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (run_id, agent_id) DO UPDATE SET "
                 "region=$3, slot=$4, state=$5, ready_ns=$6, started_ns=$7, last_seq=$8, acked_seq=$9, "
                 "requests=$10, connections=$11, retries=$12, load_ended_ns=$13",
                 p);
    if (!q.ok()) return q.error();
    return {};
  }
  Result<std::vector<AssignmentRow>> Assignments(const std::string& run_id) override {
    auto r = Run("list assignments",
                 "SELECT run_id, agent_id, region, slot, state, ready_ns, started_ns, last_seq, acked_seq, "
                 "requests, connections, retries, load_ended_ns FROM run_agents WHERE run_id=$1 "
                 "ORDER BY region COLLATE \"C\", slot",
                 Params().Text(run_id));
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) {
      return AssignmentRow{s.Text(i, 0),
                           s.Text(i, 1),
                           s.Text(i, 2),
                           static_cast<uint32_t>(s.Int(i, 3)),
                           ParseAssignmentState(s.Text(i, 4)).value_or(AssignmentState::kLost),
                           s.Int(i, 5),
                           s.Int(i, 6),
                           s.Int(i, 7),
                           s.Int(i, 8),
                           static_cast<uint64_t>(s.Int(i, 9)),
                           static_cast<uint64_t>(s.Int(i, 10)),
                           static_cast<uint64_t>(s.Int(i, 11)),
                           s.Int(i, 12)};
    });
  }

  Result<bool> InsertSample(const std::string& run_id, const SampleRow& r) override {
    auto q = Run("insert sample",
                 "INSERT INTO samples (run_id, agent_id, seq, second, payload) VALUES ($1,$2,$3,$4,$5) "
                 "ON CONFLICT DO NOTHING",
                 Params().Text(run_id).Text(r.agent_id).Int(r.seq).Int(r.second).Blob(r.payload));
    if (!q.ok()) return q.error();
    return q->changed() > 0;
  }
  Result<std::vector<SampleRow>> Samples(const std::string& run_id) override {
    auto r = Run("list samples",
                 "SELECT agent_id, seq, second, payload FROM samples WHERE run_id=$1 ORDER BY agent_id "
                 "COLLATE \"C\", seq",
                 Params().Text(run_id));
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) {
      return SampleRow{s.Text(i, 0), s.Int(i, 1), s.Int(i, 2), s.Text(i, 3)};
    });
  }
  Result<void> PutSeries(const std::string& run_id, uint64_t key, const std::string& region,
                         const std::string& scenario, const std::string& name, int status,
                         const std::string& error) override {
    Params p;
    p.Text(run_id).Int(static_cast<int64_t>(key)).Text(region).Text(scenario).Text(name).Int(status);
    p.Text(error);
    auto q = Run("put series",
                 "INSERT INTO series (run_id, series_key, region, scenario, name, status, error) VALUES "
                 "($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING",
                 p);
    if (!q.ok()) return q.error();
    return {};
  }

  Result<void> PutStepInstance(const std::string& run_id, const StepInstanceRow& r) override {
    Params p;
    p.Text(run_id).Text(r.step).Int(r.instance).Text(r.agent_id).Text(r.result_json).Blob(r.log);
    auto q = Run("put step instance",
                 "INSERT INTO step_instances (run_id, step, instance, agent_id, result_json, log) VALUES "
                 "($1,$2,$3,$4,$5,$6) ON CONFLICT (run_id, step, instance) DO UPDATE SET agent_id=$4, "
                 "result_json=$5, log=$6",
                 p);
    if (!q.ok()) return q.error();
    return {};
  }
  Result<std::vector<StepInstanceRow>> StepInstances(const std::string& run_id, bool with_logs) override {
    auto r = Run("list step instances",
                 fmt::format("SELECT step, instance, agent_id, result_json, {} FROM step_instances WHERE "
                             "run_id=$1 ORDER BY step COLLATE \"C\", instance",
                             with_logs ? "log" : "''::bytea"),
                 Params().Text(run_id));
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) {
      return StepInstanceRow{s.Text(i, 0), static_cast<uint32_t>(s.Int(i, 1)), s.Text(i, 2), s.Text(i, 3),
                             s.Text(i, 4)};
    });
  }

  // ---- tokens -------------------------------------------------------------------------------------------

  Result<void> ReplaceTokens(const std::vector<TokenRow>& tokens) override {
    Transaction txn(*this);
    if (!txn.ok()) return txn.error();
    if (auto r = Exec("replace tokens", "DELETE FROM tokens"); !r.ok()) return r;
    for (const auto& t : tokens) {
      auto q = Run("insert token", "INSERT INTO tokens (name, hash_hex, scopes) VALUES ($1,$2,$3)",
                   Params().Text(t.name).Text(t.hash_hex).Text(t.scopes));
      if (!q.ok()) return q.error();
    }
    return txn.Commit();
  }
  Result<std::optional<TokenRow>> FindToken(const std::string& hash_hex) override {
    auto r = Run("find token", "SELECT name, hash_hex, scopes FROM tokens WHERE hash_hex=$1",
                 Params().Text(hash_hex));
    if (!r.ok()) return r.error();
    return r->One([](const Rows& s, int i) { return TokenRow{s.Text(i, 0), s.Text(i, 1), s.Text(i, 2)}; });
  }

  // ---- environment leases ---------------------------------------------------------------------------------

  // READ COMMITTED: every guarded UPDATE re-checks its guard on the row as the other writer committed it.
  // Not nested (as SQLite's BEGIN IMMEDIATE is not): one transaction at a time per connection.
  Result<void> Begin() override {
    if (in_txn_) return MakeError(ErrorCode::kInternal, "store: begin: a transaction is already open");
    auto r = Exec("begin", "BEGIN");
    if (r.ok()) in_txn_ = true;
    return r;
  }
  // Never replayed on a new session (where COMMIT would only warn), and a transaction that had failed
  // (COMMIT answers ROLLBACK) is an error.
  Result<void> Commit() override {
    auto r = Run("commit", "COMMIT");
    in_txn_ = false;
    if (!r.ok()) return r.error();
    if (std::string_view(PQcmdStatus(const_cast<PGresult*>(r->raw()))) != "COMMIT") {
      return MakeError(ErrorCode::kIo, "store: commit: the transaction was rolled back");
    }
    return {};
  }
  void Rollback() override {
    in_txn_ = false;
    (void)Exec("rollback", "ROLLBACK");
  }

  Result<void> PutPool(const PoolRow& p) override {
    auto q = Run("put pool",
                 "INSERT INTO env_pools (name, settings_json, removed) VALUES ($1,$2,$3) ON CONFLICT (name) "
                 "DO UPDATE SET settings_json=$2, removed=$3",
                 Params().Text(p.name).Text(p.settings_json).Bool(p.removed));
    if (!q.ok()) return q.error();
    return {};
  }
  Result<std::vector<PoolRow>> Pools() override {
    auto r =
        Run("list pools", "SELECT name, settings_json, removed FROM env_pools ORDER BY name COLLATE \"C\"");
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) { return PoolRow{s.Text(i, 0), s.Text(i, 1), s.Int(i, 2) != 0}; });
  }
  Result<void> DeletePool(const std::string& name) override {
    auto q = Run("delete pool", "DELETE FROM env_pools WHERE name=$1", Params().Text(name));
    if (!q.ok()) return q.error();
    return {};
  }

  Result<void> InsertEnvironment(const EnvironmentRow& e) override {
    Params p;
    BindEnv(p, e);
    auto q = Run("insert environment",
                 fmt::format("INSERT INTO environments ({}) VALUES "
                             "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)",
                             kEnvColumns),
                 p);
    if (!q.ok()) return q.error();
    return {};
  }
  Result<bool> UpdateEnvironment(const EnvironmentRow& e, EnvState expected_state,
                                 const std::string& expected_allocation) override {
    Params p;
    BindEnv(p, e);
    p.Text(EnvStateName(expected_state)).Text(expected_allocation);
    auto q = Run("update environment",
                 "UPDATE environments SET pool=$2, spec_json=$3, state=$4, allocation_id=$5, draining=$6, "
                 "removed=$7, grown=$8, created_ns=$9, state_since_ns=$10, last_released_ns=$11, "
                 "cleanup_deadline_ns=$12, cleanup_attempts=$13, note=$14, log=$15 WHERE id=$1 AND "
                 "state=$16 AND allocation_id=$17",
                 p);
    if (!q.ok()) return q.error();
    return q->changed() > 0;
  }
  Result<bool> DeleteEnvironment(const std::string& id, EnvState expected_state) override {
    auto q = Run("delete environment", "DELETE FROM environments WHERE id=$1 AND state=$2",
                 Params().Text(id).Text(EnvStateName(expected_state)));
    if (!q.ok()) return q.error();
    return q->changed() > 0;
  }
  Result<std::optional<EnvironmentRow>> GetEnvironment(const std::string& id) override {
    auto r = Run("get environment", fmt::format("SELECT {} FROM environments WHERE id=$1", kEnvColumns),
                 Params().Text(id));
    if (!r.ok()) return r.error();
    return r->One(ReadEnv);
  }
  Result<std::vector<EnvironmentRow>> Environments(const std::string& pool, std::optional<EnvState> state,
                                                   bool free_only) override {
    static const std::string kList = [] {
      std::string cols = kEnvColumns;
      cols.replace(cols.rfind("log"), 3, "''::bytea");  // lists leave the logs out
      return cols;
    }();
    Params p;
    std::string where;
    if (free_only) {
      where = "pool = $1 AND state = 'available' AND draining = 0 AND removed = 0";
      p.Text(pool);
    } else {
      where = "TRUE";
      if (!pool.empty()) {
        p.Text(pool);
        where += fmt::format(" AND pool = ${}", p.size());
      }
      if (state) {
        p.Text(EnvStateName(*state));
        where += fmt::format(" AND state = ${}", p.size());
      }
    }
    auto r = Run("list environments",
                 fmt::format("SELECT {} FROM environments WHERE {} ORDER BY {}", kList, where,
                             free_only ? "last_released_ns, id COLLATE \"C\""
                                       : "pool COLLATE \"C\", last_released_ns, id COLLATE \"C\""),
                 p);
    if (!r.ok()) return r.error();
    return r->All(ReadEnv);
  }

  Result<void> InsertAllocation(const AllocationRow& a) override {
    Params p;
    BindAlloc(p, a);
    auto q =
        Run("insert allocation",
            fmt::format("INSERT INTO allocations ({}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
                        kAllocColumns),
            p);
    if (!q.ok()) return q.error();
    return {};
  }
  Result<bool> UpdateAllocation(const AllocationRow& a, AllocationState expected_state) override {
    Params p;
    BindAlloc(p, a);
    p.Text(AllocationStateName(expected_state));
    auto q = Run("update allocation",
                 "UPDATE allocations SET pool=$2, principal=$3, requester=$4, env_ids_json=$5, state=$6, "
                 "outcome=$7, idempotency_key=$8, created_ns=$9, expires_ns=$10, max_expires_ns=$11, "
                 "ended_ns=$12, revoke_pending=$13 WHERE id=$1 AND state=$14",
                 p);
    if (!q.ok()) return q.error();
    return q->changed() > 0;
  }
  Result<std::optional<AllocationRow>> GetAllocation(const std::string& id) override {
    auto r = Run("get allocation", fmt::format("SELECT {} FROM allocations WHERE id=$1", kAllocColumns),
                 Params().Text(id));
    if (!r.ok()) return r.error();
    return r->One(ReadAlloc);
  }
  Result<std::optional<AllocationRow>> FindAllocationByKey(const std::string& principal,
                                                           const std::string& key) override {
    auto r = Run(
        "find allocation",
        fmt::format("SELECT {} FROM allocations WHERE principal=$1 AND idempotency_key=$2", kAllocColumns),
        Params().Text(principal).Text(key));
    if (!r.ok()) return r.error();
    return r->One(ReadAlloc);
  }
  Result<std::vector<AllocationRow>> Allocations(const AllocationFilter& f) override {
    Params p;
    std::string where = "TRUE";
    if (!f.principal.empty()) {
      p.Text(f.principal);
      where += fmt::format(" AND principal = ${}", p.size());
    }
    if (!f.requester.empty()) {
      p.Text(f.requester);
      where += fmt::format(" AND requester = ${}", p.size());
    }
    if (f.active_only) where += " AND state = 'active'";
    p.Int(static_cast<int64_t>(f.limit));
    auto r =
        Run("list allocations",
            fmt::format(
                "SELECT {} FROM allocations WHERE {} ORDER BY created_ns DESC, id COLLATE \"C\" LIMIT ${}",
                kAllocColumns, where, p.size()),
            p);
    if (!r.ok()) return r.error();
    return r->All(ReadAlloc);
  }
  Result<std::vector<AllocationRow>> PendingRevokes() override {
    auto r = Run("pending revokes",
                 fmt::format("SELECT {} FROM allocations WHERE revoke_pending = 1 ORDER BY id COLLATE \"C\"",
                             kAllocColumns));
    if (!r.ok()) return r.error();
    return r->All(ReadAlloc);
  }
  Result<std::vector<AllocationRow>> ExpiredAllocations(int64_t now_ns) override {
    auto r = Run("expired allocations",
                 fmt::format("SELECT {} FROM allocations WHERE state = 'active' AND expires_ns <= $1 "
                             "ORDER BY expires_ns, id COLLATE \"C\"",
                             kAllocColumns),
                 Params().Int(now_ns));
    if (!r.ok()) return r.error();
    return r->All(ReadAlloc);
  }
  Result<int64_t> AppendAudit(const AuditRow& a) override {
    Params p;
    p.Int(a.at_ns).Text(a.principal).Text(a.action).Text(a.pool).Text(a.allocation_id);
    p.Text(a.environment_id).Text(a.outcome).Text(a.detail);
    auto r = Run("append audit",
                 "INSERT INTO audit (at_ns, principal, action, pool, allocation_id, environment_id, outcome, "
                 "detail) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
                 p);
    if (!r.ok()) return r.error();
    return r->Int(0, 0);
  }
  Result<std::vector<AuditRow>> Audit(const AuditFilter& f) override {
    Params p;
    p.Int(f.after_id).Text(f.pool).Text(f.allocation_id).Text(f.environment_id).Text(f.action);
    p.Int(static_cast<int64_t>(f.limit));
    auto r =
        Run("list audit",
            "SELECT id, at_ns, principal, action, pool, allocation_id, environment_id, outcome, detail "
            "FROM audit WHERE id > $1 AND ($2 = '' OR pool = $2) AND ($3 = '' OR allocation_id = $3) AND "
            "($4 = '' OR environment_id = $4) AND ($5 = '' OR action = $5) ORDER BY id LIMIT $6",
            p);
    if (!r.ok()) return r.error();
    return r->All([](const Rows& s, int i) {
      return AuditRow{s.Int(i, 0),  s.Int(i, 1),  s.Text(i, 2), s.Text(i, 3), s.Text(i, 4),
                      s.Text(i, 5), s.Text(i, 6), s.Text(i, 7), s.Text(i, 8)};
    });
  }

  Result<PruneResult> Prune(const PruneRequest& rq) override {
    PruneResult out;
    const auto batch = static_cast<int64_t>(rq.batch);
    Transaction txn(*this);
    if (!txn.ok()) return txn.error();
    if (rq.runs_before_ns > 0) {
      auto ids = Run("prune runs",
                     "SELECT id FROM runs WHERE ended_ns > 0 AND ended_ns < $1 AND state IN " +
                         RunStatesSql(/*terminal=*/true) + " ORDER BY ended_ns LIMIT $2",
                     Params().Int(rq.runs_before_ns).Int(batch));
      if (!ids.ok()) return ids.error();
      for (const auto& id : ids->All([](const Rows&s, int i) { return s.Text(i, 0); })) {
        for (const char* sql :
             {"DELETE FROM run_events WHERE run_id=$1", "DELETE FROM run_agents WHERE run_id=$1",
              "DELETE FROM samples WHERE run_id=$1", "DELETE FROM series WHERE run_id=$1",
              "DELETE FROM step_instances WHERE run_id=$1", "DELETE FROM runs WHERE id=$1"}) {
          if (auto d = Run("prune runs", sql, Params().Text(id)); !d.ok()) return d.error();
        }
        out.runs.push_back(id);
      }
    }
    if (rq.allocations_before_ns > 0) {
      auto d = Run("prune allocations",
                   "DELETE FROM allocations WHERE id IN (SELECT id FROM allocations WHERE state != 'active' "
                   "AND revoke_pending = 0 AND ended_ns > 0 AND ended_ns < $1 ORDER BY ended_ns LIMIT $2)",
                   Params().Int(rq.allocations_before_ns).Int(batch));
      if (!d.ok()) return d.error();
      out.allocations = static_cast<size_t>(d->changed());
    }
    if (rq.audit_before_ns > 0) {
      auto d = Run("prune audit",
                   "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ns < $1 ORDER BY at_ns "
                   "LIMIT $2)",
                   Params().Int(rq.audit_before_ns).Int(batch));
      if (!d.ok()) return d.error();
      out.audit = static_cast<size_t>(d->changed());
    }
    if (auto c = txn.Commit(); !c.ok()) return c.error();
    return out;
  }

 private:
  static void BindRun(Params& p, const RunRow& r) {
    p.Text(r.id).Text(r.name).Text(RunStateName(r.state)).Text(r.plan_yaml).Text(r.owner).Text(r.reason);
    p.Int(r.created_ns).Int(r.updated_ns).Int(r.deadline_ns).Int(r.start_at_ns).Int(r.ended_ns);
    p.Int(r.exit_code).Text(r.summary_json);
  }

  static std::string ErrorText(const PGresult* r) {
    std::string text = r ? PQresultErrorMessage(r) : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text.empty() ? "no result" : text;
  }

  Result<Rows> RunOnce(const char* what, const std::string& sql, const Params& p) {
    if (claim_lost_) {  // taken again once the other session (or our own dead one) is gone
      Rows claim(PQexec(conn_, fmt::format("SELECT pg_try_advisory_lock({})", kServerLock).c_str()));
      if (PQresultStatus(claim.raw()) == PGRES_TUPLES_OK && claim.size() == 1 && claim.Int(0, 0) != 0) {
        claim_lost_ = false;
        LogWarn("store: {} is this server's again", described_);
      } else {
        return MakeError(ErrorCode::kIo,
                         fmt::format("store: {}: another meridian serve holds the database since this one "
                                     "was disconnected",
                                     what));
      }
    }
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      const std::string name = fmt::format("m{}", prepared_.size());
      Rows prep(PQprepare(conn_, name.c_str(), sql.c_str(), p.size(), nullptr));
      if (PQresultStatus(prep.raw()) != PGRES_COMMAND_OK) return Fail(what, prep.raw());
      it = prepared_.emplace(sql, name).first;
    }
    std::vector<const char*> values;
    std::vector<int> lengths;
    p.Arrays(values, lengths);
    Rows rows(PQexecPrepared(conn_, it->second.c_str(), p.size(), values.data(), lengths.data(), p.formats(),
                             /*resultFormat=*/1));
    const ExecStatusType st = PQresultStatus(rows.raw());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Fail(what, rows.raw());
    return rows;
  }

  Error Fail(const char* what, const PGresult* r) {
    return MakeError(ErrorCode::kIo,
                     fmt::format("store: {}: {}", what,
                                 PQstatus(conn_) == CONNECTION_OK ? ErrorText(r)
                                                                  : "the connection to PostgreSQL is lost: " +
                                                                        std::string(PQerrorMessage(conn_))));
  }

  // A new session: prepared statements and advisory locks are per session. A server that cannot take its
  // lock again (another one started meanwhile) keeps failing rather than share the database.
  bool Reconnect() {
    PQreset(conn_);
    prepared_.clear();
    in_txn_ = false;
    if (PQstatus(conn_) != CONNECTION_OK) {
      LogWarn("store: the connection to {} is lost and could not be made again yet", described_);
      return false;
    }
    LogWarn("store: the connection to {} was lost; connected again", described_);
    reconnecting_ = true;  // the claim's own statement does not reconnect again
    const bool claimed = !sole_ || ClaimSoleServer().ok();
    reconnecting_ = false;
    if (!claimed) {
      claim_lost_ = true;  // every statement fails from now on
      return false;
    }
    return true;
  }

  PGconn* conn_;
  std::string described_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL → statement name
  bool in_txn_ = false;
  bool sole_ = false;        // ClaimSoleServer succeeded: take the lock again after a reconnect
  bool claim_lost_ = false;  // and could not, after one
  bool reconnecting_ = false;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenPostgres(const std::string& url) {
  // The URL's own settings win over these defaults (expand_dbname: later keywords override earlier ones).
  // keepalives: a database host that vanished is noticed in about 25 s rather than at the kernel's 2 h.
  const char* keys[] = {"application_name",    "connect_timeout",  "client_encoding", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "dbname",          nullptr};
  const char* values[] = {"meridian", "10", "UTF8", "10", "5", "3", url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!conn) return MakeError(ErrorCode::kIo, "cannot connect to PostgreSQL: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    PQfinish(conn);
    // libpq may quote the URL, or the part it could not parse, in its message: no password in either.
    if (char* parse_error = nullptr; PQconninfoOption* opts = PQconninfoParse(url.c_str(), &parse_error)) {
      for (PQconninfoOption* o = opts; o->keyword; ++o) {
        if (std::string_view(o->keyword) != "password" || !o->val || !*o->val) continue;
        for (size_t at = msg.find(o->val); at != std::string::npos; at = msg.find(o->val, at))
          msg.replace(at, std::strlen(o->val), "***");
      }
      PQconninfoFree(opts);
    } else {
      PQfreemem(parse_error);
      msg = "the URL is not a valid libpq URL (check its percent-encoding)";
    }
    return MakeError(ErrorCode::kIo,
                     fmt::format("cannot connect to the store {}: {}", RedactStoreSpec(url), msg));
  }
  auto store = std::make_unique<PostgresStore>(conn, RedactStoreSpec(url));
  // Notices (a CREATE … IF NOT EXISTS that found one) are not errors: not printed on stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  if (auto r = store->Migrate(); !r.ok()) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace meridian::store
