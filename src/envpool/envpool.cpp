// Environment leases: allocation, the wait queue, deallocation, cleanup, reaper, grow, sync, API, metrics.

#include "envpool/envpool.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/base64.h"
#include "core/clock.h"
#include "core/duration.h"
#include "core/log.h"
#include "core/utf8.h"
#include "envpool/runner.h"
#include "http/api.h"

namespace meridian::envpool {

using http::ApiError;
using http::Field;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kSystem = "meridian";  // the principal of the reaper, cleanups and file syncs
constexpr int64_t kSecond = 1'000'000'000;
constexpr uint32_t kMaxCount = 1000;
constexpr int kMaxCleanupAttempts = 2;  // a cleanup interrupted by restarts twice ends dirty

// Prometheus histogram with fixed buckets (seconds).
struct Histogram {
  static constexpr double kBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
                                       5,     10,   30,    60,   300, 600,  1800, 3600};
  uint64_t counts[std::size(kBounds) + 1] = {};
  double sum = 0;
  uint64_t total = 0;
  void Add(double seconds) {
    size_t i = 0;
    while (i < std::size(kBounds) && seconds > kBounds[i]) ++i;
    ++counts[i];
    sum += seconds;
    ++total;
  }
  void Write(std::string& out, const std::string& name, const std::string& labels) const {
    uint64_t cumulative = 0;
    for (size_t i = 0; i < std::size(kBounds); ++i) {
      cumulative += counts[i];
      out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, kBounds[i], cumulative);
    }
    out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, total);
    out += fmt::format("{}_sum{{{}}} {}\n{}_count{{{}}} {}\n", name, labels, sum, name, labels, total);
  }
};

std::string EnvIdsJson(const std::vector<std::string>& ids) { return json(ids).dump(); }
std::vector<std::string> EnvIds(const store::AllocationRow& a) {
  const json j = json::parse(a.env_ids_json, nullptr, false);
  return j.is_array() ? j.get<std::vector<std::string>>() : std::vector<std::string>{};
}

std::string Iso(int64_t ns) { return ns > 0 ? FormatIsoTime(ns) : std::string(); }

// A secret as the holder gets it: text as it is (without a trailing line break), anything that is not UTF-8
// byte-exact as {"base64": "..."} (docs/environments.md).
json SecretValue(std::string secret) {
  if (FirstInvalidUtf8(secret) != std::string::npos) return json{{"base64", Base64Encode(secret)}};
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
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

void CheckKeys(const json& body, std::initializer_list<const char*> allowed) {
  for (const auto& item : body.items()) {
    const std::string& key = item.key();
    if (std::none_of(allowed.begin(), allowed.end(), [&key](const char* a) { return key == a; })) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      throw ApiError{400, "unknown_field", fmt::format("'{}' is not a field here (allowed: {})", key, list),
                     key};
    }
  }
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
      if (v.empty())
        throw ApiError{400, "invalid_field", fmt::format("'require.{}' is an empty list", key),
                       "require." + key};
      for (const auto& x : v) r[key].push_back(text(x, key));
    } else {
      r[key].push_back(text(v, key));
    }
  }
  return r;
}

}  // namespace

class EnvPool::Impl {
 public:
  Impl(net::EventLoop& loop, store::Store& store, Options options)
      : store_(store), options_(std::move(options)), runner_(loop, options_.hidden_env) {}

  // ---- loading and syncing ----------------------------------------------------------------------------

  Result<void> Start() {
    if (auto r = LoadFromStore(); !r.ok()) return r;
    if (!options_.registry_path.empty()) {
      auto reg = LoadRegistryFile(options_.registry_path);
      if (!reg.ok()) return reg.error();
      if (auto s = Sync(*reg, kSystem); !s.ok()) return s.error();
    }
    // Cleanups a previous process was running (or had queued) when it stopped.
    auto envs = store_.Environments("");
    if (!envs.ok()) return envs.error();
    for (auto e : *envs) {
      if (e.state != "cleaning") continue;
      if (e.cleanup_attempts >= kMaxCleanupAttempts) {
        MarkDirty(e,
                  fmt::format("cleanup interrupted {} times by control-plane restarts", e.cleanup_attempts));
      } else {
        LogInfo("environment {}: resuming the cleanup interrupted by a restart", e.id);
        Audit({kSystem, "cleanup", e.pool, e.allocation_id, e.id, "resumed", "interrupted by a restart"});
        e.cleanup_deadline_ns = 0;
        QueueCleanup(e);
      }
    }
    // Revokes a previous process started and did not see finish (their credentials are gone with it: the
    // revoke command gets the environment and allocation, as documented).
    auto pending = store_.PendingRevokes();
    if (!pending.ok()) return pending.error();
    for (const auto& a : *pending) {
      LogInfo("allocation {}: running the revoke interrupted by a restart", a.id);
      Audit({kSystem, "revoke", a.pool, a.id, "", "resumed", "interrupted by a restart"});
      Revoke(a, a.outcome);
    }
    return {};
  }

  Result<void> Reload() {
    if (options_.registry_path.empty()) return {};
    auto reg = LoadRegistryFile(options_.registry_path);
    if (!reg.ok()) return reg.error();
    auto s = Sync(*reg, kSystem);
    if (!s.ok()) return s.error();
    LogInfo("registry {} synced: {}", options_.registry_path, s->dump());
    return {};
  }

  // The specs from the store; the pools' queues, running cleanups and counters are kept.
  Result<void> LoadFromStore() {
    auto pools = store_.Pools();
    if (!pools.ok()) return pools.error();
    for (const auto& p : *pools) {
      auto spec = PoolFromJson(p.name, p.settings_json);
      if (!spec.ok()) return spec.error();
      pools_[p.name].spec = *spec;
      pools_[p.name].removed = p.removed;
    }
    auto envs = store_.Environments("");
    if (!envs.ok()) return envs.error();
    specs_.clear();
    leaving_.clear();
    for (const auto& e : *envs) {
      if (e.state == "retired") continue;  // history only
      auto spec = EnvironmentFromJson(e.id, e.pool, e.spec_json);
      if (!spec.ok()) return spec.error();
      specs_[e.id] = *spec;
      if (e.removed) leaving_.insert(e.id);  // held when it left the registry: retired when released
    }
    return {};
  }

