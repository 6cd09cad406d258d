#pragma once
// The JSON API conventions shared by the control plane's route handlers (DESIGN §10): errors are
// {"error": {"code", "message", "field"}} with the right status, bodies are JSON objects, fields are checked
// by name. Handlers throw ApiError; the router turns it into the response.

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http/server.h"

namespace meridian::http {

struct ApiError {
  int status;
  std::string code;
  std::string message;
  std::string field;
  std::vector<std::pair<std::string, std::string>> headers = {};  // e.g. Retry-After with a 423
};

ServerResponse JsonResponse(int status, const nlohmann::ordered_json& body);
ServerResponse ErrorResponse(const ApiError& e);

// "/v1/runs/r-1/" -> {"v1", "runs", "r-1"}.
std::vector<std::string> SplitPath(const std::string& path);

// The body as a JSON object ({} when empty); anything else is a 400 naming the problem.
nlohmann::json ParseBody(const ServerRequest& req);

// body[name] as T: `fallback` when absent or null (a 400 naming the field when required), a 400 naming the
// field when it has the wrong type.
template <class T>
T Field(const nlohmann::json& body, const char* name, T fallback, bool required = false) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) throw ApiError{400, "missing_field", fmt::format("'{}' is required", name), name};
    return fallback;
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ApiError{400, "invalid_field", fmt::format("'{}' has the wrong type", name), name};
  }
}

}  // namespace meridian::http
