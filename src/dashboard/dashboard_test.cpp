#include "dashboard/dashboard.h"

#include <gtest/gtest.h>

namespace meridian::dashboard {
namespace {

http::ServerResponse Get(const http::Router& router, const std::string& path) {
  const http::Route* route = router.FindOpen("GET", path);
  if (!route) return http::ServerResponse{401, "", "", {}};
  http::ServerRequest req;
  req.method = "GET";
  req.path = path;
  http::ServerResponse got;
  http::Responder out([&](http::ServerResponse r) { got = std::move(r); });
  const http::Caller nobody;
  http::Call call{req, out, nobody, *route, http::SplitPath(path)};
  try {
    route->handler(call);
  } catch (const http::ApiError& e) {
    got.status = e.status;
  }
  return got;
}

std::string Header(const http::ServerResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

TEST(Dashboard, EmbedsThePageItsScriptAndUplot) {
  for (const char* name : {"index.html", "app.js", "app.css", "uPlot.iife.min.js", "uPlot.min.css"}) {
    const Asset* a = FindAsset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_GT(a->body.size(), 100u) << name;
  }
  EXPECT_NE(FindAsset("uPlot.iife.min.js")->body.find("uPlot"), std::string_view::npos);
  EXPECT_EQ(FindAsset("nothing.js"), nullptr);
}

// The page and its assets need no token (a browser sends none when it opens a page) and keep to their own
// origin; nothing else is open.
TEST(Dashboard, ServesThePageOpenlyWithAPolicy) {
  http::Router router;
  ASSERT_TRUE(AddRoutes(router).ok());
  const auto page = Get(router, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<script src=\"/assets/app.js\""), std::string::npos);
  EXPECT_NE(Header(page, "Content-Security-Policy").find("default-src 'none'"), std::string::npos);
  EXPECT_NE(Header(page, "Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(Header(page, "X-Frame-Options"), "DENY");
  const auto js = Get(router, "/assets/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(Get(router, "/assets/missing.js").status, 404);
  EXPECT_EQ(Get(router, "/assets/index.html").status, 404);
  EXPECT_EQ(router.FindOpen("POST", "/"), nullptr);
  EXPECT_EQ(router.FindOpen("GET", "/v1/runs"), nullptr);
}

}  // namespace
}  // namespace meridian::dashboard
