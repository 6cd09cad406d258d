#include "http/url.h"

#include <gtest/gtest.h>

#include "http/request.h"

namespace meridian::http {
namespace {

TEST(ParseUrl, Forms) {
  auto u = ParseUrl("http://127.0.0.1:8080/a/b?x=1#frag");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/a/b?x=1");
  EXPECT_EQ(u->HostHeader(), "127.0.0.1:8080");

  auto s = ParseUrl("HTTPS://example.com");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->tls());
  EXPECT_EQ(s->port, 443);
  EXPECT_EQ(s->target, "/");
  EXPECT_EQ(s->HostHeader(), "example.com");

  auto q = ParseUrl("http://h?x=1");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->target, "/?x=1");

  auto v6 = ParseUrl("http://[::1]:9000/p");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->HostHeader(), "[::1]:9000");
  EXPECT_EQ(v6->ToString(), "http://[::1]:9000/p");
}

TEST(ParseUrl, ErrorsNameTheProblem) {
  struct Case {
    const char* url;
    const char* expect;
  } cases[] = {
      {"127.0.0.1:8080", "missing scheme"},
      {"ftp://x/", "is not http or https"},
      {"http://", "missing host"},
      {"http://:80/", "missing host"},
      {"http://h:99999/", "out of range"},
      {"http://h:0/", "port 0"},
      {"http://h:8x/", "not a number"},
      {"http://h:/", "empty port"},
      {"http://[::1/", "unterminated IPv6"},
      {"http://user:pw@h/", "credentials"},
      {"http://h/a b", "percent-encoded"},
      {"https://\xff\xff[::1]:8443/", "invalid character in host"},
      {"http://a:b:80/", "invalid character in host"},
      {"http://[zz]:80/", "IPv6"},
      {"http://h%2e/", "invalid character in host"},
  };
  for (const auto& c : cases) {
    auto r = ParseUrl(c.url);
    ASSERT_FALSE(r.ok()) << c.url;
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(c.url), std::string::npos) << r.error().message;
  }
}

TEST(Request, BuildsHostUserAgentAndLength) {
  auto u = ParseUrl("http://localhost:8080/cart");
  ASSERT_TRUE(u.ok());
  const std::string r = BuildRequest("POST", *u, {{"Content-Type", "application/json"}}, "{\"a\":1}");
  EXPECT_TRUE(r.starts_with("POST /cart HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: meridian/"));
  EXPECT_NE(r.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("Content-Length: 7\r\n\r\n{\"a\":1}"), std::string::npos);

  const std::string g = BuildRequest("GET", *u, {{"host", "override"}}, "");
  EXPECT_EQ(g.find("Host: localhost"), std::string::npos);
  EXPECT_EQ(g.find("Content-Length"), std::string::npos);
  EXPECT_TRUE(g.ends_with("\r\n\r\n"));
}

TEST(Request, HeaderLineAndMethodValidation) {
  auto h = ParseHeaderLine("X-Token:   abc  ");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->first, "X-Token");
  EXPECT_EQ(h->second, "abc");
  EXPECT_FALSE(ParseHeaderLine("novalue").ok());
  EXPECT_FALSE(ParseHeaderLine("Bad Name: x").ok());
  EXPECT_FALSE(ParseHeaderLine("X: a\r\nInjected: 1").ok());
  EXPECT_EQ(*NormalizeMethod("post"), "POST");
  EXPECT_FALSE(NormalizeMethod("GE T").ok());
  EXPECT_FALSE(NormalizeMethod("").ok());
}

}  // namespace
}  // namespace meridian::http
