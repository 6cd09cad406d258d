#include "plan/plan.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "config/reader.h"

namespace meridian::plan {
using config::LoadYaml;
using config::Reader;
using config::ReadError;
namespace {

constexpr const char* kPlan = R"(name: checkout
vars: { base: "http://127.0.0.1:8081" }
start_buffer: 1s
regions:
  us-east-1: { weight: 2 }
  eu-west-1: { weight: 1 }
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 300/s
    duration: 60s
    max_vus: 1000
    requests:
      - { name: home, method: GET, url: "{{base}}/" }
      - { name: cart, method: POST, url: "{{base}}/cart", json: { sku: A1, n: 2 }, expect: { status: 200 } }
  users:
    executor: constant-vus
    vus: 10
    duration: 30s
    start_time: 20s
    requests:
      - { url: "{{base}}/users" }
thresholds:
  http_req_duration: ["p(95)<200ms", "p(99)<500"]
  "http_req_duration{region:eu-west-1}": ["p(95)<300ms"]
  http_req_failed: [{ threshold: "rate<0.01", abortOnFail: true }]
)";

TEST(Plan, ParsesTheDesignExample) {
  auto p = ParsePlan(kPlan, "plan.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->name, "checkout");
  ASSERT_EQ(p->regions.size(), 2u);
  EXPECT_EQ(p->regions[0].name, "us-east-1");
  EXPECT_DOUBLE_EQ(p->regions[0].weight, 2);
  ASSERT_EQ(p->scenarios.size(), 2u);
  EXPECT_DOUBLE_EQ(p->scenarios[0].executor.rate, 300);
  EXPECT_EQ(p->scenarios[0].executor.max_vus, 1000u);
  EXPECT_TRUE(p->scenarios[0].requests[1].json);
  EXPECT_EQ(p->scenarios[0].requests[1].body, R"({"n":2,"sku":"A1"})");
  ASSERT_EQ(p->thresholds.size(), 3u);
  EXPECT_TRUE(p->thresholds[2].exprs[0].abort_on_fail);
  EXPECT_EQ(p->ScheduledDuration(), 60'000'000'000);
  const auto names = Names(*p);
  ASSERT_EQ(names.requests.size(), 3u);
  EXPECT_EQ(names.requests[0].name, "home");
  EXPECT_EQ(names.requests[2].name, "GET {{base}}/users");
  EXPECT_EQ(names.requests[2].scenario, 1);
}

TEST(Plan, NormalisedYamlRoundTrips) {
  auto p = ParsePlan(kPlan, "plan.yaml");
  ASSERT_TRUE(p.ok());
  const std::string yaml = ToYaml(*p);
  auto again = ParsePlan(yaml, "normalised.yaml");
  ASSERT_TRUE(again.ok()) << again.error().message << "\n" << yaml;
  EXPECT_EQ(ToYaml(*again), yaml);
  EXPECT_EQ(again->scenarios[0].requests[1].body, p->scenarios[0].requests[1].body);
}

TEST(Plan, ThresholdsAgainstABaselineNeedOne) {
  const std::string text =
      std::string(kPlan) + "  \"http_req_duration{name:home}\": [\"p(95) < baseline * 1.1\"]\n";
  auto p = ParsePlan(text, "plan.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto refused = CheckRunnable(*p);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("thresholds.http_req_duration{name:home}: 'p(95) < baseline * 1.1'"),
            std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("--baseline RUN"), std::string::npos);
  p->baseline = "r-4f1c2a9b7e03";
  EXPECT_TRUE(CheckRunnable(*p).ok());
  auto again = ParsePlan(ToYaml(*p), "normalised.yaml");  // the stored plan names its baseline
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->baseline, "r-4f1c2a9b7e03");
  EXPECT_TRUE(again->thresholds.back().exprs[0].baseline);
}

TEST(Plan, TagsAreTheRunsLabels) {
  auto p = ParsePlan(std::string("tags: { team: checkout, env.name: staging }\n") + kPlan, "plan.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->tags.at("team"), "checkout");
  auto again = ParsePlan(ToYaml(*p), "normalised.yaml");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->tags, p->tags);
  auto bad = ParsePlan(std::string("tags: { \"a b\": x }\n") + kPlan, "plan.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("plan.yaml:1:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("tags.a b"), std::string::npos) << bad.error().message;
}

TEST(Plan, JsonPlansParseToo) {
  auto p = ParsePlan(R"({"name": "j", "scenarios": {"s": {"executor": "constant-vus", "vus": 2,
      "duration": "5s", "requests": [{"url": "http://127.0.0.1:1/"}]}}})",
                     "plan.json");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->regions.size(), 1u);
  EXPECT_EQ(p->regions[0].name, "local");
}

