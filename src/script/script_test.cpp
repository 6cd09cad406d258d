// The script runtime end to end in process: bundles run by the engine against the built-in target.
#include "script/script.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "loadgen/engine.h"
#include "target/target.h"

namespace meridian::script {
namespace {

constexpr int64_t kMs = 1'000'000;

struct Rig {
  std::unique_ptr<target::TargetServer> server;
  std::string base;
  std::shared_ptr<stats::NameRegistry> names = std::make_shared<stats::NameRegistry>();
  loadgen::RunResult result;

  Rig() {
    target::TargetOptions options;
    options.listen = "127.0.0.1:0";
    options.threads = 1;
    auto s = target::TargetServer::Start(options);
    EXPECT_TRUE(s.ok()) << s.error().message;
    server = std::move(s).value();
    base = "http://" + server->endpoint().ToString();
  }

  // Runs `source` as script.js with `iterations` shared iterations over `vus` VUs (iterations == 0: with
  // `executor` as it is).
  loadgen::ExecutorConfig executor;
  Result<void> Run(const std::string& source, uint32_t vus, uint64_t iterations,
                   std::map<std::string, std::string> more_files = {}, int64_t iteration_timeout_ns = 0,
                   std::map<std::string, std::string> env = {}) {
    more_files["script.js"] = source;
    return RunScenarios({Scenario("default", "script.js", more_files, vus, iterations, iteration_timeout_ns,
                                  std::move(env))});
  }

  // A script scenario: `files` (the entry among them) with __ENV.BASE set to the target.
  loadgen::ScenarioPlan Scenario(const std::string& name, const std::string& entry,
                                 std::map<std::string, std::string> files, uint32_t vus, uint64_t iterations,
                                 int64_t iteration_timeout_ns = 0,
                                 std::map<std::string, std::string> env = {}) {
    auto options = std::make_shared<ScriptOptions>();
    options->bundle.entry = entry;
    options->bundle.files = std::move(files);
    options->scenario = name;
    options->env = std::move(env);
    options->env["BASE"] = base;
    options->iteration_timeout_ns = iteration_timeout_ns;
    loadgen::ExecutorConfig e = executor;
    if (iterations > 0) {
      e.type = loadgen::ExecutorType::kSharedIterations;
      e.vus = vus;
      e.iterations = iterations;
      e.max_duration_ns = 20'000 * kMs;
    }
    return loadgen::ScenarioPlan{name, e, ScriptFactoryMaker(options)};
  }

  // Runs the scenarios on one worker thread.
  Result<void> RunScenarios(std::vector<loadgen::ScenarioPlan> scenarios) {
    auto config = std::make_shared<loadgen::RunConfig>();
    config->threads = 1;
    config->names = names;
    config->request_timeout_ns = 5'000 * kMs;
    config->scenarios = std::move(scenarios);
    loadgen::Engine engine(config);
    auto r = engine.Run({});
    if (!r.ok()) return r.error();
    result = std::move(r).value();
    return {};
  }

  stats::CheckCounts Check(const std::string& name) const {
    const auto entries = names->From(0);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].kind == stats::NameEntry::Kind::kCheck && entries[i].name == name) {
        auto it = result.totals.checks.find(static_cast<uint16_t>(i));
        if (it != result.totals.checks.end()) return it->second;
      }
    }
    return {};
  }
  uint64_t Requests(const std::string& name) const {
    const auto entries = names->From(0);
    uint64_t n = 0;
    for (const auto& [packed, s] : result.totals.series) {
      const auto key = stats::SeriesKey::Unpack(packed);
      if (key.request < entries.size() && entries[key.request].name == name) n += s.requests;
    }
    return n;
  }
  const stats::ScenarioStats& Scenario() const { return result.totals.scenarios.at(0); }
  bool HasExample(std::string_view text) const {
    for (const auto& [k, m] : result.totals.error_examples) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }
};

// Iterations that never wait for I/O finish inside the loop's turn and restart at once; the duration's end
// (a timer) must still stop them.
TEST(Script, IterationsWithoutIoStillEndOnTime) {
  Rig rig;
  rig.executor.type = loadgen::ExecutorType::kConstantVus;
  rig.executor.vus = 3;
  rig.executor.duration_ns = 300 * kMs;
  auto ok = rig.Run(R"js(
    import { check } from 'meridian';
    export default async function () {
      check(__ITER, { counted: (i) => i >= 0 });
    }
  )js",
                    3, 0);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_GT(rig.Scenario().iterations, 100u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 0u);
  EXPECT_EQ(rig.Check("counted").passes, rig.Scenario().iterations);
  // A plain (not async) function too.
  Rig plain;
  plain.executor = rig.executor;
  ok = plain.Run("export default function () { let x = 0; for (let i = 0; i < 100; i++) x += i; }", 2, 0);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_GT(plain.Scenario().iterations, 100u);
}

