// The step supervisor with real child processes launched through the real `meridian waiter`.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "core/clock.h"
#include "steps/steps.h"

namespace meridian::steps {
namespace {

constexpr int64_t kMs = 1'000'000;
// The waiter is `meridian` itself: a sanitizer build needs up to ~0.5 s to start under a parallel ctest on
// two cores. Tests whose outcome depends on the command having started (on its instant, before SIGTERM at
// run_max_time, before StopAll) give it this lead, as a plan's start_buffer does.
constexpr int64_t kLead = 1500 * kMs;

InstanceSpec Sh(const std::string& step, const std::string& script, int64_t delay_ms, int64_t max_ms) {
  InstanceSpec s;
  s.step = step;
  s.argv = {"/bin/sh", "-c", script};
  s.run_delay_ns = delay_ms * kMs;
  s.run_max_time_ns = max_ms * kMs;
  s.stop_grace_ns = 300 * kMs;
  return s;
}

SupervisorConfig Config() {
  SupervisorConfig c;
  c.meridian_binary = MERIDIAN_BINARY;
  c.run_id = "r-test";
  c.env["FROM_AGENT"] = "yes";
  return c;
}

TEST(Supervisor, StartsThroughTheWaiterOnTheInstantAndRecordsTheExit) {
  auto first =
      Sh("first", "echo \"hello $MERIDIAN_STEP#$MERIDIAN_INSTANCE $FROM_AGENT $MINE\"; exit 0", 0, 5000);
  first.env["MINE"] = "set";
  auto second = Sh("second", "echo err >&2; exit 4", 400, 5000);
  second.instance = 1;
  Supervisor sup(Config(), {first, second});
  const int64_t start = WallNanos() + kLead;
  ASSERT_TRUE(sup.Start(start).ok());
  const auto results = sup.Wait();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].state, "exited");
  EXPECT_EQ(results[0].exit_code, 0);
  EXPECT_EQ(results[0].log, "hello first#0 yes set\n");
  EXPECT_EQ(results[0].intended_ns, start);
  EXPECT_LT(std::abs(results[0].started_ns - start), 50 * kMs) << (results[0].started_ns - start) / 1e6;
  EXPECT_EQ(results[1].state, "exited");
  EXPECT_EQ(results[1].exit_code, 4);
  EXPECT_EQ(results[1].error, "exited with status 4");
  EXPECT_EQ(results[1].log, "err\n");
  EXPECT_LT(std::abs(results[1].started_ns - (start + 400 * kMs)), 50 * kMs);
  EXPECT_GT(results[1].max_rss_bytes, 0);
}

TEST(Supervisor, IgnoringSigtermGetsSigkillAfterStopGrace) {
  Supervisor sup(Config(), {Sh("stubborn", "trap '' TERM; echo up; while :; do sleep 0.05; done", 0, 300)});
  const int64_t start = WallNanos() + kLead;
  ASSERT_TRUE(sup.Start(start).ok());
  const auto r = sup.Wait()[0];
  EXPECT_EQ(r.state, "killed");
  EXPECT_EQ(r.signal, SIGKILL);
  // SIGTERM at start + 300 ms, SIGKILL 300 ms (stop_grace) later.
  EXPECT_GE(r.ended_ns - start, 600 * kMs - 5 * kMs);
  EXPECT_LT(r.ended_ns - start, 1500 * kMs);
}

TEST(Supervisor, SigtermAtRunMaxTimeStopsAWellBehavedStep) {
  Supervisor sup(Config(), {Sh("long", "exec sleep 30", 0, 300)});
  ASSERT_TRUE(sup.Start(WallNanos() + kLead).ok());
  const auto r = sup.Wait()[0];
  EXPECT_EQ(r.state, "stopped");
  EXPECT_EQ(r.signal, SIGTERM);
}

