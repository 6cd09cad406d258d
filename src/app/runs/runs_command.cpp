// `meridian runs list | show ID | abort ID | report ID --format json|csv|junit|text|html | logs ID STEP
// [--instance N] | compare A B [--format text|json] [--tolerance PCT]`.

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "core/duration.h"
#include "http/api.h"
#include "http/fetch.h"

namespace meridian::app {

int RunsMain(int argc, char** argv) {
  constexpr const char* kName = "meridian runs";
  std::string control = "http://127.0.0.1:7070", token_file, format = "text";
  std::string id, step, baseline, compare_format = "text";
  size_t limit = 20;
  int tolerance = 10;
  int instance = -1;
  CLI::App app{"List and inspect runs on a control plane, abort one, export its report, or compare two.",
               kName};
  app.get_formatter()->column_width(30);
  app.add_option("--control", control,
                 "Control plane URL(s), comma-separated for replicas (default: $MERIDIAN_CONTROL or "
                 "http://127.0.0.1:7070)")
      ->envname("MERIDIAN_CONTROL");
  app.add_option("--token-file", token_file, "File holding the token (default: $MERIDIAN_TOKEN)");
  app.require_subcommand(1);
  auto* list = app.add_subcommand("list", "Recent runs, newest first");
  list->add_option("--limit", limit, "How many")->default_val(20);
  auto* show = app.add_subcommand("show", "A run's state, regions and events");
  show->add_option("id", id, "Run ID")->required();
  auto* abort = app.add_subcommand("abort", "Abort a run (agents stop gracefully; the summary is kept)");
  abort->add_option("id", id, "Run ID")->required();
  auto* report = app.add_subcommand("report", "A finished run's report");
  report->add_option("id", id, "Run ID")->required();
  report
      ->add_option("--format", format,
                   "text, json, csv (per region per second), junit (thresholds as tests) or html (the "
                   "one-file report: charts and tables, opens offline)")
      ->default_val("text")
      ->check(CLI::IsMember({"text", "json", "csv", "junit", "html"}));
  auto* logs = app.add_subcommand("logs", "A command step's output (stdout and stderr, head and tail kept)");
  logs->add_option("id", id, "Run ID")->required();
  logs->add_option("step", step, "Step name")->required();
  logs->add_option("--instance", instance,
                   "Only this instance (default: every instance, each under a header)")
      ->check(CLI::NonNegativeNumber);
  auto* compare = app.add_subcommand(
      "compare",
      "Two ended runs side by side: per region and request name, throughput, error rate, p50/p95/p99 "
      "and the change; exit 99 when B regressed");
  compare->add_option("a", baseline, "The baseline run")->required();
  compare->add_option("b", id, "The run compared with it")->required();
  compare
      ->add_option("--format", compare_format,
                   "text, json, or html (one self-contained page: the table and both runs' charts overlaid)")
      ->default_val("text")
      ->check(CLI::IsMember({"text", "json", "html"}));
  compare
      ->add_option(
          "--tolerance", tolerance,
          "Percent: p95/p99 higher (and by at least 1 ms) or throughput lower by more is a regression")
      ->default_val(10)
      ->type_name("PCT")
      ->check(CLI::Range(0, 1000));
  SetValueNames(app, {{"--control", "URL"}, {"--token-file", "FILE"}});
  app.footer(
      "\nExamples:\n"
      "  meridian runs list\n"
      "  meridian runs show r-1a2b3c4d5e6f\n"
      "  meridian runs report r-1a2b3c4d5e6f --format junit > junit.xml\n"
      "  meridian runs report r-1a2b3c4d5e6f --format html > report.html\n"
      "  meridian runs logs r-1a2b3c4d5e6f ws-swarm --instance 1\n"
      "  meridian runs compare r-1a2b3c4d5e6f r-6f5e4d3c2b1a --tolerance 5\n"
      "\nExit status: 0 done, 1 the control plane refused or failed, 2 invalid arguments, 99 compare found a "
      "regression.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  std::string error;
  const std::string token = LoadCliToken(token_file, &error);
  if (!error.empty()) return Fail(kName, error, kExitUsage);
  auto client = http::BlockingClient::Create(control, token);
  if (!client.ok()) return Fail(kName, client.error().message, kExitUsage);
  // `timeout_ns`: a comparison as html merges both runs' stored reports again (seconds for long runs).
  auto call = [&](const std::string& method, const std::string& path,
                  int64_t timeout_ns = 10'000'000'000) -> Result<std::string> {
    auto r = client->Request(method, path, method == "POST" ? "{}" : "", timeout_ns);
    if (!r.ok()) return r.error();
    if (r->status >= 300) {
      const auto j = nlohmann::json::parse(r->body, nullptr, false);
      std::string msg = r->body;
      if (j.is_object() && j.contains("error") && j["error"].is_object())
        msg = j["error"].value("message", msg);
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{} {}: {} {}", method, path, r->status, msg));
    }
    return r->body;
  };
  if (list->parsed()) {
    auto body = call("GET", fmt::format("/v1/runs?limit={}", limit));
    if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    const auto j = nlohmann::json::parse(*body);
    fmt::print("{:<16} {:<20} {:<10} {:<25} {}\n", "ID", "NAME", "STATE", "CREATED", "REASON");
    for (const auto& r : j["runs"]) {
      fmt::print("{:<16} {:<20} {:<10} {:<25} {}\n", r.value("id", ""), r.value("name", ""),
                 r.value("state", ""), r.value("created", ""), r.value("reason", ""));
    }
    return kExitOk;
  }
  if (show->parsed()) {
    auto body = call("GET", "/v1/runs/" + id);
    if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    const auto j = nlohmann::json::parse(*body);
    fmt::print("run {} ({}) {}{}\n", j.value("id", ""), j.value("name", ""), j.value("state", ""),
               j.value("reason", "").empty() ? "" : ": " + j.value("reason", ""));
    fmt::print("created {}  start {}  exit code {}\n", j.value("created", ""),
               j["start_at"].is_string() ? j["start_at"].get<std::string>() : "-", j.value("exit_code", -1));
    if (j.contains("regions")) {
      for (const auto& r : j["regions"]) {
        fmt::print("  region {:<14} agents {}/{} ready, {} done, {} lost\n", r.value("name", ""),
                   r.value("ready", 0), r.value("agents", 0), r.value("done", 0), r.value("lost", 0));
      }
    }
    fmt::print("events:\n");
    for (const auto& e : j["events"]) {
      const int64_t at = e.value("at_ns", int64_t{0});
      fmt::print("  {}.{:03}  {:>10} -> {:<10} {}\n", at / kNanosPerSecond, (at / 1'000'000) % 1000,
                 e.value("from", ""), e.value("to", ""), e.value("detail", ""));
    }
    return kExitOk;
  }
  if (logs->parsed()) {
    // Step names are the plan's (ardere's have spaces and colons): one path segment each, percent-encoded.
    std::string path =
        fmt::format("/v1/runs/{}/steps/{}/log", http::EncodePathSegment(id), http::EncodePathSegment(step));
    if (instance >= 0) path += fmt::format("?instance={}", instance);
    auto body = call("GET", path);
    if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    fmt::print("{}", *body);
    return kExitOk;
  }
  if (abort->parsed()) {
    auto body = call("POST", fmt::format("/v1/runs/{}/abort", id));
    if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    fmt::print("run {}: abort requested\n", id);
    return kExitOk;
  }
  if (compare->parsed()) {
    constexpr int kExitRegressed = 99;  // as a run whose thresholds failed
    const std::string path =
        fmt::format("/v1/runs/{}/compare?baseline={}&tolerance={}", http::EncodePathSegment(id),
                    http::EncodePathSegment(baseline), tolerance);
    auto body = call("GET", path);
    if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    const auto j = nlohmann::json::parse(*body, nullptr, false);
    if (!j.is_object()) return Fail(kName, "compare: the control plane's answer is not JSON", kExitRunError);
    if (compare_format != "json") {
      body = call("GET", path + "&format=" + compare_format, 300'000'000'000);
      if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
    }
    fmt::print("{}", *body);
    if (!body->empty() && body->back() != '\n') fmt::print("\n");
    return j.value("regressions", 0) > 0 ? kExitRegressed : kExitOk;
  }
  auto body = call("GET", fmt::format("/v1/runs/{}/report?format={}", id, format));
  if (!body.ok()) return Fail(kName, body.error().message, kExitRunError);
  fmt::print("{}", *body);
  if (!body->empty() && body->back() != '\n') fmt::print("\n");
  return kExitOk;
}

}  // namespace meridian::app