void ExpectError(const std::string& text, const std::string& fragment) {
  auto p = ParsePlan(text, "bad.yaml");
  ASSERT_FALSE(p.ok()) << "accepted:\n" << text;
  EXPECT_NE(p.error().message.find(fragment), std::string::npos) << p.error().message;
}

TEST(Plan, ErrorsNameFileLineAndField) {
  ExpectError(
      "name: x\nscenarios:\n  s:\n    executor: constant-vus\n    vus: 1\n    duraton: 5s\n"
      "    requests: [{url: 'http://a/'}]\n",
      "bad.yaml:6:5: scenarios.s.duraton: unknown key (allowed here:");
  ExpectError("name: x\nscenarios:\n  s:\n    executor: constant-vuz\n",
              "bad.yaml:4:15: scenarios.s.executor");
  ExpectError(
      "name: x\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 5x, requests: [{url: "
      "'http://a/'}]}\n",
      "scenarios.s.duration: invalid duration '5x'");
  ExpectError("name: x\nscenarios:\n  s: {executor: constant-vus, vus: 1, duration: 5s}\n",
              "a scenario needs requests");
  ExpectError(
      "name: x\nscenarios:\n  s: {executor: constant-vus, vus: 1, rate: 5/s, duration: 5s, requests: "
      "[{url: 'http://a/'}]}\n",
      "scenarios.s.rate: does not apply to constant-vus");
  ExpectError(
      "name: x\nthresholds:\n  http_req_duration: ['p95<1']\nscenarios:\n  s: {executor: constant-vus, "
      "duration: 5s, requests: [{url: 'http://a/'}]}\n",
      "bad.yaml:3:23: thresholds.http_req_duration[0]");
  ExpectError(
      "name: x\nregions: {a: {weight: 1}}\nthresholds:\n  'http_req_duration{region:b}': ['p(95)<1']\n"
      "scenarios:\n  s: {executor: constant-vus, duration: 5s, requests: [{url: 'http://a/'}]}\n",
      "region 'b' is not one of the plan's regions");
  ExpectError("name: x\non_agent_loss: ignore\nscenarios: {}\n", "allowed: fail, continue");
  ExpectError("name: x\nname: y\n", "bad.yaml:2:1: name: is given twice");
  ExpectError("name: [x\n", "bad.yaml:");
  ExpectError("scenarios: {}\n", "name: is required");
  ExpectError("name: ok\nvars: { a: \"\xff\" }\n", "bad.yaml:2: not valid UTF-8");
  ExpectError(std::string(100, '[') + std::string(100, ']'), "nest more than 64 levels");
  ExpectError(
      "name: x\nscenarios:\n  s: {executor: constant-vus, duration: 5s, requests: [{url: "
      "'http://a/{{nope}}'}]}\n",
      "nope");
}

// The fuzzer found a rate so large that the derived max_vus overflowed; every rate is bounded by name.
TEST(Plan, RefusesRatesAndTargetsBeyondTheLimits) {
  const std::string tail = ", duration: 5s, requests: [{url: 'http://a/'}]}\n";
  ExpectError("name: x\nscenarios:\n  s: {executor: constant-arrival-rate, rate: 5e91/s" + tail,
              "at most 10000000 iterations per second");
  ExpectError("name: x\nscenarios:\n  s: {executor: constant-arrival-rate, rate: 20000/1ms" + tail,
              "at most 10000000 iterations per second");
  ExpectError(
      "name: x\nscenarios:\n  s: {executor: ramping-arrival-rate, stages: [{duration: 5s, target: 1e300}], "
      "requests: [{url: 'http://a/'}]}\n",
      "at most 10000000 iterations per second");
  ExpectError(
      "name: x\nscenarios:\n  s: {executor: ramping-vus, stages: [{duration: 5s, target: 1e300}], "
      "requests: [{url: 'http://a/'}]}\n",
      "stages[0].target: at most 1000000 VUs");
  ExpectError(
      "name: x\nregions: {a: {rate: 1e12/s}}\nscenarios:\n  s: {executor: constant-arrival-rate, "
      "rate: 5/s" +
          tail,
      "regions.a.rate: at most 10000000 iterations per second");
}

