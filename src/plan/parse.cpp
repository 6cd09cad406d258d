// The strict plan parser: YAML or JSON (yaml-cpp reads both) into the Plan model.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/reader.h"
#include "core/duration.h"
#include "core/json.h"
#include "core/utf8.h"
#include "plan/ardere.h"
#include "plan/plan.h"
#include "plan/toml.h"

namespace meridian::plan {
using config::Fields;
using config::LoadYaml;
using config::NestingTooDeep;
using config::Reader;
using config::ReadError;
using config::ScalarText;
namespace {

using loadgen::ExecutorType;

// JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
bool IsJsonNumber(std::string_view s) {
  size_t i = 0;
  auto digits = [&] {
    const size_t from = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i > from;
  };
  if (i < s.size() && s[i] == '-') ++i;
  if (i < s.size() && s[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == s.size();
}

bool ValidRegionName(std::string_view s) {
  if (s.empty() || s.size() > 63 || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// YAML → JSON for request bodies given as `json:` (kept as written: strings stay strings).
nlohmann::json ToJson(const Reader& r, const YAML::Node& n, const std::string& field) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted in the source
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      if (IsJsonNumber(s)) {
        if (s.find_first_of(".eE") == std::string::npos) {
          errno = 0;
          const long long v = std::strtoll(s.c_str(), nullptr, 10);
          if (errno != ERANGE) return v;
        }
        return std::strtod(s.c_str(), nullptr);
      }
      return s;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (size_t i = 0; i < n.size(); ++i) a.push_back(ToJson(r, n[i], fmt::format("{}[{}]", field, i)));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = ToJson(r, kv.second, field + "." + kv.first.Scalar());
      return o;
    }
    default:
      r.Fail(n, field, "has no value");
  }
}

// "500/s", "500", "60/m", "5/100ms": iterations per time unit.
std::pair<double, int64_t> RateValue(const Reader& r, const YAML::Node& n, const std::string& field) {
  auto rate = loadgen::ParseRate(ScalarText(r, n, field));
  if (!rate.ok()) r.Fail(n, field, rate.error().message);
  return *rate;
}

const YAML::Node& Sequence(const Reader& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsSequence()) r.Fail(n, field, "must be a list");
  return n;
}

loadgen::RequestSpec ParseRequest(const Reader& r, const YAML::Node& n, const std::string& path) {
  Fields f(r, n, path);
  loadgen::RequestSpec q;
  q.name = f.String("name", "");
  q.method = f.String("method", "GET");
  q.url = f.String("url", "");
  if (q.url.empty()) f.Fail("url", "is required (an absolute http:// or https:// URL)");
  if (YAML::Node h = f.Get("headers")) {
    Fields hf(r, h, f.Path("headers"));
    for (const auto& kv : h) {
      const std::string name = kv.first.Scalar();
      q.headers.emplace_back(name, hf.String(name, ""));
    }
    hf.Done();
  }
  const bool has_body = f.Has("body"), has_json = f.Has("json");
  if (has_body && has_json) f.Fail("json", "give either body or json, not both");
  q.body = f.String("body", "");
  if (YAML::Node j = f.Get("json")) {
    q.body = JsonText(ToJson(r, j, f.Path("json")));
    q.json = true;
  }
  if (YAML::Node e = f.Get("expect")) {
    Fields ef(r, e, f.Path("expect"));
    if (YAML::Node s = ef.Get("status")) {
      auto one = [&](const YAML::Node& v, const std::string& field) {
        const std::string text = ScalarText(r, v, field);
        char* end = nullptr;
        const long code = std::strtol(text.c_str(), &end, 10);
        if (text.empty() || end != text.c_str() + text.size() || code < 100 || code > 599) {
          r.Fail(v, field, fmt::format("'{}' is not an HTTP status (100-599)", text));
        }
        q.expect_status.push_back(static_cast<int>(code));
      };
      if (s.IsSequence()) {
        for (size_t i = 0; i < s.size(); ++i) one(s[i], fmt::format("{}[{}]", ef.Path("status"), i));
      } else {
        one(s, ef.Path("status"));
      }
    }
    ef.Done();
  }
  f.Done();
  return q;
}

Scenario ParseScenario(const Reader& r, const std::string& name, const YAML::Node& n,
                       const std::string& path) {
  Fields f(r, n, path);
  Scenario s;
  s.name = name;
  loadgen::ExecutorConfig& e = s.executor;
  const std::string executor = f.String("executor", "");
  if (executor.empty()) {
    f.Fail("executor", "is required (one of " + loadgen::AllowedExecutorNames() + ")");
  }
  auto type = loadgen::ParseExecutorType(executor);
  if (!type.ok()) f.Fail("executor", type.error().message);
  e.type = *type;
  const bool open = e.open_model();
  e.start_time_ns = f.Duration("start_time", 0);
  e.graceful_stop_ns = f.Duration("graceful_stop", 30 * kNanosPerSecond);
  e.graceful_ramp_down_ns = f.Duration("graceful_ramp_down", 30 * kNanosPerSecond);
  // Read every key first so that "allowed here" lists them all, then check which apply.
  const bool has_vus = f.Has("vus"), has_duration = f.Has("duration"), has_iterations = f.Has("iterations");
  const bool has_stages = f.Has("stages"), has_rate = f.Has("rate"), has_start_vus = f.Has("start_vus");
  const bool has_pre = f.Has("pre_allocated_vus"), has_max_vus = f.Has("max_vus");
  const bool has_max_duration = f.Has("max_duration"), has_time_unit = f.Has("time_unit");
  e.vus = static_cast<uint32_t>(f.Uint("vus", 1, 1, 1'000'000));
  e.duration_ns = f.Duration("duration", 0, false);
  e.iterations = f.Uint("iterations", 1, 1, 1'000'000'000'000ULL);
  e.max_duration_ns = f.Duration("max_duration", 600 * kNanosPerSecond, false);
  e.start_vus = static_cast<uint32_t>(f.Uint("start_vus", 0, 0, 1'000'000));
  e.pre_allocated_vus = static_cast<uint32_t>(f.Uint("pre_allocated_vus", 10, 1, 1'000'000));
  e.max_vus = static_cast<uint32_t>(f.Uint("max_vus", 0, 1, 1'000'000));
  int64_t time_unit = f.Duration("time_unit", 0, false);
  if (YAML::Node rate = f.Get("rate")) {
    auto [value, unit] = RateValue(r, rate, f.Path("rate"));
    e.rate = value;
    e.time_unit_ns = unit;
  }
  if (time_unit > 0) {
    if (has_rate && ScalarText(r, f.Get("rate"), "rate").find('/') != std::string::npos) {
      f.Fail("time_unit", "give the unit either in rate (500/s) or in time_unit, not both");
    }
    e.time_unit_ns = time_unit;
  }
  if (YAML::Node st = f.Get("stages")) {
    Sequence(r, st, f.Path("stages"));
    for (size_t i = 0; i < st.size(); ++i) {
      Fields sf(r, st[i], fmt::format("{}[{}]", f.Path("stages"), i));
      loadgen::Stage stage;
      stage.duration_ns = sf.Duration("duration", -1);
      if (stage.duration_ns < 0) sf.Fail("duration", "is required");
      if (!sf.Has("target")) sf.Fail("target", "is required");
      if (e.type == ExecutorType::kRampingArrivalRate) {
        stage.target = RateValue(r, sf.Get("target"), sf.Path("target")).first;
      } else {
        stage.target = sf.Number("target", 0);
      }
      sf.Done();
      e.stages.push_back(stage);
    }
  }
  if (YAML::Node q = f.Get("requests")) {
    Sequence(r, q, f.Path("requests"));
    for (size_t i = 0; i < q.size(); ++i) {
      s.requests.push_back(ParseRequest(r, q[i], fmt::format("{}[{}]", f.Path("requests"), i)));
    }
  }
  s.script = f.String("script", "");
  s.base_url = f.String("base_url", "");
  s.iteration_timeout_ns = f.Duration("iteration_timeout", s.iteration_timeout_ns, false);
  if (YAML::Node regions = f.Get("regions")) {
    Sequence(r, regions, f.Path("regions"));
    for (size_t i = 0; i < regions.size(); ++i) {
      s.regions.push_back(ScalarText(r, regions[i], fmt::format("{}[{}]", f.Path("regions"), i)));
    }
  }
  f.Done();

  auto not_for = [&](bool given, const char* key, const char* why) {
    if (given) f.Fail(key, fmt::format("does not apply to {} ({})", executor, why));
  };
  const bool vus_based = e.type == ExecutorType::kConstantVus || e.type == ExecutorType::kPerVuIterations ||
                         e.type == ExecutorType::kSharedIterations;
  const bool iterations_based =
      e.type == ExecutorType::kPerVuIterations || e.type == ExecutorType::kSharedIterations;
  const bool timed = e.type == ExecutorType::kConstantVus || e.type == ExecutorType::kConstantArrivalRate;
  const bool staged = e.type == ExecutorType::kRampingVus || e.type == ExecutorType::kRampingArrivalRate;
  not_for(has_vus && !vus_based, "vus", open ? "use pre_allocated_vus and max_vus" : "use stages");
  not_for(has_duration && !timed, "duration", staged ? "the stages set the duration" : "use max_duration");
  not_for(has_iterations && !iterations_based, "iterations", "only per-vu-iterations and shared-iterations");
  not_for(has_max_duration && !iterations_based, "max_duration",
          "only per-vu-iterations and shared-iterations");
  not_for(has_stages && !staged, "stages", "only ramping-vus and ramping-arrival-rate");
  not_for(has_start_vus && e.type != ExecutorType::kRampingVus, "start_vus", "only ramping-vus");
  not_for(has_rate && !open, "rate", "only arrival-rate executors");
  not_for(has_time_unit && !open, "time_unit", "only arrival-rate executors");
  not_for(has_pre && !open, "pre_allocated_vus", "only arrival-rate executors");
  not_for(has_max_vus && !open, "max_vus", "only arrival-rate executors");
  if (timed && !has_duration) f.Fail("duration", "is required for " + executor);
  if (e.type == ExecutorType::kConstantArrivalRate && !has_rate) f.Fail("rate", "is required (e.g. 500/s)");
  if (staged && !has_stages) f.Fail("stages", "is required for " + executor);
  if (open) {
    double peak = e.rate;
    for (const auto& st : e.stages) peak = std::max(peak, st.target);
    const double per_second = peak * 1e9 / static_cast<double>(e.time_unit_ns);
    if (!has_max_vus) {
      // Clamped before the conversion: Validate() below refuses rates above its limit by name.
      e.max_vus =
          std::max(e.pre_allocated_vus, static_cast<uint32_t>(std::clamp(std::ceil(per_second), 1.0, 1e6)));
    }
  }
  if (s.requests.empty() && s.script.empty()) {
    f.Fail("requests", "a scenario needs requests (a list) or a script");
  }
  if (!s.requests.empty() && !s.script.empty())
    f.Fail("script", "give either requests or a script, not both");
  if (s.script.empty() && !s.base_url.empty()) f.Fail("base_url", "applies to script scenarios only");
  if (auto v = e.Validate(); !v.ok()) r.Fail(n, path, v.error().message);
  return s;
}

Step ParseStep(const Reader& r, const YAML::Node& n, const std::string& path) {
  Fields f(r, n, path);
  Step s;
  s.name = f.String("name", "");
  if (s.name.empty()) f.Fail("name", "is required");
  s.region = f.String("region", "");
  s.instances = static_cast<uint32_t>(f.Uint("instances", 1, 1, 10'000));
  if (YAML::Node c = f.Get("command")) {
    if (c.IsSequence()) {
      for (size_t i = 0; i < c.size(); ++i) {
        s.command.push_back(ScalarText(r, c[i], fmt::format("{}[{}]", f.Path("command"), i)));
      }
    } else {
      s.command.push_back(ScalarText(r, c, f.Path("command")));
    }
  }
  s.shell = f.String("shell", "");
  if (s.command.empty() && s.shell.empty()) {
    f.Fail("command", "is required (a list: [program, arg, ...]), or give `shell` (a /bin/sh command line)");
  }
  if (!s.command.empty() && !s.shell.empty()) f.Fail("shell", "give either command or shell, not both");
  s.cwd = f.String("cwd", "");
  s.stop_grace_ns = f.Duration("stop_grace", s.stop_grace_ns);
  const std::string restart = f.String("restart", "never");
  if (restart != "never" && restart != "on-failure") {
    f.Fail("restart", fmt::format("'{}' is not one of: never, on-failure", restart));
  }
  s.restart_on_failure = restart == "on-failure";
  s.allow_failure = f.Bool("allow_failure", false);
  s.run_delay_ns = f.Duration("run_delay", 0);
  s.run_max_time_ns = f.Duration("run_max_time", 0, false);
  if (s.run_max_time_ns == 0) f.Fail("run_max_time", "is required (the step is stopped after it)");
  if (YAML::Node env = f.Get("env")) {
    Fields ef(r, env, f.Path("env"));
    for (const auto& kv : env) s.env[kv.first.Scalar()] = ef.String(kv.first.Scalar(), "");
    ef.Done();
  }
  s.container_name = f.String("container_name", "");
  f.Done();
  return s;
}

Plan ParseRoot(const Reader& r, const YAML::Node& root, const loadgen::VarMap& overrides) {
  Fields f(r, root, "");
  Plan p;
  p.name = f.String("name", "");
  if (p.name.empty()) f.Fail("name", "is required (a short name for the plan)");
  if (YAML::Node vars = f.Get("vars")) {
    Fields vf(r, vars, "vars");
    for (const auto& kv : vars) p.vars[kv.first.Scalar()] = vf.String(kv.first.Scalar(), "");
    vf.Done();
  }
  for (const auto& [k, v] : overrides) p.vars[k] = v;
  if (YAML::Node tags = f.Get("tags")) {
    // The run's labels, for the runs list (filter and search) and what reads runs.
    Fields tf(r, tags, "tags");
    for (const auto& kv : tags) {
      const std::string key = kv.first.Scalar();
      const bool ok = !key.empty() && key.size() <= 64 && std::all_of(key.begin(), key.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
      });
      if (!ok) tf.Fail(key, "a tag's name is 1 to 64 letters, digits, '_', '-' or '.'");
      p.tags[key] = tf.String(key, "");
      if (p.tags[key].size() > 256) tf.Fail(key, "a tag's value is at most 256 bytes");
    }
    tf.Done();
  }
  p.start_buffer_ns = f.Duration("start_buffer", p.start_buffer_ns);
  p.ready_timeout_ns = f.Duration("ready_timeout", p.ready_timeout_ns, false);
  p.heartbeat_timeout_ns = f.Duration("heartbeat_timeout", p.heartbeat_timeout_ns, false);
  p.drain_grace_ns = f.Duration("drain_grace", p.drain_grace_ns);
  p.timeout_ns = f.Duration("timeout", p.timeout_ns, false);
  p.connect_timeout_ns = f.Duration("connect_timeout", p.connect_timeout_ns, false);
  p.insecure = f.Bool("insecure", false);
  p.baseline = f.String("baseline", "");
  const std::string loss = f.String("on_agent_loss", "fail");
  if (loss == "fail") {
    p.on_agent_loss = AgentLoss::kFail;
  } else if (loss == "continue") {
    p.on_agent_loss = AgentLoss::kContinue;
  } else {
    f.Fail("on_agent_loss", fmt::format("'{}' is not allowed (allowed: fail, continue)", loss));
  }
  if (YAML::Node regions = f.Get("regions")) {
    Fields rf(r, regions, "regions");
    for (const auto& kv : regions) {
      const std::string name = kv.first.Scalar();
      Region region;
      region.name = name;
      YAML::Node body = rf.Get(name);
      Fields g(r, body, rf.Path(name));
      region.weight = g.Number("weight", 1);
      if (!(region.weight > 0)) g.Fail("weight", "must be greater than 0");
      region.vus = static_cast<uint32_t>(g.Uint("vus", 0, 1, 1'000'000));
      if (YAML::Node rate = g.Get("rate")) {
        auto [value, unit] = RateValue(r, rate, g.Path("rate"));
        if (!(value > 0)) g.Fail("rate", "must be greater than 0");
        region.rate = value * 1e9 / static_cast<double>(unit);
        if (region.rate > 10'000'000) g.Fail("rate", "at most 10000000 iterations per second are supported");
      }
      region.agents = static_cast<uint32_t>(g.Uint("agents", 1, 1, 10'000));
      g.Done();
      if (!ValidRegionName(name)) {
        rf.Fail(name, "region names use letters, digits, '.', '_' and '-' (at most 63)");
      }
      p.regions.push_back(region);
    }
    rf.Done();
    if (p.regions.empty()) f.Fail("regions", "must name at least one region");
  } else {
    p.regions.push_back(Region{"local"});
  }
  if (YAML::Node scenarios = f.Get("scenarios")) {
    Fields sf(r, scenarios, "scenarios");
    for (const auto& kv : scenarios) {
      const std::string name = kv.first.Scalar();
      p.scenarios.push_back(ParseScenario(r, name, sf.Get(name), sf.Path(name)));
      for (const auto& region : p.scenarios.back().regions) {
        if (!p.FindRegion(region)) {
          sf.Fail(name, fmt::format("regions: '{}' is not one of the plan's regions", region));
        }
      }
    }
    sf.Done();
  }
  if (YAML::Node files = f.Get("files")) {
    // The scripts' bundle, written by meridian itself when it loads a plan with scripts (script/script.h).
    Fields ff(r, files, "files");
    for (const auto& kv : files) p.files[kv.first.Scalar()] = ff.String(kv.first.Scalar(), "");
    ff.Done();
  }
  if (YAML::Node steps = f.Get("steps")) {
    Sequence(r, steps, "steps");
    for (size_t i = 0; i < steps.size(); ++i) {
      p.steps.push_back(ParseStep(r, steps[i], fmt::format("steps[{}]", i)));
      Step& s = p.steps.back();
      if (!s.region.empty() && !p.FindRegion(s.region)) {
        r.Fail(steps[i], fmt::format("steps[{}].region", i),
               fmt::format("'{}' is not one of the plan's regions", s.region));
      }
      if (s.region.empty() && !p.regions.empty()) s.region = p.regions.front().name;  // the first region
      for (size_t j = 0; j + 1 < p.steps.size(); ++j) {
        if (p.steps[j].name == s.name) {
          r.Fail(steps[i], fmt::format("steps[{}].name", i),
                 fmt::format("'{}' is already the name of steps[{}]: step names must be unique", s.name, j));
        }
      }
    }
  }
  if (p.scenarios.empty() && p.steps.empty()) f.Fail("scenarios", "a plan needs scenarios or steps");
  if (p.scenarios.size() > 1000) f.Fail("scenarios", "at most 1000 scenarios");
  if (YAML::Node thresholds = f.Get("thresholds")) {
    Fields tf(r, thresholds, "thresholds");
    for (const auto& kv : thresholds) {
      const std::string key = kv.first.Scalar();
      const std::string path = "thresholds." + key;
      auto set = stats::ParseThresholdKey(key, !p.steps.empty());
      if (!set.ok()) r.Fail(kv.first, path, set.error().message);
      YAML::Node list = tf.Get(key);
      Sequence(r, list, path);
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string item = fmt::format("{}[{}]", path, i);
        stats::ThresholdExpr expr;
        if (list[i].IsMap()) {
          Fields ef(r, list[i], item);
          const std::string text = ef.String("threshold", "");
          if (text.empty()) ef.Fail("threshold", "is required (e.g. \"p(95)<200\")");
          auto parsed = stats::ParseThresholdExpr(text, set->kind);
          if (!parsed.ok()) ef.Fail("threshold", parsed.error().message);
          expr = *parsed;
          const bool k6 = ef.Bool("abortOnFail", false);
          expr.abort_on_fail = ef.Bool("abort_on_fail", k6);
          const int64_t k6_delay = ef.Duration("delayAbortEval", 0);
          expr.delay_abort_eval_ns = ef.Duration("delay_abort_eval", k6_delay);
          ef.Done();
        } else {
          auto parsed = stats::ParseThresholdExpr(ScalarText(r, list[i], item), set->kind);
          if (!parsed.ok()) r.Fail(list[i], item, parsed.error().message);
          expr = *parsed;
        }
        set->exprs.push_back(expr);
      }
      for (const auto& tag : set->tags) {
        if (tag.key == "region" && !p.FindRegion(tag.value)) {
          r.Fail(kv.first, path, fmt::format("region '{}' is not one of the plan's regions", tag.value));
        }
        if (tag.key == "scenario" && std::none_of(p.scenarios.begin(), p.scenarios.end(),
                                                  [&](const Scenario& s) { return s.name == tag.value; })) {
          r.Fail(kv.first, path, fmt::format("scenario '{}' is not one of the plan's scenarios", tag.value));
        }
      }
      p.thresholds.push_back(std::move(set).value());
    }
    tf.Done();
  }
  f.Done();
  return p;
}

}  // namespace

namespace {

Result<Plan> ParseText(const std::string& text, const std::string& file, const loadgen::VarMap& overrides,
                       bool toml) {
  Reader reader(file, !toml);
  constexpr size_t kMaxPlanBytes = 4 * 1024 * 1024;
  if (text.size() > kMaxPlanBytes) {
    return MakeError(ErrorCode::kInvalidArgument, file + ": the plan is larger than 4 MiB");
  }
  if (size_t bad = FirstInvalidUtf8(text); bad != std::string::npos) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}:{}: not valid UTF-8 (byte {}); plans are UTF-8 text", file, line, bad));
  }
  // A TOML plan is read as the YAML it is rewritten to (its keys stay on their lines, so errors point into
  // it).
  std::string from_toml;
  if (toml) {
    auto yaml = TomlToYaml(text, file);
    if (!yaml.ok()) return yaml.error();
    from_toml = std::move(yaml).value();
  }
  const std::string& source = toml ? from_toml : text;
  if (NestingTooDeep(source, 64)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     file + ": lists and mappings nest more than 64 levels deep");
  }
  try {
    YAML::Node root = LoadYaml(reader, source);
    if (!root.IsDefined() || root.IsNull())
      return MakeError(ErrorCode::kInvalidArgument, file + ": the plan is empty");
    const bool ardere = LooksLikeArdere(root);
    Plan p = ardere ? ParseArdere(reader, root, overrides) : ParseRoot(reader, root, overrides);
    p.source = ardere ? file + " (ardere)" : file;
    // Compile every request once now, so template and URL errors surface at validation.
    loadgen::OriginTable origins;
    uint16_t series = 0;
    for (const auto& s : p.scenarios) {
      if (s.requests.empty()) continue;
      auto program = loadgen::RequestProgram::Compile(s.requests, p.vars, series, origins,
                                                      "scenarios." + s.name + ".requests");
      if (!program.ok()) return MakeError(ErrorCode::kInvalidArgument, file + ": " + program.error().message);
      series = static_cast<uint16_t>(series + s.requests.size());
    }
    return p;
  } catch (const ReadError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}:{}: not valid YAML or JSON: {}", file,
                                                              e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace

Result<Plan> ParsePlan(const std::string& text, const std::string& file, const loadgen::VarMap& overrides) {
  return ParseText(text, file, overrides, false);
}

Result<Plan> ParseTomlPlan(const std::string& text, const std::string& file,
                           const loadgen::VarMap& overrides) {
  return ParseText(text, file, overrides, true);
}

Result<Plan> LoadPlanFile(const std::string& path, const loadgen::VarMap& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the plan file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return IsTomlFile(path) ? ParseTomlPlan(ss.str(), path, overrides) : ParsePlan(ss.str(), path, overrides);
}

}  // namespace meridian::plan
