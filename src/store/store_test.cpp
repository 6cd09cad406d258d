#include "store/store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "store/postgres_testing.h"

namespace meridian::store {
namespace {

std::string FreshPath(const char* name) {
  const std::string path = ::testing::TempDir() + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

// The conformance suite: every test below runs on both backends, each on a new empty store (a new SQLite
// file, a new database on the test PostgreSQL server), and expects exactly the same behaviour.
class StoreConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    spec_ = FreshSpec();
    ASSERT_FALSE(spec_.empty());
    auto s = OpenStore(spec_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
  }
  // A new empty store of this backend ("" on failure, reported).
  std::string FreshSpec() {
    if (GetParam() == "sqlite") {
      static int n = 0;
      return "sqlite:" + FreshPath(fmt::format("conformance-{}-{}", ::getpid(), n++).c_str());
    }
    std::string error;
    std::string url = NewPostgresDatabase(&error);
    EXPECT_FALSE(url.empty()) << error;
    return url;
  }
  // Another connection to the same store (a restarted control plane, a second replica).
  std::unique_ptr<Store> Another() {
    auto s = OpenStore(spec_);
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(s).value() : nullptr;
  }
  void Reopen() {
    store_.reset();
    store_ = Another();
  }
  std::string spec_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformance, ::testing::Values("sqlite", "postgres"),
                         [](const auto& backend) { return backend.param; });

TEST_P(StoreConformance, MigratesAndKeepsRunsAcrossReopen) {
  {
    auto* s = &store_;
    EXPECT_EQ((*s)->SchemaVersion(), 5);
    RunRow r;
    r.id = "r1";
    r.name = "plan";
    r.state = RunState::kCreated;
    r.plan_yaml = "name: x\n";
    r.owner = "ci";
    r.created_ns = r.updated_ns = 100;
    ASSERT_TRUE((*s)->CreateRun(r).ok());
    r.state = RunState::kPreparing;
    r.updated_ns = 200;
    auto moved = (*s)->TransitionRun(r, RunState::kCreated, "agents assigned");
    ASSERT_TRUE(moved.ok());
    EXPECT_TRUE(*moved);
    r.state = RunState::kRunning;
    auto stale = (*s)->TransitionRun(r, RunState::kCreated, "a duplicate timer");  // guarded: no-op
    ASSERT_TRUE(stale.ok());
    EXPECT_FALSE(*stale);
    AssignmentRow a{"r1", "ag-1", "eu", 0, AssignmentState::kDone, 10, 20, 5, 5, 100, 2, 1, 3'500'000'020};
    ASSERT_TRUE((*s)->PutAssignment(a).ok());
  }
  Reopen();
  ASSERT_TRUE(store_);
  auto* s = &store_;
  auto assignments = (*s)->Assignments("r1");
  ASSERT_TRUE(assignments.ok());
  ASSERT_EQ(assignments->size(), 1u);
  EXPECT_EQ((*assignments)[0].load_ended_ns, 3'500'000'020);  // schema version 5
  EXPECT_EQ((*assignments)[0].retries, 1u);
  auto run = (*s)->GetRun("r1");
  ASSERT_TRUE(run.ok() && run->has_value());
  EXPECT_EQ((*run)->state, RunState::kPreparing);
  auto events = (*s)->Events("r1");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].from_state, "created");
  EXPECT_EQ((*events)[1].to_state, "preparing");
  EXPECT_EQ((*events)[1].detail, "agents assigned");
  auto active = (*s)->ListRuns(10, true);
  ASSERT_TRUE(active.ok());
  EXPECT_EQ(active->size(), 1u);
}

TEST_P(StoreConformance, SamplesAreIdempotentPerRunAgentSeq) {
  auto* s = &store_;
  RunRow r;
  r.id = "r";
  r.state = RunState::kRunning;
  ASSERT_TRUE((*s)->CreateRun(r).ok());
  auto first = (*s)->InsertSample("r", SampleRow{"a1", 0, 0, std::string("\x01\x00", 2)});
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  auto dup = (*s)->InsertSample("r", SampleRow{"a1", 0, 0, "other"});
  ASSERT_TRUE(dup.ok());
  EXPECT_FALSE(*dup);
  ASSERT_TRUE((*s)->InsertSample("r", SampleRow{"a1", 1, 1, "x"}).ok());
  auto all = (*s)->Samples("r");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].payload, std::string("\x01\x00", 2));  // blobs keep NUL bytes
}

