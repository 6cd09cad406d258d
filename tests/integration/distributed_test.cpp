// Distributed runs with real processes: `meridian serve`, several `meridian agent`s and `meridian submit`,
// all on loopback with port 0 (or a free port where a restart must keep it).

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
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

// "done: N requests" from an agent's log.
uint64_t AgentRequests(const std::string& log) {
  // (std::regex is avoided: GCC 12 warns inside it at -O2.)
  const size_t at = log.find("done: ");
  if (at == std::string::npos) return UINT64_MAX;
  const size_t end = log.find(" requests", at);
  if (end == std::string::npos) return UINT64_MAX;
  return std::stoull(log.substr(at + 6, end - at - 6));
}

std::string ThreeRegionPlan(const std::string& base, const std::string& extra = "") {
  return "name: three\nvars: { base: \"" + base + "\" }\nstart_buffer: 500ms\nheartbeat_timeout: 2s\n" +
         extra +
         "regions:\n  us-east-1: { weight: 2 }\n  eu-west-1: { weight: 1 }\n  ap-south-1: { weight: 1 }\n"
         "scenarios:\n  browse:\n    executor: constant-arrival-rate\n    rate: 200/s\n    duration: 3s\n"
         "    requests:\n      - { name: home, url: \"{{base}}/\" }\n"
         "thresholds:\n  http_req_duration: [\"p(95)<2s\"]\n  \"http_req_duration{region:eu-west-1}\": "
         "[\"p(99)<2s\"]\n";
}