  Result<ordered_json> Sync(const Registry& reg, const std::string& principal) {
    const int64_t now = WallNanos();
    ordered_json report = {{"source", reg.source},     {"added", json::array()},
                           {"updated", json::array()}, {"draining", json::array()},
                           {"retired", json::array()}, {"pools", json::array()}};
    if (auto b = store_.Begin(); !b.ok()) return b.error();
    auto fail = [&](const Error& e) -> Result<ordered_json> {
      store_.Rollback();
      (void)LoadFromStore();  // the in-memory view follows the store
      return e;
    };
    auto stored_pools = store_.Pools();
    if (!stored_pools.ok()) return fail(stored_pools.error());
    // A registry without pools would drain every environment: an editor's empty file, a tool mid-write. Only
    // when the file says so.
    if (reg.pools.empty() && !reg.allow_empty) {
      std::string in_service;
      for (const auto& p : *stored_pools) {
        if (!p.removed) in_service += (in_service.empty() ? "" : ", ") + p.name;
      }
      if (!in_service.empty()) {
        store_.Rollback();
        return MakeError(
            ErrorCode::kInvalidArgument,
            fmt::format("{}: the registry names no pools: applying it would remove every pool ({}) "
                        "and drain their environments; nothing changed (write `allow_empty: true` "
                        "in the file if that is meant)",
                        reg.source, in_service));
      }
    }
    std::set<std::string> names;
    for (const auto& p : reg.pools) {
      names.insert(p.name);
      if (auto r = store_.PutPool({p.name, PoolJson(p).dump(), false}); !r.ok()) return fail(r.error());
      report["pools"].push_back(p.name);
    }
    for (const auto& p : *stored_pools) {
      if (!names.count(p.name)) {
        if (auto r = store_.PutPool({p.name, p.settings_json, true}); !r.ok()) return fail(r.error());
      }
    }
    auto stored = store_.Environments("");
    if (!stored.ok()) return fail(stored.error());
    std::map<std::string, store::EnvironmentRow> by_id;
    for (auto& e : *stored) by_id[e.id] = e;
    std::set<std::string> listed;
    for (const auto& spec : reg.environments) {
      listed.insert(spec.id);
      const std::string spec_json = EnvironmentJson(spec).dump();
      auto it = by_id.find(spec.id);
      if (it == by_id.end()) {
        store::EnvironmentRow row;
        row.id = spec.id;
        row.pool = spec.pool;
        row.spec_json = spec_json;
        row.created_ns = row.state_since_ns = now;
        if (auto r = store_.InsertEnvironment(row); !r.ok()) return fail(r.error());
        report["added"].push_back(spec.id);
        continue;
      }
      store::EnvironmentRow row = it->second;
      const bool changed = row.spec_json != spec_json || row.pool != spec.pool || row.removed;
      if (!changed) continue;
      if (row.removed) row.draining = false;  // listed again: back in service
      if (row.state == "retired") {
        row.state = "available";
        row.state_since_ns = now;
        row.note.clear();
      }
      row.removed = false;
      row.spec_json = spec_json;
      row.pool = spec.pool;
      auto r = store_.UpdateEnvironment(row, it->second.state, it->second.allocation_id);
      if (!r.ok()) return fail(r.error());
      report["updated"].push_back(spec.id);
    }
    for (auto& [id, row] : by_id) {
      // Environments created by grow mode stay in their pool while the pool exists.
      if (listed.count(id) || (row.grown && names.count(row.pool)) || row.state == "retired") continue;
      if (row.state == "available") {
        auto r = store_.UpdateEnvironment(Retired(row, now), "available", row.allocation_id);
        if (!r.ok()) return fail(r.error());
        report["retired"].push_back(id);
        continue;
      }
      if (row.removed) continue;
      store::EnvironmentRow next = row;
      next.removed = next.draining = true;
      auto r = store_.UpdateEnvironment(next, row.state, row.allocation_id);
      if (!r.ok()) return fail(r.error());
      report["draining"].push_back(id);
    }
    store::AuditRow audit{0, now, principal, "sync", "", "", "", "ok", http::JsonText(report)};
    if (auto r = store_.AppendAudit(audit); !r.ok()) return fail(r.error());
    if (auto c = store_.Commit(); !c.ok()) return fail(c.error());
    if (auto r = LoadFromStore(); !r.ok()) return r.error();
    for (auto& [name, pool] : pools_) {  // waiters of a pool that left the registry get their answer
      if (!pool.removed) continue;
      for (size_t i = 0; i < pool.waiters.size(); ++i) {
        Waiter& w = pool.waiters[i];
        if (w.done) continue;
        w.done = true;
        w.out.Send(http::ErrorResponse(
            ApiError{404, "no_pool", fmt::format("pool '{}' was removed", name), "pool"}));
      }
      Compact(pool);
    }
    // Waiters that the registry left without enough environments get their answer now, not at their wait's
    // end.
    for (auto& [name, pool] : pools_) {
      if (pool.removed || pool.spec.grow_max > 0) continue;
      Walk walk(pool);
      for (size_t i = 0; i < pool.waiters.size(); ++i) {
        Waiter& w = pool.waiters[i];
        if (w.done) continue;
        if (const size_t matching = Matching(w.request); matching < w.request.count) {
          w.done = true;
          w.out.Send(http::ErrorResponse(Unsatisfiable(w.request, matching)));
        }
      }
    }
    for (auto& [name, _] : pools_) Pump(name);
    return report;
  }

  // ---- allocation -------------------------------------------------------------------------------------

  struct Request {
    std::string pool;
    std::string principal;
    std::string requester;
    uint32_t count = 1;
    Requirements require;
    int64_t duration_ns = 0;  // 0: the pool's default
    std::string idempotency_key;
  };

  struct Waiter {
    uint64_t seq = 0;
    Request request;
    http::Responder out;
    int64_t enqueued_mono = 0;
    int64_t deadline_mono = 0;
    bool grow_pending = false;  // a create runs on its behalf: it waits for it even past its own wait
    bool done = false;          // answered (or gone): removed by the next Compact
  };

  struct Pool {
    PoolSpec spec;
    bool removed = false;
    std::deque<Waiter> waiters;  // walked by index; entries are only marked done while a walk may run
    uint32_t walking = 0;        // walks in progress (Compact waits for the last)
    std::deque<std::string> cleanup_queue;  // environment ids, in order
    uint32_t cleanups_running = 0;
    uint32_t growing = 0;
    bool pumping = false, repump = false;
    Histogram wait, cleanup;
    std::map<std::string, uint64_t> outcomes;  // deallocations by outcome
    std::map<std::string, uint64_t> requests;  // allocated | rejected | timed_out | failed
  };

  // Removes answered waiters, unless a walk over the queue is in progress (it compacts when it ends).
  static void Compact(Pool& pool) {
    if (pool.walking == 0) std::erase_if(pool.waiters, [](const Waiter& w) { return w.done; });
  }
  struct Walk {
    explicit Walk(Pool& p) : pool(p) { ++pool.walking; }
    ~Walk() {
      --pool.walking;
      Compact(pool);
    }
    Pool& pool;
  };

  // How many environments could ever serve `rq`: those of its pool that match, whatever their state, but not
  // those removed from the registry (they are retired as soon as they are released).
  size_t Matching(const Request& rq) const {
    size_t matching = 0;
    for (const auto& [id, spec] : specs_) {
      if (spec.pool == rq.pool && !leaving_.count(id) && Matches(spec, rq.require)) ++matching;
    }
    return matching;
  }

  static ApiError Unsatisfiable(const Request& rq, size_t matching) {
    return ApiError{409, "unsatisfiable",
                    fmt::format("pool '{}' has {} environment(s) matching the request, {} asked for", rq.pool,
                                matching, rq.count),
                    matching == 0 && !rq.require.empty() ? "require" : "count"};
  }

  static size_t Waiting(const Pool& pool) {
    return static_cast<size_t>(
        std::count_if(pool.waiters.begin(), pool.waiters.end(), [](const Waiter& w) { return !w.done; }));
  }

  // The environment as history: out of service for good, its row kept (audit, allocations and notes refer
  // to it); listed again, it comes back.
  static store::EnvironmentRow Retired(store::EnvironmentRow row, int64_t now) {
    row.state = "retired";
    row.removed = row.draining = true;
    row.allocation_id.clear();
    row.state_since_ns = now;
    row.note = "removed from the registry";
    return row;
  }

  Pool& FindPool(const std::string& name, const char* field = "pool") {
    auto it = pools_.find(name);
    if (it == pools_.end() || it->second.removed) {
      std::string names;
      for (const auto& [n, p] : pools_) {
        if (!p.removed) names += (names.empty() ? "" : ", ") + n;
      }
      throw ApiError{404, "no_pool",
                     fmt::format("no pool '{}' (pools: {})", name, names.empty() ? "none" : names), field};
    }
    return it->second;
  }

  const EnvironmentSpec& Spec(const std::string& id) {
    static const EnvironmentSpec kNone;
    auto it = specs_.find(id);
    return it == specs_.end() ? kNone : it->second;
  }