int64_t TotalVus(const Plan& p, size_t scenario) {
  int64_t total = 0;
  for (const auto& slot : Slots(p)) {
    for (const auto& s : SharesFor(p, slot)) {
      if (s.scenario == scenario) total += s.executor.vus;
    }
  }
  return total;
}

TEST(Plan, SplitsLoadByWeightExactly) {
  auto p = ParsePlan(
      "name: x\nregions: {a: {weight: 2}, b: {weight: 1, agents: 2}, c: {vus: 4}}\nscenarios:\n"
      "  s: {executor: constant-vus, vus: 10, duration: 5s, requests: [{url: 'http://h/'}]}\n"
      "  r: {executor: constant-arrival-rate, rate: 90/s, duration: 5s, regions: [a, b], requests: [{url: "
      "'http://h/'}]}\n",
      "p.yaml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(Slots(*p).size(), 4u);
  // a:b = 2:1 over 10 VUs (c is pinned to its own 4): a 7, b 3 split over two agents.
  EXPECT_EQ(TotalVus(*p, 0), 14);
  auto a = SharesFor(*p, {"a", 0});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].executor.vus, 7u);
  EXPECT_DOUBLE_EQ(a[1].executor.rate, 60);
  auto b1 = SharesFor(*p, {"b", 1});
  EXPECT_DOUBLE_EQ(b1[1].executor.rate, 15);
  auto c = SharesFor(*p, {"c", 0});
  ASSERT_EQ(c.size(), 1u);  // r does not run in c
  EXPECT_EQ(c[0].executor.vus, 4u);
  EXPECT_NE(Timeline(*p).find("region c (pinned 4 VUs"), std::string::npos) << Timeline(*p);
}

TEST(Plan, ImportsConstellationConfig) {
  const std::string path = ::testing::TempDir() + "/config.json";
  std::ofstream(path) << R"({"DURATION": 30000, "HOME_REGION": "us-east-1",
  "REMOTE_REGIONS": {"us-east-1": 5, "ap-south-1": 3}})";
  std::ofstream(::testing::TempDir() + "/script.js") << "export const script = async () => {};\n";
  auto p = ImportConstellation(path, "");
  ASSERT_TRUE(p.ok()) << p.error().message;
  ASSERT_EQ(p->scenarios.size(), 2u);
  EXPECT_EQ(p->scenarios[1].executor.vus, 3u);
  EXPECT_EQ(p->scenarios[1].regions[0], "ap-south-1");
  EXPECT_EQ(p->ScheduledDuration(), 30'000'000'000);
  EXPECT_FALSE(CheckRunnable(*p).ok());  // the script is not bundled yet (app/common does that)
  p->files[p->scenarios[0].script] = "export const script = async () => {};\n";
  EXPECT_TRUE(CheckRunnable(*p).ok()) << CheckRunnable(*p).error().message;
  EXPECT_TRUE(ParsePlan(ToYaml(*p), "n.yaml").ok()) << ToYaml(*p);
  std::ofstream(path)
      << R"({"DURATION": 30000, "HOME_REGION": "x", "REMOTE_REGIONS": {"a": 1}, "REMOTE": {}})";
  auto bad = ImportConstellation(path, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("REMOTE: unknown key"), std::string::npos) << bad.error().message;
}

