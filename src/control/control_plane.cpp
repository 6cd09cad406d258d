// The control plane's wiring: the store, the orchestrator, the lease service, the route table and its
// dispatcher, the tick and retention.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "control/api.h"
#include "control/authenticator.h"
#include "control/control.h"
#include "control/live.h"
#include "control/orchestrator.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/log.h"
#include "core/prometheus.h"
#include "core/version.h"
#include "dashboard/dashboard.h"
#include "envpool/envpool.h"
#include "http/api.h"
#include "http/router.h"
#include "http/server.h"
#include "net/socket.h"
#include "net/work_thread.h"

namespace meridian::control {

using http::ApiError;

namespace {

constexpr int64_t kTickNs = 50'000'000;
constexpr size_t kSmallBody = 64 * 1024;         // what a route takes unless it says otherwise
constexpr size_t kParseInlineBytes = 64 * 1024;  // larger JSON bodies are parsed on the work thread
constexpr int64_t kPruneEveryNs = 60'000'000'000;

// server.yaml's data_dir; by default beside a SQLite file, or ".meridian" (in the working directory) beside a
// PostgreSQL store, whose URL is no path (systemd's StateDirectory sets data_dir in deploy/systemd).
std::string DataDirFor(const ServerConfig& config) {
  if (!config.data_dir.empty()) return config.data_dir;
  if (config.store.starts_with("postgres://") || config.store.starts_with("postgresql://"))
    return ".meridian";
  std::string path = config.store.starts_with("sqlite:") ? config.store.substr(7) : config.store;
  const auto parent = std::filesystem::path(path).parent_path();
  return (parent.empty() ? std::filesystem::path(".") : parent).string();
}

}  // namespace

class ControlPlane::Impl {
 public:
  Impl(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config)
      : loop_(loop),
        store_(std::move(store)),
        config_(std::move(config)),
        data_dir_(DataDirFor(config_)),
        clock_(SystemClock::Instance()),
        authenticator_(config_.tokens),
        rate_(config_.requests_per_second),
        orchestrator_(*store_, clock_, config_, data_dir_),
        live_(orchestrator_) {}

  ~Impl() {
    loop_.Cancel(&tick_);
    loop_.Cancel(&prune_);
  }

  Result<void> Start() {
    auto key = LoadOrCreateServerKey(data_dir_);
    if (!key.ok()) return key.error();
    key_ = std::move(key).value();
    std::vector<store::TokenRow> rows;
    for (const auto& t : config_.tokens) {
      std::string scopes;
      for (const auto& s : t.scopes) scopes += (scopes.empty() ? "" : " ") + s;
      rows.push_back(store::TokenRow{t.name, KeyedHash(key_, t.hash_hex), scopes});
    }
    if (auto r = store_->ReplaceTokens(rows); !r.ok()) return r;
    if (auto r = orchestrator_.Load(); !r.ok()) return r;
    envpool::Options pool_options;
    pool_options.registry_path = config_.registry;
    pool_options.max_waiters_per_principal = config_.max_waiting_allocations_per_token;
    pool_options.hidden_env.insert(config_.token_env.begin(), config_.token_env.end());
    envpool_ = std::make_unique<envpool::EnvPool>(loop_, *store_, pool_options);
    if (auto r = envpool_->Start(); !r.ok()) return r;
    work_ = std::make_unique<net::WorkThread>(loop_);
    api_ = std::make_unique<ApiContext>(
        ApiContext{orchestrator_, *store_, config_, *work_, key_, data_dir_, live_});
    live_.set_final_json([this](const std::string& id) { return FinalRunJson(*api_, id); });
    if (auto r = AddRoutes(); !r.ok()) return r;
    http::ServerOptions options;
    options.max_body_bytes = config_.max_body_bytes;
    options.max_headers = config_.max_headers;
    options.idle_timeout_ns = 120 * kNanosPerSecond;
    options.request_timeout_ns = config_.request_timeout_ns;
    options.max_connections = config_.max_connections;
    options.max_buffered_bytes = config_.max_buffered_bytes;
    options.single_headers.push_back(kAgentSecretHeader);
    server_ = std::make_unique<http::HttpServer>(
        loop_, options, [this](http::ServerRequest& req, http::Responder out) { Handle(req, out); },
        [this](const http::ServerRequest& head, size_t* max_body) { return CheckHead(head, max_body); });
    auto at = net::ParseListenAddress(config_.listen);
    if (!at.ok()) return at.error();
    if (auto r = server_->Listen(*at); !r.ok()) return r;
    tick_.set([this] { Tick(); });
    loop_.Schedule(&tick_, clock_.Mono() + kTickNs);
    prune_.set([this] { Prune(); });
    loop_.Schedule(&prune_, clock_.Mono() + kNanosPerSecond);
    return {};
  }

