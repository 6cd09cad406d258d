// The lease core's allocations: the FIFO queue with reservation, all-or-nothing allocation, delivery with
// credentials (release, renew and the reaper are in release.cpp).

#include "envpool/leases.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/base64.h"
#include "core/duration.h"
#include "core/id.h"
#include "core/json.h"
#include "core/log.h"
#include "core/utf8.h"

namespace meridian::envpool {

using nlohmann::json;
using nlohmann::ordered_json;
using store::AllocationState;
using store::EnvState;

namespace {

std::string EnvIdsJson(const std::vector<std::string>& ids) { return JsonText(json(ids)); }

// A secret as the holder gets it: text as it is (without a trailing line break), anything that is not UTF-8
// byte-exact as {"base64": "..."} (docs/environments.md).
json SecretValue(std::string secret) {
  if (FirstInvalidUtf8(secret) != std::string::npos) return json{{"base64", Base64Encode(secret)}};
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

}  // namespace

std::vector<std::string> EnvIds(const store::AllocationRow& a) {
  const json j = json::parse(a.env_ids_json, nullptr, false);
  return j.is_array() ? j.get<std::vector<std::string>>() : std::vector<std::string>{};
}

LeaseError StoreError(const Error& e, const std::string& what) {
  LogError("store: could not {}: {}", what, e.message);  // as http::StoreUnavailable logs it
  return LeaseError{LeaseErrorCode::kStoreUnavailable, fmt::format("could not {}", what), ""};
}

Error ToError(const LeaseError& e) {
  return MakeError(e.code == LeaseErrorCode::kStoreUnavailable ? ErrorCode::kIo : ErrorCode::kInvalidArgument,
                   e.message);
}

void SecondsHistogram::Add(double seconds) {
  size_t i = 0;
  while (i < std::size(kBounds) && seconds > kBounds[i]) ++i;
  ++counts[i];
  sum += seconds;
  ++total;
}

size_t Leases::Pool::Waiting() const {
  return static_cast<size_t>(
      std::count_if(waiters.begin(), waiters.end(), [](const Waiter& w) { return !w.done; }));
}

Leases::Leases(store::Store& store, const Clock& clock, HookRunner& hooks, Options options)
    : store_(store), clock_(clock), hooks_(hooks), options_(std::move(options)) {}

void Leases::Compact(Pool& pool) {
  if (pool.walking == 0) std::erase_if(pool.waiters, [](const Waiter& w) { return w.done; });
}

LeaseResult<const Leases::Pool*> Leases::FindPool(const std::string& name) const {
  auto it = pools_.find(name);
  if (it == pools_.end() || it->second.removed) {
    std::string names;
    for (const auto& [n, p] : pools_) {
      if (!p.removed) names += (names.empty() ? "" : ", ") + n;
    }
    return LeaseError{LeaseErrorCode::kNoPool,
                      fmt::format("no pool '{}' (pools: {})", name, names.empty() ? "none" : names), "pool"};
  }
  return &it->second;
}

const EnvironmentSpec& Leases::Spec(const std::string& id) const {
  static const EnvironmentSpec kNone;
  auto it = specs_.find(id);
  return it == specs_.end() ? kNone : it->second;
}

// How many environments could ever serve `rq`: those of its pool that match, whatever their state, but not
// those removed from the registry (they are retired as soon as they are released).
size_t Leases::Matching(const AllocationRequest& rq) const {
  size_t matching = 0;
  for (const auto& [id, spec] : specs_) {
    if (spec.pool == rq.pool && !leaving_.count(id) && Matches(spec, rq.require)) ++matching;
  }
  return matching;
}

LeaseError Leases::Unsatisfiable(const AllocationRequest& rq, size_t matching) {
  return LeaseError{LeaseErrorCode::kUnsatisfiable,
                    fmt::format("pool '{}' has {} environment(s) matching the request, {} asked for", rq.pool,
                                matching, rq.count),
                    matching == 0 && !rq.require.empty() ? "require" : "count"};
}

// ---- allocation ---------------------------------------------------------------------------------------

LeaseResult<const Leases::Pool*> Leases::CheckDuration(const std::string& name, int64_t duration_ns) const {
  auto found = FindPool(name);
  if (!found.ok()) return found;
  const PoolSpec& spec = (*found)->spec;
  if (duration_ns > spec.max_duration_ns) {
    return LeaseError{LeaseErrorCode::kInvalid,
                      fmt::format("'duration' {} exceeds pool '{}''s max_duration {}",
                                  FormatDuration(duration_ns), name, FormatDuration(spec.max_duration_ns)),
                      "duration"};
  }
  return found;
}

LeaseResult<void> Leases::CheckWait(int64_t wait_ns) const {
  if (wait_ns <= options_.max_wait_ns) return {};
  return LeaseError{LeaseErrorCode::kInvalid,
                    fmt::format("'wait' is at most {}", FormatDuration(options_.max_wait_ns)), "wait"};
}

void Leases::Allocate(AllocationRequest rq, int64_t wait_ns, Reply reply) {
  if (auto checked = CheckDuration(rq.pool, rq.duration_ns); !checked.ok())
    return reply.send(checked.error());
  if (auto checked = CheckWait(wait_ns); !checked.ok()) return reply.send(checked.error());
  Pool& pool = pools_.at(rq.pool);
  if (!rq.idempotency_key.empty()) {
    auto prior = store_.FindAllocationByKey(rq.principal, rq.idempotency_key);
    if (!prior.ok()) return reply.send(StoreError(prior.error(), "look up the idempotency key"));
    if (prior->has_value()) {
      const store::AllocationRow& a = **prior;
      if (a.pool != rq.pool) {
        return reply.send(LeaseError{LeaseErrorCode::kKeyReused,
                                     fmt::format("idempotency_key '{}' named allocation {} of pool '{}'",
                                                 rq.idempotency_key, a.id, a.pool),
                                     "idempotency_key"});
      }
      // The same allocation, whatever state it is in now; credentials only while it is active.
      if (a.state != AllocationState::kActive) return reply.send(Grant{a, ordered_json::object(), true});
      return Deliver(a, std::move(reply), /*replay=*/true);
    }
    for (const auto& w : pool.waiters) {
      if (!w.done && w.request.principal == rq.principal && w.request.idempotency_key == rq.idempotency_key) {
        return reply.send(LeaseError{
            LeaseErrorCode::kInProgress,
            fmt::format("a request with idempotency_key '{}' is already waiting", rq.idempotency_key),
            "idempotency_key"});
      }
    }
  }
  // Can it ever be satisfied?
  if (const size_t matching = Matching(rq); matching < rq.count && pool.spec.grow_max == 0) {
    return reply.send(Unsatisfiable(rq, matching));
  }
  if (wait_ns > 0) {
    size_t mine = 0;
    for (const auto& [n, p] : pools_) {
      for (const auto& w : p.waiters) mine += !w.done && w.request.principal == rq.principal;
    }
    if (mine >= options_.max_waiters_per_principal) {
      return reply.send(LeaseError{LeaseErrorCode::kLimitReached,
                                   fmt::format("the token '{}' has {} allocation requests waiting "
                                               "(max_waiting_allocations_per_token: {})",
                                               rq.principal, mine, options_.max_waiters_per_principal),
                                   ""});
    }
  }
  Waiter w;
  w.seq = ++waiter_seq_;
  w.request = std::move(rq);
  w.reply = std::move(reply);
  w.enqueued_mono = clock_.Mono();
  w.deadline_mono = w.enqueued_mono + std::min(wait_ns, options_.max_wait_ns);
  const uint64_t seq = w.seq;
  const std::string name = w.request.pool;
  pool.waiters.push_back(std::move(w));
  Pump(name);
  // Still queued with no time to wait: no capacity, at once (unless a create runs for it).
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

// Answers a waiter with no capacity (or its wait's end) and marks it done.
void Leases::Reject(Pool& pool, Waiter& w, const char* result) {
  ++pool.requests[result];
  const bool timed_out = std::string_view(result) == "timed_out";
  const std::string message =
      timed_out ? fmt::format("no environment of pool '{}' became free within the wait", w.request.pool)
                : fmt::format("no capacity in pool '{}' now ({} waiting); retry later or pass 'wait'",
                              w.request.pool, pool.Waiting());
  Answer(w, LeaseError{timed_out ? LeaseErrorCode::kTimedOut : LeaseErrorCode::kNoCapacity, message, ""});
}

void Leases::Answer(Waiter& w, LeaseResult<Grant> answer) {
  w.done = true;
  const auto send = std::move(w.reply.send);
  send(std::move(answer));
}

// Serves the pool's waiters in order. An environment an earlier waiter could use is reserved for it, so
// later arrivals never overtake on what they compete for; waiters needing other environments still proceed.
void Leases::Pump(const std::string& name) {
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

void Leases::PumpOnce(Pool& pool, const std::string& name) {
  if (pool.waiters.empty()) return;
  Walk walk(pool);  // by index, done flags only: an answer sent from here may set off anything
  std::set<std::string> reserved;
  bool grow_started = false;
  // What is free, read once when the first waiter could not be served: a later waiter that cannot be served
  // from it costs no transaction.
  std::optional<std::vector<std::string>> free;
  for (size_t i = 0; i < pool.waiters.size(); ++i) {
    if (pool.waiters[i].done) continue;
    if (!pool.waiters[i].reply.alive()) {  // the client left: nothing to hand out
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
    // It waits on: what it could use is reserved for it, and one create per pump runs for the first such
    // (again after a failed one only while its wait lasts: past it, it gets the failure).
    auto keep_waiting = [&](const std::vector<std::string>& could_use) {
      reserved.insert(could_use.begin(), could_use.end());
      Waiter& w = pool.waiters[i];
      const bool may_create = !w.grown_for || w.deadline_mono > clock_.Mono();
      if (!grow_started && !w.grow_pending && may_create && CanGrow(pool)) {
        w.grow_pending = true;
        w.grown_for = true;
        grow_started = true;
        Grow(pool, w.request);
      }
    };
    if (free && candidates.size() < pool.waiters[i].request.count) {
      keep_waiting(candidates);
      continue;
    }
    candidates.clear();
    auto a = TryAllocate(pool.waiters[i].request, reserved, &candidates);
    if (!a.ok()) {
      Answer(pool.waiters[i], a.error());
      continue;
    }
    if (!a->has_value() && !free) {  // what TryAllocate saw free (its transaction is over)
      free.emplace();
      auto rows = store_.Environments(name, std::nullopt, /*free_only=*/true);
      if (rows.ok()) {
        for (const auto& e : *rows) free->push_back(e.id);
      }
    }
    if (a->has_value() && free) {
      for (const auto& id : EnvIds(**a)) std::erase(*free, id);
    }
    if (a->has_value()) {
      Waiter& w = pool.waiters[i];
      w.done = true;
      pool.wait.Add(static_cast<double>(clock_.Mono() - w.enqueued_mono) / 1e9);
      ++pool.requests["allocated"];
      Deliver(**a, w.reply, /*replay=*/false);
      continue;
    }
    keep_waiting(candidates);
  }
}

// One transaction: every environment or none. Environments in `reserved` belong to earlier waiters.
// Returns the allocation, or nullopt with `candidates` the free matching environments.
LeaseResult<std::optional<store::AllocationRow>> Leases::TryAllocate(const AllocationRequest& rq,
                                                                     const std::set<std::string>& reserved,
                                                                     std::vector<std::string>* candidates) {
  const Pool& pool = pools_.at(rq.pool);
  const int64_t now = clock_.Wall();
  store::Transaction txn(store_);
  if (!txn.ok()) return StoreError(txn.error(), "begin an allocation");
  auto envs = store_.Environments(rq.pool, std::nullopt, /*free_only=*/true);
  if (!envs.ok()) return StoreError(envs.error(), "list free environments");
  std::vector<const store::EnvironmentRow*> picked;
  for (const auto& e : *envs) {  // least recently released first
    if (reserved.count(e.id) || !Matches(Spec(e.id), rq.require)) continue;
    if (candidates) candidates->push_back(e.id);
    if (picked.size() < rq.count) picked.push_back(&e);
  }
  if (picked.size() < rq.count) return std::optional<store::AllocationRow>();
  store::AllocationRow a;
  a.id = NewId(IdKind::kAllocation);
  a.pool = rq.pool;
  a.principal = rq.principal;
  a.requester = rq.requester;
  a.state = AllocationState::kActive;
  a.idempotency_key = rq.idempotency_key;
  a.created_ns = now;
  a.max_expires_ns = now + pool.spec.max_duration_ns;
  a.expires_ns =
      std::min(a.max_expires_ns, now + (rq.duration_ns > 0 ? rq.duration_ns : pool.spec.default_duration_ns));
  std::vector<std::string> ids;
  for (const auto* e : picked) ids.push_back(e->id);
  a.env_ids_json = EnvIdsJson(ids);
  for (const auto* e : picked) {
    store::EnvironmentRow next = *e;
    next.state = EnvState::kAllocated;
    next.allocation_id = a.id;
    next.state_since_ns = now;
    next.note.clear();
    auto r = store_.UpdateEnvironment(next, EnvState::kAvailable, "");
    if (!r.ok()) return StoreError(r.error(), "allocate " + e->id);
    if (!*r) {
      return StoreError(MakeError(ErrorCode::kInternal, "changed under the allocation"), "allocate " + e->id);
    }
  }
  if (auto r = store_.InsertAllocation(a); !r.ok()) return StoreError(r.error(), "store the allocation");
  for (const auto& id : ids) {
    auto r = store_.AppendAudit({0, now, rq.principal, "allocate", rq.pool, a.id, id, "ok",
                                 fmt::format("requester={}", rq.requester)});
    if (!r.ok()) return StoreError(r.error(), "audit the allocation");
  }
  if (auto c = txn.Commit(); !c.ok()) return StoreError(c.error(), "commit the allocation");
  return std::optional<store::AllocationRow>(a);
}

// Sends the allocation with its environments and their credentials (run now, or cached for a replay).
void Leases::Deliver(const store::AllocationRow& a, Reply reply, bool replay) {
  const auto ids = EnvIds(a);
  if (auto c = credentials_.find(a.id); c != credentials_.end())
    return reply.send(Grant{a, c->second, replay});
  auto pending = std::make_shared<std::pair<size_t, ordered_json>>(ids.size(), ordered_json::object());
  auto failed = std::make_shared<std::string>();
  auto finish = [this, a, reply, replay, pending, failed]() {
    if (--pending->first != 0) return;
    if (!failed->empty()) {
      // No credentials, no lease: hand the environments back untouched (they were never used).
      if (auto r = End(a, "credentials_failed", kSystem, /*clean=*/false); !r.ok()) {
        LogError("allocation {}: not handed back: {} (the reaper ends it at its expiry)", a.id,
                 r.error().message);
      }
      ++pools_[a.pool].requests["failed"];
      return reply.send(LeaseError{LeaseErrorCode::kCredentialsFailed, *failed, ""});
    }
    credentials_[a.id] = pending->second;
    reply.send(Grant{a, pending->second, replay});
  };
  if (ids.empty()) {
    pending->first = 1;
    return finish();
  }
  for (const auto& id : ids) {
    const Credentials& creds = CredentialsOf(id, a.pool);
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
    hooks_.Start(creds.command, JsonText(HookJson(id, a, "")), HookEnv(id, a.id),
                 [id, mine, pending, failed, finish](CommandResult r) mutable {
                   if (!r.ok()) {
                     // The output may hold secrets: only how it ended is reported.
                     *failed =
                         fmt::format("environment {}: the credentials command failed ({})", id, r.Describe());
                   } else {
                     json printed = json::parse(r.out, nullptr, false);
                     if (!printed.is_object()) {
                       *failed = fmt::format(
                           "environment {}: the credentials command did not print a JSON object", id);
                     } else {
                       for (const auto& [k, v] : printed.items()) mine[k] = v;
                       pending->second[id] = mine;
                     }
                   }
                   finish();
                 });
  }
}

// ---- shared helpers -----------------------------------------------------------------------------------

// What a hook reads on stdin: the environment and its allocation.
ordered_json Leases::HookJson(const std::string& env_id, const store::AllocationRow& a,
                              const std::string& outcome) const {
  ordered_json j = PublicJson(Spec(env_id));
  j["allocation"] = {{"id", a.id}, {"requester", a.requester}, {"owner", a.principal}};
  if (!outcome.empty()) j["allocation"]["outcome"] = outcome;
  return j;
}

std::map<std::string, std::string> Leases::HookEnv(const std::string& env_id,
                                                   const std::string& allocation) const {
  const EnvironmentSpec& s = Spec(env_id);
  return {{"MERIDIAN_ENV_ID", env_id},
          {"MERIDIAN_POOL", s.pool},
          {"MERIDIAN_REGION", s.region},
          {"MERIDIAN_ACCOUNT", s.account},
          {"MERIDIAN_ALLOCATION_ID", allocation}};
}

// The environment as history: out of service for good, its row kept (audit, allocations and notes refer to
// it); listed again, it comes back.
store::EnvironmentRow Leases::Retired(store::EnvironmentRow row, int64_t now) {
  row.state = EnvState::kRetired;
  row.removed = row.draining = true;
  row.allocation_id.clear();
  row.state_since_ns = now;
  row.note = "removed from the registry";
  return row;
}

void Leases::Forget(const std::string& env_id) {
  specs_.erase(env_id);
  leaving_.erase(env_id);
}

void Leases::Record(std::initializer_list<std::string> fields) {
  std::vector<std::string> v(fields);
  v.resize(7);
  const store::AuditRow row{0, clock_.Wall(), v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
  if (auto r = store_.AppendAudit(row); !r.ok()) LogError("audit: {}", r.error().message);
}

}  // namespace meridian::envpool
