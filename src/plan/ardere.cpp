#include "plan/ardere.h"

#include <fmt/format.h>

#include "config/reader.h"

namespace meridian::plan {
using config::Fields;
using config::Reader;

bool LooksLikeArdere(const YAML::Node& root) {
  if (!root.IsMap()) return false;
  if (root["ecs_name"]) return true;
  const YAML::Node steps = root["steps"];
  return !root["scenarios"] && steps && steps.IsSequence() && steps.size() > 0 && steps[0].IsMap() &&
         steps[0]["instance_count"];
}

Plan ParseArdere(const Reader& r, const YAML::Node& root, const loadgen::VarMap& overrides) {
  Fields f(r, root, "");
  Plan p;
  p.vars = overrides;
  p.regions.push_back(Region{"local"});
  const auto warn = [&](const YAML::Node& at, const std::string& field, const std::string& why) {
    p.warnings.push_back(fmt::format("{}: {}: {}", r.Where(at), field, why));
  };
  p.name = f.String("name", "");
  if (p.name.empty()) f.Fail("name", "is required (ardere's plan name)");
  if (f.Has("ecs_name")) {
    warn(f.Get("ecs_name"), "ecs_name",
         "ignored: steps run as processes on meridian agents, not on an ECS cluster");
  }
  if (f.Has("description"))
    warn(f.Get("description"), "description", "ignored: meridian plans carry no description");
  if (f.Has("metrics_options")) {
    warn(f.Get("metrics_options"), "metrics_options",
         "ignored: no InfluxDB/Grafana node is started; steps send StatsD to the agent ($MERIDIAN_STATSD) "
         "and the "
         "run's summary, thresholds and exports show it");
  }
  YAML::Node steps = f.Get("steps");
  if (!steps || !steps.IsSequence() || steps.size() == 0) f.Fail("steps", "is required (a non-empty list)");
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string path = fmt::format("steps[{}]", i);
    Fields sf(r, steps[i], path);
    Step s;
    s.region = "local";
    s.name = sf.String("name", "");
    if (s.name.empty()) sf.Fail("name", "is required");
    for (size_t j = 0; j < p.steps.size(); ++j) {
      if (p.steps[j].name == s.name) {
        sf.Fail("name",
                fmt::format("'{}' is already the name of steps[{}]: step names must be unique", s.name, j));
      }
    }
    if (!sf.Has("instance_count")) sf.Fail("instance_count", "is required");
    s.instances = static_cast<uint32_t>(sf.Uint("instance_count", 1, 1, 10'000));
    // ardere's times are whole seconds.
    if (!sf.Has("run_max_time")) sf.Fail("run_max_time", "is required (seconds)");
    s.run_max_time_ns = static_cast<int64_t>(sf.Uint("run_max_time", 0, 1, 30 * 86400)) * 1'000'000'000;
    s.run_delay_ns = static_cast<int64_t>(sf.Uint("run_delay", 0, 0, 30 * 86400)) * 1'000'000'000;
    // `cmd` (ardere's schema); early plans called it `command`.
    const char* cmd_key = sf.Has("cmd") ? "cmd" : "command";
    s.shell = sf.String(cmd_key, "");
    if (s.shell.empty()) sf.Fail("cmd", "is required (the command line, run with /bin/sh -c)");
    // Not ardere's: meridian's own key, for a step that may fail without failing the run.
    s.allow_failure = sf.Bool("allow_failure", false);
    if (YAML::Node env = sf.Get("env")) {
      Fields ef(r, env, sf.Path("env"));
      for (const auto& kv : env) s.env[kv.first.Scalar()] = ef.String(kv.first.Scalar(), "");
      ef.Done();
    }
    if (sf.Has("container_name")) {
      s.container_name = sf.String("container_name", "");
      warn(sf.Get("container_name"), sf.Path("container_name"),
           fmt::format(
               "kept as metadata only: no container runtime here, so '{}' is not pulled and `cmd` runs on "
               "the agent's host (install what it needs there)",
               s.container_name));
    }
    for (const char* key : {"instance_type", "port_mapping", "docker_series", "volume_mapping"}) {
      if (!sf.Has(key)) continue;
      const std::string why = std::string(key) == "instance_type"
                                  ? "ignored: instances are processes on the region's agents"
                              : std::string(key) == "port_mapping"
                                  ? "ignored: processes share the agent's network (no port mapping)"
                              : std::string(key) == "docker_series"
                                  ? "ignored: StatsD from a step is tagged by step and instance"
                                  : "ignored: processes see the agent's file system (no volumes)";
      warn(sf.Get(key), sf.Path(key), why);
    }
    sf.Done();
    p.steps.push_back(std::move(s));
  }
  f.Done();
  return p;
}

}  // namespace meridian::plan
