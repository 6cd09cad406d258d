// JavaScript scenarios through the real binary: the examples, Constellation's inputs, failures and time-outs.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "process.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;

std::string LineWith(const std::string& text, const std::string& what) {
  const size_t at = text.find(what);
  if (at == std::string::npos) return {};
  const size_t end = text.find('\n', at);
  return text.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

const std::string kExamples = std::string(MERIDIAN_SOURCE_DIR) + "/examples";

TEST(Scripts, ConstellationInputsRunUnchangedWithVusPerRegion) {
  Target target;
  TempDir dir;
  const Finished f =
      RunFull({MeridianBinary(), "run", "--config", kExamples + "/constellation/config.json", "--vars",
               "base=" + target.url(), "--state-dir", dir.path, "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  // One scenario per region of REMOTE_REGIONS, each with that region's VUs.
  EXPECT_EQ(LineWith(f.out, "us-east-1 vus_max").find(": 4 (allocated 4)") != std::string::npos, true)
      << f.out;
  EXPECT_EQ(LineWith(f.out, "eu-west-1 vus_max").find(": 2 (allocated 2)") != std::string::npos, true)
      << f.out;
  std::ifstream in(dir.path + "/out/summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_GT(summary["regions"]["us-east-1"]["requests"].get<uint64_t>(), 0u);
  EXPECT_GT(summary["regions"]["eu-west-1"]["requests"].get<uint64_t>(), 0u);
  EXPECT_EQ(summary["requests"]["failed"].get<uint64_t>(), 0u) << summary.dump();
  EXPECT_NE(f.out.find("GET /api/products/{id}"), std::string::npos);
}

TEST(Scripts, JourneyExamplePassesItsThresholds) {
  Target target;
  TempDir dir;
  const Finished f =
      RunFull({MeridianBinary(), "run", kExamples + "/journey.yaml", "--vars", "base=" + target.url(),
               "--state-dir", dir.path, "--summary-file", dir.path + "/summary.json"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("\u2713 ::cart added to cart"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("\u2713 checks{check:added to cart} rate==1"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("group_duration login"), std::string::npos) << f.out;
  // The summary's checks and the `checks` threshold count the same things: the script's check() calls and the
  // declarative scenario's status expectations.
  EXPECT_NE(f.out.find("\u2713 health: status as expected"), std::string::npos) << f.out;
  std::ifstream in(dir.path + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  const uint64_t checks = summary["checks"]["count"].get<uint64_t>();
  uint64_t by_name = 0;
  for (const auto& row : summary["checks"]["by_name"]) {
    by_name += row["passes"].get<uint64_t>() + row["fails"].get<uint64_t>();
  }
  EXPECT_EQ(by_name, checks);
  bool seen = false;
  for (const auto& t : summary["thresholds"]) {
    if (t["metric"] != "checks") continue;
    seen = true;
    const std::string measured = t["measured_text"].get<std::string>();
    EXPECT_NE(measured.find("of " + std::to_string(checks) + ")"), std::string::npos)
        << measured << " vs " << checks;
  }
  EXPECT_TRUE(seen) << summary.dump();
}

TEST(Scripts, AScriptRunsWithItsOwnOptionsLikeK6) {
  Target target;
  TempDir dir;
  const Finished f = RunFull({MeridianBinary(), "run", kExamples + "/journey.js", "--vars",
                              "base=" + target.url(), "--state-dir", dir.path});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("constant-vus: 5 VUs for 5.00s"), std::string::npos) << f.out;
  EXPECT_NE(f.out.find("\u2713 checks rate>0.99"), std::string::npos) << f.out;
}

TEST(Scripts, ExceptionsAreCountedAndArrivalRateScriptsRun) {
  Target target;
  TempDir dir;
  dir.Write("throws.js", R"js(import { http } from 'meridian';
export default async function () {
  await http.get(__ENV.base + '/');
  if (__ITER % 3 === 2) throw new Error('every third iteration');
}
)js");
  dir.Write("plan.yaml", R"(name: throws
regions: { local: {} }
scenarios:
  open:
    executor: constant-arrival-rate
    rate: 30/s
    duration: 2s
    pre_allocated_vus: 1
    max_vus: 1
    script: throws.js
thresholds:
  iterations: ['count>=50']
)");
  const Finished f =
      RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--vars", "base=" + target.url(),
               "--state-dir", dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("Error: every third iteration (throws.js:4:"), std::string::npos) << f.out;
  std::ifstream in(dir.path + "/out/summary.json");
  const auto summary = nlohmann::json::parse(in);
  // One VU, 60 iterations at 30/s: every third throws, and every one made its request.
  EXPECT_EQ(summary["requests"]["count"].get<uint64_t>(), 60u) << summary.dump();
  EXPECT_EQ(summary["scenarios"][0]["iterations"].get<uint64_t>(), 60u) << summary.dump();
  EXPECT_EQ(summary["scenarios"][0]["failed_iterations"].get<uint64_t>(), 20u) << summary.dump();
}

// Two script scenarios in one region run on the same agent (and worker thread), each counted as its own.
TEST(Scripts, TwoScriptScenariosInOneRegion) {
  Target target;
  TempDir dir;
  dir.Write("browse.js", R"js(import { http, check } from 'meridian';
export default async function () {
  const r = await http.get(`${__ENV.base}/api/products`, { name: 'products' });
  check(r, { 'browse ok': (x) => x.status === 200 });
}
)js");
  dir.Write("buy.js", R"js(export const script = async (axiosInstance) => {
  const login = await axiosInstance.post(__ENV.base + '/api/login', { user: 'cy', password: 'x' });
  const r = await axiosInstance.post(__ENV.base + '/api/cart', { product: 2 },
                                     { headers: { Authorization: 'Bearer ' + login.data.token } });
  if (r.status !== 201) throw new Error('cart ' + r.status);
};
)js");
  dir.Write("plan.yaml", R"(name: two scripts
regions: { local: {} }
scenarios:
  browse:
    executor: shared-iterations
    vus: 3
    iterations: 40
    script: browse.js
  buy:
    executor: per-vu-iterations
    vus: 2
    iterations: 10
    script: buy.js
thresholds:
  checks: ['rate==1']
  'iterations{scenario:buy}': ['count==20']
)");
  const Finished f =
      RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--vars", "base=" + target.url(),
               "--state-dir", dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  std::ifstream in(dir.path + "/out/summary.json");
  const auto summary = nlohmann::json::parse(in);
  ASSERT_EQ(summary["scenarios"].size(), 2u) << summary.dump();
  for (const auto& s : summary["scenarios"]) {
    const uint64_t expected = s["name"] == "browse" ? 40u : 20u;
    EXPECT_EQ(s["iterations"].get<uint64_t>(), expected) << summary.dump();
    EXPECT_EQ(s["failed_iterations"].get<uint64_t>(), 0u) << summary.dump();
  }
  EXPECT_EQ(summary["requests"]["count"].get<uint64_t>(), 80u) << summary.dump();
  EXPECT_EQ(summary["requests"]["failed"].get<uint64_t>(), 0u) << summary.dump();
}

TEST(Scripts, ANeverResolvingPromiseHitsTheIterationTimeout) {
  TempDir dir;
  dir.Write("hang.js", "export default async function () { await new Promise(() => {}); }\n");
  dir.Write("plan.yaml", R"(name: hang
regions: { local: {} }
scenarios:
  hang:
    executor: per-vu-iterations
    vus: 2
    iterations: 2
    iteration_timeout: 200ms
    script: hang.js
)");
  const Finished f = RunFull({MeridianBinary(), "run", dir.path + "/plan.yaml", "--state-dir",
                              dir.path + "/state", "--out", dir.path + "/out"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  EXPECT_NE(f.out.find("iteration timed out after 200ms (scenarios.hang.iteration_timeout)"),
            std::string::npos)
      << f.out;
  std::ifstream in(dir.path + "/out/summary.json");
  const auto summary = nlohmann::json::parse(in);
  EXPECT_EQ(summary["scenarios"][0]["failed_iterations"].get<uint64_t>(), 4u) << summary.dump();
}

TEST(Scripts, ValidateCompilesScriptsAndNamesFileLineColumn) {
  TempDir dir;
  dir.Write("bad.js", "export default async function () {\n  const x = ;\n}\n");
  dir.Write("plan.yaml",
            "name: bad\nregions: { local: {} }\nscenarios:\n  s:\n    executor: constant-vus\n"
            "    vus: 1\n    duration: 1s\n    script: bad.js\n");
  const Finished f = RunFull({MeridianBinary(), "validate", dir.path + "/plan.yaml"});
  EXPECT_EQ(f.exit_code, 2) << f.out;
  EXPECT_NE(f.err.find("bad.js:2:13: SyntaxError: expected expression, got ';'"), std::string::npos) << f.err;
  // A script that reaches for the file system is refused at load time.
  dir.Write("bad.js", "import fs from 'fs';\nexport default function () {}\n");
  const Finished g = RunFull({MeridianBinary(), "validate", dir.path + "/plan.yaml"});
  EXPECT_EQ(g.exit_code, 2);
  EXPECT_NE(g.err.find("cannot import 'fs'"), std::string::npos) << g.err;
  // Valid: the normalised plan lists the bundled files.
  const Finished v = RunFull({MeridianBinary(), "validate", kExamples + "/journey.yaml"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("# files bundled with the plan: data/users.json"), std::string::npos) << v.out;
}

}  // namespace
}  // namespace meridian::testing
