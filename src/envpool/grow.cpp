// The lease core's grow mode: a pool with `grow: { max, create }` runs its create command for a waiter that
// nothing free can serve, up to `max` environments; the new environment joins the pool (and the store).

#include <fmt/format.h>

#include "core/json.h"
#include "core/log.h"
#include "envpool/leases.h"

namespace meridian::envpool {

using nlohmann::json;
using nlohmann::ordered_json;

bool Leases::CanGrow(const Pool& pool) const {
  if (pool.spec.grow_max == 0 || pool.removed) return false;
  size_t size = 0;
  for (const auto& [id, s] : specs_) size += s.pool == pool.spec.name;
  return size + pool.growing < pool.spec.grow_max;
}

void Leases::Grow(Pool& pool, const AllocationRequest& rq) {
  ++pool.growing;
  const std::string name = pool.spec.name;
  size_t n = 1;
  while (specs_.count(fmt::format("{}-{}", name, n))) ++n;
  const std::string proposed = fmt::format("{}-{}", name, n);
  const ordered_json input = {
      {"pool", name}, {"id", proposed}, {"requester", rq.requester}, {"require", rq.require}};
  std::map<std::string, std::string> env = {{"MERIDIAN_POOL", name}, {"MERIDIAN_ENV_ID", proposed}};
  LogInfo("pool {}: creating an environment (grow mode, {} of at most {})", name, n, pool.spec.grow_max);
  hooks_.Start(pool.spec.grow_create, JsonText(input), env,
               [this, name, proposed](CommandResult r) { Grown(name, proposed, r); });
}

void Leases::Grown(const std::string& name, const std::string& proposed, const CommandResult& r) {
  auto it = pools_.find(name);
  if (it == pools_.end()) return;
  Pool& grown = it->second;
  --grown.growing;
  std::string error;
  EnvironmentSpec spec;
  if (!r.ok()) {
    error = fmt::format("the create command failed ({})", r.Describe());
  } else {
    json out = json::parse(r.out.empty() ? "{}" : r.out, nullptr, false);
    if (!out.is_object()) {
      error = "the create command did not print a JSON object";
    } else {
      try {
        spec.id = out.value("id", proposed);
        spec.pool = name;
        spec.region = out.value("region", "");
        spec.account = out.value("account", "");
        const json caps = out.value("capabilities", json::object());
        for (const auto& [k, v] : caps.items()) {
          spec.capabilities[k] = v.is_string() ? v.get<std::string>() : JsonText(v);
        }
      } catch (const json::exception& e) {
        error = fmt::format("the create command's JSON: {}", e.what());
      }
      if (error.empty() && (!ValidId(spec.id) || specs_.count(spec.id))) {
        error = fmt::format("the create command named an invalid or taken id '{}'", spec.id);
      }
    }
  }
  if (error.empty()) {
    store::EnvironmentRow row;
    row.id = spec.id;
    row.pool = name;
    row.spec_json = JsonText(EnvironmentJson(spec));
    row.grown = true;
    row.created_ns = row.state_since_ns = clock_.Wall();
    if (auto ins = store_.InsertEnvironment(row); !ins.ok()) error = ins.error().message;
  }
  Record({kSystem, "create", name, "", error.empty() ? spec.id : proposed, error.empty() ? "ok" : "failed",
          error.empty() ? r.Describe() : error});
  if (error.empty()) {
    specs_[spec.id] = spec;
  } else {
    LogWarn("pool {}: {}", name, error);
  }
  // Waiters that were waiting for this create alone get their answer now.
  for (auto& w : grown.waiters) {
    if (!w.done && w.grow_pending) {
      w.grow_pending = false;
      break;
    }
  }
  Pump(name);
  const int64_t now = clock_.Mono();
  Walk walk(grown);
  for (size_t i = 0; i < grown.waiters.size(); ++i) {
    Waiter& w = grown.waiters[i];
    if (w.done || w.grow_pending || w.deadline_mono > now) continue;
    if (!error.empty()) {
      ++grown.requests["failed"];
      Answer(w, LeaseError{LeaseErrorCode::kGrowFailed, fmt::format("pool '{}': {}", name, error), ""});
    } else {
      Reject(grown, w, "rejected");
    }
  }
}

}  // namespace meridian::envpool
