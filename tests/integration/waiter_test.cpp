// `meridian waiter` as a real process: START files written later, a START URL from a running control plane,
// --timeout, a START in the past, signals reaching CMD.
#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cluster.h"
#include "process.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;

int64_t WallNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::string Epoch(int64_t ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld.%09lld\n", static_cast<long long>(ns / 1'000'000'000),
                static_cast<long long>(ns % 1'000'000'000));
  return buf;
}

// Written whole or not at all, as a careful writer does.
void WriteAtomically(const std::string& path, const std::string& text) {
  std::ofstream(path + ".tmp") << text;
  std::filesystem::rename(path + ".tmp", path);
}

int64_t ReadNs(const std::string& path) {
  std::ifstream in(path);
  long long v = 0;
  in >> v;
  return v;
}

// CMD: records when it started (date +%s%N) and the environment the waiter gave it.
std::vector<std::string> Recorder(const std::string& dir) {
  return {
      "/bin/sh", "-c",
      "date +%s%N > " + dir + "/started; echo \"$MERIDIAN_START_AT $MERIDIAN_SERVICE_ID\" > " + dir + "/env"};
}

std::vector<std::string> WaiterArgs(std::vector<std::string> own, const std::vector<std::string>& cmd) {
  own.insert(own.begin(), {MeridianBinary(), "waiter"});
  if (!cmd.empty()) {
    own.push_back("--");
    own.insert(own.end(), cmd.begin(), cmd.end());
  }
  return own;
}

TEST(Waiter, StartFileWrittenLaterStartsCmdOnTheInstant) {
  TempDir dir;
  const std::string start = dir.path + "/RUN.txt";
  Process waiter(WaiterArgs({start, "ws-swarm#1", "250ms", "--timeout", "20s"}, Recorder(dir.path)));
  std::this_thread::sleep_for(400ms);                 // the waiter is polling a START that does not exist yet
  const int64_t start_at = WallNs() + 1'500'000'000;  // a sanitizer build may still be starting
  WriteAtomically(start, Epoch(start_at));
  const Finished f = waiter.Wait(20'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  const int64_t started = ReadNs(dir.path + "/started");
  const int64_t intended = start_at + 250'000'000;
  EXPECT_LT(std::abs(started - intended), 50'000'000)
      << "started " << (started - intended) / 1e6 << " ms off";
  std::ifstream env(dir.path + "/env");
  std::string at, id;
  env >> at >> id;
  EXPECT_EQ(id, "ws-swarm#1");
  EXPECT_EQ(at.substr(0, 10), Epoch(start_at).substr(0, 10));
  EXPECT_NE(f.err.find("starting in"), std::string::npos) << f.err;
}

TEST(Waiter, ServicesJsonGivesTheStepsOwnDelay) {
  TempDir dir;
  const int64_t start_at = WallNs() + 1'500'000'000;  // time for the waiter to start (sanitizer builds)
  dir.Write("services.json", "{\"run\":\"r-1\",\"start_at\":" + Epoch(start_at).substr(0, 20) +
                                 ",\"steps\":[{\"name\":\"probe\",\"instances\":1,\"run_delay\":0.4}]}");
  const Finished f =
      RunFull(WaiterArgs({dir.path + "/services.json", "probe", "0s"}, Recorder(dir.path)), 20'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_LT(std::abs(ReadNs(dir.path + "/started") - (start_at + 400'000'000)), 50'000'000);
  EXPECT_NE(f.err.find("delay 400ms from"), std::string::npos) << f.err;
}

TEST(Waiter, StartUrlFromARunningControlPlane) {
  Target target;
  Cluster cluster;
  cluster.StartServer();
  const std::string plan =
      "name: waited\nstart_buffer: 1500ms\nregions: { local: {} }\nscenarios:\n  s:\n"
      "    executor: constant-vus\n    vus: 1\n    duration: 1s\n    requests:\n"
      "      - { url: \"" +
      target.url() + "/\" }\n";
  const auto created =
      HttpCall(cluster.port(), "POST", "/v1/runs", {std::string("Authorization: Bearer ") + kRunsToken},
               nlohmann::json{{"plan", plan}}.dump());
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = nlohmann::json::parse(created.body)["id"].get<std::string>();
  TempDir dir;
  Process waiter(WaiterArgs({cluster.url() + "/v1/runs/" + id + "/start", "probe", "300ms", "--token-file",
                             cluster.dir() + "/runs.token", "--timeout", "30s"},
                            Recorder(dir.path)));
  std::this_thread::sleep_for(700ms);  // no agent yet: the start instant is unknown, the waiter long-polls
  cluster.StartAgent("local", "a1");
  const Finished f = waiter.Wait(30'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  const auto run =
      HttpCall(cluster.port(), "GET", "/v1/runs/" + id, {std::string("Authorization: Bearer ") + kReadToken});
  ASSERT_EQ(run.status, 200) << run.body;
  const int64_t start_at = nlohmann::json::parse(run.body)["start_at_ns"].get<int64_t>();
  ASSERT_GT(start_at, 0) << run.body;
  const int64_t started = ReadNs(dir.path + "/started");
  EXPECT_LT(std::abs(started - (start_at + 300'000'000)), 50'000'000)
      << "started " << (started - start_at - 300'000'000) / 1e6 << " ms off";
  EXPECT_NE(f.err.find("the control plane's clock is"), std::string::npos) << f.err;

  // An unknown run is an error at once, not a wait; so is a token the control plane refuses.
  Finished g = RunFull(WaiterArgs({cluster.url() + "/v1/runs/r-nope/start", "probe", "0s", "--token-file",
                                   cluster.dir() + "/runs.token"},
                                  {}),
                       20'000ms);
  EXPECT_EQ(g.exit_code, 1) << g.err;
  EXPECT_NE(g.err.find("no run 'r-nope'"), std::string::npos) << g.err;
  TempDir bad;
  bad.Write("token", "wrong\n");
  g = RunFull(WaiterArgs({cluster.url() + "/v1/runs/" + id + "/start", "probe", "0s", "--token-file",
                          bad.path + "/token"},
                         {}),
              20'000ms);
  EXPECT_EQ(g.exit_code, 1) << g.err;
  EXPECT_NE(g.err.find("HTTP 401"), std::string::npos) << g.err;
}

TEST(Waiter, TimeoutExpiresWithAMessage) {
  TempDir dir;
  const Finished f =
      RunFull(WaiterArgs({dir.path + "/never.txt", "probe", "1s", "--timeout", "300ms"}, Recorder(dir.path)),
              20'000ms);
  EXPECT_EQ(f.exit_code, 124) << f.err;
  EXPECT_NE(f.err.find("gave up after --timeout 300ms"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("never.txt does not exist"), std::string::npos) << f.err;
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/started"));
  // An instant beyond the timeout is refused at once rather than slept into.
  dir.Write("RUN.txt", Epoch(WallNs() + 3600'000'000'000LL));
  const Finished g = RunFull(
      WaiterArgs({dir.path + "/RUN.txt", "probe", "0s", "--timeout", "10s"}, Recorder(dir.path)), 20'000ms);
  EXPECT_EQ(g.exit_code, 124) << g.err;
  EXPECT_NE(g.err.find("beyond --timeout 10.0s"), std::string::npos) << g.err;
}

TEST(Waiter, APastStartIsReportedNotSlept) {
  TempDir dir;
  dir.Write("RUN.txt", Epoch(WallNs() - 5'000'000'000LL));
  const int64_t before = WallNs();
  const Finished f = RunFull(WaiterArgs({dir.path + "/RUN.txt", "late", "0s"}, Recorder(dir.path)), 20'000ms);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_LT(ReadNs(dir.path + "/started") - before, 2'000'000'000);
  EXPECT_NE(f.err.find("ago (negative skew"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("starting now"), std::string::npos) << f.err;
}

TEST(Waiter, SignalsReachCmd) {
  TempDir dir;
  dir.Write("RUN.txt", Epoch(WallNs()));
  Process waiter(WaiterArgs({dir.path + "/RUN.txt", "trap", "0s"},
                            {"/bin/sh", "-c",
                             "trap 'echo term > " + dir.path + "/signalled; exit 7' TERM; touch " + dir.path +
                                 "/up; while :; do sleep 0.02; done"}));
  for (int i = 0; i < 500 && !std::filesystem::exists(dir.path + "/up"); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(std::filesystem::exists(dir.path + "/up"));
  waiter.Signal(SIGTERM);  // to the waiter's pid: CMD replaced the waiter, so it is CMD's
  const Finished f = waiter.Wait(10'000ms);
  EXPECT_EQ(f.exit_code, 7) << f.err;
  std::ifstream in(dir.path + "/signalled");
  std::string word;
  in >> word;
  EXPECT_EQ(word, "term");
}

TEST(Waiter, BadArgumentsAreNamed) {
  Finished f = RunMeridian({"waiter", "/tmp/x", "s", "10"});
  EXPECT_EQ(f.exit_code, 2);
  EXPECT_NE(f.err.find("DELAY:"), std::string::npos) << f.err;
  f = RunMeridian({"waiter", "/tmp/x", "s", "1s", "--", "/no/such/program"});
  EXPECT_EQ(f.exit_code, 127);
  EXPECT_NE(f.err.find("cannot run '/no/such/program'"), std::string::npos) << f.err;
}

// An https START: the certificate is verified (against $SSL_CERT_FILE here). The target's /api/echo answers
// 200 without a start instant, so a verified connection waits until --timeout; an unverifiable one says why.
TEST(Waiter, HttpsStartIsVerified) {
  TempDir dir;
  ASSERT_TRUE(GenerateTestCertificate(dir.path));
  Target target({"--tls-cert", dir.path + "/cert.pem", "--tls-key", dir.path + "/key.pem"});
  const std::string url = "https://localhost:" + std::to_string(target.port()) + "/api/echo";
  Finished f = RunFull({"/usr/bin/env", "SSL_CERT_FILE=" + dir.path + "/cert.pem", MeridianBinary(), "waiter",
                        url, "probe", "0s", "--timeout", "1500ms"});
  EXPECT_EQ(f.exit_code, 124) << f.err;
  EXPECT_NE(f.err.find("does not know the start instant yet"), std::string::npos) << f.err;
  f = RunFull({MeridianBinary(), "waiter", url, "probe", "0s", "--timeout", "1500ms"});
  EXPECT_EQ(f.exit_code, 124) << f.err;
  EXPECT_NE(f.err.find("certificate verify failed"), std::string::npos) << f.err;
}

}  // namespace
}  // namespace meridian::testing
