// The orchestrator on a FakeClock with a real SQLite store: runs advance when a test moves time and ticks,
// with agents standing in as the API would register and report them.
#include "control/orchestrator.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "control/orchestrator_fixture.h"

namespace meridian::control {
namespace {

using store::AssignmentState;
using store::RunState;

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

// A resumed run whose baseline run cannot be read (pruned by retention, say) goes on: its thresholds against
// the baseline never abort it and fail at the end saying why; the others are evaluated as usual.
TEST_F(OrchestratorTest, AResumedRunWhoseBaselineIsGoneSaysWhyAndIsNotAborted) {
  control::Run& run = Running(
      "baseline: r-000000000000\n" +
      PlanYaml(
          "thresholds:\n  http_req_duration: [{ threshold: \"p(95) < baseline * 1.1\", abortOnFail: true }]\n"
          "  http_reqs: [\"count > 0\"]\n"));
  const std::string id = run.row.id;
  Report(run, "a1", 0, 10, 0);
  Open();
  control::Run* resumed = orchestrator_->Active(id);
  ASSERT_NE(resumed, nullptr);
  EXPECT_TRUE(resumed->baseline.empty());
  EXPECT_NE(resumed->baseline_error.find("baseline run r-000000000000 could not be read"), std::string::npos)
      << resumed->baseline_error;
  EXPECT_TRUE(EvaluateThresholds(*resumed, /*abort_only=*/true).empty());
  const auto all = EvaluateThresholds(*resumed, false);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_FALSE(all[0].ok);
  EXPECT_NE(
      all[0].measured_text.find("no baseline run to compare with (baseline run r-000000000000 could not be "
                                "read: baseline: there is no run 'r-000000000000')"),
      std::string::npos)
      << all[0].measured_text;
  EXPECT_TRUE(all[1].ok);
}

}  // namespace
}  // namespace meridian::control
