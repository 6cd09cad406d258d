// `meridian serve` as an attacker and a careless user would use it (issue 12): requests pipelined behind
// every kind of held response, bodies before tokens, descriptors and memory run out, a store that cannot
// write, secrets that are not text, registries that are empty, tokens and values where they do not belong.
// Each test fails on the code before the fix; the memory ones run under ASan in the test stage.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cluster.h"
#include "process.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kT1 = "t1-secret";
constexpr const char* kT2 = "t2-secret";
constexpr const char* kAdminT = "admin-secret";
constexpr const char* kRunsT = "runs-secret";
constexpr const char* kAgentT = "agent-secret";

// A raw loopback connection: for pipelines and partial requests that no well-behaved client sends.
class Raw {
 public:
  explicit Raw(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Raw() { close(fd_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  bool connected() const { return connected_; }
  bool Send(const std::string& s) { return send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == ssize_t(s.size()); }
  // Reads until `count` responses are complete (by Content-Length), the peer closes, or the deadline.
  const std::string& Read(int count, std::chrono::milliseconds deadline = 15'000ms) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (Responses() < count && std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      got_.append(buf, static_cast<size_t>(n));
    }
    return got_;
  }
  // The status codes of the complete responses so far, in order.
  std::vector<int> Statuses() const {
    std::vector<int> out;
    size_t at = 0;
    while (true) {
      const size_t end = got_.find("\r\n\r\n", at);
      if (end == std::string::npos) break;
      const std::string head = got_.substr(at, end - at);
      const size_t cl = head.find("Content-Length: ");
      const size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
      if (got_.size() < end + 4 + len) break;
      out.push_back(std::atoi(head.c_str() + 9));
      at = end + 4 + len;
    }
    return out;
  }
  int Responses() const { return static_cast<int>(Statuses().size()); }
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string got_;
};

std::string Request(const std::string& method, const std::string& path, const char* token,
                    const std::string& body = "", const std::vector<std::string>& headers = {}) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: t\r\n";
  if (token) r += std::string("Authorization: Bearer ") + token + "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST" || method == "DELETE")
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

int64_t RssKib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// user + system CPU seconds of a process so far.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// `meridian serve` with five tokens, a registry and extra server.yaml lines.
class Server {
 public:
  Server(const std::string& registry, const std::string& extra = "") {
    dir_.Write("envs.yaml", registry);
    Configure(extra);
    Start();
  }
  void Configure(const std::string& extra) {
    dir_.Write("server.yaml", "store: sqlite:" + dir_.path +
                                  "/state/m.db\nregistry: envs.yaml\nlong_poll: 1s\n" + extra +
                                  "tokens:\n"
                                  "  - { name: t1, scopes: [env:allocate], sha256: " +
                                  Sha256(kT1) +
                                  " }\n"
                                  "  - { name: t2, scopes: [env:allocate], sha256: " +
                                  Sha256(kT2) +
                                  " }\n"
                                  "  - { name: admin, scopes: [env:admin, runs:read], sha256: " +
                                  Sha256(kAdminT) +
                                  " }\n"
                                  "  - { name: ci, scopes: [runs:read, runs:write], sha256: " +
                                  Sha256(kRunsT) +
                                  " }\n"
                                  "  - { name: agents, scopes: [agent], sha256: " +
                                  Sha256(kAgentT) + " }\n");
  }
  // `wrapper`: a command line the server runs under (prlimit …).
  void Start(std::vector<std::string> wrapper = {}) {
    std::vector<std::string> args = {
        MeridianBinary(),           "serve", "-c",
        dir_.path + "/server.yaml", "-l",    "127.0.0.1:" + std::to_string(port_)};
    args.insert(args.begin(), wrapper.begin(), wrapper.end());
    process_ = std::make_unique<Process>(args);
    const std::string line = process_->ReadLine(20'000ms);
    ASSERT_NE(line.find("listening on http://"), std::string::npos) << line << process_->Stderr();
    port_ = std::stoi(line.substr(line.rfind(':') + 1));
  }
  void Kill() {
    process_->Signal(SIGKILL);
    process_->Wait(5'000ms);
    process_.reset();
  }
  HttpReply Call(const char* token, const std::string& method, const std::string& path,
                 const json& body = nullptr, std::vector<std::string> headers = {}) {
    if (token) headers.push_back(std::string("Authorization: Bearer ") + token);
    return HttpCall(port_, method, path, headers, body.is_null() ? "" : body.dump());
  }
  json Get(const std::string& path, const char* token = kAdminT) {
    auto r = Call(token, "GET", path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
  bool Healthy() { return Call(kAdminT, "GET", "/healthz").status == 200; }
  json Audit(const std::string& query = "") { return Get("/v1/audit?limit=10000" + query)["audit"]; }
  // Waits for an audit row with this action and outcome.
  bool AwaitAudit(const std::string& action, const std::string& outcome,
                  std::chrono::milliseconds d = 20'000ms) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      for (const auto& row : Audit("&action=" + action)) {
        if (row["outcome"] == outcome) return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  pid_t pid() const { return process_->pid(); }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_.path; }
  void Write(const std::string& name, const std::string& text) { dir_.Write(name, text); }
  Process& process() { return *process_; }
  Finished Cli(std::vector<std::string> args, const char* token) {
    dir_.Write("cli.token", std::string(token) + "\n");
    args.insert(args.begin(), {"env", "--control", url(), "--token-file", dir_.path + "/cli.token"});
    return RunMeridian(args, 120'000ms);
  }

 private:
  TempDir dir_;
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

const std::string kPlain = "pools:\n  plain: {}\nenvironments:\n" + [] {
  std::string s;
  for (int i = 1; i <= 5; ++i) s += "  - { id: e" + std::to_string(i) + ", pool: plain }\n";
  return s;
}();

json Allocate(Server& s, const json& body, int expect, const char* token = kT1) {
  auto r = s.Call(token, "POST", "/v1/allocations", body);
  EXPECT_EQ(r.status, expect) << body.dump() << " -> " << r.body;
  return json::parse(r.body, nullptr, false);
}

// ---- 1. crashes --------------------------------------------------------------------------------------

// The reproduction from the issue: requests pipelined behind a waiting allocation, answered from inside the
// pool's walk over its waiters (a wait running out in the tick, a release), re-entered the handler on the
// same stack and invalidated the walk. Several rounds, both paths.
TEST(Security, PipelinedAllocationsBehindAWaiterDoNotCrashTheServer) {
  Server s(kPlain);
  std::vector<std::string> holds;
  for (int i = 0; i < 5; ++i)
    holds.push_back(Allocate(s, {{"pool", "plain"}, {"duration", "10m"}}, 201)["id"]);
  const std::string wait30 = Request("POST", "/v1/allocations", kT1, R"({"pool":"plain","wait":"30s"})");
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<Raw>> waiters;
    for (int i = 0; i < 20; ++i) {
      waiters.push_back(std::make_unique<Raw>(s.port()));
      ASSERT_TRUE(waiters.back()->Send(wait30));
    }
    Raw x(s.port());
    ASSERT_TRUE(x.Send(Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"1s"})")));
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(x.Send(Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"0s"})") +
                       Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"30s"})") +
                       Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"0s"})")));
    for (int i = 0; i < 20; ++i) {
      waiters.push_back(std::make_unique<Raw>(s.port()));
      ASSERT_TRUE(waiters.back()->Send(wait30));
    }
    // X's first wait runs out in the tick: 423, then its pipeline is answered in order (0s: 423).
    x.Read(2, 5'000ms);
    ASSERT_GE(x.Responses(), 2) << x.Read(0);
    EXPECT_EQ(x.Statuses()[0], 423);
    EXPECT_EQ(x.Statuses()[1], 423);
    // A release answers a waiter from inside the pump's walk.
    ASSERT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + holds[round]).status, 200);
    ASSERT_TRUE(s.Healthy()) << s.process().Stderr();
    // The waiter that got it gives it back for the next round.
    bool returned = false;
    for (auto& w : waiters) {
      if (w->Read(1, 100ms).find("HTTP/1.1 201") == std::string::npos) continue;
      const std::string& got = w->Read(1);
      const json a = json::parse(got.substr(got.find("\r\n\r\n") + 4));
      holds[round] = a["id"];
      returned = true;
      break;
    }
    EXPECT_TRUE(returned);
  }
  EXPECT_TRUE(s.Healthy()) << s.process().Stderr();
  const json pools = s.Get("/v1/pools")["pools"];
  EXPECT_EQ(pools[0]["counts"]["allocated"], 5) << pools.dump();
}

// The deterministic form: 40 connections each pipeline [wait 1s][wait 30s][wait 0s]. The tick times the 40
// first ones out in one walk over the queue; on the old code each answer ran the connection's next request on
// the same stack, pushing onto the queue being walked (heap-use-after-free in the deque under ASan, every
// time).
TEST(Security, ManyAnswersFromOneWalkWithPipelinesBehindThem) {
  Server s(kPlain);
  for (int i = 0; i < 5; ++i) Allocate(s, {{"pool", "plain"}, {"duration", "10m"}}, 201);
  std::vector<std::unique_ptr<Raw>> conns;
  for (int i = 0; i < 40; ++i) {
    conns.push_back(std::make_unique<Raw>(s.port()));
    ASSERT_TRUE(
        conns.back()->Send(Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"1s"})") +
                           Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"30s"})") +
                           Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"0s"})")));
  }
  for (auto& c : conns) {
    c->Read(1, 10'000ms);
    EXPECT_EQ(c->Statuses(), std::vector<int>{423});
  }
  ASSERT_TRUE(s.Healthy()) << s.process().Stderr();
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["waiting"], 40);  // every second request waits, in order
}

