// The lease service's HTTP adapter: the /v1 routes for allocations, pools, environments and the audit. It
// reads and checks requests, calls the lease core (leases.h), and maps its answers to JSON and its
// LeaseErrors to statuses — the only place in envpool that knows HTTP.

#include "http/api.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/duration.h"
#include "envpool/envpool.h"
#include "envpool/leases.h"
#include "envpool/runner.h"

namespace meridian::envpool {

using http::ApiError;
using http::CheckKeys;
using http::Field;
using nlohmann::json;
using nlohmann::ordered_json;
using store::AllocationState;
using store::EnvState;

namespace {

constexpr uint32_t kMaxCount = 1000;

std::string Iso(int64_t ns) { return ns > 0 ? FormatIsoTime(ns) : std::string(); }

// The status and code of each lease error: here and nowhere else.
ApiError ToApiError(const LeaseError& e, const Options& options) {
  struct Mapping {
    int status;
    const char* code;
  };
  const auto m = [&]() -> Mapping {
    switch (e.code) {
      case LeaseErrorCode::kNoPool:
        return {404, "no_pool"};
      case LeaseErrorCode::kNotFound:
        return {404, "not_found"};
      case LeaseErrorCode::kNotOwner:
        return {403, "not_owner"};
      case LeaseErrorCode::kInvalid:
        return {400, "invalid_field"};
      case LeaseErrorCode::kUnsatisfiable:
        return {409, "unsatisfiable"};
      case LeaseErrorCode::kNoCapacity:
      case LeaseErrorCode::kTimedOut:
        return {423, "no_capacity"};
      case LeaseErrorCode::kLimitReached:
        return {429, "limit_reached"};
      case LeaseErrorCode::kKeyReused:
        return {409, "key_reused"};
      case LeaseErrorCode::kInProgress:
        return {409, "in_progress"};
      case LeaseErrorCode::kNotActive:
        return {409, "not_active"};
      case LeaseErrorCode::kMaxDuration:
        return {409, "max_duration"};
      case LeaseErrorCode::kBusy:
        return {409, "busy"};
      case LeaseErrorCode::kRemoved:
        return {409, "removed"};
      case LeaseErrorCode::kConflict:
        return {409, "conflict"};
      case LeaseErrorCode::kRegistryRefused:
        return {409, "registry_refused"};
      case LeaseErrorCode::kCredentialsFailed:
        return {502, "credentials_failed"};
      case LeaseErrorCode::kGrowFailed:
        return {503, "grow_failed"};
      case LeaseErrorCode::kStoreUnavailable:
        return {503, "store_unavailable"};
    }
    return {500, "internal"};
  }();
  if (e.code == LeaseErrorCode::kStoreUnavailable) return http::StoreUnavailableAnswer(e.message);
  ApiError out{m.status, m.code, e.message, e.field};
  if (m.status == 423) {
    out.headers.emplace_back("Retry-After",
                             std::to_string(std::max<int64_t>(1, options.retry_after_ns / kNanosPerSecond)));
  }
  if (m.status == 429) out.headers.emplace_back("Retry-After", "5");
  return out;
}

// The query's `state` for lists: one of `allowed`, or "" when absent.
std::string StateQuery(const http::ServerRequest& req, std::initializer_list<const char*> allowed) {
  if (!req.HasQuery("state")) return "";
  const std::string v = req.Query("state");
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return v;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw ApiError{400, "invalid_query", fmt::format("'state' must be one of: {}", list), "state"};
}

// "30m", "1h30m" or a number of seconds. `positive`: 0 is refused (a lease of no time is a mistake, not a
// request for the default: leave the field out for that).
int64_t DurationField(const json& body, const char* name, int64_t fallback, bool positive = false) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return fallback;
  const auto checked = [&](int64_t ns) {
    if (positive && ns <= 0) {
      throw ApiError{400, "invalid_field",
                     fmt::format("'{}' must be longer than 0 (leave it out for the pool's default)", name),
                     name};
    }
    return ns;
  };
  if (it->is_number()) {
    const double s = it->get<double>();
    if (!(s >= 0) || s > 1e9)
      throw ApiError{400, "invalid_field", fmt::format("'{}' is out of range", name), name};
    return checked(static_cast<int64_t>(s * 1e9));
  }
  if (it->is_string()) {
    auto d = ParseDuration(it->get<std::string>());
    if (d.ok() && *d >= 0) return checked(*d);
    throw ApiError{400, "invalid_field",
                   fmt::format("'{}': '{}' is not a duration (e.g. 90s, 30m, 3h, or seconds)", name,
                               it->get<std::string>()),
                   name};
  }
  throw ApiError{400, "invalid_field", fmt::format("'{}' must be a duration (\"30m\") or seconds", name),
                 name};
}

Requirements RequireField(const json& body) {
  Requirements r;
  auto it = body.find("require");
  if (it == body.end() || it->is_null()) return r;
  if (!it->is_object()) {
    throw ApiError{400, "invalid_field", "'require' must map capabilities to a value or a list of values",
                   "require"};
  }
  auto text = [](const json& v, const std::string& key) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_number()) return fmt::format("{}", v.get<double>());
    throw ApiError{400, "invalid_field", fmt::format("'require.{}' must be a value or a list of values", key),
                   "require." + key};
  };
  for (const auto& [key, v] : it->items()) {
    if (v.is_array()) {
      if (v.empty()) {
        throw ApiError{400, "invalid_field", fmt::format("'require.{}' is an empty list", key),
                       "require." + key};
      }
      for (const auto& x : v) r[key].push_back(text(x, key));
    } else {
      r[key].push_back(text(v, key));
    }
  }
  return r;
}

