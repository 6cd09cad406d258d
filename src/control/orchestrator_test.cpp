// The orchestrator on a FakeClock with a real SQLite store: runs advance when a test moves time and ticks,
// with agents standing in as the API would register and report them.
#include "control/orchestrator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "stats/wire.h"

namespace meridian::control {
namespace {

using store::AssignmentState;
using store::RunState;

constexpr int64_t kSecond = 1'000'000'000;

// One region (`agents` agents), one VU for 60 s; ready_timeout 30 s, heartbeat_timeout 10 s, start_buffer 1
// s.
std::string PlanYaml(const std::string& extra = "", int agents = 1) {
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
  void Report(control::Run& run, const std::string& agent, int64_t seq, uint64_t requests,
              uint64_t failures) {
    stats::IntervalSnapshot s;
    s.second = seq;
    auto& ok = s.Series(stats::SeriesKey{0, 0, 200, stats::ErrorKind::kNone});
    ok.requests = requests - failures;
    ok.duration.RecordN(5'000'000, requests - failures);
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
    EXPECT_EQ(run.row.state, RunState::kPreparing);
    EXPECT_EQ(orchestrator_->agents()["a1"].run_id, run.row.id);
    for (auto& a : run.assignments) orchestrator_->AgentReady(run, a, "");
    Tick();
    EXPECT_EQ(run.row.state, RunState::kReady);
    EXPECT_EQ(run.row.start_at_ns, clock_.Wall() + kSecond);  // start_buffer after every agent was ready
    Tick(kSecond);
    EXPECT_EQ(run.row.state, RunState::kRunning);
    return run;
  }

  std::string dir_;
  FakeClock clock_;
  ServerConfig config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Orchestrator> orchestrator_;
};

TEST_F(OrchestratorTest, ARunWithoutAgentsErrorsAtItsReadyTimeoutNamingTheRegion) {
  control::Run& run = Create(PlanYaml());
  const std::string id = run.row.id;
  EXPECT_EQ(run.row.state, RunState::kPreparing);
  Tick(29 * kSecond);
  ASSERT_NE(orchestrator_->Active(id), nullptr);
  EXPECT_EQ(orchestrator_->Active(id)->row.state, RunState::kPreparing);
  Tick(kSecond);
  EXPECT_EQ(orchestrator_->Active(id), nullptr);  // ended and let go in the same tick
  const store::RunRow row = Stored(id);
  EXPECT_EQ(row.state, RunState::kErrored);
  EXPECT_EQ(row.exit_code, 1);
  EXPECT_EQ(row.reason, "ready_timeout (30.0s) elapsed: region eu has no agent");
  EXPECT_EQ(row.ended_ns, clock_.Wall());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/runs/" + id + "/FINISHED.txt"));
  auto events = store_->Events(id);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);  // created, preparing, errored
  EXPECT_EQ((*events)[2].from_state, "preparing");
  EXPECT_EQ((*events)[2].to_state, "errored");
}

TEST_F(OrchestratorTest, AnAgentThatStopsCallingIsLostAndErrorsTheRun) {
  control::Run& run = Running(PlanYaml());
  const std::string id = run.row.id;
  Tick(8 * kSecond);  // 9 s since its last contact: not yet
  ASSERT_NE(orchestrator_->Active(id), nullptr);
  Tick(kSecond);
  EXPECT_EQ(orchestrator_->Active(id), nullptr);
  const store::RunRow row = Stored(id);
  EXPECT_EQ(row.state, RunState::kErrored);
  EXPECT_EQ(row.reason, "agent agent-a1 (a1) in region eu lost: no contact for 10.0s (heartbeat_timeout)");
  EXPECT_TRUE(orchestrator_->agents()["a1"].run_id.empty());  // free for the next run
}

TEST_F(OrchestratorTest, WithOnAgentLossContinueALostAgentIsDroppedAndTheRunGoesOn) {
  AddAgent("a2", "eu");
  control::Run& run = Running(PlanYaml("on_agent_loss: continue\n", 2));
  const std::string id = run.row.id;
  ASSERT_EQ(run.assignments.size(), 2u);
  for (int i = 0; i < 10; ++i) {
    Seen("a1");  // a1 keeps calling, a2 does not
    Tick(kSecond);
  }
  ASSERT_NE(orchestrator_->Active(id), nullptr);
  EXPECT_EQ(run.row.state, RunState::kRunning);
  EXPECT_EQ(run.Assignment("a2")->state, AssignmentState::kLost);
  EXPECT_EQ(run.Assignment("a1")->state, AssignmentState::kReady);
  EXPECT_EQ(run.row.reason.find("agent agent-a2 (a2) in region eu lost"), 0u) << run.row.reason;
  auto stored = store_->Assignments(id);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[1].agent_id, "a2");
  EXPECT_EQ((*stored)[1].state, AssignmentState::kLost);
  EXPECT_TRUE(orchestrator_->agents()["a2"].run_id.empty());
  // The one left finishes the work: the run drains and passes on its report alone.
  Report(run, "a1", 0, 10, 0);
  Done(run, "a1", 0);
  Seen("a1");
  Tick();
  EXPECT_EQ(run.row.state, RunState::kDraining);
  Tick();
  EXPECT_EQ(orchestrator_->Active(id), nullptr);
  EXPECT_EQ(Stored(id).state, RunState::kPassed);
}

