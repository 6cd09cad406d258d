#pragma once
// The dashboard's page and assets (web/src/ and uPlot from npm), embedded at build time
// (src/dashboard/embed.cmake) and served by the control plane at / and /assets/NAME without a token: they
// hold no data. Everything the page shows comes from the API with the token the page asks for.

#include <string>
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

// The one-file report: the same page with its styles, scripts and `data_json` (the run, its summary, events
// and history, as app.js reads them from the element #meridian-report) inline, and a policy that lets the
// page make no request at all. `data_json` is escaped for the page ('<' as \u003c), so no text in it can
// end the element it sits in.
std::string ReportPage(std::string_view data_json);
// The report's policy (in its page, and as a header where the control plane serves it).
std::string_view ReportPolicy();

// GET / (the page) and GET /assets/{name}, open routes, with headers that keep the page to its own origin
// (Content-Security-Policy), out of frames and its address out of other sites' logs.
Result<void> AddRoutes(http::Router& router);

}  // namespace meridian::dashboard
