// `meridian load` end to end: the real binary against `meridian target` on port 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"

namespace meridian::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct LoadRun {
  Finished finished;
  json summary;
};

LoadRun Load(std::vector<std::string> args) {
  args.insert(args.begin(), "load");
  args.push_back("--json");
  args.push_back("--quiet");
  LoadRun r;
  r.finished = RunMeridian(args);
  if (r.finished.exit_code == 0) {
    r.summary = json::parse(r.finished.out, nullptr, /*allow_exceptions=*/false);
  }
  return r;
}

uint64_t Status(const json& s, int code) {
  const std::string key = std::to_string(code);
  return s["status"].contains(key) ? s["status"][key].get<uint64_t>() : 0;
}

uint64_t Errors(const json& s, const std::string& kind) {
  return s["errors"].contains(kind) ? s["errors"][kind].get<uint64_t>() : 0;
}

#define ASSERT_RAN(run)                                                               \
  ASSERT_EQ((run).finished.exit_code, 0) << (run).finished.err << (run).finished.out; \
  ASSERT_TRUE((run).summary.is_object()) << (run).finished.out

TEST(Load, ClosedModelReusesConnectionsAndMatchesTheServersCount) {
  Target target;
  LoadRun r = Load({target.url() + "/", "-c", "4", "-d", "1s", "-t", "2"});
  ASSERT_RAN(r);
  const uint64_t count = r.summary["requests"]["count"];
  EXPECT_GT(count, 50u);
  EXPECT_EQ(r.summary["requests"]["failed"], 0u);
  EXPECT_EQ(Status(r.summary, 200), count);
  EXPECT_EQ(r.summary["connections_opened"], 4u);
  EXPECT_EQ(r.summary["phases_ms"]["connect"]["count"], 4u);
  EXPECT_EQ(r.summary["scenarios"][0]["executor"], "constant-vus");
  EXPECT_EQ(r.summary["scenarios"][0]["model"], "closed");
  EXPECT_EQ(r.summary["bytes"]["received"].get<uint64_t>() % count, 0u);  // every response is the same size
  const json stats = json::parse(target.Stats());
  EXPECT_EQ(stats["requests"], count);  // nothing lost, nothing invented
  // 4 VUs + the preflight connection + this stats request's own connection.
  EXPECT_EQ(stats["connections_accepted"], 4u + 1u + 1u);
}

TEST(Load, OpenModelSendsTheExactScheduleAndLabelsIt) {
  Target target;
  LoadRun r = Load({target.url() + "/", "--rate", "200", "-d", "2s", "-c", "5"});
  ASSERT_RAN(r);
  EXPECT_EQ(r.summary["requests"]["count"], 400u);
  EXPECT_EQ(r.summary["scenarios"][0]["iterations"], 400u);
  EXPECT_EQ(r.summary["scenarios"][0]["dropped_iterations"], 0u);
  EXPECT_EQ(r.summary["scenarios"][0]["model"], "open");
  EXPECT_GE(r.summary["timeline"].size(), 2u);
  EXPECT_EQ(target.StatsField("requests"), 400u);
}

TEST(Load, PauseShowsInTheOpenModelButHidesInTheClosedModel) {
  // Coordinated omission: while the server is paused, a closed-model VU waits and sends nothing, so only one
  // slow request is recorded; the open model keeps its schedule and records every request that waited.
  Target open_target({"--pause-at", "500ms", "--pause-for", "700ms"});
  LoadRun open = Load({open_target.url() + "/", "--rate", "200", "-d", "2s", "-c", "10"});
  ASSERT_RAN(open);
  const double open_p99 = open.summary["latency_ms"]["p99"];
  EXPECT_GE(open_p99, 500.0) << open.finished.out;
  EXPECT_EQ(open.summary["requests"]["count"], 400u);

  Target closed_target({"--pause-at", "500ms", "--pause-for", "700ms"});
  LoadRun closed = Load({closed_target.url() + "/", "-c", "1", "-d", "2s", "-t", "1"});
  ASSERT_RAN(closed);
  const double closed_p99 = closed.summary["latency_ms"]["p99"];
  const double closed_max = closed.summary["latency_ms"]["max"];
  EXPECT_GE(closed_max, 600.0);         // the one request that waited out the pause
  EXPECT_LT(closed_p99, open_p99 / 5);  // ... disappears from the closed model's percentiles
}

TEST(Load, FixedServerLatencyIsMeasured) {
  Target target({"--latency", "10ms"});
  LoadRun r = Load({target.url() + "/", "-c", "4", "-d", "1s", "-t", "1"});
  ASSERT_RAN(r);
  const double p50 = r.summary["latency_ms"]["med"];
  EXPECT_GE(p50, 10.0);
  EXPECT_LT(p50, 50.0);
  EXPECT_GE(r.summary["phases_ms"]["ttfb"]["min"].get<double>(), 10.0);
}