  Result<void> Reload() {
    try {
      return envpool_ ? envpool_->Reload() : Result<void>{};
    } catch (const std::exception& e) {  // the loop's boundary: nothing here may end the server
      return MakeError(ErrorCode::kInternal, fmt::format("registry not applied: {}", e.what()));
    }
  }
  uint16_t port() const { return server_ ? server_->port() : 0; }

  // Every request's head, before any of its body is read: a valid token (401 before the route is even looked
  // at, so routes cannot be enumerated), within the token's rate (429; a route may opt out: a release only
  // frees), a route for its path (404) and method (405), one of the route's scopes (403), and the route's
  // body limit. A refused head closes its connection (its body is never read).
  std::optional<http::ServerResponse> CheckHead(const http::ServerRequest& req, size_t* max_body) {
    try {
      if (OpenRoute(req)) {
        *max_body = 1024;  // a login code at most
        return std::nullopt;
      }
      const http::Caller& caller = Authenticate(req);
      // Answered after the rate: a token over its rate gets 429 whatever it asks (but for a release, which
      // only frees: its route is known even when the token may not use it).
      const http::Route* route = nullptr;
      std::optional<ApiError> refused;
      try {
        std::vector<std::string> path;
        route = &router_.Find(req.method, req.path, &path);
        http::Router::CheckScope(*route, caller);
      } catch (const ApiError& e) {
        refused = e;
      }
      if ((!route || route->rate_limited) && !rate_.Take(caller.name, clock_.Mono())) {
        throw ApiError{429, "rate_limited",
                       fmt::format("too many requests for this token (requests_per_second: {})",
                                   config_.requests_per_second),
                       ""};
      }
      if (refused) throw *refused;
      *max_body = route->body == http::Body::kSmall ? kSmallBody : config_.max_body_bytes;
    } catch (const ApiError& e) {
      return http::ErrorResponse(e);
    } catch (const std::exception& e) {  // the loop's boundary, as in Handle
      LogError("{} {}: {}", req.method, req.path, e.what());
      return http::ErrorResponse(ApiError{500, "internal", "internal error", ""});
    }
    return std::nullopt;
  }

  void Handle(http::ServerRequest& req, http::Responder out) {
    try {
      if (const http::Route* open = OpenRoute(req)) {
        static const http::Caller kNobody{"", {}};
        http::Call call{req, out, kNobody, *open, http::SplitPath(req.path)};
        return open->handler(call);
      }
      const http::Caller& caller = Authenticate(req);
      Admitted admitted = Admit(req, caller);
      // A large JSON body is parsed on the work thread: the loop keeps answering heartbeats and polls.
      if (admitted.route.body == http::Body::kLargeJson && req.body.size() > kParseInlineBytes &&
          !req.parsed) {
        return ParseOffLoop(req, out);
      }
      http::Call call{req, out, caller, admitted.route, std::move(admitted.path)};
      admitted.route.handler(call);
    } catch (const ApiError& e) {
      out.Send(http::ErrorResponse(e));
    } catch (const std::exception& e) {
      LogError("{} {}: {}", req.method, req.path, e.what());
      out.Send(http::ErrorResponse(ApiError{500, "internal", "internal error", ""}));
    }
  }

  const http::Router& router() const { return router_; }

  void AddLoginCode(const std::string& code, const std::string& token, int64_t ttl_ns) {
    login_codes_.Add(code, token, clock_.Mono() + ttl_ns);
  }

 private:
  struct Admitted {
    const http::Route& route;
    std::vector<std::string> path;
  };

  // The dashboard's page and assets, for a request that carries no token (with one, it is checked as usual).
  const http::Route* OpenRoute(const http::ServerRequest& req) const {
    return req.Header("authorization").empty() ? router_.FindOpen(req.method, req.path) : nullptr;
  }

  // The caller the request's token names; 401 without one.
  const http::Caller& Authenticate(const http::ServerRequest& req) const {
    const http::Caller* caller = authenticator_.Authenticate(req);
    if (!caller) {
      throw ApiError{
          401, "unauthorized",
          req.Header("authorization").empty() ? "a bearer token is required" : "the token is not valid", ""};
    }
    return *caller;
  }