// The lease service's view of the dispatcher's caller.
Caller LeaseCaller(const http::Call& c) { return Caller{c.caller.name, c.caller.Has("env:admin")}; }

}  // namespace

class EnvPool::Impl {
 public:
  Impl(net::EventLoop& loop, store::Store& store, Options options)
      : runner_(loop, options.hidden_env),
        leases_(store, SystemClock::Instance(), runner_, std::move(options)) {}

  Leases& leases() { return leases_; }

  // The value, or the lease error thrown as the ApiError the router answers with.
  template <class T>
  T Take(LeaseResult<T> r) {
    if (!r.ok()) throw ToApiError(r.error(), leases_.options());
    return std::move(r).value();
  }
  void Take(const LeaseResult<void>& r) {
    if (!r.ok()) throw ToApiError(r.error(), leases_.options());
  }

  Result<void> AddRoutes(http::Router& router) {
    using Handler = void (Impl::*)(http::Call&);
    struct Row {
      const char* method;
      const char* pattern;
      bool admin;  // env:admin only; else env:allocate or env:admin
      Handler handler;
      const char* summary;
      http::Body body = http::Body::kSmall;
      bool rate_limited = true;
    };
    const Row rows[] = {
        {"POST", "/v1/allocations", false, &Impl::Allocate, "allocate environments"},
        {"GET", "/v1/allocations", false, &Impl::ListAllocations, "allocations, newest first"},
        {"GET", "/v1/allocations/{id}", false, &Impl::GetAllocation, "one allocation"},
        {"DELETE", "/v1/allocations/{id}", false, &Impl::Release, "release an allocation", http::Body::kSmall,
         /*rate_limited=*/false},
        {"POST", "/v1/allocations/{id}/renew", false, &Impl::Renew, "renew an allocation"},
        {"GET", "/v1/pools", false, &Impl::Pools, "pools and their counts"},
        {"GET", "/v1/environments", false, &Impl::ListEnvironments, "environments and their states"},
        {"GET", "/v1/environments/{id}", false, &Impl::ShowEnvironment, "one environment"},
        {"POST", "/v1/environments/{id}/drain", true, &Impl::Drain, "drain an environment"},
        {"POST", "/v1/environments/{id}/reinstate", true, &Impl::Reinstate, "reinstate an environment"},
        {"POST", "/v1/environments/sync", true, &Impl::Sync, "apply a registry", http::Body::kLarge},
        {"GET", "/v1/audit", true, &Impl::Audit, "the audit log"},
    };
    for (const auto& r : rows) {
      http::Route route;
      route.method = r.method;
      route.pattern = r.pattern;
      route.scopes = r.admin ? std::vector<std::string>{"env:admin"}
                             : std::vector<std::string>{"env:allocate", "env:admin"};
      route.handler = [this, h = r.handler](http::Call& c) { (this->*h)(c); };
      route.summary = r.summary;
      route.body = r.body;
      route.rate_limited = r.rate_limited;
      if (auto added = router.Add(std::move(route)); !added.ok()) return added;
    }
    return {};
  }