TEST_P(StoreConformance, TokensAndAgents) {
  auto* s = &store_;
  ASSERT_TRUE((*s)->ReplaceTokens({{"ci", "abc", "runs:read runs:write"}}).ok());
  auto t = (*s)->FindToken("abc");
  ASSERT_TRUE(t.ok() && t->has_value());
  EXPECT_EQ((*t)->scopes, "runs:read runs:write");
  EXPECT_FALSE((*s)->FindToken("abd")->has_value());
  ASSERT_TRUE((*s)->PutAgent(AgentRow{"a1", "host", "eu", "0.1.0", 2, 5, -3, 100, "keyed"}).ok());
  auto a = (*s)->GetAgent("a1");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->clock_offset_ns, -3);
  EXPECT_EQ((*a)->secret_hash, "keyed");
}

TEST_P(StoreConformance, IsReadyAndNamesItself) {
  EXPECT_TRUE(store_->Ready().ok());
  EXPECT_TRUE(store_->Describe().starts_with(GetParam() == "sqlite" ? "sqlite:" : "postgres://"))
      << store_->Describe();
}

// Two connections (two replicas, or the reaper and a release) change one environment at once: the guarded
// update lets exactly one through. The second writer waits for the first (SQLite: BEGIN IMMEDIATE;
// PostgreSQL: the row lock) and then finds the guard no longer holds. The pause only orders the two; the
// assertion holds whichever runs first.
TEST_P(StoreConformance, RacingGuardedWritesChangeARowOnce) {
  Store& a = *store_;
  auto other = Another();
  ASSERT_TRUE(other);
  EnvironmentRow e;
  e.id = "e1";
  e.pool = "p";
  e.spec_json = "{}";
  ASSERT_TRUE(a.InsertEnvironment(e).ok());
  EnvironmentRow mine = e, theirs = e;
  mine.state = theirs.state = EnvState::kAllocated;
  mine.allocation_id = "a1";
  theirs.allocation_id = "a2";
  ASSERT_TRUE(a.Begin().ok());
  auto first = a.UpdateEnvironment(mine, EnvState::kAvailable, "");
  ASSERT_TRUE(first.ok() && *first);
  Result<bool> second = false;
  std::thread racer([&] {
    Transaction txn(*other);
    if (!txn.ok()) {
      second = txn.error();
      return;
    }
    second = other->UpdateEnvironment(theirs, EnvState::kAvailable, "");
    if (auto c = txn.Commit(); !c.ok()) second = c.error();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(a.Commit().ok());
  racer.join();
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_FALSE(*second);
  auto now = a.GetEnvironment("e1");
  ASSERT_TRUE(now.ok() && now->has_value());
  EXPECT_EQ((*now)->allocation_id, "a1");
}

// One transaction at a time per connection, on both (SQLite's BEGIN IMMEDIATE does not nest).
TEST_P(StoreConformance, TransactionsDoNotNest) {
  ASSERT_TRUE(store_->Begin().ok());
  EXPECT_FALSE(store_->Begin().ok());
  store_->Rollback();
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(store_->PutPool({"p", "{}", false}).ok());
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(store_->Pools()->size(), 1u);
}

// Replicas started together on a new database: the advisory lock lets one migrate; the others find the schema
// current.
TEST(PostgresStore, ReplicasStartingTogetherMigrateOnce) {
  std::string error;
  const std::string url = NewPostgresDatabase(&error);
  ASSERT_FALSE(url.empty()) << error;
  std::vector<std::thread> replicas;
  std::vector<std::string> errors(4);
  std::vector<int> versions(4, -1);
  for (size_t i = 0; i < 4; ++i) {
    replicas.emplace_back([&, i] {
      auto s = OpenStore(url);
      if (!s.ok()) {
        errors[i] = s.error().message;
        return;
      }
      versions[i] = (*s)->SchemaVersion();
    });
  }
  for (auto& t : replicas) t.join();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(errors[i], "") << i;
    EXPECT_EQ(versions[i], 5) << i;
  }
}

// One `meridian serve` per database: a second one is refused, naming why, until the first is gone.
TEST(PostgresStore, OneServerPerDatabase) {
  std::string error;
  const std::string url = NewPostgresDatabase(&error);
  ASSERT_FALSE(url.empty()) << error;
  auto first = OpenStore(url);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_TRUE((*first)->ClaimSoleServer().ok());
  auto second = OpenStore(url);
  ASSERT_TRUE(second.ok()) << second.error().message;  // reading (`meridian` tools, tests) is fine
  auto refused = (*second)->ClaimSoleServer();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("another meridian serve uses postgres://"), std::string::npos)
      << refused.error().message;
  first->reset();  // its session ends, and the lock with it (the server ends a session asynchronously)
  bool claimed = false;
  for (int i = 0; i < 100 && !claimed; ++i) {
    claimed = (*second)->ClaimSoleServer().ok();
    if (!claimed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(claimed);
}

// A store that cannot be reached is named in the error, without its password.
TEST(PostgresStore, ErrorsNameTheStoreWithoutItsPassword) {
  auto s = OpenStore("postgres://meridian:s3cret@127.0.0.1:1/db?connect_timeout=5");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("postgres://meridian:***@127.0.0.1:1/db"), std::string::npos)
      << s.error().message;
  EXPECT_EQ(s.error().message.find("s3cret"), std::string::npos);
  EXPECT_EQ(RedactStoreSpec("postgresql://u@h/db?sslmode=require&password=pw&x=1"),
            "postgresql://u@h/db?sslmode=require&password=***&x=1");
  EXPECT_EQ(RedactStoreSpec("sqlite:/var/lib/m.db"), "sqlite:/var/lib/m.db");
  EXPECT_EQ(RedactStoreSpec("postgres://u:p@s/s@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require");  // '@' and '/' in the password, unencoded
  // libpq's own message for a URL it cannot parse would quote it: not passed on.
  auto bad = OpenStore("postgres://u:50%zzoff@127.0.0.1:1/db");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.find("50%zzoff"), std::string::npos) << bad.error().message;
  // The key=value form would be taken for a file name and printed whole: refused, naming the URL form.
  auto kv = OpenStore("host=db password=s3cret");
  ASSERT_FALSE(kv.ok());
  EXPECT_NE(kv.error().message.find("postgres://USER@HOST:PORT/DB"), std::string::npos);
  EXPECT_EQ(kv.error().message.find("s3cret"), std::string::npos);
}

// Text that is not UTF-8 (a hook's output in a note) is kept with U+FFFD in place of each bad byte on
// PostgreSQL, whose TEXT columns refuse it; blobs keep every byte.
TEST(PostgresStore, FreeTextThatIsNotUtf8IsKeptReadable) {
  std::string error;
  const std::string url = NewPostgresDatabase(&error);
  ASSERT_FALSE(url.empty()) << error;
  auto s = OpenStore(url);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EnvironmentRow e;
  e.id = "e1";
  e.pool = "p";
  e.spec_json = "{}";
  e.note = std::string("bad \xff byte\0nul", 14);
  e.log = std::string("\xff\0raw", 5);
  ASSERT_TRUE((*s)->InsertEnvironment(e).ok());
  auto got = (*s)->GetEnvironment("e1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->note, "bad \xEF\xBF\xBD byte\xEF\xBF\xBDnul");
  EXPECT_EQ((*got)->log, e.log);
}

// Environment leases: guarded transitions, the free-environment list, idempotency keys, expiry, the audit
// log.
TEST_P(StoreConformance, EnvironmentTransitionsAreGuarded) {
  auto* s = &store_;
  Store& st = **s;
  ASSERT_TRUE(st.PutPool({"p", "{}", false}).ok());
  for (const char* id : {"e1", "e2"}) {
    EnvironmentRow e;
    e.id = id;
    e.pool = "p";
    e.spec_json = "{}";
    e.last_released_ns = id[1] == '1' ? 20 : 10;  // e2 was released longer ago: first
    ASSERT_TRUE(st.InsertEnvironment(e).ok());
  }
  auto free = st.Environments("p", std::nullopt, true);
  ASSERT_TRUE(free.ok());
  ASSERT_EQ(free->size(), 2u);
  EXPECT_EQ((*free)[0].id, "e2");  // least recently released first
  EnvironmentRow e2 = (*free)[0];
  e2.state = EnvState::kAllocated;
  e2.allocation_id = "a1";
  ASSERT_TRUE(st.Begin().ok());
  auto moved = st.UpdateEnvironment(e2, EnvState::kAvailable, "");
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(*moved);
  AllocationRow a{"a1", "p", "ci", "job", "[\"e2\"]", AllocationState::kActive, "", "key-1",
                  1,    50,  100,  0,     false};
  ASSERT_TRUE(st.InsertAllocation(a).ok());
  ASSERT_TRUE(st.AppendAudit({0, 1, "ci", "allocate", "p", "a1", "e2", "ok", ""}).ok());
  ASSERT_TRUE(st.Commit().ok());
  auto twice = st.UpdateEnvironment(e2, EnvState::kAvailable, "");  // a duplicate allocation of e2: no-op
  ASSERT_TRUE(twice.ok());
  EXPECT_FALSE(*twice);
  EXPECT_EQ(st.Environments("p", std::nullopt, true)->size(), 1u);
  EXPECT_EQ(st.Environments("", EnvState::kAllocated)->size(), 1u);
  auto by_key = st.FindAllocationByKey("ci", "key-1");
  ASSERT_TRUE(by_key.ok() && by_key->has_value());
  EXPECT_EQ((*by_key)->id, "a1");
  EXPECT_FALSE(st.FindAllocationByKey("other", "key-1")->has_value());
  EXPECT_TRUE(st.ExpiredAllocations(49)->empty());
  EXPECT_EQ(st.ExpiredAllocations(50)->size(), 1u);
  a.state = AllocationState::kExpired;
  auto ended = st.UpdateAllocation(a, AllocationState::kActive);
  ASSERT_TRUE(ended.ok());
  EXPECT_TRUE(*ended);
  auto again =
      st.UpdateAllocation(a, AllocationState::kActive);  // the reaper and the holder racing: one wins
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_TRUE(st.ExpiredAllocations(1000)->empty());
  AuditFilter f;
  f.pool = "p";
  f.action = "allocate";
  auto audit = st.Audit(f);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].environment_id, "e2");
  // A rolled-back transaction leaves nothing.
  ASSERT_TRUE(st.Begin().ok());
  ASSERT_TRUE(st.AppendAudit({0, 2, "ci", "renew", "p", "a1", "", "ok", ""}).ok());
  st.Rollback();
  EXPECT_EQ(st.Audit(AuditFilter{})->size(), 1u);
}