  // One transaction: every environment or none. Environments in `reserved` belong to earlier waiters.
  // Returns the allocation, or nullopt with `candidates` the free matching environments.
  std::optional<store::AllocationRow> TryAllocate(const Request& rq, const std::set<std::string>& reserved,
                                                  std::vector<std::string>* candidates) {
    Pool& pool = pools_.at(rq.pool);
    const int64_t now = WallNanos();
    if (auto b = store_.Begin(); !b.ok()) throw http::StoreUnavailable(b.error().message);
    auto envs = store_.Environments(rq.pool, "", /*free_only=*/true);
    if (!envs.ok()) {
      store_.Rollback();
      throw http::StoreUnavailable(envs.error().message);
    }
    std::vector<store::EnvironmentRow*> picked;
    for (auto& e : *envs) {  // least recently released first
      if (reserved.count(e.id)) continue;
      if (!Matches(Spec(e.id), rq.require)) continue;
      if (candidates) candidates->push_back(e.id);
      if (picked.size() < rq.count) picked.push_back(&e);
    }
    if (picked.size() < rq.count) {
      store_.Rollback();
      return std::nullopt;
    }
    store::AllocationRow a;
    a.id = NewId();
    a.pool = rq.pool;
    a.principal = rq.principal;
    a.requester = rq.requester;
    a.state = "active";
    a.idempotency_key = rq.idempotency_key;
    a.created_ns = now;
    a.max_expires_ns = now + pool.spec.max_duration_ns;
    a.expires_ns = std::min(a.max_expires_ns,
                            now + (rq.duration_ns > 0 ? rq.duration_ns : pool.spec.default_duration_ns));
    std::vector<std::string> ids;
    for (auto* e : picked) ids.push_back(e->id);
    a.env_ids_json = EnvIdsJson(ids);
    auto abort = [&](const std::string& what) {
      store_.Rollback();
      throw http::StoreUnavailable(what);
    };
    for (auto* e : picked) {
      store::EnvironmentRow next = *e;
      next.state = "allocated";
      next.allocation_id = a.id;
      next.state_since_ns = now;
      next.note.clear();
      auto r = store_.UpdateEnvironment(next, "available", "");
      if (!r.ok()) abort(r.error().message);
      if (!*r) abort(fmt::format("environment {} changed under the allocation", e->id));
    }
    if (auto r = store_.InsertAllocation(a); !r.ok()) abort(r.error().message);
    for (const auto& id : ids) {
      auto r = store_.AppendAudit({0, now, rq.principal, "allocate", rq.pool, a.id, id, "ok",
                                   fmt::format("requester={}", rq.requester)});
      if (!r.ok()) abort(r.error().message);
    }
    if (auto c = store_.Commit(); !c.ok()) abort(c.error().message);
    return a;
  }

  void Allocate(Request rq, int64_t wait_ns, http::Responder out) {
    Pool& pool = FindPool(rq.pool);
    // Can it ever be satisfied?
    if (const size_t matching = Matching(rq); matching < rq.count && pool.spec.grow_max == 0) {
      throw Unsatisfiable(rq, matching);
    }
    if (wait_ns > 0) {
      size_t mine = 0;
      for (const auto& [n, p] : pools_) {
        for (const auto& w : p.waiters) mine += !w.done && w.request.principal == rq.principal;
      }
      if (mine >= options_.max_waiters_per_principal) {
        throw ApiError{429,
                       "limit_reached",
                       fmt::format("the token '{}' has {} allocation requests waiting "
                                   "(max_waiting_allocations_per_token: {})",
                                   rq.principal, mine, options_.max_waiters_per_principal),
                       "",
                       {{"Retry-After", "5"}}};
      }
    }
    Waiter w;
    w.seq = ++waiter_seq_;
    w.request = std::move(rq);
    w.out = std::move(out);
    w.enqueued_mono = MonoNanos();
    w.deadline_mono = w.enqueued_mono + std::min(wait_ns, options_.max_wait_ns);
    const uint64_t seq = w.seq;
    const std::string name = w.request.pool;
    pool.waiters.push_back(std::move(w));
    Pump(name);
    // Still queued with no time to wait: 423 at once (unless a create runs for it).
    Pool& after = pools_.at(name);
    for (auto& x : after.waiters) {
      if (x.seq != seq || x.done) continue;
      if (wait_ns == 0 && !x.grow_pending) {
        Reject(after, x, "rejected");
        Compact(after);
      }
      break;
    }
  }

  // Answers a waiter with 423 and marks it done.
  void Reject(Pool& pool, Waiter& w, const char* result) {
    w.done = true;
    ++pool.requests[result];
    const std::string retry = std::to_string(std::max<int64_t>(1, options_.retry_after_ns / kSecond));
    const std::string message =
        std::string(result) == "timed_out"
            ? fmt::format("no environment of pool '{}' became free within the wait", w.request.pool)
            : fmt::format("no capacity in pool '{}' now ({} waiting); retry later or pass 'wait'",
                          w.request.pool, Waiting(pool));
    w.out.Send(http::ErrorResponse(ApiError{423, "no_capacity", message, "", {{"Retry-After", retry}}}));
  }

  // Serves the pool's waiters in order. An environment an earlier waiter could use is reserved for it, so
  // later arrivals never overtake on what they compete for; waiters needing other environments still proceed.
  void Pump(const std::string& name) {
    auto pit = pools_.find(name);
    if (pit == pools_.end()) return;
    Pool& pool = pit->second;
    if (pool.pumping) {  // called back from inside a pump (a failed delivery released its environments)
      pool.repump = true;
      return;
    }
    pool.pumping = true;
    do {
      pool.repump = false;
      PumpOnce(pool, name);
    } while (pool.repump);
    pool.pumping = false;
  }

  void PumpOnce(Pool& pool, const std::string& name) {
    if (pool.waiters.empty()) return;
    Walk walk(pool);  // by index, done flags only: an answer sent from here may set off anything
    std::set<std::string> reserved;
    bool grow_started = false;
    // What is free, read once when the first waiter could not be served: a later waiter that cannot be served
    // from it costs no transaction.
    std::optional<std::vector<std::string>> free;
    for (size_t i = 0; i < pool.waiters.size(); ++i) {
      if (pool.waiters[i].done) continue;
      if (!pool.waiters[i].out.alive()) {  // the client left: nothing to hand out
        ++pool.requests["abandoned"];
        pool.waiters[i].done = true;
        continue;
      }
      std::vector<std::string> candidates;
      if (free) {
        for (const auto& id : *free) {
          if (!reserved.count(id) && Matches(Spec(id), pool.waiters[i].request.require))
            candidates.push_back(id);
        }
      }
      // It waits on: what it could use is reserved for it, and one create per pump runs for the first such.
      auto keep_waiting = [&](const std::vector<std::string>& could_use) {
        reserved.insert(could_use.begin(), could_use.end());
        Waiter& w = pool.waiters[i];
        if (!grow_started && !w.grow_pending && CanGrow(pool)) {
          w.grow_pending = true;
          grow_started = true;
          Grow(pool, w.request);
        }
      };
      if (free && candidates.size() < pool.waiters[i].request.count) {
        keep_waiting(candidates);
        continue;
      }
      candidates.clear();
      std::optional<store::AllocationRow> a;
      try {
        a = TryAllocate(pool.waiters[i].request, reserved, &candidates);
      } catch (const ApiError& e) {
        pool.waiters[i].done = true;
        pool.waiters[i].out.Send(http::ErrorResponse(e));
        continue;
      }
      if (!a && !free) {  // what TryAllocate saw free (its transaction is over; nothing else writes between)
        free.emplace();
        auto rows = store_.Environments(name, "", /*free_only=*/true);
        if (rows.ok()) {
          for (const auto& e : *rows) free->push_back(e.id);
        }
      }
      if (a && free) {
        for (const auto& id : EnvIds(*a)) std::erase(*free, id);
      }
      if (a) {
        Waiter& w = pool.waiters[i];
        w.done = true;
        pool.wait.Add(static_cast<double>(MonoNanos() - w.enqueued_mono) / 1e9);
        ++pool.requests["allocated"];
        Deliver(*a, w.out, 201);
        continue;
      }
      keep_waiting(candidates);
    }
  }

