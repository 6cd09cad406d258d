#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// The orchestrator's unit-test fixture: a FakeClock, a real SQLite store in a temporary directory, agents
// registered and reporting as the API would (orchestrator_test.cpp, live_test.cpp).

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "control/orchestrator.h"
#include "core/clock.h"
#include "stats/wire.h"

namespace meridian::control {

constexpr int64_t kSecond = 1'000'000'000;

// One region (`agents` agents), one VU for 60 s; ready_timeout 30 s, heartbeat_timeout 10 s, start_buffer 1
// s.
inline std::string PlanYaml(const std::string& extra = "", int agents = 1) {
  return "name: t\nready_timeout: 30s\nheartbeat_timeout: 10s\nstart_buffer: 1s\ndrain_grace: 2s\n"
         "regions: { eu: { agents: " +
         std::to_string(agents) +
         " } }\n"
         "scenarios:\n  s:\n    executor: constant-vus\n    vus: 1\n    duration: 60s\n"
         "    requests:\n      - { name: home, url: \"http://127.0.0.1:1/\" }\n" +
         extra;
}

class OrchestratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/meridian-orchestrator-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  void TearDown() override {
    orchestrator_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A control plane (re)started on the same store.
  void Open() {
    orchestrator_.reset();
    store_.reset();
    auto s = store::OpenSqlite(dir_ + "/m.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    orchestrator_ = std::make_unique<Orchestrator>(*store_, clock_, config_, dir_);
    ASSERT_TRUE(orchestrator_->Load().ok());
  }
  // An agent registered in `region` and seen now, as POST /v1/agents leaves it.
  void AddAgent(const std::string& id, const std::string& region) {
    store::AgentRow row;
    row.id = id;
    row.name = "agent-" + id;
    row.region = region;
    row.registered_ns = clock_.Wall();
    ASSERT_TRUE(store_->PutAgent(row).ok());
    AgentLive& live = orchestrator_->agents()[id];
    live.row = row;
    live.last_seen_mono = clock_.Mono();
  }
  void Seen(const std::string& id) { orchestrator_->agents()[id].last_seen_mono = clock_.Mono(); }
  control::Run& Create(const std::string& yaml) {
    auto plan = plan::ParsePlan(yaml, "plan.yaml");
    EXPECT_TRUE(plan.ok()) << plan.error().message;
    auto run = orchestrator_->Create(std::move(plan).value(), yaml, "ci");
    EXPECT_TRUE(run.ok());
    return **run;
  }
  void Tick(int64_t advance_ns = 0) {
    clock_.Advance(advance_ns);
    orchestrator_->Tick();
  }
  store::RunRow Stored(const std::string& id) {
    auto row = store_->GetRun(id);
    EXPECT_TRUE(row.ok() && row->has_value());
    return row.ok() && row->has_value() ? **row : store::RunRow{};
  }
  // One second of `requests` requests from `agent`, `failures` of them failed, stored and ingested as the
  // report route does.
  void Report(control::Run& run, const std::string& agent, int64_t seq, uint64_t requests, uint64_t failures,
              int64_t duration_ns = 5'000'000) {
    stats::IntervalSnapshot s;
    s.second = seq;
    auto& ok = s.Series(stats::SeriesKey{0, 0, 200, stats::ErrorKind::kNone});
    ok.requests = requests - failures;
    ok.duration.RecordN(duration_ns, requests - failures);
    if (failures > 0) {
      auto& failed = s.Series(stats::SeriesKey{0, 0, 500, stats::ErrorKind::kNone});
      failed.requests = failures;
      failed.failures = failures;
      failed.duration.RecordN(5'000'000, failures);
    }
    s.Scenario(0).iterations = requests;
    const std::string payload = stats::EncodeSnapshot(s);
    auto decoded = stats::DecodeSnapshot(payload);
    ASSERT_TRUE(decoded.ok());
    ASSERT_TRUE(orchestrator_->AgentReport(run, *run.Assignment(agent), seq, payload, *decoded, 0).ok());
  }
  void Done(control::Run& run, const std::string& agent, int64_t last_seq) {
    AgentDoneReport report;
    report.last_seq = last_seq;
    report.load_ended_ns = clock_.Wall();
    auto acked = orchestrator_->AgentDone(run, *run.Assignment(agent), std::move(report));
    ASSERT_TRUE(acked.ok());
    EXPECT_EQ(*acked, last_seq);  // every report up to its last was stored
  }
  // created → preparing → ready → running with agent `a1` (and any added before) in region eu.
  control::Run& Running(const std::string& yaml) {
    AddAgent("a1", "eu");
    control::Run& run = Create(yaml);
    EXPECT_EQ(run.row.state, store::RunState::kPreparing);
    EXPECT_EQ(orchestrator_->agents()["a1"].run_id, run.row.id);
    for (auto& a : run.assignments) orchestrator_->AgentReady(run, a, "");
    Tick();
    EXPECT_EQ(run.row.state, store::RunState::kReady);
    EXPECT_EQ(run.row.start_at_ns, clock_.Wall() + kSecond);  // start_buffer after every agent was ready
    Tick(kSecond);
    EXPECT_EQ(run.row.state, store::RunState::kRunning);
    return run;
  }

  std::string dir_;
  FakeClock clock_;
  ServerConfig config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Orchestrator> orchestrator_;
};

}  // namespace meridian::control
