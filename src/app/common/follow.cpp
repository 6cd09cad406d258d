#include "app/common/follow.h"

#include <fmt/format.h>
#include <unistd.h>

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
#include "http/fetch.h"

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

Result<plan::Plan> LoadPlanInput(const PlanInput& in) {
  if (in.path.empty() == in.config.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "give a PLAN or --config config.json");
  }
  loadgen::VarMap overrides;
  std::string error;
  if (!ParseVars(in.vars, &overrides, &error)) return MakeError(ErrorCode::kInvalidArgument, error);
  if (!in.path.empty()) return plan::LoadPlanFile(in.path, overrides);
  auto imported = plan::ImportConstellation(in.config, in.script);
  if (!imported.ok()) return imported;
  for (const auto& [k, v] : overrides) imported->vars[k] = v;
  return imported;
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

bool Terminal(const std::string& s) {
  return s == "passed" || s == "failed" || s == "aborted" || s == "errored";
}

}  // namespace

int SubmitAndFollow(const std::string& control_url, const std::string& token, const std::string& plan_text,
                    const std::string& plan_file, const loadgen::VarMap& vars, const FollowOptions& o) {
  auto client = http::BlockingClient::Create(control_url, token);
  if (!client.ok()) return Fail(o.command, client.error().message, kExitUsage);
  json body = {{"plan", plan_text}, {"file", plan_file}, {"vars", json::object()}};
  for (const auto& [k, v] : vars) body["vars"][k] = v;
  auto created =
      client->Request("POST", "/v1/runs", body.dump(-1, ' ', false, json::error_handler_t::replace));
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
    for (const char* name :
         {"plan.yaml", "services.json", "RUN.txt", "summary.json", "metrics.csv", "FINISHED.txt"}) {
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
  }
  return exit_code;  // the control plane's: 0 passed, 99 failed, 1 aborted or errored
}

}  // namespace meridian::app
