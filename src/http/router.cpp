#include "http/router.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/assert.h"

namespace meridian::http {

namespace {

bool IsParam(std::string_view part) { return part.size() > 2 && part.front() == '{' && part.back() == '}'; }

bool Matches(const Route& r, const std::vector<std::string>& segments) {
  if (r.parts.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!IsParam(r.parts[i]) && r.parts[i] != segments[i]) return false;
  }
  return true;
}

// Whether `a` is more specific than `b` (both match the same path): a literal at the first segment where one
// has a literal and the other a parameter.
bool MoreSpecific(const Route& a, const Route& b) {
  for (size_t i = 0; i < a.parts.size() && i < b.parts.size(); ++i) {
    const bool pa = IsParam(a.parts[i]), pb = IsParam(b.parts[i]);
    if (pa != pb) return pb;
  }
  return false;
}

}  // namespace

bool Caller::Has(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

const std::string& Call::Param(std::string_view name) const {
  for (size_t i = 0; i < route.parts.size() && i < path.size(); ++i) {
    const std::string_view p = route.parts[i];
    if (IsParam(p) && p.substr(1, p.size() - 2) == name) return path[i];
  }
  MERIDIAN_RELEASE_ASSERT(!"the route's pattern has no such parameter");
}

std::string Route::ScopeText() const {
  if (open) return "none";
  if (scopes.empty()) return "any";
  std::string s;
  for (const auto& x : scopes) s += (s.empty() ? "" : " or ") + x;
  return s;
}

Result<void> Router::Add(Route route) {
  const auto refuse = [&](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("route {} {}: {}", route.method, route.pattern, why));
  };
  if (route.method.empty() ||
      !std::all_of(route.method.begin(), route.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return refuse("the method must be upper-case letters");
  }
  const bool root = route.pattern == "/";
  if (!root && (route.pattern.size() < 2 || route.pattern[0] != '/' || route.pattern.back() == '/'))
    return refuse("a pattern is '/' and segments, with no '/' at the end");
  route.parts.clear();
  for (size_t at = 1; !root && at <= route.pattern.size();) {
    size_t end = route.pattern.find('/', at);
    if (end == std::string::npos) end = route.pattern.size();
    const std::string part = route.pattern.substr(at, end - at);
    if (part.empty()) return refuse("an empty segment");
    const bool braces = part.find_first_of("{}") != std::string::npos;
    if (braces && (!IsParam(part) || part.find_first_of("{}", 1) != part.size() - 1))
      return refuse(fmt::format("'{}' is neither a literal nor a whole {{name}} parameter", part));
    route.parts.push_back(part);
    at = end + 1;
  }
  if (!route.handler) return refuse("no handler");
  route.shape.clear();
  for (const auto& p : route.parts) route.shape += "/" + (IsParam(p) ? std::string("{}") : p);
  if (root) route.shape = "/";
  for (const auto& r : routes_) {
    if (r.method == route.method && r.shape == route.shape) return refuse("the same as " + r.pattern);
  }
  routes_.push_back(std::move(route));
  return {};
}

const Route& Router::Find(const std::string& method, const std::string& path,
                          std::vector<std::string>* segments) const {
  *segments = SplitPath(path);
  const Route* best = nullptr;
  for (const auto& r : routes_) {
    if (Matches(r, *segments) && (!best || MoreSpecific(r, *best))) best = &r;
  }
  if (!best) throw ApiError{404, "not_found", "no such route: " + path, ""};
  std::string allowed;
  for (const auto& r : routes_) {
    if (r.shape != best->shape) continue;
    if (r.method == method) return r;
    allowed += (allowed.empty() ? "" : ", ") + r.method;
  }
  throw ApiError{
      405, "method_not_allowed", fmt::format("use {} for {}", allowed, path), "", {{"Allow", allowed}}};
}

const Route* Router::FindOpen(const std::string& method, const std::string& path) const {
  try {
    std::vector<std::string> segments;
    const Route& r = Find(method, path, &segments);
    return r.open ? &r : nullptr;
  } catch (const ApiError&) {
    return nullptr;
  }
}

void Router::CheckScope(const Route& route, const Caller& caller) {
  if (route.scopes.empty()) return;
  if (std::any_of(route.scopes.begin(), route.scopes.end(), [&](const auto& s) { return caller.Has(s); }))
    return;
  throw ApiError{403, "forbidden",
                 fmt::format("the token '{}' lacks the scope {}", caller.name, route.ScopeText()), ""};
}

}  // namespace meridian::http
