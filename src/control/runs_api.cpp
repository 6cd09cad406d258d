// The run routes: create, list, show, abort, the start instant, steps and their logs, summaries, metrics and
// artefacts.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "control/api.h"
#include "control/artefacts.h"
#include "control/compare.h"
#include "core/duration.h"
#include "core/json.h"
#include "dashboard/dashboard.h"
#include "http/api.h"
#include "stats/summary.h"

namespace meridian::control {

using http::ApiError;
using http::Call;
using http::Field;
using nlohmann::json;
using nlohmann::ordered_json;

store::RunRow LoadRun(ApiContext& api, const std::string& id) {
  if (const Run* run = api.orchestrator.Active(id)) return run->row;
  auto row = api.store.GetRun(id);
  if (!row.ok()) throw http::StoreUnavailable(row.error(), "read run " + id);
  if (!row->has_value()) throw ApiError{404, "not_found", fmt::format("no run '{}'", id), ""};
  return **row;
}

nlohmann::ordered_json FinalRunJson(ApiContext& api, const std::string& id) {
  auto row = api.store.GetRun(id);
  if (!row.ok() || !row->has_value()) return nullptr;
  return {
      {"run", RunRowJson(**row)},
      {"summary", ShownSummary(nlohmann::ordered_json::parse((*row)->summary_json, nullptr, false), false)}};
}

namespace {

// 503 while the work thread already has jobs queued: rebuilding an ended run takes seconds, and run creation
// waits behind those jobs.
void CheckWorkQueue(ApiContext& api) {
  constexpr size_t kMaxQueued = 4;
  if (api.work.queued() >= kMaxQueued) {
    throw ApiError{503,
                   "busy",
                   "the control plane is rebuilding other runs; try again shortly",
                   "",
                   {{"Retry-After", "2"}}};
  }
}

// 429 when the token drives as many runs as it may.
void CheckRunCap(ApiContext& api, const std::string& owner) {
  const size_t active = api.orchestrator.ActiveRunsOf(owner);
  if (active >= api.config.max_active_runs_per_token) {
    throw ApiError{
        429,
        "limit_reached",
        fmt::format("the token '{}' has {} active runs (max_active_runs_per_token: {}); wait for one to "
                    "end or abort one",
                    owner, active, api.config.max_active_runs_per_token),
        "",
        {{"Retry-After", "5"}}};
  }
}

void StartRun(ApiContext& api, plan::Plan plan, std::string yaml, const std::string& owner,
              std::vector<stats::MetricData> baseline, http::Responder& out) {
  if (plan.ready_timeout_ns > api.config.max_ready_timeout_ns) {
    throw ApiError{
        400, "invalid_plan",
        fmt::format("ready_timeout {} is longer than this server allows (max_ready_timeout {})",
                    FormatDuration(plan.ready_timeout_ns), FormatDuration(api.config.max_ready_timeout_ns)),
        "ready_timeout"};
  }
  CheckRunCap(api, owner);  // again: runs may have started while the plan was parsed
  auto run = api.orchestrator.Create(std::move(plan), std::move(yaml), owner, std::move(baseline));
  if (!run.ok()) throw http::StoreUnavailable(run.error(), "create the run");
  out.Send(http::JsonResponse(201, RunRowJson((*run)->row)));
}

// A plan whose thresholds compare with a baseline run: the baseline read here, its reports merged and each
// threshold's data measured on the work thread (seconds for a long run), then the run created on the loop.
void WithBaseline(ApiContext& api, plan::Plan plan, std::string yaml, const std::string& owner,
                  http::Responder& out) {
  auto stored = ReadBaselineRun(api.store, plan.baseline);
  if (!stored.ok()) {
    const Error& e = stored.error();
    if (e.code == ErrorCode::kNotFound) throw ApiError{400, "invalid_baseline", e.message, "baseline"};
    if (e.code == ErrorCode::kInvalidArgument)
      throw ApiError{400, "baseline_not_ended", e.message, "baseline"};
    throw http::StoreUnavailable(e, "read the baseline run");
  }
  struct Job {
    StoredRun stored;
    plan::Plan plan;
    std::string yaml;
    std::vector<stats::MetricData> data;
    std::string error;
  };
  auto job = std::make_shared<Job>();
  job->stored = std::move(stored).value();
  job->plan = std::move(plan);
  job->yaml = std::move(yaml);
  api.work.Run(
      [job] {
        try {
          auto base = RebuildRun(job->stored);
          if (base.ok()) job->data = BaselineFrom(**base, job->plan);
          if (!base.ok()) job->error = base.error().message;
        } catch (const std::exception& e) {
          job->error = e.what();
        }
        job->stored = {};  // the reports, freed on this thread
      },
      [&api, job, owner, out]() mutable {
        try {
          if (!job->error.empty()) {
            throw ApiError{500, "internal", "the baseline run could not be read: " + job->error, "baseline"};
          }
          StartRun(api, std::move(job->plan), std::move(job->yaml), owner, std::move(job->data), out);
        } catch (const ApiError& e) {
          out.Send(http::ErrorResponse(e));
        }
      });
}

// The plan is parsed and checked on the work thread; the run is created back on the loop.
void CreateRun(ApiContext& api, Call& c) {
  const json body = http::ParseBody(c.req);
  const std::string text = Field<std::string>(body, "plan", "", true);
  const std::string file = Field<std::string>(body, "file", "plan.yaml");
  loadgen::VarMap vars;
  if (body.contains("vars")) {
    if (!body["vars"].is_object()) throw ApiError{400, "invalid_field", "'vars' must be an object", "vars"};
    for (const auto& [k, v] : body["vars"].items()) {
      if (!v.is_string()) throw ApiError{400, "invalid_field", "vars values must be strings", "vars." + k};
      vars[k] = v.get<std::string>();
    }
  }
  CheckRunCap(api, c.caller.name);
  struct Parsed {
    std::optional<Result<plan::Plan>> plan;
    Result<void> runnable;
    std::string yaml;
  };
  auto parsed = std::make_shared<Parsed>();
  api.work.Run(
      [parsed, text, file, vars] {
        parsed->plan = plan::ParsePlan(text, file, vars);
        if (!parsed->plan->ok()) return;
        parsed->runnable = plan::CheckRunnable(**parsed->plan);
        if (parsed->runnable.ok()) parsed->yaml = plan::ToYaml(**parsed->plan);
      },
      [&api, parsed, owner = c.caller.name, out = c.out]() mutable {
        try {
          if (!parsed->plan->ok()) throw ApiError{400, "invalid_plan", parsed->plan->error().message, "plan"};
          if (!parsed->runnable.ok())
            throw ApiError{400, "not_runnable", parsed->runnable.error().message, "plan"};
          plan::Plan plan = std::move(*parsed->plan).value();
          if (plan.baseline.empty() || !UsesBaseline(plan)) {
            return StartRun(api, std::move(plan), std::move(parsed->yaml), owner, {}, out);
          }
          WithBaseline(api, std::move(plan), std::move(parsed->yaml), owner, out);
        } catch (const ApiError& e) {
          out.Send(http::ErrorResponse(e));
        }
      });
}

// The runs list's tags and thresholds ({passed, failed}) of a live run: its plan, its thresholds so far.
ordered_json LiveFacts(const Run& run) {
  uint32_t passed = 0, failed = 0;
  for (const auto& o : EvaluateThresholds(run, false)) ++(o.ok ? passed : failed);
  return {{"tags", run.plan.tags}, {"thresholds", {{"passed", passed}, {"failed", failed}}}};
}

// ...and of an ended run, from its stored summary (once: it never changes).
ordered_json EndedFacts(ApiContext& api, const store::RunRow& row) {
  auto it = api.ended_facts.find(row.id);
  if (it != api.ended_facts.end()) return it->second;
  if (api.ended_facts.size() >= 10'000) api.ended_facts.clear();
  const json summary = json::parse(row.summary_json, nullptr, false);
  ordered_json facts = {{"tags", json::object()}, {"thresholds", nullptr}};
  if (summary.is_object()) {
    if (summary.contains("tags")) facts["tags"] = summary["tags"];
    uint32_t passed = 0, failed = 0;
    for (const auto& t : summary.value("thresholds", json::array()))
      ++(t.value("ok", true) ? passed : failed);
    facts["thresholds"] = {{"passed", passed}, {"failed", failed}};
  }
  if (store::Terminal(row.state)) api.ended_facts[row.id] = facts;  // else it may still change
  return facts;
}

void ListRuns(ApiContext& api, Call& c) {
  const auto limit = static_cast<size_t>(http::QueryInt(c.req, "limit", 50, 1, 1000));
  auto rows = api.store.ListRuns(limit, c.req.Query("active") == "true");
  if (!rows.ok()) throw http::StoreUnavailable(rows.error(), "list runs");
  ordered_json list = ordered_json::array();
  for (const auto& r : *rows) {
    const Run* live = api.orchestrator.Active(r.id);
    ordered_json j = RunRowJson(live ? live->row : r);
    const ordered_json facts = live ? LiveFacts(*live) : EndedFacts(api, r);
    for (const auto& [k, v] : facts.items()) j[k] = v;
    list.push_back(std::move(j));
  }
  c.out.Send(http::JsonResponse(200, {{"runs", list}}));
}

void ShowRun(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  const Run* live = api.orchestrator.Active(id);
  ordered_json j = live ? RunJson(*live, api.orchestrator.clock().Wall()) : RunRowJson(LoadRun(api, id));
  auto events = api.store.Events(id);
  j["events"] = EventsJson(events.ok() ? *events : std::vector<store::EventRow>{});
  c.out.Send(http::JsonResponse(200, j));
}

void AbortRun(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  const store::RunRow row = LoadRun(api, id);
  if (store::Terminal(row.state)) {
    c.out.Send(http::JsonResponse(
        409, {{"error",
               {{"code", "finished"},
                {"message", std::string("the run already ended: ") + store::RunStateName(row.state)}}}}));
    return;
  }
  Run* run = api.orchestrator.Active(id);
  if (!run) throw ApiError{404, "not_found", fmt::format("no active run '{}'", id), ""};
  api.orchestrator.Abort(*run, c.caller.name);
  c.out.Send(http::JsonResponse(202, RunRowJson(run->row)));
}

void StartInstant(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  const store::RunRow row = LoadRun(api, id);
  Run* run = api.orchestrator.Active(id);
  if (row.start_at_ns) {
    c.out.Send(http::JsonResponse(200, run ? api.orchestrator.StartJson(*run)
                                           : ordered_json{{"run", id},
                                                          {"state", store::RunStateName(row.state)},
                                                          {"start_at_ns", row.start_at_ns}}));
    return;
  }
  if (store::Terminal(row.state)) {
    c.out.Send(http::JsonResponse(
        409, {{"run", id}, {"state", store::RunStateName(row.state)}, {"reason", row.reason}}));
    return;
  }
  const std::string wait = c.req.Query("wait");
  auto d = wait.empty() ? Result<int64_t>(0) : ParseDuration(wait);
  if (!d.ok()) throw ApiError{400, "invalid_query", "wait: " + d.error().message, "wait"};
  if (*d <= 0 || !run) {
    c.out.Send(http::JsonResponse(404, run ? api.orchestrator.StartJson(*run)
                                           : ordered_json{{"run", id},
                                                          {"state", store::RunStateName(row.state)},
                                                          {"server_ns", api.orchestrator.clock().Wall()}}));
    return;
  }
  api.orchestrator.WaitForStart(*run, c.out, *d);
}

void ListSteps(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  (void)LoadRun(api, id);
  auto rows = api.store.StepInstances(id, false);
  if (!rows.ok()) throw http::StoreUnavailable(rows.error(), "read the step instances");
  ordered_json list = ordered_json::array();
  for (const auto& r : *rows) list.push_back(ordered_json::parse(r.result_json, nullptr, false));
  c.out.Send(http::JsonResponse(200, {{"run", id}, {"steps", list}}));
}

// Text: the instance's log, or every instance's, each under a header.
void StepLog(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  const std::string& step = c.Param("step");
  const int64_t instance = http::QueryInt(c.req, "instance", -1, 0, UINT32_MAX);
  const store::RunRow row = LoadRun(api, id);
  auto rows = api.store.StepInstances(id, true);
  if (!rows.ok()) throw http::StoreUnavailable(rows.error(), "read the step instances");
  std::string text;
  bool step_known = false, found = false;
  for (const auto& r : *rows) {
    if (r.step != step) continue;
    step_known = true;
    if (instance >= 0 && r.instance != static_cast<uint32_t>(instance)) continue;
    found = true;
    if (instance < 0) text += fmt::format("==> {}#{} ({}) <==\n", r.step, r.instance, r.agent_id);
    text += r.log;
    if (instance < 0 && !r.log.empty() && r.log.back() != '\n') text += "\n";
  }
  if (!found) {
    auto plan = plan::ParsePlan(row.plan_yaml, "plan.yaml");
    const bool in_plan = plan.ok() && std::any_of(plan->steps.begin(), plan->steps.end(),
                                                  [&](const auto& s) { return s.name == step; });
    throw ApiError{
        404, "not_found",
        !in_plan ? fmt::format("the run has no step '{}'", step)
        : step_known
            ? fmt::format("step '{}' has no instance {}", step, instance)
            : fmt::format("step '{}' has not reported yet (logs arrive when its agent is done)", step),
        ""};
  }
  c.out.Send(http::ServerResponse{200, "text/plain; charset=utf-8", std::move(text), {}});
}

// A file of the run's folder (runs/ID/NAME), or nothing before the run ended.
std::optional<std::string> ReadRunFile(ApiContext& api, const std::string& id, const std::string& name) {
  std::ifstream in(std::filesystem::path(api.data_dir) / "runs" / id / name, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// report.html of a run: a live one as far as it got (its tables as the live feed's `run` event has them),
// an ended one restored from the store (without its agents table: the page takes it from the live tables).
std::string ReportHtmlOf(ApiContext& api, const std::string& id) {
  auto events = api.store.Events(id);
  if (!events.ok()) throw http::StoreUnavailable(events.error(), "read run " + id);
  const int64_t now = api.orchestrator.clock().Wall();
  if (Run* run = api.orchestrator.Active(id)) {
    return ReportHtml(*run, LiveRunJson(*run, api.orchestrator), EventsJson(*events), now);
  }
  const store::RunRow row = LoadRun(api, id);
  // The page written when the run ended (no history to merge again); built afresh only when it is gone.
  if (auto page = ReadRunFile(api, row.id, "report.html")) return *std::move(page);
  auto run = RestoreRun(api.store, row);
  if (!run.ok()) throw http::StoreUnavailable(run.error(), "read run " + id);
  return ReportHtml(**run, FinalRunJson(api, id), EventsJson(*events), now);
}

// A one-file page (report, comparison): its policy lets it make no request; a download, not a page of ours.
void SendHtmlPage(http::Responder& out, std::string page, const std::string& name) {
  out.Send(
      http::ServerResponse{200,
                           "text/html; charset=utf-8",
                           std::move(page),
                           {{"Content-Security-Policy", std::string(dashboard::ReportPolicy())},
                            {"X-Content-Type-Options", "nosniff"},
                            {"Content-Disposition", fmt::format("attachment; filename=\"{}.html\"", name)}}});
}

void Report(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  const store::RunRow row = LoadRun(api, id);
  std::string format = c.req.Query("format");
  if (format.empty()) format = "json";
  if (format == "html") {
    SendHtmlPage(c.out, ReportHtmlOf(api, id), id);
    return;
  }
  json summary;
  if (!row.summary_json.empty()) {
    summary = json::parse(row.summary_json, nullptr, false);
  } else {
    const Run* run = api.orchestrator.Active(id);
    if (!run) throw ApiError{404, "no_summary", "the run has no summary", ""};
    auto agents = api.store.ListAgents();
    Summary s = BuildSummary(*run, agents.ok() ? *agents : std::vector<store::AgentRow>{});
    summary = json::parse(JsonText(s.json));
    summary["text"] = s.text;
    summary["metrics_csv"] = s.csv;
    summary["partial"] = true;
  }
  http::ServerResponse r;
  if (format == "json") {
    json copy = summary;
    copy.erase("text");
    copy.erase("metrics_csv");
    r.body = JsonText(copy, 2);
  } else if (format == "text") {
    r.content_type = "text/plain; charset=utf-8";
    r.body = summary.value("text", "");
  } else if (format == "csv") {
    r.content_type = "text/csv";
    r.body = summary.value("metrics_csv", "");
  } else if (format == "junit") {
    r.content_type = "application/xml";
    r.body = JunitXml(row, summary);
  } else {
    throw ApiError{400, "invalid_query", "format: allowed: json, text, csv, junit, html", "format"};
  }
  c.out.Send(std::move(r));
}

// Run {id} (B) against ?baseline=A: both ended (their stored summaries); ?format=json|text, ?tolerance=PCT.
void Compare(ApiContext& api, Call& c) {
  const std::string baseline = c.req.Query("baseline");
  if (baseline.empty())
    throw ApiError{400, "invalid_query", "baseline: the run to compare with is required", "baseline"};
  auto ended = [&](const std::string& id) {
    const store::RunRow row = LoadRun(api, id);
    if (!store::Terminal(row.state)) {
      throw ApiError{409, "not_ended", fmt::format("run '{}' has not ended: compare ended runs", id), ""};
    }
    RunSummary r{RunRowJson(row), ordered_json::parse(row.summary_json, nullptr, false)};
    if (!r.summary.is_object()) {
      throw ApiError{409, "no_summary",
                     fmt::format("run '{}' ended ({}) without a summary: nothing to compare", id,
                                 store::RunStateName(row.state)),
                     ""};
    }
    return r;
  };
  const RunSummary a = ended(baseline), b = ended(c.Param("id"));
  const std::string format = c.req.HasQuery("format") ? c.req.Query("format") : "json";
  if (format != "json" && format != "text" && format != "html") {
    throw ApiError{400, "invalid_query", "format: allowed: json, text, html", "format"};
  }
  CompareOptions options;
  options.tolerance_pct = static_cast<double>(http::QueryInt(c.req, "tolerance", 10, 0, 1000));
  const ordered_json result = CompareJson(a, b, options);
  if (format == "json") {
    c.out.Send(http::JsonResponse(200, result));
  } else if (format == "text") {
    c.out.Send(http::ServerResponse{200, "text/plain; charset=utf-8", CompareText(result), {}});
  } else {
    // Both histories, merged again from the stored reports: read here, merged on the work thread.
    CheckWorkQueue(api);
    auto read = [&](const std::string& id) {
      auto stored = ReadStoredRun(api.store, LoadRun(api, id));
      if (!stored.ok()) throw http::StoreUnavailable(stored.error(), "read run " + id);
      return std::move(stored).value();
    };
    struct Job {
      StoredRun a, b;
      std::string page;
      std::string error;
    };
    auto job = std::make_shared<Job>(Job{read(baseline), read(c.Param("id")), "", ""});
    api.work.Run(
        [job, result, now = api.orchestrator.clock().Wall()] {
          try {
            auto run_a = RebuildRun(job->a);
            auto run_b = RebuildRun(job->b);
            if (!run_a.ok() || !run_b.ok()) {
              job->error = (run_a.ok() ? run_b.error() : run_a.error()).message;
            } else {
              job->page = CompareHtml(result, **run_a, **run_b, now);
            }
          } catch (const std::exception& e) {
            job->error = e.what();
          }
          job->a = job->b = {};  // the reports, freed on this thread
        },
        [job, name = fmt::format("{}-vs-{}", baseline, c.Param("id")), out = c.out]() mutable {
          if (!job->error.empty())
            return out.Send(http::ErrorResponse(ApiError{500, "internal", job->error, ""}));
          SendHtmlPage(out, std::move(job->page), name);
        });
  }
}

// Per region and second while the run is live; the summary's CSV once it ended.
void Metrics(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  if (const Run* run = api.orchestrator.Active(id)) {
    ordered_json series = ordered_json::object();
    for (const auto& [region, per_second] : run->region_seconds) {
      ordered_json points = ordered_json::array();
      for (const auto& [s, snap] : per_second) {
        const auto pt = stats::MakeTimelinePoint(snap);
        points.push_back({{"t", s},
                          {"requests", pt.requests},
                          {"failed", pt.failures},
                          {"p50_ms", pt.p50_ns / 1e6},
                          {"p95_ms", pt.p95_ns / 1e6},
                          {"p99_ms", pt.p99_ns / 1e6},
                          {"vus", pt.vus_active}});
      }
      series[region] = points;
    }
    c.out.Send(http::JsonResponse(200, {{"run", id}, {"regions", series}}));
    return;
  }
  const store::RunRow row = LoadRun(api, id);
  json summary = json::parse(row.summary_json.empty() ? "{}" : row.summary_json, nullptr, false);
  c.out.Send(http::JsonResponse(200, {{"run", id}, {"csv", summary.value("metrics_csv", "")}}));
}

// How many seconds before a reconnecting viewer's Last-Event-ID are sent again: reports of other agents may
// have changed them while it was away.
constexpr int64_t kResendSeconds = 5;

// The dashboard's live feed (control/live.h): Server-Sent Events while the run lasts; for an ended run, its
// whole history and the `end` event at once.
// An ended run's feed: its history, then `end`, then the stream closes.
void SendEndedFeed(http::Responder& out, const SecondsText& history, const std::string& end) {
  std::string body = ": meridian live feed\n\n";
  if (history.last >= 0) body += SseEvent("seconds", history.last, history.json);
  body += SseEvent("end", -1, end);
  http::StreamWriter stream = out.StartStream({200, "text/event-stream; charset=utf-8", "", {}});
  stream.Write(body);
  stream.End();
}

void Live(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  int64_t after = -1;
  if (const std::string last = c.req.Header("last-event-id"); !last.empty()) {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), v);
    if (ec != std::errc() || end != last.data() + last.size() || v < 0) {
      throw ApiError{400, "bad_request", "Last-Event-ID: expected the second of the last event received", ""};
    }
    after = std::max<int64_t>(-1, v - kResendSeconds);
  }
  const http::ServerResponse head{200, "text/event-stream; charset=utf-8", "", {}};
  if (Run* run = api.orchestrator.Active(id)) {
    const LiveFilter filter = LiveFilterFrom(c.req, *run);
    http::StreamWriter out = c.out.StartStream(head);
    try {
      api.live.Watch(*run, filter, after, out);
    } catch (...) {
      out.End();  // the head is out: ending the stream is the only answer left (the page reconnects)
      throw;
    }
    return;
  }
  // An ended run: its whole history, then `end`. Unfiltered, from the file written when it ended; filtered
  // (or a run that ended before such files were written), merged again from its stored reports.
  const store::RunRow row = LoadRun(api, id);
  if (std::optional<std::string> file =
          IsFiltered(c.req) ? std::nullopt : ReadRunFile(api, row.id, kHistoryFile);
      file && file->size() >= 2) {
    const size_t at = file->rfind("{\"t\":");
    int64_t last = -1;
    if (at != std::string::npos) std::from_chars(file->data() + at + 5, file->data() + file->size(), last);
    SendEndedFeed(c.out, {*std::move(file), last}, JsonText(FinalRunJson(api, id)));
    return;
  }
  // Merging every stored report again takes seconds for a long run: read here, merged on the work thread.
  CheckWorkQueue(api);
  auto stored = ReadStoredRun(api.store, row);
  if (!stored.ok()) throw http::StoreUnavailable(stored.error(), "read run " + id);
  struct Job {
    StoredRun stored;
    http::ServerRequest req;
    SecondsText history;
    std::optional<ApiError> error;
  };
  auto job = std::make_shared<Job>();
  job->stored = std::move(stored).value();
  job->req.query = c.req.query;
  api.work.Run(
      [job, after] {
        try {
          auto run = RebuildRun(job->stored);
          if (!run.ok()) {
            throw ApiError{500, "internal", "run " + job->stored.row.id + ": " + run.error().message, ""};
          }
          job->history = SecondsAfter(**run, LiveFilterFrom(job->req, **run), after);
        } catch (const ApiError& e) {
          job->error = e;
        } catch (const std::exception& e) {
          job->error = ApiError{500, "internal", e.what(), ""};
        }
        job->stored = {};  // the reports, freed on this thread
      },
      [&api, job, id, out = c.out]() mutable {
        if (job->error) return out.Send(http::ErrorResponse(*job->error));
        SendEndedFeed(out, job->history, JsonText(FinalRunJson(api, id)));
      });
}

// The plan as the run was given it: normalised, every default spelled out, its scripts bundled.
void PlanText(ApiContext& api, Call& c) {
  const store::RunRow row = LoadRun(api, c.Param("id"));
  c.out.Send(http::ServerResponse{200, "text/yaml; charset=utf-8", row.plan_yaml, {}});
}

void Artefact(ApiContext& api, Call& c) {
  const store::RunRow row = LoadRun(api, c.Param("id"));
  const std::string& name = c.Param("name");
  const auto& names = ArtefactNames();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : " ") + n;
    throw ApiError{404, "not_found", "artefacts: " + list, ""};
  }
  std::optional<std::string> body = ReadRunFile(api, row.id, name);
  if (!body) throw ApiError{404, "not_found", fmt::format("{} is written when the run ends", name), ""};
  c.out.Send(http::ServerResponse{
      200, name.ends_with(".json") ? "application/json" : "text/plain; charset=utf-8", *std::move(body), {}});
}

}  // namespace

