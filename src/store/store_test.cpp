#include "store/store.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace meridian::store {
namespace {

std::string FreshPath(const char* name) {
  const std::string path = ::testing::TempDir() + "/" + name + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

TEST(SqliteStore, MigratesAndKeepsRunsAcrossReopen) {
  const std::string path = FreshPath("runs");
  {
    auto s = OpenSqlite(path);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ((*s)->SchemaVersion(), 3);
    RunRow r;
    r.id = "r1";
    r.name = "plan";
    r.state = "created";
    r.plan_yaml = "name: x\n";
    r.owner = "ci";
    r.created_ns = r.updated_ns = 100;
    ASSERT_TRUE((*s)->CreateRun(r).ok());
    r.state = "preparing";
    r.updated_ns = 200;
    auto moved = (*s)->TransitionRun(r, "created", "agents assigned");
    ASSERT_TRUE(moved.ok());
    EXPECT_TRUE(*moved);
    r.state = "running";
    auto stale = (*s)->TransitionRun(r, "created", "a duplicate timer");  // guarded: no-op
    ASSERT_TRUE(stale.ok());
    EXPECT_FALSE(*stale);
  }
  auto s = OpenSqlite(path);
  ASSERT_TRUE(s.ok());
  auto run = (*s)->GetRun("r1");
  ASSERT_TRUE(run.ok() && run->has_value());
  EXPECT_EQ((*run)->state, "preparing");
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

TEST(SqliteStore, SamplesAreIdempotentPerRunAgentSeq) {
  auto s = OpenSqlite(FreshPath("samples"));
  ASSERT_TRUE(s.ok());
  RunRow r;
  r.id = "r";
  r.state = "running";
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

TEST(SqliteStore, TokensAndAgents) {
  auto s = OpenSqlite(FreshPath("tokens"));
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->ReplaceTokens({{"ci", "abc", "runs:read runs:write"}}).ok());
  auto t = (*s)->FindToken("abc");
  ASSERT_TRUE(t.ok() && t->has_value());
  EXPECT_EQ((*t)->scopes, "runs:read runs:write");
  EXPECT_FALSE((*s)->FindToken("abd")->has_value());
  ASSERT_TRUE((*s)->PutAgent(AgentRow{"a1", "host", "eu", "0.1.0", 2, 5, -3, 100}).ok());
  auto a = (*s)->GetAgent("a1");
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->clock_offset_ns, -3);
}

TEST(Store, PostgresIsNamedNotSilentlyIgnored) {
  auto s = OpenStore("postgres://localhost/meridian");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("PostgreSQL"), std::string::npos);
}

// Environment leases: guarded transitions, the free-environment list, idempotency keys, expiry, the audit
// log.
TEST(SqliteStore, EnvironmentTransitionsAreGuarded) {
  const std::string path = FreshPath("envs");
  auto s = OpenSqlite(path);
  ASSERT_TRUE(s.ok()) << s.error().message;
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
  auto free = st.Environments("p", "", true);
  ASSERT_TRUE(free.ok());
  ASSERT_EQ(free->size(), 2u);
  EXPECT_EQ((*free)[0].id, "e2");  // least recently released first
  EnvironmentRow e2 = (*free)[0];
  e2.state = "allocated";
  e2.allocation_id = "a1";
  ASSERT_TRUE(st.Begin().ok());
  auto moved = st.UpdateEnvironment(e2, "available", "");
  ASSERT_TRUE(moved.ok());
  EXPECT_TRUE(*moved);
  AllocationRow a{"a1", "p", "ci", "job", "[\"e2\"]", "active", "", "key-1", 1, 50, 100, 0};
  ASSERT_TRUE(st.InsertAllocation(a).ok());
  ASSERT_TRUE(st.AppendAudit({0, 1, "ci", "allocate", "p", "a1", "e2", "ok", ""}).ok());
  ASSERT_TRUE(st.Commit().ok());
  auto twice = st.UpdateEnvironment(e2, "available", "");  // a duplicate allocation of e2: no-op
  ASSERT_TRUE(twice.ok());
  EXPECT_FALSE(*twice);
  EXPECT_EQ(st.Environments("p", "", true)->size(), 1u);
  EXPECT_EQ(st.Environments("", "allocated")->size(), 1u);
  auto by_key = st.FindAllocationByKey("ci", "key-1");
  ASSERT_TRUE(by_key.ok() && by_key->has_value());
  EXPECT_EQ((*by_key)->id, "a1");
  EXPECT_FALSE(st.FindAllocationByKey("other", "key-1")->has_value());
  EXPECT_TRUE(st.ExpiredAllocations(49)->empty());
  EXPECT_EQ(st.ExpiredAllocations(50)->size(), 1u);
  a.state = "expired";
  auto ended = st.UpdateAllocation(a, "active");
  ASSERT_TRUE(ended.ok());
  EXPECT_TRUE(*ended);
  auto again = st.UpdateAllocation(a, "active");  // the reaper and the holder racing: one wins
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

}  // namespace
TEST(SqliteStore, StepInstancesAreReplacedNotDuplicated) {
  const std::string path = FreshPath("steps");
  auto s = OpenSqlite(path);
  ASSERT_TRUE(s.ok()) << s.error().message;
  RunRow r;
  r.id = "r1";
  r.name = "plan";
  r.state = "running";
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