  // Sends the allocation with its environments and their credentials (run now, or cached for a replay).
  void Deliver(const store::AllocationRow& a, http::Responder out, int status) {
    const auto ids = EnvIds(a);
    if (auto c = credentials_.find(a.id); c != credentials_.end()) {
      SendAllocation(a, out, status, c->second);
      return;
    }
    auto pending = std::make_shared<std::pair<size_t, ordered_json>>(ids.size(), ordered_json::object());
    auto failed = std::make_shared<std::string>();
    auto finish = [this, a, out, status, pending, failed]() mutable {
      if (--pending->first != 0) return;
      if (!failed->empty()) {
        // No credentials, no lease: hand the environments back untouched (they were never used).
        if (auto r = Release(a, "credentials_failed", kSystem, /*clean=*/false); !r.ok()) {
          LogError("allocation {}: not handed back: {} (the reaper ends it at its expiry)", a.id,
                   r.error().message);
        }
        ++pools_[a.pool].requests["failed"];
        out.Send(http::ErrorResponse(ApiError{502, "credentials_failed", *failed, ""}));
        return;
      }
      credentials_[a.id] = pending->second;
      SendAllocation(a, out, status, pending->second);
    };
    if (ids.empty()) {
      pending->first = 1;
      finish();
      return;
    }
    for (const auto& id : ids) {
      const EnvironmentSpec& spec = Spec(id);
      const Credentials& creds = spec.credentials ? *spec.credentials : pools_[a.pool].spec.credentials;
      ordered_json mine = ordered_json::object();
      for (const auto& [var, path] : creds.files) {
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        if (!in || !(ss << in.rdbuf())) {
          *failed = fmt::format("environment {}: cannot read the credentials file for {}", id, var);
          break;
        }
        mine[var] = SecretValue(ss.str());
      }
      if (creds.command.empty() || !failed->empty()) {
        if (!mine.empty()) pending->second[id] = mine;
        finish();
        continue;
      }
      runner_.Start(
          creds.command, http::JsonText(HookJson(id, a, "")), HookEnv(id, a.id),
          [id, mine, pending, failed, finish](CommandResult r) mutable {
            if (!r.ok()) {
              // The output may hold secrets: only how it ended is reported.
              *failed = fmt::format("environment {}: the credentials command failed ({})", id, r.Describe());
            } else {
              json printed = json::parse(r.out, nullptr, false);
              if (!printed.is_object()) {
                *failed =
                    fmt::format("environment {}: the credentials command did not print a JSON object", id);
              } else {
                for (const auto& [k, v] : printed.items()) mine[k] = v;
                pending->second[id] = mine;
              }
            }
            finish();
          });
    }
  }

  void SendAllocation(const store::AllocationRow& a, http::Responder& out, int status,
                      const ordered_json& creds) {
    ordered_json j = AllocationJson(a);
    j["credentials"] = creds;
    out.Send(http::JsonResponse(status, j));
  }

  ordered_json AllocationJson(const store::AllocationRow& a) {
    ordered_json envs = ordered_json::array();
    for (const auto& id : EnvIds(a)) {
      const EnvironmentSpec& s = Spec(id);
      ordered_json e = s.id.empty() ? ordered_json{{"id", id}, {"pool", a.pool}} : PublicJson(s);
      envs.push_back(e);
    }
    ordered_json j = {
        {"id", a.id},
        {"pool", a.pool},
        {"requester", a.requester},
        {"owner", a.principal},
        {"state", a.state},
        {"created_at", Iso(a.created_ns)},
        {"expires_at", Iso(a.expires_ns)},
        {"max_expires_at", Iso(a.max_expires_ns)},
        {"expires_in_s",
         a.state == "active" ? std::max<int64_t>(0, (a.expires_ns - WallNanos()) / kSecond) : 0},
        {"environments", envs}};
    if (!a.idempotency_key.empty()) j["idempotency_key"] = a.idempotency_key;
    if (a.state != "active") {
      j["outcome"] = a.outcome;
      j["ended_at"] = Iso(a.ended_ns);
    }
    return j;
  }

  // What a hook reads on stdin: the environment and its allocation.
  ordered_json HookJson(const std::string& env_id, const store::AllocationRow& a,
                        const std::string& outcome) {
    ordered_json j = PublicJson(Spec(env_id));
    j["allocation"] = {{"id", a.id}, {"requester", a.requester}, {"owner", a.principal}};
    if (!outcome.empty()) j["allocation"]["outcome"] = outcome;
    return j;
  }

  std::map<std::string, std::string> HookEnv(const std::string& env_id, const std::string& allocation) {
    const EnvironmentSpec& s = Spec(env_id);
    return {{"MERIDIAN_ENV_ID", env_id},
            {"MERIDIAN_POOL", s.pool},
            {"MERIDIAN_REGION", s.region},
            {"MERIDIAN_ACCOUNT", s.account},
            {"MERIDIAN_ALLOCATION_ID", allocation}};
  }

  // ---- deallocation, cleanup --------------------------------------------------------------------------

  // Ends an active allocation in one transaction and returns it ended; nullopt when it had ended already
  // (guarded: a second call is a no-op), an error when the store could not write it (nothing changed).
  // `clean`: the environments go through the pool's cleanup and the credentials are revoked (false: they
  // were never handed out).
  Result<std::optional<store::AllocationRow>> Release(store::AllocationRow a, const std::string& outcome,
                                                      const std::string& principal, bool clean) {
    const int64_t now = WallNanos();
    Pool& pool = pools_[a.pool];
    store::AllocationRow next = a;
    next.state = outcome == "expired" ? "expired" : "released";
    next.outcome = outcome;
    next.ended_ns = now;
    next.revoke_pending = clean && HasRevoke(a);
    std::vector<store::EnvironmentRow> to_clean;
    std::vector<std::string> retired;
    if (auto b = store_.Begin(); !b.ok()) return b.error();
    auto fail = [&](const Error& e) -> Result<std::optional<store::AllocationRow>> {
      store_.Rollback();
      return e;
    };
    auto ok = store_.UpdateAllocation(next, "active");
    if (!ok.ok()) return fail(ok.error());
    if (!*ok) {
      store_.Rollback();
      return std::optional<store::AllocationRow>();
    }
    for (const auto& id : EnvIds(a)) {
      auto e = store_.GetEnvironment(id);
      if (!e.ok()) return fail(e.error());
      if (!e->has_value()) continue;
      store::EnvironmentRow row = **e;
      if (row.state != "allocated" || row.allocation_id != a.id) continue;  // not ours any more: no-op
      const EnvironmentSpec& spec = Spec(id);
      const bool has_cleanup = clean && (spec.cleanup ? !spec.cleanup->empty() : !pool.spec.cleanup.empty());
      store::EnvironmentRow nr = row;
      nr.state_since_ns = now;
      if (has_cleanup) {
        nr.state = "cleaning";
        nr.cleanup_attempts = 0;
        nr.cleanup_deadline_ns = 0;  // set when it starts (it may queue behind cleanup_concurrency)
      } else if (row.removed) {
        nr = Retired(row, now);
        retired.push_back(id);
      } else {
        nr.state = "available";
        nr.allocation_id.clear();
        nr.last_released_ns = now;
      }
      auto r = store_.UpdateEnvironment(nr, "allocated", a.id);
      if (!r.ok()) return fail(r.error());
      if (has_cleanup) to_clean.push_back(nr);
      auto audit = store_.AppendAudit({0, now, principal, outcome == "expired" ? "expire" : "deallocate",
                                       a.pool, a.id, id, outcome, has_cleanup ? "cleanup queued" : ""});
      if (!audit.ok()) return fail(audit.error());
    }
    if (auto c = store_.Commit(); !c.ok()) return fail(c.error());
    for (const auto& id : retired) specs_.erase(id), leaving_.erase(id);
    ++pool.outcomes[outcome];
    if (next.revoke_pending) Revoke(next, outcome);
    credentials_.erase(a.id);
    for (auto& e : to_clean) QueueCleanup(e);
    Pump(a.pool);
    return std::optional<store::AllocationRow>(next);
  }