  void Audit(http::Call& c) {
    const http::ServerRequest& req = c.req;
    store::AuditFilter f;
    f.after_id = http::QueryInt(req, "after", 0, 0, INT64_MAX);
    f.limit = static_cast<size_t>(http::QueryInt(req, "limit", 1000, 1, 10000));
    f.pool = req.Query("pool");
    f.allocation_id = req.Query("allocation");
    f.environment_id = req.Query("environment");
    f.action = req.Query("action");
    ordered_json list = ordered_json::array();
    for (const auto& r : Take(leases_.Audit(f))) {
      list.push_back({{"id", r.id},
                      {"at", Iso(r.at_ns)},
                      {"at_ns", r.at_ns},
                      {"principal", r.principal},
                      {"action", r.action},
                      {"pool", r.pool},
                      {"allocation", r.allocation_id},
                      {"environment", r.environment_id},
                      {"outcome", r.outcome},
                      {"detail", r.detail}});
    }
    c.out.Send(http::JsonResponse(200, {{"audit", list}}));
  }

  void Pools(http::Call& c) { c.out.Send(http::JsonResponse(200, PoolsJson())); }

  void ListAllocations(http::Call& c) {
    const http::ServerRequest& req = c.req;
    const Caller caller = LeaseCaller(c);
    store::AllocationFilter f;
    f.principal =
        caller.admin ? req.Query("owner") : caller.principal;  // the owner filter precedes the limit
    f.requester = req.Query("requester");
    f.active_only = StateQuery(req, {"active"}) == "active";
    f.limit = static_cast<size_t>(http::QueryInt(req, "limit", 100, 1, 10000));
    ordered_json list = ordered_json::array();
    for (const auto& a : Take(leases_.List(f))) list.push_back(AllocationJson(a));
    c.out.Send(http::JsonResponse(200, {{"allocations", list}}));
  }

  void Allocate(http::Call& c) {
    const Caller caller = LeaseCaller(c);
    const json body = http::ParseBody(c.req);
    CheckKeys(body, {"pool", "requester", "count", "require", "duration", "wait", "idempotency_key"});
    AllocationRequest rq;
    rq.pool = Field<std::string>(body, "pool", "", true);
    rq.principal = caller.principal;
    rq.requester = Field<std::string>(body, "requester", caller.principal);
    if (rq.requester.empty() || rq.requester.size() > 200) {
      throw ApiError{400, "invalid_field", "'requester' must be 1 to 200 characters", "requester"};
    }
    const int64_t count = Field<int64_t>(body, "count", 1);
    if (count < 1 || count > kMaxCount) {
      throw ApiError{400, "invalid_field", fmt::format("'count' must be 1 to {}", kMaxCount), "count"};
    }
    rq.count = static_cast<uint32_t>(count);
    rq.require = RequireField(body);
    rq.duration_ns = DurationField(body, "duration", 0, /*positive=*/true);
    Take(leases_.CheckDuration(rq.pool, rq.duration_ns));  // 404 for the pool before any other field's 400
    const int64_t wait = DurationField(body, "wait", 0);
    Take(leases_.CheckWait(wait));
    rq.idempotency_key = Field<std::string>(body, "idempotency_key", "");
    if (rq.idempotency_key.size() > 200) {
      throw ApiError{400, "invalid_field", "'idempotency_key' is at most 200 characters", "idempotency_key"};
    }
    http::Responder responder = c.out;
    Reply reply{[responder]() { return responder.alive(); },
                [this, responder](LeaseResult<Grant> r) mutable {
                  if (!r.ok())
                    return responder.Send(http::ErrorResponse(ToApiError(r.error(), leases_.options())));
                  ordered_json j = AllocationJson(r->allocation);
                  j["credentials"] = r->credentials;
                  responder.Send(http::JsonResponse(r->replay ? 200 : 201, j));
                }};
    leases_.Allocate(std::move(rq), wait, std::move(reply));
  }

