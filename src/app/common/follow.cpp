#include "app/common/follow.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/common/cli.h"
#include "app/common/signals.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/json.h"
#include "core/utf8.h"
#include "http/api.h"
#include "http/fetch.h"
#include "script/script.h"
#include "store/store.h"

namespace meridian::app {

using nlohmann::json;

bool ParseVars(const std::vector<std::string>& pairs, loadgen::VarMap* vars, std::string* error,
               const char* flag) {
  for (const auto& kv : pairs) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = fmt::format("{}: '{}' is not NAME=VALUE", flag, kv);
      return false;
    }
    (*vars)[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

namespace {

// k6's option names -> the plan's.
const std::pair<const char*, const char*> kK6Names[] = {
    {"executor", "executor"},
    {"vus", "vus"},
    {"duration", "duration"},
    {"iterations", "iterations"},
    {"stages", "stages"},
    {"rate", "rate"},
    {"timeUnit", "time_unit"},
    {"preAllocatedVUs", "pre_allocated_vus"},
    {"maxVUs", "max_vus"},
    {"startVUs", "start_vus"},
    {"startRate", "rate"},
    {"gracefulStop", "graceful_stop"},
    {"startTime", "start_time"},
    {"maxDuration", "max_duration"},
    {"gracefulRampDown", "graceful_ramp_down"},
};

Result<json> ScenarioFromK6(const json& o, const std::string& where, const std::string& script) {
  json s = json::object();
  for (const auto& [k, v] : o.items()) {
    const char* mapped = nullptr;
    for (const auto& [from, to] : kK6Names) {
      if (k == from) mapped = to;
    }
    if (mapped == nullptr) {
      if (k == "exec" || k == "env" || k == "tags" || k == "options") {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}.{}: not supported (one VU function per script)", where, k));
      }
      continue;  // other top-level k6 options (thresholds, scenarios, ...) are handled by the caller
    }
    s[mapped] = v;
  }
  if (!s.contains("executor")) {
    if (s.contains("stages")) {
      s["executor"] = "ramping-vus";
    } else if (s.contains("duration")) {
      s["executor"] = "constant-vus";
      if (!s.contains("vus")) s["vus"] = 1;
    } else {
      s["executor"] = "shared-iterations";  // k6's default: 1 VU, 1 iteration
      if (!s.contains("vus")) s["vus"] = 1;
      if (!s.contains("iterations")) s["iterations"] = 1;
    }
  }
  s["script"] = script;
  return s;
}

// `meridian run script.js`: a plan made from the script's `export const options` (k6's way).
Result<plan::Plan> PlanFromScript(const std::string& path, const loadgen::VarMap& overrides) {
  const std::filesystem::path p(path);
  const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
  auto bundle = script::LoadBundle(dir, p.filename().string());
  if (!bundle.ok()) return bundle.error();
  auto info = script::Inspect(*bundle);
  if (!info.ok()) return info.error();
  const json options = info->options.is_object() ? info->options : json::object();
  json doc = {{"name", p.stem().string()}, {"regions", {{"local", json::object()}}}};
  const std::string where = path + ": options";
  if (options.contains("scenarios")) {
    if (!options["scenarios"].is_object()) {
      return MakeError(ErrorCode::kInvalidArgument, where + ".scenarios: must be an object of scenarios");
    }
    for (const auto& [name, o] : options["scenarios"].items()) {
      if (!o.is_object())
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("{}.scenarios.{}: must be an object", where, name));
      auto s = ScenarioFromK6(o, fmt::format("{}.scenarios.{}", where, name), bundle->entry);
      if (!s.ok()) return s.error();
      doc["scenarios"][name] = *s;
    }
  } else {
    auto s = ScenarioFromK6(options, where, bundle->entry);
    if (!s.ok()) return s.error();
    doc["scenarios"]["default"] = *s;
  }
  if (options.contains("thresholds")) doc["thresholds"] = options["thresholds"];
  auto plan = plan::ParsePlan(JsonText(doc, 2), where, overrides);
  if (!plan.ok()) return plan.error();
  plan->files = bundle->files;
  plan->source = path;
  return plan;
}

// Reads every script the plan names (and what their init code imports and opens) into plan.files.
Result<void> BundleScripts(plan::Plan& plan, const std::string& base_dir) {
  for (auto& s : plan.scenarios) {
    if (s.script.empty()) continue;
    auto bundle = script::LoadBundle(base_dir, s.script);
    if (!bundle.ok()) {
      return MakeError(bundle.error().code,
                       fmt::format("scenarios.{}.script: {}", s.name, bundle.error().message));
    }
    s.script = bundle->entry;
    for (auto& [k, v] : bundle->files) {
      if (FirstInvalidUtf8(v) != std::string::npos) {
        return MakeError(
            ErrorCode::kInvalidArgument,
            fmt::format("scenarios.{}.script: '{}' is not UTF-8 text (scripts and the files they open() "
                        "must be)",
                        s.name, k));
      }
      plan.files[k] = std::move(v);
    }
  }
  return {};
}

}  // namespace