  const Credentials& CredentialsOf(const std::string& env_id, const std::string& pool) {
    const EnvironmentSpec& spec = Spec(env_id);
    return spec.credentials ? *spec.credentials : pools_[pool].spec.credentials;
  }

  bool HasRevoke(const store::AllocationRow& a) {
    const auto ids = EnvIds(a);
    return std::any_of(ids.begin(), ids.end(),
                       [&](const std::string& id) { return !CredentialsOf(id, a.pool).revoke.empty(); });
  }

  // Runs the revoke command of each environment with a revoke, with the credentials handed out (while this
  // process still has them); when the last reports, the allocation's revoke is no longer pending.
  void Revoke(const store::AllocationRow& a, const std::string& outcome) {
    auto cached = credentials_.find(a.id);
    auto left = std::make_shared<size_t>(0);
    std::vector<std::pair<std::string, std::string>> runs;  // environment, input
    for (const auto& id : EnvIds(a)) {
      if (CredentialsOf(id, a.pool).revoke.empty()) continue;
      ordered_json input = HookJson(id, a, outcome);
      if (cached != credentials_.end() && cached->second.contains(id))
        input["credentials"] = cached->second[id];
      runs.emplace_back(id, http::JsonText(input));
    }
    *left = runs.size();
    if (runs.empty()) return ClearRevoke(a);
    for (auto& [id, input] : runs) {
      runner_.Start(CredentialsOf(id, a.pool).revoke, std::move(input), HookEnv(id, a.id),
                    [this, id = id, a, left](CommandResult r) {
                      Audit({kSystem, "revoke", a.pool, a.id, id, r.ok() ? "ok" : "failed", r.Describe()});
                      if (!r.ok())
                        LogWarn("environment {}: the revoke command failed ({})", id, r.Describe());
                      if (--*left == 0) ClearRevoke(a);
                    });
    }
  }

  void ClearRevoke(store::AllocationRow a) {
    auto now = store_.GetAllocation(a.id);
    if (!now.ok() || !now->has_value() || !(*now)->revoke_pending) return;
    store::AllocationRow next = **now;
    next.revoke_pending = false;
    if (auto r = store_.UpdateAllocation(next, next.state); !r.ok()) {
      LogError("allocation {}: revoke done, not stored: {} (it runs again after a restart)", a.id,
               r.error().message);
    }
  }

  void QueueCleanup(const store::EnvironmentRow& e) {
    Pool& pool = pools_[e.pool];
    if (std::find(pool.cleanup_queue.begin(), pool.cleanup_queue.end(), e.id) == pool.cleanup_queue.end()) {
      pool.cleanup_queue.push_back(e.id);
    }
    StartCleanups(e.pool);
  }

  void StartCleanups(const std::string& name) {
    Pool& pool = pools_[name];
    while (!pool.cleanup_queue.empty() && pool.cleanups_running < pool.spec.cleanup_concurrency) {
      const std::string id = pool.cleanup_queue.front();
      pool.cleanup_queue.pop_front();
      auto got = store_.GetEnvironment(id);
      if (!got.ok() || !got->has_value() || (*got)->state != "cleaning") continue;
      store::EnvironmentRow row = **got;
      const EnvironmentSpec& spec = Spec(id);
      Command cmd = spec.cleanup ? *spec.cleanup : pool.spec.cleanup;
      cmd.timeout_ns = pool.spec.cleanup.timeout_ns;
      if (cmd.empty()) {  // the pool lost its cleanup command in a sync: nothing to run
        FinishCleanup(row, CommandResult{0, 0, false, "", "", 0, "", 0}, true);
        continue;
      }
      store::EnvironmentRow next = row;
      next.cleanup_attempts += 1;
      next.cleanup_deadline_ns = WallNanos() + cmd.timeout_ns;
      auto r = store_.UpdateEnvironment(next, "cleaning", row.allocation_id);
      if (!r.ok() || !*r) continue;
      ++pool.cleanups_running;
      const std::string outcome = "";  // the allocation's outcome is in the audit
      store::AllocationRow a;
      if (auto ar = store_.GetAllocation(row.allocation_id); ar.ok() && ar->has_value()) a = **ar;
      a.id = row.allocation_id;
      runner_.Start(cmd, http::JsonText(HookJson(id, a, a.outcome)), HookEnv(id, row.allocation_id),
                    [this, next, name](CommandResult result) {
                      --pools_[name].cleanups_running;
                      FinishCleanup(next, result, false);
                      StartCleanups(name);
                    });
    }
  }

  void FinishCleanup(const store::EnvironmentRow& row, const CommandResult& r, bool skipped) {
    Pool& pool = pools_[row.pool];
    if (!skipped) pool.cleanup.Add(static_cast<double>(r.duration_ns) / 1e9);
    const int64_t now = WallNanos();
    store::EnvironmentRow next = row;
    next.state_since_ns = now;
    next.cleanup_deadline_ns = 0;
    next.log = r.log;
    if (r.ok()) {
      next.state = "available";
      next.allocation_id.clear();
      next.last_released_ns = now;
      next.cleanup_attempts = 0;
      next.note = skipped ? "" : fmt::format("cleaned in {}", FormatDuration(r.duration_ns));
    } else {
      next.state = "dirty";
      next.note = fmt::format("cleanup failed: {}", r.Describe());
    }
    auto u = store_.UpdateEnvironment(next, "cleaning", row.allocation_id);
    if (!u.ok() || !*u) return;  // reinstated, or handled elsewhere: stale result
    Audit({kSystem, "cleanup", row.pool, row.allocation_id, row.id, r.ok() ? "ok" : "dirty",
           skipped ? "no cleanup command" : r.Describe()});
    if (next.state == "available" && next.removed) {
      if (auto retired = store_.UpdateEnvironment(Retired(next, now), "available", "");
          retired.ok() && *retired) {
        specs_.erase(row.id);
        leaving_.erase(row.id);
      }
    }
    if (!r.ok()) LogWarn("environment {} is dirty: {}", row.id, next.note);
    Pump(row.pool);
  }

  void MarkDirty(store::EnvironmentRow row, const std::string& why) {
    const std::string state = row.state, allocation = row.allocation_id;
    row.state = "dirty";
    row.note = why;
    row.state_since_ns = WallNanos();
    row.cleanup_deadline_ns = 0;
    auto u = store_.UpdateEnvironment(row, state, allocation);
    if (u.ok() && *u) {
      Audit({kSystem, "cleanup", row.pool, allocation, row.id, "dirty", why});
      LogWarn("environment {} is dirty: {}", row.id, why);
    }
  }

  // ---- grow mode --------------------------------------------------------------------------------------

  bool CanGrow(const Pool& pool) {
    if (pool.spec.grow_max == 0 || pool.removed) return false;
    size_t size = 0;
    for (const auto& [id, s] : specs_) size += s.pool == pool.spec.name;
    return size + pool.growing < pool.spec.grow_max;
  }

