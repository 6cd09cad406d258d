// Constellation's inputs, unchanged: config.json (DURATION in ms, HOME_REGION, REMOTE_REGIONS {region: VUs})
// and script.js (`script(axiosInstance)` run back to back by every VU).

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/reader.h"
#include "core/duration.h"
#include "plan/plan.h"

namespace meridian::plan {
using config::Fields;
using config::LoadYaml;
using config::Reader;
using config::ReadError;

Result<Plan> ImportConstellation(const std::string& config_path, const std::string& script_path) {
  std::ifstream in(config_path, std::ios::binary);
  if (!in)
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the config", config_path));
  std::stringstream ss;
  ss << in.rdbuf();
  // Constellation keeps script.js beside config.json.
  const std::string dir = std::filesystem::path(config_path).parent_path().string();
  const std::string script =
      !script_path.empty() ? script_path : (dir.empty() ? "script.js" : dir + "/script.js");
  if (!std::ifstream(script)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the script", script));
  }
  Reader reader(config_path);
  try {
    const YAML::Node root = LoadYaml(reader, ss.str());
    Fields f(reader, root, "");
    const uint64_t duration_ms = f.Uint("DURATION", 0, 1, 7ULL * 24 * 3600 * 1000);
    if (!f.Has("DURATION")) f.Fail("DURATION", "is required (the test length in milliseconds)");
    const std::string home = f.String("HOME_REGION", "");
    if (home.empty()) f.Fail("HOME_REGION", "is required (the region of the control plane)");
    YAML::Node remote = f.Get("REMOTE_REGIONS");
    if (!remote) f.Fail("REMOTE_REGIONS", "is required (region: number of VUs)");
    Plan p;
    p.name = "constellation";
    p.source = config_path + " (Constellation)";
    p.start_buffer_ns = kNanosPerSecond;
    Fields rf(reader, remote, "REMOTE_REGIONS");
    for (const auto& kv : remote) {
      const std::string region = kv.first.Scalar();
      const auto vus = static_cast<uint32_t>(rf.Uint(region, 0, 1, 1'000'000));
      Region r;
      r.name = region;
      r.vus = vus;
      p.regions.push_back(r);
      Scenario s;
      s.name = region;
      s.regions = {region};
      s.script = script;
      s.executor.type = loadgen::ExecutorType::kConstantVus;
      s.executor.vus = vus;
      s.executor.duration_ns = static_cast<int64_t>(duration_ms) * kNanosPerMilli;
      // At DURATION each VU finishes the iteration it is in, within the plan's drain grace.
      s.executor.graceful_stop_ns = p.drain_grace_ns;
      p.scenarios.push_back(s);
    }
    rf.Done();
    f.Done();
    if (p.regions.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: REMOTE_REGIONS: must name at least one region", config_path));
    }
    return p;
  } catch (const ReadError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}:{}: not valid JSON: {}", config_path,
                                                              e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace meridian::plan