TEST(Supervisor, RestartOnFailureRestartsAndNeverDoesNot) {
  auto flaky = Sh("flaky", "echo attempt; exit 3", 0, 1700);
  flaky.restart_on_failure = true;
  auto once = Sh("once", "exit 3", 0, 1700);
  once.instance = 0;
  Supervisor sup(Config(), {flaky, once});
  ASSERT_TRUE(sup.Start(WallNanos() + kLead).ok());
  const auto results = sup.Wait();
  // Exits at 0, restarts 250 ms after that exit and again 500 ms after the next; the third would come 1 s
  // after the third exit, past run_max_time (1.75 s plus three waiter starts). Exactly two restarts as long
  // as a restart's waiter starts within ~0.45 s.
  EXPECT_EQ(results[0].restarts, 2u);
  EXPECT_EQ(results[0].state, "exited");
  EXPECT_EQ(results[0].exit_code, 3);
  EXPECT_EQ(results[0].log, "attempt\nattempt\nattempt\n");
  EXPECT_EQ(results[1].restarts, 0u);
  EXPECT_EQ(results[1].exit_code, 3);
}

TEST(Supervisor, StopAllStopsRunningAndWaitingInstances) {
  Supervisor sup(Config(),
                 {Sh("now", "exec sleep 30", 0, 60'000), Sh("later", "exec sleep 30", 20'000, 60'000)});
  ASSERT_TRUE(sup.Start(WallNanos()).ok());
  std::this_thread::sleep_for(std::chrono::nanoseconds(kLead));  // "now" has started by then
  sup.StopAll();
  const auto results = sup.Wait();
  EXPECT_EQ(results[0].state, "stopped");
  EXPECT_EQ(results[1].state, "not_started");
  EXPECT_EQ(results[1].error, "stopped before its start instant");
}

TEST(Supervisor, ACommandThatCannotStartIsReported) {
  InstanceSpec s;
  s.step = "typo";
  s.argv = {"no-such-program-here"};
  s.run_max_time_ns = 5000 * kMs;
  Supervisor sup(Config(), {s});
  ASSERT_TRUE(sup.Start(WallNanos()).ok());
  const auto r = sup.Wait()[0];
  EXPECT_EQ(r.state, "not_started");
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.log.find("cannot run 'no-such-program-here'"), std::string::npos) << r.log;
}

TEST(Supervisor, LogsKeepTheHeadAndTheTail) {
  SupervisorConfig c = Config();
  c.log_head_bytes = 10;
  c.log_tail_bytes = 10;
  Supervisor sup(c, {Sh("chatty",
                        "printf 'HEAD567890'; i=0; while [ $i -lt 2000 ]; do printf 'x'; i=$((i+1)); done; "
                        "printf 'TAIL567890'",
                        0, 5000)});
  ASSERT_TRUE(sup.Start(WallNanos()).ok());
  const auto r = sup.Wait()[0];
  EXPECT_EQ(r.log_bytes, 2020u);
  EXPECT_EQ(r.log, "HEAD567890\n[… 2000 bytes not kept …]\nTAIL567890");
  // All of it written at once just before exiting (it may be read only when the process is reaped): the head
  // is kept too.
  Supervisor burst(c, {Sh("burst", "printf 'HEAD567890%02000dTAIL567890' 0", 0, 5000)});
  ASSERT_TRUE(burst.Start(WallNanos()).ok());
  const auto b = burst.Wait()[0];
  EXPECT_EQ(b.log_bytes, 2020u);
  EXPECT_EQ(b.log.substr(0, 10), "HEAD567890");
  EXPECT_EQ(b.log.substr(b.log.size() - 10), "TAIL567890");
}

// Peak RSS is the command's own (not the waiter's before the exec), and it sees what the command allocated.
TEST(Supervisor, PeakRssIsTheCommands) {
  Supervisor sup(Config(),
                 {Sh("small", "exec sleep 0.6", 0, 5000),
                  Sh("big", "x=$(head -c 40000000 /dev/zero | tr '\\0' a); sleep 0.6; echo ${#x}", 0, 5000)});
  ASSERT_TRUE(sup.Start(WallNanos()).ok());
  const auto results = sup.Wait();
  EXPECT_LT(results[0].max_rss_bytes, 8 << 20) << results[0].max_rss_bytes;
  EXPECT_GT(results[1].max_rss_bytes, 40 << 20) << results[1].max_rss_bytes;
  EXPECT_EQ(results[1].log, "40000000\n");
}

}  // namespace
}  // namespace meridian::steps
