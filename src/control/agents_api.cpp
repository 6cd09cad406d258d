// The agent routes: registration, the clock, the work poll, and an agent's part of a run (ready, heartbeat,
// interval reports, done).

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "control/api.h"
#include "control/authenticator.h"
#include "core/duration.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "http/api.h"
#include "stats/wire.h"

namespace meridian::control {

using http::ApiError;
using http::Call;
using http::Field;
using nlohmann::json;
using nlohmann::ordered_json;
using store::AssignmentState;

namespace {

// A registered agent, proven by the secret it was issued at its first registration (a token with the agent
// scope is not enough to act as another agent). Seen now.
AgentLive& KnownAgent(ApiContext& api, const std::string& id, const http::ServerRequest& req) {
  auto& agents = api.orchestrator.agents();
  auto it = agents.find(id);
  if (it == agents.end())
    throw ApiError{404, "unknown_agent", fmt::format("no agent '{}': register again", id), ""};
  if (!AgentSecretMatches(api.key, it->second.row.secret_hash, req.Header(kAgentSecretHeader))) {
    throw ApiError{
        403, "agent_secret",
        fmt::format("the request does not carry agent {}'s secret (the {} header it was given when it "
                    "registered)",
                    id, "Meridian-Agent-Secret"),
        ""};
  }
  it->second.last_seen_mono = api.orchestrator.clock().Mono();
  return it->second;
}

// An agent's part of a live run: its run (409 `finished` with stop once the run ended) and assignment (403).
struct Part {
  Run& run;
  store::AssignmentRow& assignment;
};
std::optional<Part> AgentPart(ApiContext& api, Call& c) {
  const std::string& run_id = c.Param("run");
  const std::string& agent_id = c.Param("agent");
  KnownAgent(api, agent_id, c.req);
  Run* run = api.orchestrator.Active(run_id);
  if (!run) {
    const store::RunRow row = LoadRun(api, run_id);
    c.out.Send(http::JsonResponse(
        409, {{"error",
               {{"code", "finished"},
                {"message", std::string("the run ended: ") + store::RunStateName(row.state)}}},
              {"stop", true}}));
    return std::nullopt;
  }
  store::AssignmentRow* a = run->Assignment(agent_id);
  if (!a) throw ApiError{403, "not_assigned", "the agent is not part of this run", ""};
  return Part{*run, *a};
}

void ListAgents(ApiContext& api, Call& c) {
  ordered_json list = ordered_json::array();
  const int64_t now = api.orchestrator.clock().Mono();
  for (const auto& [id, a] : api.orchestrator.agents()) {
    list.push_back({{"id", id},
                    {"name", a.row.name},
                    {"region", a.row.region},
                    {"version", a.row.version},
                    {"capacity", a.row.capacity},
                    {"run", a.run_id},
                    {"seen_ago_ms", a.last_seen_mono ? (now - a.last_seen_mono) / 1'000'000 : -1},
                    {"clock_offset_ms", a.row.clock_offset_ns / 1e6}});
  }
  c.out.Send(http::JsonResponse(200, {{"agents", list}}));
}

// The same id again only with its secret; otherwise a new id and a new secret (shown once).
void Register(ApiContext& api, Call& c) {
  const json body = http::ParseBody(c.req);
  store::AgentRow row;
  row.id = Field<std::string>(body, "id", "");
  row.name = Field<std::string>(body, "name", "", true);
  row.region = Field<std::string>(body, "region", "", true);
  row.version = Field<std::string>(body, "version", "");
  row.capacity = Field<uint32_t>(body, "capacity", 1);
  row.clock_offset_ns = Field<int64_t>(body, "clock_offset_ns", 0);
  row.rtt_ns = Field<int64_t>(body, "rtt_ns", 0);
  if (row.region.empty() || row.region.size() > 63) {
    throw ApiError{400, "invalid_field", "'region' must be 1 to 63 characters", "region"};
  }
  auto& agents = api.orchestrator.agents();
  std::string secret;
  auto known = row.id.empty() ? agents.end() : agents.find(row.id);
  if (known != agents.end() && !known->second.row.secret_hash.empty()) {
    if (!AgentSecretMatches(api.key, known->second.row.secret_hash, c.req.Header(kAgentSecretHeader))) {
      throw ApiError{403, "agent_secret",
                     fmt::format("agent {} is registered with a secret this request does not carry; register "
                                 "without an id to get a new one",
                                 row.id),
                     "id"};
    }
    row.secret_hash = known->second.row.secret_hash;
  } else {
    if (agents.size() >= api.config.max_agents) api.orchestrator.ForgetIdleAgents(/*all_idle=*/true);
    if (agents.size() >= api.config.max_agents) {
      throw ApiError{429,
                     "limit_reached",
                     fmt::format("{} agents are registered (max_agents: {}) and none is idle to forget",
                                 agents.size(), api.config.max_agents),
                     "",
                     {{"Retry-After", "30"}}};
    }
    row.id = NewId(IdKind::kAgent);
    secret = NewToken();
    row.secret_hash = KeyedHash(api.key, secret);
  }
  const Clock& clock = api.orchestrator.clock();
  row.registered_ns = clock.Wall();
  if (auto r = api.store.PutAgent(row); !r.ok())
    throw http::StoreUnavailable(r.error(), "register the agent");
  AgentLive& live = agents[row.id];
  live.row = row;
  live.last_seen_mono = clock.Mono();
  LogInfo("agent {} registered: {} in {} (capacity {}, clock offset {})", row.id, row.name, row.region,
          row.capacity, FormatDuration(row.clock_offset_ns));
  ordered_json reply = {
      {"id", row.id}, {"server_ns", clock.Wall()}, {"long_poll_ms", api.config.long_poll_ns / 1'000'000}};
  if (!secret.empty()) reply["secret"] = secret;  // only its keyed hash is kept
  c.out.Send(http::JsonResponse(201, reply));
}

void Time(ApiContext& api, Call& c) {
  c.out.Send(http::JsonResponse(
      200, {{"server_ns", c.req.received_wall_ns}, {"sent_ns", api.orchestrator.clock().Wall()}}));
}

void Work(ApiContext& api, Call& c) {
  AgentLive& live = KnownAgent(api, c.Param("id"), c.req);
  api.orchestrator.PollWork(live, c.out);
}

// An agent leaving (`meridian agent drain`, a stopped pod): forgotten at once rather than after
// forget_agents_after, so that no run is assigned to it. Refused while it has a part in a run or a poll held.
void Deregister(ApiContext& api, Call& c) {
  const std::string& id = c.Param("id");
  AgentLive& live = KnownAgent(api, id, c.req);
  if (!live.run_id.empty() || live.poll.alive()) {
    throw ApiError{409,
                   "agent_busy",
                   live.run_id.empty() ? fmt::format("agent {} has a work poll held", id)
                                       : fmt::format("agent {} has a part in run {}", id, live.run_id),
                   "",
                   {{"Retry-After", "1"}}};
  }
  if (auto r = api.store.DeleteAgent(id); !r.ok())
    throw http::StoreUnavailable(r.error(), "forget the agent");
  api.orchestrator.agents().erase(id);
  LogInfo("agent {} left (deregistered)", id);
  c.out.Send(http::JsonResponse(200, {{"id", id}, {"deregistered", true}}));
}

void Ready(ApiContext& api, Call& c) {
  auto part = AgentPart(api, c);
  if (!part) return;
  const json body = http::ParseBody(c.req);
  const std::string error = Field<std::string>(body, "error", "");
  // The agent measures its clock again before each run: keep the measure this run starts with.
  if (body.contains("clock_offset_ns") && body.contains("rtt_ns")) {
    auto& agents = api.orchestrator.agents();
    if (auto it = agents.find(part->assignment.agent_id); it != agents.end()) {
      store::AgentRow row = it->second.row;
      row.clock_offset_ns = Field<int64_t>(body, "clock_offset_ns", row.clock_offset_ns);
      row.rtt_ns = Field<int64_t>(body, "rtt_ns", row.rtt_ns);
      if (row.clock_offset_ns != it->second.row.clock_offset_ns || row.rtt_ns != it->second.row.rtt_ns) {
        if (auto r = api.store.PutAgent(row); !r.ok())
          throw http::StoreUnavailable(r.error(), "store the agent's clock");
        it->second.row = row;
      }
    }
  }
  api.orchestrator.AgentReady(part->run, part->assignment, error);
  c.out.Send(http::JsonResponse(
      200, error.empty() ? api.orchestrator.StartJson(part->run) : ordered_json{{"stop", true}}));
}

void Heartbeat(ApiContext& api, Call& c) {
  auto part = AgentPart(api, c);
  if (!part) return;
  c.out.Send(http::JsonResponse(
      200, {{"state", store::RunStateName(part->run.row.state)}, {"stop", part->run.stop}}));
}

// One binary interval snapshot, stored once per (run, agent, seq) and aggregated.
void Report(ApiContext& api, Call& c) {
  auto part = AgentPart(api, c);
  if (!part) return;
  const std::string& seq_text = c.Param("seq");
  char* end = nullptr;
  const long long seq = std::strtoll(seq_text.c_str(), &end, 10);
  if (seq_text.empty() || *end != '\0' || seq < 0)
    throw ApiError{400, "invalid_path", "the report seq must be a number >= 0", "seq"};
  Run& run = part->run;
  store::AssignmentRow& a = part->assignment;
  auto snap = stats::DecodeSnapshot(c.req.body);
  if (!snap.ok()) throw ApiError{400, "invalid_report", snap.error().message, "body"};
  if (a.state == AssignmentState::kLost) throw ApiError{409, "lost", "the agent was declared lost", ""};
  const int64_t started_ns = http::QueryInt(c.req, "started_ns", 0, 0, INT64_MAX);
  if (auto r = api.orchestrator.AgentReport(run, a, seq, c.req.body, *snap, started_ns); !r.ok())
    throw http::StoreUnavailable(r.error(), "store the report");
  c.out.Send(http::JsonResponse(200, {{"acked", seq}, {"stop", run.stop}}));
}

// The step instances of an agent's done, each checked (the field is named) against the run's plan.
std::vector<store::StepInstanceRow> StepRows(const Run& run, const store::AssignmentRow& a,
                                             const json& steps) {
  if (!steps.is_array()) throw ApiError{400, "invalid_field", "'steps' must be an array", "steps"};
  std::vector<store::StepInstanceRow> rows;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& s = steps[i];
    const std::string where = fmt::format("steps[{}]", i);
    if (!s.is_object() || !s.contains("step") || !s["step"].is_string() || !s.contains("instance") ||
        !s["instance"].is_number_unsigned() || !s.contains("state") || !s["state"].is_string()) {
      throw ApiError{400, "invalid_field",
                     where + " needs step (string), instance (number) and state (string)", where};
    }
    const std::string step = s["step"].get<std::string>();
    if (std::none_of(run.plan.steps.begin(), run.plan.steps.end(),
                     [&](const auto& p) { return p.name == step; })) {
      throw ApiError{400, "invalid_field", fmt::format("{}.step: the plan has no step '{}'", where, step),
                     where + ".step"};
    }
    json result = s;
    result.erase("log");
    result["agent"] = a.agent_id;
    result["region"] = a.region;
    rows.push_back(store::StepInstanceRow{
        step, s["instance"].get<uint32_t>(), a.agent_id, JsonText(result),
        s.contains("log") && s["log"].is_string() ? s["log"].get<std::string>() : std::string()});
  }
  return rows;
}

// Checked whole before anything is applied: a 400 changes nothing.
void Done(ApiContext& api, Call& c) {
  auto part = AgentPart(api, c);
  if (!part) return;
  const json body = http::ParseBody(c.req);
  AgentDoneReport report;
  report.last_seq = Field<int64_t>(body, "last_seq", -1, true);
  report.requests = Field<uint64_t>(body, "requests", 0);
  report.connections = Field<uint64_t>(body, "connections", 0);
  report.retries = Field<uint64_t>(body, "retries", 0);
  report.started_ns = Field<int64_t>(body, "started_ns", 0);
  report.load_ended_ns = Field<int64_t>(body, "load_ended_ns", 0);
  if (body.contains("steps")) report.steps = StepRows(part->run, part->assignment, body["steps"]);
  const int64_t last_seq = report.last_seq;
  auto acked = api.orchestrator.AgentDone(part->run, part->assignment, std::move(report));
  if (!acked.ok()) throw http::StoreUnavailable(acked.error(), "store the step instances");
  c.out.Send(http::JsonResponse(200, {{"acked", *acked}, {"complete", *acked >= last_seq}}));
}

}  // namespace

Result<void> AddAgentRoutes(http::Router& router, ApiContext& api) {
  using http::Body;
  return AddRoutes(
      router, api,
      {
          {"GET", "/v1/agents", {"runs:read"}, ListAgents, "registered agents"},
          {"POST", "/v1/agents", {"agent"}, Register, "register an agent"},
          {"GET", "/v1/time", {"agent"}, Time, "the server's clock"},
          {"GET", "/v1/agents/{id}/work", {"agent"}, Work, "long poll for work"},
          {"DELETE", "/v1/agents/{id}", {"agent"}, Deregister, "an agent leaving (drain)"},
          {"POST", "/v1/runs/{run}/agents/{agent}/ready", {"agent"}, Ready, "prepared (or could not)"},
          {"POST", "/v1/runs/{run}/agents/{agent}/heartbeat", {"agent"}, Heartbeat, "alive; stop?"},
          {"PUT",
           "/v1/runs/{run}/agents/{agent}/reports/{seq}",
           {"agent"},
           Report,
           "one interval report",
           Body::kLarge},
          {"POST",
           "/v1/runs/{run}/agents/{agent}/done",
           {"agent"},
           Done,
           "the agent's part ended",
           Body::kLargeJson},
      });
}

}  // namespace meridian::control
