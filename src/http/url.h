#pragma once
// Absolute http(s) URLs as users type them on the command line and in plans.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace meridian::http {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 literals
  uint16_t port = 0;
  std::string target;  // origin-form request target: path and query, at least "/"
  bool tls() const { return scheme == "https"; }
  // The Host header value: host, bracketed for IPv6, with ":port" unless it is the scheme's default.
  std::string HostHeader() const;
  // scheme://host[:port]
  std::string Origin() const;
  std::string ToString() const { return Origin() + target; }
};

// Parses "http://host[:port][/path][?query][#fragment]" and https. The fragment is dropped. Errors name the
// URL and the part that is wrong.
Result<Url> ParseUrl(std::string_view text);

}  // namespace meridian::http