// http.url names a series by its template, so URLs with ids share one series (k6's http.url).
TEST(Script, UrlTemplatesNameOneSeries) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check } from 'meridian';
    const base = __ENV.BASE;
    export default async function () {
      for (const id of [1, 2, 3]) {
        const res = await http.get(http.url`${base}/api/products/${id}`);
        check(res, { found: (r) => r.status === 200 && r.data.id === id });
      }
      const named = await http.get(http.url`${base}/api/products/${1}`, { name: 'one product' });
      check(named, { named: (r) => r.status === 200 });
    }
  )js",
                    1, 2);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Requests("GET ${}/api/products/${}"), 6u);
  EXPECT_EQ(rig.Requests("one product"), 2u);  // an explicit name wins
  EXPECT_EQ(rig.Check("found").passes, 6u);
  EXPECT_EQ(rig.Check("named").passes, 2u);
}

// Each VU keeps the cookies its responses set and sends them back, for one iteration (k6's jar).
TEST(Script, CookieJarPerVuAndIteration) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check } from 'meridian';
    const base = __ENV.BASE;
    export default async function () {
      const before = await http.get(base + '/api/echo');
      check(before, { 'no cookie at the start': (r) => r.data.headers.cookie === undefined });
      await http.post(base + '/api/login', { user: 'vu' + __VU });
      const after = await http.get(base + '/api/echo');
      check(after, { 'session sent back': (r) => r.data.headers.cookie === 'session=tok-vu' + __VU });
      const own = await http.get(base + '/api/echo', { headers: { Cookie: 'mine=1' } });
      check(own, { 'own header wins': (r) => r.data.headers.cookie === 'mine=1' });
    }
  )js",
                    2, 4);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  for (const char* name : {"no cookie at the start", "session sent back", "own header wins"}) {
    EXPECT_EQ(rig.Check(name).passes, 4u) << name;
    EXPECT_EQ(rig.Check(name).fails, 0u) << name;
  }
}

// A server whose every response is a binary body: 0xff 0xfe 0x00 'a' 'b' (not UTF-8), keep-alive.
class BinaryServer {
 public:
  BinaryServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~BinaryServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  void Serve() {
    for (int c; (c = accept(fd_, nullptr, nullptr)) >= 0;) {
      std::string in;
      char buf[4096];
      for (ssize_t n; (n = read(c, buf, sizeof buf)) > 0;) {
        in.append(buf, static_cast<size_t>(n));
        for (size_t end; (end = in.find("\r\n\r\n")) != std::string::npos;) {
          in.erase(0, end + 4);
          static const char kReply[] =
              "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: "
              "5\r\n\r\n\xff\xfe\0ab";
          (void)!write(c, kReply, sizeof kReply - 1);
        }
      }
      close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// Bytes that are not UTF-8 become U+FFFD each: a binary response is measured and resolves, never an error.
TEST(Script, BinaryResponsesResolve) {
  BinaryServer binary;
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check } from 'meridian';
    export default async function () {
      const r = await http.get(`http://127.0.0.1:${__ENV.BINARY_PORT}/blob`);
      check(r, { 'binary resolves': (x) => x.status === 200 && x.data === '\ufffd\ufffd\u0000ab' });
    }
  )js",
                    1, 3, {}, 0, {{"BINARY_PORT", std::to_string(binary.port())}});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Check("binary resolves").passes, 3u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 0u);
}

