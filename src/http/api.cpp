#include "http/api.h"

#include <algorithm>
#include <set>

#include "core/hex.h"
#include "core/json.h"
#include "core/log.h"

namespace meridian::http {

using nlohmann::json;
using nlohmann::ordered_json;

ApiError StoreUnavailable(const Error& store_error, std::string_view what) {
  LogError("store: could not {}: {}", what, store_error.message);
  return StoreUnavailableAnswer(fmt::format("could not {}", what));
}

ApiError StoreUnavailableAnswer(std::string_view message) {
  return ApiError{503,
                  "store_unavailable",
                  fmt::format("{} (the store is unavailable; retry shortly)", message),
                  "",
                  {{"Retry-After", "5"}}};
}

ServerResponse JsonResponse(int status, const ordered_json& body) {
  ServerResponse r;
  r.status = status;
  r.body = JsonText(body);
  return r;
}

ServerResponse ErrorResponse(const ApiError& e) {
  ordered_json err = {{"code", e.code}, {"message", e.message}};
  if (!e.field.empty()) err["field"] = e.field;
  ServerResponse r = JsonResponse(e.status, {{"error", err}});
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meridian\"");
  const bool has_retry =
      std::any_of(e.headers.begin(), e.headers.end(), [](const auto& h) { return h.first == "Retry-After"; });
  if (e.status == 429 && !has_retry) r.headers.emplace_back("Retry-After", "1");
  for (const auto& h : e.headers) r.headers.push_back(h);
  return r;
}

namespace {

std::string DecodeSegment(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out += segment[i];
      continue;
    }
    const int hi = i + 1 < segment.size() ? HexDigit(segment[i + 1]) : -1;
    const int lo = i + 2 < segment.size() ? HexDigit(segment[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw ApiError{
          400, "bad_request",
          fmt::format("the path segment '{}' has a malformed percent escape at byte {} (use %XX with "
                      "two hex digits)",
                      segment.substr(0, 200), i + 1),
          "path"};
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}
}  // namespace

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const size_t j = path.find('/', i);
    if (i < path.size()) {
      parts.push_back(DecodeSegment(
          std::string_view(path).substr(i, j == std::string::npos ? std::string::npos : j - i)));
    }
    if (j == std::string::npos) break;
    i = j;
  }
  return parts;
}

std::string EncodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (const char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

namespace {
// Whether arrays and objects nest deeper than `max` (strings skipped), in one pass before parsing: the
// parser never sees a body that would cost it more than that.
bool NestsDeeper(std::string_view text, size_t max) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}
}  // namespace

Result<json> ParseStrictJson(std::string_view text, size_t max_depth, JsonProblem* problem) {
  auto fail = [&](std::string message, std::string field = "") -> Result<json> {
    if (problem) *problem = JsonProblem{message, field};
    return MakeError(ErrorCode::kInvalidArgument, std::move(message));
  };
  if (NestsDeeper(text, max_depth)) {
    return fail(fmt::format("arrays and objects nest more than {} levels deep", max_depth));
  }
  std::vector<std::set<std::string>> keys;  // per open object
  std::string repeated;
  const json::parser_callback_t check = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second && repeated.empty()) {
          repeated = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too large (1e999)
    std::string what = e.what();
    if (const size_t at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
    return fail("not valid JSON: " + what);
  }
  if (!repeated.empty()) return fail(fmt::format("'{}' appears twice in one object", repeated), repeated);
  return j;
}

void CheckKeys(const json& body, std::initializer_list<const char*> allowed) {
  for (const auto& item : body.items()) {
    const std::string& key = item.key();
    if (std::none_of(allowed.begin(), allowed.end(), [&key](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw ApiError{400, "unknown_field", fmt::format("'{}' is not a field here (allowed: {})", key, list),
                     key};
    }
  }
}

json ParseBody(const ServerRequest& req) {
  if (req.parsed) {
    if (!req.parsed->is_object()) throw ApiError{400, "invalid_body", "the body must be a JSON object", ""};
    return *req.parsed;
  }
  if (req.body.empty()) return json::object();
  JsonProblem problem;
  auto j = ParseStrictJson(req.body, kMaxJsonDepth, &problem);
  if (!j.ok()) throw ApiError{400, "invalid_body", "the body: " + problem.message, problem.field};
  if (!j->is_object()) throw ApiError{400, "invalid_body", "the body must be a JSON object", ""};
  return std::move(j).value();
}

int64_t QueryInt(const ServerRequest& req, const char* key, int64_t fallback, int64_t min, int64_t max) {
  if (!req.HasQuery(key)) return fallback;
  const std::string v = req.Query(key);
  int64_t n = 0;
  const char* p = v.c_str();
  bool ok = !v.empty();
  bool negative = false;
  if (ok && (*p == '-' || *p == '+')) {
    negative = *p == '-';
    ++p;
    ok = *p != '\0';
  }
  for (; ok && *p; ++p) {
    if (*p < '0' || *p > '9' || n > (INT64_MAX - 9) / 10) {
      ok = false;
      break;
    }
    n = n * 10 + (*p - '0');
  }
  if (negative) n = -n;
  if (!ok || n < min || n > max) {
    throw ApiError{400, "invalid_query",
                   fmt::format("'{}' must be a whole number from {} to {} (got '{}')", key, min, max, v),
                   key};
  }
  return n;
}

}  // namespace meridian::http
