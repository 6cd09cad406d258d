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

// The report's page: its own inline scripts and styles, and nothing from anywhere (not even its folder).
constexpr const char* kReportPolicy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'";

// `text` with every `from` replaced by `to`.
std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  size_t at = 0;
  for (size_t hit; (hit = text.find(from, at)) != std::string_view::npos; at = hit + from.size()) {
    out.append(text.substr(at, hit - at));
    out.append(to);
  }
  out.append(text.substr(at));
  return out;
}

// An embedded asset as the body of an inline <script> or <style>: a closing tag inside it would end the
// element early (uPlot's and app.js's code hold none; a string that did is split the way JS allows).
std::string Inline(std::string_view name, std::string_view tag) {
  return fmt::format("<{}>{}</{}>", tag,
                     ReplaceAll(FindAsset(name)->body, fmt::format("</{}", tag), fmt::format("<\\/{}", tag)),
                     tag);
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

std::string_view ReportPolicy() { return kReportPolicy; }

std::string ReportPage(std::string_view data_json) {
  std::string page(FindAsset("index.html")->body);
  const std::pair<std::string, std::string> swaps[] = {
      {"<meta charset=\"utf-8\">",
       fmt::format("<meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
                   kReportPolicy)},
      {"<link rel=\"stylesheet\" href=\"/assets/uPlot.min.css\">", Inline("uPlot.min.css", "style")},
      {"<link rel=\"stylesheet\" href=\"/assets/app.css\">", Inline("app.css", "style")},
      {"<script src=\"/assets/uPlot.iife.min.js\"></script>",
       "<script type=\"application/json\" id=\"meridian-report\">" + ReplaceAll(data_json, "<", "\\u003c") +
           "</script>\n" + Inline("uPlot.iife.min.js", "script")},
      {"<script src=\"/assets/app.js\"></script>", Inline("app.js", "script")},
  };
  for (const auto& [from, to] : swaps) page = ReplaceAll(page, from, to);
  return page;
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
