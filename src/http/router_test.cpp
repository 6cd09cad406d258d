#include "http/router.h"

#include <gtest/gtest.h>

namespace meridian::http {
namespace {

Route R(std::string method, std::string pattern, std::vector<std::string> scopes = {}) {
  return Route{std::move(method),
               std::move(pattern),
               std::move(scopes),
               [](Call&) {},
               "",
               Body::kSmall,
               true,
               false,
               {},
               {}};
}

ApiError FindError(const Router& router, const std::string& method, const std::string& path) {
  std::vector<std::string> segments;
  try {
    router.Find(method, path, &segments);
  } catch (const ApiError& e) {
    return e;
  }
  return ApiError{0, "", "", ""};
}

TEST(Router, FindsTheMostSpecificRouteAndItsParameters) {
  Router router;
  ASSERT_TRUE(router.Add(R("GET", "/v1/environments/{id}")).ok());
  ASSERT_TRUE(router.Add(R("POST", "/v1/environments/sync")).ok());
  ASSERT_TRUE(router.Add(R("GET", "/v1/runs/{id}/steps/{step}/log")).ok());
  std::vector<std::string> path;
  EXPECT_EQ(router.Find("POST", "/v1/environments/sync", &path).pattern, "/v1/environments/sync");
  EXPECT_EQ(router.Find("GET", "/v1/environments/e1", &path).pattern, "/v1/environments/{id}");
  const Route& log = router.Find("GET", "/v1/runs/r-1/steps/warm%20up%3A%20x/log", &path);
  ServerRequest req;
  Responder out;
  Caller caller;
  Call call{req, out, caller, log, path};
  EXPECT_EQ(call.Param("id"), "r-1");
  EXPECT_EQ(call.Param("step"), "warm up: x");
}

TEST(Router, AnUnknownPathIs404AndAnotherMethod405NamingTheAllowedOnes) {
  Router router;
  ASSERT_TRUE(router.Add(R("GET", "/v1/allocations/{id}")).ok());
  ASSERT_TRUE(router.Add(R("DELETE", "/v1/allocations/{id}")).ok());
  ASSERT_TRUE(router.Add(R("POST", "/v1/environments/sync")).ok());
  ASSERT_TRUE(router.Add(R("GET", "/v1/environments/{id}")).ok());
  EXPECT_EQ(FindError(router, "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(FindError(router, "GET", "/v1/allocations/a-1/x").status, 404);
  const ApiError e = FindError(router, "PUT", "/v1/allocations/a-1");
  EXPECT_EQ(e.status, 405);
  EXPECT_EQ(e.message, "use GET, DELETE for /v1/allocations/a-1");
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.headers[0], (std::pair<std::string, std::string>{"Allow", "GET, DELETE"}));
  // The literal route owns its path: GET on it is a 405, not the parameter route's lookup of "sync".
  EXPECT_EQ(FindError(router, "GET", "/v1/environments/sync").status, 405);
  EXPECT_EQ(FindError(router, "GET", "/v1/allocations/%zz").status, 400);
}

TEST(Router, DuplicateAndMalformedRoutesAreRefusedWhenAdded) {
  Router router;
  ASSERT_TRUE(router.Add(R("GET", "/v1/runs/{id}")).ok());
  const auto twice = router.Add(R("GET", "/v1/runs/{run}"));
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().message, "route GET /v1/runs/{run}: the same as /v1/runs/{id}");
  EXPECT_TRUE(router.Add(R("POST", "/v1/runs/{run}")).ok());  // another method is another route
  EXPECT_FALSE(router.Add(R("get", "/v1/x")).ok());
  EXPECT_FALSE(router.Add(R("GET", "v1/x")).ok());
  EXPECT_FALSE(router.Add(R("GET", "/v1/x/")).ok());
  EXPECT_FALSE(router.Add(R("GET", "/v1//x")).ok());
  EXPECT_FALSE(router.Add(R("GET", "/v1/{a}b")).ok());
  EXPECT_FALSE(router.Add(R("GET", "/v1/{}")).ok());
  Route no_handler = R("GET", "/v1/y");
  no_handler.handler = nullptr;
  EXPECT_FALSE(router.Add(no_handler).ok());
  EXPECT_EQ(router.routes().size(), 2u);
}

TEST(Router, AScopeIsCheckedAgainstTheCaller) {
  const Route any = R("GET", "/healthz");
  const Route start = R("GET", "/v1/runs/{id}/start", {"runs:read", "agent"});
  EXPECT_EQ(start.ScopeText(), "runs:read or agent");
  EXPECT_EQ(any.ScopeText(), "any");
  Router::CheckScope(any, Caller{"t", {}});
  Router::CheckScope(start, Caller{"t", {"agent"}});
  try {
    Router::CheckScope(start, Caller{"ci", {"runs:write", "env:admin"}});
    FAIL() << "no 403";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 403);
    EXPECT_EQ(e.message, "the token 'ci' lacks the scope runs:read or agent");
  }
}

// The root is a pattern of its own; an open route (no token) is found only by FindOpen's exact match, and
// FindOpen finds nothing else.
TEST(Router, TheRootAndOpenRoutes) {
  Router router;
  Route page = R("GET", "/");
  page.open = true;
  ASSERT_TRUE(router.Add(page).ok());
  ASSERT_TRUE(router.Add(R("GET", "/v1/runs", {"runs:read"})).ok());
  EXPECT_FALSE(router.Add(R("GET", "/")).ok());  // the same shape twice
  std::vector<std::string> segments;
  EXPECT_EQ(router.Find("GET", "/", &segments).pattern, "/");
  EXPECT_TRUE(segments.empty());
  ASSERT_NE(router.FindOpen("GET", "/"), nullptr);
  EXPECT_EQ(router.FindOpen("GET", "/v1/runs"), nullptr);
  EXPECT_EQ(router.FindOpen("POST", "/"), nullptr);
  EXPECT_EQ(router.FindOpen("GET", "/nothing"), nullptr);
  EXPECT_EQ(router.routes()[0].ScopeText(), "none");
}

}  // namespace
}  // namespace meridian::http
