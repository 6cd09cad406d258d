#include <fmt/format.h>

#include "http/server.h"
#include "target/target_internal.h"

namespace meridian::target {

const char* ReasonPhrase(int status) { return http::StatusReason(status); }

namespace {
void AppendBody(std::string& out, const std::string& pattern, int64_t n) {
  while (n > 0) {
    const auto take = static_cast<size_t>(std::min<int64_t>(n, static_cast<int64_t>(pattern.size())));
    out.append(pattern, 0, take);
    n -= static_cast<int64_t>(take);
  }
}
}  // namespace

void AppendResponse(std::string& out, const ResponseSpec& spec, const std::string& pattern) {
  if (spec.early_hints) out.append("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
  fmt::format_to(std::back_inserter(out),
                 "HTTP/1.1 {} {}\r\nServer: meridian-target\r\nContent-Type: text/plain\r\n", spec.status,
                 ReasonPhrase(spec.status));
  const bool no_body = spec.status == 204 || spec.status == 304 || spec.status < 200;
  if (spec.close) out.append("Connection: close\r\n");
  if (no_body) {
    out.append("\r\n");
    return;
  }
  if (spec.chunked) {
    out.append("Transfer-Encoding: chunked\r\nTrailer: X-Meridian-Trailer\r\n\r\n");
    if (spec.head) return;
    int64_t left = spec.body_bytes;
    bool first = true;
    while (left > 0) {
      const int64_t n = std::min<int64_t>(left, 4096);
      // The first chunk carries an extension so that clients' extension handling is exercised.
      fmt::format_to(std::back_inserter(out), "{:x}", n);
      out.append(first ? ";meridian=ext\r\n" : "\r\n");
      AppendBody(out, pattern, n);
      out.append("\r\n");
      left -= n;
      first = false;
    }
    out.append("0\r\nX-Meridian-Trailer: done\r\n\r\n");
    return;
  }
  fmt::format_to(std::back_inserter(out), "Content-Length: {}\r\n\r\n", spec.body_bytes);
  if (!spec.head) AppendBody(out, pattern, spec.body_bytes);
}

}  // namespace meridian::target