namespace {

Result<plan::Plan> LoadPlanFiles(const PlanInput& in) {
  if (in.path.empty() == in.config.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "give a PLAN or --config config.json");
  }
  loadgen::VarMap overrides;
  std::string error;
  if (!ParseVars(in.vars, &overrides, &error)) return MakeError(ErrorCode::kInvalidArgument, error);
  if (!in.path.empty()) {
    if (in.path.ends_with(".js") || in.path.ends_with(".mjs")) return PlanFromScript(in.path, overrides);
    auto loaded = plan::LoadPlanFile(in.path, overrides);
    if (!loaded.ok()) return loaded;
    for (const auto& w : loaded->warnings) fmt::print(stderr, "warning: {}\n", w);
    const std::filesystem::path dir = std::filesystem::path(in.path).parent_path();
    if (auto ok = BundleScripts(*loaded, dir.empty() ? "." : dir.string()); !ok.ok()) return ok.error();
    return loaded;
  }
  auto imported = plan::ImportConstellation(in.config, in.script);
  if (!imported.ok()) return imported;
  for (const auto& [k, v] : overrides) imported->vars[k] = v;
  // Constellation scripts may use relative URLs against a base: --vars base=URL becomes axios' baseURL.
  if (auto base = overrides.find("base"); base != overrides.end()) {
    for (auto& s : imported->scenarios) s.base_url = base->second;
  }
  if (auto ok = BundleScripts(*imported, "."); !ok.ok()) return ok.error();
  return imported;
}

}  // namespace

Result<plan::Plan> LoadPlanInput(const PlanInput& in) {
  auto plan = LoadPlanFiles(in);
  if (plan.ok() && !in.baseline.empty()) plan->baseline = in.baseline;
  return plan;
}

std::string LoadCliToken(const std::string& token_file, std::string* error) {
  auto read = [&](const std::string& path) {
    std::ifstream in(path);
    std::string token;
    if (in) std::getline(in, token);
    return token;
  };
  if (!token_file.empty()) {
    std::string t = read(token_file);
    if (t.empty()) *error = fmt::format("--token-file: cannot read a token from '{}'", token_file);
    return t;
  }
  if (const char* env = std::getenv("MERIDIAN_TOKEN"); env && *env) return env;
  return read(".meridian/token");
}

namespace {

std::string RegionLine(const json& r, int64_t time_left_ns) {
  return fmt::format("{:<14} agents {}/{} ready  vus {:>5}  {:>7} req/s  p95 {:>8}  errors {:>5}  left {}",
                     r.value("name", ""), r.value("ready", 0), r.value("agents", 0), r.value("vus", 0),
                     r.value("rps", 0), FormatDuration(static_cast<int64_t>(r.value("p95_ms", 0.0) * 1e6)),
                     r.value("errors", 0), FormatDuration(std::max<int64_t>(0, time_left_ns)));
}

// A state the server named: terminal as the store defines it (an unknown name is not).
bool Terminal(const std::string& s) {
  const auto state = store::ParseRunState(s);
  return state && store::Terminal(*state);
}

}  // namespace