// The database and its WAL are the server's user's alone: token hashes, plans and logs are in them.
// The page size a file was created with, and the WAL pages its checkpoints wait for, read with a second
// connection.
int PragmaOf(const std::string& path, const char* pragma) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  int value = -1;
  if (sqlite3_prepare_v2(db, pragma, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    value = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return value;
}

TEST(SqliteStore, NewStoresUseSmallPagesAndOldOnesKeepTheirs) {
  const std::string dir = ::testing::TempDir() + "/page-size";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    auto s = OpenSqlite(dir + "/new.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
  }
  EXPECT_EQ(PragmaOf(dir + "/new.db", "PRAGMA page_size"), 1024);
  {  // a store created with 4 KiB pages by an earlier version opens as it is
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(std::string(dir + "/old.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t(x)", nullptr,
                           nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
    auto s = OpenSqlite(dir + "/old.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    ASSERT_TRUE((*s)->PutPool({"p", "{}", false}).ok());
  }
  EXPECT_EQ(PragmaOf(dir + "/old.db", "PRAGMA page_size"), 4096);
  std::filesystem::remove_all(dir);
}

TEST(SqliteStore, FilesArePrivate) {
  const std::string dir = ::testing::TempDir() + "/private-store";
  std::filesystem::remove_all(dir);
  const std::string path = dir + "/state/m.db";
  auto s = OpenSqlite(path);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE((*s)->PutPool({"p", "{}", false}).ok());  // the WAL exists now
  for (const std::string& file : {path, path + "-wal", path + "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::filesystem::remove_all(dir);
}

// A non-admin's list is filtered by owner before the limit: others' newer allocations cannot hide its own.
TEST_P(StoreConformance, AllocationsAreFilteredBeforeTheLimit) {
  auto* s = &store_;
  Store& st = **s;
  for (int i = 0; i < 10; ++i) {
    const std::string owner = i < 2 ? "mine" : "theirs";
    AllocationRow a{"a" + std::to_string(i),
                    "p",
                    owner,
                    "job",
                    "[]",
                    i % 2 ? AllocationState::kActive : AllocationState::kReleased,
                    "",
                    "",
                    i,
                    100,
                    100,
                    0,
                    false};
    ASSERT_TRUE(st.InsertAllocation(a).ok());
  }
  AllocationFilter f;
  f.principal = "mine";
  f.limit = 5;
  auto mine = st.Allocations(f);
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0].id, "a1");  // newest first
  f.active_only = true;
  EXPECT_EQ(st.Allocations(f)->size(), 1u);
  f = AllocationFilter{};
  f.limit = 3;
  EXPECT_EQ(st.Allocations(f)->size(), 3u);
}

// Retention removes ended runs with everything that hangs off them, old ended allocations (not those whose
// revoke is pending) and old audit rows, in batches; what is active or recent stays.
TEST_P(StoreConformance, PruneRemovesOnlyWhatIsOldAndEnded) {
  auto* s = &store_;
  Store& st = **s;
  for (const char* id : {"old1", "old2", "new", "live"}) {
    RunRow r;
    r.id = id;
    r.state = std::string(id) == "live" ? RunState::kRunning : RunState::kPassed;
    r.ended_ns = std::string(id).starts_with("old") ? 100 : (std::string(id) == "new" ? 10'000 : 0);
    ASSERT_TRUE(st.CreateRun(r).ok());
    ASSERT_TRUE(st.InsertSample(id, SampleRow{"a", 0, 0, "x"}).ok());
    ASSERT_TRUE(st.PutStepInstance(id, StepInstanceRow{"s", 0, "a", "{}", "log"}).ok());
  }
  AllocationRow ended{"e-old", "p", "ci", "j", "[]", AllocationState::kReleased, "success", "",
                      1,       2,   3,    50,  false};
  AllocationRow revoking = ended;
  revoking.id = "e-revoke";
  revoking.revoke_pending = true;
  AllocationRow active = ended;
  active.id = "active";
  active.state = AllocationState::kActive;
  active.ended_ns = 0;
  for (const auto& a : {ended, revoking, active}) ASSERT_TRUE(st.InsertAllocation(a).ok());
  ASSERT_TRUE(st.AppendAudit({0, 10, "ci", "allocate", "p", "", "", "ok", ""}).ok());
  ASSERT_TRUE(st.AppendAudit({0, 5'000, "ci", "allocate", "p", "", "", "ok", ""}).ok());
  EXPECT_EQ(st.PendingRevokes()->size(), 1u);

  PruneRequest rq;
  rq.runs_before_ns = rq.allocations_before_ns = rq.audit_before_ns = 1'000;
  rq.batch = 1;  // one of each kind per call
  auto first = st.Prune(rq);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->runs.size(), 1u);
  EXPECT_EQ(first->allocations, 1u);
  EXPECT_EQ(first->audit, 1u);
  auto second = st.Prune(rq);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->runs.size(), 1u);
  EXPECT_EQ(second->allocations, 0u);  // the one whose revoke is pending stays
  EXPECT_EQ(second->audit, 0u);
  for (const char* gone : {"old1", "old2"}) {
    EXPECT_FALSE(st.GetRun(gone)->has_value());
    EXPECT_TRUE(st.Samples(gone)->empty());
    EXPECT_TRUE(st.StepInstances(gone, false)->empty());
    EXPECT_TRUE(st.Events(gone)->empty());
  }
  for (const char* kept : {"new", "live"}) EXPECT_TRUE(st.GetRun(kept)->has_value()) << kept;
  EXPECT_TRUE(st.GetAllocation("active")->has_value());
  EXPECT_TRUE(st.GetAllocation("e-revoke")->has_value());
  EXPECT_FALSE(st.GetAllocation("e-old")->has_value());
  EXPECT_EQ(st.Audit(AuditFilter{})->size(), 1u);
}

}  // namespace

TEST_P(StoreConformance, StepInstancesAreReplacedNotDuplicated) {
  auto* s = &store_;
  RunRow r;
  r.id = "r1";
  r.name = "plan";
  r.state = RunState::kRunning;
  r.plan_yaml = "name: x\n";
  r.owner = "ci";
  ASSERT_TRUE((*s)->CreateRun(r).ok());
  StepInstanceRow row{"warm", 1, "a-1", R"({"state":"exited"})", std::string("log\0bytes", 9)};
  ASSERT_TRUE((*s)->PutStepInstance("r1", row).ok());
  row.result_json = R"({"state":"stopped"})";
  ASSERT_TRUE((*s)->PutStepInstance("r1", row).ok());  // a resent done
  auto rows = (*s)->StepInstances("r1", true);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].result_json, R"({"state":"stopped"})");
  EXPECT_EQ((*rows)[0].log, std::string("log\0bytes", 9));
  rows = (*s)->StepInstances("r1", false);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ((*rows)[0].log, "");
}

}  // namespace meridian::store
