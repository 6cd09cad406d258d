// The lease core on a FakeClock with fake hooks and a real SQLite store: time moves when a test says so, and
// every hook command waits until the test ends it.
#include "envpool/leases.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>

namespace meridian::envpool {
namespace {

using store::AllocationState;
using store::EnvState;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kMinute = 60 * kSecond;

// Records each command; the test ends it (the core hears back as it would from a real runner).
class FakeHooks final : public HookRunner {
 public:
  struct Call {
    Command command;
    std::string input;
    std::map<std::string, std::string> env;
    std::function<void(CommandResult)> done;
    std::string Text() const {
      std::string t;
      for (const auto& a : command.argv) t += (t.empty() ? "" : " ") + a;
      return t;
    }
  };
  void Start(Command command, std::string input, std::map<std::string, std::string> env,
             std::function<void(CommandResult)> done) override {
    calls.push_back(Call{std::move(command), std::move(input), std::move(env), std::move(done)});
  }
  // The pending calls whose command line contains `text`.
  size_t Pending(const std::string& text) const {
    size_t n = 0;
    for (const auto& c : calls) n += c.Text().find(text) != std::string::npos;
    return n;
  }
  // Ends the oldest pending call whose command line contains `text`; false if there is none.
  bool Finish(const std::string& text, int exit_code, const std::string& out = "") {
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].Text().find(text) == std::string::npos) continue;
      Call call = std::move(calls[i]);
      calls.erase(calls.begin() + static_cast<std::ptrdiff_t>(i));
      CommandResult r;
      r.exit_code = exit_code;
      r.out = out;
      r.log = out;
      r.duration_ns = 2 * kSecond;
      call.done(r);
      return true;
    }
    return false;
  }
  std::vector<Call> calls;
};

// An allocation request's answer, as the HTTP adapter would get it.
struct Answer {
  std::optional<LeaseResult<Grant>> result;
  bool alive = true;
  bool granted() const { return result && result->ok(); }
  LeaseErrorCode error() const { return result->error().code; }
  std::vector<std::string> ids() const { return EnvIds((*result)->allocation); }
  const store::AllocationRow& allocation() const { return (*result)->allocation; }
};

class Rig {
 public:
  explicit Rig(const std::string& registry) {
    path_ = ::testing::TempDir() + "/leases_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
    auto s = store::OpenSqlite(path_);
    EXPECT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    Open();
    Sync(registry);
  }

  // A new core on the same store: what a restarted control plane does. Commands the old one ran are gone.
  void Restart() {
    leases.reset();
    hooks.calls.clear();
    Open();
  }

  void Sync(const std::string& registry) {
    auto reg = ParseRegistry(registry, "registry.yaml");
    ASSERT_TRUE(reg.ok()) << reg.error().message;
    auto synced = leases->Sync(*reg, "admin");
    ASSERT_TRUE(synced.ok()) << synced.error().message;
  }

  std::shared_ptr<Answer> Allocate(uint32_t count, int64_t wait_ns, Requirements require = {},
                                   const std::string& principal = "ci") {
    auto answer = std::make_shared<Answer>();
    AllocationRequest rq;
    rq.pool = "p";
    rq.principal = principal;
    rq.requester = principal;
    rq.count = count;
    rq.require = std::move(require);
    leases->Allocate(std::move(rq), wait_ns,
                     Reply{[answer] { return answer->alive; },
                           [answer](LeaseResult<Grant> r) {
                             EXPECT_FALSE(answer->result) << "answered twice";
                             answer->result.emplace(std::move(r));
                           }});
    return answer;
  }

  EnvState State(const std::string& env) {
    auto e = leases->Environment(env);
    EXPECT_TRUE(e.ok());
    return e.ok() ? e->state : EnvState::kDirty;
  }

  std::vector<std::string> AuditActions(const std::string& env) {
    store::AuditFilter f;
    f.environment_id = env;
    std::vector<std::string> out;
    auto rows = leases->Audit(f);
    if (rows.ok()) {
      for (const auto& r : *rows) out.push_back(r.action + ":" + r.outcome);
    }
    return out;
  }

  FakeClock clock;
  FakeHooks hooks;
  std::unique_ptr<Leases> leases;
  const Caller ci{"ci", false};

 private:
  void Open() {
    leases = std::make_unique<Leases>(*store_, clock, hooks, Options{});
    auto started = leases->Start();
    ASSERT_TRUE(started.ok()) << started.error().message;
  }
  std::string path_;
  std::unique_ptr<store::Store> store_;
};

constexpr const char* kTwo = R"(pools:
  p: { max_duration: 2h, default_duration: 1h }
environments:
  - { id: e1, pool: p, capabilities: { size: large } }
  - { id: e2, pool: p, capabilities: { size: small } }
)";

