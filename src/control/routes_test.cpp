// The control plane's route table and docs/api.md agree, row for row: method, path pattern and scopes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "control/control.h"
#include "core/log.h"
#include "net/event_loop.h"
#include "store/store.h"

namespace meridian::control {
namespace {

// "GET /v1/runs/{id} runs:read" for every `| \`METHOD PATH?query\` | scopes | what |` row of docs/api.md.
std::set<std::string> DocumentedRoutes() {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/docs/api.md");
  EXPECT_TRUE(in) << "docs/api.md";
  std::set<std::string> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("| `")) continue;
    const size_t end = line.find('`', 3);
    std::string route = line.substr(3, end - 3);
    route = route.substr(0, route.find('?'));
    const size_t scope_from = line.find('|', end) + 1;
    const size_t scope_to = line.find('|', scope_from);
    std::string scope = line.substr(scope_from, scope_to - scope_from);
    scope = scope.substr(scope.find_first_not_of(' '));
    scope = scope.substr(0, scope.find_last_not_of(' ') + 1);
    EXPECT_TRUE(rows.insert(route + " " + scope).second) << "documented twice: " << route;
  }
  return rows;
}

TEST(Routes, DocsListEveryRouteWithItsScope) {
  SetLogLevel(LogLevel::kOff);
  char tmpl[] = "/tmp/meridian-routes-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  {
    net::EventLoop loop;
    ASSERT_TRUE(loop.Init().ok());
    ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.store = "sqlite:" + dir + "/m.db";
    auto store = store::OpenStore(config.store);
    ASSERT_TRUE(store.ok());
    ControlPlane cp(loop, std::move(store).value(), config);
    ASSERT_TRUE(cp.Start().ok());
    std::set<std::string> table;
    for (const auto& r : cp.Routes()) {
      EXPECT_FALSE(r.summary.empty()) << r.method << " " << r.pattern;
      table.insert(r.method + " " + r.pattern + " " + r.scopes);
    }
    EXPECT_EQ(table.size(), cp.Routes().size());
    const std::set<std::string> docs = DocumentedRoutes();
    for (const auto& r : table)
      EXPECT_TRUE(docs.count(r)) << "not in docs/api.md (or with other scopes): " << r;
    for (const auto& d : docs)
      EXPECT_TRUE(table.count(d)) << "docs/api.md lists a route the server lacks: " << d;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meridian::control
