#include "http/api.h"

namespace meridian::http {

using nlohmann::json;
using nlohmann::ordered_json;

ServerResponse JsonResponse(int status, const ordered_json& body) {
  ServerResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  return r;
}

ServerResponse ErrorResponse(const ApiError& e) {
  ordered_json err = {{"code", e.code}, {"message", e.message}};
  if (!e.field.empty()) err["field"] = e.field;
  ServerResponse r = JsonResponse(e.status, {{"error", err}});
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meridian\"");
  if (e.status == 429) r.headers.emplace_back("Retry-After", "1");
  for (const auto& h : e.headers) r.headers.push_back(h);
  return r;
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const size_t j = path.find('/', i);
    if (i < path.size()) parts.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) break;
    i = j;
  }
  return parts;
}

json ParseBody(const ServerRequest& req) {
  if (req.body.empty()) return json::object();
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw ApiError{400, "invalid_body", "the body must be a JSON object", ""};
  return j;
}

}  // namespace meridian::http