// A waiter first in line keeps what it could use: a later, smaller request never overtakes it.
TEST(Leases, FifoOrderWithReservation) {
  Rig rig(kTwo);
  auto first = rig.Allocate(1, 0);
  auto second = rig.Allocate(1, 0);
  ASSERT_TRUE(first->granted() && second->granted());
  auto both = rig.Allocate(2, 10 * kMinute);  // waits for two
  auto one = rig.Allocate(1, 5 * kMinute);    // arrives later, needs one
  EXPECT_FALSE(both->result);
  EXPECT_FALSE(one->result);

  ASSERT_TRUE(rig.leases->Release(first->allocation().id, "success", rig.ci).ok());
  EXPECT_FALSE(both->result);  // one free: not enough for it, and reserved for it
  EXPECT_FALSE(one->result) << "the later request overtook the earlier one";

  ASSERT_TRUE(rig.leases->Release(second->allocation().id, "success", rig.ci).ok());
  ASSERT_TRUE(both->granted());
  EXPECT_EQ(both->ids().size(), 2u);
  EXPECT_FALSE(one->result);

  rig.clock.Advance(5 * kMinute);
  rig.leases->Tick();
  ASSERT_TRUE(one->result);
  EXPECT_EQ(one->error(), LeaseErrorCode::kTimedOut);
  EXPECT_EQ(rig.leases->pools().at("p").requests.at("timed_out"), 1u);
}

// Requests that need different environments do not wait on each other; a client that left gets nothing.
TEST(Leases, WaitersForOtherEnvironmentsProceedAndLeaversGetNothing) {
  Rig rig(kTwo);
  auto large = rig.Allocate(1, 0, {{"size", {"large"}}});
  ASSERT_TRUE(large->granted());
  auto want_large = rig.Allocate(1, kMinute, {{"size", {"large"}}});
  want_large->alive = false;  // its client hung up
  auto want_small = rig.Allocate(1, kMinute, {{"size", {"small"}}});
  ASSERT_TRUE(want_small->granted());
  EXPECT_EQ(want_small->ids(), std::vector<std::string>{"e2"});
  ASSERT_TRUE(rig.leases->Release(large->allocation().id, "success", rig.ci).ok());
  EXPECT_FALSE(want_large->result);
  EXPECT_EQ(rig.State("e1"), EnvState::kAvailable);
  EXPECT_EQ(rig.leases->pools().at("p").requests.at("abandoned"), 1u);
}

// All or nothing: a request for more than match is refused at once, one for more than are free waits or is
// refused, and neither touches an environment.
TEST(Leases, AllOrNothingWithRequire) {
  Rig rig(R"(pools: { p: {} }
environments:
  - { id: g1, pool: p, capabilities: { gpu: "yes" } }
  - { id: c1, pool: p, capabilities: { gpu: "no" } }
  - { id: g2, pool: p, capabilities: { gpu: "yes" } }
)");
  auto three = rig.Allocate(3, 0, {{"gpu", {"yes"}}});
  ASSERT_TRUE(three->result);
  EXPECT_EQ(three->error(), LeaseErrorCode::kUnsatisfiable);
  EXPECT_EQ(three->result->error().field, "count");
  auto none = rig.Allocate(1, 0, {{"gpu", {"maybe"}}});
  EXPECT_EQ(none->error(), LeaseErrorCode::kUnsatisfiable);
  EXPECT_EQ(none->result->error().field, "require");

  auto two = rig.Allocate(2, 0, {{"gpu", {"yes"}}});
  ASSERT_TRUE(two->granted());
  auto ids = two->ids();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"g1", "g2"}));
  auto more = rig.Allocate(2, 0);  // c1 is free, but two are asked for
  ASSERT_TRUE(more->result);
  EXPECT_EQ(more->error(), LeaseErrorCode::kNoCapacity);
  EXPECT_EQ(rig.State("c1"), EnvState::kAvailable);
}

