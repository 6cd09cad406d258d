// The SQLite backend: WAL mode, synchronous=NORMAL (a crash of the process loses nothing committed; a power
// loss may lose the last transactions), 1 KiB pages, checkpoints every 10,000 WAL pages, busy timeout, cached
// prepared statements, versioned migrations in one table.

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "core/files.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace meridian::store {
namespace {

// Each entry migrates from version i to i+1. Never edit a released entry: add a new one.
constexpr const char* kMigrations[] = {
    R"(
CREATE TABLE runs (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, plan_yaml TEXT NOT NULL, owner TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
  deadline_ns INTEGER NOT NULL DEFAULT 0, start_at_ns INTEGER NOT NULL DEFAULT 0, ended_ns INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER NOT NULL DEFAULT -1, summary_json TEXT NOT NULL DEFAULT '');
CREATE INDEX runs_by_state ON runs(state);
CREATE TABLE run_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(id), at_ns INTEGER NOT NULL,
  from_state TEXT NOT NULL, to_state TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX run_events_by_run ON run_events(run_id, id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, region TEXT NOT NULL, version TEXT NOT NULL, capacity INTEGER NOT NULL,
  registered_ns INTEGER NOT NULL, clock_offset_ns INTEGER NOT NULL, rtt_ns INTEGER NOT NULL);
CREATE TABLE run_agents (
  run_id TEXT NOT NULL REFERENCES runs(id), agent_id TEXT NOT NULL, region TEXT NOT NULL, slot INTEGER NOT NULL,
  state TEXT NOT NULL, ready_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL, last_seq INTEGER NOT NULL,
  acked_seq INTEGER NOT NULL, requests INTEGER NOT NULL, connections INTEGER NOT NULL,
  retries INTEGER NOT NULL, PRIMARY KEY (run_id, agent_id));
CREATE TABLE series (
  run_id TEXT NOT NULL, series_key INTEGER NOT NULL, region TEXT NOT NULL, scenario TEXT NOT NULL,
  name TEXT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL, PRIMARY KEY (run_id, region, series_key));
CREATE TABLE samples (
  run_id TEXT NOT NULL, agent_id TEXT NOT NULL, seq INTEGER NOT NULL, second INTEGER NOT NULL,
  payload BLOB NOT NULL, PRIMARY KEY (run_id, agent_id, seq));
CREATE TABLE tokens (name TEXT PRIMARY KEY, hash_hex TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL);
)",
    R"(
CREATE TABLE step_instances (
  run_id TEXT NOT NULL REFERENCES runs(id), step TEXT NOT NULL, instance INTEGER NOT NULL,
  agent_id TEXT NOT NULL, result_json TEXT NOT NULL, log BLOB NOT NULL, PRIMARY KEY (run_id, step, instance));
)",
    R"(
CREATE TABLE env_pools (name TEXT PRIMARY KEY, settings_json TEXT NOT NULL, removed INTEGER NOT NULL);
CREATE TABLE environments (
  id TEXT PRIMARY KEY, pool TEXT NOT NULL, spec_json TEXT NOT NULL, state TEXT NOT NULL,
  allocation_id TEXT NOT NULL, draining INTEGER NOT NULL, removed INTEGER NOT NULL, grown INTEGER NOT NULL,
  created_ns INTEGER NOT NULL, state_since_ns INTEGER NOT NULL, last_released_ns INTEGER NOT NULL,
  cleanup_deadline_ns INTEGER NOT NULL, cleanup_attempts INTEGER NOT NULL, note TEXT NOT NULL, log BLOB NOT NULL);
CREATE INDEX environments_by_pool ON environments(pool, last_released_ns);
CREATE INDEX environments_free ON environments(pool, last_released_ns, id)
  WHERE state = 'available' AND draining = 0 AND removed = 0;
CREATE TABLE allocations (
  id TEXT PRIMARY KEY, pool TEXT NOT NULL, principal TEXT NOT NULL, requester TEXT NOT NULL,
  env_ids_json TEXT NOT NULL, state TEXT NOT NULL, outcome TEXT NOT NULL, idempotency_key TEXT NOT NULL,
  created_ns INTEGER NOT NULL, expires_ns INTEGER NOT NULL, max_expires_ns INTEGER NOT NULL,
  ended_ns INTEGER NOT NULL);
CREATE UNIQUE INDEX allocations_by_key ON allocations(principal, idempotency_key) WHERE idempotency_key != '';
CREATE INDEX allocations_by_state ON allocations(state, expires_ns);
CREATE INDEX allocations_by_requester ON allocations(requester, created_ns);
CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at_ns INTEGER NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL,
  pool TEXT NOT NULL, allocation_id TEXT NOT NULL, environment_id TEXT NOT NULL, outcome TEXT NOT NULL,
  detail TEXT NOT NULL);
)",
    R"(
ALTER TABLE agents ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE allocations ADD COLUMN revoke_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX allocations_revoke_pending ON allocations(revoke_pending) WHERE revoke_pending = 1;
CREATE INDEX allocations_by_owner ON allocations(principal, created_ns);
CREATE INDEX allocations_ended ON allocations(ended_ns) WHERE state != 'active';
CREATE INDEX runs_ended ON runs(ended_ns) WHERE ended_ns > 0;
CREATE INDEX audit_by_time ON audit(at_ns);
DELETE FROM tokens;
)",
    R"(