Result<void> AddRoutes(http::Router& router, ApiContext& api, std::initializer_list<ApiRoute> rows) {
  for (const auto& r : rows) {
    http::Route route;
    route.method = r.method;
    route.pattern = r.pattern;
    route.scopes = r.scopes;
    route.handler = [&api, h = r.handler](Call& c) { h(api, c); };
    route.summary = r.summary;
    route.body = r.body;
    if (auto added = router.Add(std::move(route)); !added.ok()) return added;
  }
  return {};
}

Result<void> AddRunRoutes(http::Router& router, ApiContext& api) {
  using http::Body;
  return AddRoutes(
      router, api,
      {
          {"POST", "/v1/runs", {"runs:write"}, CreateRun, "create a run from a plan", Body::kLargeJson},
          {"GET", "/v1/runs", {"runs:read"}, ListRuns, "recent runs"},
          {"GET", "/v1/runs/{id}", {"runs:read"}, ShowRun, "a run's state, progress and events"},
          {"POST", "/v1/runs/{id}/abort", {"runs:write"}, AbortRun, "abort a run"},
          {"GET",
           "/v1/runs/{id}/report",
           {"runs:read"},
           Report,
           "the summary as json, text, csv, junit or html (the one-file report)"},
          {"GET", "/v1/runs/{id}/summary", {"runs:read"}, Report, "the same as report"},
          {"GET", "/v1/runs/{id}/metrics", {"runs:read"}, Metrics, "per region and second"},
          {"GET", "/v1/runs/{id}/plan", {"runs:read"}, PlanText, "the plan as run (normalised YAML)"},
          {"GET", "/v1/runs/{id}/live", {"runs:read"}, Live, "the dashboard's feed (Server-Sent Events)"},
          {"GET",
           "/v1/runs/{id}/compare",
           {"runs:read"},
           Compare,
           "the run against ?baseline=RUN (both ended)"},
          {"GET", "/v1/runs/{id}/start", {"runs:read", "agent"}, StartInstant, "the common start instant"},
          {"GET", "/v1/runs/{id}/artefacts/{name}", {"runs:read"}, Artefact, "one of the run's files"},
          {"GET", "/v1/runs/{id}/steps", {"runs:read"}, ListSteps, "every reported step instance"},
          {"GET", "/v1/runs/{id}/steps/{step}/log", {"runs:read"}, StepLog, "a step's output"},
      });
}

}  // namespace meridian::control