  void GetAllocation(http::Call& c) {
    c.out.Send(http::JsonResponse(200, AllocationJson(Take(leases_.Get(c.Param("id"), LeaseCaller(c))))));
  }

  void Release(http::Call& c) {
    const json body = http::ParseBody(c.req);
    CheckKeys(body, {"outcome"});
    const std::string outcome = Field<std::string>(body, "outcome", "success");
    if (outcome != "success" && outcome != "failure" && outcome != "cancelled") {
      throw ApiError{400, "invalid_field", "'outcome' must be success, failure or cancelled", "outcome"};
    }
    c.out.Send(http::JsonResponse(
        200, AllocationJson(Take(leases_.Release(c.Param("id"), outcome, LeaseCaller(c))))));
  }

  void Renew(http::Call& c) {
    const std::string& id = c.Param("id");
    const Caller caller = LeaseCaller(c);
    const json body = http::ParseBody(c.req);
    CheckKeys(body, {"duration"});
    Take(leases_.Get(id, caller));  // unknown (404) or another's (403) before a bad duration (400)
    const int64_t asked = DurationField(body, "duration", 0, /*positive=*/true);
    c.out.Send(http::JsonResponse(200, AllocationJson(Take(leases_.Renew(id, asked, caller)))));
  }

  void ListEnvironments(http::Call& c) {
    // Retired environments (removed from the registry, kept as history) only when asked for.
    const std::string state = StateQuery(c.req, {"available", "allocated", "cleaning", "dirty", "retired"});
    const auto filter = state.empty() ? std::nullopt : store::ParseEnvState(state);
    ordered_json list = ordered_json::array();
    for (const auto& e : Take(leases_.Environments(c.req.Query("pool"), filter))) {
      if (e.state != EnvState::kRetired || filter == EnvState::kRetired)
        list.push_back(EnvironmentJson(e, false));
    }
    c.out.Send(http::JsonResponse(200, {{"environments", list}}));
  }

  void Sync(http::Call& c) {
    std::string file = c.req.Query("file");
    if (file.empty()) file = "registry.yaml";
    auto reg = ParseRegistry(c.req.body, file);
    if (!reg.ok()) throw ApiError{400, "invalid_registry", reg.error().message, ""};
    c.out.Send(http::JsonResponse(200, Take(leases_.Sync(*reg, c.caller.name))));
  }

  void ShowEnvironment(http::Call& c) {
    c.out.Send(http::JsonResponse(200, EnvironmentJson(Take(leases_.Environment(c.Param("id"))), true)));
  }

  void Drain(http::Call& c) {
    const std::string& id = c.Param("id");
    c.out.Send(http::JsonResponse(200, EnvironmentJson(Take(leases_.Drain(id, c.caller.name)), false)));
  }

  void Reinstate(http::Call& c) {
    const std::string& id = c.Param("id");
    c.out.Send(http::JsonResponse(200, EnvironmentJson(Take(leases_.Reinstate(id, c.caller.name)), false)));
  }