TEST(Script, AxiosShapesAndChecks) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check } from 'meridian';
    const base = __ENV.BASE;
    export default async function () {
      const res = await http.get(base + '/api/echo', { params: { q: 'a b', n: 2 }, headers: { 'X-Test': 'yes' } });
      check(res, {
        'status 200': (r) => r.status === 200,
        'statusText OK': (r) => r.statusText === 'OK',
        'data parsed': (r) => r.data.method === 'GET' && r.data.query === 'q=a%20b&n=2',
        'header sent': (r) => r.data.headers['x-test'] === 'yes',
        'headers lower-case': (r) => r.headers['content-type'] === 'application/json',
        'config': (r) => r.config.method === 'get' && r.config.headers['X-Test'] === 'yes' &&
                         r.config.params.n === 2 && r.config.url === base + '/api/echo',
        'serialisable': (r) => JSON.parse(JSON.stringify(r)).status === 200,
        'timings': (r) => r.timings.duration > 0,
        'default accept': (r) => r.data.headers['accept'] === 'application/json, text/plain, */*' &&
                                 r.config.headers.Accept === 'application/json, text/plain, */*',
      });
      const html = await http.get(base + '/api/echo', { headers: { accept: 'text/html' } });
      check(html, { 'accept given': (r) => r.data.headers['accept'] === 'text/html' && !('Accept' in r.config.headers) });
      let refused = '';
      try { await http.get(base + '/', { responseType: 'blob' }); } catch (e) { refused = e.message; }
      check(refused, { 'responseType refused': (m) =>
        m === "request: responseType 'blob' is not supported (allowed: json, text, none)" });
      const posted = await http.post(base + '/api/echo', { a: 1 });
      check(posted, {
        'json body': (r) => r.data.body === '{"a":1}' && r.data.headers['content-type'] === 'application/json',
        'post method': (r) => r.data.method === 'POST' && r.config.data.a === 1,
      });
      const text = await http.get(base + '/', { responseType: 'text' });
      check(text, { 'text body': (r) => typeof r.data === 'string' && r.data.length === 12 });
      const missing = await http.get(base + '/?status=404');
      check(missing, { '404 resolves': (r) => r.status === 404 });
      const all = await Promise.all([http.get(base + '/?delay=50ms'), http.get(base + '/?delay=50ms'),
                                     http.get(base + '/?delay=50ms')]);
      check(all, { 'parallel': (a) => a.length === 3 && a.every((r) => r.status === 200) });
      const req = await http.request({ method: 'put', url: base + '/api/echo', data: 'raw' });
      check(req, { 'request()': (r) => r.data.method === 'PUT' && r.data.body === 'raw' });
    }
  )js",
                    2, 4);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  for (const char* name :
       {"status 200", "statusText OK", "data parsed", "header sent", "headers lower-case", "config",
        "serialisable", "timings", "default accept", "accept given", "responseType refused", "json body",
        "post method", "text body", "404 resolves", "parallel", "request()"}) {
    EXPECT_EQ(rig.Check(name).passes, 4u) << name;
    EXPECT_EQ(rig.Check(name).fails, 0u) << name;
  }
  EXPECT_EQ(rig.Scenario().iterations, 4u);
  EXPECT_EQ(rig.Requests("GET " + rig.base + "/api/echo"), 4u * 2);
  EXPECT_EQ(rig.Requests("GET " + rig.base + "/"), 4u * 5);
}

TEST(Script, NetworkErrorsRejectWithCode) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check } from 'meridian';
    export default async function () {
      let code = '';
      try { await http.get('http://127.0.0.1:1/'); } catch (e) { code = e.code; }
      check(code, { 'refused': (c) => c === 'ECONNREFUSED' });
      let timeout = '';
      try { await http.get(__ENV.BASE + '/?delay=2s', { timeout: 50 }); } catch (e) { timeout = e.code; }
      check(timeout, { 'timeout': (c) => c === 'ETIMEDOUT' });
    }
  )js",
                    1, 2);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Check("refused").passes, 2u);
  EXPECT_EQ(rig.Check("timeout").passes, 2u);
}

TEST(Script, ExceptionsFailTheIterationAndTheRunGoesOn) {
  Rig rig;
  auto ok = rig.Run(R"js(
    export default async function () {
      if (__ITER % 3 === 2) throw new Error('every third');
    }
  )js",
                    1, 9);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Scenario().iterations, 9u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 3u);
  EXPECT_TRUE(rig.HasExample("Error: every third (script.js:3:")) << "examples";
}

// http.get() and sleep() without await (a k6 habit): the iteration returns at once with them pending and the
// next one starts, flooding the target. Each such iteration is an error naming the line (from the second
// one on: call sites are traced only once the problem was seen), and every request sent is counted.
TEST(Script, MissingAwaitIsAnIterationErrorNamingTheLine) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, sleep } from 'meridian';
    export default async function () {
      http.get(__ENV.BASE + '/?delay=1s', { name: 'unawaited' });
      sleep(1);
    }
  )js",
                    1, 5);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Scenario().iterations, 5u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 5u);
  std::string examples;
  for (const auto& [k, m] : rig.result.totals.error_examples) examples += m + "\n";
  EXPECT_TRUE(rig.HasExample("missing await: the iteration ended with a request and a sleep() still pending"))
      << examples;
  EXPECT_TRUE(rig.HasExample("script.js:4:")) << examples;  // the http.get line
  EXPECT_EQ(rig.Requests("unawaited"), 5u);                 // sent, so counted (as failed)
}

