// Command steps through the real binary: agents launch them through the waiter, stop them, restart them, and
// the summary, services.json and `runs logs` show each instance.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster.h"
#include "process.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

const json* Instance(const json& summary, const std::string& step, uint32_t instance) {
  for (const auto& s : summary["steps"]) {
    if (s["step"] == step && s["instance"] == instance) return &s;
  }
  return nullptr;
}

// Two steps, the second starting after the first ended, on a control plane with a real agent: each program
// prints the instant it started (bash's $EPOCHREALTIME, in ns: no date process to wait for), which must be
// within 50 ms of the intended one.
TEST(Steps, StaggeredStepsStartOnTheirInstants) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartAgent("local", "a1");
  cluster.AwaitAgents(1);
  const std::string plan = cluster.WritePlan("staged.yaml", R"(name: staged
start_buffer: 1500ms
regions: { local: {} }
steps:
  - name: first
    command: [bash, -c, 'echo ${EPOCHREALTIME/./}000; sleep 0.3']
    run_max_time: 2s
  - name: second
    instances: 2
    command: [bash, -c, 'echo ${EPOCHREALTIME/./}000; echo "instance $MERIDIAN_INSTANCE of $MERIDIAN_STEP in $MERIDIAN_RUN_ID"']
    run_delay: 800ms
    run_max_time: 2s
)");
  TempDir out;
  auto args = cluster.Submit(plan);
  args.insert(args.end(), {"--out", out.path});
  const Finished f = RunFull(args);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json summary = ReadJson(out.path + "/summary.json");
  const std::string run_id = summary["run"]["id"].get<std::string>();
  const int64_t start_at = summary["run"]["start_at_ns"].get<int64_t>();
  ASSERT_EQ(summary["steps"].size(), 3u) << summary.dump();
  for (const auto& [step, instance, delay_ms] : std::vector<std::tuple<std::string, uint32_t, int64_t>>{
           {"first", 0, 0}, {"second", 0, 800}, {"second", 1, 800}}) {
    const json* s = Instance(summary, step, instance);
    ASSERT_NE(s, nullptr) << step << "#" << instance << summary.dump();
    EXPECT_EQ((*s)["state"], "exited") << s->dump();
    EXPECT_EQ((*s)["exit_code"], 0) << s->dump();
    EXPECT_LT(std::abs((*s)["start_offset_ms"].get<double>()), 50.0) << s->dump();
    // The program's own clock reading, from its log through `meridian runs logs`.
    const Finished logs =
        RunMeridian({"runs", "--control", cluster.url(), "--token-file", cluster.dir() + "/runs.token",
                     "logs", run_id, step, "--instance", std::to_string(instance)});
    ASSERT_EQ(logs.exit_code, 0) << logs.err;
    const int64_t printed = std::stoll(logs.out.substr(0, logs.out.find('\n')));
    const int64_t intended = start_at + delay_ms * 1'000'000;
    EXPECT_LT(std::abs(printed - intended), 50'000'000)
        << step << "#" << instance << " started " << (printed - intended) / 1e6 << " ms off";
    if (step == "second") {
      EXPECT_NE(logs.out.find("instance " + std::to_string(instance) + " of second in " + run_id),
                std::string::npos)
          << logs.out;
    }
  }
  // The second step started after the first ended.
  EXPECT_GT((*Instance(summary, "second", 0))["started_ns"].get<int64_t>(),
            (*Instance(summary, "first", 0))["ended_ns"].get<int64_t>());
  // services.json lists every instance with its times and status.
  const json services = ReadJson(out.path + "/services.json");
  ASSERT_EQ(services["steps"].size(), 2u);
  EXPECT_EQ(services["steps"][1]["name"], "second");
  ASSERT_EQ(services["steps"][1]["instance_results"].size(), 2u) << services.dump();
  EXPECT_EQ(services["steps"][1]["instance_results"][1]["state"], "exited");
  EXPECT_GT(services["steps"][1]["instance_results"][1]["started_at"].get<double>(), 0.0);
  // Every instance's log at once, each under a header; an unknown step is named.
  Finished all = RunMeridian({"runs", "--control", cluster.url(), "--token-file",
                              cluster.dir() + "/runs.token", "logs", run_id, "second"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_NE(all.out.find("==> second#0 ("), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("==> second#1 ("), std::string::npos) << all.out;
  Finished unknown = RunMeridian({"runs", "--control", cluster.url(), "--token-file",
                                  cluster.dir() + "/runs.token", "logs", run_id, "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("the run has no step 'nope'"), std::string::npos) << unknown.err;
}

// ardere's step names have spaces and colons: `runs logs` sends the name as one percent-encoded path
// segment and the server decodes it, so any name the plan allows can be read back (a '/' included).
TEST(Steps, LogsOfStepsWhoseNamesNeedEncoding) {
  Cluster cluster;
  cluster.StartServer();
  cluster.StartAgent("local", "a1");
  cluster.AwaitAgents(1);
  const std::string plan = cluster.WritePlan("names.yaml", R"yaml(name: names
start_buffer: 1500ms
regions: { local: {} }
steps:
  - { name: "warm up: cache (50%)", shell: 'echo warmed', run_max_time: 2s }
  - { name: "a/b?c#d", shell: 'echo slashed', run_max_time: 2s }
)yaml");
  TempDir out;
  auto args = cluster.Submit(plan);
  args.insert(args.end(), {"--out", out.path});
  const Finished f = RunFull(args);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const std::string run_id = ReadJson(out.path + "/summary.json")["run"]["id"].get<std::string>();
  for (const auto& [step, printed] : std::vector<std::pair<std::string, std::string>>{
           {"warm up: cache (50%)", "warmed"}, {"a/b?c#d", "slashed"}}) {
    const Finished logs = RunMeridian({"runs", "--control", cluster.url(), "--token-file",
                                       cluster.dir() + "/runs.token", "logs", run_id, step});
    ASSERT_EQ(logs.exit_code, 0) << step << ": " << logs.err;
    EXPECT_NE(logs.out.find("==> " + step + "#0 ("), std::string::npos) << logs.out;
    EXPECT_NE(logs.out.find(printed), std::string::npos) << logs.out;
  }
  const Finished unknown = RunMeridian({"runs", "--control", cluster.url(), "--token-file",
                                        cluster.dir() + "/runs.token", "logs", run_id, "warm up"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("the run has no step 'warm up'"), std::string::npos) << unknown.err;
}

TEST(Steps, StopGraceAndRestartPolicies) {
  TempDir dir;
  // start_buffer: time for the (sanitizer-built) waiters to start before the instant; their start decides
  // how many restarts fit in flaky's run_max_time (two, while a restart's waiter starts within ~0.45 s).
  dir.Write("plan.yaml", R"(name: policies
start_buffer: 1500ms
regions: { local: {} }
steps:
  - name: stubborn
    shell: "trap '' TERM; echo up; while :; do sleep 0.05; done"
    run_max_time: 500ms
    stop_grace: 300ms
  - name: polite
    command: [sleep, "30"]
    run_max_time: 500ms
  - name: flaky
    shell: 'echo try; exit 3'
    restart: on-failure
    run_max_time: 1700ms
    allow_failure: true
  - name: once
    shell: 'exit 3'
    restart: never
    run_max_time: 1200ms
    allow_failure: true
)");
  const Finished f = RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--state-dir",
                              dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json summary = ReadJson(dir.path + "/out/summary.json");
  const json* stubborn = Instance(summary, "stubborn", 0);
  ASSERT_NE(stubborn, nullptr) << summary.dump();
  EXPECT_EQ((*stubborn)["state"], "killed");
  EXPECT_EQ((*stubborn)["signal"], 9);
  // SIGTERM at the instant + run_max_time (500 ms), ignored; SIGKILL 300 ms later.
  const int64_t ended = (*stubborn)["ended_ns"].get<int64_t>() - summary["run"]["start_at_ns"].get<int64_t>();
  EXPECT_GE(ended, 795'000'000) << stubborn->dump();
  const json* polite = Instance(summary, "polite", 0);
  EXPECT_EQ((*polite)["state"], "stopped");
  EXPECT_EQ((*polite)["signal"], 15);
  const json* flaky = Instance(summary, "flaky", 0);
  EXPECT_EQ((*flaky)["restarts"], 2) << flaky->dump();
  EXPECT_EQ((*flaky)["exit_code"], 3);
  const json* once = Instance(summary, "once", 0);
  EXPECT_EQ((*once)["restarts"], 0);
  EXPECT_EQ((*once)["error"], "exited with status 3");
  EXPECT_NE(f.out.find("stubborn#0"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("restarts 2"), std::string::npos) << f.out;
}

// A step whose every instance failed (a command not found, a script that exits non-zero) fails the run unless
// it says `allow_failure: true`; the summary names it and shows the failed instances' last log lines, and
// --out keeps every instance's log. Stopped at run_max_time is not a failure; one failed instance of two is
// not every instance.
TEST(Steps, AStepWhoseEveryInstanceFailedFailsTheRun) {
  TempDir dir;
  dir.Write("plan.yaml", R"(name: failing
start_buffer: 1500ms
regions: { local: {} }
steps:
  - { name: missing, command: [meridian-no-such-command], run_max_time: 2s }
  - name: bad
    instances: 2
    shell: 'echo "step $MERIDIAN_INSTANCE starting"; echo "last words of $MERIDIAN_INSTANCE" >&2; exit 1'
    run_max_time: 2s
  - { name: tolerated, shell: 'exit 2', run_max_time: 2s, allow_failure: true }
  - { name: half, instances: 2, shell: 'exit $MERIDIAN_INSTANCE', run_max_time: 2s }
  - { name: server, command: [sleep, "30"], run_max_time: 300ms }
)");
  const Finished f = RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--state-dir",
                              dir.path + "/state", "--out", dir.path + "/out"});
  EXPECT_EQ(f.exit_code, 99) << f.err << f.out;  // failed, as for thresholds
  EXPECT_NE(f.out.find("steps 'missing' (did not start: command not found)"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("'bad' (exit 1, all 2 instances)"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("allow_failure: true"), std::string::npos) << f.out;
  for (const char* passed : {"'tolerated'", "'half'", "'server'"}) {
    EXPECT_EQ(f.out.find(passed), std::string::npos) << passed << " failed the run:\n" << f.out;
  }
  EXPECT_NE(f.out.find("failed step instances"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("==> bad#1 <=="), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("      last words of 1"), std::string::npos) << f.out;
  const json summary = ReadJson(dir.path + "/out/summary.json");
  EXPECT_EQ(summary["run"]["state"], "failed");
  const json* bad = Instance(summary, "bad", 0);
  ASSERT_NE(bad, nullptr) << summary.dump();
  EXPECT_EQ((*bad)["failed"], true);
  EXPECT_NE((*bad)["log_tail"].get<std::string>().find("last words of 0"), std::string::npos) << bad->dump();
  const json* missing = Instance(summary, "missing", 0);
  ASSERT_NE(missing, nullptr) << summary.dump();
  EXPECT_EQ((*missing)["failed"], true);
  EXPECT_FALSE(Instance(summary, "half", 0)->contains("failed")) << summary.dump();
  // It never ran: no CPU or memory of its own to show (what was measured was the waiter's).
  EXPECT_NE(f.out.find("cpu -  rss -  (the command did not start"), std::string::npos) << f.out;
  // The logs outlive `meridian run`: every instance's, failed or not.
  for (const char* file : {"missing#0.log", "bad#0.log", "bad#1.log", "half#1.log", "server#0.log"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path + "/out/steps/" + std::string(file))) << file;
  }
  std::ifstream log(dir.path + "/out/steps/bad#1.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("step 1 starting"), std::string::npos) << text;
  EXPECT_NE(text.find("last words of 1"), std::string::npos) << text;
}

TEST(Steps, InvalidStepsAreNamed) {
  TempDir dir;
  dir.Write("dup.yaml",
            "name: d\nsteps:\n  - { name: a, command: [true], run_max_time: 1s }\n"
            "  - { name: a, command: [true], run_max_time: 1s }\n");
  Finished f = RunMeridian({"validate", dir.path + "/dup.yaml"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("dup.yaml:4"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("steps[1].name: 'a' is already the name of steps[0]"), std::string::npos) << f.err;
  dir.Write("restart.yaml",
            "name: r\nsteps:\n  - { name: a, command: [true], run_max_time: 1s, restart: always }\n");
  f = RunMeridian({"validate", dir.path + "/restart.yaml"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("'always' is not one of: never, on-failure"), std::string::npos) << f.err;
  dir.Write("both.yaml",
            "name: b\nsteps:\n  - { name: a, command: [true], shell: 'true', run_max_time: 1s }\n");
  f = RunMeridian({"validate", dir.path + "/both.yaml"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("give either command or shell"), std::string::npos) << f.err;
  // A working directory that does not exist on the agent fails preparation, naming the step.
  dir.Write("cwd.yaml",
            "name: c\nsteps:\n  - { name: a, command: [pwd], cwd: /no/such/dir, run_max_time: 1s }\n");
  f = RunFull({MeridianBinary(), "run", dir.path + "/cwd.yaml", "--state-dir", dir.path + "/state"});
  EXPECT_EQ(f.exit_code, 1) << f.out << f.err;
  EXPECT_NE(f.out.find("steps.a.cwd: '/no/such/dir' is not a directory on this agent"), std::string::npos)
      << f.out;
}

// examples/ardere-plan.json runs as it is: its steps run in order, its meaningless fields are warned about.
// So does the same plan in TOML (ardere reads both); warnings name the file's own lines.
class ArdereExample : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ArdereExample, RunsWithWarnings) {
  const auto& [file, ecs_name_at] = GetParam();
  TempDir dir;
  const Finished f = RunFull({MeridianBinary(), "run", std::string(MERIDIAN_SOURCE_DIR) + "/examples/" + file,
                              "--state-dir", dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.err.find(ecs_name_at + ": ecs_name: ignored"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("steps[1].port_mapping: ignored"), std::string::npos) << f.err;
  const json summary = ReadJson(dir.path + "/out/summary.json");
  ASSERT_EQ(summary["steps"].size(), 3u) << summary.dump();
  for (const auto& s : summary["steps"]) {
    EXPECT_EQ(s["state"], "exited") << s.dump();
    EXPECT_EQ(s["exit_code"], 0) << s.dump();
  }
  const json* warmup = Instance(summary, "warmup", 0);
  const json* swarm = Instance(summary, "swarm", 1);
  ASSERT_TRUE(warmup && swarm);
  EXPECT_GT((*swarm)["started_ns"].get<int64_t>(), (*warmup)["ended_ns"].get<int64_t>());
  EXPECT_EQ((*swarm)["log_bytes"], 5 * std::string("connection batch N\n").size());
}

INSTANTIATE_TEST_SUITE_P(Steps, ArdereExample,
                         ::testing::Values(std::make_pair("ardere-plan.json", "ardere-plan.json:2:15"),
                                           std::make_pair("ardere-plan.toml", "ardere-plan.toml:3")),
                         [](const auto& p) { return p.param.first.ends_with(".toml") ? "Toml" : "Json"; });

// StatsD a step sends (to its own $MERIDIAN_STATSD) reaches the summary and the thresholds; a failing one
// exits 99.
TEST(Steps, StatsdFromStepsReachesSummaryAndThresholds) {
  TempDir dir;
  const std::string step = R"(steps:
  - name: swarm
    instances: 2
    command:
      - bash
      - -c
      - |
        addr=/dev/udp/${MERIDIAN_STATSD%:*}/${MERIDIAN_STATSD#*:}
        for i in $(seq 1 20); do
          echo "ws.connections:1|c" > $addr
          echo "ws.latency:$((i * 5))|ms" > $addr
          sleep 0.02
        done
        printf 'ws.open:7|g\nws.open:+3|g\nbogus line\n' > $addr
    run_max_time: 5s
)";
  dir.Write("pass.yaml",
            "name: statsd\nstart_buffer: 1500ms\nregions: { local: {} }\n" + step + R"(thresholds:
  ws.connections: ['count==40']
  "ws.latency{step:swarm,instance:1}": ['p(95)<200', 'max<=100ms', 'count==20']
  "ws.open": ['value==20', 'max==10']
)");
  Finished f = RunFull({MeridianBinary(), "run", dir.path + "/pass.yaml", "--state-dir", dir.path + "/state",
                        "--out", dir.path + "/out", "--verbose"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("✓ ws.connections count==40  (measured 40)"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("ws.latency{swarm#1}"), std::string::npos) << f.out;
  EXPECT_NE(f.err.find("statsd line 'bogus line'"), std::string::npos) << f.err;
  const json summary = ReadJson(dir.path + "/out/summary.json");
  ASSERT_EQ(summary["step_metrics"].size(), 6u) << summary.dump();
  for (const auto& m : summary["step_metrics"]) {
    if (m["name"] == "ws.connections") {
      EXPECT_EQ(m["count"], 20) << m.dump();
    }
    if (m["name"] == "ws.open") {
      EXPECT_EQ(m["value"], 10) << m.dump();
    }
    if (m["name"] == "ws.latency") {
      EXPECT_EQ(m["max_ms"], 100) << m.dump();
    }
  }

  dir.Write("fail.yaml",
            "name: statsd\nstart_buffer: 1500ms\nregions: { local: {} }\n" + step + R"(thresholds:
  "ws.latency{step:swarm}": ['p(95)<20']
)");
  f = RunFull({MeridianBinary(), "run", dir.path + "/fail.yaml", "--state-dir", dir.path + "/state2"});
  EXPECT_EQ(f.exit_code, 99) << f.err << f.out;
  EXPECT_NE(f.out.find("✗ ws.latency{step:swarm} p(95)<20"), std::string::npos) << f.out;

  // Without steps such a name is a typo, named with the allowed metrics.
  dir.Write("nosteps.yaml",
            "name: x\nscenarios:\n  s: { executor: constant-vus, vus: 1, duration: 1s, requests: "
            "[{ url: 'http://127.0.0.1:1/' }] }\nthresholds:\n  ws.latency: ['p(95)<20']\n");
  f = RunMeridian({"validate", dir.path + "/nosteps.yaml"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("names that steps send over StatsD need steps in the plan"), std::string::npos)
      << f.err;
}

// examples/staged.yaml: load, a warm-up step and a StatsD probe swarm, with thresholds on all three.
TEST(Steps, StagedExamplePasses) {
  Target target;
  TempDir dir;
  const Finished f =
      RunFull({MeridianBinary(), "run", std::string(MERIDIAN_SOURCE_DIR) + "/examples/staged.yaml", "--vars",
               "base=" + target.url(), "--state-dir", dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("✓ probe.checks count>20"), std::string::npos) << f.out;
  const json summary = ReadJson(dir.path + "/out/summary.json");
  EXPECT_EQ(summary["requests"]["count"], 150) << summary.dump();
  const json* probe = Instance(summary, "probe", 1);
  ASSERT_NE(probe, nullptr);
  EXPECT_EQ((*probe)["state"], "stopped");  // SIGTERM at run_max_time; its trap exits 0
  EXPECT_EQ((*probe)["exit_code"], 0);
  EXPECT_GT((*probe)["started_ns"].get<int64_t>(),
            (*Instance(summary, "warm-cache", 0))["ended_ns"].get<int64_t>());
}

// One agent running one step that writes a pid (of itself, or of a child it started) to DIR/pid.
struct StepOnAnAgent {
  Cluster cluster;
  TempDir dir;
  Process* agent = nullptr;
  std::unique_ptr<Process> submit;
  pid_t pid = 0;

  // `step` is the plan's step line, with PIDFILE standing for the pid file's path.
  explicit StepOnAnAgent(std::string step) {
    cluster.StartServer();
    agent = &cluster.StartAgent("local", "a1");
    cluster.AwaitAgents(1);
    step.replace(step.find("PIDFILE"), 7, dir.path + "/pid");
    const std::string plan = cluster.WritePlan(
        "orphan.yaml",
        "name: orphan\nstart_buffer: 1500ms\nheartbeat_timeout: 2s\nregions: { local: {} }\nsteps:\n" + step);
    submit = std::make_unique<Process>(cluster.Submit(plan));
    for (int i = 0; i < 500 && pid == 0; ++i) {
      std::this_thread::sleep_for(20ms);
      std::ifstream in(dir.path + "/pid");
      in >> pid;
    }
  }
  bool Dead() const {  // gone, or a zombie waiting for a reaper
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(pid) + "/stat"), stat);
    return stat.empty() || stat.find(") Z ") != std::string::npos;
  }
  // kill -9 of the agent; whether the pid was gone within three seconds.
  bool KillAgentAndAwait() {
    agent->Signal(SIGKILL);
    bool gone = false;
    for (int i = 0; i < 300 && !gone; ++i) {
      std::this_thread::sleep_for(10ms);
      gone = Dead();
    }
    if (!gone) kill(pid, SIGKILL);
    return gone;
  }
};

// A step does not outlive its agent: kill -9 of the agent ends the step (the waiter, which has the
// parent-death signal, stops the step's process group).
TEST(Steps, AKilledAgentTakesItsStepsWithIt) {
  StepOnAnAgent s(
      "  - { name: long, command: [/bin/sh, -c, 'echo $$ > PIDFILE; exec sleep 60'], run_max_time: 60s }\n");
  ASSERT_GT(s.pid, 0) << "the step did not start";
  ASSERT_FALSE(s.Dead());
  EXPECT_TRUE(s.KillAgentAndAwait()) << "the step (pid " << s.pid << ") outlived its agent";
  // The control plane notices the lost agent and ends the run (errored, exit 1).
  const Finished f = s.submit->Wait(30'000ms);
  EXPECT_EQ(f.exit_code, 1) << f.out << f.err;
}

// Not only the step's own process: what it started goes too. A shell that waits for a background child used
// to die of the death signal while the child, re-parented to init, ran on; the waiter now stays as the step's
// keeper and stops its whole process group when the agent is gone.
TEST(Steps, AKilledAgentTakesItsStepsChildrenWithIt) {
  StepOnAnAgent s("  - { name: parent, shell: 'sleep 60 & echo $! > PIDFILE; wait', run_max_time: 60s }\n");
  ASSERT_GT(s.pid, 0) << "the step did not start";
  ASSERT_FALSE(s.Dead());
  EXPECT_TRUE(s.KillAgentAndAwait()) << "the step's child (pid " << s.pid << ") outlived its agent";
  s.submit->Wait(30'000ms);
}

}  // namespace
}  // namespace meridian::testing