ALTER TABLE run_agents ADD COLUMN load_ended_ns INTEGER NOT NULL DEFAULT 0;
)",
};

static_assert(std::size(kMigrations) == kSchemaVersion);

// Prepared statements, kept for the connection's life: preparing costs more than running most of them.
struct StmtCache {
  sqlite3* db = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> map;
  void Clear() {
    for (auto& [sql, st] : map) sqlite3_finalize(st);
    map.clear();
  }
};

// One use of a cached statement: reset and unbound again when it goes out of scope.
class Stmt {
 public:
  Stmt(StmtCache& cache, const std::string& sql) : db_(cache.db) {
    auto it = cache.map.find(sql);
    if (it != cache.map.end()) {
      s_ = it->second;
    } else if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s_, nullptr) == SQLITE_OK) {
      cache.map.emplace(sql, s_);
    } else {
      s_ = nullptr;
    }
  }
  ~Stmt() {
    if (s_) {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return s_ != nullptr; }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, bool v) { return Bind(i, int64_t{v ? 1 : 0}); }
  int Step() { return sqlite3_step(s_); }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  std::string Text(int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(s_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
  }
  // The one row the query finds (none: an empty optional), read by `read`.
  template <class Read>
  auto One(Read read, const char* what) -> Result<std::optional<decltype(read(*this))>> {
    using Row = decltype(read(*this));
    const int rc = Step();
    if (rc == SQLITE_DONE) return std::optional<Row>();
    if (rc != SQLITE_ROW) return Fail(what);
    return std::optional<Row>(read(*this));
  }
  // Every row the query finds, in order.
  template <class Read>
  auto All(Read read, const char* what) -> Result<std::vector<decltype(read(*this))>> {
    std::vector<decltype(read(*this))> out;
    int rc;
    while ((rc = Step()) == SQLITE_ROW) out.push_back(read(*this));
    if (rc != SQLITE_DONE) return Fail(what);
    return out;
  }
  Error Fail(const char* what) const {
    return MakeError(ErrorCode::kIo, fmt::format("store: {}: {}", what, sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

constexpr const char* kRunColumns =
    "id, name, state, plan_yaml, owner, reason, created_ns, updated_ns, deadline_ns, start_at_ns, ended_ns, "
    "exit_code, summary_json";

RunRow ReadRun(Stmt& s) {
  RunRow r;
  r.id = s.Text(0);
  r.name = s.Text(1);
  r.state = ParseRunState(s.Text(2)).value_or(RunState::kErrored);  // unknown: ended, never resumed
  r.plan_yaml = s.Text(3);
  r.owner = s.Text(4);
  r.reason = s.Text(5);
  r.created_ns = s.Int(6);
  r.updated_ns = s.Int(7);
  r.deadline_ns = s.Int(8);
  r.start_at_ns = s.Int(9);
  r.ended_ns = s.Int(10);
  r.exit_code = static_cast<int>(s.Int(11));
  r.summary_json = s.Text(12);
  return r;
}

// How much WAL a checkpoint waits for (see OpenSqlite).
constexpr int64_t kCheckpointBytes = 10'000 * 1024;

class SqliteStore final : public Store {
 public:
  int PageSize() {
    Stmt s(cache_, "PRAGMA page_size");
    return s.ok() && s.Step() == SQLITE_ROW ? static_cast<int>(s.Int(0)) : 4096;
  }
  explicit SqliteStore(sqlite3* db) : db_(db) { cache_.db = db; }
  ~SqliteStore() override {
    cache_.Clear();
    sqlite3_close(db_);
  }

  Result<void> Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      Error e = MakeError(ErrorCode::kIo, fmt::format("store: {}", err ? err : "error"));
      sqlite3_free(err);
      return e;
    }
    return {};
  }

  Result<void> Migrate() {
    if (auto r = Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); !r.ok())
      return r;
    int version = SchemaVersion();
    if (version < 0) {
      if (auto r = Exec("INSERT INTO schema_version VALUES (0)"); !r.ok()) return r;
      version = 0;
    }
    constexpr int kLatest = kSchemaVersion;
    if (version > kLatest) {
      return MakeError(ErrorCode::kIo,
                       fmt::format("store: the database has schema version {}, newer than this "
                                   "binary's {}; use a newer meridian",
                                   version, kLatest));
    }
    for (int v = version; v < kLatest; ++v) {
      if (auto r = Exec("BEGIN IMMEDIATE"); !r.ok()) return r;
      auto r = Exec(kMigrations[v]);
      if (r.ok()) r = Exec(fmt::format("UPDATE schema_version SET version = {}", v + 1).c_str());
      if (!r.ok()) {
        (void)Exec("ROLLBACK");
        return MakeError(ErrorCode::kIo, fmt::format("migration {} failed: {}", v + 1, r.error().message));
      }
      if (auto c = Exec("COMMIT"); !c.ok()) return c;
    }
    return {};
  }

  Result<void> Ready() override {
    const int version = SchemaVersion();
    if (version != kSchemaVersion) {
      return MakeError(ErrorCode::kIo, fmt::format("store: schema version {}, this binary needs {}", version,
                                                   kSchemaVersion));
    }
    return {};
  }
  std::string Describe() const override { return "sqlite:" + path_; }
  Result<void> ClaimSoleServer() override { return {}; }
  void SetPath(std::string path) { path_ = std::move(path); }

  int SchemaVersion() override {
    Stmt s(cache_, "SELECT version FROM schema_version");
    if (!s.ok() || s.Step() != SQLITE_ROW) return -1;
    return static_cast<int>(s.Int(0));
  }

  Result<void> CreateRun(const RunRow& r) override {
    Stmt s(cache_,
           fmt::format("INSERT INTO runs ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", kRunColumns).c_str());
    BindRun(s, r);
    if (s.Step() != SQLITE_DONE) return s.Fail("create run");
    return AppendEvent(r.id, r.created_ns, "", RunStateName(r.state), "created");
  }

  Result<std::optional<RunRow>> GetRun(const std::string& id) override {
    Stmt s(cache_, fmt::format("SELECT {} FROM runs WHERE id = ?", kRunColumns).c_str());
    s.Bind(1, id);
    return s.One(ReadRun, "get run");
  }

  Result<std::vector<RunRow>> ListRuns(size_t limit, bool active_only) override {
    const std::string sql =
        fmt::format("SELECT {} FROM runs {} ORDER BY created_ns DESC, id DESC LIMIT ?", kRunColumns,
                    active_only ? "WHERE state IN " + RunStatesSql(/*terminal=*/false) : "");
    Stmt s(cache_, sql.c_str());
    s.Bind(1, static_cast<int64_t>(limit));
    return s.All(ReadRun, "list runs");
  }

  Result<bool> TransitionRun(const RunRow& r, RunState from, const std::string& detail) override {
    if (auto b = Exec("BEGIN IMMEDIATE"); !b.ok()) return b.error();
    Stmt s(cache_,
           "UPDATE runs SET state=?, reason=?, updated_ns=?, deadline_ns=?, start_at_ns=?, ended_ns=?, "
           "exit_code=?, "
           "summary_json=? WHERE id=? AND state=?");
    s.Bind(1, std::string(RunStateName(r.state)))
        .Bind(2, r.reason)
        .Bind(3, r.updated_ns)
        .Bind(4, r.deadline_ns)
        .Bind(5, r.start_at_ns);
    s.Bind(6, r.ended_ns).Bind(7, static_cast<int64_t>(r.exit_code)).Bind(8, r.summary_json).Bind(9, r.id);
    s.Bind(10, std::string(RunStateName(from)));
    if (s.Step() != SQLITE_DONE) {
      Error e = s.Fail("transition run");
      (void)Exec("ROLLBACK");
      return e;
    }
    if (sqlite3_changes(db_) == 0) {
      (void)Exec("ROLLBACK");
      return false;
    }
    if (auto e = AppendEvent(r.id, r.updated_ns, RunStateName(from), RunStateName(r.state), detail);
        !e.ok()) {
      (void)Exec("ROLLBACK");
      return e.error();
    }
    if (auto c = Exec("COMMIT"); !c.ok()) return c.error();
    return true;
  }

  Result<void> UpdateRun(const RunRow& r) override {
    Stmt s(cache_,
           "UPDATE runs SET reason=?, updated_ns=?, deadline_ns=?, start_at_ns=?, ended_ns=?, exit_code=?, "
           "summary_json=? WHERE id=?");
    s.Bind(1, r.reason)
        .Bind(2, r.updated_ns)
        .Bind(3, r.deadline_ns)
        .Bind(4, r.start_at_ns)
        .Bind(5, r.ended_ns);
    s.Bind(6, static_cast<int64_t>(r.exit_code)).Bind(7, r.summary_json).Bind(8, r.id);
    if (s.Step() != SQLITE_DONE) return s.Fail("update run");
    return {};
  }

  Result<std::vector<EventRow>> Events(const std::string& run_id) override {
    Stmt s(
        cache_,
        "SELECT id, run_id, at_ns, from_state, to_state, detail FROM run_events WHERE run_id=? ORDER BY id");
    s.Bind(1, run_id);
    std::vector<EventRow> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      out.push_back(EventRow{s.Int(0), s.Text(1), s.Int(2), s.Text(3), s.Text(4), s.Text(5)});
    }
    if (rc != SQLITE_DONE) return s.Fail("list events");
    return out;
  }

  Result<void> PutAgent(const AgentRow& a) override {
    Stmt s(
        cache_,
        "INSERT OR REPLACE INTO agents (id, name, region, version, capacity, registered_ns, clock_offset_ns, "
        "rtt_ns, secret_hash) VALUES (?,?,?,?,?,?,?,?,?)");
    s.Bind(1, a.id).Bind(2, a.name).Bind(3, a.region).Bind(4, a.version).Bind(5, int64_t{a.capacity});
    s.Bind(6, a.registered_ns).Bind(7, a.clock_offset_ns).Bind(8, a.rtt_ns).Bind(9, a.secret_hash);
    if (s.Step() != SQLITE_DONE) return s.Fail("put agent");
    return {};
  }

  static constexpr const char* kAgentColumns =
      "id, name, region, version, capacity, registered_ns, clock_offset_ns, rtt_ns, secret_hash";
  static AgentRow ReadAgent(Stmt& s) {
    return AgentRow{s.Text(0), s.Text(1), s.Text(2), s.Text(3), static_cast<uint32_t>(s.Int(4)),
                    s.Int(5),  s.Int(6),  s.Int(7),  s.Text(8)};
  }

  Result<std::optional<AgentRow>> GetAgent(const std::string& id) override {
    Stmt s(cache_, fmt::format("SELECT {} FROM agents WHERE id=?", kAgentColumns).c_str());
    s.Bind(1, id);
    return s.One(ReadAgent, "get agent");
  }

  Result<std::vector<AgentRow>> ListAgents() override {
    Stmt s(cache_, fmt::format("SELECT {} FROM agents ORDER BY registered_ns, id", kAgentColumns).c_str());
    return s.All(ReadAgent, "list agents");
  }

  Result<void> DeleteAgent(const std::string& id) override {
    Stmt s(cache_, "DELETE FROM agents WHERE id=?");
    s.Bind(1, id);
    if (s.Step() != SQLITE_DONE) return s.Fail("delete agent");
    return {};
  }

  Result<void> PutAssignment(const AssignmentRow& a) override {
    Stmt s(cache_, "INSERT OR REPLACE INTO run_agents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    s.Bind(1, a.run_id)
        .Bind(2, a.agent_id)
        .Bind(3, a.region)
        .Bind(4, int64_t{a.slot})
        .Bind(5, std::string(AssignmentStateName(a.state)));
    s.Bind(6, a.ready_ns).Bind(7, a.started_ns).Bind(8, a.last_seq).Bind(9, a.acked_seq);
    s.Bind(10, static_cast<int64_t>(a.requests)).Bind(11, static_cast<int64_t>(a.connections));
    s.Bind(12, static_cast<int64_t>(a.retries)).Bind(13, a.load_ended_ns);
    if (s.Step() != SQLITE_DONE) return s.Fail("put assignment");
    return {};
  }

  Result<std::vector<AssignmentRow>> Assignments(const std::string& run_id) override {
    Stmt s(cache_, "SELECT * FROM run_agents WHERE run_id=? ORDER BY region, slot");
    s.Bind(1, run_id);
    std::vector<AssignmentRow> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      out.push_back(AssignmentRow{s.Text(0), s.Text(1), s.Text(2), static_cast<uint32_t>(s.Int(3)),
                                  ParseAssignmentState(s.Text(4)).value_or(AssignmentState::kLost), s.Int(5),
                                  s.Int(6), s.Int(7), s.Int(8), static_cast<uint64_t>(s.Int(9)),
                                  static_cast<uint64_t>(s.Int(10)), static_cast<uint64_t>(s.Int(11)),
                                  s.Int(12)});
    }
    if (rc != SQLITE_DONE) return s.Fail("list assignments");
    return out;
  }

  Result<void> PutStepInstance(const std::string& run_id, const StepInstanceRow& r) override {
    Stmt s(cache_, "INSERT OR REPLACE INTO step_instances VALUES (?,?,?,?,?,?)");
    s.Bind(1, run_id).Bind(2, r.step).Bind(3, int64_t{r.instance}).Bind(4, r.agent_id).Bind(5, r.result_json);
    s.BindBlob(6, r.log);
    if (s.Step() != SQLITE_DONE) return s.Fail("put step instance");
    return {};
  }

  Result<std::vector<StepInstanceRow>> StepInstances(const std::string& run_id, bool with_logs) override {
    Stmt s(cache_,
           with_logs ? "SELECT step, instance, agent_id, result_json, log FROM step_instances WHERE run_id=? "
                       "ORDER BY step, instance"
                     : "SELECT step, instance, agent_id, result_json, '' FROM step_instances WHERE run_id=? "
                       "ORDER BY step, instance");
    s.Bind(1, run_id);
    std::vector<StepInstanceRow> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      out.push_back(
          StepInstanceRow{s.Text(0), static_cast<uint32_t>(s.Int(1)), s.Text(2), s.Text(3), s.Text(4)});
    }
    if (rc != SQLITE_DONE) return s.Fail("list step instances");
    return out;
  }

  Result<bool> InsertSample(const std::string& run_id, const SampleRow& r) override {
    Stmt s(cache_, "INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?)");
    s.Bind(1, run_id).Bind(2, r.agent_id).Bind(3, r.seq).Bind(4, r.second).BindBlob(5, r.payload);
    if (s.Step() != SQLITE_DONE) return s.Fail("insert sample");
    return sqlite3_changes(db_) > 0;
  }

  Result<std::vector<SampleRow>> Samples(const std::string& run_id) override {
    Stmt s(cache_,
           "SELECT agent_id, seq, second, payload FROM samples WHERE run_id=? ORDER BY agent_id, seq");
    s.Bind(1, run_id);
    std::vector<SampleRow> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) out.push_back(SampleRow{s.Text(0), s.Int(1), s.Int(2), s.Text(3)});
    if (rc != SQLITE_DONE) return s.Fail("list samples");
    return out;
  }

  Result<void> PutSeries(const std::string& run_id, uint64_t key, const std::string& region,
                         const std::string& scenario, const std::string& name, int status,
                         const std::string& error) override {
    Stmt s(cache_, "INSERT OR IGNORE INTO series VALUES (?,?,?,?,?,?,?)");
    s.Bind(1, run_id).Bind(2, static_cast<int64_t>(key)).Bind(3, region).Bind(4, scenario).Bind(5, name);
    s.Bind(6, int64_t{status}).Bind(7, error);
    if (s.Step() != SQLITE_DONE) return s.Fail("put series");
    return {};
  }

  Result<void> ReplaceTokens(const std::vector<TokenRow>& tokens) override {
    if (auto b = Exec("BEGIN IMMEDIATE"); !b.ok()) return b;
    auto fail = [&](const char* what) {
      Error e = MakeError(ErrorCode::kIo, fmt::format("store: {}: {}", what, sqlite3_errmsg(db_)));
      (void)Exec("ROLLBACK");
      return e;
    };
    if (!Exec("DELETE FROM tokens").ok()) return fail("replace tokens");
    for (const auto& t : tokens) {
      Stmt s(cache_, "INSERT INTO tokens VALUES (?,?,?)");
      s.Bind(1, t.name).Bind(2, t.hash_hex).Bind(3, t.scopes);
      if (s.Step() != SQLITE_DONE) return fail("insert token");
    }
    return Exec("COMMIT");
  }

  Result<std::optional<TokenRow>> FindToken(const std::string& hash_hex) override {
    Stmt s(cache_, "SELECT name, hash_hex, scopes FROM tokens WHERE hash_hex=?");
    s.Bind(1, hash_hex);
    return s.One([](Stmt& r) { return TokenRow{r.Text(0), r.Text(1), r.Text(2)}; }, "find token");
  }

  // ---- environment leases ----------------------------------------------------------------------------

  Result<void> Begin() override { return Exec("BEGIN IMMEDIATE"); }
  Result<void> Commit() override { return Exec("COMMIT"); }
  void Rollback() override { (void)Exec("ROLLBACK"); }

  Result<void> PutPool(const PoolRow& p) override {
    Stmt s(cache_, "INSERT OR REPLACE INTO env_pools VALUES (?,?,?)");
    s.Bind(1, p.name).Bind(2, p.settings_json).Bind(3, p.removed);
    if (s.Step() != SQLITE_DONE) return s.Fail("put pool");
    return {};
  }
  Result<std::vector<PoolRow>> Pools() override {
    Stmt s(cache_, "SELECT name, settings_json, removed FROM env_pools ORDER BY name");
    return s.All([](Stmt& r) { return PoolRow{r.Text(0), r.Text(1), r.Int(2) != 0}; }, "list pools");
  }
  Result<void> DeletePool(const std::string& name) override {
    Stmt s(cache_, "DELETE FROM env_pools WHERE name=?");
    s.Bind(1, name);
    if (s.Step() != SQLITE_DONE) return s.Fail("delete pool");
    return {};
  }

  static constexpr const char* kEnvColumns =
      "id, pool, spec_json, state, allocation_id, draining, removed, grown, created_ns, state_since_ns, "
      "last_released_ns, cleanup_deadline_ns, cleanup_attempts, note, log";
  static void BindEnv(Stmt& s, const EnvironmentRow& e) {
    s.Bind(1, e.id).Bind(2, e.pool).Bind(3, e.spec_json).Bind(4, std::string(EnvStateName(e.state)));
    s.Bind(5, e.allocation_id);
    s.Bind(6, e.draining)
        .Bind(7, e.removed)
        .Bind(8, e.grown)
        .Bind(9, e.created_ns)
        .Bind(10, e.state_since_ns);
    s.Bind(11, e.last_released_ns)
        .Bind(12, e.cleanup_deadline_ns)
        .Bind(13, e.cleanup_attempts)
        .Bind(14, e.note);
    s.BindBlob(15, e.log);
  }
  static EnvironmentRow ReadEnv(Stmt& s) {
    EnvironmentRow e;
    e.id = s.Text(0);
    e.pool = s.Text(1);
    e.spec_json = s.Text(2);
    // A state this version does not know (a newer one wrote it) is never handed out.
    e.state = ParseEnvState(s.Text(3)).value_or(EnvState::kDirty);
    e.allocation_id = s.Text(4);
    e.draining = s.Int(5) != 0;
    e.removed = s.Int(6) != 0;
    e.grown = s.Int(7) != 0;
    e.created_ns = s.Int(8);
    e.state_since_ns = s.Int(9);
    e.last_released_ns = s.Int(10);
    e.cleanup_deadline_ns = s.Int(11);
    e.cleanup_attempts = s.Int(12);
    e.note = s.Text(13);
    e.log = s.Text(14);
    return e;
  }
  Result<void> InsertEnvironment(const EnvironmentRow& e) override {
    Stmt s(cache_,
           fmt::format("INSERT INTO environments ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kEnvColumns)
               .c_str());
    BindEnv(s, e);
    if (s.Step() != SQLITE_DONE) return s.Fail("insert environment");
    return {};
  }
  Result<bool> UpdateEnvironment(const EnvironmentRow& e, EnvState expected_state,
                                 const std::string& expected_allocation) override {
    Stmt s(cache_,
           "UPDATE environments SET id=?1, pool=?2, spec_json=?3, state=?4, allocation_id=?5, draining=?6, "
           "removed=?7, grown=?8, created_ns=?9, state_since_ns=?10, last_released_ns=?11, "
           "cleanup_deadline_ns=?12, cleanup_attempts=?13, note=?14, log=?15 WHERE id=?1 AND state=?16 AND "
           "allocation_id=?17");
    BindEnv(s, e);
    s.Bind(16, std::string(EnvStateName(expected_state))).Bind(17, expected_allocation);
    if (s.Step() != SQLITE_DONE) return s.Fail("update environment");
    return sqlite3_changes(db_) > 0;
  }
  Result<bool> DeleteEnvironment(const std::string& id, EnvState expected_state) override {
    Stmt s(cache_, "DELETE FROM environments WHERE id=? AND state=?");
    s.Bind(1, id).Bind(2, std::string(EnvStateName(expected_state)));
    if (s.Step() != SQLITE_DONE) return s.Fail("delete environment");
    return sqlite3_changes(db_) > 0;
  }
  Result<std::optional<EnvironmentRow>> GetEnvironment(const std::string& id) override {
    Stmt s(cache_, fmt::format("SELECT {} FROM environments WHERE id=?", kEnvColumns).c_str());
    s.Bind(1, id);
    return s.One(ReadEnv, "get environment");
  }
  Result<std::vector<EnvironmentRow>> Environments(const std::string& pool, std::optional<EnvState> state,
                                                   bool free_only) override {
    static const std::string kList = [] {
      std::string cols = kEnvColumns;
      cols.replace(cols.rfind("log"), 3, "x''");  // lists leave the logs out
      return cols;
    }();
    const char* where = free_only ? "pool = ?1 AND state = 'available' AND draining = 0 AND removed = 0"
                        : pool.empty() && !state ? "1"
                        : !state                 ? "pool = ?1"
                        : pool.empty()           ? "state = ?2"
                                                 : "pool = ?1 AND state = ?2";
    Stmt s(cache_, fmt::format("SELECT {} FROM environments WHERE {} ORDER BY {}", kList, where,
                               free_only ? "last_released_ns, id" : "pool, last_released_ns, id")
                       .c_str());
    if (!pool.empty() || free_only) s.Bind(1, pool);
    if (state && !free_only) s.Bind(2, std::string(EnvStateName(*state)));
    return s.All(ReadEnv, "list environments");
  }

  static constexpr const char* kAllocColumns =
      "id, pool, principal, requester, env_ids_json, state, outcome, idempotency_key, created_ns, "
      "expires_ns, max_expires_ns, ended_ns, revoke_pending";
  static void BindAlloc(Stmt& s, const AllocationRow& a) {
    s.Bind(1, a.id).Bind(2, a.pool).Bind(3, a.principal).Bind(4, a.requester).Bind(5, a.env_ids_json);
    s.Bind(6, std::string(AllocationStateName(a.state)))
        .Bind(7, a.outcome)
        .Bind(8, a.idempotency_key)
        .Bind(9, a.created_ns);
    s.Bind(10, a.expires_ns).Bind(11, a.max_expires_ns).Bind(12, a.ended_ns).Bind(13, a.revoke_pending);
  }
  static AllocationRow ReadAlloc(Stmt& s) {
    // A state this version does not know counts as ended: never extended, never released twice.
    const AllocationState state = ParseAllocationState(s.Text(5)).value_or(AllocationState::kReleased);
    return AllocationRow{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), state,         s.Text(6),
                         s.Text(7), s.Int(8),  s.Int(9),  s.Int(10), s.Int(11), s.Int(12) != 0};
  }
  Result<void> InsertAllocation(const AllocationRow& a) override {
    Stmt s(cache_,
           fmt::format("INSERT INTO allocations ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", kAllocColumns)
               .c_str());
    BindAlloc(s, a);
    if (s.Step() != SQLITE_DONE) return s.Fail("insert allocation");
    return {};
  }
  Result<bool> UpdateAllocation(const AllocationRow& a, AllocationState expected_state) override {
    Stmt s(cache_,
           "UPDATE allocations SET id=?1, pool=?2, principal=?3, requester=?4, env_ids_json=?5, state=?6, "
           "outcome=?7, idempotency_key=?8, created_ns=?9, expires_ns=?10, max_expires_ns=?11, ended_ns=?12, "
           "revoke_pending=?13 WHERE id=?1 AND state=?14");
    BindAlloc(s, a);
    s.Bind(14, std::string(AllocationStateName(expected_state)));
    if (s.Step() != SQLITE_DONE) return s.Fail("update allocation");
    return sqlite3_changes(db_) > 0;
  }
  Result<std::optional<AllocationRow>> GetAllocation(const std::string& id) override {
    Stmt s(cache_, fmt::format("SELECT {} FROM allocations WHERE id=?", kAllocColumns).c_str());
    s.Bind(1, id);
    return s.One(ReadAlloc, "get allocation");
  }
  Result<std::optional<AllocationRow>> FindAllocationByKey(const std::string& principal,
                                                           const std::string& key) override {
    Stmt s(cache_,
           fmt::format("SELECT {} FROM allocations WHERE principal=? AND idempotency_key=?", kAllocColumns)
               .c_str());
    s.Bind(1, principal).Bind(2, key);
    return s.One(ReadAlloc, "find allocation");
  }
  Result<std::vector<AllocationRow>> Allocations(const AllocationFilter& f) override {
    std::string where = "1";
    if (!f.principal.empty()) where += " AND principal = ?1";
    if (!f.requester.empty()) where += " AND requester = ?2";
    if (f.active_only) where += " AND state = 'active'";
    Stmt s(cache_, fmt::format("SELECT {} FROM allocations WHERE {} ORDER BY created_ns DESC, id LIMIT ?3",
                               kAllocColumns, where)
                       .c_str());
    if (!f.principal.empty()) s.Bind(1, f.principal);
    if (!f.requester.empty()) s.Bind(2, f.requester);
    s.Bind(3, static_cast<int64_t>(f.limit));
    return s.All(ReadAlloc, "list allocations");
  }
  Result<std::vector<AllocationRow>> PendingRevokes() override {
    Stmt s(cache_,
           fmt::format("SELECT {} FROM allocations WHERE revoke_pending = 1 ORDER BY id", kAllocColumns)
               .c_str());
    return s.All(ReadAlloc, "pending revokes");
  }
  Result<std::vector<AllocationRow>> ExpiredAllocations(int64_t now_ns) override {
    Stmt s(
        cache_,
        fmt::format(
            "SELECT {} FROM allocations WHERE state = 'active' AND expires_ns <= ? ORDER BY expires_ns, id",
            kAllocColumns)
            .c_str());
    s.Bind(1, now_ns);
    return s.All(ReadAlloc, "expired allocations");
  }
  Result<int64_t> AppendAudit(const AuditRow& a) override {
    Stmt s(
        cache_,
        "INSERT INTO audit (at_ns, principal, action, pool, allocation_id, environment_id, outcome, detail) "
        "VALUES (?,?,?,?,?,?,?,?)");
    s.Bind(1, a.at_ns).Bind(2, a.principal).Bind(3, a.action).Bind(4, a.pool).Bind(5, a.allocation_id);
    s.Bind(6, a.environment_id).Bind(7, a.outcome).Bind(8, a.detail);
    if (s.Step() != SQLITE_DONE) return s.Fail("append audit");
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
  }
  Result<std::vector<AuditRow>> Audit(const AuditFilter& f) override {
    Stmt s(cache_,
           "SELECT id, at_ns, principal, action, pool, allocation_id, environment_id, outcome, detail FROM "
           "audit "
           "WHERE id > ?1 AND (?2 = '' OR pool = ?2) AND (?3 = '' OR allocation_id = ?3) AND "
           "(?4 = '' OR environment_id = ?4) AND (?5 = '' OR action = ?5) ORDER BY id LIMIT ?6");
    s.Bind(1, f.after_id)
        .Bind(2, f.pool)
        .Bind(3, f.allocation_id)
        .Bind(4, f.environment_id)
        .Bind(5, f.action);
    s.Bind(6, static_cast<int64_t>(f.limit));
    return s.All(
        [](Stmt& r) {
          return AuditRow{r.Int(0),  r.Int(1),  r.Text(2), r.Text(3), r.Text(4),
                          r.Text(5), r.Text(6), r.Text(7), r.Text(8)};
        },
        "list audit");
  }

  Result<PruneResult> Prune(const PruneRequest& rq) override {
    PruneResult out;
    const auto batch = static_cast<int64_t>(rq.batch);
    if (auto b = Exec("BEGIN IMMEDIATE"); !b.ok()) return b.error();
    auto fail = [&](const char* what) {
      Error e = MakeError(ErrorCode::kIo, fmt::format("store: prune {}: {}", what, sqlite3_errmsg(db_)));
      (void)Exec("ROLLBACK");
      return e;
    };
    if (rq.runs_before_ns > 0) {
      Stmt s(cache_, ("SELECT id FROM runs WHERE ended_ns > 0 AND ended_ns < ? AND state IN " +
                      RunStatesSql(/*terminal=*/true) + " ORDER BY ended_ns LIMIT ?")
                         .c_str());
      s.Bind(1, rq.runs_before_ns).Bind(2, batch);
      auto ids = s.All([](Stmt& r) { return r.Text(0); }, "runs");
      if (!ids.ok()) return fail("runs");
      for (const auto& id : *ids) {
        for (const char* sql :
             {"DELETE FROM run_events WHERE run_id=?", "DELETE FROM run_agents WHERE run_id=?",
              "DELETE FROM samples WHERE run_id=?", "DELETE FROM series WHERE run_id=?",
              "DELETE FROM step_instances WHERE run_id=?", "DELETE FROM runs WHERE id=?"}) {
          Stmt d(cache_, sql);
          d.Bind(1, id);
          if (d.Step() != SQLITE_DONE) return fail("runs");
        }
      }
      out.runs = std::move(ids).value();
    }
    if (rq.allocations_before_ns > 0) {
      Stmt s(cache_,
             "DELETE FROM allocations WHERE id IN (SELECT id FROM allocations WHERE state != 'active' AND "
             "revoke_pending = 0 AND ended_ns > 0 AND ended_ns < ? ORDER BY ended_ns LIMIT ?)");
      s.Bind(1, rq.allocations_before_ns).Bind(2, batch);
      if (s.Step() != SQLITE_DONE) return fail("allocations");
      out.allocations = static_cast<size_t>(sqlite3_changes(db_));
    }
    if (rq.audit_before_ns > 0) {
      Stmt s(cache_,
             "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at_ns < ? ORDER BY at_ns LIMIT ?)");
      s.Bind(1, rq.audit_before_ns).Bind(2, batch);
      if (s.Step() != SQLITE_DONE) return fail("audit");
      out.audit = static_cast<size_t>(sqlite3_changes(db_));
    }
    if (auto c = Exec("COMMIT"); !c.ok()) {
      (void)Exec("ROLLBACK");
      return c.error();
    }
    return out;
  }

 private:
  void BindRun(Stmt& s, const RunRow& r) {
    s.Bind(1, r.id)
        .Bind(2, r.name)
        .Bind(3, std::string(RunStateName(r.state)))
        .Bind(4, r.plan_yaml)
        .Bind(5, r.owner)
        .Bind(6, r.reason);
    s.Bind(7, r.created_ns).Bind(8, r.updated_ns).Bind(9, r.deadline_ns).Bind(10, r.start_at_ns);
    s.Bind(11, r.ended_ns).Bind(12, static_cast<int64_t>(r.exit_code)).Bind(13, r.summary_json);
  }
  Result<void> AppendEvent(const std::string& run, int64_t at, const std::string& from, const std::string& to,
                           const std::string& detail) {
    Stmt s(cache_, "INSERT INTO run_events (run_id, at_ns, from_state, to_state, detail) VALUES (?,?,?,?,?)");
    s.Bind(1, run).Bind(2, at).Bind(3, from).Bind(4, to).Bind(5, detail);
    if (s.Step() != SQLITE_DONE) return s.Fail("append event");
    return {};
  }

  sqlite3* db_;
  StmtCache cache_;
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqlite(const std::string& path) {
  if (auto d = MakePrivateDirectories(std::filesystem::path(path).parent_path().string()); !d.ok()) {
    return d.error();
  }
  // SQLite gives the WAL and shared-memory files the database file's mode: create it private.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return MakeError(ErrorCode::kIo, fmt::format("cannot open the store {}: {}", path, std::strerror(errno)));
  }
  ::close(fd);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) != 0 && st.st_uid == ::geteuid()) {
      ::chmod(file.c_str(), 0600);
    }
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return MakeError(ErrorCode::kIo, fmt::format("cannot open the store {}: {}", path, msg));
  }
  auto store = std::make_unique<SqliteStore>(db);
  store->SetPath(path);
  sqlite3_busy_timeout(db, 5000);
  for (const char* pragma : {
           // Every commit writes each page it changed whole into the WAL, and an allocation or a release
           // changes about ten (rows and their indexes): 1 KiB pages write a quarter of the bytes that 4 KiB
           // ones do. A database keeps the page size it was created with.
           "PRAGMA page_size=1024",
           "PRAGMA journal_mode=WAL",
           "PRAGMA synchronous=NORMAL",
           "PRAGMA foreign_keys=ON",
       }) {
    if (auto r = store->Exec(pragma); !r.ok()) return r.error();
  }
  // A checkpoint (copying the WAL into the database and fsyncing it) stalls the owner's thread, and most
  // pages are rewritten many times between two: every ~10 MiB of WAL (10,000 1 KiB pages) instead of SQLite's
  // 1,000 pages, counted in bytes whatever page size the database was created with (one made before 1 KiB
  // pages keeps 4 KiB). Measured on the environment-lease bench (bench/RESULTS.md §7, server pinned to one
  // core, median of 5): 4 KiB pages every 3,000 (the earlier setting) 2,319 cycles/s, p99 117 ms at 2,000/s
  // offered; 1 KiB pages every 10,000 3,010/s, p99 16.85 ms; every 20,000 ~3,100/s but p99 ~30 ms (longer
  // stalls).
  sqlite3_wal_autocheckpoint(db, static_cast<int>(kCheckpointBytes / std::max(512, store->PageSize())));
  if (auto r = store->Migrate(); !r.ok()) return r.error();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace meridian::store
