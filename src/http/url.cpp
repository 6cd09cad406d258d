#include "http/url.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cctype>

namespace meridian::http {

std::string Url::HostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string h;
  h.reserve(host.size() + 8);
  if (v6) h.push_back('[');
  h.append(host);
  if (v6) h.push_back(']');
  const uint16_t default_port = tls() ? 443 : 80;
  if (port != default_port) h += ":" + std::to_string(port);
  return h;
}

std::string Url::Origin() const {
  std::string out = scheme;
  out.append("://").append(HostHeader());
  return out;
}

Result<Url> ParseUrl(std::string_view text) {
  const std::string original(text);
  auto fail = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("invalid URL '{}': {}", original, why));
  };
  Url url;
  const size_t colon = text.find("://");
  if (colon == std::string_view::npos) return fail("missing scheme (expected http:// or https://)");
  std::string scheme(text.substr(0, colon));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https")
    return fail(fmt::format("scheme '{}' is not http or https", scheme));
  url.scheme = scheme;
  text.remove_prefix(colon + 3);

  const size_t authority_end = text.find_first_of("/?#");
  std::string_view authority = text.substr(0, authority_end);
  std::string_view rest =
      authority_end == std::string_view::npos ? std::string_view() : text.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    return fail("credentials in the URL are not supported (use -H 'Authorization: ...')");
  }
  std::string_view port_text;
  const bool bracketed = authority.starts_with("[");
  if (bracketed) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 address");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("unexpected characters after the IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) return fail("empty port");
    }
  } else {
    const size_t pc = authority.rfind(':');
    if (pc != std::string_view::npos) {
      port_text = authority.substr(pc + 1);
      authority = authority.substr(0, pc);
      if (port_text.empty()) return fail("empty port");
    }
    url.host = std::string(authority);
  }
  if (url.host.empty()) return fail("missing host");
  if (bracketed) {
    in6_addr addr{};
    if (inet_pton(AF_INET6, url.host.c_str(), &addr) != 1)
      return fail("not a valid IPv6 address in brackets");
  } else {
    // RFC 3986 reg-name: unreserved and sub-delims (internationalised names must be given in punycode).
    for (char c : url.host) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
      if (!ok) return fail("invalid character in host (IPv6 addresses go in brackets: http://[::1]:8080/)");
    }
  }
  if (!port_text.empty()) {
    uint32_t port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9') return fail(fmt::format("port '{}' is not a number", port_text));
      port = port * 10 + static_cast<uint32_t>(c - '0');
      if (port > 65535) return fail(fmt::format("port '{}' is out of range 1-65535", port_text));
    }
    if (port == 0) return fail("port 0 is not allowed");
    url.port = static_cast<uint16_t>(port);
  } else {
    url.port = url.tls() ? 443 : 80;
  }

  const size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  if (rest.empty() || rest.front() == '?') {
    url.target.assign("/").append(rest);
  } else {
    url.target = std::string(rest);
  }
  for (char c : url.target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f)
      return fail("spaces and control characters must be percent-encoded in the path");
  }
  return url;
}

}  // namespace meridian::http