TEST(Load, RequestTimeoutsAreErrorsOfKindTimeout) {
  Target target;
  LoadRun r = Load({target.url() + "/?delay=2s", "--timeout", "200ms", "-c", "2", "-d", "500ms"});
  ASSERT_RAN(r);
  const uint64_t count = r.summary["requests"]["count"];
  EXPECT_GE(count, 2u);
  EXPECT_EQ(Errors(r.summary, "timeout"), count);
  ASSERT_FALSE(r.summary["error_examples"].empty());
  EXPECT_NE(r.summary["error_examples"][0]["message"].get<std::string>().find("200ms"), std::string::npos);
}

TEST(Load, ConnectionRefusedIsOneLineAndExitOne) {
  const int port = UnusedPort();
  Finished f = RunMeridian({"load", "http://127.0.0.1:" + std::to_string(port) + "/", "-d", "1s"}, 20'000ms);
  EXPECT_EQ(f.exit_code, 1);
  EXPECT_NE(f.err.find("connection refused"), std::string::npos) << f.err;
  EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << f.err;
  EXPECT_TRUE(f.out.empty());
}

TEST(Load, UnresolvableHostIsOneLineAndExitOne) {
  Finished f = RunMeridian({"load", "http://no-such-host.invalid/", "-d", "1s"}, 30'000ms);
  EXPECT_EQ(f.exit_code, 1);
  EXPECT_NE(f.err.find("cannot resolve host 'no-such-host.invalid'"), std::string::npos) << f.err;
  EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << f.err;
}

TEST(Load, ServerClosingIdleConnectionsCausesNoErrors) {
  Target target({"--idle-timeout", "100ms"});
  // One VU, a request every 250 ms: each time, the server has closed the previous connection.
  LoadRun r = Load({target.url() + "/", "--rate", "4", "-c", "1", "--max-vus", "1", "-d", "2s", "-t", "1"});
  ASSERT_RAN(r);
  EXPECT_EQ(r.summary["requests"]["count"], 8u);
  EXPECT_EQ(r.summary["requests"]["failed"], 0u) << r.finished.out;
  EXPECT_GE(r.summary["connections_opened"].get<uint64_t>(), 6u);
}

TEST(Load, ChunkedEarlyHintsConnectionCloseAndHead) {
  Target target;
  LoadRun chunked = Load({target.url() + "/?chunked&size=100000", "-n", "20", "-c", "2"});
  ASSERT_RAN(chunked);
  EXPECT_EQ(Status(chunked.summary, 200), 20u);
  EXPECT_GT(chunked.summary["bytes"]["received"].get<uint64_t>(), 20u * 100000u);

  LoadRun hints = Load({target.url() + "/?early_hints", "-n", "10", "-c", "1"});
  ASSERT_RAN(hints);
  EXPECT_EQ(Status(hints.summary, 200), 10u);
  EXPECT_EQ(Status(hints.summary, 103), 0u);

  LoadRun close = Load({target.url() + "/?close", "-n", "10", "-c", "1"});
  ASSERT_RAN(close);
  EXPECT_EQ(Status(close.summary, 200), 10u);
  EXPECT_EQ(close.summary["connections_opened"], 10u);

  LoadRun head = Load({target.url() + "/?size=100000", "-m", "HEAD", "-n", "10", "-c", "1"});
  ASSERT_RAN(head);
  EXPECT_EQ(Status(head.summary, 200), 10u);
  EXPECT_LT(head.summary["bytes"]["received"].get<uint64_t>(), 10u * 1000u);  // headers only
  EXPECT_EQ(head.summary["connections_opened"], 1u);                          // and the connection was reused
}

TEST(Load, ErrorRateAndExpectedStatuses) {
  Target target({"--error-rate", "0.5", "--seed", "3"});
  LoadRun r = Load({target.url() + "/", "-n", "200", "-c", "2"});
  ASSERT_RAN(r);
  EXPECT_EQ(Status(r.summary, 200) + Status(r.summary, 500), 200u);
  EXPECT_GT(Errors(r.summary, "http5xx"), 40u);
  EXPECT_EQ(Errors(r.summary, "http5xx"), Status(r.summary, 500));
  EXPECT_EQ(target.StatsField("responses_5xx"), Status(r.summary, 500));

  Target plain;
  LoadRun expected = Load({plain.url() + "/?status=404", "-n", "5", "-c", "1", "--expect-status", "404"});
  ASSERT_RAN(expected);
  EXPECT_EQ(expected.summary["requests"]["failed"], 0u);
  LoadRun unexpected = Load({plain.url() + "/", "-n", "5", "-c", "1", "--expect-status", "201,202"});
  ASSERT_RAN(unexpected);
  EXPECT_EQ(Errors(unexpected.summary, "check"), 5u);
}

TEST(Load, ExecutorsFromFlags) {
  Target target;
  LoadRun ramp = Load({target.url() + "/", "--stages", "500ms:4,500ms:0", "-t", "2"});
  ASSERT_RAN(ramp);
  EXPECT_EQ(ramp.summary["scenarios"][0]["executor"], "ramping-vus");
  EXPECT_EQ(ramp.summary["scenarios"][0]["vus_max"], 4u);

  LoadRun per_vu = Load({target.url() + "/", "--iterations", "3", "-c", "2"});
  ASSERT_RAN(per_vu);
  EXPECT_EQ(per_vu.summary["scenarios"][0]["executor"], "per-vu-iterations");
  EXPECT_EQ(per_vu.summary["requests"]["count"], 6u);

  LoadRun shared = Load({target.url() + "/", "-n", "7", "-c", "3"});
  ASSERT_RAN(shared);
  EXPECT_EQ(shared.summary["requests"]["count"], 7u);

  LoadRun ramp_rate = Load({target.url() + "/", "--rate", "0", "--stages", "1s:200", "-c", "2"});
  // A start rate of 0 is refused for constant-arrival-rate, allowed as a ramp's start.
  ASSERT_RAN(ramp_rate);
  EXPECT_EQ(ramp_rate.summary["scenarios"][0]["executor"], "ramping-arrival-rate");
  EXPECT_EQ(ramp_rate.summary["requests"]["count"], 100u);
}

TEST(Load, PostBodiesHeadersAndTemplates) {
  Target target;
  const std::string file = ::testing::TempDir() + "/body.json";
  {
    FILE* f = fopen(file.c_str(), "w");
    fputs("{\"sku\": \"A1\", \"vu\": {{__VU}}}", f);
    fclose(f);
  }
  LoadRun r = Load({target.url() + "/cart?i={{__ITER}}&u={{user}}", "-m", "POST", "-H",
                    "Content-Type: application/json", "--body", "@" + file, "--var", "user=alice", "-n", "10",
                    "-c", "2", "--name", "cart"});
  ASSERT_RAN(r);
  EXPECT_EQ(Status(r.summary, 200), 10u);
  EXPECT_EQ(r.summary["by_request"][0]["name"], "cart");
  EXPECT_GT(target.StatsField("bytes_received"), 10u * 100u);
}

TEST(Load, SigintStopsGracefullyWithASummary) {
  Target target;
  Process p({MeridianBinary(), "load", target.url() + "/", "-c", "2", "-d", "60s", "--json", "--quiet"});
  std::this_thread::sleep_for(1500ms);  // well after start-up, even in sanitizer builds
  p.Signal(SIGINT);
  Finished f = p.Wait(20'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  const json s = json::parse(f.out);
  EXPECT_TRUE(s["stopped_early"].get<bool>());
  EXPECT_GT(s["requests"]["count"].get<uint64_t>(), 0u);
  EXPECT_LT(s["duration_s"].get<double>(), 30.0);
}

TEST(Load, TextSummaryHasTheK6Layout) {
  Target target;
  Finished f = RunMeridian({"load", target.url() + "/", "-n", "20", "-c", "2", "--quiet"});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  for (const char* metric : {"http_reqs", "http_req_duration", "http_req_failed", "http_req_connecting",
                             "http_req_waiting", "iterations", "data_received", "generator", "p(99)"}) {
    EXPECT_NE(f.out.find(metric), std::string::npos) << metric << "\n" << f.out;
  }
}

TEST(Load, BadInputIsOneLineAndExitTwo) {
  struct Case {
    std::vector<std::string> args;
    const char* mentions;
  } cases[] = {
      {{"load", "127.0.0.1:8080/"}, "missing scheme"},
      {{"load", "ftp://h/"}, "not http or https"},
      {{"load", "http://h:99999/"}, "out of range"},
      {{"load", "http://127.0.0.1:1/", "--bogus"}, "--bogus"},
      {{"load", "http://127.0.0.1:1/", "-d", "10"}, "missing unit"},
      {{"load", "http://127.0.0.1:1/", "-d", "ten"}, "invalid duration"},
      {{"load", "http://127.0.0.1:1/", "--timeout", "0s"}, "greater than 0"},
      {{"load", "http://127.0.0.1:1/", "--rate", "fast"}, "--rate"},
      {{"load", "http://127.0.0.1:1/", "-H", "no colon"}, "Name: value"},
      {{"load", "http://127.0.0.1:1/", "-c", "0"}, "connections"},
      {{"load", "http://127.0.0.1:1/", "--stages", "10s"}, "DURATION:TARGET"},
      {{"load", "http://127.0.0.1:1/", "--stages", "1s:5", "-d", "5s"}, "the stages set the duration"},
      {{"load", "http://127.0.0.1:1/", "--max-vus", "5"}, "arrival-rate"},
      {{"load", "http://127.0.0.1:1/", "--executor", "fast"}, "constant-vus"},
      {{"load", "http://127.0.0.1:1/", "--body", "@/no/such/file"}, "/no/such/file"},
      {{"load", "http://127.0.0.1:1/{{nope}}"}, "unknown variable"},
      {{"load", "https://127.0.0.1:1/", "--ca-file", "/no/such/ca.pem"}, "/no/such/ca.pem"},
      {{"load"}, "url"},
      // Peers' flags: -k means keep-alive to ab users and "insecure" to curl users, so it is refused naming
      // both; hey's single-dash words are unknown flags, not -d or -h with letters after them.
      {{"load", "http://127.0.0.1:1/", "-k"}, "-k: not accepted"},
      {{"load", "-k", "http://127.0.0.1:1/"}, "--insecure here"},
      {{"load", "http://127.0.0.1:1/", "-disable-keepalive"}, "-disable-keepalive: unknown flag"},
      {{"load", "-cpus", "2", "http://127.0.0.1:1/"}, "-cpus: unknown flag"},
      {{"load", "http://127.0.0.1:1/", "-host", "example.com"}, "-host: unknown flag"},
      {{"load", "http://127.0.0.1:1/", "-m", "-disable-compression"}, "-m"},
      {{"load", "http://127.0.0.1:1/", "extra"}, "extra"},
      {{"load", "-c", "5", "http://127.0.0.1:1/", "-n", "10", "more"}, "more"},
  };
  for (const auto& c : cases) {
    Finished f = RunMeridian(c.args, 20'000ms);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(f.exit_code, 2) << joined << "\n" << f.err;
    EXPECT_NE(f.err.find(c.mentions), std::string::npos) << joined << "\n" << f.err;
    EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << joined << "\n" << f.err;
  }
}

// ---- TLS with a certificate generated at test time ----

class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = ::testing::TempDir() + "/meridian-tls-" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(GenerateTestCertificate(dir_)) << "openssl could not generate a certificate";
  }
  static std::string dir_;
};
std::string Tls::dir_;

TEST_F(Tls, VerifiedWithCaFileAndSniIsSent) {
  Target target({"--tls-cert", dir_ + "/cert.pem", "--tls-key", dir_ + "/key.pem"});
  ASSERT_EQ(target.url().substr(0, 8), "https://");
  const std::string url = "https://localhost:" + std::to_string(target.port()) + "/";
  LoadRun r = Load({url, "--ca-file", dir_ + "/cert.pem", "-c", "3", "-d", "500ms", "-t", "1"});
  ASSERT_RAN(r);
  EXPECT_GT(r.summary["requests"]["count"].get<uint64_t>(), 10u);
  EXPECT_EQ(r.summary["requests"]["failed"], 0u);
  EXPECT_EQ(r.summary["phases_ms"]["tls"]["count"], 3u);  // one handshake per connection, then reuse
  const auto stats = nlohmann::json::parse(target.Stats());
  EXPECT_EQ(stats["tls_handshakes"], 3u + 1u + 1u);  // + the preflight + this stats request
  EXPECT_EQ(stats["sni"]["localhost"], 3u + 1u);     // SNI carries the URL's host name
  EXPECT_EQ(stats["sni"]["admin.test"], 1u);
}

TEST_F(Tls, SelfSignedIsRefusedUnlessInsecure) {
  Target target({"--tls-cert", dir_ + "/cert.pem", "--tls-key", dir_ + "/key.pem"});
  const std::string url = "https://localhost:" + std::to_string(target.port()) + "/";
  Finished refused = RunMeridian({"load", url, "-d", "1s"}, 20'000ms);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("certificate verify failed"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  LoadRun insecure =
      Load({"https://127.0.0.1:" + std::to_string(target.port()) + "/", "--insecure", "-n", "5", "-c", "1"});
  ASSERT_RAN(insecure);
  EXPECT_EQ(Status(insecure.summary, 200), 5u);
  EXPECT_EQ(nlohmann::json::parse(target.Stats())["sni"].count(""), 1u);  // no SNI for an IP address
}

TEST_F(Tls, HttpsAgainstAPlainServerIsATlsError) {
  Target plain;
  Finished f = RunMeridian(
      {"load", "https://127.0.0.1:" + std::to_string(plain.port()) + "/", "--insecure", "-d", "1s"},
      20'000ms);
  EXPECT_EQ(f.exit_code, 1);
  EXPECT_NE(f.err.find("TLS handshake"), std::string::npos) << f.err;
}

}  // namespace
}  // namespace meridian::testing
