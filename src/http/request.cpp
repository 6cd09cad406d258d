#include "http/request.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/version.h"
#include "http/syntax.h"

namespace meridian::http {
bool HasHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

bool IsHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

bool IsHeaderValue(std::string_view value) {
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

Result<std::pair<std::string, std::string>> ParseHeaderLine(std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid header '{}': expected 'Name: value'", line));
  }
  std::string_view name = line.substr(0, colon);
  if (!IsHeaderName(name)) {
    const char bad = *std::find_if(name.begin(), name.end(), [](char c) { return !IsTokenChar(c); });
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("invalid header '{}': the name may not contain '{}'", line, bad));
  }
  std::string_view value = TrimOws(line.substr(colon + 1));
  if (!IsHeaderValue(value)) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid header '{}': control characters (CR, LF, ...) are not allowed", name));
  }
  return std::pair<std::string, std::string>(std::string(name), std::string(value));
}

Result<std::string> NormalizeMethod(std::string_view method) {
  if (method.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty HTTP method");
  std::string out;
  for (char c : method) {
    if (!IsTokenChar(c)) {
      return MakeError(ErrorCode::kInvalidArgument, fmt::format("invalid HTTP method '{}'", method));
    }
    out.push_back(static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
  }
  return out;
}

void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       std::string_view host_header, const HeaderList& headers, size_t body_size,
                       std::string_view more_lines) {
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!HasHeader(headers, "host")) out.append("Host: ").append(host_header).append("\r\n");
  if (!HasHeader(headers, "user-agent")) out.append("User-Agent: meridian/").append(kVersion).append("\r\n");
  for (const auto& [n, v] : headers) out.append(n).append(": ").append(v).append("\r\n");
  out.append(more_lines);
  const bool body_method = method == "POST" || method == "PUT" || method == "PATCH";
  if ((body_size > 0 || body_method) && !HasHeader(headers, "content-length") &&
      !HasHeader(headers, "transfer-encoding")) {
    out.append("Content-Length: ").append(std::to_string(body_size)).append("\r\n");
  }
  out.append("\r\n");
}

std::string BuildRequest(std::string_view method, const Url& url, const HeaderList& headers,
                         std::string_view body) {
  std::string out;
  out.reserve(128 + body.size());
  AppendRequestHead(out, method, url.target, url.HostHeader(), headers, body.size());
  out.append(body);
  return out;
}

}  // namespace meridian::http
