#pragma once
// The JSON API conventions shared by the control plane's route handlers (DESIGN §10): errors are
// {"error": {"code", "message", "field"}} with the right status, bodies are JSON objects parsed strictly
// (bounded nesting, no repeated keys), fields and query parameters are checked by name and range. Handlers
// throw ApiError; the router turns it into the response.

#include <fmt/format.h>

#include <cmath>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/json.h"
#include "core/result.h"
#include "http/server.h"

namespace meridian::http {

struct ApiError {
  int status;
  std::string code;
  std::string message;
  std::string field;
  std::vector<std::pair<std::string, std::string>> headers = {};  // e.g. Retry-After with a 423
};

// The store could not read or write (a full disk, an I/O error, a lock held too long): 503 with Retry-After,
// so that clients retry instead of taking a half-done answer. The one mapping of store errors for every
// route: the store's own message goes to the server log ("store: could not <what>: <message>"), never to the
// client, who reads "could not <what> (the store is unavailable; retry shortly)".
ApiError StoreUnavailable(const Error& store_error, std::string_view what);
// The same answer for a message that was logged where the error happened ("could not <what>", the lease
// core's).
ApiError StoreUnavailableAnswer(std::string_view message);

ServerResponse JsonResponse(int status, const nlohmann::ordered_json& body);
ServerResponse ErrorResponse(const ApiError& e);

// The one JSON writer (core/json.h), as http::JsonText too.
using ::meridian::JsonText;

// "/v1/runs/r-1/steps/a%20b/" -> {"v1", "runs", "r-1", "steps", "a b"}: split at '/' first, then each segment
// percent-decoded (so "%2F" stays inside its segment). A malformed escape ("%zz", "%4") is a 400.
std::vector<std::string> SplitPath(const std::string& path);

// One path segment for a URL: everything but RFC 3986's unreserved characters percent-encoded ("a b:c" ->
// "a%20b%3Ac"). What SplitPath decodes.
std::string EncodePathSegment(std::string_view segment);

constexpr size_t kMaxJsonDepth = 64;

// Parses a request body strictly: UTF-8 JSON, arrays and objects nested at most `max_depth` deep, no key
// twice in one object. The error names the problem (and the repeated key); the field is the key.
struct JsonProblem {
  std::string message;
  std::string field;
};
Result<nlohmann::json> ParseStrictJson(std::string_view text, size_t max_depth = kMaxJsonDepth,
                                       JsonProblem* problem = nullptr);

// The body as a JSON object ({} when empty; parsed off the loop when `req.parsed` is set); anything else is a
// 400 naming the problem.
nlohmann::json ParseBody(const ServerRequest& req);

// A 400 unknown_field naming the first key of `body` that is not `allowed`, and the allowed ones.
void CheckKeys(const nlohmann::json& body, std::initializer_list<const char*> allowed);

// body[name] as T: `fallback` when absent or null (a 400 naming the field when required), a 400 naming the
// field when it has the wrong type. Integers must be whole numbers within T's range (1.5 and -1 for an
// unsigned field are refused, not converted).
template <class T>
T Field(const nlohmann::json& body, const char* name, T fallback, bool required = false) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) throw ApiError{400, "missing_field", fmt::format("'{}' is required", name), name};
    return fallback;
  }
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    const auto refuse = [&] {
      return ApiError{400, "invalid_field",
                      fmt::format("'{}' must be a whole number from {} to {}", name,
                                  std::numeric_limits<T>::min(), std::numeric_limits<T>::max()),
                      name};
    };
    if (it->is_number_unsigned()) {
      const uint64_t v = it->template get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw refuse();
      return static_cast<T>(v);
    }
    if (it->is_number_integer()) {
      const int64_t v = it->template get<int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (v < 0) throw refuse();
        if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw refuse();
      } else {
        if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
            v > static_cast<int64_t>(std::numeric_limits<T>::max()))
          throw refuse();
      }
      return static_cast<T>(v);
    }
    if (it->is_number_float()) {  // 2.0 is the whole number 2 (as JSON Schema's integer); 1.5 is not
      const double d = it->template get<double>();
      if (std::trunc(d) != d || !(d >= static_cast<double>(std::numeric_limits<T>::min())) ||
          !(d <= static_cast<double>(std::numeric_limits<T>::max())))
        throw refuse();
      return static_cast<T>(d);
    }
    throw ApiError{400, "invalid_field", fmt::format("'{}' must be a whole number", name), name};
  } else {
    try {
      return it->template get<T>();
    } catch (const nlohmann::json::exception&) {
      throw ApiError{400, "invalid_field", fmt::format("'{}' has the wrong type", name), name};
    }
  }
}

// A whole-number query parameter within [min, max]: `fallback` when absent, a 400 naming the parameter when
// it is empty, not a number, or out of range (never clamped or wrapped).
int64_t QueryInt(const ServerRequest& req, const char* key, int64_t fallback, int64_t min, int64_t max);

}  // namespace meridian::http