TEST(Leases, ExpiryAndRenewLimits) {
  Rig rig(kTwo);
  auto a = rig.Allocate(1, 0);
  ASSERT_TRUE(a->granted());
  const std::string id = a->allocation().id;
  EXPECT_EQ(a->allocation().expires_ns, rig.clock.Wall() + 3600 * kSecond);  // the pool's default
  EXPECT_EQ(a->allocation().max_expires_ns, rig.clock.Wall() + 2 * 3600 * kSecond);

  rig.clock.Advance(50 * kMinute);
  auto renewed = rig.leases->Renew(id, 0, rig.ci);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->expires_ns, rig.clock.Wall() + 3600 * kSecond);
  auto too_long = rig.leases->Renew(id, 3 * 3600 * kSecond, rig.ci);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code, LeaseErrorCode::kMaxDuration);
  EXPECT_EQ(too_long.error().field, "duration");
  EXPECT_EQ(rig.leases->Renew(id, 0, Caller{"someone-else", false}).error().code, LeaseErrorCode::kNotOwner);

  rig.clock.Advance(30 * kMinute);  // 1h20m in: a default renewal stops at the maximum
  auto capped = rig.leases->Renew(id, 0, rig.ci);
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->expires_ns, capped->max_expires_ns);

  rig.clock.Advance(40 * kMinute - kSecond);
  rig.leases->Tick();
  EXPECT_EQ(rig.leases->Get(id, rig.ci)->state, AllocationState::kActive);
  rig.clock.Advance(kSecond);  // at the maximum: the reaper ends it
  rig.leases->Tick();
  auto ended = rig.leases->Get(id, rig.ci);
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state, AllocationState::kExpired);
  EXPECT_EQ(ended->outcome, "expired");
  EXPECT_EQ(rig.State(a->ids()[0]), EnvState::kAvailable);
  EXPECT_EQ(rig.leases->Renew(id, 0, rig.ci).error().code, LeaseErrorCode::kNotActive);
  // Releasing it now is idempotent: how it ended.
  auto released = rig.leases->Release(id, "success", rig.ci);
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(released->outcome, "expired");
}

constexpr const char* kCleaned = R"(pools:
  p: { cleanup: ./nuke.sh, cleanup_timeout: 10m }
environments:
  - { id: e1, pool: p }
)";

TEST(Leases, CleanupFailureMakesTheEnvironmentDirtyUntilReinstated) {
  Rig rig(kCleaned);
  auto a = rig.Allocate(1, 0);
  ASSERT_TRUE(a->granted());
  ASSERT_TRUE(rig.leases->Release(a->allocation().id, "failure", rig.ci).ok());
  EXPECT_EQ(rig.State("e1"), EnvState::kCleaning);
  ASSERT_EQ(rig.hooks.Pending("nuke.sh"), 1u);
  EXPECT_NE(rig.hooks.calls[0].input.find("\"outcome\":\"failure\""), std::string::npos)
      << rig.hooks.calls[0].input;
  EXPECT_EQ(rig.hooks.calls[0].env.at("MERIDIAN_ENV_ID"), "e1");
  auto waiting = rig.Allocate(1, kMinute);  // nothing is free while it cleans
  EXPECT_FALSE(waiting->result);

  ASSERT_TRUE(rig.hooks.Finish("nuke.sh", 3, "no permission"));
  auto e = rig.leases->Environment("e1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->state, EnvState::kDirty);
  EXPECT_EQ(e->note, "cleanup failed: exit 3");
  EXPECT_EQ(e->log, "no permission");
  EXPECT_FALSE(waiting->result);  // dirty is not available

  ASSERT_TRUE(rig.leases->Reinstate("e1", "admin").ok());
  ASSERT_TRUE(waiting->granted());  // reinstated: the waiter gets it at once
  EXPECT_EQ(rig.AuditActions("e1"),
            (std::vector<std::string>{"allocate:ok", "deallocate:failure", "cleanup:dirty", "reinstate:ok",
                                      "allocate:ok"}));
}

TEST(Leases, AnInterruptedCleanupIsRetriedOnceAfterARestartThenDirty) {
  Rig rig(kCleaned);
  auto a = rig.Allocate(1, 0);
  ASSERT_TRUE(a->granted());
  ASSERT_TRUE(rig.leases->Release(a->allocation().id, "success", rig.ci).ok());
  ASSERT_EQ(rig.hooks.Pending("nuke.sh"), 1u);

  rig.Restart();  // the cleanup never reported
  EXPECT_EQ(rig.hooks.Pending("nuke.sh"), 1u) << "resumed after the restart";
  EXPECT_EQ(rig.State("e1"), EnvState::kCleaning);

  rig.Restart();  // interrupted again: no third try
  EXPECT_EQ(rig.hooks.Pending("nuke.sh"), 0u);
  auto e = rig.leases->Environment("e1");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->state, EnvState::kDirty);
  EXPECT_EQ(e->note, "cleanup interrupted 2 times by control-plane restarts");
  EXPECT_EQ(rig.AuditActions("e1"), (std::vector<std::string>{"allocate:ok", "deallocate:success",
                                                              "cleanup:resumed", "cleanup:dirty"}));
}

