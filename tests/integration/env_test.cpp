// Environment leases end to end: `meridian serve` with a registry, real SQLite, real hook commands, the API
// and the `meridian env` CLI (DESIGN §9).

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cluster.h"
#include "http/fetch.h"
#include "process.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kAdmin = "admin-secret";
constexpr const char* kCi = "ci-secret";
constexpr const char* kCi2 = "ci2-secret";
constexpr const char* kRunsOnly = "runs-secret";

class EnvServer {
 public:
  explicit EnvServer(const std::string& registry) {
    dir_.Write("admin.token", std::string(kAdmin) + "\n");
    dir_.Write("ci.token", std::string(kCi) + "\n");
    dir_.Write("envs.yaml", registry);
    dir_.Write("server.yaml", "store: " + TestStoreSpec(dir_.path) + "\ndata_dir: " + dir_.path +
                                  "\nregistry: envs.yaml\n"
                                  "requests_per_second: 100000\ntokens:\n"
                                  "  - { name: admin, scopes: [env:admin], sha256: " +
                                  Sha256(kAdmin) +
                                  " }\n"
                                  "  - { name: ci, scopes: [env:allocate], sha256: " +
                                  Sha256(kCi) +
                                  " }\n"
                                  "  - { name: ci2, scopes: [env:allocate], sha256: " +
                                  Sha256(kCi2) +
                                  " }\n"
                                  "  - { name: runs, scopes: [runs:read, runs:write], sha256: " +
                                  Sha256(kRunsOnly) + " }\n");
    Start();
  }
  void Start() {
    server_ = std::make_unique<Process>(std::vector<std::string>{
        MeridianBinary(), "serve", "-c", dir_.path + "/server.yaml", "-l", "127.0.0.1:0"});
    const std::string line = server_->ReadLine(10'000ms);
    ASSERT_NE(line.find("listening on http://"), std::string::npos) << line;
    port_ = std::stoi(line.substr(line.rfind(':') + 1));
  }
  void Kill() {
    server_->Signal(SIGKILL);
    server_->Wait(5'000ms);
    server_.reset();
  }
  void Signal(int sig) { server_->Signal(sig); }
  HttpReply Call(const char* token, const std::string& method, const std::string& path,
                 const json& body = nullptr) {
    std::vector<std::string> headers;
    if (token) headers.push_back(std::string("Authorization: Bearer ") + token);
    return HttpCall(port_, method, path, headers, body.is_null() ? "" : body.dump());
  }
  json Get(const std::string& path, const char* token = kAdmin) {
    auto r = Call(token, "GET", path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  json Environment(const std::string& id) { return Get("/v1/environments/" + id); }
  // Waits until the environment is in `state` (or the deadline passes) and returns it.
  json AwaitState(const std::string& id, const std::string& state,
                  std::chrono::milliseconds deadline = 15'000ms) {
    json e;
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      e = Environment(id);
      if (e.value("state", "") == state) return e;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << id << " never became " << state << ": " << e.dump();
    return e;
  }
  json Audit(const std::string& query = "") { return Get("/v1/audit?limit=10000" + query)["audit"]; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& dir() const { return dir_.path; }
  void WriteRegistry(const std::string& text) { dir_.Write("envs.yaml", text); }
  Finished Cli(std::vector<std::string> args, const std::string& token_file = "ci.token") {
    args.insert(args.begin(), {"env", "--control", url(), "--token-file", dir_.path + "/" + token_file});
    return RunMeridian(args);
  }

 private:
  TempDir dir_;
  std::unique_ptr<Process> server_;
  int port_ = 0;
};

json Allocate(EnvServer& s, const json& body, int expect = 201, const char* token = kCi) {
  auto r = s.Call(token, "POST", "/v1/allocations", body);
  EXPECT_EQ(r.status, expect) << body.dump() << " → " << r.body;
  return json::parse(r.body, nullptr, false);
}

// 64 clients, a pool of 8, 20 s: the audit log replayed never shows an environment held twice, every
// environment ends available, and every client was served (the FIFO queue is fair).
TEST(Env, SixtyFourClientsNeverShareAnEnvironment) {
  std::string registry = "pools:\n  p: {}\nenvironments:\n";
  for (int i = 1; i <= 8; ++i) registry += "  - { id: e" + std::to_string(i) + ", pool: p }\n";
  EnvServer s(registry);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> cycles{0}, errors{0};
  std::vector<uint64_t> per_client(64, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < 64; ++c) {
    clients.emplace_back([&, c] {
      auto client = http::BlockingClient::Create(s.url(), kCi);
      ASSERT_TRUE(client.ok());
      const std::string body =
          json{{"pool", "p"}, {"requester", "client-" + std::to_string(c)}, {"wait", "30s"}}.dump();
      while (!stop.load()) {
        auto r = client->Request("POST", "/v1/allocations", body, 60'000'000'000);
        if (!r.ok() || r->status != 201) {
          ++errors;
          continue;
        }
        const std::string id = json::parse(r->body)["id"];
        auto d = client->Request("DELETE", "/v1/allocations/" + id, R"({"outcome":"success"})");
        if (!d.ok() || d->status != 200) ++errors;
        ++cycles;
        ++per_client[static_cast<size_t>(c)];
      }
    });
  }
  std::this_thread::sleep_for(20s);
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_GT(cycles.load(), 64u);
  for (size_t c = 0; c < per_client.size(); ++c)
    EXPECT_GT(per_client[c], 0u) << "client " << c << " was never served";
  // Replay the audit log.
  std::map<std::string, std::string> holder;  // environment → allocation
  int64_t after = 0;
  uint64_t allocations = 0, double_held = 0;
  while (true) {
    json page = s.Audit("&after=" + std::to_string(after));
    if (page.empty()) break;
    for (const auto& row : page) {
      after = row["id"];
      const std::string env = row["environment"], alloc = row["allocation"], action = row["action"];
      if (action == "allocate") {
        ++allocations;
        if (holder.count(env)) ++double_held;
        holder[env] = alloc;
      } else if (action == "deallocate" || action == "expire") {
        EXPECT_EQ(holder[env], alloc) << "deallocated by a non-holder: " << row.dump();
        holder.erase(env);
      }
    }
  }
  EXPECT_EQ(double_held, 0u);
  EXPECT_EQ(allocations, cycles.load());
  EXPECT_TRUE(holder.empty());
  const json pools = s.Get("/v1/pools")["pools"];
  ASSERT_EQ(pools.size(), 1u);
  EXPECT_EQ(pools[0]["counts"]["available"], 8) << pools.dump();
  EXPECT_EQ(pools[0]["waiting"], 0);
}

// kill -9 of the control plane while a cleanup runs: the hook dies with it (PR_SET_PDEATHSIG), and after the
// restart the cleanup is run again and the environment ends available, never stuck in `cleaning`.
TEST(Env, KillDuringCleanupEndsAvailable) {
  TempDir marks;
  EnvServer s(
      "pools:\n  p:\n    cleanup: 'echo $$ > " + marks.path + "/pid; test -f " + marks.path +
      "/fast && exit 0; exec sleep 60'\n    cleanup_timeout: 2m\nenvironments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}});
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  s.AwaitState("e1", "cleaning");
  for (int i = 0; i < 100 && !std::filesystem::exists(marks.path + "/pid"); ++i)
    std::this_thread::sleep_for(50ms);
  std::string pid_text;
  std::ifstream(marks.path + "/pid") >> pid_text;
  ASSERT_FALSE(pid_text.empty());
  const pid_t hook = std::stoi(pid_text);
  s.Kill();
  bool gone = false;  // the hook does not outlive the server (a zombie waiting for init to reap it is dead)
  for (int i = 0; i < 100 && !gone; ++i) {
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(hook) + "/stat"), stat);
    const size_t paren = stat.rfind(')');
    gone = kill(hook, 0) != 0 || (paren != std::string::npos && stat.substr(paren + 2, 1) == "Z");
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(gone) << "the cleanup hook survived the control plane";
  std::ofstream(marks.path + "/fast") << "1";
  s.Start();
  s.AwaitState("e1", "available");
  const json audit = s.Audit("&action=cleanup&environment=e1");
  ASSERT_GE(audit.size(), 2u) << audit.dump();
  EXPECT_EQ(audit[0]["outcome"], "resumed");
  EXPECT_EQ(audit.back()["outcome"], "ok");
}

// The reaper works from the store: a lease that expired while the server was down is ended after the restart.
TEST(Env, ExpiryAcrossARestart) {
  EnvServer s("pools:\n  p: { max_duration: 1m }\nenvironments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}, {"duration", "1s"}, {"requester", "job-1"}});
  const std::string id = a["id"];
  s.Kill();
  std::this_thread::sleep_for(1500ms);
  s.Start();
  s.AwaitState("e1", "available", 5'000ms);
  const json got = s.Get("/v1/allocations/" + id, kCi);
  EXPECT_EQ(got["state"], "expired");
  EXPECT_EQ(got["outcome"], "expired");
  const json audit = s.Audit("&action=expire");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["principal"], "meridian");
  EXPECT_EQ(audit[0]["allocation"], id);
}

TEST(Env, CleanupFailureMakesDirtyUntilReinstated) {
  EnvServer s(
      "pools:\n  p: { cleanup: 'echo disk full >&2; exit 4' }\nenvironments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}});
  ASSERT_EQ(
      s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>(), {{"outcome", "failure"}}).status,
      200);
  const json e = s.AwaitState("e1", "dirty");
  EXPECT_NE(e.value("note", "").find("exit 4"), std::string::npos) << e.dump();
  EXPECT_NE(e.value("cleanup_log", "").find("disk full"), std::string::npos) << e.dump();
  // No capacity while dirty: 423 with Retry-After.
  auto busy = s.Call(kCi, "POST", "/v1/allocations", {{"pool", "p"}});
  EXPECT_EQ(busy.status, 423) << busy.body;
  EXPECT_NE(busy.head.find("Retry-After: "), std::string::npos) << busy.head;
  EXPECT_EQ(s.Call(kCi, "POST", "/v1/environments/e1/reinstate").status, 403);  // env:allocate cannot
  auto r = s.Call(kAdmin, "POST", "/v1/environments/e1/reinstate");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.Environment("e1")["state"], "available");
  Allocate(s, {{"pool", "p"}});
  const json audit = s.Audit("&environment=e1");
  std::vector<std::string> actions;
  for (const auto& row : audit)
    actions.push_back(row["action"].get<std::string>() + ":" + row["outcome"].get<std::string>());
  EXPECT_EQ(actions, (std::vector<std::string>{"allocate:ok", "deallocate:failure", "cleanup:dirty",
                                               "reinstate:ok", "allocate:ok"}));
}

// drain keeps an environment out of new allocations; removing one from the registry (SIGHUP, and `meridian
// env sync`) drains it and retires it once its lease ended: out of service and out of the lists, its row kept
// as history (issue 12: removal never deletes an environment's history).
TEST(Env, DrainAndRemovalFromTheRegistry) {
  EnvServer s("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p }\n  - { id: e2, pool: p }\n");
  ASSERT_EQ(s.Call(kAdmin, "POST", "/v1/environments/e1/drain").status, 200);
  const json a = Allocate(s, {{"pool", "p"}});
  EXPECT_EQ(a["environments"][0]["id"], "e2");
  Allocate(s, {{"pool", "p"}}, 423);  // e1 is drained, e2 is held
  // e2 leaves the registry while allocated: it drains, and goes once released.
  s.WriteRegistry("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p }\n");
  s.Signal(SIGHUP);
  json e2;
  for (int i = 0; i < 100; ++i) {
    e2 = s.Environment("e2");
    if (e2.value("removed", false)) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(e2.value("removed", false)) << e2.dump();
  EXPECT_EQ(e2["state"], "allocated");
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  const json retired = s.Environment("e2");
  EXPECT_EQ(retired["state"], "retired") << retired.dump();
  const json listed = s.Get("/v1/environments")["environments"];
  for (const auto& e : listed) EXPECT_NE(e["id"], "e2");
  EXPECT_EQ(s.Get("/v1/environments?state=retired")["environments"].size(), 1u);
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["environments"], 1);
  // sync from the CLI: a bad file is refused naming file:line and field, and changes nothing.
  s.WriteRegistry("pools:\n  p: {}\nenvironments:\n  - { id: e3, pool: q }\n");
  Finished bad = s.Cli({"sync", s.dir() + "/envs.yaml"}, "admin.token");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("envs.yaml:4:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("environments[0].pool"), std::string::npos) << bad.err;
  s.WriteRegistry("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p }\n  - { id: e3, pool: p }\n");
  Finished ok = s.Cli({"sync", s.dir() + "/envs.yaml"}, "admin.token");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("added     e3"), std::string::npos) << ok.out;
  EXPECT_EQ(s.Cli({"sync", s.dir() + "/envs.yaml"}).exit_code, 1);  // env:allocate cannot sync
  // Reinstating e1 ends the drain.
  ASSERT_EQ(s.Call(kAdmin, "POST", "/v1/environments/e1/reinstate").status, 200);
  const json two = Allocate(s, {{"pool", "p"}, {"count", 2}});
  EXPECT_EQ(two["environments"].size(), 2u);
}

// An environment removed from the registry while held is never handed out again, so a request that only it
// could serve is refused at once (409 naming `require`) instead of waiting, and a request already waiting for
// it gets that answer when the registry changes; once it is released (no cleanup) it is retired, and the same
// request is still refused rather than waited on.
TEST(Env, AnEnvironmentRemovedWhileHeldIsNeverWaitedFor) {
  EnvServer s(
      "pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p, capabilities: { size: large } }\n"
      "  - { id: e2, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}, {"require", {{"size", "large"}}}});
  ASSERT_EQ(a["environments"][0]["id"], "e1") << a.dump();
  // A waiter for e1 (held), then e1 leaves the registry.
  auto waiting = std::async(std::launch::async, [&] {
    return s.Call(kCi, "POST", "/v1/allocations",
                  {{"pool", "p"}, {"require", {{"size", "large"}}}, {"wait", "20s"}});
  });
  for (int i = 0; i < 100 && s.Get("/v1/pools")["pools"][0].value("waiting", 0) == 0; ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(s.Get("/v1/pools")["pools"][0].value("waiting", 0), 1) << s.Get("/v1/pools").dump();
  s.WriteRegistry("pools:\n  p: {}\nenvironments:\n  - { id: e2, pool: p }\n");
  Finished sync = s.Cli({"sync", s.dir() + "/envs.yaml"}, "admin.token");
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  ASSERT_EQ(waiting.wait_for(5s), std::future_status::ready) << "the waiter was left waiting for e1";
  const auto answered = waiting.get();
  EXPECT_EQ(answered.status, 409) << answered.body;
  EXPECT_NE(answered.body.find("\"field\":\"require\""), std::string::npos) << answered.body;
  // While e1 is still held, and after its release retired it: refused at once, even with a wait.
  const json held = Allocate(s, {{"pool", "p"}, {"require", {{"size", "large"}}}, {"wait", "20s"}}, 409);
  EXPECT_EQ(held["error"]["code"], "unsatisfiable") << held.dump();
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  EXPECT_EQ(s.Environment("e1")["state"], "retired");
  Allocate(s, {{"pool", "p"}, {"require", {{"size", "large"}}}, {"wait", "20s"}}, 409);
  // Listed again, it serves again.
  s.WriteRegistry(
      "pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p, capabilities: { size: large } }\n"
      "  - { id: e2, pool: p }\n");
  ASSERT_EQ(s.Cli({"sync", s.dir() + "/envs.yaml"}, "admin.token").exit_code, 0);
  EXPECT_EQ(Allocate(s, {{"pool", "p"}, {"require", {{"size", "large"}}}})["environments"][0]["id"], "e1");
}

TEST(Env, GrowCreatesUpToMax) {
  EnvServer s(
      "pools:\n  stacks:\n    grow:\n      max: 2\n      create: 'printf \"{\\\"id\\\": \\\"%s\\\", "
      "\\\"region\\\": \\\"r1\\\", "
      "\\\"capabilities\\\": {\\\"kind\\\": \\\"stack\\\"}}\" \"$MERIDIAN_ENV_ID\"'\n");
  const json a = Allocate(s, {{"pool", "stacks"}});
  ASSERT_EQ(a["environments"].size(), 1u) << a.dump();
  EXPECT_EQ(a["environments"][0]["id"], "stacks-1");
  EXPECT_EQ(a["environments"][0]["capabilities"]["kind"], "stack");
  const json b = Allocate(s, {{"pool", "stacks"}});
  EXPECT_EQ(b["environments"][0]["id"], "stacks-2");
  Allocate(s, {{"pool", "stacks"}}, 423);  // at max
  // Created environments stay in the pool and are reused.
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  const json c = Allocate(s, {{"pool", "stacks"}});
  EXPECT_EQ(c["environments"][0]["id"], "stacks-1");
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["environments"], 2);
  EXPECT_EQ(s.Audit("&action=create").size(), 2u);
}

TEST(Env, IdempotencyKeyReturnsTheSameAllocation) {
  EnvServer s(
      "pools:\n  p: {}\n  q: {}\nenvironments:\n  - { id: e1, pool: p }\n  - { id: e2, pool: p }\n"
      "  - { id: f1, pool: q }\n");
  const json first = Allocate(s, {{"pool", "p"}, {"idempotency_key", "job-42"}});
  const json again = Allocate(s, {{"pool", "p"}, {"idempotency_key", "job-42"}}, 200);
  EXPECT_EQ(first["id"], again["id"]);
  EXPECT_EQ(first["environments"], again["environments"]);
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["counts"]["allocated"], 1);
  const json other = Allocate(s, {{"pool", "q"}, {"idempotency_key", "job-42"}}, 409);
  EXPECT_EQ(other["error"]["field"], "idempotency_key");
  // Another token's key is its own.
  const json theirs = Allocate(s, {{"pool", "p"}, {"idempotency_key", "job-42"}}, 201, kCi2);
  EXPECT_NE(theirs["id"], first["id"]);
  // After it ended, the key still names it (no new allocation, no credentials).
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + first["id"].get<std::string>()).status, 200);
  const json ended = Allocate(s, {{"pool", "p"}, {"idempotency_key", "job-42"}}, 200);
  EXPECT_EQ(ended["id"], first["id"]);
  EXPECT_EQ(ended["state"], "released");
  EXPECT_TRUE(ended["credentials"].empty());
}

// Waiters are served in arrival order.
TEST(Env, WaitersAreServedInOrder) {
  EnvServer s("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p }\n");
  const json held = Allocate(s, {{"pool", "p"}});
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&, i] {
      auto r = s.Call(kCi, "POST", "/v1/allocations",
                      {{"pool", "p"}, {"wait", "30s"}, {"requester", std::to_string(i)}});
      ASSERT_EQ(r.status, 201) << r.body;
      {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(i);
      }
      std::this_thread::sleep_for(100ms);
      s.Call(kCi, "DELETE", "/v1/allocations/" + json::parse(r.body)["id"].get<std::string>());
    });
    std::this_thread::sleep_for(300ms);  // each is queued before the next arrives
  }
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["waiting"], 4);
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + held["id"].get<std::string>()).status, 200);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  // A waiter whose wait runs out gets 423.
  const json again = Allocate(s, {{"pool", "p"}});
  auto r = s.Call(kCi, "POST", "/v1/allocations", {{"pool", "p"}, {"wait", "300ms"}});
  EXPECT_EQ(r.status, 423) << r.body;
  EXPECT_NE(r.body.find("within the wait"), std::string::npos) << r.body;
}

