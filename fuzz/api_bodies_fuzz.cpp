// Every route of the control plane, in process, on a real SQLite store: a fuzzed method, path (with {run},
// {agent} and {alloc} standing for live ids), query and body. The control plane never crashes, never answers
// 500 (an exception that escaped a handler), and every error it answers is a JSON error (but the start
// route's documented 404/409, which carry the start document).
//
// Input: a first line "METHOD TARGET", then the body.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "control/control.h"
#include "core/log.h"
#include "net/event_loop.h"
#include "store/store.h"

namespace {

using meridian::http::Responder;
using meridian::http::ServerRequest;
using meridian::http::ServerResponse;

constexpr const char* kToken = "fuzz-token";

struct Harness {
  std::string dir;
  meridian::net::EventLoop loop;
  std::unique_ptr<meridian::control::ControlPlane> cp;
  std::string run, agent, secret, alloc;

  Harness() {
    meridian::SetLogLevel(meridian::LogLevel::kOff);
    char tmpl[] = "/tmp/meridian-api-fuzz-XXXXXX";
    dir = mkdtemp(tmpl);
    std::ofstream(dir + "/envs.yaml") << "pools:\n  p:\n    max_duration: 1h\n  q: {}\nenvironments:\n"
                                         "  - { id: e1, pool: p, region: r1, capabilities: { gpu: 'yes' } }\n"
                                         "  - { id: e2, pool: p }\n  - { id: f1, pool: q }\n";
    if (!loop.Init().ok()) abort();
    meridian::control::ServerConfig config;
    config.listen = "127.0.0.1:0";
    config.store = "sqlite:" + dir + "/m.db";
    config.registry = dir + "/envs.yaml";
    config.tokens = {{"fuzz",
                      meridian::control::HashToken(kToken),
                      {"runs:read", "runs:write", "agent", "env:allocate", "env:admin"}}};
    auto store = meridian::store::OpenStore(config.store);
    if (!store.ok()) abort();
    cp = std::make_unique<meridian::control::ControlPlane>(loop, std::move(store).value(), config);
    if (!cp->Start().ok()) abort();
    const nlohmann::json a = Call("POST", "/v1/agents", R"({"name":"fuzz","region":"r1"})");
    agent = a.value("id", "");
    secret = a.value("secret", "");
    run =
        Call(
            "POST", "/v1/runs",
            R"({"plan":"name: f\nregions: { r1: {} }\nsteps:\n  - { name: s, command: [true], run_max_time: 1s }\n"})")
            .value("id", "");
    alloc = Call("POST", "/v1/allocations", R"({"pool":"q","duration":"1h"})").value("id", "");
  }
  ~Harness() { std::filesystem::remove_all(dir); }

  // One request; the response (status 0 when it is held: a long poll, an allocation that waits).
  ServerResponse Serve(const std::string& method, const std::string& target, const std::string& body) {
    ServerRequest req;
    req.method = method;
    const size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    req.headers["authorization"] = std::string("Bearer ") + kToken;
    req.headers["content-type"] = "application/json";
    req.headers["meridian-agent-secret"] = secret;
    req.body = body;
    auto got = std::make_shared<ServerResponse>();
    got->status = 0;
    size_t max_body = 8 << 20;
    if (auto refused = cp->CheckHead(req, &max_body)) return *refused;
    if (req.body.size() > max_body) return ServerResponse{413, "", "", {}};
    cp->Handle(req, Responder([got](ServerResponse r) { *got = std::move(r); }));
    // Plans are parsed on the work thread: their answer comes back through the loop.
    for (int i = 0; i < 2000 && got->status == 0 && method == "POST" && req.path == "/v1/runs"; ++i)
      loop.RunOnce(1'000'000);
    loop.RunOnce(0);
    return *got;
  }
  nlohmann::json Call(const std::string& method, const std::string& target, const std::string& body) {
    return nlohmann::json::parse(Serve(method, target, body).body, nullptr, false);
  }
};

void Replace(std::string& s, const std::string& what, const std::string& with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
    s.replace(at, what.size(), with);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size > 16 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t nl = text.find('\n');
  if (nl == std::string::npos) return 0;
  const std::string line = text.substr(0, nl);
  const size_t sp = line.find(' ');
  if (sp == std::string::npos) return 0;
  const std::string method = line.substr(0, sp);
  std::string target = line.substr(sp + 1);
  if (target.empty() || target[0] != '/') return 0;
  Replace(target, "{run}", h.run);
  Replace(target, "{agent}", h.agent);
  Replace(target, "{alloc}", h.alloc);
  const ServerResponse r = h.Serve(method, target, text.substr(nl + 1));
  if (r.status == 500) __builtin_trap();  // a handler let an exception out
  // Errors are JSON errors; the start route's 404 ("not known yet") and 409 carry the start document instead.
  const bool start = target.find("/start") != std::string::npos;
  if (r.status >= 400 && r.status != 413 && !start && r.body.find("\"error\"") == std::string::npos)
    __builtin_trap();
  return 0;
}