TEST(Plan, ImportsArderePlansWithWarnings) {
  const std::string ardere = R"({
  "ecs_name": "ardere-test",
  "name": "Loadtest",
  "steps": [
    { "name": "TestCluster", "instance_count": 3, "instance_type": "t2.medium", "run_max_time": 140,
      "run_delay": 20, "env": { "SOME_VAR": "great-value" }, "port_mapping": [8000, 4000],
      "container_name": "bbangert/ap-loadtester:latest", "cmd": "./aplt_testplan 'x,1000,1,0'" }
  ]
})";
  auto p = ParsePlan(ardere, "ardere.json");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->source, "ardere.json (ardere)");
  EXPECT_EQ(p->name, "Loadtest");
  ASSERT_EQ(p->steps.size(), 1u);
  const Step& s = p->steps[0];
  EXPECT_EQ(s.instances, 3u);
  EXPECT_EQ(s.run_delay_ns, 20'000'000'000);
  EXPECT_EQ(s.run_max_time_ns, 140'000'000'000);
  EXPECT_EQ(s.shell, "./aplt_testplan 'x,1000,1,0'");
  EXPECT_EQ((std::vector<std::string>{"/bin/sh", "-c", "./aplt_testplan 'x,1000,1,0'"}), s.Argv());
  EXPECT_EQ(s.env.at("SOME_VAR"), "great-value");
  EXPECT_EQ(s.container_name, "bbangert/ap-loadtester:latest");
  EXPECT_EQ(s.region, "local");
  // Every field without a meaning here is a warning naming file:line and the field.
  std::string all;
  for (const auto& w : p->warnings) all += w + "\n";
  EXPECT_EQ(p->warnings.size(), 4u) << all;
  EXPECT_NE(all.find("ardere.json:2:15: ecs_name: ignored"), std::string::npos) << all;
  EXPECT_NE(all.find("steps[0].instance_type: ignored"), std::string::npos) << all;
  EXPECT_NE(all.find("steps[0].port_mapping: ignored"), std::string::npos) << all;
  EXPECT_NE(all.find("steps[0].container_name: kept as metadata"), std::string::npos) << all;
  // The normalised form is a native plan that parses back to the same steps.
  auto again = ParsePlan(ToYaml(*p), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(ToYaml(*again), ToYaml(*p));
  EXPECT_TRUE(again->warnings.empty());
  EXPECT_TRUE(CheckRunnable(*p).ok());
}

// ardere reads its plans as TOML too: the same plan, and warnings and errors at the TOML file's lines.
TEST(Plan, ArderePlansInToml) {
  const std::string toml = R"(ecs_name = "ardere-test"
name = "Loadtest"

[[steps]]
name = "TestCluster"
instance_count = 3
instance_type = "t2.medium"
run_max_time = 140
run_delay = 20
env = { SOME_VAR = "great-value" }
port_mapping = [
  8000,
  4000,
]
container_name = "bbangert/ap-loadtester:latest"
cmd = "./aplt_testplan 'x,1000,1,0'"

[[steps]]
name = "Second"
instance_count = 1
run_max_time = 5
cmd = "true"
env.DOTTED = "yes"
)";
  auto p = ParseTomlPlan(toml, "ardere.toml");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(p->source, "ardere.toml (ardere)");
  EXPECT_EQ(p->name, "Loadtest");
  ASSERT_EQ(p->steps.size(), 2u);
  const Step& s = p->steps[0];
  EXPECT_EQ(s.instances, 3u);
  EXPECT_EQ(s.run_delay_ns, 20'000'000'000);
  EXPECT_EQ(s.run_max_time_ns, 140'000'000'000);
  EXPECT_EQ(s.shell, "./aplt_testplan 'x,1000,1,0'");
  EXPECT_EQ(s.env.at("SOME_VAR"), "great-value");
  EXPECT_EQ(p->steps[1].env.at("DOTTED"), "yes");
  std::string all;
  for (const auto& w : p->warnings) all += w + "\n";
  EXPECT_NE(all.find("ardere.toml:1:"), std::string::npos) << all;   // ecs_name, on its own line
  EXPECT_NE(all.find("ardere.toml:7:"), std::string::npos) << all;   // instance_type
  EXPECT_NE(all.find("ardere.toml:11:"), std::string::npos) << all;  // port_mapping, over four lines
  EXPECT_NE(all.find("ardere.toml:15:"), std::string::npos) << all;  // container_name, after them
  // The same plan as JSON normalises to the same text.
  auto json = ParsePlan(R"({"ecs_name": "ardere-test", "name": "Loadtest", "steps": [
    {"name": "TestCluster", "instance_count": 3, "instance_type": "t2.medium", "run_max_time": 140,
     "run_delay": 20, "env": {"SOME_VAR": "great-value"}, "port_mapping": [8000, 4000],
     "container_name": "bbangert/ap-loadtester:latest", "cmd": "./aplt_testplan 'x,1000,1,0'"},
    {"name": "Second", "instance_count": 1, "run_max_time": 5, "cmd": "true", "env": {"DOTTED": "yes"}}]})",
                        "ardere.json");
  ASSERT_TRUE(json.ok()) << json.error().message;
  EXPECT_EQ(ToYaml(*json), ToYaml(*p));

  // Errors name the TOML line and the field; what is not TOML, or not a plan's value, is named too.
  auto bad = ParseTomlPlan(
      "ecs_name = \"x\"\nname = \"n\"\n\n[[steps]]\nname = \"a\"\ninstance_count = 1\n"
      "run_max_time = 10\ncmd = \"true\"\ninstance_typo = \"t2\"\n",
      "typo.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("typo.toml:9:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("instance_typo"), std::string::npos) << bad.error().message;
  bad = ParseTomlPlan("name = \"n\"\n[[steps]\n", "broken.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("broken.toml:2:"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("not valid TOML"), std::string::npos) << bad.error().message;
  bad = ParseTomlPlan("name = \"n\"\nwhen = 2026-12-01T10:00:00Z\n", "date.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("date.toml:2:8: TOML dates and times are not used by plans"),
            std::string::npos)
      << bad.error().message;
  // A native plan in TOML reads as well.
  auto native = ParseTomlPlan(R"(name = "native"
[regions.local]
[scenarios.s]
executor = "constant-vus"
vus = 1
duration = "1s"
requests = [{ url = "http://127.0.0.1:1/" }]
)",
                              "native.toml");
  ASSERT_TRUE(native.ok()) << native.error().message;
  EXPECT_EQ(native->scenarios.size(), 1u);
}