  void Grow(Pool& pool, const Request& rq) {
    ++pool.growing;
    const std::string name = pool.spec.name;
    size_t n = 1;
    while (specs_.count(fmt::format("{}-{}", name, n))) ++n;
    const std::string proposed = fmt::format("{}-{}", name, n);
    ordered_json input = {
        {"pool", name}, {"id", proposed}, {"requester", rq.requester}, {"require", rq.require}};
    std::map<std::string, std::string> env = {{"MERIDIAN_POOL", name}, {"MERIDIAN_ENV_ID", proposed}};
    LogInfo("pool {}: creating an environment (grow mode, {} of at most {})", name, n, pool.spec.grow_max);
    runner_.Start(pool.spec.grow_create, http::JsonText(input), env, [this, name, proposed](CommandResult r) {
      auto it = pools_.find(name);
      if (it == pools_.end()) return;
      Pool& grown = it->second;
      --grown.growing;
      std::string error;
      EnvironmentSpec spec;
      if (!r.ok()) {
        error = fmt::format("the create command failed ({})", r.Describe());
      } else {
        json out = json::parse(r.out.empty() ? "{}" : r.out, nullptr, false);
        if (!out.is_object()) {
          error = "the create command did not print a JSON object";
        } else {
          try {
            spec.id = out.value("id", proposed);
            spec.pool = name;
            spec.region = out.value("region", "");
            spec.account = out.value("account", "");
            const json caps = out.value("capabilities", json::object());
            for (const auto& [k, v] : caps.items()) {
              spec.capabilities[k] = v.is_string() ? v.get<std::string>() : v.dump();
            }
          } catch (const json::exception& e) {
            error = fmt::format("the create command's JSON: {}", e.what());
          }
          if (error.empty() && (!ValidId(spec.id) || specs_.count(spec.id))) {
            error = fmt::format("the create command named an invalid or taken id '{}'", spec.id);
          }
        }
      }
      if (error.empty()) {
        store::EnvironmentRow row;
        row.id = spec.id;
        row.pool = name;
        row.spec_json = EnvironmentJson(spec).dump();
        row.grown = true;
        row.created_ns = row.state_since_ns = WallNanos();
        if (auto ins = store_.InsertEnvironment(row); !ins.ok()) error = ins.error().message;
      }
      Audit({kSystem, "create", name, "", error.empty() ? spec.id : proposed, error.empty() ? "ok" : "failed",
             error.empty() ? r.Describe() : error});
      if (error.empty()) {
        specs_[spec.id] = spec;
      } else {
        LogWarn("pool {}: {}", name, error);
      }
      // Waiters that were waiting for this create alone get their answer now.
      for (auto& w : grown.waiters) {
        if (!w.done && w.grow_pending) {
          w.grow_pending = false;
          break;
        }
      }
      Pump(name);
      const int64_t now = MonoNanos();
      Walk walk(grown);
      for (size_t i = 0; i < grown.waiters.size(); ++i) {
        Waiter& w = grown.waiters[i];
        if (w.done || w.grow_pending || w.deadline_mono > now) continue;
        if (!error.empty()) {
          w.done = true;
          ++grown.requests["failed"];
          w.out.Send(http::ErrorResponse(
              ApiError{503, "grow_failed", fmt::format("pool '{}': {}", name, error), ""}));
        } else {
          Reject(grown, w, "rejected");
        }
      }
    });
  }

  // ---- reaper and time-outs ---------------------------------------------------------------------------

  void Tick() {
    const int64_t now_mono = MonoNanos();
    for (auto& [name, pool] : pools_) {
      bool dropped = false;
      {
        Walk walk(pool);
        for (size_t i = 0; i < pool.waiters.size(); ++i) {
          Waiter& w = pool.waiters[i];
          if (w.done) continue;
          if (!w.out.alive()) {
            ++pool.requests["abandoned"];
            w.done = true;
            dropped = true;
          } else if (!w.grow_pending && w.deadline_mono <= now_mono) {
            Reject(pool, w, "timed_out");
            dropped = true;
          }
        }
      }
      if (dropped) Pump(name);  // what a dropped waiter reserved may serve a later one
    }
    if (now_mono < next_reap_mono_) return;
    next_reap_mono_ = now_mono + 250'000'000;
    const int64_t now = WallNanos();
    auto expired = store_.ExpiredAllocations(now);
    if (!expired.ok()) return;
    for (const auto& a : *expired) {
      LogInfo("allocation {} of {} expired: deallocating on its holder's behalf", a.id, a.requester);
      if (auto r = Release(a, "expired", kSystem, true); !r.ok()) {
        LogError("allocation {} expired but is not ended: {} (tried again shortly)", a.id, r.error().message);
        break;  // the store cannot write now: the next reap tries again
      }
    }
    // A cleanup past its deadline that no hook reports on any more (it cannot happen while this process runs
    // it: the runner enforces the deadline) ends dirty.
    auto envs = store_.Environments("", "cleaning");
    if (!envs.ok()) return;
    for (const auto& e : *envs) {
      if (e.cleanup_deadline_ns != 0 && e.cleanup_deadline_ns + 30 * kSecond < now &&
          pools_[e.pool].cleanups_running == 0) {
        MarkDirty(e, "the cleanup's deadline passed without a result");
      }
    }
  }

  // ---- the API ----------------------------------------------------------------------------------------