// Requests pipelined behind each kind of held response (an allocation that waits, a credentials command
// running, a grow create running, an agent's work poll, a start long poll) are answered, in order, once the
// held one is; nothing in between runs them early or twice.
TEST(Security, EveryKindOfHeldResponseKeepsItsPipelineInOrder) {
  TempDir marks;
  Server s(
      "pools:\n  plain: {}\n"
      "  slow-creds:\n    credentials: { command: 'sleep 1; echo \"{\\\"K\\\": \\\"v\\\"}\"' }\n"
      "  grow:\n    grow: { max: 1, create: 'sleep 1; echo \"{\\\"id\\\": \\\"g1\\\"}\"' }\n"
      "environments:\n  - { id: p1, pool: plain }\n  - { id: c1, pool: slow-creds }\n");
  const std::string health = Request("GET", "/healthz", kAdminT);
  const auto held_then = [&](const std::string& held, int first_status, const std::string& what) {
    Raw r(s.port());
    ASSERT_TRUE(r.Send(held + health + health));
    r.Read(3);
    const auto st = r.Statuses();
    ASSERT_EQ(st.size(), 3u) << what << ": " << r.Read(0);
    EXPECT_EQ(st[0], first_status) << what;
    EXPECT_EQ(st[1], 200) << what;
    EXPECT_EQ(st[2], 200) << what;
  };
  const json hold = Allocate(s, {{"pool", "plain"}}, 201);
  std::thread release([&] {
    std::this_thread::sleep_for(500ms);
    s.Call(kT1, "DELETE", "/v1/allocations/" + hold["id"].get<std::string>());
  });
  held_then(Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"10s"})"), 201,
            "allocation wait");
  release.join();
  held_then(Request("POST", "/v1/allocations", kT2, R"({"pool":"slow-creds"})"), 201, "credentials command");
  held_then(Request("POST", "/v1/allocations", kT2, R"({"pool":"grow"})"), 201, "grow create");
  // Agents: register, then poll for work (no run: answered 204 after the long poll).
  auto reg = s.Call(kAgentT, "POST", "/v1/agents", {{"name", "a"}, {"region", "r"}});
  ASSERT_EQ(reg.status, 201) << reg.body;
  const json agent = json::parse(reg.body);
  const std::string secret = "Meridian-Agent-Secret: " + agent["secret"].get<std::string>();
  held_then(Request("GET", "/v1/agents/" + agent["id"].get<std::string>() + "/work", kAgentT, "", {secret}),
            204, "work poll");
  // A start long poll: a run that waits for an agent of another region.
  auto run = s.Call(kRunsT, "POST", "/v1/runs",
                    {{"plan",
                      "name: w\nregions: { elsewhere: {} }\nsteps:\n  - { name: s, command: [true], "
                      "region: elsewhere, run_max_time: 1s }\n"}});
  ASSERT_EQ(run.status, 201) << run.body;
  const std::string id = json::parse(run.body)["id"];
  held_then(Request("GET", "/v1/runs/" + id + "/start?wait=1s", kAdminT), 404, "start long poll");
  EXPECT_TRUE(s.Healthy());
}