TEST(Leases, GrowCreatesEnvironmentsUpToMax) {
  Rig rig(R"(pools:
  p: { grow: { max: 2, create: [create-env] } }
)");
  auto first = rig.Allocate(1, 10 * kMinute);
  EXPECT_FALSE(first->result);
  ASSERT_EQ(rig.hooks.Pending("create-env"), 1u);
  ASSERT_TRUE(rig.hooks.Finish("create-env", 0, R"({"id": "made-1", "region": "eu"})"));
  ASSERT_TRUE(first->granted());
  EXPECT_EQ(first->ids(), std::vector<std::string>{"made-1"});

  auto second = rig.Allocate(1, 10 * kMinute);
  ASSERT_TRUE(rig.hooks.Finish("create-env", 0));  // no id printed: the proposed one
  ASSERT_TRUE(second->granted());
  EXPECT_EQ(second->ids(), std::vector<std::string>{"p-1"});

  auto third = rig.Allocate(1, 10 * kMinute);  // at the maximum: no create, it waits
  EXPECT_EQ(rig.hooks.Pending("create-env"), 0u);
  EXPECT_FALSE(third->result);
  ASSERT_TRUE(rig.leases->Release(first->allocation().id, "success", rig.ci).ok());
  ASSERT_TRUE(third->granted());
  EXPECT_EQ(third->ids(), std::vector<std::string>{"made-1"});
}

TEST(Leases, AFailedCreateAnswersItsWaiterOnceItsWaitIsOver) {
  Rig rig(R"(pools:
  p: { grow: { max: 1, create: [create-env] } }
)");
  auto waiting = rig.Allocate(1, kMinute);
  rig.clock.Advance(2 * kMinute);
  rig.leases->Tick();
  EXPECT_FALSE(waiting->result) << "a create runs for it: it waits for that";
  ASSERT_TRUE(rig.hooks.Finish("create-env", 1));
  ASSERT_TRUE(waiting->result);
  EXPECT_EQ(waiting->error(), LeaseErrorCode::kGrowFailed);
}

TEST(Leases, AnEnvironmentRemovedFromTheRegistryWhileHeldIsRetiredOnRelease) {
  Rig rig(kTwo);
  auto held = rig.Allocate(1, 0, {{"size", {"large"}}});
  ASSERT_TRUE(held->granted());
  rig.Sync(R"(pools:
  p: { max_duration: 2h, default_duration: 1h }
environments:
  - { id: e2, pool: p, capabilities: { size: small } }
)");
  auto e1 = rig.leases->Environment("e1");
  ASSERT_TRUE(e1.ok());
  EXPECT_EQ(e1->state, EnvState::kAllocated);  // the lease runs on
  EXPECT_TRUE(e1->removed && e1->draining);
  auto large = rig.Allocate(1, kMinute, {{"size", {"large"}}});  // only e1 ever matched: never waited for
  ASSERT_TRUE(large->result);
  EXPECT_EQ(large->error(), LeaseErrorCode::kUnsatisfiable);

  ASSERT_TRUE(rig.leases->Release(held->allocation().id, "success", rig.ci).ok());
  EXPECT_EQ(rig.State("e1"), EnvState::kRetired);
  auto two = rig.Allocate(2, 0);
  EXPECT_EQ(two->error(), LeaseErrorCode::kUnsatisfiable);
  auto one = rig.Allocate(1, 0);
  ASSERT_TRUE(one->granted());
  EXPECT_EQ(one->ids(), std::vector<std::string>{"e2"});
}

TEST(Leases, CredentialsFromACommandOrNoLease) {
  Rig rig(R"(pools:
  p: { credentials: { command: [get-creds], revoke: [drop-creds] } }
environments:
  - { id: e1, pool: p }
)");
  auto a = rig.Allocate(1, 0);
  EXPECT_FALSE(a->result);  // until the command reports
  ASSERT_TRUE(rig.hooks.Finish("get-creds", 0, R"({"TOKEN": "s3cret"})"));
  ASSERT_TRUE(a->granted());
  EXPECT_EQ((*a->result)->credentials["e1"]["TOKEN"], "s3cret");
  ASSERT_TRUE(rig.leases->Release(a->allocation().id, "success", rig.ci).ok());
  ASSERT_EQ(rig.hooks.Pending("drop-creds"), 1u);
  EXPECT_NE(rig.hooks.calls[0].input.find("s3cret"), std::string::npos);  // the revoke gets what it revokes
  ASSERT_TRUE(rig.hooks.Finish("drop-creds", 0));
  EXPECT_FALSE(rig.leases->Get(a->allocation().id, rig.ci)->revoke_pending);

  auto b = rig.Allocate(1, 0);
  ASSERT_TRUE(rig.hooks.Finish("get-creds", 1));
  ASSERT_TRUE(b->result);
  EXPECT_EQ(b->error(), LeaseErrorCode::kCredentialsFailed);
  EXPECT_EQ(rig.State("e1"), EnvState::kAvailable);  // handed back untouched
}

}  // namespace
}  // namespace meridian::envpool
