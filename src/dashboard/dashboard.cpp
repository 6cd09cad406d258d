#include "dashboard/dashboard.h"

#include <fmt/format.h>

#include <algorithm>

namespace meridian::dashboard {

namespace {

// Scripts, styles and requests from the page's own origin only; no frames, no forms, no plug-ins.
constexpr const char* kPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string ContentType(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

http::ServerResponse AssetResponse(const Asset& a) {
  return http::ServerResponse{200,
                              ContentType(a.name),
                              std::string(a.body),
                              {{"Content-Security-Policy", kPolicy},
                               {"X-Content-Type-Options", "nosniff"},
                               {"X-Frame-Options", "DENY"},
                               {"Referrer-Policy", "no-referrer"}}};
}

}  // namespace

const Asset* FindAsset(std::string_view name) {
  const auto& all = Assets();
  auto it = std::find_if(all.begin(), all.end(), [&](const Asset& a) { return a.name == name; });
  return it == all.end() ? nullptr : &*it;
}

Result<void> AddRoutes(http::Router& router) {
  http::Route page;
  page.method = "GET";
  page.pattern = "/";
  page.open = true;
  page.summary = "the dashboard (no data without a token)";
  page.handler = [](http::Call& c) { c.out.Send(AssetResponse(*FindAsset("index.html"))); };
  if (auto r = router.Add(std::move(page)); !r.ok()) return r;
  http::Route asset;
  asset.method = "GET";
  asset.pattern = "/assets/{name}";
  asset.open = true;
  asset.summary = "the dashboard's scripts and styles";
  asset.handler = [](http::Call& c) {
    const Asset* a = FindAsset(c.Param("name"));
    if (!a || a->name == "index.html") {
      throw http::ApiError{404, "not_found", fmt::format("no asset '{}'", c.Param("name")), ""};
    }
    c.out.Send(AssetResponse(*a));
  };
  return router.Add(std::move(asset));
}

}  // namespace meridian::dashboard