TEST_F(OrchestratorTest, AnAbortOnFailThresholdDrainsTheRunAndFailsIt) {
  control::Run& run =
      Running(PlanYaml("thresholds:\n  http_req_failed: [{ threshold: \"rate<0.5\", abortOnFail: true }]\n"));
  const std::string id = run.row.id;
  Report(run, "a1", 0, 10, 2);  // 20 %: under the line
  Seen("a1");
  Tick(kSecond);
  EXPECT_EQ(run.row.state, RunState::kRunning);
  Report(run, "a1", 1, 10, 9);  // 11 of 20 failed
  Seen("a1");
  Tick(kSecond);
  EXPECT_EQ(run.row.state, RunState::kDraining);
  EXPECT_TRUE(run.stop);
  EXPECT_EQ(run.row.reason.find("threshold http_req_failed rate<0.5 crossed"), 0u) << run.row.reason;
  Done(run, "a1", 1);
  Tick();
  EXPECT_EQ(orchestrator_->Active(id), nullptr);
  const store::RunRow row = Stored(id);
  EXPECT_EQ(row.state, RunState::kFailed);
  EXPECT_EQ(row.exit_code, 99);
}

TEST_F(OrchestratorTest, ARestartResumesActiveRunsWithTheirReportsAndAFreshHeartbeatWindow) {
  control::Run& run = Running(PlanYaml());
  const std::string id = run.row.id;
  const int64_t start_at = run.row.start_at_ns;
  Report(run, "a1", 0, 10, 0);
  Report(run, "a1", 1, 10, 0);
  // The control plane is gone for 30 s (three heartbeat timeouts); a new one opens the same store.
  clock_.Advance(30 * kSecond);
  Open();
  control::Run* resumed = orchestrator_->Active(id);
  ASSERT_NE(resumed, nullptr);
  EXPECT_EQ(resumed->row.state, RunState::kRunning);
  EXPECT_EQ(resumed->row.start_at_ns, start_at);
  EXPECT_EQ(resumed->progress["a1"].acked, 1);  // both stored reports ingested again
  EXPECT_EQ(orchestrator_->agents()["a1"].run_id, id);
  // The agent was not the one away: it gets a whole heartbeat_timeout from the restart.
  Tick(9 * kSecond);
  ASSERT_NE(orchestrator_->Active(id), nullptr);
  Report(*resumed, "a1", 2, 10, 0);
  Done(*resumed, "a1", 2);
  Seen("a1");
  Tick();  // running → draining (every agent done)
  Tick();  // draining → cleaning → passed
  EXPECT_EQ(orchestrator_->Active(id), nullptr);
  const store::RunRow row = Stored(id);
  EXPECT_EQ(row.state, RunState::kPassed);
  EXPECT_EQ(row.exit_code, 0);
  const auto summary = nlohmann::json::parse(row.summary_json);
  EXPECT_EQ(summary["requests"]["count"], 30);  // the reports from before the restart count
  // An ended run is not resumed by the next start.
  Open();
  EXPECT_EQ(orchestrator_->Active(id), nullptr);
}

}  // namespace
}  // namespace meridian::control
