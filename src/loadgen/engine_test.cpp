// The engine end to end, in process, against the built-in target on port 0.
#include "loadgen/engine.h"

#include <gtest/gtest.h>

#include "loadgen/declarative.h"
#include "loadgen/origins.h"
#include "target/target.h"

namespace meridian::loadgen {
namespace {

constexpr int64_t kMs = 1'000'000;

struct TargetRig {
  std::unique_ptr<target::TargetServer> server;
  std::shared_ptr<RunConfig> config = std::make_shared<RunConfig>();
  std::string base;

  explicit TargetRig(target::TargetOptions options = {}) {
    options.listen = "127.0.0.1:0";
    options.threads = 1;
    auto s = target::TargetServer::Start(options);
    EXPECT_TRUE(s.ok()) << s.error().message;
    server = std::move(s).value();
    base = "http://" + server->endpoint().ToString();
    config->threads = 2;
  }

  void AddScenario(const ExecutorConfig& executor, std::vector<RequestSpec> specs) {
    OriginTable origins;
    auto program = RequestProgram::Compile(specs, {{"base", base}}, 0, origins, "requests");
    ASSERT_TRUE(program.ok()) << program.error().message;
    auto prepared = PrepareOrigins(origins.origins(), nullptr, 2'000 * kMs);
    ASSERT_TRUE(prepared.ok()) << prepared.error().message;
    for (auto& p : *prepared) config->origins.push_back(p.origin);
    config->scenarios.push_back(ScenarioPlan{"default", executor, DeclarativeFactoryMaker(*program)});
  }

  RunResult Run() {
    Engine engine(config);
    auto r = engine.Run({});
    EXPECT_TRUE(r.ok()) << r.error().message;
    return std::move(r).value();
  }
};

uint64_t Count(const stats::IntervalSnapshot& s, stats::ErrorKind kind) {
  uint64_t n = 0;
  for (const auto& [packed, series] : s.series) {
    if (stats::SeriesKey::Unpack(packed).error == kind) n += series.requests;
  }
  return n;
}

uint64_t Requests(const stats::IntervalSnapshot& s) {
  uint64_t n = 0;
  for (const auto& [packed, series] : s.series) n += series.requests;
  return n;
}

TEST(Engine, ClosedModelReusesOneConnectionPerVu) {
  TargetRig setup;
  ExecutorConfig e;
  e.type = ExecutorType::kConstantVus;
  e.vus = 4;
  e.duration_ns = 500 * kMs;
  setup.AddScenario(e, {RequestSpec{"", "GET", "{{base}}/", {}, "", false, {}}});
  RunResult r = setup.Run();
  const uint64_t requests = Requests(r.totals);
  EXPECT_GT(requests, 20u);
  EXPECT_EQ(Count(r.totals, stats::ErrorKind::kNone), requests);
  EXPECT_EQ(r.connections_opened, 4u);
  EXPECT_EQ(r.totals.scenarios.at(0).iterations, requests);
  // The server saw every request the client counted (the preflight connection sends none).
  EXPECT_EQ(setup.server->Stats().requests, requests);
  EXPECT_EQ(setup.server->Stats().connections_accepted, 4u + 1u);
}

TEST(Engine, OpenModelRunsTheExactSchedule) {
  TargetRig setup;
  ExecutorConfig e;
  e.type = ExecutorType::kConstantArrivalRate;
  e.rate = 200;
  e.duration_ns = 1000 * kMs;
  e.pre_allocated_vus = 5;
  e.max_vus = 50;
  setup.AddScenario(e, {RequestSpec{"", "GET", "{{base}}/", {}, "", false, {}}});
  RunResult r = setup.Run();
  EXPECT_EQ(r.totals.scenarios.at(0).iterations, 200u);
  EXPECT_EQ(r.totals.scenarios.at(0).dropped_iterations, 0u);
  EXPECT_EQ(Requests(r.totals), 200u);
  EXPECT_EQ(setup.server->Stats().requests, 200u);
}

TEST(Engine, RequestTimeoutsAreCountedAsTimeouts) {
  TargetRig setup;
  setup.config->request_timeout_ns = 100 * kMs;
  ExecutorConfig e;
  e.type = ExecutorType::kPerVuIterations;
  e.vus = 2;
  e.iterations = 2;
  setup.AddScenario(e, {RequestSpec{"", "GET", "{{base}}/?delay=1s", {}, "", false, {}}});
  RunResult r = setup.Run();
  EXPECT_EQ(Requests(r.totals), 4u);
  EXPECT_EQ(Count(r.totals, stats::ErrorKind::kTimeout), 4u);
  EXPECT_EQ(r.totals.scenarios.at(0).failed_iterations, 4u);
  ASSERT_FALSE(r.totals.error_examples.empty());
  EXPECT_NE(r.totals.error_examples[0].second.find("no complete response within 100ms"), std::string::npos);
}

TEST(Engine, StatusExpectationsAndMultiRequestIterations) {
  TargetRig setup;
  ExecutorConfig e;
  e.type = ExecutorType::kSharedIterations;
  e.vus = 2;
  e.iterations = 10;
  std::vector<RequestSpec> specs(3);
  specs[0].url = "{{base}}/?status=404";
  specs[0].expect_status = {404};
  specs[1].url = "{{base}}/?status=503";
  specs[2].method = "POST";
  specs[2].url = "{{base}}/items/{{__ITER}}?chunked&size=10000";
  specs[2].body = "{\"vu\": {{__VU}}}";
  specs[2].json = true;
  setup.AddScenario(e, specs);
  RunResult r = setup.Run();
  EXPECT_EQ(Requests(r.totals), 30u);
  EXPECT_EQ(Count(r.totals, stats::ErrorKind::kNone), 20u);
  EXPECT_EQ(Count(r.totals, stats::ErrorKind::kHttp5xx), 10u);
  uint64_t body_bytes = 0;
  for (const auto& [packed, s] : r.totals.series) {
    if (stats::SeriesKey::Unpack(packed).request == 2) body_bytes += s.bytes_received;
  }
  EXPECT_GT(body_bytes, 10u * 10000u);  // the chunked bodies arrived whole
  EXPECT_EQ(r.connections_opened, 2u);
}

}  // namespace
}  // namespace meridian::loadgen
