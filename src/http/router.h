#pragma once
// Routes are data (Envoy's admin handler table is the model): one table of {method, path pattern, scopes,
// handler, summary} for everything the control plane serves — runs, agents and leases. The dispatcher finds a
// request's route once: no route has its path → 404, routes have the path but not the method → 405 naming the
// allowed ones (an `Allow` header), the caller holds none of the route's scopes → 403 naming them; only then
// does the handler run, with the caller it is given and the path's parameters by name.
//
// Patterns are "/v1/runs/{id}/steps/{step}/log": literal segments and `{name}` parameters, each one whole
// percent-decoded path segment (http::SplitPath). Where two patterns match one path, the one with a literal
// at the first segment where they differ wins ("/v1/environments/sync" before "/v1/environments/{id}"). A
// second route with the same method and pattern shape (parameters named differently count as the same) is
// refused when it is added, so a table with a duplicate never starts.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "http/api.h"
#include "http/server.h"

namespace meridian::http {

// Who sent a request: the token's name and its scopes (control/authenticator.h).
struct Caller {
  std::string name;
  std::vector<std::string> scopes;
  bool Has(std::string_view scope) const;
};

struct Route;

// One request on its way through a handler.
struct Call {
  ServerRequest& req;
  Responder& out;
  const Caller& caller;
  const Route& route;
  std::vector<std::string> path;  // the decoded segments ("/v1/runs/r-1" -> {"v1", "runs", "r-1"})

  // The segment the pattern names `{name}`; asserts that the pattern has it.
  const std::string& Param(std::string_view name) const;
};

// What a route's body may be: at most 64 KiB; up to the server's max_body_bytes (a report, a registry); or
// that, and JSON, parsed away from the loop thread when over 64 KiB (a plan, an agent's done with step logs).
enum class Body : uint8_t { kSmall, kLarge, kLargeJson };

struct Route {
  std::string method;               // GET POST PUT DELETE
  std::string pattern;              // "/v1/runs/{id}/abort"
  std::vector<std::string> scopes;  // the caller needs one of them; empty: any valid token
  std::function<void(Call&)> handler;
  std::string summary;  // one line, as docs/api.md says it
  Body body = Body::kSmall;
  bool rate_limited = true;  // false for what only frees (releasing an allocation)
  // Served to requests without a token: the dashboard's page and its assets, which hold no data (a browser
  // sends no Authorization header when it opens a page), and the exchange of a one-time login code.
  bool open = false;

  std::vector<std::string> parts;  // the pattern's segments (set by Router::Add)
  std::string shape;               // the pattern with every parameter as "{}" (set by Router::Add)
  std::string ScopeText() const;   // "runs:read or agent", "any" when empty, "none" when open
};

class Router {
 public:
  // Refused (kInvalidArgument, naming both): a pattern that is not "/"-separated literals and {name}
  // parameters, a method that is not upper-case, the same method and shape twice.
  Result<void> Add(Route route);

  // The route serving `method path` and the decoded path. Throws ApiError 400 (a malformed escape), 404, 405.
  const Route& Find(const std::string& method, const std::string& path,
                    std::vector<std::string>* segments) const;

  // The open route serving `method path`, or null: a request without a token learns nothing more than a 401
  // about every other route.
  const Route* FindOpen(const std::string& method, const std::string& path) const;

  // Throws ApiError 403 naming the route's scopes when the caller holds none of them.
  static void CheckScope(const Route& route, const Caller& caller);

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace meridian::http
