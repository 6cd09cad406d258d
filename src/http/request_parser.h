#pragma once
// Parsing request heads for the built-in target server. The head must be contiguous (the server keeps a
// partial head until its end arrives); the body is framed by ResponseParser::BeginBody.

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::http {

struct RequestHead {
  std::string_view method;
  std::string_view target;
  int minor = 1;
  int64_t content_length = -1;  // -1: absent
  bool chunked = false;
  bool keep_alive = true;
  bool expect_continue = false;
  size_t head_bytes = 0;  // length of the request line and header section, blank line included
};

enum class ParseStatus { kComplete, kIncomplete, kError };

constexpr size_t kMaxRequestHeadBytes = 64 * 1024;

using HeaderViews = std::vector<std::pair<std::string_view, std::string_view>>;

// Parses the head at the start of `data`. On kError, `*error` names the problem (for a 400 response).
// `headers`, when given, receives every field (name as sent, value trimmed), viewing into `data`.
ParseStatus ParseRequestHead(std::string_view data, RequestHead& out, const char** error,
                             HeaderViews* headers = nullptr);

// Splits "a=1&b=x" and returns the value of `key` (not percent-decoded), or an empty view with found=false.
std::string_view QueryParam(std::string_view target, std::string_view key, bool* found = nullptr);

}  // namespace meridian::http