  // The route, the method and the scope: what every request passes, in the head check and again when its body
  // is in (in-process callers and the fuzz target may call Handle alone).
  Admitted Admit(const http::ServerRequest& req, const http::Caller& caller) const {
    std::vector<std::string> path;
    const http::Route& route = router_.Find(req.method, req.path, &path);
    http::Router::CheckScope(route, caller);
    return Admitted{route, std::move(path)};
  }

  void ParseOffLoop(http::ServerRequest& req, http::Responder out) {
    auto body = std::make_shared<std::string>(std::move(req.body));
    auto parsed = std::make_shared<Result<nlohmann::json>>(nlohmann::json());
    auto problem = std::make_shared<http::JsonProblem>();
    work_->Run([body, parsed,
                problem] { *parsed = http::ParseStrictJson(*body, http::kMaxJsonDepth, problem.get()); },
               [this, req = std::move(req), body, parsed, problem, out]() mutable {
                 req.body = std::move(*body);
                 if (!parsed->ok()) {
                   return out.Send(http::ErrorResponse(
                       ApiError{400, "invalid_body", "the body: " + problem->message, problem->field}));
                 }
                 req.parsed = std::make_shared<const nlohmann::json>(std::move(*parsed).value());
                 Handle(req, out);
               });
  }

  Result<void> AddRoutes() {
    const auto add = [this](const char* method, const char* pattern, std::vector<std::string> scopes,
                            std::function<void(http::Call&)> handler, const char* summary) {
      http::Route r;
      r.method = method;
      r.pattern = pattern;
      r.scopes = std::move(scopes);
      r.handler = std::move(handler);
      r.summary = summary;
      return router_.Add(std::move(r));
    };
    if (auto r = add(
            "GET", "/healthz", {}, [this](http::Call& c) { Health(c); }, "alive, version, active runs");
        !r.ok())
      return r;
    // Readiness for load balancers and Kubernetes probes, which send no token: the answer says only ready or
    // not (the reason goes to the log), like the login route it is open.
    http::Route ready;
    ready.method = "GET";
    ready.pattern = "/readyz";
    ready.open = true;
    ready.summary = "ready: the store answers and has this binary's schema (no token; 503 otherwise)";
    ready.handler = [this](http::Call& c) { Ready(c); };
    if (auto r = router_.Add(std::move(ready)); !r.ok()) return r;
    // Prometheus: any valid token (a scrape config sends one).
    if (auto r = add(
            "GET", "/metrics", {}, [this](http::Call& c) { Metrics(c); }, "Prometheus text");
        !r.ok())
      return r;
    if (auto r = dashboard::AddRoutes(router_); !r.ok()) return r;
    http::Route login;
    login.method = "POST";
    login.pattern = "/v1/dashboard/login";
    login.open = true;
    login.summary = "a one-time login code for a token";
    login.handler = [this](http::Call& c) { Login(c); };
    if (auto r = router_.Add(std::move(login)); !r.ok()) return r;
    if (auto r = AddRunRoutes(router_, *api_); !r.ok()) return r;
    if (auto r = AddAgentRoutes(router_, *api_); !r.ok()) return r;
    return envpool_->AddRoutes(router_);
  }

  // The one-time code of `meridian run --dashboard`'s link, for the token it stands for (the page keeps it in
  // the tab's sessionStorage).
  void Login(http::Call& c) {
    const nlohmann::json body = http::ParseBody(c.req);
    http::CheckKeys(body, {"code"});
    const std::string code = http::Field<std::string>(body, "code", "", true);
    auto token = login_codes_.Redeem(code, clock_.Mono());
    if (!token) throw ApiError{403, "login_refused", "the login code is unknown, used or expired", "code"};
    c.out.Send(http::JsonResponse(200, {{"token", *token}}));
  }

  void Health(http::Call& c) {
    c.out.Send(http::JsonResponse(
        200, {{"status", "ok"}, {"version", kVersion}, {"active_runs", orchestrator_.runs().size()}}));
  }

  void Ready(http::Call& c) {
    if (auto r = store_->Ready(); !r.ok()) {
      LogWarn("readyz: not ready: {}", r.error().message);
      return c.out.Send(http::JsonResponse(503, {{"status", "unavailable"}}));
    }
    c.out.Send(http::JsonResponse(200, {{"status", "ready"}}));
  }

  void Metrics(http::Call& c) {
    PrometheusText text;
    envpool_->Metrics(text);
    text.Family("meridian_runs_active", "gauge", "Runs the orchestrator is driving.");
    text.Sample("meridian_runs_active", {}, static_cast<double>(orchestrator_.runs().size()));
    c.out.Send(http::ServerResponse{200, "text/plain; version=0.0.4", text.text(), {}});
  }

