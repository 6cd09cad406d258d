#pragma once
// Internal to plan/: ardere's JSON test plans (name, ecs_name, steps[] of container commands,
// metrics_options) read into the plan model. Each step becomes a shell command step in the default region;
// fields with no meaning here become warnings that name them (file:line), never silently dropped.

#include <yaml-cpp/yaml.h>

#include "config/reader.h"
#include "plan/plan.h"

namespace meridian::plan {

// ardere plans are recognised by their required `ecs_name`, or by `steps` with `instance_count` and no
// `scenarios`.
bool LooksLikeArdere(const YAML::Node& root);
Plan ParseArdere(const config::Reader& r, const YAML::Node& root, const loadgen::VarMap& overrides);

}  // namespace meridian::plan
