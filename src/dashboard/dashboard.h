#pragma once
// The dashboard's page and assets (web/src/ and uPlot from npm), embedded at build time
// (src/dashboard/embed.cmake) and served by the control plane at / and /assets/NAME without a token: they
// hold no data. Everything the page shows comes from the API with the token the page asks for.

#include <string_view>
#include <vector>

#include "core/result.h"
#include "http/router.h"

namespace meridian::dashboard {

struct Asset {
  std::string_view name;  // "app.js"
  std::string_view body;
};

// Every embedded file (generated).
const std::vector<Asset>& Assets();
const Asset* FindAsset(std::string_view name);

// GET / (the page) and GET /assets/{name}, open routes, with headers that keep the page to its own origin
// (Content-Security-Policy), out of frames and its address out of other sites' logs.
Result<void> AddRoutes(http::Router& router);

}  // namespace meridian::dashboard