// Awaited work, and a timer cleared before the end, is not "missing await".
TEST(Script, AwaitedWorkIsNotMissingAwait) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, sleep } from 'meridian';
    export default async function () {
      const pending = http.get(__ENV.BASE + '/', { name: 'later' });
      await sleep(0.01);
      await pending;
      const id = setInterval(() => {}, 5);
      clearInterval(id);
    }
  )js",
                    1, 3);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Scenario().failed_iterations, 0u);
  EXPECT_EQ(rig.Requests("later"), 3u);
  EXPECT_TRUE(rig.result.totals.error_examples.empty());
}

TEST(Script, NeverResolvingPromiseTimesOut) {
  Rig rig;
  auto ok = rig.Run(R"js(
    export default async function () { await new Promise(() => {}); }
  )js",
                    2, 2, {}, 100 * kMs);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Scenario().iterations, 2u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 2u);
  EXPECT_TRUE(rig.HasExample("iteration timed out after 100ms"));
}

TEST(Script, TimersSleepGroupsModulesAndOpen) {
  Rig rig;
  auto ok = rig.Run(R"js(
    import { http, check, sleep, group } from 'meridian';
    import { double } from './lib/util.js';
    const users = JSON.parse(open('./data/users.json'));
    export default async function () {
      const t0 = Date.now();
      await sleep(0.05);
      check(Date.now() - t0, { 'slept': (d) => d >= 45 });
      const fired = await new Promise((resolve) => setTimeout((a, b) => resolve(a + b), 10, 1, 2));
      check(fired, { 'timeout args': (v) => v === 3 });
      let ticks = 0;
      await new Promise((resolve) => { const id = setInterval(() => { if (++ticks === 3) { clearInterval(id); resolve(); } }, 5); });
      let cleared = true;
      const id = setTimeout(() => { cleared = false; }, 5);
      clearTimeout(id);
      await sleep(0.02);
      check(cleared, { 'clearTimeout': (c) => c });
      check(double(users.length), { 'modules and open': (n) => n === 4 });
      check(__VU, { 'vu id': (v) => v >= 1 });
      await group('shop', async () => {
        await http.get(__ENV.BASE + '/api/products', { name: 'products' });
      });
      let late = '';
      try { open('./data/users.json'); } catch (e) { late = e.message; }
      check(late, { 'open at init only': (m) => m.includes('init code') });
    }
  )js",
                    2, 2,
                    {{"lib/util.js", "export const double = (x) => x * 2;"},
                     {"data/users.json", R"([{"u":"a"},{"u":"b"}])"}});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  for (const char* name :
       {"slept", "timeout args", "clearTimeout", "modules and open", "vu id", "open at init only"}) {
    EXPECT_EQ(rig.Check(name).passes, 2u) << name;
  }
  EXPECT_EQ(rig.Requests("products"), 2u);
  bool group_seen = false;
  const auto entries = rig.names->From(0);
  for (const auto& [index, h] : rig.result.totals.groups) {
    if (entries.at(index).name == "shop") group_seen = h.count() == 2;
  }
  EXPECT_TRUE(group_seen);
  for (const auto& e : entries) {
    if (e.name == "products") {
      EXPECT_EQ(e.group, "::shop");
    }
  }
}

TEST(Script, ConstellationForm) {
  Rig rig;
  auto ok = rig.Run(R"js(
    export const script = async (axiosInstance) => {
      const res = await axiosInstance.post(__ENV.BASE + '/api/login', { user: 'ann', password: 'x' });
      if (res.data.token !== 'tok-ann') throw new Error('no token');
      axiosInstance.defaults.headers.common['Authorization'] = 'Bearer ' + res.data.token;
      const cart = await axiosInstance.post(__ENV.BASE + '/api/cart', { product: 3 });
      if (cart.status !== 201) throw new Error('cart ' + cart.status);
    };
  )js",
                    2, 6);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(rig.Scenario().iterations, 6u);
  EXPECT_EQ(rig.Scenario().failed_iterations, 0u);
}