TEST(Distributed, ThreeRegionsStartTogetherAndCountsAddUp) {
  Target target;
  Cluster c;
  c.StartServer();
  c.StartAgent("us-east-1", "east");
  c.StartAgent("eu-west-1", "west");
  c.StartAgent("ap-south-1", "south");
  c.AwaitAgents(3);
  const std::string plan = c.WritePlan("plan.yaml", ThreeRegionPlan(target.url()));
  auto out_dir = c.dir() + "/out";
  auto args = c.Submit(plan);
  args.insert(args.end(), {"--out", out_dir});
  const Finished f = RunFull(args, 60'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["run"]["state"], "passed");
  // Per-region counts equal what each agent counted itself; the total is their sum.
  uint64_t sum = 0;
  std::map<std::string, uint64_t> by_region;
  for (auto& a : c.agents()) {
    const Finished af = a->Wait(20'000ms);
    EXPECT_EQ(af.exit_code, 0) << af.err;
    const uint64_t n = AgentRequests(af.err);
    ASSERT_NE(n, UINT64_MAX) << af.err;
    sum += n;
  }
  for (const auto& a : s["agents"]) {
    EXPECT_EQ(a["requests"].get<uint64_t>(), a["requests_counted_by_agent"].get<uint64_t>());
    by_region[a["region"]] += a["requests"].get<uint64_t>();
  }
  for (const auto& [region, n] : by_region) EXPECT_EQ(s["regions"][region]["requests"].get<uint64_t>(), n);
  EXPECT_EQ(s["requests"]["count"].get<uint64_t>(), sum);
  EXPECT_NEAR(static_cast<double>(sum), 600.0, 600 * 0.05);  // 200/s for 3 s
  // Weights 2:1:1 over 200/s.
  EXPECT_NEAR(static_cast<double>(by_region["us-east-1"]), 300, 300 * 0.05);
  EXPECT_NEAR(static_cast<double>(by_region["eu-west-1"]), 150, 150 * 0.05);
  // Every agent started within the skew target of the others.
  EXPECT_LE(s["start_skew_ms"].get<double>(), 5.0) << s["agents"].dump(2);
  ASSERT_EQ(s["thresholds"].size(), 2u);
  for (const char* name : {"plan.yaml", "services.json", "RUN.txt", "summary.json", "metrics.csv",
                           "report.html", "FINISHED.txt"}) {
    EXPECT_TRUE(std::filesystem::exists(out_dir + "/" + name)) << name;
  }
  std::ifstream run_txt(out_dir + "/RUN.txt");
  double start = 0;
  run_txt >> start;
  EXPECT_NEAR(start, s["run"]["start_at_ns"].get<double>() / 1e9, 1e-3);
  // The reports are in JUnit and CSV too.
  const Finished junit = RunFull({MeridianBinary(), "runs", "--control", c.url(), "--token-file",
                                  c.dir() + "/runs.token", "report", s["run"]["id"], "--format", "junit"});
  EXPECT_EQ(junit.exit_code, 0) << junit.err;
  EXPECT_NE(junit.out.find("<testsuites"), std::string::npos);
  EXPECT_NE(junit.out.find("http_req_duration{region:eu-west-1} p(99)&lt;2s"), std::string::npos)
      << junit.out;
  const Finished csv = RunFull({MeridianBinary(), "runs", "--control", c.url(), "--token-file",
                                c.dir() + "/runs.token", "report", s["run"]["id"], "--format", "csv"});
  EXPECT_NE(csv.out.find("second,region,requests"), std::string::npos);
  const Finished show = RunFull({MeridianBinary(), "runs", "--control", c.url(), "--token-file",
                                 c.dir() + "/runs.token", "show", s["run"]["id"]});
  for (const char* state : {"preparing", "ready", "running", "draining", "cleaning", "passed"}) {
    EXPECT_NE(show.out.find(std::string("-> ") + state), std::string::npos) << state << "\n" << show.out;
  }
}

// `meridian runs compare A B`: the same plan against a target answering in 1 ms, then in 25 ms. B's p95 is a
// regression on every row (exit 99, marked in the table); a run against itself is none (exit 0).
TEST(Distributed, CompareFlagsTheSlowerRunAgainstItsBaseline) {
  Target target;
  Cluster c;
  c.StartServer();
  c.StartAgent("eu-west-1", "west", false);  // it serves both runs
  c.AwaitAgents(1);
  std::string ids[2];
  for (int i = 0; i < 2; ++i) {
    const std::string plan = c.WritePlan(
        "plan" + std::to_string(i) + ".yaml",
        "name: compare\nvars: { base: \"" + target.url() +
            "\" }\nstart_buffer: 200ms\nregions: { eu-west-1: {} }\n"
            "scenarios:\n  s: { executor: constant-arrival-rate, rate: 50/s, duration: 2s, requests: "
            "[{ name: home, url: \"{{base}}/?delay=" +
            (i == 0 ? "1ms" : "100ms") + "\" }] }\n");
    const Finished f = RunFull(c.Submit(plan), 60'000ms);
    ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
    ids[i] = json::parse(f.out)["run"]["id"];
  }
  const std::vector<std::string> runs = {
      MeridianBinary(), "runs", "--control", c.url(), "--token-file", c.dir() + "/runs.token", "compare"};
  auto compare = [&](const std::string& a, const std::string& b, const std::string& format) {
    std::vector<std::string> args = runs;
    args.insert(args.end(), {a, b, "--format", format});
    return RunFull(args, 20'000ms);
  };
  const Finished text = compare(ids[0], ids[1], "text");
  EXPECT_EQ(text.exit_code, 99) << text.err << text.out;
  EXPECT_NE(text.out.find("3 row(s) regressed"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("eu-west-1"), std::string::npos) << text.out;
  const Finished j = compare(ids[0], ids[1], "json");
  EXPECT_EQ(j.exit_code, 99) << j.err;
  const json result = json::parse(j.out);
  ASSERT_EQ(result["rows"].size(), 3u);
  const json& home = result["rows"][2];
  EXPECT_EQ(home["name"], "home");
  // (On a loaded machine the fast run's first requests can take tens of ms: only the ratio is asserted.)
  EXPECT_GE(home["b"]["p95_ms"].get<double>(), 100.0);
  EXPECT_LT(home["a"]["p95_ms"].get<double>(), home["b"]["p95_ms"].get<double>() / 2);
  EXPECT_NE(std::find(home["regressed"].begin(), home["regressed"].end(), "p95"), home["regressed"].end());
  const Finished page = compare(ids[0], ids[1], "html");  // one page: the table and both histories inline
  EXPECT_EQ(page.exit_code, 99) << page.err;
  EXPECT_EQ(page.out.rfind("<!doctype html>", 0), 0u) << page.out.substr(0, 100);
  EXPECT_NE(page.out.find("\"kind\":\"compare\""), std::string::npos);
  EXPECT_NE(page.out.find(ids[0]), std::string::npos);
  EXPECT_NE(page.out.find(ids[1]), std::string::npos);
  EXPECT_EQ(page.out.find("src=\"http"), std::string::npos);
  const size_t first = page.out.find("\"seconds\":[{\"t\":");  // both runs' histories, not empty
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(page.out.find("\"seconds\":[{\"t\":", first + 1), std::string::npos);
  const Finished same = compare(ids[1], ids[1], "text");
  EXPECT_EQ(same.exit_code, 0) << same.err << same.out;
  EXPECT_NE(same.out.find("no regression"), std::string::npos) << same.out;
  const Finished unknown = compare("r-000000000000", ids[1], "text");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no run 'r-000000000000'"), std::string::npos) << unknown.err;

  // Thresholds against a baseline run: a slower plan (200 ms) against the fast one (1 ms), then itself.
  const std::string gated = c.WritePlan(
      "gated.yaml",
      "name: compare\nvars: { base: \"" + target.url() +
          "\" }\nstart_buffer: 200ms\nregions: { eu-west-1: {} }\n"
          "scenarios:\n  s: { executor: constant-arrival-rate, rate: 20/s, duration: 2s, requests: "
          "[{ name: home, url: \"{{base}}/?delay=200ms\" }] }\n"
          "thresholds: { \"http_req_duration{name:home}\": [\"p(95) < baseline * 2\"] }\n");
  auto against = [&](const std::string& baseline) {
    std::vector<std::string> args = c.Submit(gated);
    args.insert(args.end(), {"--baseline", baseline});
    return RunFull(args, 60'000ms);
  };
  const Finished slower = against(ids[0]);
  EXPECT_EQ(slower.exit_code, 99) << slower.err << slower.out;
  const json gate = json::parse(slower.out);
  EXPECT_EQ(gate["baseline"], ids[0]);
  ASSERT_EQ(gate["thresholds"].size(), 1u);
  const json& t = gate["thresholds"][0];
  EXPECT_FALSE(t["ok"].get<bool>());
  EXPECT_DOUBLE_EQ(t["limit"].get<double>(), t["baseline"].get<double>() * 2);
  EXPECT_NEAR(t["baseline"].get<double>() / 1e6, home["a"]["p95_ms"].get<double>(), 0.05);
  EXPECT_NE(t["measured_text"].get<std::string>().find("; baseline "), std::string::npos) << t;
  const Finished same_speed = against(gate["run"]["id"]);
  EXPECT_EQ(same_speed.exit_code, 0) << same_speed.err << same_speed.out;
  const Finished nothing = against("r-000000000000");
  EXPECT_EQ(nothing.exit_code, 2) << nothing.err;
  EXPECT_NE(nothing.err.find("baseline: there is no run 'r-000000000000'"), std::string::npos) << nothing.err;
  const Finished none = RunFull(c.Submit(gated), 20'000ms);
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_NE(none.err.find("--baseline RUN"), std::string::npos) << none.err;
  // The agent measured its clock again before each run after its first.
  c.agents()[0]->Signal(SIGTERM);
  const Finished agent = c.agents()[0]->Wait(20'000ms);
  EXPECT_EQ(agent.err.find("run " + ids[0] + ": clock offset"), std::string::npos) << agent.err;
  EXPECT_NE(agent.err.find("run " + ids[1] + ": clock offset"), std::string::npos) << agent.err;
}

// Two regions at 100/s in all for 6 s: about 600 requests, long enough to break something in the middle.
std::string TwoRegionsSixSeconds(const std::string& name, const std::string& base,
                                 const std::string& heartbeat_timeout) {
  return "name: " + name + "\nvars: { base: \"" + base +
         "\" }\nstart_buffer: 500ms\nheartbeat_timeout: " + heartbeat_timeout +
         "\nregions: { us-east-1: {}, eu-west-1: {} }\n"
         "scenarios:\n  s: { executor: constant-arrival-rate, rate: 100/s, duration: 6s, requests: "
         "[{ url: \"{{base}}/\" }] }\n";
}

TEST(Distributed, KilledControlPlaneResumesAndLosesNothingAcknowledged) {
  Target target;
  Cluster c;
  const int port = UnusedPort();
  c.StartServer(port);
  c.StartAgent("us-east-1", "east");
  c.StartAgent("eu-west-1", "west");
  c.AwaitAgents(2);
  const std::string plan = c.WritePlan("plan.yaml", TwoRegionsSixSeconds("resume", target.url(), "5s"));
  Process submit(c.Submit(plan));
  // Let it run for a while, then kill -9 the control plane and bring it back on the same port.
  ASSERT_TRUE(c.AwaitRunning());
  std::this_thread::sleep_for(2s);
  c.KillServer();
  std::this_thread::sleep_for(1500ms);
  c.StartServer(port);
  const Finished f = submit.Wait(60'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  uint64_t sum = 0;
  for (auto& a : c.agents()) {
    const Finished af = a->Wait(20'000ms);
    EXPECT_NE(af.err.find("unreachable"), std::string::npos) << af.err;  // it did hold reports back
    sum += AgentRequests(af.err);
  }
  EXPECT_EQ(s["requests"]["count"].get<uint64_t>(), sum);
  EXPECT_NEAR(static_cast<double>(sum), 600, 30);
}

// PostgreSQL restarted mid-run (its own server: the shared one serves other tests): `serve` reconnects, the
// run completes, and its totals equal what the agents counted themselves (nothing acknowledged is lost).
// Runs only as postgres.PostgresOnly.* (tests/CMakeLists.txt).
TEST(PostgresOnly, RestartedDatabaseMidRunLosesNothingAcknowledged) {
  TempDir pg;
  const std::string script = std::string(MERIDIAN_SOURCE_DIR) + "/tests/scripts/postgres.sh";
  const Finished started = RunFull({script, "start", pg.path}, 120'000ms);
  ASSERT_EQ(started.exit_code, 0) << started.err;
  std::string url;
  std::getline(std::ifstream(pg.path + "/url") >> std::ws, url);
  ASSERT_FALSE(url.empty());
  struct Stop {
    std::string script, dir;
    ~Stop() { RunFull({script, "stop", dir}, 120'000ms); }
  } stop{script, pg.path};
  Target target;
  Cluster c(url);
  c.StartServer();
  c.StartAgent("us-east-1", "east");
  c.StartAgent("eu-west-1", "west");
  c.AwaitAgents(2);
  const std::string plan = c.WritePlan("plan.yaml", TwoRegionsSixSeconds("pg-restart", target.url(), "10s"));
  Process submit(c.Submit(plan));
  ASSERT_TRUE(c.AwaitRunning());
  std::this_thread::sleep_for(2s);
  const Finished restarted = RunFull({script, "restart", pg.path}, 120'000ms);
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  const Finished f = submit.Wait(60'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  uint64_t sum = 0;
  for (auto& a : c.agents()) {
    const Finished af = a->Wait(20'000ms);
    sum += AgentRequests(af.err);
  }
  EXPECT_EQ(s["requests"]["count"].get<uint64_t>(), sum);
  EXPECT_NEAR(static_cast<double>(sum), 600, 30);
  const Finished server = c.StopServer();
  EXPECT_NE(server.err.find("was lost; connected again"), std::string::npos) << server.err;  // it was cut off
}

// Two agents (east, west-doomed) run a plan for `duration`; west-doomed is killed -9 two seconds in. Returns
// submit's result and how long the run took to end after the kill.
std::pair<Finished, std::chrono::steady_clock::duration> RunAndKillOneAgent(const std::string& settings,
                                                                            const std::string& duration) {
  Target target;
  Cluster c;
  c.StartServer();
  c.StartAgent("us-east-1", "east");
  Process& west = c.StartAgent("eu-west-1", "west-doomed");
  c.AwaitAgents(2);
  const std::string plan = c.WritePlan(
      "plan.yaml", "name: loss\nvars: { base: \"" + target.url() + "\" }\nstart_buffer: 200ms\n" + settings +
                       "regions: { us-east-1: {}, eu-west-1: {} }\n"
                       "scenarios:\n  s: { executor: constant-vus, vus: 2, duration: " +
                       duration + ", requests: [{ url: \"{{base}}/\" }] }\n");
  Process submit(c.Submit(plan));
  std::this_thread::sleep_for(2s);
  west.Signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  Finished f = submit.Wait(30'000ms);
  return {f, std::chrono::steady_clock::now() - killed};
}

TEST(Distributed, LostAgentFailsTheRunNamingIt) {
  const auto [f, took] = RunAndKillOneAgent("heartbeat_timeout: 2s\n", "30s");
  EXPECT_EQ(f.exit_code, 1) << f.err;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["run"]["state"], "errored");
  EXPECT_NE(s["run"]["reason"].get<std::string>().find("west-doomed"), std::string::npos) << s["run"];
  EXPECT_NE(s["run"]["reason"].get<std::string>().find("heartbeat_timeout"), std::string::npos);
  EXPECT_LT(took, 15s);  // the run did not hang for its 30 s
}

TEST(Distributed, LostAgentToleratedWithOnAgentLossContinue) {
  const auto [f, took] = RunAndKillOneAgent("heartbeat_timeout: 2s\non_agent_loss: continue\n", "5s");
  EXPECT_EQ(f.exit_code, 0) << f.err;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["run"]["state"], "passed");
  EXPECT_NE(s["run"]["reason"].get<std::string>().find("west-doomed"), std::string::npos)
      << s["run"].dump() << s["agents"].dump();
  for (const auto& a : s["agents"]) {
    EXPECT_EQ(a["state"], a["name"] == "west-doomed" ? "lost" : "done");
  }
}

// `submit` reads the scripts a plan names on the submitting machine and sends them in the plan's `files:`:
// the control plane and the agents never see that file system.
TEST(Distributed, SubmitBundlesTheScriptsAPlanNames) {
  Target target;
  Cluster c;
  c.StartServer();
  c.StartAgent("local", "a1");
  c.AwaitAgents(1);
  std::filesystem::create_directories(c.dir() + "/client/lib");
  std::ofstream(c.dir() + "/client/lib/path.js") << "export const path = '/api/products';\n";
  std::ofstream(c.dir() + "/client/shop.js")
      << "import { http, check } from 'meridian';\nimport { path } from './lib/path.js';\n"
         "export default async function () {\n"
         "  const res = await http.get(__ENV.base + path);\n"
         "  check(res, { listed: (r) => r.data.length > 0 });\n}\n";
  std::ofstream(c.dir() + "/client/plan.yaml")
      << "name: remote-script\nvars: { base: \"" << target.url() << "\" }\nstart_buffer: 200ms\n"
      << "regions: { local: {} }\nscenarios:\n  shop: { executor: per-vu-iterations, vus: 2, iterations: 5, "
         "script: shop.js }\nthresholds:\n  checks: ['rate==1']\n";
  const Finished f = RunFull(c.Submit(c.dir() + "/client/plan.yaml"));
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["requests"]["count"], 10) << f.out;
  EXPECT_EQ(s["checks"]["count"], 10) << f.out;
}

// Several control-plane URLs (replicas): an agent and a client whose first URL is dead work through the
// second, and the run's counts add up as on one URL.
TEST(Distributed, AgentsAndClientsFailOverToTheNextControlUrl) {
  Target target;
  Cluster c;
  c.StartServer();
  const std::string controls = "http://127.0.0.1:" + std::to_string(UnusedPort()) + "," + c.url();
  c.StartAgent("local", "a1", /*once=*/true, controls);
  c.AwaitAgents(1);
  const std::string plan =
      c.WritePlan("plan.yaml",
                  "name: failover\nstart_buffer: 200ms\nregions: { local: {} }\nscenarios:\n  s:\n"
                  "    executor: per-vu-iterations\n    vus: 2\n    iterations: 10\n    requests:\n"
                  "      - { name: home, url: \"" +
                      target.url() + "/\" }\n");
  auto args = c.Submit(plan);
  *std::find(args.begin(), args.end(), c.url()) = controls;
  const Finished f = RunFull(args, 60'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["requests"]["count"], 20) << f.out;
  const Finished af = c.agents()[0]->Wait(20'000ms);
  EXPECT_EQ(af.exit_code, 0) << af.err;
  EXPECT_EQ(AgentRequests(af.err), 20u) << af.err;
  // A client whose URLs are all dead names the last one it tried.
  const std::string dead = "http://127.0.0.1:" + std::to_string(UnusedPort());
  const Finished none =
      RunMeridian({"runs", "--control", dead + "," + dead, "--token-file", c.dir() + "/runs.token", "list"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("cannot connect to " + dead), std::string::npos) << none.err;
}

// `meridian agent drain` (a pod's preStop): the agent finishes the run it is in, tells the control plane it
// is leaving, and exits; drain returns then. The run passes with every request counted; the agent is no
// longer listed.
TEST(Distributed, DrainedAgentFinishesItsRunAndLeaves) {
  Target target;
  Cluster c;
  c.StartServer();
  Process& agent = c.StartAgent("local", "a1", /*once=*/false);
  c.AwaitAgents(1);
  const std::string plan =
      c.WritePlan("plan.yaml",
                  "name: drain\nstart_buffer: 200ms\nregions: { local: {} }\nscenarios:\n  s: { executor: "
                  "constant-arrival-rate, rate: 50/s, duration: 3s, requests: [{ url: \"" +
                      target.url() + "/\" }] }\n");
  Process submit(c.Submit(plan));
  ASSERT_TRUE(c.AwaitRunning());
  const Finished drain =
      RunMeridian({"agent", "drain", "--pid", std::to_string(agent.pid()), "--timeout", "60s"}, 90'000ms);
  EXPECT_EQ(drain.exit_code, 0) << drain.err;
  const Finished a = agent.Wait(5'000ms);  // already gone: drain returned after it exited
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("deregistered"), std::string::npos) << a.err;
  const Finished f = submit.Wait(30'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["requests"]["count"].get<uint64_t>(), AgentRequests(a.err));
  EXPECT_NEAR(s["requests"]["count"].get<double>(), 150, 10);
  auto listed = HttpCall(c.port(), "GET", "/v1/agents", {std::string("Authorization: Bearer ") + kReadToken});
  EXPECT_EQ(json::parse(listed.body)["agents"].size(), 0u) << listed.body;
  // Nothing to drain: named.
  const Finished none = RunMeridian({"agent", "drain", "--pid", std::to_string(agent.pid())});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("cannot signal process"), std::string::npos) << none.err;
}

// GET /readyz needs no token (load balancers and probes send none) and says only whether the server is ready.
TEST(Distributed, ReadyzAnswersWithoutATokenAndSaysOnlyReady) {
  Cluster c;
  c.StartServer();
  const HttpReply r = HttpCall(c.port(), "GET", "/readyz", {});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json({{"status", "ready"}}));
  EXPECT_EQ(HttpCall(c.port(), "GET", "/healthz", {}).status, 401);  // the rest still needs one
}

TEST(Distributed, EveryRouteNeedsTheRightToken) {
  Cluster c;
  c.StartServer();
  struct Route {
    const char* method;
    const char* path;
    const char* scope_token;  // a token with the right scope
    const char* wrong_scope;  // a valid token without it
  };
  const Route routes[] = {
      {"GET", "/healthz", kReadToken, nullptr},
      {"POST", "/v1/runs", kRunsToken, kReadToken},
      {"GET", "/v1/runs", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x", kReadToken, kAgentToken},
      {"POST", "/v1/runs/r-x/abort", kRunsToken, kReadToken},
      {"GET", "/v1/runs/r-x/summary", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x/report", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x/metrics", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x/start", kReadToken, nullptr},
      {"GET", "/v1/runs/r-x/artefacts/RUN.txt", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x/steps", kReadToken, kAgentToken},
      {"GET", "/v1/runs/r-x/steps/s/log?instance=0", kReadToken, kAgentToken},
      {"GET", "/v1/agents", kReadToken, kAgentToken},
      {"POST", "/v1/agents", kAgentToken, kRunsToken},
      {"GET", "/v1/time", kAgentToken, kReadToken},
      {"GET", "/v1/agents/a-x/work", kAgentToken, kRunsToken},
      {"POST", "/v1/runs/r-x/agents/a-x/ready", kAgentToken, kRunsToken},
      {"PUT", "/v1/runs/r-x/agents/a-x/reports/0", kAgentToken, kRunsToken},
      {"POST", "/v1/runs/r-x/agents/a-x/done", kAgentToken, kRunsToken},
      {"POST", "/v1/runs/r-x/agents/a-x/heartbeat", kAgentToken, kRunsToken},
  };
  for (const auto& r : routes) {
    auto none = HttpCall(c.port(), r.method, r.path);
    EXPECT_EQ(none.status, 401) << r.method << " " << r.path << " " << none.body;
    EXPECT_NE(none.body.find("\"error\""), std::string::npos);
    auto wrong = HttpCall(c.port(), r.method, r.path, {"Authorization: Bearer not-a-token"});
    EXPECT_EQ(wrong.status, 401) << r.method << " " << r.path;
    if (r.wrong_scope) {
      auto scope =
          HttpCall(c.port(), r.method, r.path, {std::string("Authorization: Bearer ") + r.wrong_scope});
      EXPECT_EQ(scope.status, 403) << r.method << " " << r.path << " " << scope.body;
    }
    auto right =
        HttpCall(c.port(), r.method, r.path, {std::string("Authorization: Bearer ") + r.scope_token});
    EXPECT_NE(right.status, 401) << r.method << " " << r.path;
    EXPECT_NE(right.status, 403) << r.method << " " << r.path << " " << right.body;
  }
}

TEST(Distributed, MalformedPlansAndBodiesAreRejectedNamingTheField) {
  Cluster c;
  c.StartServer();
  const std::string auth = std::string("Authorization: Bearer ") + kRunsToken;
  auto no_plan = HttpCall(c.port(), "POST", "/v1/runs", {auth, "Content-Type: application/json"}, "{}");
  EXPECT_EQ(no_plan.status, 400);
  EXPECT_EQ(json::parse(no_plan.body)["error"]["field"], "plan");
  auto not_json = HttpCall(c.port(), "POST", "/v1/runs", {auth}, "{nope");
  EXPECT_EQ(not_json.status, 400);
  auto bad_plan =
      HttpCall(c.port(), "POST", "/v1/runs", {auth},
               json{{"plan", "name: x\nscenarios:\n  s: {executor: constant-vus, vus: 1, duraton: 1s}\n"},
                    {"file", "mine.yaml"}}
                   .dump());
  EXPECT_EQ(bad_plan.status, 400);
  const std::string msg = json::parse(bad_plan.body)["error"]["message"];
  EXPECT_NE(msg.find("mine.yaml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scenarios.s.duraton"), std::string::npos) << msg;
  auto huge = HttpCall(c.port(), "POST", "/v1/runs", {auth}, std::string(9 * 1024 * 1024, 'x'));
  EXPECT_EQ(huge.status, 413);
  // submit exits 2 naming the file and field.
  const std::string plan = c.WritePlan("bad.yaml", "name: x\nregions: { a: { weight: -1 } }\n");
  const Finished f = RunFull(c.Submit(plan));
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("regions.a.weight"), std::string::npos) << f.err;
  // A report that is not a valid snapshot is refused.
  auto reg = HttpCall(c.port(), "POST", "/v1/agents", {std::string("Authorization: Bearer ") + kAgentToken},
                      R"({"name": "n", "region": "r"})");
  ASSERT_EQ(reg.status, 201) << reg.body;
  auto missing_region = HttpCall(c.port(), "POST", "/v1/agents",
                                 {std::string("Authorization: Bearer ") + kAgentToken}, R"({"name": "n"})");
  EXPECT_EQ(missing_region.status, 400);
  EXPECT_EQ(json::parse(missing_region.body)["error"]["field"], "region");
}

TEST(EmbeddedRun, FailingThresholdExits99) {
  Target target({"--latency", "20ms"});
  char tmpl[] = "/tmp/meridian-run-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/plan.yaml")
      << "name: slow\nvars: { base: \"" << target.url()
      << "\" }\nstart_buffer: 200ms\nscenarios:\n  s: { executor: constant-vus, vus: 2, "
         "duration: 2s, requests: [{ url: \"{{base}}/\" }] }\n"
         "thresholds:\n  http_req_duration: [\"p(95)<5ms\"]\n";
  const Finished f = RunFull({MeridianBinary(), "run", dir + "/plan.yaml", "--state-dir", dir + "/state"});
  EXPECT_EQ(f.exit_code, 99) << f.err << f.out;
  EXPECT_NE(f.out.find("✗ http_req_duration p(95)<5ms"), std::string::npos) << f.out;
  std::filesystem::remove_all(dir);
}

// The same state directory twice (as `make demo` does): the second run's control plane knows the first run's
// agents from the store, and must wait for its own instead of assigning the ones that are gone.
TEST(EmbeddedRun, ASecondRunOnTheSameStateDirUsesItsOwnAgents) {
  Target target;
  TempDir dir;
  dir.Write("plan.yaml",
            "name: again\nvars: { base: \"" + target.url() +
                "\" }\nstart_buffer: 200ms\nregions: { a: {}, b: {} }\nscenarios:\n  s: { executor: "
                "constant-vus, vus: 1, duration: 1s, requests: [{ url: \"{{base}}/\" }] }\n");
  for (int i = 0; i < 2; ++i) {
    const Finished f =
        RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--state-dir", dir.path + "/state"});
    EXPECT_EQ(f.exit_code, 0) << "run " << i + 1 << ": " << f.err << f.out;
  }
}

TEST(EmbeddedRun, AbortOnFailStopsEarly) {
  Target target({"--error-rate", "0.5"});
  char tmpl[] = "/tmp/meridian-run-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::ofstream(dir + "/plan.yaml")
      << "name: errors\nvars: { base: \"" << target.url()
      << "\" }\nstart_buffer: 200ms\nscenarios:\n  s: { executor: constant-vus, vus: 2, "
         "duration: 60s, graceful_stop: 1s, requests: [{ url: \"{{base}}/\" }] }\n"
         "thresholds:\n  http_req_failed: [{ threshold: \"rate<0.01\", abortOnFail: "
         "true }]\n";
  const auto began = std::chrono::steady_clock::now();
  const Finished f =
      RunFull({MeridianBinary(), "run", dir + "/plan.yaml", "--state-dir", dir + "/state", "--json", "-q"});
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_EQ(f.exit_code, 99) << f.err;
  const json s = json::parse(f.out);
  EXPECT_EQ(s["run"]["state"], "failed");
  EXPECT_NE(s["run"]["reason"].get<std::string>().find("abort_on_fail"), std::string::npos);
  EXPECT_TRUE(s["stopped_early"].get<bool>());
  EXPECT_LT(took, 30s);  // not the scheduled 60 s
  std::filesystem::remove_all(dir);
}

// Iterations in their graceful stop run past the schedule: rates divide by the time the load lasted (the
// Constellation plans' http_reqs N/s divided by the scheduled 30 s while the last iterations ended ~3 s
// later).
TEST(EmbeddedRun, RatesDivideByTheTimeTheLoadLasted) {
  Target target({"--latency", "2500ms"});
  TempDir dir;
  dir.Write("plan.yaml",
            "name: long-tail\nvars: { base: \"" + target.url() +
                "\" }\nstart_buffer: 200ms\nregions: { a: {}, b: {} }\nscenarios:\n  s: { executor: "
                "constant-vus, vus: 2, duration: 1s, graceful_stop: 10s, requests: [{ url: "
                "\"{{base}}/\" }] }\nthresholds:\n  http_reqs: [\"rate<1.5\"]\n");
  const Finished f = RunFull(
      {MeridianBinary(), "run", dir.path + "/plan.yaml", "--state-dir", dir.path + "/state", "--json", "-q"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  const json s = json::parse(f.out);
  const double lasted = s["duration_s"].get<double>();
  EXPECT_GE(lasted, 2.4);  // one 2.5 s iteration per region's VU, begun within the 1 s schedule
  EXPECT_LT(lasted, 10.0);
  const auto count = s["requests"]["count"].get<uint64_t>();
  EXPECT_EQ(count, 2u);
  EXPECT_NEAR(s["requests"]["rate"].get<double>(), static_cast<double>(count) / lasted, 1e-6);
  for (const char* region : {"a", "b"}) {
    EXPECT_NEAR(s["regions"][region]["rate"].get<double>(), 1.0 / lasted, 1e-6) << region;
  }
}

TEST(EmbeddedRun, QuickstartExamplePasses) {
  Target target;
  char tmpl[] = "/tmp/meridian-run-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const Finished f =
      RunFull({MeridianBinary(), "run", std::string(MERIDIAN_SOURCE_DIR) + "/examples/quickstart.yaml",
               "--vars", "base=" + target.url(), "--state-dir", dir, "--out", dir + "/out"},
              90'000ms);
  EXPECT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("per region:"), std::string::npos);
  EXPECT_NE(f.out.find("ap-south-1"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir + "/out/summary.json"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meridian::testing
