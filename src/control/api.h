#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// The control plane's routes for runs (runs_api.cpp) and agents (agents_api.cpp), added to the one route
// table (http/router.h) the control plane dispatches from; the lease routes come from envpool. Handlers run
// on the loop thread once the dispatcher checked the token, the method and the scope; they throw
// http::ApiError.

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/control.h"
#include "control/live.h"
#include "control/orchestrator.h"
#include "http/router.h"
#include "net/work_thread.h"
#include "store/store.h"

namespace meridian::control {

struct ApiContext {
  Orchestrator& orchestrator;
  store::Store& store;
  const ServerConfig& config;
  net::WorkThread& work;
  const std::string& key;  // the server's key: agents' secrets are kept as HMACs under it
  std::string data_dir;    // runs/ID/ holds each run's artefacts
  LiveFeeds& live;         // the dashboard's streams of live runs
  // What the runs list shows of an ended run beyond its row (tags, thresholds passed and failed), read once
  // from its stored summary: an ended run never changes.
  std::unordered_map<std::string, nlohmann::ordered_json> ended_facts = {};
};

// One row of a module's part of the table (http::Route with a handler that takes the context).
using ApiHandler = void (*)(ApiContext& api, http::Call& call);
struct ApiRoute {
  const char* method;
  const char* pattern;
  std::vector<std::string> scopes;
  ApiHandler handler;
  const char* summary;
  http::Body body = http::Body::kSmall;
};
Result<void> AddRoutes(http::Router& router, ApiContext& api, std::initializer_list<ApiRoute> rows);

Result<void> AddRunRoutes(http::Router& router, ApiContext& api);
Result<void> AddAgentRoutes(http::Router& router, ApiContext& api);

// The header an agent's secret travels in (lower-cased, as the server keys headers; one value only).
inline constexpr const char* kAgentSecretHeader = "meridian-agent-secret";

// The run's row, live or stored. Throws ApiError 404 for an unknown run, 503 when the store cannot read.
store::RunRow LoadRun(ApiContext& api, const std::string& id);

// An ended run's page tables from the store: {run, summary} (the summary as stored, without its text, CSV
// and timeline); null when the run or its summary cannot be read.
nlohmann::ordered_json FinalRunJson(ApiContext& api, const std::string& id);

}  // namespace meridian::control