  ordered_json AllocationJson(const store::AllocationRow& a) {
    ordered_json envs = ordered_json::array();
    for (const auto& id : EnvIds(a)) {
      const EnvironmentSpec& s = leases_.Spec(id);
      envs.push_back(s.id.empty() ? ordered_json{{"id", id}, {"pool", a.pool}} : PublicJson(s));
    }
    const bool active = a.state == AllocationState::kActive;
    ordered_json j = {
        {"id", a.id},
        {"pool", a.pool},
        {"requester", a.requester},
        {"owner", a.principal},
        {"state", store::AllocationStateName(a.state)},
        {"created_at", Iso(a.created_ns)},
        {"expires_at", Iso(a.expires_ns)},
        {"max_expires_at", Iso(a.max_expires_ns)},
        {"expires_in_s",
         active ? std::max<int64_t>(0, (a.expires_ns - leases_.clock().Wall()) / kNanosPerSecond) : 0},
        {"environments", envs}};
    if (!a.idempotency_key.empty()) j["idempotency_key"] = a.idempotency_key;
    if (!active) {
      j["outcome"] = a.outcome;
      j["ended_at"] = Iso(a.ended_ns);
    }
    return j;
  }

  ordered_json EnvironmentJson(const store::EnvironmentRow& e, bool with_log) {
    const EnvironmentSpec& s = leases_.Spec(e.id);
    ordered_json j = s.id.empty() ? ordered_json{{"id", e.id}, {"pool", e.pool}} : PublicJson(s);
    j["state"] = store::EnvStateName(e.state);
    j["draining"] = e.draining;
    if (e.removed) j["removed"] = true;
    if (e.grown) j["grown"] = true;
    if (!e.allocation_id.empty()) j["allocation"] = e.allocation_id;
    j["since"] = Iso(e.state_since_ns);
    if (e.last_released_ns) j["last_released"] = Iso(e.last_released_ns);
    if (e.cleanup_deadline_ns) j["cleanup_deadline"] = Iso(e.cleanup_deadline_ns);
    if (!e.note.empty()) j["note"] = e.note;
    if (with_log) j["cleanup_log"] = e.log;
    return j;
  }

  ordered_json PoolsJson() {
    const auto envs = Take(leases_.Environments("", std::nullopt));
    ordered_json list = ordered_json::array();
    for (const auto& [name, pool] : leases_.pools()) {
      if (pool.removed) continue;
      std::map<std::string, int> counts = {{"available", 0}, {"allocated", 0}, {"cleaning", 0}, {"dirty", 0}};
      int draining = 0, total = 0;
      for (const auto& e : envs) {
        if (e.pool != name || e.state == EnvState::kRetired) continue;
        ++total;
        ++counts[store::EnvStateName(e.state)];
        draining += e.draining;
      }
      ordered_json c = ordered_json::object();
      for (const auto& [state, n] : counts) c[state] = n;
      c["draining"] = draining;
      list.push_back({{"name", name},
                      {"environments", total},
                      {"counts", c},
                      {"waiting", pool.Waiting()},
                      {"max_duration", FormatDuration(pool.spec.max_duration_ns)},
                      {"default_duration", FormatDuration(pool.spec.default_duration_ns)},
                      {"cleanup", !pool.spec.cleanup.empty()},
                      {"grow_max", pool.spec.grow_max}});
    }
    return {{"pools", list}};
  }

 private:
  Runner runner_;  // before leases_: destroyed after it (its threads report to the core)
  Leases leases_;
};

EnvPool::EnvPool(net::EventLoop& loop, store::Store& store, Options options)
    : impl_(std::make_unique<Impl>(loop, store, std::move(options))) {}
EnvPool::~EnvPool() = default;
Result<void> EnvPool::Start() { return impl_->leases().Start(); }
Result<void> EnvPool::Reload() { return impl_->leases().Reload(); }

Result<ordered_json> EnvPool::Sync(const Registry& registry, const std::string& principal) {
  auto r = impl_->leases().Sync(registry, principal);
  if (!r.ok()) return ToError(r.error());
  return std::move(r).value();
}

Result<void> EnvPool::AddRoutes(http::Router& router) { return impl_->AddRoutes(router); }

void EnvPool::Tick() { impl_->leases().Tick(); }
void EnvPool::Metrics(PrometheusText& out) { LeaseMetrics(impl_->leases(), out); }

}  // namespace meridian::envpool