TEST(Env, RenewUpToTheMaximum) {
  EnvServer s(
      "pools:\n  p: { max_duration: 1h, default_duration: 1h }\nenvironments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}, {"duration", "10m"}});
  const std::string id = a["id"];
  auto past = s.Call(kCi, "POST", "/v1/allocations/" + id + "/renew", {{"duration", "2h"}});
  EXPECT_EQ(past.status, 409) << past.body;
  EXPECT_NE(past.body.find("max_duration"), std::string::npos) << past.body;
  auto longer = s.Call(kCi, "POST", "/v1/allocations/" + id + "/renew", {{"duration", "30m"}});
  ASSERT_EQ(longer.status, 200) << longer.body;
  EXPECT_GT(json::parse(longer.body)["expires_at"].get<std::string>(), a["expires_at"].get<std::string>());
  auto capped =
      s.Call(kCi, "POST", "/v1/allocations/" + id + "/renew");  // the default 1 h: capped at the maximum
  ASSERT_EQ(capped.status, 200) << capped.body;
  const json renewed = json::parse(capped.body);
  EXPECT_EQ(renewed["expires_at"], renewed["max_expires_at"]);
  EXPECT_EQ(s.Call(kCi, "POST", "/v1/allocations/" + id + "/renew").status, 409);   // already at the maximum
  EXPECT_EQ(s.Call(kCi2, "POST", "/v1/allocations/" + id + "/renew").status, 403);  // not the owner
  Allocate(s, {{"pool", "p"}, {"duration", "2h"}}, 400);  // past the maximum from the start
  const json audit = s.Audit("&action=renew");
  EXPECT_EQ(audit.size(), 2u);
}

TEST(Env, ScopesOwnershipAndMalformedBodies) {
  EnvServer s("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p }\n  - { id: e2, pool: p }\n");
  const std::vector<std::pair<std::string, std::string>> routes = {{"POST", "/v1/allocations"},
                                                                   {"GET", "/v1/allocations"},
                                                                   {"GET", "/v1/allocations/a-1"},
                                                                   {"DELETE", "/v1/allocations/a-1"},
                                                                   {"POST", "/v1/allocations/a-1/renew"},
                                                                   {"GET", "/v1/pools"},
                                                                   {"GET", "/v1/environments"},
                                                                   {"GET", "/v1/environments/e1"},
                                                                   {"POST", "/v1/environments/e1/drain"},
                                                                   {"POST", "/v1/environments/e1/reinstate"},
                                                                   {"POST", "/v1/environments/sync"},
                                                                   {"GET", "/v1/audit"},
                                                                   {"GET", "/metrics"}};
  for (const auto& [method, path] : routes) {
    EXPECT_EQ(s.Call(nullptr, method, path).status, 401) << method << " " << path;
    EXPECT_EQ(s.Call("wrong-token", method, path).status, 401) << method << " " << path;
    if (path != "/metrics") {
      EXPECT_EQ(s.Call(kRunsOnly, method, path).status, 403) << method << " " << path;
    }
  }
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/v1/environments/e1/drain"},
                                                        {"POST", "/v1/environments/e1/reinstate"},
                                                        {"POST", "/v1/environments/sync"},
                                                        {"GET", "/v1/audit"}}) {
    EXPECT_EQ(s.Call(kCi, method, path).status, 403) << method << " " << path;
  }
  const json a = Allocate(s, {{"pool", "p"}});
  const std::string id = a["id"];
  EXPECT_EQ(s.Call(kCi2, "DELETE", "/v1/allocations/" + id).status, 403);
  EXPECT_EQ(s.Call(kCi2, "GET", "/v1/allocations/" + id).status, 403);
  EXPECT_TRUE(s.Get("/v1/allocations", kCi2)["allocations"].empty());  // ci2 sees only its own
  EXPECT_EQ(s.Get("/v1/allocations", kCi)["allocations"].size(), 1u);
  EXPECT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + id).status, 200);
  EXPECT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + id).status, 200);  // idempotent
  EXPECT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/a-nope").status, 404);
  auto field = [&](const json& body) {
    auto r = s.Call(kCi, "POST", "/v1/allocations", body);
    EXPECT_EQ(r.status / 100, 4) << body.dump() << " → " << r.body;
    return json::parse(r.body)["error"].value("field", "");
  };
  EXPECT_EQ(field({{"pool", 5}}), "pool");
  EXPECT_EQ(field(json::object()), "pool");
  EXPECT_EQ(field({{"pool", "p"}, {"count", 0}}), "count");
  EXPECT_EQ(field({{"pool", "p"}, {"count", 3}}), "count");  // 409: only 2 match, ever
  EXPECT_EQ(field({{"pool", "p"}, {"bogus", 1}}), "bogus");
  EXPECT_EQ(field({{"pool", "p"}, {"wait", "soon"}}), "wait");
  EXPECT_EQ(field({{"pool", "p"}, {"require", "x"}}), "require");
  EXPECT_EQ(field({{"pool", "nope"}}), "pool");
  EXPECT_EQ(s.Call(kCi, "POST", "/v1/allocations/", "not json").status, 400);
  auto metrics = s.Call(kCi, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("meridian_env_environments{pool=\"p\",state=\"available\"} 2"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("meridian_env_wait_seconds_bucket{pool=\"p\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("meridian_env_deallocations_total{pool=\"p\",outcome=\"success\"} 1"),
            std::string::npos);
}

// `meridian env exec`: the environment and its credentials are exported, CMD's exit code is returned, and the
// allocation always ends (outcome from the exit code).
TEST(Env, ExecExportsCredentialsAndAlwaysDeallocates) {
  TempDir secrets;
  secrets.Write("key", "s3cr3t\n");
  EnvServer s(
      "pools:\n  p:\n    credentials: { command: 'printf \"{\\\"API_TOKEN\\\": \\\"tok-%s\\\"}\" "
      "\"$MERIDIAN_ENV_ID\"' }\n  f:\n    credentials: { files: { DB_PASSWORD: " +
      secrets.path +
      "/key } }\n"
      "environments:\n  - { id: e1, pool: p, region: eu-west-1, capabilities: { size: large } }\n"
      "  - { id: f1, pool: f }\n");
  Finished r =
      s.Cli({"exec", "--pool", "p", "--require", "size=large", "--", "sh", "-c",
             "echo \"$MERIDIAN_ENV_ID $MERIDIAN_ENV_REGION $MERIDIAN_ENV_CAP_SIZE $API_TOKEN\"; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.out.find("e1 eu-west-1 large tok-e1"), std::string::npos) << r.out << r.err;
  const json audit = s.Audit("&action=deallocate");
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0]["outcome"], "failure");
  EXPECT_EQ(s.Environment("e1")["state"], "available");
  Finished f = s.Cli({"exec", "--pool", "f", "--", "sh", "-c", "test \"$DB_PASSWORD\" = s3cr3t"});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  // No capacity: the documented exit status 75, nothing run.
  const json held = Allocate(s, {{"pool", "f"}});
  Finished busy = s.Cli({"exec", "--pool", "f", "--", "true"});
  EXPECT_EQ(busy.exit_code, 75) << busy.err;
}

// The documented example registry syncs and serves what its comments say.
TEST(Env, ExampleRegistryWorks) {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/examples/environments.yaml");
  std::stringstream text;
  text << in.rdbuf();
  EnvServer s(text.str());
  const json a = Allocate(s, {{"pool", "aws-accounts"}, {"require", {{"gpu", "yes"}}}});
  EXPECT_EQ(a["environments"][0]["id"], "aws-dev-2");
  EXPECT_EQ(a["credentials"]["aws-dev-2"]["AWS_PROFILE"], "ci-aws-dev-2");
  ASSERT_EQ(s.Call(kCi, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  const json e = s.AwaitState("aws-dev-2", "available");
  EXPECT_NE(e.value("cleanup_log", "").find("cleaning aws-dev-2 for a-"), std::string::npos) << e.dump();
  const json st = Allocate(s, {{"pool", "stacks"}, {"require", {{"kind", "stack"}}}});
  EXPECT_EQ(st["environments"][0]["id"], "stacks-1");
}

}  // namespace
}  // namespace meridian::testing
