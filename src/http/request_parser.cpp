#include "http/request_parser.h"

#include "http/syntax.h"

namespace meridian::http {
namespace {

// Calls fn(token) for each comma-separated, trimmed, non-empty element.
template <class Fn>
void ForEachToken(std::string_view list, Fn fn) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view token = TrimOws(list.substr(0, comma));
    if (!token.empty()) fn(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

ParseStatus ParseRequestHead(std::string_view data, RequestHead& out, const char** error,
                             HeaderViews* headers) {
  out = RequestHead{};
  if (headers) headers->clear();
  auto fail = [&](const char* why) {
    *error = why;
    return ParseStatus::kError;
  };
  size_t pos = 0;
  bool first = true;
  bool close = false, keep_alive = false, has_te = false;
  while (true) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (data.size() > kMaxRequestHeadBytes) return fail("request header section too large");
      return ParseStatus::kIncomplete;
    }
    if (nl + 1 > kMaxRequestHeadBytes) return fail("request header section too large");
    std::string_view line = data.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (first) {
      if (line.empty() && pos <= 2) {  // tolerate one leading blank line (RFC 9112 §2.2)
        continue;
      }
      first = false;
      const size_t sp1 = line.find(' ');
      const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return fail("malformed request line");
      }
      out.method = line.substr(0, sp1);
      out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      const std::string_view version = line.substr(sp2 + 1);
      if (out.method.empty()) return fail("empty method");
      for (char c : out.method) {
        if (!IsTokenChar(c)) return fail("invalid method");
      }
      if (out.target.empty()) return fail("empty request target");
      for (char c : out.target) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return fail("invalid request target");
      }
      if (version == "HTTP/1.1") {
        out.minor = 1;
      } else if (version == "HTTP/1.0") {
        out.minor = 0;
      } else {
        return fail("unsupported HTTP version");
      }
      continue;
    }
    if (line.empty()) break;  // end of the header section
    if (line.front() == ' ' || line.front() == '\t') return fail("obsolete line folding");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail("malformed header field");
    const std::string_view name = line.substr(0, colon);
    for (char c : name) {
      if (!IsTokenChar(c)) return fail("invalid header field name");
    }
    const std::string_view value = TrimOws(line.substr(colon + 1));
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) return fail("invalid character in header field value");
    }
    if (headers) headers->emplace_back(name, value);
    if (EqualsIgnoreCase(name, "content-length")) {
      bool bad = false;
      ForEachToken(value, [&](std::string_view token) {
        int64_t t = 0;
        for (char c : token) {
          if (c < '0' || c > '9' || t > (INT64_MAX - 9) / 10) {
            bad = true;
            return;
          }
          t = t * 10 + (c - '0');
        }
        if (out.content_length >= 0 && out.content_length != t) bad = true;
        out.content_length = t;
      });
      if (bad || out.content_length < 0) return fail("invalid Content-Length");
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      has_te = true;
      bool last_chunked = false;
      ForEachToken(value, [&](std::string_view token) { last_chunked = EqualsIgnoreCase(token, "chunked"); });
      if (!last_chunked) return fail("unsupported Transfer-Encoding");
      out.chunked = true;
    } else if (EqualsIgnoreCase(name, "connection")) {
      ForEachToken(value, [&](std::string_view token) {
        if (EqualsIgnoreCase(token, "close")) close = true;
        if (EqualsIgnoreCase(token, "keep-alive")) keep_alive = true;
      });
    } else if (EqualsIgnoreCase(name, "expect")) {
      if (EqualsIgnoreCase(value, "100-continue")) out.expect_continue = true;
    }
  }
  if (has_te && out.content_length >= 0) return fail("both Transfer-Encoding and Content-Length");
  out.keep_alive = out.minor >= 1 ? !close : keep_alive;
  out.head_bytes = pos;
  return ParseStatus::kComplete;
}

std::string_view QueryParam(std::string_view target, std::string_view key, bool* found) {
  if (found) *found = false;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      if (found) *found = true;
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace meridian::http