  // The loop's boundary for everything time drives: an exception is logged, the next tick comes.
  void Tick() {
    try {
      envpool_->Tick();
      orchestrator_.Tick();
      if (const int64_t now = clock_.Mono(); now >= next_live_mono_) {
        next_live_mono_ = now + kNanosPerSecond;
        live_.Tick();
      }
    } catch (const std::exception& e) {
      LogError("tick: {}", e.what());
    }
    loop_.Schedule(&tick_, clock_.Mono() + kTickNs);
  }

  // Retention: ended runs (rows, reports, folders), ended allocations and audit rows older than configured,
  // in batches; a full batch means more is due soon.
  void Prune() {
    const int64_t now = clock_.Wall();
    const auto cutoff = [now](int64_t keep) { return keep > 0 ? now - keep : 0; };
    store::PruneRequest rq;
    rq.runs_before_ns = cutoff(config_.retention.runs_ns);
    rq.allocations_before_ns = cutoff(config_.retention.allocations_ns);
    rq.audit_before_ns = cutoff(config_.retention.audit_ns);
    bool more = false;
    auto pruned = store_->Prune(rq);
    if (!pruned.ok()) {
      LogWarn("retention: {}", pruned.error().message);
    } else {
      for (const auto& id : pruned->runs) {
        std::error_code ec;
        std::filesystem::remove_all(std::filesystem::path(data_dir_) / "runs" / id, ec);
      }
      if (!pruned->runs.empty() || pruned->allocations > 0 || pruned->audit > 0) {
        LogInfo("retention: removed {} run(s), {} allocation(s), {} audit row(s)", pruned->runs.size(),
                pruned->allocations, pruned->audit);
      }
      more = pruned->runs.size() >= rq.batch || pruned->allocations >= rq.batch || pruned->audit >= rq.batch;
    }
    // Every minute, or every half the shortest retention when that is shorter (at least every second).
    int64_t every = kPruneEveryNs;
    for (int64_t keep :
         {config_.retention.runs_ns, config_.retention.allocations_ns, config_.retention.audit_ns}) {
      if (keep > 0) every = std::min(every, std::max(kNanosPerSecond, keep / 2));
    }
    loop_.Schedule(&prune_, clock_.Mono() + (more ? kNanosPerSecond : every));
  }

  net::EventLoop& loop_;
  std::unique_ptr<store::Store> store_;
  ServerConfig config_;
  const std::string data_dir_;  // runs/ID/ and server.key
  const Clock& clock_;
  Authenticator authenticator_;
  LoginCodes login_codes_;
  RateLimiter rate_;
  Orchestrator orchestrator_;
  LiveFeeds live_;  // the dashboard's streams; ticked once a second
  int64_t next_live_mono_ = 0;
  std::string key_;                            // the server's key (server.key)
  std::unique_ptr<envpool::EnvPool> envpool_;  // before server_: destroyed after it
  std::unique_ptr<net::WorkThread> work_;      // large bodies and plans are parsed here
  std::unique_ptr<ApiContext> api_;
  http::Router router_;
  std::unique_ptr<http::HttpServer> server_;
  net::FunctionTimer tick_;
  net::FunctionTimer prune_;
};

ControlPlane::ControlPlane(net::EventLoop& loop, std::unique_ptr<store::Store> store, ServerConfig config)
    : impl_(std::make_unique<Impl>(loop, std::move(store), std::move(config))) {}
ControlPlane::~ControlPlane() = default;
Result<void> ControlPlane::Start() { return impl_->Start(); }
uint16_t ControlPlane::port() const { return impl_->port(); }
Result<void> ControlPlane::Reload() { return impl_->Reload(); }
std::optional<http::ServerResponse> ControlPlane::CheckHead(const http::ServerRequest& head,
                                                            size_t* max_body) {
  return impl_->CheckHead(head, max_body);
}
void ControlPlane::Handle(http::ServerRequest& request, http::Responder out) { impl_->Handle(request, out); }
void ControlPlane::AddLoginCode(const std::string& code, const std::string& token, int64_t ttl_ns) {
  impl_->AddLoginCode(code, token, ttl_ns);
}

std::vector<RouteInfo> ControlPlane::Routes() const {
  std::vector<RouteInfo> out;
  for (const auto& r : impl_->router().routes())
    out.push_back(RouteInfo{r.method, r.pattern, r.ScopeText(), r.summary});
  return out;
}

}  // namespace meridian::control