// ---- 2. secrets that are not text --------------------------------------------------------------------

// A credentials file of arbitrary bytes is handed out byte-exact ({"base64": …}), revoked at deallocation and
// at expiry (the server used to die in the reaper), and `env exec` exports the bytes themselves.
TEST(Security, CredentialsThatAreNotUtf8AreHandedOutExactlyAndRevoked) {
  TempDir files;
  const std::string secret("\xff\xfe-key\x01", 7);
  { std::ofstream(files.path + "/secret", std::ios::binary) << secret; }
  Server s("pools:\n  p:\n    credentials:\n      files: { SECRET: " + files.path +
           "/secret }\n      revoke: 'cat > " + files.path +
           "/revoked-$MERIDIAN_ALLOCATION_ID'\n"
           "environments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}}, 201);
  const json value = a["credentials"]["e1"]["SECRET"];
  ASSERT_TRUE(value.is_object()) << a.dump();
  EXPECT_EQ(value["base64"], "//4ta2V5AQ==");  // base64 of ff fe 2d 6b 65 79 01
  ASSERT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  EXPECT_TRUE(s.AwaitAudit("revoke", "ok"));
  std::ifstream revoked(files.path + "/revoked-" + a["id"].get<std::string>());
  const std::string input((std::istreambuf_iterator<char>(revoked)), std::istreambuf_iterator<char>());
  EXPECT_NE(input.find("//4ta2V5AQ=="), std::string::npos) << input;
  // At expiry: the reaper revokes too, and the server lives on.
  const json b = Allocate(s, {{"pool", "p"}, {"duration", "1s"}}, 201);
  for (int i = 0; i < 200 && !std::filesystem::exists(files.path + "/revoked-" + b["id"].get<std::string>());
       ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(std::filesystem::exists(files.path + "/revoked-" + b["id"].get<std::string>()));
  EXPECT_TRUE(s.Healthy()) << s.process().Stderr();
  // exec exports the bytes (printed here as hex by od).
  Finished f = s.Cli(
      {"exec", "--pool", "p", "--wait", "10s", "--", "sh", "-c", "printf %s \"$SECRET\" | od -An -tx1"}, kT1);
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.out.find("ff fe 2d 6b 65 79 01"), std::string::npos) << f.out;
}

// A revoke that a restart interrupted runs again after it (pending in the store), whatever the cause.
TEST(Security, ARevokeInterruptedByARestartRunsAgain) {
  TempDir files;
  Server s(
      "pools:\n  p:\n    credentials:\n      command: 'echo \"{\\\"K\\\": \\\"v\\\"}\"'\n"
      "      revoke: 'echo $$ >> " +
      files.path + "/started; test -f " + files.path +
      "/fast || exec sleep 60'\nenvironments:\n  - { id: e1, pool: p }\n");
  const json a = Allocate(s, {{"pool", "p"}}, 201);
  ASSERT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  for (int i = 0; i < 200 && !std::filesystem::exists(files.path + "/started"); ++i)
    std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(std::filesystem::exists(files.path + "/started"));
  s.Kill();
  files.Write("fast", "");
  s.Start();
  EXPECT_TRUE(s.AwaitAudit("revoke", "resumed"));
  EXPECT_TRUE(s.AwaitAudit("revoke", "ok"));
}

// ---- 3. a store that cannot write --------------------------------------------------------------------

// With the store's writes failing (the file-size limit stands in for a full disk), a release answers 503
// with Retry-After and the lease stays as it was; `env deallocate` retries and succeeds once the store can
// write again. Nothing is answered as done that was not stored.
TEST(Security, AStoreThatCannotWriteAnswers503AndTheCliRetries) {
  Server s(kPlain);
  const json a = Allocate(s, {{"pool", "plain"}}, 201);
  const std::string id = a["id"];
  rlimit full{1, RLIM_INFINITY};
  ASSERT_EQ(prlimit(s.pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  auto r = s.Call(kT1, "DELETE", "/v1/allocations/" + id);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.head.find("Retry-After:"), std::string::npos) << r.head;
  EXPECT_EQ(json::parse(s.Call(kT1, "GET", "/v1/allocations/" + id).body)["state"], "active");
  auto allocate = s.Call(kT1, "POST", "/v1/allocations", {{"pool", "plain"}});
  EXPECT_EQ(allocate.status, 503) << allocate.body;
  EXPECT_TRUE(s.Healthy());
  std::thread disk_freed([&] {
    std::this_thread::sleep_for(2s);
    rlimit fine{RLIM_INFINITY, RLIM_INFINITY};
    prlimit(s.pid(), RLIMIT_FSIZE, &fine, nullptr);
  });
  Finished f = s.Cli({"deallocate", id}, kT1);
  disk_freed.join();
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.err.find("retrying"), std::string::npos) << f.err;
  EXPECT_EQ(json::parse(s.Call(kT1, "GET", "/v1/allocations/" + id).body)["state"], "released");
}

// ---- 4. registries -----------------------------------------------------------------------------------

// An empty registry (an editor mid-write) on SIGHUP or `env sync` changes nothing; a file that says
// `allow_empty: true` removes the pools, and the environments are retired with their history kept.
TEST(Security, AnEmptyRegistryRemovesNothingUnlessItSaysSo) {
  Server s(kPlain);
  const json a = Allocate(s, {{"pool", "plain"}}, 201);
  s.Write("envs.yaml", "");
  s.process().Signal(SIGHUP);
  for (int i = 0; i < 100 && s.process().Stderr().find("allow_empty") == std::string::npos; ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_NE(s.process().Stderr().find("allow_empty: true"), std::string::npos) << s.process().Stderr();
  EXPECT_EQ(s.Get("/v1/pools")["pools"].size(), 1u);
  EXPECT_EQ(s.Get("/v1/environments")["environments"].size(), 5u);
  Finished refused = s.Cli({"sync", s.dir() + "/envs.yaml"}, kAdminT);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("allow_empty"), std::string::npos) << refused.err;
  s.Write("envs.yaml", "allow_empty: true\n");
  Finished meant = s.Cli({"sync", s.dir() + "/envs.yaml"}, kAdminT);
  EXPECT_EQ(meant.exit_code, 0) << meant.err;
  EXPECT_TRUE(s.Get("/v1/pools")["pools"].empty());
  const std::string held = a["environments"][0]["id"];
  const json free = s.Get("/v1/environments/" + std::string(held == "e2" ? "e3" : "e2"));
  EXPECT_EQ(free["state"], "retired") << free.dump();
  // The held one drains and is retired when released; its allocation and audit stay.
  ASSERT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  EXPECT_EQ(s.Get("/v1/environments/" + held)["state"], "retired");
  EXPECT_FALSE(s.Audit("&environment=" + held).empty());
}

// ---- 5-8. memory, descriptors, parsing ---------------------------------------------------------------

// Without a valid token nothing of a body is read: 64 connections announcing 8 MiB each get 401 at once,
// and the server's memory does not grow by what they send.
TEST(Security, NoBodyIsReadBeforeTheToken) {
  Server s(kPlain);
  const int64_t before = RssKib(s.pid());
  std::vector<std::unique_ptr<Raw>> conns;
  const std::string head = "POST /v1/allocations HTTP/1.1\r\nHost: t\r\nContent-Length: 8388608\r\n\r\n";
  for (int i = 0; i < 64; ++i) {
    conns.push_back(std::make_unique<Raw>(s.port()));
    ASSERT_TRUE(conns.back()->Send(head));
  }
  for (auto& c : conns) {
    c->Read(1, 5'000ms);
    ASSERT_EQ(c->Statuses(), std::vector<int>{401});
  }
  // They send their bodies anyway.
  const std::string chunk(1 << 20, 'x');
  for (auto& c : conns) {
    fcntl(c->fd(), F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 8; ++i) (void)!send(c->fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
  }
  std::this_thread::sleep_for(500ms);
  EXPECT_LT(RssKib(s.pid()) - before, 64 * 1024) << "RSS grew by the unauthenticated bodies";
  // With a token, a route's own limit applies before its body: allocation bodies are small.
  Raw big(s.port());
  ASSERT_TRUE(big.Send("POST /v1/allocations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " +
                       std::string(kT1) + "\r\nContent-Length: 1000000\r\n\r\n"));
  big.Read(1);
  EXPECT_EQ(big.Statuses(), std::vector<int>{413});
  EXPECT_TRUE(s.Healthy());
}

// Behind a held request (an allocation that waits) the server stops reading the connection: 300 MB
// pipelined after it do not become server memory.
TEST(Security, APipelineBehindAHeldRequestIsNotBuffered) {
  Server s(kPlain);
  for (int i = 0; i < 5; ++i) Allocate(s, {{"pool", "plain"}}, 201);
  const int64_t before = RssKib(s.pid());
  Raw r(s.port());
  ASSERT_TRUE(r.Send(Request("POST", "/v1/allocations", kT1, R"({"pool":"plain","wait":"30s"})")));
  std::this_thread::sleep_for(200ms);
  fcntl(r.fd(), F_SETFL, O_NONBLOCK);
  const std::string junk = Request("GET", "/healthz", kT1);
  std::string chunk;
  while (chunk.size() < (1 << 20)) chunk += junk;
  size_t sent = 0;
  for (int quiet = 0; quiet < 50 && sent < 300u * 1000 * 1000;) {
    const ssize_t n = send(r.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      quiet = 0;
    } else {
      ++quiet;
      std::this_thread::sleep_for(10ms);
    }
  }
  EXPECT_LT(sent, 300u * 1000 * 1000) << "the server read everything";
  EXPECT_LT(RssKib(s.pid()) - before, 64 * 1024);
  EXPECT_TRUE(s.Healthy());
}

// Out of descriptors (RLIMIT_NOFILE 64 from the start, 100 idle connections): new clients are still served
// (the least recently active idle connections make room, keeping descriptors for the store and hooks) and the
// loop does not spin on a listener it cannot accept from.
TEST(Security, RunningOutOfDescriptorsNeitherSpinsNorStarves) {
  Server s(kPlain);
  s.Kill();
  s.Start({"/usr/bin/prlimit", "--nofile=64:64"});  // util-linux (scripts/install-deps)
  std::vector<std::unique_ptr<Raw>> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(std::make_unique<Raw>(s.port()));
  std::this_thread::sleep_for(500ms);
  const double cpu_before = CpuSeconds(s.pid());
  std::this_thread::sleep_for(2s);
  EXPECT_LT(CpuSeconds(s.pid()) - cpu_before, 1.0) << "the loop spins";
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.Healthy()) << s.process().Stderr();
  // An allocation still works: the store and its transaction have their descriptors.
  Allocate(s, {{"pool", "plain"}}, 201);
  EXPECT_NE(s.process().Stderr().find("at the connection limit"), std::string::npos);
}

// Bodies nested deeper than 64 levels are refused without parsing them, naming the depth; a plan's large
// body is parsed off the loop (the server keeps answering).
TEST(Security, DeeplyNestedBodiesAreRefusedNamingTheDepth) {
  Server s(kPlain);
  const std::string nested = std::string(100, '[') + std::string(100, ']');
  auto small =
      s.Call(kT1, "POST", "/v1/allocations", json::parse("{\"pool\": \"plain\", \"x\": " + nested + "}"));
  EXPECT_EQ(small.status, 400);
  EXPECT_NE(small.body.find("nest more than 64 levels"), std::string::npos) << small.body;
  std::string huge = "{\"plan\": " + std::string(3 << 20, '[') + std::string(3 << 20, ']') + "}";
  auto plan = HttpCall(s.port(), "POST", "/v1/runs", {std::string("Authorization: Bearer ") + kRunsT}, huge);
  EXPECT_EQ(plan.status, 400);
  EXPECT_NE(plan.body.find("nest more than 64 levels"), std::string::npos) << plan.body;
  EXPECT_TRUE(s.Healthy());
}

// ---- 9. per-token caps -------------------------------------------------------------------------------

TEST(Security, ActiveRunsAndWaitingAllocationsAreCappedPerToken) {
  Server s(kPlain,
           "max_active_runs_per_token: 2\nmax_waiting_allocations_per_token: 2\nmax_ready_timeout: 10m\n");
  const std::string plan =
      "name: w\nready_timeout: 5m\nregions: { nowhere: {} }\nsteps:\n  - { name: s, command: [true], region: "
      "nowhere, "
      "run_max_time: 1s }\n";
  std::string too_long = plan;
  too_long.replace(too_long.find("5m"), 2, "100000h");
  auto forever = s.Call(kRunsT, "POST", "/v1/runs", {{"plan", too_long}});
  EXPECT_EQ(forever.status, 400) << forever.body;
  EXPECT_EQ(json::parse(forever.body)["error"]["field"], "ready_timeout");
  for (int i = 0; i < 2; ++i) EXPECT_EQ(s.Call(kRunsT, "POST", "/v1/runs", {{"plan", plan}}).status, 201);
  auto third = s.Call(kRunsT, "POST", "/v1/runs", {{"plan", plan}});
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_NE(third.body.find("max_active_runs_per_token: 2"), std::string::npos) << third.body;
  EXPECT_NE(third.head.find("Retry-After:"), std::string::npos);
  // Waiting allocations: t1 may have two waiting; t2 is not affected by t1's.
  for (int i = 0; i < 5; ++i) Allocate(s, {{"pool", "plain"}}, 201, kAdminT);
  std::vector<std::unique_ptr<Raw>> waiting;
  for (int i = 0; i < 2; ++i) {
    waiting.push_back(std::make_unique<Raw>(s.port()));
    ASSERT_TRUE(
        waiting.back()->Send(Request("POST", "/v1/allocations", kT1, R"({"pool":"plain","wait":"30s"})")));
  }
  for (int i = 0; i < 100 && s.Get("/v1/pools")["pools"][0]["waiting"] != 2; ++i)
    std::this_thread::sleep_for(20ms);
  auto capped = s.Call(kT1, "POST", "/v1/allocations", {{"pool", "plain"}, {"wait", "30s"}});
  EXPECT_EQ(capped.status, 429) << capped.body;
  EXPECT_NE(capped.body.find("max_waiting_allocations_per_token: 2"), std::string::npos);
  Raw other(s.port());
  ASSERT_TRUE(other.Send(Request("POST", "/v1/allocations", kT2, R"({"pool":"plain","wait":"30s"})")));
  for (int i = 0; i < 100 && s.Get("/v1/pools")["pools"][0]["waiting"] != 3; ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(s.Get("/v1/pools")["pools"][0]["waiting"], 3);
}

// ---- 10-12. credentials of agents and of the server --------------------------------------------------

// A step sees the plan's env and the machine's basics, never the agent's token or the rest of its
// environment: step logs are readable with runs:read.
TEST(Security, StepsDoNotInheritTheAgentsCredentials) {
  Server s(kPlain);
  Process agent(
      {MeridianBinary(), "agent", "--control", s.url(), "--region", "local", "--name", "a1", "--once"},
      {std::string("MERIDIAN_TOKEN=") + kAgentT, "CLOUD_SECRET=do-not-leak"});
  for (int i = 0; i < 200 && s.Get("/v1/agents", kAdminT)["agents"].empty(); ++i)
    std::this_thread::sleep_for(50ms);
  auto run = s.Call(kRunsT, "POST", "/v1/runs",
                    {{"plan",
                      "name: e\nstart_buffer: 200ms\nregions: { local: {} }\nsteps:\n"
                      "  - { name: show, command: [env], env: { FROM_PLAN: yes }, run_max_time: 10s }\n"}});
  ASSERT_EQ(run.status, 201) << run.body;
  const std::string id = json::parse(run.body)["id"];
  std::string log;
  for (int i = 0; i < 300; ++i) {
    auto r = s.Call(kRunsT, "GET", "/v1/runs/" + id + "/steps/show/log?instance=0");
    if (r.status == 200) {
      log = r.body;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(log.empty()) << agent.Stderr();
  EXPECT_NE(log.find("FROM_PLAN=yes"), std::string::npos) << log;
  EXPECT_NE(log.find("PATH="), std::string::npos) << log;
  EXPECT_EQ(log.find(kAgentT), std::string::npos) << log;
  EXPECT_EQ(log.find("do-not-leak"), std::string::npos) << log;
}

// An agent id belongs to the process it was issued to: another agent token cannot re-register it, poll its
// work or speak for it in a run.
TEST(Security, AnAgentIdIsBoundToItsSecret) {
  Server s(kPlain);
  auto first = s.Call(kAgentT, "POST", "/v1/agents", {{"name", "a"}, {"region", "r"}});
  ASSERT_EQ(first.status, 201);
  const json a = json::parse(first.body);
  const std::string id = a["id"], secret = a["secret"];
  EXPECT_EQ(secret.size(), 64u);
  auto takeover = s.Call(kAgentT, "POST", "/v1/agents", {{"id", id}, {"name", "evil"}, {"region", "r"}});
  EXPECT_EQ(takeover.status, 403) << takeover.body;
  auto wrong = s.Call(kAgentT, "POST", "/v1/agents", {{"id", id}, {"name", "evil"}, {"region", "r"}},
                      {"Meridian-Agent-Secret: 00"});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(s.Call(kAgentT, "GET", "/v1/agents/" + id + "/work").status, 403);
  EXPECT_EQ(s.Call(kAgentT, "POST", "/v1/runs/r-x/agents/" + id + "/ready", json::object()).status, 403);
  auto again = s.Call(kAgentT, "POST", "/v1/agents", {{"id", id}, {"name", "a"}, {"region", "r"}},
                      {"Meridian-Agent-Secret: " + secret});
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(json::parse(again.body)["id"], id);
  EXPECT_FALSE(json::parse(again.body).contains("secret"));  // issued once
  EXPECT_EQ(s.Get("/v1/agents", kAdminT)["agents"][0]["name"], "a");
}

// The state directory and every file in it are the server's user's alone, and the store holds keyed hashes:
// a copy of meridian.db does not hold the tokens' SHA-256.
TEST(Security, StateIsPrivateAndTokensAreKeyed) {
  Server s(kPlain);
  Allocate(s, {{"pool", "plain"}}, 201);
  const std::string state = s.dir() + "/state";
  struct stat st {};
  ASSERT_EQ(stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const auto& e : std::filesystem::directory_iterator(state)) {
    ASSERT_EQ(stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << e.path();
  }
  EXPECT_TRUE(std::filesystem::exists(state + "/server.key"));
  s.Kill();  // everything in the WAL is in the files
  for (const char* name : {"m.db", "m.db-wal"}) {
    std::ifstream in(state + "/" + name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* t : {kT1, kAdminT, kAgentT}) EXPECT_EQ(bytes.find(Sha256(t)), std::string::npos) << name;
  }
  s.Start();  // the same key: the same tokens still work
  EXPECT_TRUE(s.Healthy());
}

// ---- 13-20. answers ----------------------------------------------------------------------------------

// A requester (or an agent name) with a line break and terminal escapes cannot forge a log line.
TEST(Security, UserValuesCannotForgeLogLines) {
  Server s(kPlain);
  const std::string forged = "ci\n12:00:00.000 info  allocation granted to root\x1b[2J";
  Allocate(s, {{"pool", "plain"}, {"requester", forged}, {"duration", "1s"}}, 201);
  s.Call(kAgentT, "POST", "/v1/agents", {{"name", "a\nb\x1b]0;x\x07"}, {"region", "r"}});
  for (int i = 0; i < 100 && s.process().Stderr().find("expired") == std::string::npos; ++i)
    std::this_thread::sleep_for(50ms);
  const std::string& log = s.process().Stderr();
  EXPECT_NE(log.find("expired"), std::string::npos) << log;
  EXPECT_EQ(log.find("\n12:00:00.000 info  allocation granted"), std::string::npos) << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos);
  EXPECT_NE(log.find("ci\\n12:00:00.000 info  allocation granted to root\\x1b[2J"), std::string::npos) << log;
  EXPECT_NE(log.find("a\\nb\\x1b]0;x\\x07"), std::string::npos) << log;
}

// Another token's allocation is just not yours (its owner and requester are not told); lists filter by
// owner before the limit.
TEST(Security, OthersAllocationsStayTheirs) {
  Server s(kPlain);
  const json mine = Allocate(s, {{"pool", "plain"}, {"requester", "my-job"}}, 201, kT1);
  for (int i = 0; i < 3; ++i) Allocate(s, {{"pool", "plain"}, {"requester", "their-job"}}, 201, kT2);
  auto other = s.Call(kT2, "DELETE", "/v1/allocations/" + mine["id"].get<std::string>());
  EXPECT_EQ(other.status, 403);
  EXPECT_NE(other.body.find("is not yours"), std::string::npos) << other.body;
  EXPECT_EQ(other.body.find("my-job"), std::string::npos);
  EXPECT_EQ(other.body.find("t1"), std::string::npos);
  const json list = s.Get("/v1/allocations?limit=1", kT1)["allocations"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], mine["id"]);
  EXPECT_EQ(s.Get("/v1/allocations?limit=10&owner=t2", kAdminT)["allocations"].size(), 3u);
}

// Every route needs a token before it is even looked up; headers read as one value do not repeat; body keys
// do not repeat; numbers are whole and in range, never converted, clamped or wrapped.
TEST(Security, RequestsAreCheckedNotGuessed) {
  Server s(kPlain);
  for (const char* path : {"/nope", "/v1/nope", "/v1/runs/x/y/z", "/metrics"}) {
    EXPECT_EQ(s.Call(nullptr, "GET", path).status, 401) << path;
    EXPECT_EQ(s.Call(nullptr, "DELETE", path).status, 401) << path;
  }
  EXPECT_EQ(s.Call(kT1, "GET", "/v1/nope").status, 404);
  auto twice =
      HttpCall(s.port(), "GET", "/v1/pools",
               {std::string("Authorization: Bearer ") + kT1, std::string("Authorization: Bearer ") + kT2});
  EXPECT_EQ(twice.status, 400) << twice.body;
  auto dup = HttpCall(s.port(), "POST", "/v1/allocations", {std::string("Authorization: Bearer ") + kT1},
                      R"({"pool":"plain","count":1,"count":2})");
  EXPECT_EQ(dup.status, 400);
  EXPECT_EQ(json::parse(dup.body)["error"]["field"], "count") << dup.body;
  const auto field_of = [&](const json& body) {
    auto r = s.Call(kT1, "POST", "/v1/allocations", body);
    EXPECT_EQ(r.status, 400) << body.dump() << " -> " << r.body;
    return json::parse(r.body, nullptr, false)["error"].value("field", "");
  };
  EXPECT_EQ(field_of({{"pool", "plain"}, {"count", 1.5}}), "count");
  EXPECT_EQ(field_of({{"pool", "plain"}, {"count", -1}}), "count");
  EXPECT_EQ(field_of({{"pool", "plain"}, {"duration", "0s"}}), "duration");
  Allocate(s, {{"pool", "plain"}, {"count", 2.0}}, 201);  // the whole number 2
  for (const char* q : {"limit=abc", "limit=-5", "limit=0", "limit=99999999", "limit="}) {
    auto r = s.Call(kT1, "GET", std::string("/v1/allocations?") + q);
    EXPECT_EQ(r.status, 400) << q << " " << r.body;
    EXPECT_EQ(json::parse(r.body)["error"]["field"], "limit");
  }
  auto run = s.Call(kRunsT, "GET", "/v1/runs/r-x/steps/s/log?instance=4294967296");
  EXPECT_EQ(run.status, 400) << run.body;
  EXPECT_EQ(json::parse(run.body)["error"]["field"], "instance");
  EXPECT_EQ(s.Call(kAdminT, "GET", "/v1/environments?state=gone").status, 400);
}

// Releasing is never rate-limited: it only frees (a CI job's last call must not be refused for being busy).
TEST(Security, ReleasesAreNotRateLimited) {
  Server s(kPlain, "requests_per_second: 1\n");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = s.Call(kT1, "POST", "/v1/allocations", {{"pool", "plain"}});
    if (r.status == 201) ids.push_back(json::parse(r.body)["id"]);
  }
  EXPECT_EQ(s.Call(kT1, "GET", "/v1/pools").status, 429);  // the bucket is empty
  for (const auto& id : ids) EXPECT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + id).status, 200);
}

// ---- 23. retention -----------------------------------------------------------------------------------

// Ended allocations, old audit rows and ended runs (with their folder) go after their retention.
TEST(Security, RetentionRemovesWhatIsOld) {
  Server s(kPlain, "retention: { runs: 1s, allocations: 1s, audit: 1s }\n");
  const json a = Allocate(s, {{"pool", "plain"}}, 201);
  ASSERT_EQ(s.Call(kT1, "DELETE", "/v1/allocations/" + a["id"].get<std::string>()).status, 200);
  auto run = s.Call(kRunsT, "POST", "/v1/runs",
                    {{"plan",
                      "name: gone\nregions: { nowhere: {} }\nsteps:\n  - { name: s, command: [true], "
                      "region: nowhere, run_max_time: 1s }\n"}});
  ASSERT_EQ(run.status, 201) << run.body;
  const std::string id = json::parse(run.body)["id"];
  ASSERT_EQ(s.Call(kRunsT, "POST", "/v1/runs/" + id + "/abort").status, 202);
  bool gone = false;  // pruned every half the shortest retention
  for (int i = 0; i < 150 && !gone; ++i) {
    gone = s.Call(kT1, "GET", "/v1/allocations/" + a["id"].get<std::string>()).status == 404 &&
           s.Call(kRunsT, "GET", "/v1/runs/" + id).status == 404;
    if (!gone) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(gone);
  EXPECT_FALSE(std::filesystem::exists(s.dir() + "/state/runs/" + id));
  for (const auto& row : s.Audit()) EXPECT_NE(row["allocation"], a["id"]);
}

}  // namespace
}  // namespace meridian::testing