// Two script scenarios on one worker thread share its SpiderMonkey context, each in its own realm: their
// globals, module state and `meridian` module are separate, their jobs, timers and requests interleave, and
// each scenario's iterations, checks and requests are counted as its own.
TEST(Script, TwoScenariosShareAWorkerThread) {
  Rig rig;
  const std::string state = "export let calls = 0;\nexport function bump() { return ++calls; }\n";
  const std::string shop = R"js(
    import { http, check, sleep, group } from 'meridian';
    import { bump } from './lib/state.js';
    globalThis.owner = 'shop';
    export default async function () {
      const n = bump();
      await group('browse', async () => {
        const r = await http.get(`${__ENV.BASE}/api/products`, { name: 'products' });
        check(r, { 'shop: products 200': (x) => x.status === 200 });
      });
      await sleep(0.005);
      check(globalThis.owner, { 'shop: own global': (o) => o === 'shop' });
      // 30 iterations bump this realm's copy of lib/state.js 30 times; cart's 20 bumps go to its own copy.
      check(n, { 'shop: own module state': (c) => c >= 1 && c <= 30 });
    }
  )js";
  const std::string cart = R"js(
    import { bump } from './lib/state.js';
    import { check } from 'meridian';
    globalThis.owner = 'cart';
    export const script = async (axiosInstance) => {
      const login = await axiosInstance.post(__ENV.BASE + '/api/login', { user: 'bo', password: 'x' });
      await new Promise((resolve) => setTimeout(resolve, 3));
      const cart = await axiosInstance.post(__ENV.BASE + '/api/cart', { product: 1 },
                                            { headers: { Authorization: 'Bearer ' + login.data.token } });
      if (cart.status !== 201) throw new Error('cart ' + cart.status);
      check(globalThis.owner, { 'cart: own global': (o) => o === 'cart' });
      check(bump(), { 'cart: own module state': (c) => c >= 1 && c <= 20 });
    };
  )js";
  auto ok = rig.RunScenarios(
      {rig.Scenario("shop", "shop.js", {{"shop.js", shop}, {"lib/state.js", state}}, 3, 30),
       rig.Scenario("cart", "cart.js", {{"cart.js", cart}, {"lib/state.js", state}}, 2, 20)});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  ASSERT_EQ(rig.result.totals.scenarios.size(), 2u);
  EXPECT_EQ(rig.result.totals.scenarios.at(0).iterations, 30u);
  EXPECT_EQ(rig.result.totals.scenarios.at(0).failed_iterations, 0u);
  EXPECT_EQ(rig.result.totals.scenarios.at(1).iterations, 20u);
  EXPECT_EQ(rig.result.totals.scenarios.at(1).failed_iterations, 0u);
  EXPECT_EQ(rig.Check("shop: products 200").passes, 30u);
  EXPECT_EQ(rig.Check("shop: own global").passes, 30u);
  EXPECT_EQ(rig.Check("shop: own module state").passes, 30u);
  EXPECT_EQ(rig.Check("cart: own global").passes, 20u);
  EXPECT_EQ(rig.Check("cart: own global").fails, 0u);
  EXPECT_EQ(rig.Check("cart: own module state").passes, 20u);
  EXPECT_EQ(rig.Requests("products"), 30u);
  // Every request is counted in the scenario that made it.
  uint64_t by_scenario[2] = {0, 0};
  const auto entries = rig.names->From(0);
  for (const auto& [packed, s] : rig.result.totals.series) {
    const auto key = stats::SeriesKey::Unpack(packed);
    ASSERT_LT(key.request, entries.size());
    by_scenario[entries[key.request].scenario] += s.requests;
  }
  EXPECT_EQ(by_scenario[0], 30u);
  EXPECT_EQ(by_scenario[1], 40u);
}

TEST(Script, InitErrorsNameFileLineAndColumn) {
  Bundle b;
  b.entry = "bad.js";
  b.files["bad.js"] = "export default async function () {\n  let x = ;\n}\n";
  auto info = Inspect(b);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("bad.js:2:"), std::string::npos) << info.error().message;
  EXPECT_NE(info.error().message.find("SyntaxError"), std::string::npos) << info.error().message;

  b.files["bad.js"] = "export const nothing = 1;\n";
  info = Inspect(b);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("exports no VU function"), std::string::npos) << info.error().message;

  b.files["bad.js"] = "import fs from 'fs';\nexport default function () {}\n";
  info = Inspect(b);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("cannot import 'fs'"), std::string::npos) << info.error().message;

  b.files["bad.js"] = "export function setup() { return 1; }\nexport default function (data) {}\n";
  info = Inspect(b);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.error().message.find("bad.js: exports setup(): this version does not run setup/teardown"),
            std::string::npos)
      << info.error().message;

  b.files["bad.js"] = "export const options = { vus: 3, duration: '10s' };\nexport default function () {}\n";
  info = Inspect(b);
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->options["vus"], 3);
}

TEST(Script, NormalizePath) {
  EXPECT_EQ(NormalizePath("a/./b/../c.js"), "c.js" == std::string("c.js") ? "a/c.js" : "");
  EXPECT_EQ(NormalizePath("../x.js"), "../x.js");
  EXPECT_EQ(NormalizePath("./lib//u.js"), "lib/u.js");
}

}  // namespace
}  // namespace meridian::script