int SubmitAndFollow(const std::string& control_url, const std::string& token, const std::string& plan_text,
                    const std::string& plan_file, const loadgen::VarMap& vars, const FollowOptions& o) {
  auto client = http::BlockingClient::Create(control_url, token);
  if (!client.ok()) return Fail(o.command, client.error().message, kExitUsage);
  json body = {{"plan", plan_text}, {"file", plan_file}, {"vars", json::object()}};
  for (const auto& [k, v] : vars) body["vars"][k] = v;
  auto created = client->Request("POST", "/v1/runs", JsonText(body));
  if (!created.ok()) return Fail(o.command, created.error().message, kExitRunError);
  const json cj = json::parse(created->body, nullptr, false);
  if (created->status != 201) {
    const std::string msg =
        cj.is_object() && cj.contains("error") ? cj["error"].value("message", created->body) : created->body;
    return Fail(o.command, msg, created->status == 400 ? kExitUsage : kExitRunError);
  }
  const std::string id = cj.value("id", "");
  const bool tty = isatty(STDERR_FILENO) == 1;
  if (!o.quiet) fmt::print(stderr, "  run {} created on {}\n", id, control_url);

  std::atomic<int> interrupts{0};
  SignalWatcher signals([&](int, int count) { interrupts.store(count); });
  bool abort_sent = false;
  std::string state, last_state;
  int exit_code = kExitRunError;
  int64_t last_print = 0, unreachable_since = 0;
  size_t printed_lines = 0;
  while (true) {
    if (interrupts.load() >= 2)
      return Fail(o.command, "interrupted; the run goes on on the control plane: meridian runs abort " + id,
                  kExitRunError);
    if (interrupts.load() == 1 && !abort_sent) {
      abort_sent = true;
      if (!o.quiet) fmt::print(stderr, "\n  aborting run {} (Ctrl-C again to stop waiting)\n", id);
      (void)client->Request("POST", fmt::format("/v1/runs/{}/abort", id), "{}");
    }
    auto r = client->Request("GET", "/v1/runs/" + id, "", 5 * kNanosPerSecond);
    if (!r.ok() || r->status >= 500) {
      if (unreachable_since == 0) {
        unreachable_since = MonoNanos();
        if (!o.quiet)
          fmt::print(stderr, "\n  control plane unreachable ({}); retrying\n",
                     r.ok() ? std::to_string(r->status) : r.error().message);
      }
      if (MonoNanos() - unreachable_since > 300 * kNanosPerSecond) {
        return Fail(o.command, "the control plane stayed unreachable for 5 minutes", kExitRunError);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      continue;
    }
    if (unreachable_since && !o.quiet) fmt::print(stderr, "  control plane back\n");
    unreachable_since = 0;
    if (r->status != 200)
      return Fail(o.command, fmt::format("GET run {}: {} {}", id, r->status, r->body), kExitRunError);
    const json j = json::parse(r->body, nullptr, false);
    state = j.value("state", "");
    exit_code = j.value("exit_code", -1) >= 0 ? j.value("exit_code", kExitRunError) : kExitRunError;
    if (!o.quiet) {
      const int64_t now = MonoNanos();
      if (state != last_state) {
        if (tty && printed_lines) fmt::print(stderr, "\x1b[{}A\x1b[J", printed_lines);
        printed_lines = 0;
        fmt::print(stderr, "  {} {}\n", state,
                   j.value("reason", "").empty() ? "" : "(" + j.value("reason", "") + ")");
        last_state = state;
      }
      const bool live = state == "preparing" || state == "ready" || state == "running" || state == "draining";
      if (live && j.contains("regions") && (tty || now - last_print >= 5 * kNanosPerSecond)) {
        last_print = now;
        if (tty && printed_lines) fmt::print(stderr, "\x1b[{}A\x1b[J", printed_lines);
        printed_lines = 0;
        for (const auto& region : j["regions"]) {
          fmt::print(stderr, "    {}\n", RegionLine(region, j.value("time_left_ns", int64_t{0})));
          ++printed_lines;
        }
        if (!tty) printed_lines = 0;
      }
    }
    if (Terminal(state)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 500));
  }
  if (tty && printed_lines && !o.quiet) fmt::print(stderr, "\x1b[{}A\x1b[J", printed_lines);

  auto text = client->Request("GET", fmt::format("/v1/runs/{}/report?format=text", id));
  auto summary = client->Request("GET", fmt::format("/v1/runs/{}/report?format=json", id));
  if (o.json) {
    if (summary.ok()) fmt::print("{}\n", summary->body);
  } else if (text.ok() && text->status == 200) {
    fmt::print("{}", text->body);
  } else {
    fmt::print("  run {} {}\n", id, state);
  }
  std::fflush(stdout);
  if (!o.summary_file.empty() && summary.ok()) std::ofstream(o.summary_file) << summary->body << "\n";
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec)
      return Fail(o.command, fmt::format("--out: cannot create '{}': {}", o.out_dir, ec.message()),
                  kExitRunError);
    for (const char* name : {"plan.yaml", "services.json", "RUN.txt", "summary.json", "metrics.csv",
                             "report.html", "FINISHED.txt"}) {
      auto f = client->Request("GET", fmt::format("/v1/runs/{}/artefacts/{}", id, name));
      if (!f.ok() || f->status != 200) {
        fmt::print(stderr, "  {}: {} not available\n", o.command, name);
        continue;
      }
      std::ofstream out(std::filesystem::path(o.out_dir) / name, std::ios::binary);
      out << f->body;
      if (!out)
        return Fail(o.command, fmt::format("--out: cannot write {}/{}", o.out_dir, name), kExitRunError);
    }
    // Each step instance's log as steps/NAME#N.log ('/' in a name becomes '_'): the logs outlive the run.
    const json steps = summary.ok() ? json::parse(summary->body, nullptr, false) : json();
    if (steps.is_object() && steps.contains("steps") && steps["steps"].is_array() &&
        !steps["steps"].empty()) {
      const auto dir = std::filesystem::path(o.out_dir) / "steps";
      std::filesystem::create_directories(dir, ec);
      for (const auto& s : steps["steps"]) {
        const std::string step = s.value("step", std::string());
        const uint32_t instance = s.value("instance", 0u);
        auto f = client->Request("GET", fmt::format("/v1/runs/{}/steps/{}/log?instance={}", id,
                                                    http::EncodePathSegment(step), instance));
        if (!f.ok() || f->status != 200) {
          fmt::print(stderr, "  {}: the log of {}#{} is not available\n", o.command, step, instance);
          continue;
        }
        std::string file = fmt::format("{}#{}.log", step, instance);
        std::replace_if(
            file.begin(), file.end(), [](char c) { return c == '/' || c == '\0'; }, '_');
        std::ofstream out(dir / file, std::ios::binary);
        out << f->body;
        if (!out)
          return Fail(o.command, fmt::format("--out: cannot write {}/steps/{}", o.out_dir, file),
                      kExitRunError);
      }
    }
  }
  return exit_code;  // the control plane's: 0 passed, 99 failed, 1 aborted or errored
}

}  // namespace meridian::app