  void Handle(http::ServerRequest& req, const std::vector<std::string>& p, const Caller& caller,
              http::Responder& out) {
    const std::string& what = p[1];
    if (what == "allocations") return Allocations(req, p, caller, out);
    if (what == "pools") {
      Method(req, "GET");
      if (p.size() != 2) throw ApiError{404, "not_found", "no such route: " + req.path, ""};
      return out.Send(http::JsonResponse(200, PoolsJson()));
    }
    if (what == "environments") return Environments(req, p, caller, out);
    if (what == "audit") {
      Method(req, "GET");
      if (!caller.admin) throw ApiError{403, "forbidden", "the audit log needs the scope env:admin", ""};
      store::AuditFilter f;
      f.after_id = http::QueryInt(req, "after", 0, 0, INT64_MAX);
      f.limit = static_cast<size_t>(http::QueryInt(req, "limit", 1000, 1, 10000));
      f.pool = req.Query("pool");
      f.allocation_id = req.Query("allocation");
      f.environment_id = req.Query("environment");
      f.action = req.Query("action");
      auto rows = store_.Audit(f);
      if (!rows.ok()) throw http::StoreUnavailable(rows.error().message);
      ordered_json list = ordered_json::array();
      for (const auto& r : *rows) {
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
      return out.Send(http::JsonResponse(200, {{"audit", list}}));
    }
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  static void Method(const http::ServerRequest& req, const char* allowed) {
    if (req.method != allowed) {
      throw ApiError{405, "method_not_allowed", fmt::format("use {} for {}", allowed, req.path), ""};
    }
  }

  store::AllocationRow OwnedAllocation(const std::string& id, const Caller& caller) {
    auto a = store_.GetAllocation(id);
    if (!a.ok()) throw http::StoreUnavailable(a.error().message);
    if (!a->has_value()) throw ApiError{404, "not_found", fmt::format("no allocation '{}'", id), ""};
    if (!caller.admin && (*a)->principal != caller.principal) {
      // Whose it is stays unsaid: another token's name and requester are not this caller's business.
      throw ApiError{
          403, "not_owner",
          fmt::format(
              "allocation '{}' is not yours; only the token that allocated it or env:admin may act on it",
              id),
          ""};
    }
    return **a;
  }

  void Allocations(http::ServerRequest& req, const std::vector<std::string>& p, const Caller& caller,
                   http::Responder& out) {
    if (p.size() == 2 && req.method == "GET") {
      store::AllocationFilter f;
      f.principal =
          caller.admin ? req.Query("owner") : caller.principal;  // the owner filter precedes the limit
      f.requester = req.Query("requester");
      f.active_only = StateQuery(req, {"active"}) == "active";
      f.limit = static_cast<size_t>(http::QueryInt(req, "limit", 100, 1, 10000));
      auto rows = store_.Allocations(f);
      if (!rows.ok()) throw http::StoreUnavailable(rows.error().message);
      ordered_json list = ordered_json::array();
      for (const auto& a : *rows) list.push_back(AllocationJson(a));
      return out.Send(http::JsonResponse(200, {{"allocations", list}}));
    }
    if (p.size() == 2) {
      Method(req, "POST");
      const json body = http::ParseBody(req);
      CheckKeys(body, {"pool", "requester", "count", "require", "duration", "wait", "idempotency_key"});
      Request rq;
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
      Pool& pool = FindPool(rq.pool);
      if (rq.duration_ns > pool.spec.max_duration_ns) {
        throw ApiError{
            400, "invalid_field",
            fmt::format("'duration' {} exceeds pool '{}''s max_duration {}", FormatDuration(rq.duration_ns),
                        rq.pool, FormatDuration(pool.spec.max_duration_ns)),
            "duration"};
      }
      const int64_t wait = DurationField(body, "wait", 0);
      if (wait > options_.max_wait_ns) {
        throw ApiError{400, "invalid_field",
                       fmt::format("'wait' is at most {}", FormatDuration(options_.max_wait_ns)), "wait"};
      }
      rq.idempotency_key = Field<std::string>(body, "idempotency_key", "");
      if (rq.idempotency_key.size() > 200) {
        throw ApiError{400, "invalid_field", "'idempotency_key' is at most 200 characters",
                       "idempotency_key"};
      }
      if (!rq.idempotency_key.empty()) {
        auto prior = store_.FindAllocationByKey(caller.principal, rq.idempotency_key);
        if (!prior.ok()) throw http::StoreUnavailable(prior.error().message);
        if (prior->has_value()) {
          if ((*prior)->pool != rq.pool) {
            throw ApiError{409, "key_reused",
                           fmt::format("idempotency_key '{}' named allocation {} of pool '{}'",
                                       rq.idempotency_key, (*prior)->id, (*prior)->pool),
                           "idempotency_key"};
          }
          // The same allocation, whatever state it is in now; credentials only while it is active.
          if ((*prior)->state != "active") return SendAllocation(**prior, out, 200, ordered_json::object());
          return Deliver(**prior, out, 200);
        }
        for (const auto& w : pool.waiters) {
          if (!w.done && w.request.principal == caller.principal &&
              w.request.idempotency_key == rq.idempotency_key) {
            throw ApiError{
                409, "in_progress",
                fmt::format("a request with idempotency_key '{}' is already waiting", rq.idempotency_key),
                "idempotency_key"};
          }
        }
      }
      return Allocate(std::move(rq), wait, out);
    }
    const std::string& id = p[2];
    if (p.size() == 3 && req.method == "GET") {
      return out.Send(http::JsonResponse(200, AllocationJson(OwnedAllocation(id, caller))));
    }
    if (p.size() == 3) {
      Method(req, "DELETE");
      const json body = http::ParseBody(req);
      CheckKeys(body, {"outcome"});
      const std::string outcome = Field<std::string>(body, "outcome", "success");
      if (outcome != "success" && outcome != "failure" && outcome != "cancelled") {
        throw ApiError{400, "invalid_field", "'outcome' must be success, failure or cancelled", "outcome"};
      }
      store::AllocationRow a = OwnedAllocation(id, caller);
      if (a.state == "active") {
        auto ended = Release(a, outcome, caller.principal, true);
        if (!ended.ok()) throw http::StoreUnavailable(ended.error().message);  // still held: retry
        if (ended->has_value()) return out.Send(http::JsonResponse(200, AllocationJson(**ended)));
      }
      // Idempotent: it had ended (or just did, by the reaper): 200 with how it ended.
      auto now = store_.GetAllocation(id);
      if (!now.ok()) throw http::StoreUnavailable(now.error().message);
      if (!now->has_value() || (*now)->state == "active") {
        throw http::StoreUnavailable(fmt::format("allocation '{}' could not be ended", id));
      }
      return out.Send(http::JsonResponse(200, AllocationJson(**now)));
    }
    if (p.size() == 4 && p[3] == "renew") {
      Method(req, "POST");
      const json body = http::ParseBody(req);
      CheckKeys(body, {"duration"});
      store::AllocationRow a = OwnedAllocation(id, caller);
      if (a.state != "active") {
        throw ApiError{409, "not_active", fmt::format("allocation '{}' has ended ({})", id, a.outcome), ""};
      }
      const PoolSpec& spec = pools_[a.pool].spec;
      const int64_t asked = DurationField(body, "duration", 0, /*positive=*/true);
      const int64_t now = WallNanos();
      int64_t until = now + (asked > 0 ? asked : spec.default_duration_ns);
      if (until > a.max_expires_ns) {
        if (asked > 0 || a.expires_ns >= a.max_expires_ns) {
          throw ApiError{
              409, "max_duration",
              fmt::format("allocation '{}' cannot be renewed past {} (pool '{}''s max_duration {})", id,
                          Iso(a.max_expires_ns), a.pool, FormatDuration(spec.max_duration_ns)),
              asked > 0 ? "duration" : ""};
        }
        until = a.max_expires_ns;
      }
      store::AllocationRow next = a;
      next.expires_ns = std::max(a.expires_ns, until);
      auto r = store_.UpdateAllocation(next, "active");
      if (!r.ok()) throw http::StoreUnavailable(r.error().message);
      if (!*r) throw ApiError{409, "not_active", fmt::format("allocation '{}' has just ended", id), ""};
      Audit({caller.principal, "renew", a.pool, a.id, "", "ok", "until " + Iso(next.expires_ns)});
      return out.Send(http::JsonResponse(200, AllocationJson(next)));
    }
    throw ApiError{404, "not_found", "no such route: " + req.path, ""};
  }

  ordered_json EnvironmentRowJson(const store::EnvironmentRow& e, bool with_log) {
    const EnvironmentSpec& s = Spec(e.id);
    ordered_json j = s.id.empty() ? ordered_json{{"id", e.id}, {"pool", e.pool}} : PublicJson(s);
    j["state"] = e.state;
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

  void Environments(http::ServerRequest& req, const std::vector<std::string>& p, const Caller& caller,
                    http::Responder& out) {
    if (p.size() == 2) {
      Method(req, "GET");
      // Retired environments (removed from the registry, kept as history) only when asked for.
      const std::string state = StateQuery(req, {"available", "allocated", "cleaning", "dirty", "retired"});
      auto envs = store_.Environments(req.Query("pool"), state);
      if (!envs.ok()) throw http::StoreUnavailable(envs.error().message);
      ordered_json list = ordered_json::array();
      for (const auto& e : *envs) {
        if (e.state != "retired" || state == "retired") list.push_back(EnvironmentRowJson(e, false));
      }
      return out.Send(http::JsonResponse(200, {{"environments", list}}));
    }
    if (p.size() == 3 && p[2] == "sync") {
      Method(req, "POST");
      Admin(caller, "sync the registry");
      std::string file = req.Query("file");
      if (file.empty()) file = "registry.yaml";
      auto reg = ParseRegistry(req.body, file);
      if (!reg.ok()) throw ApiError{400, "invalid_registry", reg.error().message, ""};
      auto report = Sync(*reg, caller.principal);
      if (!report.ok() && report.error().code == ErrorCode::kInvalidArgument) {
        throw ApiError{409, "registry_refused", report.error().message, ""};
      }
      if (!report.ok()) throw http::StoreUnavailable(report.error().message);
      return out.Send(http::JsonResponse(200, *report));
    }
    auto got = store_.GetEnvironment(p[2]);
    if (!got.ok()) throw http::StoreUnavailable(got.error().message);
    if (!got->has_value()) throw ApiError{404, "not_found", fmt::format("no environment '{}'", p[2]), ""};
    store::EnvironmentRow e = **got;
    if (p.size() == 3) {
      Method(req, "GET");
      return out.Send(http::JsonResponse(200, EnvironmentRowJson(e, true)));
    }
    if (p.size() != 4) throw ApiError{404, "not_found", "no such route: " + req.path, ""};
    Method(req, "POST");
    const std::string& action = p[3];
    if (action != "reinstate" && action != "drain")
      throw ApiError{404, "not_found", "no such route: " + req.path, ""};
    Admin(caller, action + " an environment");
    store::EnvironmentRow next = e;
    next.state_since_ns = WallNanos();
    if (e.state == "retired") {
      throw ApiError{
          409, "removed",
          fmt::format("environment '{}' was removed from the registry (list it there again)", e.id), ""};
    }
    if (action == "drain") {
      next.draining = true;
    } else {
      if (e.state == "allocated" || e.state == "cleaning") {
        throw ApiError{
            409, "busy",
            fmt::format("environment '{}' is {} (allocation {}); reinstate applies to dirty or drained "
                        "environments",
                        e.id, e.state, e.allocation_id),
            ""};
      }
      if (e.removed) {
        throw ApiError{409, "removed", fmt::format("environment '{}' was removed from the registry", e.id),
                       ""};
      }
      next.state = "available";
      next.allocation_id.clear();
      next.draining = false;
      next.note.clear();
      next.cleanup_attempts = 0;
      next.last_released_ns = next.state_since_ns;
    }
    auto r = store_.UpdateEnvironment(next, e.state, e.allocation_id);
    if (!r.ok()) throw http::StoreUnavailable(r.error().message);
    if (!*r)
      throw ApiError{409, "conflict", fmt::format("environment '{}' changed meanwhile; retry", e.id), ""};
    Audit({caller.principal, action, e.pool, e.allocation_id, e.id, "ok", e.state + " → " + next.state});
    Pump(e.pool);
    return out.Send(http::JsonResponse(200, EnvironmentRowJson(next, false)));
  }

  static void Admin(const Caller& caller, const std::string& what) {
    if (!caller.admin)
      throw ApiError{403, "forbidden", fmt::format("to {} needs the scope env:admin", what), ""};
  }

  ordered_json PoolsJson() {
    auto envs = store_.Environments("");
    if (!envs.ok()) throw http::StoreUnavailable(envs.error().message);
    ordered_json list = ordered_json::array();
    for (const auto& [name, pool] : pools_) {
      if (pool.removed) continue;
      std::map<std::string, int> counts = {{"available", 0}, {"allocated", 0}, {"cleaning", 0}, {"dirty", 0}};
      int draining = 0, total = 0;
      for (const auto& e : *envs) {
        if (e.pool != name || e.state == "retired") continue;
        ++total;
        ++counts[e.state];
        draining += e.draining;
      }
      ordered_json c = ordered_json::object();
      for (const auto& [state, n] : counts) c[state] = n;
      c["draining"] = draining;
      list.push_back({{"name", name},
                      {"environments", total},
                      {"counts", c},
                      {"waiting", Waiting(pool)},
                      {"max_duration", FormatDuration(pool.spec.max_duration_ns)},
                      {"default_duration", FormatDuration(pool.spec.default_duration_ns)},
                      {"cleanup", !pool.spec.cleanup.empty()},
                      {"grow_max", pool.spec.grow_max}});
    }
    return {{"pools", list}};
  }

  std::string Metrics() {
    std::string out;
    auto envs = store_.Environments("");
    out +=
        "# HELP meridian_env_environments Environments by pool and state.\n"
        "# TYPE meridian_env_environments gauge\n";
    for (const auto& [name, pool] : pools_) {
      std::map<std::string, int> counts = {
          {"available", 0}, {"allocated", 0}, {"cleaning", 0}, {"dirty", 0}, {"draining", 0}};
      if (envs.ok()) {
        for (const auto& e : *envs) {
          if (e.pool != name || e.state == "retired") continue;
          ++counts[e.state];
          if (e.draining) ++counts["draining"];
        }
      }
      for (const auto& [state, n] : counts) {
        out += fmt::format("meridian_env_environments{{pool=\"{}\",state=\"{}\"}} {}\n", name, state, n);
      }
    }
    out +=
        "# HELP meridian_env_queue_length Allocation requests waiting in the pool's FIFO queue.\n"
        "# TYPE meridian_env_queue_length gauge\n";
    for (const auto& [name, pool] : pools_) {
      out += fmt::format("meridian_env_queue_length{{pool=\"{}\"}} {}\n", name, Waiting(pool));
    }
    out +=
        "# HELP meridian_env_cleanups_running Cleanup commands running now.\n"
        "# TYPE meridian_env_cleanups_running gauge\n";
    for (const auto& [name, pool] : pools_) {
      out += fmt::format("meridian_env_cleanups_running{{pool=\"{}\"}} {}\n", name, pool.cleanups_running);
    }
    out +=
        "# HELP meridian_env_wait_seconds Time from an allocation request to its allocation.\n"
        "# TYPE meridian_env_wait_seconds histogram\n";
    for (const auto& [name, pool] : pools_)
      pool.wait.Write(out, "meridian_env_wait_seconds", fmt::format("pool=\"{}\"", name));
    out +=
        "# HELP meridian_env_cleanup_seconds Cleanup command durations.\n"
        "# TYPE meridian_env_cleanup_seconds histogram\n";
    for (const auto& [name, pool] : pools_)
      pool.cleanup.Write(out, "meridian_env_cleanup_seconds", fmt::format("pool=\"{}\"", name));
    out +=
        "# HELP meridian_env_deallocations_total Ended allocations by outcome.\n"
        "# TYPE meridian_env_deallocations_total counter\n";
    for (const auto& [name, pool] : pools_) {
      for (const auto& [outcome, n] : pool.outcomes) {
        out += fmt::format("meridian_env_deallocations_total{{pool=\"{}\",outcome=\"{}\"}} {}\n", name,
                           outcome, n);
      }
    }
    out +=
        "# HELP meridian_env_requests_total Allocation requests by result.\n"
        "# TYPE meridian_env_requests_total counter\n";
    for (const auto& [name, pool] : pools_) {
      for (const auto& [result, n] : pool.requests) {
        out += fmt::format("meridian_env_requests_total{{pool=\"{}\",result=\"{}\"}} {}\n", name, result, n);
      }
    }
    return out;
  }

 private:
  void Audit(store::AuditRow row) {
    row.at_ns = WallNanos();
    if (auto r = store_.AppendAudit(row); !r.ok()) LogError("audit: {}", r.error().message);
  }
  // An audit row from its fields (principal, action, pool, allocation, environment, outcome, detail).
  void Audit(std::initializer_list<std::string> f) {
    std::vector<std::string> v(f);
    v.resize(7);
    Audit(store::AuditRow{0, 0, v[0], v[1], v[2], v[3], v[4], v[5], v[6]});
  }
  static std::string NewId() {
    static const char* d = "0123456789abcdef";
    std::string id = "a-";
    unsigned char b[8];
    if (RAND_bytes(b, sizeof b) != 1) std::abort();  // no randomness: never hand out a guessable id
    for (unsigned char c : b) id += d[c >> 4], id += d[c & 15];
    return id;
  }

  store::Store& store_;
  Options options_;
  Runner runner_;
  std::map<std::string, Pool> pools_;
  std::map<std::string, EnvironmentSpec> specs_;
  std::set<std::string> leaving_;  // removed from the registry while held: never handed out again
  std::map<std::string, ordered_json> credentials_;  // allocation → credentials, while it is active
  uint64_t waiter_seq_ = 0;
  int64_t next_reap_mono_ = 0;
};

EnvPool::EnvPool(net::EventLoop& loop, store::Store& store, Options options)
    : impl_(std::make_unique<Impl>(loop, store, std::move(options))) {}
EnvPool::~EnvPool() = default;
Result<void> EnvPool::Start() { return impl_->Start(); }
Result<void> EnvPool::Reload() { return impl_->Reload(); }
Result<ordered_json> EnvPool::Sync(const Registry& registry, const std::string& principal) {
  return impl_->Sync(registry, principal);
}
void EnvPool::Handle(http::ServerRequest& req, const std::vector<std::string>& path, const Caller& caller,
                     http::Responder& out) {
  impl_->Handle(req, path, caller, out);
}
bool EnvPool::Owns(const std::vector<std::string>& p) {
  return p.size() >= 2 && p[0] == "v1" &&
         (p[1] == "allocations" || p[1] == "pools" || p[1] == "environments" || p[1] == "audit");
}
void EnvPool::Tick() { impl_->Tick(); }
std::string EnvPool::Metrics() { return impl_->Metrics(); }

}  // namespace meridian::envpool