TEST(Plan, ArdereErrorsNameTheField) {
  auto p = ParsePlan(R"({"ecs_name": "x", "name": "n", "steps": [
    {"name": "a", "instance_count": 1, "run_max_time": 10, "cmd": "true"},
    {"name": "a", "instance_count": 1, "run_max_time": 10, "cmd": "true"}]})",
                     "dup.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("dup.json:3:"), std::string::npos) << p.error().message;
  EXPECT_NE(p.error().message.find("steps[1].name: 'a' is already the name of steps[0]"), std::string::npos)
      << p.error().message;
  p = ParsePlan(
      R"({"ecs_name": "x", "name": "n", "steps": [{"name": "a", "instance_count": 1, "cmd": "true"}]})",
      "t.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("steps[0].run_max_time: is required (seconds)"), std::string::npos)
      << p.error().message;
  p = ParsePlan(
      R"({"ecs_name": "x", "name": "n", "steps": [{"name": "a", "instance_count": 1, "run_max_time": 5,
    "cmd": "true", "instance_typo": "t2"}]})",
      "t.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("instance_typo: unknown key"), std::string::npos) << p.error().message;
}

}  // namespace
}  // namespace meridian::plan

namespace meridian::plan {
namespace {

// Every document meridian reads (plans, server.yaml, the registry) goes through LoadYaml: a key or value that
// is not UTF-8 is refused naming file:line and the field, whichever way it got in.
TEST(Reader, ValuesThatAreNotUtf8AreRefusedByField) {
  Reader reader("server.yaml");
  try {
    (void)LoadYaml(reader, "tokens:\n  - { name: \"ci\xe0\x8b\x80\" }\n");
    ADD_FAILURE() << "accepted";
  } catch (const ReadError& e) {
    EXPECT_NE(e.message.find("server.yaml:2:"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("tokens[0].name"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("not valid UTF-8"), std::string::npos) << e.message;
  }
  EXPECT_NO_THROW((void)LoadYaml(reader, "tokens:\n  - { name: \"ci \\u00ff ✓\" }\n"));
}

}  // namespace
}  // namespace meridian::plan
